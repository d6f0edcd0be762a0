"""The core's :class:`~core.ports.StrategySource` backed by the MLflow registry.

Only ``strategy.json`` is read from a version's artifacts, as JSON, and checked against the
installed catalogue; the pyfunc model is never loaded here.
"""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

import mlflow.artifacts
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from core.errors import RegistryError
from core.ports import StrategyDeployment
from registry.packaging import STRATEGY_FILE, parse_strategy_document
from registry.strategy_registry import CHAMPION, MODEL_PREFIX, StrategyRegistry

# Learned types whose versions carry a fitted model beside their config.
LEARNED_DIRECTION = "ml_direction"

# Where save_model puts the data file inside the model folder.
DOCUMENT_PATH = f"data/{STRATEGY_FILE}"
MAX_DOCUMENT_BYTES = 1_000_000


class MlflowStrategySource:
    """Load the active strategy set (every ``strategy.*`` model with an alias) from MLflow."""

    def __init__(self, registry: StrategyRegistry) -> None:
        self.registry = registry

    def load_active_set(self, alias: str = CHAMPION) -> list[StrategyDeployment]:
        """Return one deployment per registered strategy that has ``alias``, by model name.

        Raises
        ------
        RegistryError
            If any aliased version names a type or config the installed code does not know; the
            caller keeps its running set.
        """
        deployments = []
        for model in sorted(self.registry.registered_models(), key=lambda model: model.name):
            if alias in model.aliases:
                version = self.registry.model_version(model.name, str(model.aliases[alias]))
                deployments.append(self._with_model(self._deployment(version, alias)))
        return deployments

    def _with_model(self, deployment: StrategyDeployment) -> StrategyDeployment:
        """Attach the fitted model of a learned version (XGBoost JSON or skops, never pickle)."""
        if deployment.type_name != LEARNED_DIRECTION or deployment.config.get("model") == "linear":
            return deployment
        from registry.learned_direction import load_direction_strategy  # imports this module

        loaded = load_direction_strategy(deployment.version, store=self.registry.store)
        return replace(deployment, predictor=loaded.predictor)

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
        uri = f"{version.source}/{DOCUMENT_PATH}"
        try:
            if urlparse(uri).scheme == "file":
                # The local store: read in place rather than copy through a temporary folder.
                return _read_limited(Path(url2pathname(urlparse(uri).path)), where)
            with tempfile.TemporaryDirectory(prefix="strategy-doc-") as tmp:
                store = self.registry.store
                local = mlflow.artifacts.download_artifacts(
                    artifact_uri=uri,
                    dst_path=tmp,
                    tracking_uri=store.tracking_uri,
                    registry_uri=store.tracking_uri,
                )
                return _read_limited(Path(local), where)
        except (MlflowException, OSError) as exc:
            raise RegistryError(f"{where}: cannot read {DOCUMENT_PATH}: {exc}") from None


def _read_limited(path: Path, where: str) -> bytes:
    size = path.stat().st_size
    if size > MAX_DOCUMENT_BYTES:
        raise RegistryError(f"{where}: {STRATEGY_FILE} is {size} bytes, over {MAX_DOCUMENT_BYTES}")
    return path.read_bytes()
