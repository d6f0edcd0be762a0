"""``strategy-engine bench``: the smoke run reports every measurement, each a positive rate."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from core.strategies.base import DataKind
from core.strategies.catalogue import strategy_types
from strategy_engine.commands.bench import format_report, load_bench_module

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def quick_report() -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "strategy_engine.cli", "bench", "--quick", "--no-compare", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def test_the_quick_bench_times_every_bar_type_alone_and_all_together(quick_report):
    bar_types = {c.spec.name for c in strategy_types() if c.spec.data_kind is DataKind.BARS}
    bars = quick_report["bar_strategies"]

    assert set(bars["per_type"]) == bar_types
    for result in [*bars["per_type"].values(), bars["all_types_one_engine"]]:
        assert result["events"] > 0
        assert result["seconds"] > 0
        assert result["events_per_second"] > 0
        assert result["strategy_errors"] == 0
    together = bars["all_types_one_engine"]
    assert together["bar_updates"] == together["events"] * len(bar_types)


def test_the_quick_bench_reports_fast_tier_risk_and_machine_numbers(quick_report):
    fast = quick_report["fast_tier"]
    risk = quick_report["risk"]

    assert set(fast["update_only"]) == {
        "adaptive_quote", "spread_adjuster", "volatility_responsive", "latency",
    }  # fmt: skip
    rates = [r["events_per_second"] for r in fast["update_only"].values()]
    rates += [r["events_per_second"] for r in fast["applicator_composer"].values()]
    assert all(rate > 0 for rate in rates)
    assert risk["checks_per_second"] > 0
    assert risk["accepted"] + sum(risk["rejected_by_code"].values()) == risk["checks"]
    assert len(quick_report["machine_before"]["load_average_1_5_15"]) == 3
    assert "comparison" not in quick_report  # --no-compare never touches the backtrader venv
    assert quick_report["summary"]["bar_updates_per_second_per_core"]["target"] == 1_000_000


def test_the_table_names_each_measurement_beside_its_target(quick_report):
    table = format_report(quick_report)

    assert "| engine: ma_crossover (bar-updates/s)" in table
    assert "| 1,000,000 |" in table
    assert "risk checks (checks/s)" in table


def test_pnl_comparison_counts_agreement_and_names_the_worst_ticker():
    bench = load_bench_module()

    result = bench.compare_pnl(
        {"A": 10.0, "B": -4.0, "C": 0.0}, {"A": 10.0 * (1 + 1e-9), "B": -4.5, "C": 0.0}
    )

    assert result["agree"] == 2
    assert result["worst"]["symbol"] == "B"
    assert [m["symbol"] for m in result["mismatches"]] == ["B"]
