"""Register strategy versions in MLflow and move their aliases (champion, previous, challenger).

One registered model per strategy type, named ``strategy.<type>``. Each version comes from one
MLflow run holding the config as params, the metrics, ``strategy.json``, the validation report and
a pyfunc model; run and version carry the lineage tags (data hash, validation result, code
version, symbols). Promotion moves ``champion`` and keeps the old one as ``previous``.

Tags are for people: anyone who can reach MLflow can set them. Promotion is decided by evidence
the registry checks itself (:meth:`StrategyRegistry.check_evidence`): the run that logged the
version is the validation run, it FINISHED, its ``validation.json`` still has the SHA-256 the run
recorded as a param (MLflow never lets a logged param change), the report says success, the
data hash in the report, in the run's params and on the version agree, and the report carries
the promotion evidence of :mod:`registry.evidence`: a passed look-ahead check and an evaluation
in which the challenger beat the champion it met by the margin. :meth:`StrategyRegistry.promote`
also requires that champion to be the current one.
"""

from __future__ import annotations

import functools
import importlib.metadata
import json
import logging
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
from registry.artifacts import VALIDATION_REPORT, load_json, read_artifact, sha256_hex
from registry.evidence import evaluated_against, evidence_problem
from registry.packaging import STRATEGY_FILE, save_strategy_model, strategy_document
from registry.store import MlflowStore

log = logging.getLogger(__name__)

MODEL_PREFIX = "strategy."
CHAMPION = "champion"
PREVIOUS = "previous"
VALIDATION_FILE = "validation.json"
MODEL_ARTIFACT = "model"
# The version tag naming the run that validated it (for people; promotion checks the run).
VALIDATION_RUN_TAG = "validation_run_id"
# Run params (immutable once logged) that pin the evidence: the report's digest and the data.
EVIDENCE_REPORT_PARAM = "evidence.validation_sha256"
EVIDENCE_DATA_PARAM = "evidence.data_hash"


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


def lineage_tags(
    type_name: str,
    data_hash: str,
    validation: dict[str, Any],
    symbols: tuple[str, ...],
    code: str | None,
) -> dict[str, str]:
    """The tags every registered version carries: its type, data, validation and code."""
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
        tags = lineage_tags(type_name, data_hash, validation, symbols, code_version)
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
        version_tags = {**tags, VALIDATION_RUN_TAG: run_id}
        created = client.create_model_version(name, source=source, run_id=run_id, tags=version_tags)
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

        The validation report is stored with the data hash of ``tags`` in it, and the run's
        params pin both (:data:`EVIDENCE_REPORT_PARAM`, :data:`EVIDENCE_DATA_PARAM`): this is the
        evidence :meth:`promote` checks.

        Raises
        ------
        RegistryError
            If the report names another data hash than ``tags``, or a param would shadow an
            evidence param.
        """
        data_hash = tags.get("data_hash", "")
        reported = validation.get("data_hash", data_hash)
        if reported != data_hash:
            raise RegistryError(
                f"validation report is about data {reported!r}, the version about {data_hash!r}"
            )
        report = json.dumps({**validation, "data_hash": data_hash}, indent=2, default=str).encode()
        params = {**_flatten(document["config"]), **(extra_params or {})}
        shadowed = sorted({EVIDENCE_REPORT_PARAM, EVIDENCE_DATA_PARAM} & params.keys())
        if shadowed:
            raise RegistryError(f"params {shadowed} are reserved for the validation evidence")
        params[EVIDENCE_REPORT_PARAM] = sha256_hex(report)
        params[EVIDENCE_DATA_PARAM] = data_hash

        def log(run_id: str) -> None:
            now_ms = int(time.time() * 1000)
            self.client.log_batch(
                run_id,
                metrics=[Metric(key, float(value), now_ms, 0) for key, value in metrics.items()],
                params=[Param(key, value) for key, value in params.items()],
                tags=[RunTag("schema_version", str(document["schema_version"]))],
            )
            with tempfile.TemporaryDirectory(prefix="strategy-version-") as tmp:
                folder = Path(tmp)
                (folder / STRATEGY_FILE).write_text(json.dumps(document, indent=2, sort_keys=True))
                (folder / VALIDATION_FILE).write_bytes(report)
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

    def promote(
        self, name: str, version: str, *, data_hash: str | None = None, reason: str = ""
    ) -> bool:
        """Make ``version`` the champion; the old champion becomes ``previous``.

        Parameters
        ----------
        name, version
            The registered model and the version to promote.
        data_hash
            The hash recomputed from the data by a caller that holds it; it must equal the hash
            the version was validated on. Without it, the hashes the registry recorded are
            compared with one another.
        reason
            Why (logged with the promotion).

        Returns
        -------
        bool
            True if the champion moved, False if ``version`` was the champion already.

        Raises
        ------
        ValidationGateFailed
            If the version's validation evidence is missing, altered or failing (see
            :meth:`check_evidence`), or its evaluation met another champion than the current
            one (stale); the champion is left unchanged.
        """
        candidate = self.model_version(name, version)
        try:
            evidence = self.check_evidence(candidate, data_hash=data_hash)
            current = self.get_alias(name, CHAMPION)
            if current == str(version):
                return False
            if not (evidence["evaluated_against"] is None and self._unfounded(name, current)):
                _require_current(candidate, evidence, current)
        except ValidationGateFailed as exc:
            log.warning(
                str(exc)[:1000],
                extra={"event": "promotion_refused", "model": name, "version": str(version),
                       "reason": str(exc)[:1000]},
            )  # fmt: skip
            raise
        # previous first: a crash between the two calls leaves the champion as it was.
        if current is not None:
            self.client.set_registered_model_alias(name, PREVIOUS, current)
        self.client.set_registered_model_alias(name, CHAMPION, str(version))
        log.info(
            f"{name} version {version} is champion (was {current})",
            extra={"event": "model_promoted", "model": name, "version": str(version),
                   "from_version": current, "reason": reason},
        )  # fmt: skip
        return True

    def champion_problem(self, name: str) -> str | None:
        """Why the champion of ``name`` fails :meth:`check_evidence` (a version registered
        before the evidence existed, or an alias moved by hand), or None when it passes or
        there is no champion. A core refuses such a champion; a retrain measures its challenger
        as against no champion, and :meth:`promote` lets a version with evidence replace it."""
        current = self.get_alias(name, CHAMPION)
        if current is None:
            return None
        try:
            self.check_evidence(self.model_version(name, current))
        except ValidationGateFailed as exc:
            return str(exc)
        return None

    def _unfounded(self, name: str, current: str | None) -> bool:
        return current is not None and self.champion_problem(name) is not None

    def check_evidence(
        self, version: ModelVersion, *, data_hash: str | None = None
    ) -> dict[str, str | None]:
        """Check that ``version`` passed its validation gate, from what MLflow itself holds.

        Tags (``validation_success`` among them) can be set by anyone who reaches MLflow, so
        none decides here. The checks, in order: the version records its validation run, and
        that run is the one that logged the version's model; the run exists, is not deleted and
        FINISHED; its ``validation.json`` is a bounded regular file whose SHA-256 is the one the
        run pinned in an (immutable) param; the report says ``success``; the data hash in the
        report, the run's param, the version's tag (and ``data_hash`` when given) are equal;
        and the report's ``lookahead`` section shows a passed check with no violation and its
        ``evaluation`` section finite scores, a margin >= 0 and, when it met a champion, a
        challenger score >= the champion's plus the margin (:func:`evidence_problem`).

        Whether the champion it met is still the champion is :meth:`promote`'s concern: a
        version that is the champion is checked here alone (the core's check).

        Returns
        -------
        dict
            ``run_id``, ``suite`` and ``data_hash`` of the evidence, and ``evaluated_against``:
            the champion version its evaluation met (None: it met none).

        Raises
        ------
        ValidationGateFailed
            Naming the first check that failed; nothing is changed.
        """
        where = f"{version.name} version {version.version}"
        tags = dict(version.tags)
        facts: dict[str, Any] = {"name": version.name, "version": str(version.version)}

        def refuse(reason: str) -> ValidationGateFailed:
            return ValidationGateFailed(
                f"{where} not promoted: {reason}", report={**facts, "reason": reason, "tags": tags}
            )

        run_id = tags.get(VALIDATION_RUN_TAG, "")
        if not run_id:
            raise refuse(
                f"it records no validation run (no {VALIDATION_RUN_TAG!r} tag); "
                "a 'validation_success' tag alone is not evidence"
            )
        facts["run_id"] = run_id
        if run_id != version.run_id:
            raise refuse(
                f"validation run {run_id} did not log this version "
                f"(its model comes from run {version.run_id or 'none'})"
            )
        try:
            run = self.client.get_run(run_id)
        except MlflowException:
            raise refuse(f"validation run {run_id} does not exist") from None
        if run.info.lifecycle_stage != "active":
            raise refuse(f"validation run {run_id} is {run.info.lifecycle_stage}")
        if run.info.status != RunStatus.to_string(RunStatus.FINISHED):
            raise refuse(f"validation run {run_id} is {run.info.status}, not FINISHED")
        logged = f"{run.info.artifact_uri}/{MODEL_ARTIFACT}"
        if version.source != logged:
            raise refuse(f"its model {version.source} is not the one run {run_id} logged")
        digest = run.data.params.get(EVIDENCE_REPORT_PARAM)
        recorded_hash = run.data.params.get(EVIDENCE_DATA_PARAM)
        if not digest or recorded_hash is None:
            raise refuse(
                f"validation run {run_id} pinned no evidence "
                f"(params {EVIDENCE_REPORT_PARAM!r}, {EVIDENCE_DATA_PARAM!r})"
            )
        try:
            raw = read_artifact(
                run.info.artifact_uri,
                VALIDATION_FILE,
                VALIDATION_REPORT,
                where=f"validation run {run_id}",
                tracking_uri=self.store.tracking_uri,
            )
        except RegistryError as exc:
            raise refuse(str(exc)) from None
        actual = sha256_hex(raw)
        if actual != digest:
            raise refuse(
                f"{VALIDATION_FILE} of validation run {run_id} was changed after the run "
                f"recorded it ({actual} != {digest})"
            )
        try:
            report = load_json(raw, VALIDATION_REPORT, name=VALIDATION_FILE, where=where)
        except RegistryError as exc:
            raise refuse(str(exc)) from None
        if not isinstance(report, dict):
            raise refuse(f"{VALIDATION_FILE} of validation run {run_id} is not an object")
        suite = str(report.get("suite", "?"))
        if report.get("success") is not True:
            raise ValidationGateFailed(
                f"{where} failed validation suite {suite!r}: not promoted",
                report={**facts, "reason": "validation failed", "validation": report},
            )
        hashes = {
            "validation report": report.get("data_hash"),
            "validation run": recorded_hash,
            "version tag": tags.get("data_hash"),
        }
        if data_hash is not None:
            hashes["recomputed from the data"] = data_hash
        if not recorded_hash or len(set(hashes.values())) != 1:
            listed = ", ".join(f"{who} {value!r}" for who, value in hashes.items())
            raise refuse(f"data hashes disagree: {listed}")
        problem = evidence_problem(report)
        if problem is not None:
            raise refuse(problem)
        return {
            "run_id": run_id,
            "suite": suite,
            "data_hash": recorded_hash,
            "evaluated_against": evaluated_against(report),
        }

    def run_artifact_uri(self, run_id: str | None, where: str) -> str:
        """Return the artifact folder URI of run ``run_id``; RegistryError if there is none."""
        if not run_id:
            raise RegistryError(f"{where}: no run holds its artifacts")
        try:
            return str(self.client.get_run(run_id).info.artifact_uri)
        except MlflowException as exc:
            raise RegistryError(f"{where}: run {run_id} cannot be read: {exc.message}") from None

    def rollback(self, name: str, *, reason: str = "") -> str:
        """Move ``champion`` back to ``previous`` and return the restored version.

        ``previous`` is removed afterwards (a second rollback fails instead of flipping back to
        the version just rolled away from); that version is tagged ``rolled_back_at``.

        The operator's emergency path: no fresh evaluation is asked for (``previous`` met the
        margin when it was promoted, and what it is rolled back from may be what is failing).
        The core still checks the restored version's evidence (:meth:`check_evidence`) when it
        loads it, so a version registered before the look-ahead and evaluation evidence is
        refused there.
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
        log.warning(
            f"{name} rolled back to version {previous} (was {current})",
            extra={"event": "model_rolled_back", "model": name, "version": previous,
                   "from_version": current, "reason": reason},
        )  # fmt: skip
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


def _require_current(
    version: ModelVersion, evidence: dict[str, str | None], current: str | None
) -> None:
    """Refuse a version whose evaluation met another champion than the current one: its lead
    was measured against a version that no longer decides."""
    against = evidence["evaluated_against"]
    if against == current:
        return
    met = f"champion version {against}" if against is not None else "no champion"
    now = f"version {current}" if current is not None else "none"
    reason = (
        f"its evaluation is stale: it met {met}, the champion is now {now}; "
        "retrain it against the current champion"
    )
    raise ValidationGateFailed(
        f"{version.name} version {version.version} not promoted: {reason}",
        report={"name": version.name, "version": str(version.version), "reason": reason,
                "evaluated_against": against, "champion": current},
    )  # fmt: skip


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
