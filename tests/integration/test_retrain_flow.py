"""The Learning Manager's retrain flow on real data, with a real Prefect server and MLflow store."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import numpy as np
import pytest

from core.data.datasets import load_bars
from core.errors import ConfigError
from core.messages import RetrainOutcome
from pipelines.flows import retrain
from registry import StrategyRegistry
from strategy_engine.cli import main

pytestmark = pytest.mark.integration
PRICES = Path(__file__).resolve().parents[2] / "data" / "equities_daily_stocknet88" / "prices"
SYMBOLS = ["AAPL", "KO", "XOM"]
NAME = "strategy.ma_crossover"


def test_first_retrain_promotes_then_a_rerun_decides_on_the_same_test_window(
    prefect_harness, mlflow_dir
):
    first = retrain(strategy="ma_crossover", symbols=SYMBOLS, notify=False)
    second = retrain(strategy="ma_crossover", symbols=SYMBOLS, notify=False, margin=0.05)

    registry = StrategyRegistry()
    for outcome in (first, second):  # the result and decision.json follow the contract
        assert _holds(msgspec.to_builtins(msgspec.convert(outcome, RetrainOutcome)), outcome)
        assert outcome["gate"]["rows_rejected"] == 0
        assert outcome["gate"]["rows"] == 3 * 1258
    assert first["decision"] == {
        "promoted": True,
        "reason": "no champion yet: the challenger becomes champion",
        "failed_gate": None,
    }
    assert second["champion"]["version"] == first["challenger"]["version"]
    # Champion and challenger are scored on one held-out window (its start depends only on
    # the data).
    assert second["windows"]["test_start_ns"] == first["windows"]["test_start_ns"]
    lead = second["challenger"]["test"]["sharpe"] - second["champion"]["test"]["sharpe"]
    assert second["decision"]["promoted"] is (lead > 0.05)
    champion = registry.get_alias(NAME, "champion")
    expected = second["challenger"]["version"] if lead > 0.05 else first["challenger"]["version"]
    assert champion == expected
    assert registry.get_alias(NAME, "challenger") == second["challenger"]["version"]


def test_the_challenger_is_chosen_before_the_held_out_window_that_both_are_scored_on(
    prefect_harness, mlflow_dir
):
    outcome = retrain(strategy="ma_crossover", symbols=SYMBOLS, notify=False)

    # The held-out window is the last 30 % of the data's dates; training is everything before.
    loaded = load_bars("equities_daily_stocknet88", SYMBOLS)
    dates = np.unique(np.concatenate([r.frame["ts_event"].to_numpy() for r in loaded.values()]))
    windows = outcome["windows"]
    assert windows["test_start_ns"] == dates[int(len(dates) * 0.7)]
    assert windows["train_end_ns"] == windows["test_start_ns"]
    candidates = outcome["candidates"]
    assert len(candidates) > 3
    best = max(candidates, key=lambda row: row["train"]["objective"])
    assert outcome["challenger"]["config"] == best["config"]
    assert outcome["objective"] == "sharpe"
    assert outcome["challenger"]["test"]["objective"] == outcome["challenger"]["test"]["sharpe"]


def test_a_csv_that_fails_the_gate_records_the_report_and_promotes_nothing(
    prefect_harness, mlflow_dir, tmp_path, capsys
):
    lines = (PRICES / "KO.csv").read_text().splitlines()
    date, o, _high, low, c, adj, v = lines[200].split(",")
    lines[200] = ",".join([date, o, str(float(c) - 1.0), low, c, adj, v])  # high below close
    csv = tmp_path / "KO.csv"
    csv.write_text("\n".join(lines) + "\n")

    code = main(["retrain", "--strategy", "ma_crossover", "--csv", str(csv), "--symbol", "KO",
                 "--no-notify", "--json"])  # fmt: skip

    printed = capsys.readouterr()
    outcome = json.loads(printed.out)
    assert code == 1
    assert _refusals(printed.err) == [f"strategy-engine retrain: {outcome['decision']['reason']}"]
    assert msgspec.convert(outcome, RetrainOutcome).challenger is None
    assert outcome["decision"]["promoted"] is False
    assert outcome["decision"]["failed_gate"] == "bars:csv:KO"
    assert "gate 'bars:csv:KO'" in outcome["decision"]["reason"]
    assert "high >= max(open, close): 1 row" in outcome["decision"]["reason"]
    assert outcome["gate"]["failed"] == [
        {"expectation": "high >= max(open, close)", "unexpected_count": 1}
    ]
    registry = StrategyRegistry()
    assert registry.list_strategies() == []
    run = registry.client.get_run(outcome["gate"]["run_id"])
    assert run.info.status == "FAILED"
    report = registry.client.download_artifacts(run.info.run_id, "validation.json", str(tmp_path))
    assert json.loads(Path(report).read_text())["success"] is False


def _negative_close_copy(tmp_path: Path, line: int = 100) -> Path:
    """AAPL's real bars with one close made negative: a row the loader cannot use."""
    lines = (PRICES / "AAPL.csv").read_text().splitlines()
    date, o, high, low, c, adj, v = lines[line].split(",")
    lines[line] = ",".join([date, o, high, low, f"-{c}", adj, v])
    csv = tmp_path / "bars.csv"
    csv.write_text("\n".join(lines) + "\n")
    return csv


def test_a_row_the_loader_rejects_fails_the_gate_and_the_command(
    prefect_harness, mlflow_dir, tmp_path, capsys
):
    csv = _negative_close_copy(tmp_path)

    code = main(["retrain", "--strategy", "ma_crossover", "--csv", str(csv), "--symbol", "AAPL",
                 "--no-notify", "--json"])  # fmt: skip

    printed = capsys.readouterr()
    outcome = json.loads(printed.out)
    assert code == 1
    (line,) = _refusals(printed.err)
    assert line.startswith("strategy-engine retrain: data gate failed: gate 'bars:csv:AAPL'")
    assert "loader rejected rows <= 0: 1 row, first AAPL line 101: negative close" in line
    assert outcome["decision"]["promoted"] is False
    assert outcome["decision"]["failed_gate"] == "bars:csv:AAPL"
    assert outcome["gate"]["failed"] == [
        {"expectation": "loader rejected rows <= 0", "unexpected_count": 1}
    ]
    assert outcome["gate"]["rows"] == 1257
    assert outcome["gate"]["rows_rejected"] == 1
    (rejected,) = outcome["gate"]["rejected_rows"]
    assert (rejected["symbol"], rejected["line"]) == ("AAPL", 101)
    assert rejected["reason"].startswith("negative close")
    assert StrategyRegistry().list_strategies() == []


def test_allowed_rejected_rows_let_the_retrain_through_and_are_reported(
    prefect_harness, mlflow_dir, tmp_path, capsys
):
    csv = _negative_close_copy(tmp_path)

    code = main(["retrain", "--strategy", "ma_crossover", "--csv", str(csv), "--symbol", "AAPL",
                 "--max-rejected-rows", "1", "--no-notify", "--json"])  # fmt: skip

    outcome = json.loads(capsys.readouterr().out)
    assert code == 0
    assert outcome["gate"]["success"] is True
    assert (outcome["gate"]["rows"], outcome["gate"]["rows_rejected"]) == (1257, 1)
    assert outcome["gate"]["max_rejected_rows"] == 1
    assert outcome["gate"]["rejected_rows"][0]["line"] == 101
    assert outcome["symbols"] == ["AAPL"]
    assert outcome["decision"]["promoted"] is True
    # The version trades the instrument named on the command line, not the file's name.
    version = outcome["challenger"]["version"]
    registered = StrategyRegistry().client.get_model_version(NAME, version)
    assert registered.tags["symbols"] == "AAPL"


def test_a_csv_without_a_named_symbol_is_refused(prefect_harness, mlflow_dir, capsys):
    code = main(["retrain", "--strategy", "ma_crossover", "--csv", str(PRICES / "AAPL.csv"),
                 "--no-notify", "--json"])  # fmt: skip

    printed = capsys.readouterr()
    assert code == 2
    assert printed.out == ""
    assert printed.err.splitlines() == [
        "strategy-engine retrain: error: --csv needs exactly one --symbol naming the CSV's "
        "instrument, got 0"
    ]
    with pytest.raises(ConfigError, match="a CSV needs exactly one symbol"):
        retrain(strategy="ma_crossover", csv=str(PRICES / "AAPL.csv"), notify=False)
    assert StrategyRegistry().list_strategies() == []


def _holds(contract: object, outcome: object) -> bool:
    """Every field of the contract is in the outcome with the same value (it may add fields)."""
    if isinstance(contract, dict):
        return isinstance(outcome, dict) and all(
            k in outcome and _holds(v, outcome[k]) for k, v in contract.items()
        )
    if isinstance(contract, list):
        return (
            isinstance(outcome, list)
            and len(contract) == len(outcome)
            and all(_holds(c, o) for c, o in zip(contract, outcome, strict=True))
        )
    return contract == outcome


def _refusals(stderr: str) -> list[str]:
    """The command's own lines on stderr (logs of the flow are there too)."""
    return [line for line in stderr.splitlines() if line.startswith("strategy-engine retrain:")]


def test_the_ml_composer_flow_registers_both_model_kinds_and_fits_the_stack(
    prefect_harness, mlflow_dir
):
    from pipelines.flows import ml_composer

    outcome = ml_composer(symbols=["AAPL", "KO", "XOM"])

    registry = StrategyRegistry()
    versions = {v["version"] for v in registry.list_strategies()[0]["versions"]}
    assert {m["version"] for m in outcome["models"].values()} == versions == {"1", "2"}
    for model in outcome["models"].values():
        assert 0.0 < model["out_of_sample"]["hit_rate"] < 1.0
    assert abs(sum(outcome["stacking"]["weights"].values()) - 1.0) < 1e-9
    assert registry.get_alias("strategy.ml_direction", "champion") is None  # not promoted here
