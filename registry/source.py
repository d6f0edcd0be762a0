"""The core's :class:`~core.ports.StrategySource` backed by the MLflow registry.

Only ``strategy.json`` is read from a version's artifacts (through :mod:`registry.artifacts`:
a regular file, bounded in size and nesting), as JSON, and checked against the installed
catalogue; the pyfunc model is never loaded here. A learned direction version's model file is
read by :mod:`registry.learned_direction` under the same bounds
(:func:`load_direction_strategy` loads one such version with its predictor).
"""

from __future__ import annotations

from dataclasses import replace

from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from core.errors import AdapterError, RegistryError, ValidationGateFailed
from core.ports import StrategyDeployment
from registry.artifacts import STRATEGY_DOCUMENT, read_artifact
from registry.learned_direction import DIRECTION_TYPE, LoadedDirection, load_direction_predictor
from registry.packaging import STRATEGY_FILE, parse_strategy_document
from registry.store import MlflowStore
from registry.strategy_registry import CHAMPION, MODEL_PREFIX, StrategyRegistry, model_name

# Learned types whose versions carry a fitted model beside their config.
LEARNED_DIRECTION = "ml_direction"

# Where save_model puts the data file inside the model folder.
DOCUMENT_PATH = f"data/{STRATEGY_FILE}"


class MlflowStrategySource:
    """Load the active strategy set (every ``strategy.*`` model with an alias) from MLflow."""

    def __init__(self, registry: StrategyRegistry) -> None:
        self.registry = registry
        # Versions whose evidence was checked (name, version, validation run): a version's
        # run and pinned report cannot change, so one check per version is enough.
        self._verified: set[tuple[str, str, str]] = set()

    def load_active_set(self, alias: str = CHAMPION) -> list[StrategyDeployment]:
        """Return one deployment per registered strategy that has ``alias``, by model name.

        A ``champion`` must carry the evidence the registry checks before it promotes
        (:meth:`StrategyRegistry.check_evidence`): an alias moved by hand in the MLflow UI to a
        version whose validation failed, or that has none, is refused like a broken version.

        Raises
        ------
        RegistryError
            If any aliased version names a type or config the installed code does not know,
            one of its artifacts is not a regular file, too large, too deeply nested or an
            unsafe archive, or a champion lacks its validation evidence; the caller keeps its
            running set.
        AdapterError
            If the registry cannot be listed (MLflow away); the caller keeps its running set.
        """
        deployments = []
        try:
            models = sorted(self.registry.registered_models(), key=lambda model: model.name)
        except MlflowException as exc:
            # A one-line error for the operator, and a type the core's callers already handle.
            uri = self.registry.store.tracking_uri
            raise AdapterError(f"cannot list the strategy registry at {uri}: {exc}") from None
        for model in models:
            if alias in model.aliases:
                version = self.registry.model_version(model.name, str(model.aliases[alias]))
                deployment = self._deployment(version, alias)
                if alias == CHAMPION:
                    self._check_champion(version)
                deployments.append(self._with_model(deployment))
        return deployments

    def _check_champion(self, version: ModelVersion) -> None:
        key = (version.name, str(version.version), version.run_id or "")
        if key in self._verified:
            return
        try:
            self.registry.check_evidence(version)
        except ValidationGateFailed as exc:
            raise RegistryError(f"refusing the champion: {exc}") from None
        self._verified.add(key)

    def _with_model(self, deployment: StrategyDeployment) -> StrategyDeployment:
        """Attach the fitted model of a learned version (XGBoost JSON or skops, never pickle)."""
        if deployment.type_name != LEARNED_DIRECTION or deployment.config.get("model") == "linear":
            return deployment
        return replace(deployment, predictor=load_direction_predictor(deployment, self.registry))

    def load_version(self, name: str, version_or_alias: str) -> StrategyDeployment:
        """Return the deployment of one version, given its number or an alias."""
        if str(version_or_alias).isdigit():
            return self._deployment(self.registry.model_version(name, str(version_or_alias)), "")
        version = self.registry.version_by_alias(name, version_or_alias)
        if version is None:
            raise RegistryError(f"{name} has no alias {version_or_alias!r}")
        return self._deployment(version, version_or_alias)

    def _deployment(self, version: ModelVersion, alias: str) -> StrategyDeployment:
        where = f"{version.name} version {version.version}"
        type_name, config = parse_strategy_document(self._read_document(version, where), where)
        if version.name != f"{MODEL_PREFIX}{type_name}":
            raise RegistryError(f"{where}: {STRATEGY_FILE} names type {type_name!r}")
        tags = dict(version.tags)
        symbols = tuple(symbol for symbol in tags.get("symbols", "").split(",") if symbol)
        return StrategyDeployment(
            name=version.name,
            version=str(version.version),
            type_name=type_name,
            config=config,
            alias=alias,
            symbols=symbols,
            validation_run=version.run_id or "",
            tags=tags,
        )

    def _read_document(self, version: ModelVersion, where: str) -> bytes:
        if not version.source:
            raise RegistryError(f"{where}: names no model folder")
        return read_artifact(
            version.source,
            DOCUMENT_PATH,
            STRATEGY_DOCUMENT,
            where=where,
            tracking_uri=self.registry.store.tracking_uri,
        )


def load_direction_strategy(
    version_or_alias: str, *, store: MlflowStore | None = None
) -> LoadedDirection:
    """Load a registered ``ml_direction`` version (number or alias) with its predictor.

    Raises
    ------
    RegistryError
        If the version or alias does not exist, its config is unknown to the installed code, or
        its model file is missing, too large or untrusted.
    """
    registry = StrategyRegistry(store)
    source = MlflowStrategySource(registry)
    deployment = source.load_version(model_name(DIRECTION_TYPE), str(version_or_alias))
    return LoadedDirection(deployment, load_direction_predictor(deployment, registry))
