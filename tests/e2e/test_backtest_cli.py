"""The ``backtest`` and ``strategies`` contracts, run as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

pytestmark = pytest.mark.e2e
DATA = Path(__file__).resolve().parents[2] / "data" / "equities_daily_stocknet88" / "prices"


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "strategy_engine.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_backtest_prints_the_contract_keys_and_is_byte_identical_across_runs():
    args = ("backtest", "--strategy", "ma_crossover", "--csv", str(DATA / "KO.csv"),
            "--param", "fast=10", "--param", "slow=30", "--fee-bps", "2", "--json")  # fmt: skip

    first, second = _cli(*args), _cli(*args)

    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout
    result = json.loads(first.stdout)
    for key in ("strategy", "bars", "trades", "pnl", "total_return", "sharpe", "max_drawdown",
                "final_position"):  # fmt: skip
        assert key in result
    assert result["bars"] == 1258
    assert result["params"]["fast_period"] == 10


def test_backtest_pnl_matches_a_hand_computed_crossover_on_a_date_formatted_csv(tmp_path):
    frame = pd.read_csv(DATA / "XOM.csv")
    frame["Date"] = pd.to_datetime(frame["Date"]).dt.strftime("%-m/%-d/%Y")  # M/D/YYYY
    csv = tmp_path / "XOM.csv"
    frame.to_csv(csv, index=False)

    result = json.loads(_cli("backtest", "--strategy", "ma_crossover", "--csv", str(csv),
                             "--param", "fast=5", "--param", "slow=20", "--allow-short",
                             "--json").stdout)  # fmt: skip

    close = frame["Close"]
    target = (close.rolling(5).mean() > close.rolling(20).mean()).map({True: 1.0, False: -1.0})
    held = target.where(close.rolling(20).mean().notna()).shift(1).fillna(0.0)
    traded = held.diff().fillna(held.iloc[0])
    pnl = -(traded * frame["Open"]).sum() + held.iloc[-1] * close.iloc[-1]
    assert result["pnl"] == pytest.approx(pnl, rel=1e-9)
    assert result["trades"] == int((traded != 0).sum())
    assert result["final_position"] == held.iloc[-1]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--csv", "no/such.csv"), "no such file"),
        (("--csv", "{bad_header}"), "missing column 'Close'"),
        (("--csv", "{bad_dates}"), "unparsable date"),
        (("--csv", "{ok}", "--param", "fast=40"), "fast_period must be < slow_period"),
        (("--csv", "{ok}", "--param", "fast"), "--param must look like name=value"),
    ],
)
def test_bad_input_gives_a_one_line_error_and_a_non_zero_exit(tmp_path, args, message):
    (tmp_path / "bad_header.csv").write_text("Date,Open,High,Low,Volume\n2012-01-03,1,2,0.5,10\n")
    (tmp_path / "bad_dates.csv").write_text(
        "Date,Open,High,Low,Close,Volume\nyesterday,1,2,0.5,1.5,10\n"
    )
    paths = {
        "bad_header": tmp_path / "bad_header.csv",
        "bad_dates": tmp_path / "bad_dates.csv",
        "ok": DATA / "KO.csv",
    }
    resolved = [a.format(**paths) for a in args]

    done = _cli("backtest", "--strategy", "ma_crossover", *resolved, "--json")

    assert done.returncode != 0
    assert done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def test_strategies_lists_types_with_family_tier_and_parameter_schema():
    done = _cli("strategies", "--json")

    listed = {s["name"]: s for s in json.loads(done.stdout)}
    assert listed["ma_crossover"]["family"] == "trend_following"
    assert listed["ma_crossover"]["tier"] == "tactical"
    assert listed["ma_crossover"]["defaults"]["slow_period"] == 30
    assert set(listed["ma_crossover"]["parameters"]["properties"]) >= {"fast_period", "slow_period"}
