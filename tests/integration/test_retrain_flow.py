"""The Learning Manager's retrain flow on real data, with a real Prefect server and MLflow store."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest

from core.messages import RetrainOutcome
from pipelines.flows import retrain
from pipelines.learning import warmup_bars
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
        assert msgspec.to_builtins(msgspec.convert(outcome, RetrainOutcome)) == outcome
    assert first["decision"] == {
        "promoted": True,
        "reason": "no champion yet: the challenger becomes champion",
    }
    assert second["champion"]["version"] == first["challenger"]["version"]
    # Champion and challenger are scored on one held-out window (its start depends only on
    # the data); the purge before it follows the candidates' longest warm-up.
    assert second["windows"]["test_start_ns"] == first["windows"]["test_start_ns"]
    lead = second["challenger"]["test"]["sharpe"] - second["champion"]["test"]["sharpe"]
    assert second["decision"]["promoted"] is (lead > 0.05)
    champion = registry.get_alias(NAME, "champion")
    expected = second["challenger"]["version"] if lead > 0.05 else first["challenger"]["version"]
    assert champion == expected
    assert registry.get_alias(NAME, "challenger") == second["challenger"]["version"]


def test_the_test_window_starts_a_warm_up_after_the_training_window(prefect_harness, mlflow_dir):
    outcome = retrain(strategy="ma_crossover", symbols=SYMBOLS, notify=False)

    windows = outcome["windows"]
    gap_days = (windows["test_start_ns"] - windows["train_end_ns"]) / 86_400e9
    candidates = [row["config"] for row in outcome["candidates"]]
    assert gap_days >= warmup_bars("ma_crossover", candidates)  # trading days <= calendar days
    assert len(candidates) > 3
    assert outcome["challenger"]["config"] in candidates


def test_a_csv_that_fails_the_gate_records_the_report_and_promotes_nothing(
    prefect_harness, mlflow_dir, tmp_path, capsys
):
    lines = (PRICES / "KO.csv").read_text().splitlines()
    date, o, _high, low, c, adj, v = lines[200].split(",")
    lines[200] = ",".join([date, o, str(float(c) - 1.0), low, c, adj, v])  # high below close
    csv = tmp_path / "KO.csv"
    csv.write_text("\n".join(lines) + "\n")

    code = main(
        ["retrain", "--strategy", "ma_crossover", "--csv", str(csv), "--no-notify", "--json"]
    )

    outcome = json.loads(capsys.readouterr().out)
    assert code == 0
    assert msgspec.convert(outcome, RetrainOutcome).challenger is None
    assert outcome["decision"]["promoted"] is False
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
