"""Retrain every strategy at once: one Prefect task per strategy, fanned out over a Dask cluster.

``retrain-all`` runs :func:`pipelines.flows.retrain` for each strategy, unchanged, as one task
each. By default the tasks run on a temporary local Dask cluster (``workers`` processes of one
thread); with a scheduler address (the ``scheduler_address`` parameter or
``$STRATEGY_ENGINE_DASK_SCHEDULER``) they run on that cluster instead, so more strategies means
more machines rather than a longer night. ``sequential`` runs them one after another in the
flow's own process, without Dask, for comparison.

The workers of an existing cluster must reach the same MLflow registry as the flow (same
``MLFLOW_TRACKING_URI``, or ``STRATEGY_ENGINE_MLFLOW_DIR`` on a shared disk) and the same
Prefect API: each task checks the registry before training and refuses to write anywhere else.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator
from typing import Any, Literal

from prefect import flow, task
from prefect.futures import PrefectFuture

from core.errors import ConfigError
from core.strategies.catalogue import strategy_type, strategy_types
from pipelines.flows import retrain
from registry.runs import LEARNING_EXPERIMENT
from registry.store import DEFAULT_EXPERIMENT, MlflowStore
from registry.strategy_registry import MODEL_PREFIX, StrategyRegistry, model_name

log = logging.getLogger(__name__)

SCHEDULER_ENV = "STRATEGY_ENGINE_DASK_SCHEDULER"
"""Address of an existing Dask scheduler (``tcp://host:8786``); unset: a local cluster."""

ALL = "all"
"""Strategy name standing for every catalogued type."""

Status = Literal["promoted", "kept", "blocked", "failed"]
STATUSES: tuple[Status, ...] = ("promoted", "kept", "blocked", "failed")
"""What happened to one strategy: its challenger became champion; the champion stayed (the
challenger did not beat it by the margin); the data gate refused the data, so nothing was
registered; or the retrain raised (the error line says why)."""


@task(name="retrain-strategy")
def retrain_strategy(
    strategy: str,
    tracking_uri: str,
    dataset: str | None = None,
    margin: float | None = None,
    notify: bool = True,
    max_rejected_rows: int = 0,
    fast: bool = False,
) -> dict[str, Any]:
    """Run the single-strategy retrain for ``strategy`` and summarise it; never raise.

    A failure is the summary's ``status: failed`` with its error line, so one strategy's
    failure leaves the others running.
    """
    started = time.perf_counter()
    worker = _worker_address()
    try:
        here = MlflowStore().tracking_uri
        if here != tracking_uri:
            raise ConfigError(
                f"this worker's MLflow registry is {here!r}, the flow's {tracking_uri!r}: start "
                "the Dask workers with the flow's MLFLOW_TRACKING_URI or STRATEGY_ENGINE_MLFLOW_DIR"
            )
        outcome = retrain.fn(
            strategy=strategy,
            dataset=dataset,
            margin=margin,
            notify=notify,
            max_rejected_rows=max_rejected_rows,
            fast=fast,
        )
    except Exception as exc:
        return _failed(strategy, _error_line(exc), time.perf_counter() - started, worker)
    return summarise(strategy, outcome, time.perf_counter() - started, worker)


@flow(name="retrain-strategies", log_prints=False)
def retrain_strategies(
    strategies: list[str], tracking_uri: str, options: dict[str, Any]
) -> list[dict[str, Any]]:
    """Submit one ``retrain-strategy`` task per strategy to this flow's task runner.

    The caller picks the runner (:func:`dask_task_runner`) with ``with_options``; a task that
    could not even report back (its worker died, say) is recorded as failed.
    """
    futures: list[PrefectFuture[dict[str, Any]]] = [
        retrain_strategy.submit(name, tracking_uri, **options) for name in strategies
    ]
    summaries = []
    for name, future in zip(strategies, futures, strict=True):
        try:
            summaries.append(future.result())
        except Exception as exc:
            summaries.append(_failed(name, _error_line(exc), None, None))
    return summaries


@flow(name="retrain-all", log_prints=False)
def retrain_all(
    strategies: list[str] | None = None,
    dataset: str | None = None,
    margin: float | None = None,
    notify: bool = True,
    max_rejected_rows: int = 0,
    fast: bool = False,
    workers: int = 2,
    scheduler_address: str | None = None,
    sequential: bool = False,
) -> dict[str, Any]:
    """Retrain every strategy in parallel on a Dask cluster and report each outcome.

    Parameters
    ----------
    strategies
        Catalogue types to retrain; ``None``: every strategy registered in MLflow, or every
        catalogued type when none is; ``["all"]``: every catalogued type.
    dataset, margin, notify, max_rejected_rows, fast
        As :func:`pipelines.flows.retrain`, for every strategy.
    workers
        Worker processes of the local cluster (one thread each); unused with a scheduler.
    scheduler_address
        An existing Dask scheduler; default ``$STRATEGY_ENGINE_DASK_SCHEDULER``, else a local
        cluster for this run.
    sequential
        Retrain one after another in this process, without Dask.

    Returns
    -------
    dict
        ``strategies`` (one summary each, in the order asked), ``totals`` (a count per status,
        the wall seconds and the sum of the strategies' own seconds) and ``runner``.
    """
    if workers < 1:
        raise ConfigError(f"workers must be >= 1, was {workers}")
    address = scheduler_address or os.environ.get(SCHEDULER_ENV) or None
    store = prepare_store()
    chosen, skipped = resolve_strategies(strategies, StrategyRegistry(store))
    options: dict[str, Any] = {
        "dataset": dataset,
        "margin": margin,
        "notify": notify,
        "max_rejected_rows": max_rejected_rows,
        "fast": fast,
    }
    started = time.perf_counter()
    runner: dict[str, Any]
    if sequential:
        runner = {"kind": "sequential"}
        summaries = [retrain_strategy(name, store.tracking_uri, **options) for name in chosen]
    else:
        runner = (
            {"kind": "dask", "scheduler": address}
            if address
            else {"kind": "dask", "scheduler": None, "workers": workers}
        )
        fan_out = retrain_strategies.with_options(task_runner=dask_task_runner(address, workers))
        with _api_for_workers():
            summaries = fan_out(chosen, store.tracking_uri, options)
    counts = totals(summaries, time.perf_counter() - started)
    report = {
        "strategies": summaries,
        "skipped": skipped,
        "totals": counts,
        "runner": {
            **runner,
            "workers_used": sorted({s["worker"] for s in summaries if s["worker"]}),
        },
    }
    log.info(
        f"retrain-all of {len(summaries)} strategies in {counts['wall_seconds']:.1f} s: "
        + ", ".join(f"{counts[status]} {status}" for status in STATUSES),
        extra={"event": "retrain_all_finished", **{s: counts[s] for s in STATUSES},
               "wall_seconds": counts["wall_seconds"]},
    )  # fmt: skip
    return report


def dask_task_runner(address: str | None, workers: int) -> Any:
    """The Dask task runner: on the scheduler at ``address``, or on a local cluster of
    ``workers`` single-threaded processes, bound to loopback, started for the run."""
    from prefect_dask import DaskTaskRunner

    if address:
        return DaskTaskRunner(address=address)
    return DaskTaskRunner(
        cluster_kwargs={
            "n_workers": workers,
            # One strategy per process: the retrains are CPU-bound Python, which threads would
            # serialise on the GIL, and a process per worker keeps their numpy pools apart.
            "threads_per_worker": 1,
            "processes": True,
            "host": "127.0.0.1",
            "dashboard_address": None,
        }
    )


@contextlib.contextmanager
def _api_for_workers() -> Iterator[None]:
    """Give the Dask workers this flow's Prefect API.

    The workers read the API from the settings the task runner sends with each task. With no
    ``PREFECT_API_URL`` the flow runs on an ephemeral server of its own, and a worker left
    without one would start another, on which its task run has no parent flow run: name the
    flow's server instead. (Workers of a cluster on other machines need a real server.)
    """
    from prefect.settings import PREFECT_API_URL, temporary_settings

    if PREFECT_API_URL.value():
        yield
        return
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer()  # the one this process runs on; started if it was not
    server.start()
    with temporary_settings(updates={PREFECT_API_URL: server.api_url}):
        yield


def prepare_store() -> MlflowStore:
    """Open the flow's MLflow store and create its tables and experiments, before fanning out.

    A new SQLite store creates its tables on first use. Two worker processes that open a new
    store at once both run the migrations and one fails ("table latest_metrics already exists",
    "Online migration expected to match one row"), and two that create the same experiment
    at once collide the same way. Doing both once here, before any task starts, leaves the
    workers only ordinary concurrent writes, which MLflow's SQLite sessions already wait out
    (each sets ``PRAGMA busy_timeout = 20000``): no "database is locked".
    """
    store = MlflowStore()
    for experiment in (DEFAULT_EXPERIMENT, LEARNING_EXPERIMENT):
        store.experiment_id(experiment)
    return store


def resolve_strategies(
    asked: list[str] | None, registry: StrategyRegistry
) -> tuple[list[str], list[str]]:
    """The catalogue types to retrain, in order without repeats, and the registered models
    skipped because the installed catalogue does not know their type.

    Raises
    ------
    ConfigError
        If a name asked for is not a catalogued type.
    """
    catalogue = [cls.spec.name for cls in strategy_types()]
    skipped: list[str] = []
    if asked is None:
        registered = sorted(model.name for model in registry.registered_models())
        types = [name.removeprefix(MODEL_PREFIX) for name in registered]
        chosen = [name for name in types if name in catalogue]
        skipped = [model_name(name) for name in types if name not in catalogue]
        return (chosen or catalogue), skipped
    if ALL in asked:
        return catalogue, skipped
    for name in asked:
        strategy_type(name)
    return list(dict.fromkeys(asked)), skipped


def summarise(
    strategy: str, outcome: dict[str, Any], seconds: float, worker: str | None
) -> dict[str, Any]:
    """One strategy's line of the report, from its retrain outcome."""
    decision = outcome["decision"]
    gate_success = bool(outcome["gate"]["success"])
    status: Status = (
        "blocked" if not gate_success else "promoted" if decision["promoted"] else "kept"
    )
    return {
        "strategy": strategy,
        "model": outcome["model"],
        "status": status,
        "decision": decision,
        "challenger_version": (outcome["challenger"] or {}).get("version"),
        "champion_version": (outcome["champion"] or {}).get("version"),
        "gate_success": gate_success,
        "seconds": round(seconds, 3),
        "worker": worker,
        "error": None,
    }


def totals(summaries: list[dict[str, Any]], wall_seconds: float) -> dict[str, Any]:
    """A count per status, the run's wall seconds and the sum of the strategies' seconds (what
    running them one after another would roughly take)."""
    counts: dict[str, Any] = {status: 0 for status in STATUSES}
    for summary in summaries:
        counts[summary["status"]] += 1
    counts["strategies"] = len(summaries)
    counts["wall_seconds"] = round(wall_seconds, 3)
    counts["task_seconds"] = round(sum(s["seconds"] or 0.0 for s in summaries), 3)
    return counts


def _failed(strategy: str, error: str, seconds: float | None, worker: str | None) -> dict[str, Any]:
    return {
        "strategy": strategy,
        "model": model_name(strategy),
        "status": "failed",
        "decision": None,
        "challenger_version": None,
        "champion_version": None,
        "gate_success": None,
        "seconds": None if seconds is None else round(seconds, 3),
        "worker": worker,
        "error": error,
    }


def _error_line(exc: BaseException) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())[:1000]


def _worker_address() -> str:
    """The Dask worker running this task, or ``local`` outside Dask (a sequential run)."""
    from distributed import get_worker

    try:
        return str(get_worker().address)
    except ValueError:
        return "local"
