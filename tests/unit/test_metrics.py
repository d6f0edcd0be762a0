"""Prometheus exposition of a core's numbers: parsable text whose values are the summary's."""

from __future__ import annotations

import threading
import urllib.error
import urllib.request

import numpy as np
import pytest
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

from core import codec
from core.model import Bar, Quote
from core.runtime.ingest import IngestionBoundary
from core.runtime.timing import (
    LATENCY_BUCKETS_S,
    TACTICAL_BUCKETS_S,
    LatencyRecorder,
    RecorderHistogram,
    TierTimer,
    cumulative_histogram,
)
from strategy_engine.metrics import (
    MAX_SERIES,
    REASON_LABELS,
    exposition,
    rejection_reason,
    serve_metrics,
)

US = 1_000  # nanoseconds in a microsecond
CORE = (("core", "core-1"),)


def _samples(body: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition, by name and sorted labels."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }


def _types(body: bytes) -> dict[str, str]:
    return {f.name: f.type for f in text_string_to_metric_families(body.decode())}


def _oracle(samples_ns: list[int], bounds_s: tuple[float, ...] = LATENCY_BUCKETS_S) -> dict:
    """The cumulative histogram of ``samples_ns``, counted plainly (le means <=)."""
    seconds = np.array(samples_ns) / 1e9
    return {
        "bounds_s": list(bounds_s),
        "counts": [int(np.sum(seconds <= b)) for b in bounds_s],
        "count": len(samples_ns),
        "sum_s": sum(samples_ns) / 1e9,
    }


def _core_summary(timer: TierTimer, latency: LatencyRecorder) -> dict:
    return {
        "core": "core-1",
        "events_in": 4_935,
        "signals_out": 212,
        "orders": 130,
        "fills": 128,
        "reloads": 1,
        "read_errors": 0,
        "restarts": 2,
        "rejected_by_reason": {"crossed_book": 2, "malformed_envelope": 1},
        "redis": {
            "connected": True,
            "buffered": 7,
            "buffer_bound": 200_000,
            "dropped": 3,
            "reconnects": 2,
            "last_error": "",
        },
        "fast_cycle": {"histogram": RecorderHistogram(timer).snapshot(), "overruns": 1},
        "tactical_cycle": {"histogram": _oracle([3_000_000 * US], TACTICAL_BUCKETS_S)},
        "tick_to_signal": {"histogram": RecorderHistogram(latency).snapshot()},
        "equity": 1_000_123.5,
        "drawdown": 0.04,
        "risk_mode": "reduce_only",
        "heartbeat_ns": 1_700_000_000_250_000_000,
        "per_strategy": [
            {"strategy": "strategy.breakout", "pnl": -12.5, "weight": 0.5},
            {"strategy": "strategy.ma_crossover", "pnl": 30.0, "weight": 1.0},
        ],
        "active_set": [
            {"name": "strategy.breakout", "version": "7"},
            {"name": "strategy.local", "version": "local"},
        ],
    }


def test_every_family_has_its_conventional_name_type_and_the_summarys_value():
    timer, latency = TierTimer(budget_ns=100_000 * US), LatencyRecorder()
    for value in (40 * US, 150_000 * US):
        timer.record(value)

    body = exposition(_core_summary(timer, latency))

    samples = _samples(body)
    assert samples[("strategy_engine_events_in_total", CORE)] == 4_935
    assert samples[("strategy_engine_signals_out_total", CORE)] == 212
    assert samples[("strategy_engine_orders_total", CORE)] == 130
    assert samples[("strategy_engine_fills_total", CORE)] == 128
    assert samples[("strategy_engine_reloads_total", CORE)] == 1
    assert samples[("strategy_engine_feed_read_errors_total", CORE)] == 0
    assert samples[("strategy_engine_core_restarts_total", CORE)] == 2
    assert samples[("strategy_engine_redis_reconnects_total", CORE)] == 2
    assert samples[("strategy_engine_redis_dropped_total", CORE)] == 3
    assert samples[("strategy_engine_redis_buffered", CORE)] == 7
    assert samples[("strategy_engine_redis_buffer_bound", CORE)] == 200_000
    assert samples[("strategy_engine_redis_connected", CORE)] == 1
    assert samples[("strategy_engine_fast_cycle_overruns_total", CORE)] == 1
    assert samples[("strategy_engine_equity", CORE)] == 1_000_123.5
    assert samples[("strategy_engine_drawdown_ratio", CORE)] == 0.04
    assert samples[("strategy_engine_halted", CORE)] == 0
    assert samples[("strategy_engine_risk_reduce_only", CORE)] == 1
    beat = samples[("strategy_engine_status_timestamp_seconds", CORE)]
    assert beat == pytest.approx(1.7e9 + 0.25)
    rejected = "strategy_engine_input_rejected_total"
    assert samples[(rejected, (*CORE, ("reason", "crossed_book")))] == 2
    assert samples[(rejected, (*CORE, ("reason", "malformed_envelope")))] == 1
    breakout = (*CORE, ("strategy", "strategy.breakout"))
    assert samples[("strategy_engine_strategy_pnl", breakout)] == -12.5
    assert samples[("strategy_engine_strategy_weight", breakout)] == 0.5
    # A version that is not a number ("local") has no series; a numeric one does.
    versions = {k[1]: v for k, v in samples.items() if k[0] == "strategy_engine_active_version"}
    assert versions == {(*CORE, ("model", "strategy.breakout")): 7}
    counters = (
        "events_in", "signals_out", "orders", "fills", "reloads", "feed_read_errors",
        "core_restarts", "input_rejected", "redis_reconnects", "redis_dropped",
        "fast_cycle_overruns",
    )  # fmt: skip
    gauges = (
        "redis_buffered", "redis_buffer_bound", "redis_connected", "equity", "drawdown_ratio",
        "halted", "risk_reduce_only", "status_timestamp_seconds", "strategy_pnl",
        "strategy_weight", "active_version",
    )  # fmt: skip
    histograms = ("fast_cycle_seconds", "tactical_cycle_seconds", "tick_to_signal_seconds")
    types = _types(body)
    assert types == {
        **{f"strategy_engine_{name}": "counter" for name in counters},
        **{f"strategy_engine_{name}": "gauge" for name in gauges},
        **{f"strategy_engine_{name}": "histogram" for name in histograms},
    }
    text = body.decode()
    assert text.count("# HELP ") == text.count("# TYPE ") == len(types)


def test_latency_histograms_count_each_sample_in_every_bucket_at_or_above_it():
    # 100 µs sits exactly on the first bound: "le" means <=, so it counts there.
    timer, latency = TierTimer(budget_ns=100_000 * US), LatencyRecorder()
    for value in (50 * US, 100 * US, 300 * US, 2_000_000 * US):
        timer.record(value)
    latency.record(4_000 * US)

    samples = _samples(exposition(_core_summary(timer, latency)))

    def bucket(name: str, le: str) -> float:
        return samples[(f"strategy_engine_{name}_bucket", (*CORE, ("le", le)))]

    assert bucket("fast_cycle_seconds", "0.0001") == 2
    assert bucket("fast_cycle_seconds", "0.00025") == 2
    assert bucket("fast_cycle_seconds", "0.0005") == 3
    assert bucket("fast_cycle_seconds", "1.0") == 3
    assert bucket("fast_cycle_seconds", "+Inf") == 4
    assert samples[("strategy_engine_fast_cycle_seconds_count", CORE)] == 4
    assert samples[("strategy_engine_fast_cycle_seconds_sum", CORE)] == pytest.approx(2.00045)
    assert bucket("tick_to_signal_seconds", "0.0025") == 0
    assert bucket("tick_to_signal_seconds", "0.005") == 1
    # The tactical cycle's own larger bounds: 3 s lands in the 5 s bucket, not only +Inf.
    assert bucket("tactical_cycle_seconds", "2.5") == 0
    assert bucket("tactical_cycle_seconds", "5.0") == 1


def test_a_status_from_before_histograms_exposes_no_latency_family_rather_than_a_summary():
    # A core of the previous release published percentiles only: no summaries any more (the
    # core's own endpoint has histograms), so the latency families are simply absent.
    status = {
        "core": "core-1",
        "events_in": 10,
        "fast_cycle": {"count": 5, "p50_us": 12.5, "p99_us": 80.0, "overruns": 0},
        "tick_to_signal": {"count": 0, "p50_us": None},
    }

    types = _types(exposition(status))

    assert types == {
        "strategy_engine_events_in": "counter",
        "strategy_engine_fast_cycle_overruns": "counter",
    }


@pytest.mark.parametrize(
    "histogram",
    [
        {"bounds_s": [0.1, 0.05], "counts": [1, 2], "count": 2, "sum_s": 0.1},  # bounds unsorted
        {"bounds_s": [0.1, 0.5], "counts": [2, 1], "count": 2, "sum_s": 0.1},  # counts fall
        {"bounds_s": [0.1, 0.5], "counts": [1, 2], "count": 1, "sum_s": 0.1},  # +Inf below
        {"bounds_s": [0.1], "counts": [1, 2], "count": 2, "sum_s": 0.1},  # lengths differ
        {"bounds_s": [0.1], "counts": [-1], "count": 2, "sum_s": 0.1},
        {"bounds_s": ["0.1"], "counts": [1], "count": 2, "sum_s": 0.1},
        {"bounds_s": [0.1], "counts": [1], "count": 2, "sum_s": float("nan")},
        {"bounds_s": list(range(1, 100)), "counts": [0] * 99, "count": 0, "sum_s": 0.0},
        {"bounds_s": [], "counts": [], "count": 0, "sum_s": 0.0},
        "not a histogram",
    ],
)
def test_a_malformed_histogram_read_from_redis_is_left_out(histogram):
    types = _types(exposition({"core": "c", "fast_cycle": {"histogram": histogram}}))

    assert "strategy_engine_fast_cycle_seconds" not in types


def test_hostile_values_are_left_out_and_never_fail_the_scrape():
    summary = {
        "core": ["not", "a", "name"],
        "events_in": -5,  # a counter never goes below zero
        "signals_out": float("inf"),
        "orders": True,  # a bool is no count
        "fills": "12",
        "equity": float("nan"),
        "drawdown": 1.5,  # a ratio is within [0, 1]
        "risk_mode": 3,
        "heartbeat_ns": "soon",
        "redis": ["connected"],
        "rejected_by_reason": {"crossed_book": "2", "other": 1},
        "per_strategy": [
            "row",
            {"strategy": 7, "pnl": 1.0},
            {"strategy": "s", "pnl": "x", "weight": 2.0},
        ],
        "active_set": "a, b",
        "learning_events": [{"kind": "promoted", "strategy": "s", "count": -1}, None],
    }

    samples = _samples(exposition(summary))

    core = (("core", "['not', 'a', 'name']"),)
    assert samples == {
        ("strategy_engine_input_rejected_total", (*core, ("reason", "other"))): 1,
        ("strategy_engine_strategy_weight", (*core, ("strategy", "s"))): 2.0,
    }


def test_labelled_families_are_capped():
    summary = {
        "core": "c",
        "per_strategy": [
            {"strategy": f"s{i}", "pnl": 0.0, "weight": 1.0} for i in range(MAX_SERIES + 50)
        ],
    }

    types = text_string_to_metric_families(exposition(summary).decode())

    assert {f.name: len(f.samples) for f in types} == {
        "strategy_engine_strategy_pnl": MAX_SERIES,
        "strategy_engine_strategy_weight": MAX_SERIES,
    }


def test_label_values_with_quotes_backslashes_and_newlines_survive_the_round_trip():
    name = 'core "a"\\b\nc'

    samples = _samples(exposition({"core": name, "events_in": 1}))

    assert samples[("strategy_engine_events_in_total", (("core", name),))] == 1


def test_a_rejection_is_labelled_by_its_code_and_old_free_text_reasons_still_map():
    # Rejections as the real boundary makes them, not copied strings.
    boundary = IngestionBoundary(wall_ns=lambda: 10**18)

    def entry(message: Bar | Quote) -> dict[bytes, bytes]:
        return {b"msg": codec.encode(message)}

    def bar(symbol: str, ts_event: int, low: float = 1.0) -> Bar:
        return Bar(symbol=symbol, ts_event=ts_event, open=1, high=1, low=low, close=1, volume=1)

    quote = Quote(
        symbol="BTCUSDT", ts_event=2, bid_price=101.0, bid_size=1, ask_price=100.0, ask_size=1
    )
    boundary.admit_entry("f", entry(bar("AAPL", 10 * 10**9)))
    rejections = [
        boundary.admit_entry("f", fields)
        for fields in (
            entry(quote),
            entry(bar("KO", 5 * 10**9, low=-2)),
            entry(bar("AAPL", 1)),
            {b"msg": b"{not json"},
            {b"msg": b'{"v":99,"kind":"bar","data":{}}'},
            {b"msg": b'{"v":1,"kind":"bar","data":{}}'},
        )
    ]

    labels = [rejection_reason(r.reason, str(r.code)) for r in rejections]

    assert labels == [
        "crossed_book",
        "non_positive_price",
        "out_of_order",
        "malformed_envelope",
        "unknown_schema_version",
        "malformed_message",
    ]
    # Dead letters recorded before codes existed are labelled by their wording.
    assert [rejection_reason(r.reason) for r in rejections] == labels
    assert rejection_reason("something new") == "other"
    assert set(labels) <= set(REASON_LABELS)


def test_a_recorder_histogram_keeps_counting_after_the_ring_wraps():
    recorder = LatencyRecorder(capacity=4)
    tracked = RecorderHistogram(recorder)
    recorded = [30 * US, 700 * US, 3_000 * US]
    for value in recorded:
        recorder.record(value)
    first = tracked.snapshot()
    more = [60 * US, 20_000 * US, 90 * US, 400_000 * US]  # the ring (4) wraps
    for value in more:
        recorder.record(value)

    second = tracked.snapshot()

    assert first == _oracle(recorded)
    expected = _oracle(recorded + more)
    assert second["sum_s"] == pytest.approx(expected.pop("sum_s"))
    assert {k: v for k, v in second.items() if k != "sum_s"} == expected
    assert all(b >= a for a, b in zip(first["counts"], second["counts"], strict=True))


def test_every_reader_of_a_recorder_shares_one_cumulative_histogram():
    # The status (core thread) and the scrapes (server thread) read the same recorder; both
    # must report the same counts, and never fewer than before, while it records.
    recorder = LatencyRecorder(capacity=1_000)
    stop = threading.Event()

    def record() -> None:
        value = 0
        while not stop.is_set():
            recorder.record((value % 2_000) * US)
            value += 1

    writer = threading.Thread(target=record)
    writer.start()
    try:
        seen = [cumulative_histogram(recorder)["count"] for _ in range(200)]
    finally:
        stop.set()
        writer.join()

    assert seen == sorted(seen) and seen[-1] > 0
    final = cumulative_histogram(recorder)
    assert final == cumulative_histogram(recorder)  # the second reader sees the same
    assert final["counts"][-1] <= final["count"] <= recorder.count
    tactical = cumulative_histogram(recorder, TACTICAL_BUCKETS_S)
    assert tactical["bounds_s"] == list(TACTICAL_BUCKETS_S)


def test_serve_metrics_answers_a_scrape_with_the_current_summary_and_404_elsewhere():
    summary = {"core": "core-1", "events_in": 1}
    server = serve_metrics(lambda: summary, "127.0.0.1", 0)
    try:
        with urllib.request.urlopen(server.url, timeout=5) as response:
            first = response.read()
            content_type = response.headers["Content-Type"]
        summary["events_in"] = 2
        with urllib.request.urlopen(server.url, timeout=5) as response:
            second = response.read()
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(server.url.replace("/metrics", "/other"), timeout=5)
    finally:
        server.stop()

    key = ("strategy_engine_events_in_total", CORE)
    assert _samples(first)[key] == 1 and _samples(second)[key] == 2
    assert content_type == CONTENT_TYPE_LATEST
    assert missing.value.code == 404
