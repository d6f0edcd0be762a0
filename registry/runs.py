"""Log runs that are not model versions: backtests and core replays, with their plots."""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
from mlflow.entities import Metric, Param, RunStatus, RunTag

from core.reporting.plots import equity_figure, latency_figure
from registry.store import MlflowStore

BACKTEST_EXPERIMENT = "backtests"
LEARNING_EXPERIMENT = "learning"
CORE_EXPERIMENT = "core-runs"


def log_backtest(
    store: MlflowStore,
    run_name: str,
    *,
    params: dict[str, Any],
    summary: dict[str, Any],
    ts_ns: np.ndarray,
    equity: np.ndarray,
    tags: dict[str, str] | None = None,
) -> str:
    """Log one backtest: params, every numeric metric, the equity/drawdown plot and curve.

    Returns the run id.
    """
    client = store.client
    run = client.create_run(
        store.experiment_id(BACKTEST_EXPERIMENT), run_name=run_name, tags=tags or {}
    )
    run_id = run.info.run_id
    try:
        client.log_batch(
            run_id,
            metrics=_metrics(summary),
            params=[Param(k, str(v)[:500]) for k, v in sorted(params.items())],
            tags=[RunTag("kind", "backtest")],
        )
        client.log_figure(run_id, equity_figure(ts_ns, equity, title=run_name), "equity.png")
        client.log_dict(
            run_id,
            {"ts_ns": ts_ns.tolist(), "equity": equity.tolist()},
            "equity_curve.json",
        )
        client.set_terminated(run_id, RunStatus.to_string(RunStatus.FINISHED))
    except Exception:
        client.set_terminated(run_id, RunStatus.to_string(RunStatus.FAILED))
        raise
    return str(run_id)


def _metrics(summary: dict[str, Any]) -> list[Metric]:
    numbers = {
        k: float(v)
        for k, v in summary.items()
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(float(v))
    }
    now_ms = int(time.time() * 1000)
    return [Metric(k, v, now_ms, 0) for k, v in sorted(numbers.items())]


def log_gate_failure(
    store: MlflowStore, run_name: str, report: dict[str, Any], *, tags: dict[str, str]
) -> str:
    """Record a failed data gate as a FAILED run holding the full report as an artifact."""
    client = store.client
    run = client.create_run(
        store.experiment_id(LEARNING_EXPERIMENT),
        run_name=run_name,
        tags={**tags, "decision": "rejected", "validation_success": "false"},
    )
    run_id = str(run.info.run_id)
    client.log_dict(run_id, report, "validation.json")
    client.set_terminated(run_id, RunStatus.to_string(RunStatus.FAILED))
    return run_id


def log_decision(
    store: MlflowStore, run_name: str, decision: dict[str, Any], *, tags: dict[str, str]
) -> str:
    """Record a retrain's evaluation and decision (promoted or not, and why) as a run."""
    client = store.client
    run = client.create_run(store.experiment_id(LEARNING_EXPERIMENT), run_name=run_name, tags=tags)
    run_id = str(run.info.run_id)
    metrics = {
        f"{who}.{k}": v
        for who in ("challenger", "champion")
        for k, v in (decision.get(who) or {}).get("test", {}).items()
    }
    client.log_batch(run_id, metrics=_metrics(metrics))
    client.log_dict(run_id, decision, "decision.json")
    client.set_terminated(run_id, RunStatus.to_string(RunStatus.FINISHED))
    return run_id


def log_core_run(
    store: MlflowStore,
    run_name: str,
    *,
    summary: dict[str, Any],
    ts_ns: np.ndarray,
    equity: np.ndarray,
    tick_to_signal_ns: np.ndarray,
    in_process_ns: np.ndarray,
    tags: dict[str, str],
) -> str:
    """Log a core run: its numbers, equity and drawdown, and its latency histograms."""
    client = store.client
    run = client.create_run(store.experiment_id(CORE_EXPERIMENT), run_name=run_name, tags=tags)
    run_id = str(run.info.run_id)
    flat = {
        f"{group}.{k}": v
        for group in ("fast_cycle", "tactical_cycle", "tick_to_signal", "in_process")
        for k, v in (summary.get(group) or {}).items()
    }
    client.log_batch(run_id, metrics=_metrics({**summary, **flat}))
    client.log_figure(run_id, equity_figure(ts_ns, equity, title=run_name), "equity.png")
    for name, samples in (("tick_to_signal", tick_to_signal_ns), ("in_process", in_process_ns)):
        figure = latency_figure(samples / 1e3, title=f"{run_name}: {name.replace('_', ' ')}")
        client.log_figure(run_id, figure, f"latency_{name}.png")
    client.log_dict(run_id, summary, "summary.json")
    client.set_terminated(run_id, RunStatus.to_string(RunStatus.FINISHED))
    return run_id
