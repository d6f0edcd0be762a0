"""``strategy-engine retrain`` on a user's CSV, run as a user runs it: a separate process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from registry import MlflowStore, StrategyRegistry

pytestmark = pytest.mark.e2e
PRICES = Path(__file__).resolve().parents[2] / "data" / "equities_daily_stocknet88" / "prices"


def _retrain(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "STRATEGY_ENGINE_MLFLOW_DIR": str(tmp_path / "mlflow"),
        "STRATEGY_ENGINE_VAR_DIR": str(tmp_path / "var"),
    }
    for unset in ("REDIS_URL", "MLFLOW_TRACKING_URI", "PREFECT_API_URL"):
        env.pop(unset, None)
    (tmp_path / "mlflow").mkdir(exist_ok=True)
    return subprocess.run(
        [sys.executable, "-m", "strategy_engine.cli", "retrain", "--strategy", "ma_crossover",
         "--no-notify", *args],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def _registered(tmp_path: Path) -> list[dict[str, object]]:
    return StrategyRegistry(MlflowStore(tmp_path / "mlflow")).list_strategies()


def test_a_csv_with_a_negative_close_is_blocked_with_one_line_naming_the_gate(tmp_path: Path):
    lines = (PRICES / "AAPL.csv").read_text().splitlines()
    date, o, high, low, c, adj, v = lines[100].split(",")
    lines[100] = ",".join([date, o, high, low, f"-{c}", adj, v])
    csv = tmp_path / "bars.csv"
    csv.write_text("\n".join(lines) + "\n")

    done = _retrain(tmp_path, "--csv", str(csv), "--symbol", "AAPL")

    assert done.returncode == 1, done.stderr[-2000:]
    (refusal,) = [
        line for line in done.stderr.splitlines() if line.startswith("strategy-engine retrain:")
    ]
    assert refusal.startswith("strategy-engine retrain: data gate failed: gate 'bars:csv:AAPL'")
    assert "loader rejected rows <= 0: 1 row, first AAPL line 101" in refusal
    assert "gate: FAILED" in done.stdout
    assert _registered(tmp_path) == []


def test_a_csv_without_a_symbol_is_refused_before_anything_runs(tmp_path: Path):
    done = _retrain(tmp_path, "--csv", str(PRICES / "AAPL.csv"), "--json")

    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        "strategy-engine retrain: error: --csv needs exactly one --symbol naming the CSV's "
        "instrument, got 0"
    ]


def test_adopt_shadow_without_a_core_says_there_is_nothing_to_govern_in_one_json_document(
    tmp_path: Path,
):
    env = {
        **os.environ,
        "STRATEGY_ENGINE_MLFLOW_DIR": str(tmp_path / "mlflow"),
        "STRATEGY_ENGINE_VAR_DIR": str(tmp_path / "var"),
    }
    for unset in ("REDIS_URL", "MLFLOW_TRACKING_URI", "PREFECT_API_URL"):
        env.pop(unset, None)
    (tmp_path / "mlflow").mkdir()

    done = subprocess.run(
        [sys.executable, "-m", "strategy_engine.cli", "adopt-shadow", "--core", "core-9",
         "--no-notify", "--json"],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"skipped": "the core has published no status"}
    assert _registered(tmp_path) == []
