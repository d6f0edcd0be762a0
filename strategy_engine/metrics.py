"""Prometheus metrics of a core, exposed through ``prometheus_client``, and a tiny HTTP server.

A core's numbers reach Prometheus by two ways that must agree: the core's own ``/metrics``
(``strategy-engine core --metrics-port``), read live through :class:`CoreMetrics`, and the
dashboard's ``/metrics``, read from the status the core publishes to Redis. Both hand a plain
summary mapping to :func:`exposition`, where one :class:`SummaryCollector` turns it into the
same metric families (names, types, labels) on a private registry, so an alert written
against one endpoint holds for the other. :func:`serve_metrics` serves ``/metrics`` from a
daemon thread.
"""

from __future__ import annotations

import itertools
import math
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.utils import floatToGoString

from core.runtime.ingest import RejectCode
from core.runtime.timing import LATENCY_BUCKETS_S, TACTICAL_BUCKETS_S, cumulative_histogram
from strategy_engine.http_guard import GuardedHandler, GuardedHTTPServer, HttpGuard

if TYPE_CHECKING:
    from core.runtime.service import CoreService

PREFIX = "strategy_engine"
MAX_SERIES = 1000
"""Most series one labelled family exposes (strategies, models, learning events): whatever a
summary read from Redis holds, a scrape stays bounded."""
MAX_BUCKETS = 64
"""Most buckets a histogram read from a summary may have; more is not a histogram we made."""

# Rejections carry a stable code (core.runtime.ingest.RejectCode), which is the label. Dead
# letters written before codes existed have only free text: it maps to the same small, fixed set
# (a label per distinct message would grow without bound). First match wins.
_REASONS: tuple[tuple[str, str], ...] = (
    ("goes back", "out_of_order"),
    ("crossed book", "crossed_book"),
    ("non-positive price", "non_positive_price"),
    ("non-positive size", "non_positive_size"),
    ("negative size", "negative_size"),
    ("negative volume", "negative_volume"),
    ("below low", "high_below_low"),
    ("implausible rate", "implausible_rate"),
    ("message too large", "too_large"),
    ("malformed message envelope", "malformed_envelope"),
    ("unknown schema version", "unknown_schema_version"),
    ("unknown message kind", "unknown_kind"),
    ("malformed", "malformed_message"),
    ("expected a", "wrong_kind"),
    ("no 'msg' field", "missing_payload"),
)
REASON_LABELS: tuple[str, ...] = (*(str(code) for code in RejectCode), "other")
_CODES = frozenset(REASON_LABELS)


def rejection_reason(reason: str, code: str = "") -> str:
    """Return the metric label of a dead letter (one of :data:`REASON_LABELS`): its code, or
    for one recorded before codes existed, the label its reason's wording maps to."""
    if code in _CODES:
        return code
    text = reason.lower()
    return next((label for phrase, label in _REASONS if phrase in text), "other")


# --- the running core's numbers ----------------------------------------------------------------


class CoreMetrics:
    """The summary of a running core for :func:`exposition`, read from another thread.

    Only counters, recorders and plain numbers are read (no engine summary or tracker
    metrics, which touch the tracker's buffers), so a scrape never disturbs the core's loop.
    The latency histograms are the ones the core's published status carries
    (:func:`core.runtime.timing.cumulative_histogram`), so both endpoints count alike.
    """

    def __init__(self, service: CoreService) -> None:
        self.service = service

    def __call__(self) -> dict[str, Any]:
        service = self.service
        summary: dict[str, Any] = {
            "core": service.settings.name,
            "rejected_by_reason": dict(service.rejected_by_reason),
            "reloads": service.reloads,
            "reloads_refused": service.reloads_refused,
            "read_errors": service.read_errors,
            "redis": service.writer.stats(),
            "fast_cycle": {
                "histogram": cumulative_histogram(service.fast, LATENCY_BUCKETS_S),
                "overruns": service.fast.overruns,
            },
            "tactical_cycle": {
                "histogram": cumulative_histogram(service.tactical, TACTICAL_BUCKETS_S)
            },
            "tick_to_signal": {
                "histogram": cumulative_histogram(service.tick_to_signal, LATENCY_BUCKETS_S)
            },
            # When the core last made its status: the same heartbeat the dashboard shows.
            "heartbeat_ns": getattr(service, "last_status_ns", None),
            # Published in the status once the core counts its restarts; absent until then.
            "restarts": getattr(service, "restarts", None),
        }
        engine = service.engine
        if engine is not None:
            summary.update(
                events_in=engine.tracker.events,
                signals_out=engine.tracker.signals,
                fills=engine.tracker.fills,
                orders=engine.risk.accepted,
                equity=engine.portfolio.equity,
                drawdown=service.drawdown(),
                risk_mode=str(engine.risk.mode),
                per_strategy=service.strategy_numbers(),
                active_set=[
                    {"name": d.name, "version": d.version} for d in engine.applicator.deployments
                ],
            )
        return summary


# --- exposition --------------------------------------------------------------------------------

_COUNTERS: tuple[tuple[str, str, str], ...] = (
    ("events_in", "events_in_total", "Market events taken in by the core."),
    ("signals_out", "signals_out_total", "Signals produced by the active strategy set."),
    ("orders", "orders_total", "Orders accepted by the risk manager."),
    ("fills", "fills_total", "Paper fills."),
    ("reloads", "reloads_total", "Hot reloads of the strategy set kept."),
    (
        "reloads_refused",
        "reloads_refused_total",
        "Registry sets refused (a champion without validation evidence, a broken version, "
        "the registry away); the running set stayed.",
    ),
    ("read_errors", "feed_read_errors_total", "Feed reads that failed (Redis away)."),
    ("restarts", "core_restarts_total", "Times the core started again under its name."),
)
_WRITER: tuple[tuple[str, str, str, str], ...] = (
    ("reconnects", "redis_reconnects_total", "counter", "Times the writer reconnected to Redis."),
    ("dropped", "redis_dropped_total", "counter", "Messages dropped past the buffer bound."),
    ("buffered", "redis_buffered", "gauge", "Messages buffered while Redis is away."),
    ("buffer_bound", "redis_buffer_bound", "gauge", "Messages the buffer holds at most."),
    ("connected", "redis_connected", "gauge", "1 if the last write to Redis succeeded."),
)
_LATENCIES: tuple[tuple[str, str, str], ...] = (
    ("fast_cycle", "fast_cycle_seconds", "Duration of the fast tier's cycles."),
    ("tactical_cycle", "tactical_cycle_seconds", "Duration of the tactical tier's cycles."),
    ("tick_to_signal", "tick_to_signal_seconds", "From a tick reaching Redis to its signal."),
)
# Redis-side sizes only the dashboard sees. Stream lengths shrink when the ledger is archived
# and trimmed, so they are gauges, never counters.
_STORED: tuple[tuple[str, str, str], ...] = (
    ("orders_stored", "orders_stored", "Orders in the core's Redis stream (shrinks on trim)."),
    ("fills_stored", "fills_stored", "Fills in the core's Redis stream (shrinks on trim)."),
)


class SummaryCollector(Collector):
    """The metric families of a core's summary, read anew from ``get_summary`` on each collect.

    The summary is a plain mapping: the running core's numbers (:class:`CoreMetrics`) or its
    status read back from Redis (the dashboard). Keys, all optional: ``core`` (the ``core``
    label); counters ``events_in``, ``signals_out``, ``orders``, ``fills``, ``reloads``,
    ``read_errors``, ``restarts``, ``rejected_by_reason`` (label -> count); ``redis`` (the
    writer's stats); ``fast_cycle`` (with ``overruns``), ``tactical_cycle`` and
    ``tick_to_signal``, each with a ``histogram`` (``bounds_s``, cumulative ``counts``,
    ``count``, ``sum_s``); gauges ``equity``, ``drawdown``, ``risk_mode``, ``heartbeat_ns``,
    ``per_strategy`` rows (``strategy``, ``pnl``, ``weight``), ``active_set`` rows (``name``,
    ``version``); and the dashboard's ``orders_stored``, ``fills_stored`` and
    ``learning_events`` rows (``kind``, ``strategy``, ``count``).

    A value of the wrong type or out of range (it may come from Redis) is left out, never an
    error; families without a sample are not exposed.
    """

    def __init__(self, get_summary: Callable[[], Mapping[str, Any]]) -> None:
        self._get_summary = get_summary

    def collect(self) -> Iterator[Metric]:
        summary = self._get_summary()
        core = str(summary.get("core", ""))
        families = [
            *_counters(summary, core),
            *_latencies(summary, core),
            *_gauges(summary, core),
            *_per_strategy(summary, core),
            _learning_events(summary.get("learning_events")),
        ]
        yield from (family for family in families if family.samples)


def exposition(summary: Mapping[str, Any]) -> bytes:
    """The Prometheus text exposition of ``summary`` (see :class:`SummaryCollector`), made
    by ``prometheus_client`` from a private registry (the process-wide one holds nothing of
    ours); serve it as :data:`prometheus_client.CONTENT_TYPE_LATEST`."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SummaryCollector(lambda: summary))
    return generate_latest(registry)


def _counters(summary: Mapping[str, Any], core: str) -> Iterator[Metric]:
    for key, name, help_text in _COUNTERS:
        yield _single(CounterMetricFamily, name, help_text, core, _count(summary.get(key)))
    rejected = CounterMetricFamily(
        f"{PREFIX}_input_rejected_total",
        "Input rejected and dead-lettered, by reason.",
        labels=["core", "reason"],
    )
    by_reason = summary.get("rejected_by_reason")
    if isinstance(by_reason, Mapping):
        for reason, count in sorted(by_reason.items(), key=lambda item: str(item[0])):
            if _count(count) is not None and len(rejected.samples) < MAX_SERIES:
                rejected.add_metric([core, str(reason)], count)
    yield rejected
    writer = _mapping(summary.get("redis"))
    for key, name, kind, help_text in _WRITER:
        if kind == "counter":
            yield _single(CounterMetricFamily, name, help_text, core, _count(writer.get(key)))
        else:
            yield _single(GaugeMetricFamily, name, help_text, core, _gauge(writer.get(key)))
    overruns = _count(_mapping(summary.get("fast_cycle")).get("overruns"))
    yield _single(
        CounterMetricFamily, "fast_cycle_overruns_total", "Fast cycles over their budget.",
        core, overruns,
    )  # fmt: skip


def _latencies(summary: Mapping[str, Any], core: str) -> Iterator[Metric]:
    for key, name, help_text in _LATENCIES:
        family = HistogramMetricFamily(
            f"{PREFIX}_{name}", help_text, labels=["core"], unit="seconds"
        )
        histogram = _mapping(_mapping(summary.get(key)).get("histogram"))
        buckets = _buckets(histogram)
        if buckets is not None:
            family.add_metric([core], buckets, float(histogram["sum_s"]))
        yield family


def _buckets(histogram: Mapping[str, Any]) -> list[tuple[str, float]] | None:
    """The buckets (``le`` label, cumulative count) of a summary's histogram, ``+Inf`` last;
    None unless it is well formed: finite increasing bounds, counts that never decrease."""
    bounds, counts = histogram.get("bounds_s"), histogram.get("counts")
    total, sum_s = _count(histogram.get("count")), _gauge(histogram.get("sum_s"))
    if not (isinstance(bounds, list) and isinstance(counts, list)):
        return None
    if total is None or sum_s is None or not 0 < len(bounds) == len(counts) <= MAX_BUCKETS:
        return None
    if any(_gauge(b) is None for b in bounds) or any(_count(c) is None for c in counts):
        return None
    ordered = all(a < b for a, b in itertools.pairwise(bounds))
    cumulative = all(a <= b for a, b in itertools.pairwise([*counts, total]))
    if not (ordered and cumulative):
        return None
    return [(floatToGoString(b), c) for b, c in zip(bounds, counts, strict=True)] + [
        ("+Inf", total)
    ]


def _gauges(summary: Mapping[str, Any], core: str) -> Iterator[Metric]:
    yield _single(GaugeMetricFamily, "equity", "Paper account equity.", core,
                  _gauge(summary.get("equity")))  # fmt: skip
    drawdown = _gauge(summary.get("drawdown"))
    yield _single(
        GaugeMetricFamily, "drawdown_ratio",
        "Fraction of equity below its running peak (0 to 1), as the risk manager measures it.",
        core, drawdown if drawdown is not None and 0 <= drawdown <= 1 else None,
    )  # fmt: skip
    mode = summary.get("risk_mode")
    known = isinstance(mode, str)
    yield _single(GaugeMetricFamily, "halted", "1 while the risk manager has halted trading.",
                  core, float(mode == "halted") if known else None)  # fmt: skip
    yield _single(
        GaugeMetricFamily, "risk_reduce_only",
        "1 while the risk manager accepts only orders that reduce positions.",
        core, float(mode == "reduce_only") if known else None,
    )  # fmt: skip
    beat = _count(summary.get("heartbeat_ns"))
    yield _single(
        GaugeMetricFamily, "status_timestamp_seconds",
        "Unix time the core last made its status (its heartbeat).",
        core, beat / 1e9 if beat is not None else None,
    )  # fmt: skip
    for key, name, help_text in _STORED:
        yield _single(GaugeMetricFamily, name, help_text, core, _count(summary.get(key)))


def _per_strategy(summary: Mapping[str, Any], core: str) -> Iterator[Metric]:
    pnl = GaugeMetricFamily(
        f"{PREFIX}_strategy_pnl", "PnL of each strategy's own book.", labels=["core", "strategy"]
    )
    weight = GaugeMetricFamily(
        f"{PREFIX}_strategy_weight",
        "Each strategy's weight in the composer.",
        labels=["core", "strategy"],
    )
    for row in _rows(summary.get("per_strategy")):
        name = row.get("strategy")
        if not isinstance(name, str):
            continue
        for family, key in ((pnl, "pnl"), (weight, "weight")):
            value = _gauge(row.get(key))
            if value is not None and len(family.samples) < MAX_SERIES:
                family.add_metric([core, name], value)
    version = GaugeMetricFamily(
        f"{PREFIX}_active_version",
        "Registry version of each model in the active set (changes when a champion does).",
        labels=["core", "model"],
    )
    for row in _rows(summary.get("active_set")):
        name, number = row.get("name"), _version(row.get("version"))
        if isinstance(name, str) and number is not None and len(version.samples) < MAX_SERIES:
            version.add_metric([core, name], number)
    yield from (pnl, weight, version)


def _learning_events(rows: Any) -> Metric:
    # Not per core: the learning tier's flows serve every core of the namespace.
    family = CounterMetricFamily(
        f"{PREFIX}_learning_events_total",
        "Learning-tier events (gate_failed, retrain_failed, promoted, rolled_back) by strategy.",
        labels=["kind", "strategy"],
    )
    for row in _rows(rows):
        kind, strategy, count = row.get("kind"), row.get("strategy"), _count(row.get("count"))
        if not (isinstance(kind, str) and isinstance(strategy, str)) or count is None:
            continue
        if len(family.samples) < MAX_SERIES:
            family.add_metric([kind, strategy], count)
    return family


def _single(
    kind: type[CounterMetricFamily] | type[GaugeMetricFamily],
    name: str,
    help_text: str,
    core: str,
    value: float | None,
) -> Metric:
    family = kind(f"{PREFIX}_{name}", help_text, labels=["core"])
    if value is not None:
        family.add_metric([core], value)
    return family


def _gauge(value: Any) -> float | None:
    """A finite number (a bool as 0 or 1), else None."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    return None


def _count(value: Any) -> float | None:
    """A finite number >= 0 that is not a bool (what a counter may hold), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) and value >= 0 else None


def _version(value: Any) -> float | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str) and value.isdecimal() and len(value) <= 18:
        return float(int(value))
    return None  # "local" and other names: no number to expose


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _rows(value: Any) -> list[Mapping[str, Any]]:
    return [row for row in value if isinstance(row, Mapping)] if isinstance(value, list) else []


# --- serving -----------------------------------------------------------------------------------
# A stdlib server, because no ASGI server is the project's HTTP layer yet (the HTTP API work
# replaces it); strategy_engine.http_guard bounds its time, input and threads, keeps it on
# loopback and refuses requests for other hosts, as it does for the dashboard's server.

_METRIC_PATH = re.compile(r"^/metrics/?(\?.*)?$")
_TEXT = "text/plain; charset=utf-8"


class MetricsServer(GuardedHTTPServer):
    """An HTTP server answering ``GET /metrics``; :attr:`url` says where.

    Parameters
    ----------
    address : tuple of (str, int)
        Where to listen: loopback (another address needs ``guard.token``).
    get_summary : callable
        Returns the summary exposed on each scrape (see :class:`SummaryCollector`).
    guard : HttpGuard or None
        Timeouts and bounds; the defaults when None.
    """

    def __init__(
        self,
        address: tuple[str, int],
        get_summary: Callable[[], Mapping[str, Any]],
        guard: HttpGuard | None = None,
    ) -> None:
        self.get_summary = get_summary
        super().__init__(address, _MetricsHandler, guard)

    @property
    def url(self) -> str:
        return f"{self.base_url}/metrics"


class _MetricsHandler(GuardedHandler):
    server: MetricsServer

    def do_GET(self) -> None:
        if not _METRIC_PATH.match(self.path):
            self.respond(404, b"only /metrics is served here\n", _TEXT)
            return
        try:
            body = exposition(self.server.get_summary())
        except Exception as exc:  # a scrape must answer, never take the server down
            self.respond(500, f"metrics unavailable: {type(exc).__name__}\n".encode(), _TEXT)
            return
        self.respond(200, body, CONTENT_TYPE_LATEST)


def serve_metrics(
    get_summary: Callable[[], Mapping[str, Any]],
    host: str = "127.0.0.1",
    port: int = 9108,
    guard: HttpGuard | None = None,
) -> MetricsServer:
    """Serve ``/metrics`` made from ``get_summary()`` on ``host:port`` in a daemon thread.

    Parameters
    ----------
    get_summary : callable
        Called on every scrape, on the server's thread (e.g. a :class:`CoreMetrics`).
    host, port : str, int
        Where to listen; loopback by default, port 0 picks a free port.
    guard : HttpGuard or None
        Timeouts, bounds and allowed host names (:mod:`strategy_engine.http_guard`); the
        defaults when None.

    Returns
    -------
    MetricsServer
        Already serving; call ``stop()`` to shut it down.
    """
    server = MetricsServer((host, port), get_summary, guard)
    thread = threading.Thread(target=server.serve_forever, name="metrics", daemon=True)
    thread.start()
    return server
