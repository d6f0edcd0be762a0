"""The register-and-promote flow on real data, with a real Prefect server and MLflow store."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from core.data.datasets import load_bars
from core.errors import ValidationGateFailed
from pipelines.flows import register_and_promote
from registry import MlflowStrategySource, StrategyRegistry

SYMBOLS = ["AAPL", "KO", "XOM"]
pytestmark = pytest.mark.integration


def test_flow_validates_registers_and_promotes_the_champion(prefect_harness, mlflow_dir):
    result = register_and_promote(
        strategy="ma_crossover", config={"fast_period": 20, "slow_period": 50}, symbols=SYMBOLS
    )

    assert result["gate"]["success"] is True
    assert result["rows"] == 3 * 1258
    assert result["aliases"] == {"champion": "1", "previous": None}
    (deployment,) = MlflowStrategySource(StrategyRegistry()).load_active_set()
    assert (deployment.name, deployment.version) == ("strategy.ma_crossover", "1")
    assert deployment.config["slow_period"] == 50
    assert deployment.tags["data_hash"] == result["data_hash"]


def test_a_second_run_keeps_the_old_champion_as_previous(prefect_harness, mlflow_dir):
    register_and_promote(strategy="ma_crossover", symbols=SYMBOLS[:1])

    result = register_and_promote(
        strategy="ma_crossover", config={"ma_type": "ema"}, symbols=SYMBOLS[:1]
    )

    assert result["aliases"] == {"champion": "2", "previous": "1"}


def test_bad_data_fails_the_gate_and_registers_nothing(
    prefect_harness, mlflow_dir, tmp_path, monkeypatch
):
    data = tmp_path / "data" / "equities_daily_stocknet88"
    shutil.copytree(
        Path(__file__).resolve().parents[2] / "data" / "equities_daily_stocknet88", data
    )
    prices = data / "prices" / "KO.csv"
    lines = prices.read_text().splitlines()
    date, o, _high, low, c, adj, v = lines[100].split(",")
    lines[100] = ",".join([date, o, str(float(c) - 1.0), low, c, adj, v])  # high below the close
    prices.write_text("\n".join(lines) + "\n")
    monkeypatch.setenv("STRATEGY_ENGINE_DATA", str(tmp_path / "data"))

    with pytest.raises(ValidationGateFailed, match=r"high >= max\(open, close\): 1 row") as failure:
        register_and_promote(strategy="ma_crossover", symbols=["AAPL", "KO"])

    failed = [r for r in failure.value.report["results"] if not r["success"]]
    assert [r["expectation"] for r in failed] == ["high >= max(open, close)"]
    assert failed[0]["examples"][0]["symbol"] == "KO"
    assert StrategyRegistry().list_strategies() == []


def test_a_version_that_does_not_beat_the_champion_is_kept_as_challenger(
    prefect_harness, mlflow_dir
):
    register_and_promote(
        strategy="ma_crossover", config={"fast_period": 5, "slow_period": 20}, symbols=["AAPL"]
    )

    result = register_and_promote(strategy="ma_crossover", config={}, symbols=["AAPL"])

    registry = StrategyRegistry()
    assert registry.get_alias("strategy.ma_crossover", "champion") == "1"
    assert registry.get_alias("strategy.ma_crossover", "challenger") == "2"
    assert result["aliases"] == {"champion": "1", "previous": None, "challenger": "2"}
    evaluation = result["evaluation"]
    # Both on AAPL's held-out window, as a retrain scores them: 5/20 leads 10/30 there by more
    # than the margin, so 10/30 is kept as challenger.
    ours, theirs = (evaluation[who]["test"]["sharpe"] for who in ("challenger", "champion"))
    assert ours < theirs + 0.05
    assert evaluation["windows"]["test_start_ns"] == _held_out_start(["AAPL"])
    assert result["decision"]["promoted"] is False
    assert f"does not beat champion {theirs:.4g}" in result["decision"]["reason"]
    decision = registry.client.get_run(result["decision_run"])
    assert decision.info.status == "FINISHED"
    assert decision.data.metrics["champion.sharpe"] == pytest.approx(theirs)
    # The registered challenger's evidence says the same, and the registry refuses it.
    with pytest.raises(ValidationGateFailed, match="does not beat champion version 1 by the"):
        registry.promote("strategy.ma_crossover", "2")


def _held_out_start(symbols: list[str]) -> int:
    """The first date of the last 30 % of the symbols' dates (what a retrain holds out)."""
    loaded = load_bars("equities_daily_stocknet88", symbols)
    dates = np.unique(np.concatenate([r.frame["ts_event"].to_numpy() for r in loaded.values()]))
    return int(dates[int(len(dates) * 0.7)])


def test_a_loader_rejected_row_fails_the_gate_unless_allowed(
    prefect_harness, mlflow_dir, tmp_path, monkeypatch
):
    data = tmp_path / "data" / "equities_daily_stocknet88"
    shutil.copytree(
        Path(__file__).resolve().parents[2] / "data" / "equities_daily_stocknet88", data
    )
    prices = data / "prices" / "AAPL.csv"
    lines = prices.read_text().splitlines()
    date, o, high, low, c, adj, v = lines[100].split(",")
    lines[100] = ",".join([date, o, high, low, f"-{c}", adj, v])  # a negative close
    prices.write_text("\n".join(lines) + "\n")
    monkeypatch.setenv("STRATEGY_ENGINE_DATA", str(tmp_path / "data"))

    with pytest.raises(ValidationGateFailed, match=r"loader rejected rows <= 0: 1 row") as failure:
        register_and_promote(strategy="ma_crossover", symbols=["AAPL"])
    assert StrategyRegistry().list_strategies() == []
    (rejected,) = failure.value.report["rejected_rows"]
    assert (rejected["symbol"], rejected["line"]) == ("AAPL", 101)
    assert rejected["reason"].startswith("negative close")

    allowed = register_and_promote(strategy="ma_crossover", symbols=["AAPL"], max_rejected_rows=1)

    assert allowed["gate"]["success"] is True
    assert allowed["gate"]["rows"] == 1257
    assert allowed["gate"]["rows_rejected"] == 1
    assert allowed["aliases"]["champion"] == "1"
