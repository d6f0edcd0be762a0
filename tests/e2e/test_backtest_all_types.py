"""Every strategy type backtests from the command line, and ``report`` covers the catalogue.

One subprocess runs ``report --fast --json`` as a user would; the rest call the CLI's ``main``
in-process (same parser, same error handling) to keep the file fast.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from core.backtest.runner import RESULT_KEYS
from core.data.loaders import iter_merged_bars, read_bars_frame
from core.strategies.base import DataKind
from core.strategies.catalogue import build, strategy_types
from strategy_engine.cli import main

pytestmark = pytest.mark.e2e
DATA = Path(__file__).resolve().parents[2] / "data"
PRICES = DATA / "equities_daily_stocknet88" / "prices"
TYPES = {cls.spec.name: cls.spec.data_kind for cls in strategy_types()}


def _args_for(name: str) -> list[str]:
    """Bar types on one real CSV, pair types on two, the others on their data set's slice."""
    kind = TYPES[name]
    if kind is DataKind.BARS:
        return ["--csv", str(PRICES / "KO.csv")]
    if kind is DataKind.PAIR_BARS:
        return ["--csv", str(PRICES / "KO.csv"), "--csv-b", str(PRICES / "PEP.csv")]
    home = next(c.spec.dataset for c in strategy_types() if c.spec.name == name)
    return ["--dataset", home, "--fast"]


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("name", sorted(TYPES))
def test_every_type_backtests_with_the_contract_keys_identically_twice(name, capsys):
    args = ["backtest", "--strategy", name, *_args_for(name), "--json"]

    first, second = _run(capsys, *args), _run(capsys, *args)

    assert first[0] == 0, first[2]
    assert first[1] == second[1]
    result = json.loads(first[1])
    assert set(RESULT_KEYS) <= set(result)
    assert result["strategy"] == name
    assert result["bars"] > 0 and result["trades"] > 0
    assert isinstance(result["fill_model"], str) and result["fill_model"]
    assert math.isfinite(result["sharpe"]) and result["turnover"] >= 0


def test_report_fast_lists_every_catalogued_type_with_trades():
    done = subprocess.run(
        [sys.executable, "-m", "strategy_engine.cli", "report", "--fast", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    rows = {row["type"]: row for row in report["rows"]}
    assert set(rows) == set(TYPES)
    assert all("error" not in row and row["trades"] > 0 for row in rows.values()), rows
    assert "average capital" in report["turnover_definition"]


def test_pair_backtest_pnl_equals_a_leg_by_leg_cash_flow_at_next_opens(capsys):
    code, out, err = _run(
        capsys, "backtest", "--strategy", "pairs_trading", "--csv", str(PRICES / "KO.csv"),
        "--csv", str(PRICES / "PEP.csv"), "--json",
    )  # fmt: skip
    assert code == 0, err
    result = json.loads(out)

    # Independently: replay the strategy alone, then fill each leg at its next bar's open.
    bars = {s: read_bars_frame(PRICES / f"{s}.csv", s).frame for s in ("KO", "PEP")}
    strategy = build("pairs_trading", {}, "KO/PEP")
    wanted = {"KO": [], "PEP": []}  # (decision stamp, leg target)
    for bar in iter_merged_bars(bars):
        signal = strategy.update(bar)
        if signal is not None:
            hedge = signal.reason.get("hedge_ratio", 0.0)
            wanted["KO"].append((signal.ts_event, signal.target_position))
            wanted["PEP"].append((signal.ts_event, -signal.target_position * hedge))
    pnl, trades, final = 0.0, 0, {}
    for leg, decisions in wanted.items():
        frame, held = bars[leg], 0.0
        stamps = frame["ts_event"].to_numpy()
        for ts, target in decisions:
            after = stamps.searchsorted(ts, side="right")
            if after == len(frame) or target == held:
                continue
            pnl -= (target - held) * frame["open"].iloc[after]
            held, trades = target, trades + 1
        pnl += held * frame["close"].iloc[-1]
        final[leg] = held
    assert result["symbol"] == "KO/PEP"
    assert result["capital"] == pytest.approx(bars["KO"]["open"][0] + bars["PEP"]["open"][0])
    assert result["trades"] == trades > 0
    assert result["pnl"] == pytest.approx(pnl, rel=1e-9, abs=1e-9)
    assert result["final_position"] == pytest.approx(final)


def test_a_bar_type_on_a_data_set_runs_every_default_symbol(capsys):
    code, out, err = _run(
        capsys, "backtest", "--strategy", "ma_crossover", "--dataset",
        "equities_daily_stocknet88", "--fast", "--json",
    )  # fmt: skip

    assert code == 0, err
    result = json.loads(out)
    assert result["symbol"].split(",") == ["AAPL", "ABB", "ABBV"]
    assert result["capital"] == 3 * 10_000.0  # equal money per ticker in a basket
    assert "10,000 of notional per instance" in result["fill_model"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--strategy", "ma_crossover", "--dataset", "nope"), "unknown dataset 'nope'"),
        (("--strategy", "ma_crossover", "--csv", "no/such.csv"), "no such file"),
        (("--strategy", "adaptive_quote", "--csv", str(PRICES / "KO.csv")), "not bar CSVs"),
        (("--strategy", "cointegration", "--csv", str(PRICES / "KO.csv")), "needs --csv A.csv"),
        (("--strategy", "ma_crossover"), "give --csv PATH"),
        (("--strategy", "funding_rate", "--dataset", "equities_daily_stocknet88"), "not on"),
    ],
)
def test_bad_input_gives_a_one_line_error_without_a_traceback(args, message, capsys):
    code, out, err = _run(capsys, "backtest", *args, "--json")

    assert code != 0
    assert out == ""
    assert len(err.strip().splitlines()) == 1
    assert message in err
    assert "Traceback" not in err
