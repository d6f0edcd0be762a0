"""Prefect flows of the learning tier. Thin: each task wraps one lifecycle step."""

from __future__ import annotations

from typing import Any

from prefect import flow, task

from core.errors import ValidationGateFailed
from pipelines import lifecycle
from pipelines.validation import GateReport
from registry.strategy_registry import RegisteredVersion, StrategyRegistry, model_name


@task(name="admit-bars")
def admit_bars(dataset: str, symbols: list[str] | None) -> lifecycle.AdmittedBars:
    return lifecycle.admit_bars(dataset, symbols)


@task(name="validate-bars")
def validate_bars(admitted: lifecycle.AdmittedBars) -> GateReport:
    return lifecycle.gate_bars(admitted)


@task(name="hash-data")
def hash_data(admitted: lifecycle.AdmittedBars) -> str:
    return lifecycle.data_hash(admitted)


@task(name="register-strategy", retries=2, retry_delay_seconds=1)
def register_strategy(
    type_name: str, config: dict[str, Any], data_hash: str, report: GateReport
) -> RegisteredVersion:
    return lifecycle.register_strategy(
        StrategyRegistry(), type_name, config, data_hash=data_hash, report=report
    )


@task(name="promote-champion", retries=2, retry_delay_seconds=1)
def promote_champion(name: str, version: str) -> dict[str, str | None]:
    return lifecycle.promote_champion(StrategyRegistry(), name, version)


@flow(name="register-and-promote", log_prints=False)
def register_and_promote(
    strategy: str = "ma_crossover",
    config: dict[str, Any] | None = None,
    dataset: str = "equities_daily_stocknet88",
    symbols: list[str] | None = None,
    promote: bool = True,
) -> dict[str, Any]:
    """Validate the data with the bars gate, register the strategy version, promote it.

    A failed gate raises :class:`core.errors.ValidationGateFailed` before anything is
    registered, so the champion stays as it was.
    """
    admitted = admit_bars(dataset, symbols)
    report = validate_bars(admitted)
    if not report.success:
        raise ValidationGateFailed(report.message(), report=report.to_dict())
    digest = hash_data(admitted)
    version = register_strategy(strategy, config or {}, digest, report)
    aliases = promote_champion(version.name, version.version) if promote else {}
    return {
        "model": model_name(strategy),
        "version": version.version,
        "run_id": version.run_id,
        "data_hash": digest,
        "rows": admitted.rows,
        "symbols": len(admitted.frames),
        "loader_rejections": [
            {"symbol": s, "line": r.line, "reason": r.reason} for s, r in admitted.rejected
        ],
        "gate": report.to_dict(),
        "aliases": aliases,
    }
