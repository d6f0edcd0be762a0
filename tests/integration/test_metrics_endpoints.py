"""The core's ``/metrics`` and the dashboard's ``/metrics`` after a real core ran: the same
families, types and numbers, valid for ``promtool``, and the learning tier's counts.

A core runs real strategies over real stocknet bars through a real Redis; its own metrics
server reads it live, the dashboard reads the status it published. Both are scraped over
HTTP, as Prometheus does.
"""

from __future__ import annotations

import shutil
import subprocess
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from prometheus_client.parser import text_string_to_metric_families

from core.adapters.market_streams import FeedPublisher
from core.adapters.redis_server import RedisConnection
from core.data.feeds import replay_events
from core.runtime.service import CoreService, CoreSettings
from strategy_engine.core_process import LocalStrategies, run_core
from strategy_engine.dashboard import start_dashboard
from strategy_engine.dashboard.state import MAX_LEARNING_SERIES, DashboardReader
from strategy_engine.metrics import CoreMetrics, serve_metrics

pytestmark = pytest.mark.integration
FEED = "equities_daily_stocknet88"
TYPES = ("ma_crossover", "breakout")
CORE = "core-metrics"
DASHBOARD_ONLY = {
    # Redis-side numbers the running core does not have.
    "strategy_engine_orders_stored": "gauge",
    "strategy_engine_fills_stored": "gauge",
    "strategy_engine_learning_events": "counter",
}
# The final tactical cycle is timed after it published the status the dashboard reads, so
# the core's own histogram holds one cycle more.
LATER_ON_THE_CORE = {"strategy_engine_tactical_cycle_seconds"}


@dataclass(frozen=True)
class Scraped:
    core: str
    dashboard: str
    service: CoreService


@pytest.fixture(scope="module")
def scraped(redis_connection: RedisConnection) -> Iterator[Scraped]:
    namespace = f"test-{uuid.uuid4().hex[:12]}"
    client = redis_connection.client
    try:
        publisher = FeedPublisher(client, namespace)
        publisher.publish_raw(FEED, b"{not json")  # one rejection, counted on both sides
        publisher.publish(FEED, replay_events(FEED, symbols=["AAPL", "KO", "XOM", "JPM"]))
        client.hset(
            f"{namespace}:learning:counts",
            mapping={"promoted|strategy.breakout": 2, "gate_failed|strategy.ma_crossover": 1},
        )
        services: list[CoreService] = []
        run_core(
            CoreSettings(name=CORE, feeds=(FEED,), until_end=True, tactical_cycle_s=0.2),
            redis_connection,
            namespace=namespace,
            source=LocalStrategies(TYPES),
            before_run=services.append,
        )
        core_server = serve_metrics(CoreMetrics(services[0]), "127.0.0.1", 0)
        dashboard = start_dashboard(client, namespace=namespace, core=CORE, port=0)
        try:
            yield Scraped(_get(core_server.url), _get(f"{dashboard.url}/metrics"), services[0])
        finally:
            core_server.stop()
            dashboard.stop()
    finally:
        keys = list(client.scan_iter(match=f"{namespace}:*", count=1000))
        if keys:
            client.delete(*keys)


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.status == 200
        return response.read().decode()


def _families(text: str) -> dict[str, str]:
    return {f.name: f.type for f in text_string_to_metric_families(text)}


def _samples(text: str, skip: frozenset[str] | set[str] = frozenset()) -> dict[tuple, float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(text)
        if f.name not in skip
        for s in f.samples
    }


def test_both_endpoints_expose_the_same_families_with_the_same_types(scraped: Scraped):
    core, dashboard = _families(scraped.core), _families(scraped.dashboard)

    assert {n: t for n, t in dashboard.items() if n in DASHBOARD_ONLY} == DASHBOARD_ONLY
    assert {n: t for n, t in dashboard.items() if n not in DASHBOARD_ONLY} == core
    # What a core that ran has, whichever endpoint is asked (versions are "local" here).
    for name, kind in {
        "strategy_engine_events_in": "counter",
        "strategy_engine_signals_out": "counter",
        "strategy_engine_orders": "counter",
        "strategy_engine_fills": "counter",
        "strategy_engine_input_rejected": "counter",
        "strategy_engine_fast_cycle_overruns": "counter",
        "strategy_engine_equity": "gauge",
        "strategy_engine_drawdown_ratio": "gauge",
        "strategy_engine_halted": "gauge",
        "strategy_engine_status_timestamp_seconds": "gauge",
        "strategy_engine_strategy_pnl": "gauge",
        "strategy_engine_strategy_weight": "gauge",
        "strategy_engine_fast_cycle_seconds": "histogram",
        "strategy_engine_tactical_cycle_seconds": "histogram",
        "strategy_engine_tick_to_signal_seconds": "histogram",
    }.items():
        assert core[name] == kind, name


def test_both_endpoints_give_the_same_numbers_for_a_core_that_ran(scraped: Scraped):
    core = _samples(scraped.core, LATER_ON_THE_CORE)
    dashboard = _samples(scraped.dashboard, LATER_ON_THE_CORE | set(DASHBOARD_ONLY))

    assert core == dashboard
    label = (("core", CORE),)
    engine = scraped.service.engine
    assert engine is not None
    assert core[("strategy_engine_events_in_total", label)] == engine.tracker.events > 0
    assert core[("strategy_engine_fills_total", label)] == engine.tracker.fills > 0
    ticks = core[("strategy_engine_tick_to_signal_seconds_count", label)]
    assert ticks == scraped.service.tick_to_signal.count > 0
    rejected = ("strategy_engine_input_rejected_total", (*label, ("reason", "malformed_envelope")))
    assert core[rejected] == 1
    # The ledger streams, as gauges beside the counters; here nothing was trimmed yet.
    stored = _samples(scraped.dashboard)
    assert stored[("strategy_engine_fills_stored", label)] == engine.tracker.fills
    # The tactical histogram: the core's own holds every cycle the published one did, and more.
    tactical = "strategy_engine_tactical_cycle_seconds_count"
    assert (
        _samples(scraped.core)[(tactical, label)] >= _samples(scraped.dashboard)[(tactical, label)]
    )


def test_promtool_finds_no_problem_in_either_endpoint(scraped: Scraped):
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian package 'prometheus'): nothing to lint with")
    for name, body in (("core", scraped.core), ("dashboard", scraped.dashboard)):
        checked = subprocess.run(
            [promtool, "check", "metrics"], input=body, capture_output=True, text=True, timeout=30
        )
        assert (checked.returncode, checked.stdout + checked.stderr) == (0, ""), name


def test_learning_counts_skip_whatever_the_flows_would_not_write_and_are_capped(
    redis_connection: RedisConnection, redis_namespace: str
):
    client = redis_connection.client
    key = f"{redis_namespace}:learning:counts"
    client.hset(
        key,
        mapping={
            "promoted|strategy.breakout": b"3",
            "rolled_back|strategy.breakout": b"1",
            "no_separator": b"4",
            "promoted|": b"4",
            "|strategy.breakout": b"4",
            "Promoted; DROP|strategy.x": b"4",
            "retrain_failed|strategy.x": b"three",
            "gate_failed|strategy.x": b"-1",
            "gate_failed|strategy.y": b"1.5",
            "gate_failed|bad\nname": b"1",
            b"gate_failed|\xff\xfe": b"1",
        },
    )
    reader = DashboardReader(client, redis_namespace, CORE)

    assert reader.learning_events() == [
        {"kind": "promoted", "strategy": "strategy.breakout", "count": 3},
        {"kind": "rolled_back", "strategy": "strategy.breakout", "count": 1},
    ]

    client.hset(key, mapping={f"promoted|s{i:05d}": 1 for i in range(MAX_LEARNING_SERIES + 10)})
    assert len(reader.learning_events()) == MAX_LEARNING_SERIES
    client.delete(key)
    client.set(key, b"not a hash")  # another type under the key: empty, not an error
    assert reader.learning_events() == []
    families = _families(_scrape_dashboard(client, redis_namespace))
    assert "strategy_engine_learning_events" not in families


def _scrape_dashboard(client, namespace: str) -> str:
    dashboard = start_dashboard(client, namespace=namespace, core=CORE, port=0)
    try:
        return _get(f"{dashboard.url}/metrics")
    finally:
        dashboard.stop()
