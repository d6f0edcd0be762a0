"""The demo path as a user runs it: a separate process, embedded services, real data.

``make demo`` is the real loop: the champion gated, registered and promoted; the long-running
core consuming a replay through its Redis Stream feed; a retrain whose decision is recorded in
MLflow and, when it promotes, reloaded by the core, which goes on consuming. Its outcomes are
checked against what they must be: the core's signals and fills against a backtest of the same
champion over the same bars, the reload against the core's published status, the decision
against MLflow's record of it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from core.adapters.redis_server import connect
from core.adapters.redis_store import RedisStore
from core.data.feeds import replay_events
from core.engine.engine import TradingEngine
from core.risk import RiskManager
from core.runtime.service import CoreSettings

pytestmark = pytest.mark.e2e
DATASET = "equities_daily_stocknet88"
MODEL = "strategy.ma_crossover"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One `strategy-engine demo --json` in its own MLflow store and run-time folder."""
    root = tmp_path_factory.mktemp("demo")
    env = {
        **os.environ,
        "STRATEGY_ENGINE_MLFLOW_DIR": str(root / "mlflow"),
        "STRATEGY_ENGINE_VAR_DIR": str(root / "var"),
    }
    for name in (
        "REDIS_URL",
        "MLFLOW_TRACKING_URI",
        "PREFECT_API_URL",
        "STRATEGY_ENGINE_NAMESPACE",
    ):
        env.pop(name, None)
    (root / "mlflow").mkdir()
    done = subprocess.run(
        [sys.executable, "-m", "strategy_engine.cli", "demo", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return {"root": root, "env": env, "report": json.loads(done.stdout.splitlines()[-1])}


def test_the_champion_passes_the_gate_and_is_promoted(demo: dict[str, Any]):
    life, replay = demo["report"]["lifecycle"], demo["report"]["replay"]
    assert life["gate"]["success"] is True
    assert life["gate"]["rows"] == replay["events"] == replay["first_part"] + replay["rest"]
    assert life["version"] == "1"
    assert life["aliases"]["champion"] == "1"
    assert life["decision"]["promoted"] is True
    assert len(replay["symbols"]) == 8


def test_the_core_writes_the_backtest_of_its_champion_until_the_retrain(demo: dict[str, Any]):
    """Before the retrain the core ran version 1 alone: its signals and fills in Redis are those
    of a backtest of version 1 (same engine, venue, sizing and risk limits) over the same bars.
    After a promotion the core ran the new version; without one, version 1 to the end."""
    from registry import MlflowStore, MlflowStrategySource, StrategyRegistry

    report, root = demo["report"], demo["root"]
    core, replay = report["core"], report["replay"]
    registry = StrategyRegistry(MlflowStore(root / "mlflow"))
    champion = replace(MlflowStrategySource(registry).load_version(MODEL, "1"), alias="champion")
    settings = CoreSettings(capital=core["capital"], notional=10_000.0, fee_bps=1.0)
    backtest = TradingEngine(
        [champion],
        venue=settings.venue(),
        initial_capital=settings.capital,
        sizing=settings.sizing(),
        risk=RiskManager(settings.risk_limits()),
        keep_history=True,
    )
    backtest.run(replay_events(DATASET, replay["symbols"]))
    with connect(data_dir=root / "var" / "redis") as connection:
        store = RedisStore(connection.client, namespace="demo")
        signals, fills = store.read_signals(), store.read_fills()
        positions = store.load_positions()
        status = store.load_report("status:core-1")
    assert status is not None

    split = replay["split_ns"]
    assert core["events"] == replay["events"] and core["events_rejected"] == 0
    assert [s for s in signals if s.ts_event < split] == [
        s for s in backtest.all_signals if s.ts_event < split
    ]
    assert [f for f in fills if f.ts_event < split] == [
        f for f in backtest.all_fills if f.ts_event < split
    ]
    assert core["fills_before_retrain"] == sum(f.ts_event < split for f in fills) > 0
    assert (len(signals), len(fills)) == (core["signals"], core["fills"])
    assert sum(row["trades"] for row in core["per_symbol"]) == len(fills)
    assert {p.symbol: p.quantity for p in positions.values()} == {
        row["symbol"]: row["position"] for row in core["per_symbol"] if row["symbol"] in positions
    }
    assert core["total_return"] == pytest.approx(core["pnl"] / core["capital"])
    assert status["state"] == "stopped" and status["events_in"] == replay["events"]
    assert [{k: d[k] for k in ("name", "version", "alias")} for d in status["active_set"]] == core[
        "active_set"
    ]

    late = [s for s in signals if s.ts_event >= split]
    assert late and core["fills_after_retrain"] == len(fills) - core["fills_before_retrain"] > 0
    if report["reload"]["promoted"]:
        new = report["retrain"]["challenger"]["version"]
        assert {s.lineage.model_version for s in late} == {new}
        assert core["signals_by_version"] == {"1": len(signals) - len(late), new: len(late)}
    else:  # version 1 ran to the end: the whole replay is its backtest
        assert signals == backtest.all_signals
        assert fills == backtest.all_fills


def test_the_retrain_decision_is_recorded_in_mlflow(demo: dict[str, Any]):
    from mlflow.artifacts import load_dict

    from registry import MlflowStore, StrategyRegistry

    retrain, root = demo["report"]["retrain"], demo["root"]
    store = MlflowStore(root / "mlflow")
    registry = StrategyRegistry(store)
    challenger = retrain["challenger"]["version"]
    assert retrain["gate"]["success"] is True
    assert retrain["champion"]["version"] == "1"
    assert challenger == "2"
    assert registry.get_alias(MODEL, "challenger") == challenger
    run = store.client.get_run(retrain["decision_run"])
    assert run.info.status == "FINISHED"
    recorded = load_dict(f"{run.info.artifact_uri}/decision.json")
    assert recorded["decision"] == retrain["decision"]
    assert recorded["challenger"]["version"] == challenger
    lead = retrain["challenger"]["test"]["sharpe"] - retrain["champion"]["test"]["sharpe"]
    assert retrain["decision"]["promoted"] is (lead > 0.05)
    expected = challenger if retrain["decision"]["promoted"] else "1"
    assert registry.get_alias(MODEL, "champion") == expected


def test_a_promotion_is_reloaded_by_the_running_core(demo: dict[str, Any]):
    report = demo["report"]
    reload, core = report["reload"], report["core"]
    assert core["deployments"] == [{"name": MODEL, "version": "1", "alias": "champion"}]
    if not report["retrain"]["decision"]["promoted"]:
        assert reload["seen_in_status"] is False and core["reloads"] == 0
        assert core["active_set"] == core["deployments"]
        return
    new = report["retrain"]["challenger"]["version"]
    assert reload["seen_in_status"] is True
    assert (reload["from_version"], reload["to_version"]) == ("1", new)
    assert reload["active_set"] == [{"name": MODEL, "version": new, "alias": "champion"}]
    assert reload["status_reloads"] == core["reloads"] == 1
    assert core["active_set"] == reload["active_set"]
    with connect(data_dir=demo["root"] / "var" / "redis") as connection:
        audit = RedisStore(connection.client, namespace="demo").read_control_audit()
    assert [(a["action"], a["outcome"]) for a in audit] == [("reload", "reload requested")]


def test_the_core_run_and_the_redis_data_are_where_the_report_says(demo: dict[str, Any]):
    report, root, env = demo["report"], demo["root"], demo["env"]
    core, where = report["core"], report["where"]
    plots = list((root / "mlflow" / "artifacts").rglob("equity.png"))
    assert [p.parent.parent.name for p in plots] == [core["mlflow_run"]]
    assert Path(where["core_log"]) == root / "var" / "log" / "demo-core.log"
    events = [
        json.loads(line)["event"] for line in Path(where["core_log"]).read_text().splitlines()
    ]
    assert events[0] == "core_started" and events[-1] == "core_stopped"
    assert ("reload_kept" in events) is report["reload"]["promoted"]

    assert where["redis"].startswith("embedded redis-server")  # where the demo wrote
    assert where["redis_keys"].startswith("demo:signals")
    # The embedded server is gone once the demo ends: the report names the saved files and
    # a command that shows them, which works now that the demo has ended.
    assert where["redis_after_demo"].startswith(f"saved in {root / 'var' / 'redis'} ")
    command = where["redis_inspect"].split()
    assert command[1:] == ["-m", "strategy_engine.demo"]
    shown = subprocess.run(
        [sys.executable, "-m", "strategy_engine.demo", "--json"],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr[-2000:]
    found = json.loads(shown.stdout)
    assert found["keys"]["demo:signals"] == {"type": "stream", "size": core["signals"]}
    assert found["keys"]["demo:fills"] == {"type": "stream", "size": core["fills"]}
    # The feed the core consumed: every bar and the end marker.
    feed = found["keys"][f"demo:md:{DATASET}"]
    assert feed == {"type": "stream", "size": report["replay"]["events"] + 1}
    assert found["report"]["signals"] == core["signals"]
    assert found["report"]["decision"] == report["retrain"]["decision"]
    assert len(found["fills"]) == min(3, core["fills"])
