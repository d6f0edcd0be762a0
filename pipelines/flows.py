"""Prefect flows of the learning tier. Thin: each task wraps one lifecycle step."""

from __future__ import annotations

import logging
from typing import Any

from prefect import flow, task

from core.errors import ConfigError, ValidationGateFailed
from core.strategies.base import DataKind
from core.strategies.catalogue import strategy_type
from pipelines import governance, learning, lifecycle
from pipelines.announce import notify_core
from pipelines.learning_counts import count_learning_event
from pipelines.validation import GateReport
from registry.runs import log_decision
from registry.strategy_registry import RegisteredVersion, StrategyRegistry, model_name

log = logging.getLogger(__name__)
# The held-out share of the dates register-and-promote measures a version on, as a retrain.
REGISTER_TEST_FRACTION = 0.3


@task(name="admit-bars")
def admit_bars(dataset: str, symbols: list[str] | None) -> lifecycle.AdmittedBars:
    return lifecycle.admit_bars(dataset, symbols)


@task(name="validate-bars")
def validate_bars(admitted: lifecycle.AdmittedBars, max_rejected_rows: int = 0) -> GateReport:
    return lifecycle.gate_bars(admitted, max_rejected_rows)


@task(name="hash-data")
def hash_data(admitted: lifecycle.AdmittedBars) -> str:
    return lifecycle.data_hash(admitted)


@task(name="register-strategy", retries=2, retry_delay_seconds=1)
def register_strategy(
    type_name: str,
    config: dict[str, Any],
    data_hash: str,
    report: GateReport,
    metrics: dict[str, float] | None = None,
    evidence: dict[str, Any] | None = None,
) -> RegisteredVersion:
    return lifecycle.register_strategy(
        StrategyRegistry(), type_name, config, data_hash=data_hash, report=report,
        metrics=metrics, evidence=evidence,
    )  # fmt: skip


@task(name="promote-champion", retries=2, retry_delay_seconds=1)
def promote_champion(
    name: str, version: str, data_hash: str | None = None
) -> dict[str, str | None]:
    return lifecycle.promote_champion(StrategyRegistry(), name, version, data_hash=data_hash)


@flow(name="register-and-promote", log_prints=False)
def register_and_promote(
    strategy: str = "ma_crossover",
    config: dict[str, Any] | None = None,
    dataset: str = "equities_daily_stocknet88",
    symbols: list[str] | None = None,
    promote: bool = True,
    margin: float = 0.05,
    max_rejected_rows: int = 0,
) -> dict[str, Any]:
    """Validate the data with the bars gate, register the strategy version, promote it.

    A failed gate (including more than ``max_rejected_rows`` rows the loader could not parse)
    raises :class:`core.errors.ValidationGateFailed` before anything is registered, so the
    champion stays as it was. A champion is replaced only by a version that beats it as a
    retrain's challenger must: same engine, same held-out window, by ``margin`` Sharpe;
    otherwise the version is registered as ``challenger`` and the refusal is recorded.
    """
    name = model_name(strategy)
    admitted = admit_bars(dataset, symbols)
    report = validate_bars(admitted, max_rejected_rows)
    if not report.success:
        count_learning_event("gate_failed", name)
        raise ValidationGateFailed(report.message(), report=report.to_dict())
    digest = hash_data(admitted)
    registry = StrategyRegistry()
    champion_version, champion = (
        learning.champion_config(registry, strategy) if promote else (None, None)
    )
    candidate = strategy_type(strategy).config_type.from_dict(config or {}).to_dict()
    measured, evidence = measure_candidate(
        strategy,
        admitted,
        candidate,
        (champion_version, champion) if champion_version and champion else None,
        margin,
    )
    held = measured.windows.test_start
    evaluation: dict[str, Any] | None = None
    if champion is not None and measured.champion_test is not None:
        evaluation = {
            "challenger": {"config": candidate, "test": measured.test},
            "champion": {"config": champion, "test": measured.champion_test},
            "windows": {"train_end_ns": held, "test_start_ns": held},
        }
    metrics = {f"test_{k}": float(v) for k, v in measured.test.items()} if evaluation else None
    version = register_strategy(strategy, config or {}, digest, report, metrics, evidence)
    aliases: dict[str, str | None] = {}
    decision = None
    if promote:
        refused = learning.lookahead_refusal(measured.lookahead)
        if refused is not None:
            promoted, why = False, refused
        elif measured.champion_test is None:
            promoted, why = True, "no champion yet: the version becomes champion"
        else:
            promoted, why = governance.decide(
                strategy, measured.test, measured.champion_test, margin
            )
        decision = {"promoted": promoted, "reason": why}
        if promoted:
            aliases = promote_champion(version.name, version.version, digest)
        else:
            registry.set_alias(name, learning.CHALLENGER, version.version)
            aliases = {
                "champion": registry.get_alias(name, "champion"),
                "previous": registry.get_alias(name, "previous"),
                learning.CHALLENGER: version.version,
            }
    result: dict[str, Any] = {
        "model": name,
        "version": version.version,
        "run_id": version.run_id,
        "data_hash": digest,
        "rows": admitted.rows,
        "symbols": len(admitted.frames),
        "loader_rejections": admitted.rejected_rows(),
        "gate": report.to_dict(),
        "aliases": aliases,
    }
    if decision is not None:
        result["decision"] = decision
    if evaluation is not None:
        result["evaluation"] = evaluation
        evaluation["challenger"]["version"] = version.version
        evaluation["champion"]["version"] = champion_version
        result["decision_run"] = log_decision(
            registry.store,
            f"register-and-promote {name}",
            {"model": name, **evaluation, "decision": decision},
            tags={"model_name": name},
        )
    return result


@task(name="measure-candidate")
def measure_candidate(
    strategy: str,
    admitted: lifecycle.AdmittedBars,
    candidate: dict[str, Any],
    champion: tuple[str, dict[str, Any]] | None,
    margin: float,
) -> tuple[governance.Measured, dict[str, Any]]:
    """Measure ``candidate`` (and the champion) on the admitted bars as a retrain measures its
    challenger: the same engine, the same held-out window, the same look-ahead check."""
    return governance.bars_version_evidence(
        strategy, admitted.dataset, admitted.frames, candidate, champion, margin=margin,
        test_fraction=REGISTER_TEST_FRACTION,
    )  # fmt: skip


@flow(name="retrain", log_prints=False)
def retrain(
    strategy: str = "ma_crossover",
    csv: str | None = None,
    dataset: str | None = None,
    symbols: list[str] | None = None,
    margin: float | None = None,
    notify: bool = True,
    max_rejected_rows: int = 0,
    fast: bool = False,
) -> dict[str, Any]:
    """Validate, train a challenger, evaluate it and the champion on the same window, decide.

    Every type goes through :func:`pipelines.governance.govern` on its data set (``dataset``
    or its own; ``fast``: the small slices) with its family's objective and margin (default
    0.05 Sharpe, or 0.0005 of return). A single-asset bar type may train on a user's ``csv``
    instead, where ``symbols`` is exactly one symbol, the CSV's instrument; on the daily
    equities with no ``symbols`` it trains on :data:`pipelines.learning.DEFAULT_SYMBOLS`.
    Rows the loader cannot parse count against the gate: more than ``max_rejected_rows`` fail
    it. A failed gate records its report on a FAILED MLflow run and promotes nothing.
    Otherwise the challenger is registered (alias ``challenger``) and promoted only if it
    beats the champion by the margin on the held-out window; running cores are told.
    """
    name = model_name(strategy)
    try:
        spec = strategy_type(strategy).spec
        if csv and spec.data_kind is not DataKind.BARS:
            raise ConfigError(f"--csv holds single-asset bars; {strategy} trains on its data set")
        chosen = tuple(symbols or ())
        if (
            not chosen
            and not csv
            and spec.data_kind is DataKind.BARS
            and (dataset or spec.dataset) == learning.BARS_DATASET
        ):
            chosen = learning.DEFAULT_SYMBOLS  # 8 of the 88 tickers: minutes become seconds
        settings = governance.GovernSettings(
            strategy=strategy,
            dataset=dataset,
            symbols=chosen,
            csv=csv,
            fast=fast,
            margin=margin,
            tolerate={governance.LOADER_RULE: max_rejected_rows},
        )
        outcome = governance.govern(
            settings, StrategyRegistry(), notify=notify_core if notify else None
        )
    except Exception as exc:
        count_learning_event("retrain_failed", name)
        log.error(
            f"retrain of {name} failed: {type(exc).__name__}: {exc}"[:1000],
            extra={"event": "retrain_failed", "model": name,
                   "error": f"{type(exc).__name__}: {exc}"[:1000]},
        )  # fmt: skip
        raise
    decision = outcome["decision"]
    log.info(
        f"retrain of {name}: {'promoted' if decision['promoted'] else 'not promoted'}: "
        f"{decision['reason']}"[:1000],
        extra={"event": "retrain_finished", "model": name, "promoted": decision["promoted"],
               "reason": decision["reason"][:1000], "gate_success": outcome["gate"]["success"],
               "version": (outcome["challenger"] or {}).get("version"),
               "from_version": (outcome["champion"] or {}).get("version")},
    )  # fmt: skip
    return outcome


@flow(name="ml-composer", log_prints=False)
def ml_composer(
    symbols: list[str] | None = None,
    kinds: list[str] | None = None,
    register_models: bool = True,
    stack: bool = True,
    namespace: str | None = None,
) -> dict[str, Any]:
    """Train the direction models (XGBoost, scikit-learn) walk-forward and register each;
    fit the stacked model that weights the rule strategies' signals.

    Registered versions are not promoted here: ``retrain`` or an operator decides that. The
    stacking fit is recorded in MLflow and as the Redis context ``stacking`` (in
    ``namespace``), whose weights the adaptation flow moves the core's weights around when
    their out-of-sample evidence holds (:mod:`pipelines.proposals`).
    """
    from pipelines.ml_composer import ComposerConfig, run_ml_composer
    from pipelines.proposals import record_stacking
    from pipelines.stacking import StackingSettings, fit_stack

    config = ComposerConfig(symbols=tuple(symbols)) if symbols else ComposerConfig()
    chosen = tuple(kinds or ("xgboost", "sklearn"))
    report = run_ml_composer(config, kinds=chosen, register=register_models)  # type: ignore[arg-type]
    outcome: dict[str, Any] = {
        "data_hash": report.data_hash,
        "models": {
            kind: {
                "out_of_sample": trained.evaluation.metrics,
                "version": trained.version.version if trained.version else None,
            }
            for kind, trained in report.models.items()
        },
    }
    if stack:
        stacking = fit_stack(StackingSettings())
        outcome["stacking"] = stacking | {"context": record_stacking(stacking, namespace)}
    return outcome
