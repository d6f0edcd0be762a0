"""The latency benchmark's smoke run: a few seconds of the Binance feed through a real Redis."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

pytestmark = pytest.mark.integration
BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_latency.py"


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_latency", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_short_fast_replay_reports_every_latency_figure_with_positive_counts():
    result = _bench().measure_core_latency(speed=20.0, seconds=1.0, fast_cycle_ms=20.0)

    assert result["events_published"] > 0
    assert result["events_in"] == result["events_published"]
    assert result["signals_out"] > 0
    for name in ("tick_to_signal", "in_process", "fast_cycle"):
        figures = result[name]
        assert figures["count"] > 0
        assert set(figures) >= {"p50_us", "p99_us", "p999_us", "max_us"}
        assert figures["p50_us"] <= figures["p99_us"] <= figures["p999_us"] <= figures["max_us"]
