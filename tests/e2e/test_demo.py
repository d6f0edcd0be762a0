"""The demo path as a user runs it: a separate process, embedded services, real data."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.adapters.redis_server import connect
from core.adapters.redis_store import RedisStore
from core.data.datasets import bars_path, get_dataset
from core.data.loaders import read_bars_frame

pytestmark = pytest.mark.e2e
DATASET = "equities_daily_stocknet88"


def test_demo_runs_the_lifecycle_and_writes_signals_and_fills_to_redis(tmp_path: Path):
    env = {
        **os.environ,
        "STRATEGY_ENGINE_MLFLOW_DIR": str(tmp_path / "mlflow"),
        "STRATEGY_ENGINE_VAR_DIR": str(tmp_path / "var"),
    }
    env.pop("REDIS_URL", None)
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("PREFECT_API_URL", None)
    (tmp_path / "mlflow").mkdir()

    done = subprocess.run(
        [sys.executable, "-m", "strategy_engine.cli", "demo", "--symbols", "4", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.splitlines()[-1])
    core = report["core"]
    assert report["lifecycle"]["gate"]["success"] is True
    assert report["lifecycle"]["aliases"]["champion"] == "1"
    assert core["deployments"] == [
        {"name": "strategy.ma_crossover", "version": "1", "alias": "champion"}
    ]
    tickers = get_dataset("equities_daily_stocknet88").symbols()[:4]
    assert core["events"] == sum(len(read_bars_frame(bars_path(DATASET, t)).frame) for t in tickers)
    assert core["signals"] > 0 and core["fills"] > 0
    assert sum(row["trades"] for row in core["per_symbol"]) == core["fills"]
    plots = list((tmp_path / "mlflow" / "artifacts").rglob("equity.png"))
    assert [p.parent.parent.name for p in plots] == [core["mlflow_run"]]

    where = report["where"]
    assert where["redis"].startswith("embedded redis-server")  # where the demo wrote
    assert where["redis_keys"].startswith("demo:signals")
    # The embedded server is gone once the demo ends: the report names the saved files and
    # a command that shows them, which works now that the demo has ended.
    assert where["redis_after_demo"].startswith(f"saved in {tmp_path / 'var' / 'redis'} ")
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
    assert found["report"]["signals"] == core["signals"]
    assert len(found["fills"]) == min(3, core["fills"])

    with connect(data_dir=tmp_path / "var" / "redis") as connection:
        store = RedisStore(connection.client, namespace="demo")
        signals = store.read_signals()
        fills = store.read_fills()
        positions = store.load_positions()
    assert len(signals) == core["signals"]
    assert len(fills) == core["fills"]
    assert {s.lineage.model_version for s in signals} == {"1"}
    assert {p.symbol: p.quantity for p in positions.values()} == {
        row["symbol"]: row["position"] for row in core["per_symbol"]
    }
