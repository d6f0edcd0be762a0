"""Register strategy versions in MLflow and move their aliases (champion, previous, challenger).

One registered model per strategy type, named ``strategy.<type>``. Each version comes from one
MLflow run holding the config as params, the metrics, ``strategy.json``, the validation report and
a pyfunc model; run and version carry the lineage tags (data hash, validation result, code
version, symbols). Promotion moves ``champion`` and keeps the old one as ``previous``.
"""

from __future__ import annotations

import functools
import importlib.metadata
import json
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Param, RunStatus, RunTag
from mlflow.entities.model_registry import ModelVersion, RegisteredModel
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_ALREADY_EXISTS, ErrorCode
from mlflow.tracking import MlflowClient

from core.errors import RegistryError, ValidationGateFailed
from registry.packaging import STRATEGY_FILE, save_strategy_model, strategy_document
from registry.store import MlflowStore

MODEL_PREFIX = "strategy."
CHAMPION = "champion"
PREVIOUS = "previous"
VALIDATION_FILE = "validation.json"
MODEL_ARTIFACT = "model"


@dataclass(frozen=True)
class RegisteredVersion:
    """What :meth:`StrategyRegistry.register` created."""

    name: str
    version: str
    run_id: str


def model_name(type_name: str) -> str:
    """Return the registered model name of a strategy type (``strategy.ma_crossover``)."""
    return f"{MODEL_PREFIX}{type_name}"


@functools.cache
def code_version() -> str:
    """Return ``git describe`` of the repository, else the installed package version."""
    repo = Path(__file__).resolve().parents[1]
    try:
        described = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--tags"],
            cwd=repo,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        if described:
            return described
    except (OSError, subprocess.SubprocessError):
        pass  # no git or not a checkout (an installed wheel): fall back to the package version
    try:
        return importlib.metadata.version("strategy-engine")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _flatten(config: dict[str, Any], prefix: str = "") -> dict[str, str]:
    flat: dict[str, str] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = json.dumps(value) if isinstance(value, list) else str(value)
    return flat


def package_versions(*packages: str) -> dict[str, str]:
    """``<package>_version`` tags of the libraries a learned model needs to load."""
    found = {}
    for package in packages:
        try:
            found[f"{package}_version"] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            found[f"{package}_version"] = "unknown"
    return found


def require_metrics(what: str, metrics: dict[str, float], keys: tuple[str, ...]) -> None:
    """Refuse to register ``what`` without each of its out-of-sample metrics ``keys``."""
    missing = [key for key in keys if key not in metrics]
    if missing:
        raise RegistryError(f"{what} metrics lack {missing}, have {sorted(metrics)}")


def _lineage_tags(
    type_name: str,
    data_hash: str,
    validation: dict[str, Any],
    symbols: tuple[str, ...],
    code: str | None,
) -> dict[str, str]:
    if not isinstance(validation.get("success"), bool):
        raise RegistryError(f"validation report needs a boolean 'success', was {validation!r:.120}")
    failed = validation.get("failed_expectations", [])
    return {
        "strategy_type": type_name,
        "data_hash": data_hash,
        "validation_success": str(validation["success"]).lower(),
        "validation_suite": str(validation.get("suite", "")),
        "validation_failed_count": str(len(failed) if isinstance(failed, list) else failed),
        "code_version": code or code_version(),
        "symbols": ",".join(symbols),
    }


def _is_error(exc: MlflowException, code: str) -> bool:
    return exc.error_code == code


class StrategyRegistry:
    """Register, list and alias strategy versions in one :class:`MlflowStore`."""

    def __init__(self, store: MlflowStore | None = None) -> None:
        self.store = store or MlflowStore()

    @property
    def client(self) -> MlflowClient:
        return self.store.client

    # -- registration ----------------------------------------------------------------------------

    def register(
        self,
        type_name: str,
        config: dict[str, Any],
        *,
        data_hash: str,
        validation: dict[str, Any],
        metrics: dict[str, float] | None = None,
        symbols: tuple[str, ...] = (),
        code_version: str | None = None,
    ) -> RegisteredVersion:
        """Log one strategy version in a run and register it under ``strategy.<type_name>``.

        A version whose validation failed is registered (for the record) but :meth:`promote`
        refuses it.

        Parameters
        ----------
        type_name, config
            Catalogue type and its parameters; validated here (``ConfigError`` if invalid).
        data_hash
            Hash of the data the version was evaluated on.
        validation
            Gate report summary: ``success`` (bool), ``suite``, ``failed_expectations``.
        metrics
            Backtest or evaluation metrics.
        symbols
            Instruments the version trades; empty means every symbol of its data kind.
        code_version
            Overrides ``git describe``.
        """
        document = strategy_document(type_name, config)
        tags = _lineage_tags(type_name, data_hash, validation, symbols, code_version)
        return self.register_document(document, tags, validation=validation, metrics=metrics or {})

    def register_run(
        self, type_name: str, tags: dict[str, str], log: Callable[[str], None]
    ) -> RegisteredVersion:
        """Open a run, let ``log`` fill it, close it, and register its model as a new version.

        The one way a version comes to exist, for rule and learned strategies alike: ``log``
        writes params, metrics and artifacts (the model under ``model/``); a failure marks the
        run FAILED and registers nothing.
        """
        name = model_name(type_name)
        client = self.client
        run = client.create_run(self.store.experiment_id(), run_name=name, tags=tags)
        run_id = run.info.run_id
        try:
            log(run_id)
            client.set_terminated(run_id, RunStatus.to_string(RunStatus.FINISHED))
        except Exception:
            client.set_terminated(run_id, RunStatus.to_string(RunStatus.FAILED))
            raise
        self._ensure_model(name, type_name)
        source = f"{run.info.artifact_uri}/{MODEL_ARTIFACT}"
        created = client.create_model_version(name, source=source, run_id=run_id, tags=tags)
        return RegisteredVersion(name=name, version=str(created.version), run_id=run_id)

    def register_document(
        self,
        document: dict[str, Any],
        tags: dict[str, str],
        *,
        validation: dict[str, Any],
        metrics: dict[str, float],
        extra_params: dict[str, str] | None = None,
        add_files: Callable[[Path], None] | None = None,
    ) -> RegisteredVersion:
        """Register a version from its ``strategy.json`` document, in one run.

        The run holds the config as params (plus ``extra_params``), the metrics,
        ``strategy.json``, the validation report and the pyfunc model; ``add_files`` writes what
        a learned strategy adds (its fitted model in its library's own format) into the folder
        that is uploaded as the run's artifacts.
        """

        def log(run_id: str) -> None:
            now_ms = int(time.time() * 1000)
            params = {**_flatten(document["config"]), **(extra_params or {})}
            self.client.log_batch(
                run_id,
                metrics=[Metric(key, float(value), now_ms, 0) for key, value in metrics.items()],
                params=[Param(key, value) for key, value in params.items()],
                tags=[RunTag("schema_version", str(document["schema_version"]))],
            )
            with tempfile.TemporaryDirectory(prefix="strategy-version-") as tmp:
                folder = Path(tmp)
                (folder / STRATEGY_FILE).write_text(json.dumps(document, indent=2, sort_keys=True))
                (folder / VALIDATION_FILE).write_text(json.dumps(validation, indent=2, default=str))
                save_strategy_model(folder / MODEL_ARTIFACT, document)
                if add_files is not None:
                    add_files(folder)
                self.client.log_artifacts(run_id, str(folder))

        return self.register_run(document["type"], tags, log)

    def _ensure_model(self, name: str, type_name: str) -> None:
        try:
            self.client.create_registered_model(name, tags={"strategy_type": type_name})
        except MlflowException as exc:
            # Another registration got there first: the model exists, which is all we need.
            if not _is_error(exc, ErrorCode.Name(RESOURCE_ALREADY_EXISTS)):
                raise

    # -- aliases ---------------------------------------------------------------------------------

    def model_version(self, name: str, version: str) -> ModelVersion:
        """Return version ``version`` of ``name``; RegistryError if it does not exist."""
        try:
            return self.client.get_model_version(name, str(version))
        except MlflowException as exc:
            raise RegistryError(f"{name} has no version {version!r}: {exc.message}") from None

    def version_by_alias(self, name: str, alias: str) -> ModelVersion | None:
        """Return the version ``alias`` points to, or ``None`` when the alias is not set."""
        try:
            return self.client.get_model_version_by_alias(name, alias)
        except MlflowException:
            return None

    def get_alias(self, name: str, alias: str) -> str | None:
        """Return the version number ``alias`` points to, or ``None`` when it is not set."""
        version = self.version_by_alias(name, alias)
        return None if version is None else str(version.version)

    def set_alias(self, name: str, alias: str, version: str) -> None:
        """Point ``alias`` of ``name`` at ``version`` (which must exist)."""
        self.model_version(name, version)
        self.client.set_registered_model_alias(name, alias, str(version))

    def delete_alias(self, name: str, alias: str) -> None:
        """Remove ``alias`` from ``name`` if it is set."""
        if self.get_alias(name, alias) is not None:
            self.client.delete_registered_model_alias(name, alias)

    def promote(self, name: str, version: str) -> None:
        """Make ``version`` the champion; the old champion becomes ``previous``.

        Raises
        ------
        ValidationGateFailed
            If the version's validation gate did not pass; the champion is left unchanged.
        """
        candidate = self.model_version(name, version)
        tags = dict(candidate.tags)
        if tags.get("validation_success") != "true":
            suite = tags.get("validation_suite", "?")
            raise ValidationGateFailed(
                f"{name} version {version} failed validation suite {suite!r}: not promoted",
                report={"name": name, "version": str(version), "tags": tags},
            )
        current = self.get_alias(name, CHAMPION)
        if current == str(version):
            return
        # previous first: a crash between the two calls leaves the champion as it was.
        if current is not None:
            self.client.set_registered_model_alias(name, PREVIOUS, current)
        self.client.set_registered_model_alias(name, CHAMPION, str(version))

    def rollback(self, name: str) -> str:
        """Move ``champion`` back to ``previous`` and return the restored version.

        ``previous`` is removed afterwards (a second rollback fails instead of flipping back to
        the version just rolled away from); that version is tagged ``rolled_back_at``.
        """
        previous = self.get_alias(name, PREVIOUS)
        if previous is None:
            raise RegistryError(f"{name} has no 'previous' version to roll back to")
        current = self.get_alias(name, CHAMPION)
        self.client.set_registered_model_alias(name, CHAMPION, previous)
        self.client.delete_registered_model_alias(name, PREVIOUS)
        if current is not None and current != previous:
            stamp = datetime.now(UTC).isoformat(timespec="seconds")
            self.client.set_model_version_tag(name, current, "rolled_back_at", stamp)
        return previous

    # -- listing ---------------------------------------------------------------------------------

    def registered_models(self) -> Iterator[RegisteredModel]:
        """Yield every ``strategy.*`` registered model, following result pages."""
        token = None
        while True:
            page = self.client.search_registered_models(
                filter_string=f"name LIKE '{MODEL_PREFIX}%'", max_results=100, page_token=token
            )
            yield from page
            token = page.token
            if not token:
                return

    def versions(self, name: str) -> list[ModelVersion]:
        """Return every version of ``name``, oldest first."""
        found: list[ModelVersion] = []
        token = None
        while True:
            page = self.client.search_model_versions(
                filter_string=f"name = '{name}'", max_results=1000, page_token=token
            )
            found.extend(page)
            token = page.token
            if not token:
                return sorted(found, key=lambda version: int(version.version))

    def list_strategies(self) -> list[dict[str, Any]]:
        """Describe every registered strategy as JSON-safe data: versions, tags and aliases."""
        listing = []
        for model in sorted(self.registered_models(), key=lambda model: model.name):
            listing.append(
                {
                    "name": model.name,
                    "aliases": {alias: str(v) for alias, v in sorted(model.aliases.items())},
                    "versions": [
                        _describe_version(v, model.aliases) for v in self.versions(model.name)
                    ],
                }
            )
        return listing


def _describe_version(version: ModelVersion, aliases: dict[str, Any]) -> dict[str, Any]:
    # Versions found by a search carry no aliases in MLflow 3.17: take them from the model.
    created = datetime.fromtimestamp(version.creation_timestamp / 1000, tz=UTC)
    return {
        "version": str(version.version),
        "run_id": version.run_id,
        "status": version.status,
        "created": created.isoformat(timespec="milliseconds"),
        "aliases": sorted(a for a, v in aliases.items() if str(v) == str(version.version)),
        "tags": dict(sorted(version.tags.items())),
    }
