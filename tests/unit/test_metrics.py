"""Prometheus exposition of a core's numbers: parsable text whose values are the summary's."""

from __future__ import annotations

import urllib.error
import urllib.request

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from core import codec
from core.model import Bar, Quote
from core.runtime.ingest import IngestionBoundary
from core.runtime.timing import LatencyRecorder, TierTimer
from strategy_engine.metrics import (
    LATENCY_BUCKETS_S,
    REASON_LABELS,
    RecorderHistogram,
    histogram,
    rejection_reason,
    render_metrics,
    serve_metrics,
)

US = 1_000  # nanoseconds in a microsecond


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition, by name and sorted labels."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _types(text: str) -> dict[str, str]:
    return {f.name: f.type for f in text_string_to_metric_families(text)}


def _core_summary(timer: TierTimer, latency: LatencyRecorder) -> dict:
    return {
        "core": "core-1",
        "events_in": 4_935,
        "signals_out": 212,
        "orders": 130,
        "fills": 128,
        "reloads": 1,
        "read_errors": 0,
        "rejected_by_reason": {"crossed_book": 2, "malformed_envelope": 1},
        "redis": {
            "connected": True,
            "buffered": 7,
            "buffer_bound": 200_000,
            "dropped": 3,
            "reconnects": 2,
            "last_error": "",
        },
        "fast_cycle": {
            "histogram": histogram(timer.samples()),
            "overruns": timer.overruns,
            "budget_ms": 100.0,
        },
        "tick_to_signal": {"histogram": histogram(latency.samples())},
        "equity": 1_000_123.5,
    }


def test_counters_and_gauges_parse_and_equal_the_summary():
    timer, latency = TierTimer(budget_ns=100_000 * US), LatencyRecorder()
    for value in (40 * US, 150_000 * US):
        timer.record(value)
    summary = _core_summary(timer, latency)

    text = render_metrics(summary)

    samples = _samples(text)
    core = (("core", "core-1"),)
    assert samples[("strategy_engine_events_in_total", core)] == 4_935
    assert samples[("strategy_engine_signals_out_total", core)] == 212
    assert samples[("strategy_engine_orders_total", core)] == 130
    assert samples[("strategy_engine_fills_total", core)] == 128
    assert samples[("strategy_engine_reloads_total", core)] == 1
    assert samples[("strategy_engine_redis_reconnects_total", core)] == 2
    assert samples[("strategy_engine_redis_dropped_total", core)] == 3
    assert samples[("strategy_engine_redis_buffered", core)] == 7
    assert samples[("strategy_engine_redis_connected", core)] == 1
    assert samples[("strategy_engine_fast_cycle_overruns_total", core)] == 1
    assert samples[("strategy_engine_equity", core)] == 1_000_123.5
    rejected = "strategy_engine_input_rejected_total"
    assert samples[(rejected, (*core, ("reason", "crossed_book")))] == 2
    assert samples[(rejected, (*core, ("reason", "malformed_envelope")))] == 1
    types = _types(text)
    assert types["strategy_engine_events_in"] == "counter"
    assert types["strategy_engine_redis_buffered"] == "gauge"
    assert text.count("# HELP ") == text.count("# TYPE ") == len(types)


def test_latency_histograms_count_each_sample_in_every_bucket_at_or_above_it():
    # 100 µs sits exactly on the first bound: "le" means <=, so it counts there.
    timer, latency = TierTimer(budget_ns=100_000 * US), LatencyRecorder()
    for value in (50 * US, 100 * US, 300 * US, 2_000_000 * US):
        timer.record(value)
    latency.record(4_000 * US)

    samples = _samples(render_metrics(_core_summary(timer, latency)))

    def bucket(name: str, le: str) -> float:
        return samples[(f"strategy_engine_{name}_bucket", (("core", "core-1"), ("le", le)))]

    assert bucket("fast_cycle_seconds", "0.0001") == 2
    assert bucket("fast_cycle_seconds", "0.00025") == 2
    assert bucket("fast_cycle_seconds", "0.0005") == 3
    assert bucket("fast_cycle_seconds", "1.0") == 3
    assert bucket("fast_cycle_seconds", "+Inf") == 4
    core = (("core", "core-1"),)
    assert samples[("strategy_engine_fast_cycle_seconds_count", core)] == 4
    assert samples[("strategy_engine_fast_cycle_seconds_sum", core)] == pytest.approx(2.00045)
    assert bucket("tick_to_signal_seconds", "0.0025") == 0
    assert bucket("tick_to_signal_seconds", "0.005") == 1


def test_a_published_status_with_only_percentiles_becomes_a_summary_in_seconds():
    status = {
        "core": "core-1",
        "events_in": 10,
        "signals_out": 2,
        "fast_cycle": {
            "count": 5,
            "p50_us": 12.5,
            "p99_us": 80.0,
            "p999_us": 95.0,
            "max_us": 99.0,
            "budget_ms": 100.0,
            "overruns": 0,
        },
        "tick_to_signal": {"count": 0, "p50_us": None, "p99_us": None, "p999_us": None},
        "events_rejected": 3,
    }

    text = render_metrics(status)

    samples = _samples(text)
    name = "strategy_engine_fast_cycle_seconds"
    assert _types(text)[name] == "summary"
    assert samples[(name, (("core", "core-1"), ("quantile", "0.5")))] == pytest.approx(12.5e-6)
    assert samples[(name, (("core", "core-1"), ("quantile", "0.99")))] == pytest.approx(80e-6)
    assert samples[(f"{name}_count", (("core", "core-1"),))] == 5
    no_ticks = (("core", "core-1"), ("quantile", "0.5"))
    assert np.isnan(samples[("strategy_engine_tick_to_signal_seconds", no_ticks)])
    unclassified = (("core", "core-1"), ("reason", "unclassified"))
    assert samples[("strategy_engine_input_rejected_total", unclassified)] == 3


def test_label_values_with_quotes_backslashes_and_newlines_survive_the_round_trip():
    name = 'core "a"\\b\nc'

    samples = _samples(render_metrics({"core": name, "events_in": 1}))

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

    assert first == histogram(np.array(recorded))
    assert second == histogram(np.array(recorded + more))
    assert all(b >= a for a, b in zip(first["counts"], second["counts"], strict=True))
    assert second["bounds_s"] == list(LATENCY_BUCKETS_S)


def test_serve_metrics_answers_a_scrape_with_the_current_summary_and_404_elsewhere():
    summary = {"core": "core-1", "events_in": 1}
    server = serve_metrics(lambda: summary, "127.0.0.1", 0)
    try:
        with urllib.request.urlopen(server.url, timeout=5) as response:
            first = response.read().decode()
            content_type = response.headers["Content-Type"]
        summary["events_in"] = 2
        with urllib.request.urlopen(server.url, timeout=5) as response:
            second = response.read().decode()
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(server.url.replace("/metrics", "/other"), timeout=5)
    finally:
        server.stop()

    key = ("strategy_engine_events_in_total", (("core", "core-1"),))
    assert _samples(first)[key] == 1 and _samples(second)[key] == 2
    assert content_type.startswith("text/plain; version=0.0.4")
    assert missing.value.code == 404
