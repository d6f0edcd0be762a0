"""``retrain-all`` on real Dask clusters, a real MLflow store and a real Prefect server."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path
from typing import Any

import pytest

from pipelines.fanout import SCHEDULER_ENV, prepare_store, retrain_all
from registry import MlflowStore, StrategyRegistry
from strategy_engine.cli import main
from tests.fixtures_mlflow import PASSED

pytestmark = pytest.mark.integration
# Three types whose fast slices retrain in about a second each.
FAST_TYPES = ["fed_policy", "funding_rate", "global_liquidity"]
PER_RUN = ("seconds", "worker")


def test_two_dask_workers_register_and_decide_each_strategy_as_the_sequential_run(
    prefect_harness, mlflow_dir, tmp_path, monkeypatch
):
    # A new store: no tables yet, so the workers would race to create them but for
    # prepare_store.
    fanned = retrain_all(strategies=FAST_TYPES, fast=True, notify=False, workers=2)
    in_parallel = StrategyRegistry()
    monkeypatch.setenv("STRATEGY_ENGINE_MLFLOW_DIR", str(tmp_path / "sequential"))
    sequential = retrain_all(strategies=FAST_TYPES, fast=True, notify=False, sequential=True)
    one_by_one = StrategyRegistry()

    assert fanned["runner"] == {
        "kind": "dask",
        "scheduler": None,
        "workers": 2,
        "workers_used": fanned["runner"]["workers_used"],
    }
    assert len(fanned["runner"]["workers_used"]) == 2
    assert all(s["worker"].startswith("tcp://127.0.0.1:") for s in fanned["strategies"])
    assert [s["strategy"] for s in fanned["strategies"]] == FAST_TYPES
    assert fanned["totals"] | {"wall_seconds": 0, "task_seconds": 0} == {
        "promoted": 3, "kept": 0, "blocked": 0, "failed": 0, "strategies": 3,
        "wall_seconds": 0, "task_seconds": 0,
    }  # fmt: skip
    assert [_decided(s) for s in fanned["strategies"]] == [
        _decided(s) for s in sequential["strategies"]
    ]
    assert sequential["runner"]["workers_used"] == ["local"]
    for name in FAST_TYPES:  # registered, evaluated, promoted: the same version in both stores
        model = f"strategy.{name}"
        assert in_parallel.get_alias(model, "champion") == "1"
        assert _test_metrics(in_parallel, model) == _test_metrics(one_by_one, model)
        assert _test_metrics(in_parallel, model)  # the held-out evaluation was logged


def test_a_failing_strategy_is_recorded_and_the_others_complete(prefect_harness, registry, capsys):
    # One data set for both: the macro series serve global_liquidity, and funding_rate's
    # retrain raises on them.
    code = main(["retrain-all", "--strategy", "funding_rate", "--strategy", "global_liquidity",
                 "--dataset", "macro_fred_monetary", "--workers", "2", "--fast", "--no-notify",
                 "--json"])  # fmt: skip

    printed = capsys.readouterr()
    report = json.loads(printed.out)
    failed, done = report["strategies"]
    assert code == 1
    assert failed["strategy"] == "funding_rate"
    assert failed["status"] == "failed"
    assert failed["error"].startswith("DataError: ")
    assert "macro_fred_monetary" in failed["error"]
    assert registry.get_alias("strategy.funding_rate", "champion") is None
    assert f"strategy-engine retrain-all: funding_rate: {failed['error']}" in printed.err
    assert done["strategy"] == "global_liquidity"
    assert done["status"] == "promoted"
    assert registry.get_alias("strategy.global_liquidity", "champion") == "1"
    assert report["totals"]["failed"] == 1 and report["totals"]["promoted"] == 1


def test_the_scheduler_address_runs_the_tasks_on_an_existing_cluster(
    prefect_harness, mlflow_dir, monkeypatch
):
    from distributed import Client, LocalCluster

    # Started after the store is chosen: its workers inherit this test's environment.
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
            dashboard_address=None,
        ) as cluster,
        Client(cluster) as client,
    ):  # fmt: skip
        monkeypatch.setenv(SCHEDULER_ENV, cluster.scheduler_address)
        report = retrain_all(strategies=FAST_TYPES[:2], fast=True, notify=False)
        workers = set(client.scheduler_info()["workers"])

    assert report["runner"]["scheduler"] == cluster.scheduler_address
    assert set(report["runner"]["workers_used"]) <= workers
    assert [s["status"] for s in report["strategies"]] == ["promoted", "promoted"]
    registry = StrategyRegistry()
    assert [registry.get_alias(f"strategy.{n}", "champion") for n in FAST_TYPES[:2]] == ["1", "1"]


def test_two_processes_register_at_once_in_a_prepared_store(mlflow_dir):
    prepare_store()
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager:
        start = manager.Barrier(2)
        with context.Pool(2) as pool:
            errors = pool.starmap(
                _register_many,
                [(str(mlflow_dir), name, 8, start) for name in ("breakout", "momentum")],
            )

    assert errors == [[], []]
    registry = StrategyRegistry()
    for name in ("breakout", "momentum"):
        assert [str(v.version) for v in registry.versions(f"strategy.{name}")] == [
            str(n) for n in range(1, 9)
        ]


def _register_many(root: str, type_name: str, count: int, start: Any) -> list[str]:
    """Register ``count`` versions as fast as possible, once the other process is ready too."""
    from registry.runs import log_decision

    registry = StrategyRegistry(MlflowStore(Path(root)))
    errors = []
    start.wait()
    for _ in range(count):
        try:
            version = registry.register(type_name, {}, data_hash="e" * 64, validation=PASSED)
            registry.set_alias(version.name, "challenger", version.version)
            log_decision(
                registry.store,
                f"retrain {version.name}",
                {"n": 1},
                tags={"model_name": version.name},
            )
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
    return errors


def _decided(summary: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in summary.items() if k not in PER_RUN}


def _test_metrics(registry: StrategyRegistry, model: str) -> dict[str, float]:
    run_id = registry.model_version(model, "1").run_id
    metrics = registry.client.get_run(run_id).data.metrics
    return {k: v for k, v in metrics.items() if k.startswith("test_")}
