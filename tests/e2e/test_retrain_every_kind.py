"""``strategy-engine retrain`` for types of every data kind, as a user runs it: on the shipped
data set it registers and promotes; on a copy with one corrupted row the kind's gate blocks it,
the command exits 1 with one line naming the gate, and nothing is registered."""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from registry import MlflowStore, StrategyRegistry

pytestmark = pytest.mark.e2e
DATA = Path(__file__).resolve().parents[2] / "data"


def _retrain(tmp_path: Path, data: Path, strategy: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "STRATEGY_ENGINE_MLFLOW_DIR": str(tmp_path / "mlflow"),
        "STRATEGY_ENGINE_VAR_DIR": str(tmp_path / "var"),
        "STRATEGY_ENGINE_DATA": str(data),
    }
    for unset in ("REDIS_URL", "MLFLOW_TRACKING_URI", "PREFECT_API_URL"):
        env.pop(unset, None)
    (tmp_path / "mlflow").mkdir(exist_ok=True)
    return subprocess.run(
        [sys.executable, "-m", "strategy_engine.cli", "retrain", "--strategy", strategy,
         "--fast", "--no-notify", "--json"],
        env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip


def _registered(tmp_path: Path) -> list[dict[str, object]]:
    return StrategyRegistry(MlflowStore(tmp_path / "mlflow")).list_strategies()


def _data_with_copy_of(tmp_path: Path, dataset: str) -> Path:
    """A data folder where ``dataset`` is a private copy and every other set the real one."""
    root = tmp_path / "data"
    root.mkdir()
    for entry in DATA.iterdir():
        if entry.name == dataset:
            shutil.copytree(entry, root / entry.name)
        else:
            (root / entry.name).symlink_to(entry)
    return root / dataset


def _edit_csv(path: Path, row: int, column: str, value: str) -> None:
    """Set ``column`` of data row ``row`` (0 = the first after the header), gzip or not."""
    opener: Callable[..., io.TextIOWrapper] = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", newline="") as handle:
        rows = list(csv.reader(handle))
    rows[1 + row][rows[0].index(column)] = value
    with opener(path, "wt", newline="") as handle:
        csv.writer(handle).writerows(rows)


# (strategy, its data set, the file and the corruption, the gate rule that must fail)
CORRUPTIONS = [
    ("pairs_trading", "etf_daily_pyalgotrade", ("GLD.csv", 3, "Close", "-53.3")),
    ("latency", "crypto_l2_binance_hftbacktest",
     ("derived/bbo.csv.gz", 2, "bid_px", "not a price")),
    ("adaptive_quote", "crypto_l2_binance_hftbacktest",
     ("derived/trades.csv.gz", 2, "price", "not a price")),
    ("funding_rate", "funding_rates_btc_eth_supervik",
     ("derived/funding_rates_utc.csv.gz", 1, "funding_rate", "5.0")),
    ("triangular", "fx_triangle_daily_lean", ("fxcm/EURUSD_daily.csv", 1, "bid_close", "-1.3")),
    ("sentiment_analysis", "tweets_timestamped_stocknet",
     ("tweets_KO_PEP_XOM_CVX_JPM_BAC.csv.gz", 0, "created_at_utc", "not a time")),
    ("fed_policy", "macro_fred_monetary", ("FEDFUNDS.csv", 2, "FEDFUNDS", "n/a")),
]  # fmt: skip


@pytest.mark.parametrize(
    ("strategy", "dataset", "corruption"), CORRUPTIONS, ids=[c[0] for c in CORRUPTIONS]
)
def test_a_corrupted_copy_of_each_data_kind_is_blocked_by_its_gate(
    tmp_path: Path, strategy: str, dataset: str, corruption: tuple[str, int, str, str]
):
    folder = _data_with_copy_of(tmp_path, dataset)
    file, row, column, value = corruption
    _edit_csv(folder / file, row, column, value)

    done = _retrain(tmp_path, folder.parent, strategy)

    assert done.returncode == 1, done.stderr[-3000:]
    (refusal,) = [
        line for line in done.stderr.splitlines() if line.startswith("strategy-engine retrain:")
    ]
    assert "gate" in refusal and "failed" in refusal
    outcome = json.loads(done.stdout)
    assert not outcome["gate"]["success"] and outcome["gate"]["failed"]
    assert outcome["challenger"] is None and not outcome["decision"]["promoted"]
    assert _registered(tmp_path) == []


def test_a_quote_type_retrains_and_is_promoted_on_its_shipped_data(tmp_path: Path):
    done = _retrain(tmp_path, DATA, "latency")

    assert done.returncode == 0, done.stderr[-3000:]
    outcome = json.loads(done.stdout)
    assert outcome["gate"]["success"] and outcome["decision"]["promoted"]
    assert outcome["objective"] == "net return"
    assert [row["name"] for row in _registered(tmp_path)] == ["strategy.latency"]
