"""Prometheus metrics of a core: text exposition, latency histograms, and a tiny HTTP server.

:func:`render_metrics` turns a core's summary (a plain dict: the running core's own numbers
through :class:`CoreMetrics`, or the status report it publishes to Redis) into the text
exposition format, version 0.0.4. Latencies are histograms when the summary carries bucket
counts (the running core) and summaries of quantiles when it carries only percentiles (the
status report in Redis). :func:`serve_metrics` serves ``/metrics`` from a daemon thread.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from core.runtime.ingest import RejectCode
from strategy_engine.http_guard import GuardedHandler, GuardedHTTPServer, HttpGuard

if TYPE_CHECKING:
    from core.runtime.service import CoreService
    from core.runtime.timing import LatencyRecorder

PREFIX = "strategy_engine"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS_S: tuple[float, ...] = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
)  # fmt: skip
"""Upper bounds (seconds) of the latency buckets: 100 µs up to ten fast-cycle budgets."""

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


# --- histograms --------------------------------------------------------------------------------


def histogram(
    samples_ns: np.ndarray, bounds_s: tuple[float, ...] = LATENCY_BUCKETS_S
) -> dict[str, Any]:
    """Return the cumulative histogram of nanosecond samples.

    Returns
    -------
    dict
        ``bounds_s`` (upper bounds), ``counts`` (samples <= each bound), ``count`` (all
        samples, the ``+Inf`` bucket) and ``sum_s`` (their sum in seconds).
    """
    per_bucket = _bucket_counts(np.asarray(samples_ns, dtype=np.int64), bounds_s)
    cumulative = np.cumsum(per_bucket)
    return {
        "bounds_s": list(bounds_s),
        "counts": [int(c) for c in cumulative[:-1]],
        "count": int(cumulative[-1]),
        "sum_s": float(np.sum(samples_ns, dtype=np.float64)) / 1e9,
    }


def _bucket_counts(samples_ns: np.ndarray, bounds_s: tuple[float, ...]) -> np.ndarray:
    bounds_ns = np.round(np.asarray(bounds_s) * 1e9).astype(np.int64)
    # side="left": a sample equal to a bound belongs to that bound's bucket (le = "<=").
    index = np.searchsorted(bounds_ns, samples_ns, side="left")
    return np.bincount(index, minlength=len(bounds_ns) + 1).astype(np.int64)


class RecorderHistogram:
    """Cumulative bucket counts of a :class:`LatencyRecorder`, growing as it records.

    Each :meth:`snapshot` adds the samples recorded since the previous one, read from the
    recorder's ring, so the counts only ever grow (as Prometheus counters must) however long
    the core runs. Samples overwritten in the ring before a snapshot saw them (more than the
    ring's capacity between two scrapes) are not counted.
    """

    def __init__(
        self, recorder: LatencyRecorder, bounds_s: tuple[float, ...] = LATENCY_BUCKETS_S
    ) -> None:
        self._recorder = recorder
        self._bounds_s = bounds_s
        self._per_bucket = np.zeros(len(bounds_s) + 1, dtype=np.int64)
        self._sum_ns = 0
        self._seen = 0
        self._lock = threading.Lock()

    def snapshot(self) -> dict[str, Any]:
        """Return the histogram (as :func:`histogram` does) of every sample seen so far."""
        with self._lock:
            self._take_new_samples()
            cumulative = np.cumsum(self._per_bucket)
            return {
                "bounds_s": list(self._bounds_s),
                "counts": [int(c) for c in cumulative[:-1]],
                "count": int(cumulative[-1]),
                "sum_s": self._sum_ns / 1e9,
            }

    def _take_new_samples(self) -> None:
        # The recorder writes a sample before counting it, so reading the count first means
        # every sample below it is already in the ring (the core records on another thread).
        total = self._recorder.count
        ring = self._recorder.samples()
        if total <= self._seen or len(ring) == 0:
            return
        first = max(self._seen, total - len(ring))
        new = ring[np.arange(first, total) % len(ring)]
        self._per_bucket += _bucket_counts(new, self._bounds_s)
        self._sum_ns += int(new.sum())
        self._seen = total


class CoreMetrics:
    """The numbers of a running core for :func:`render_metrics`, read from another thread.

    Only counters and recorders are read (no engine summary, which mutates the tracker), so a
    scrape never disturbs the core's loop.
    """

    def __init__(self, service: CoreService) -> None:
        self.service = service
        self._fast = RecorderHistogram(service.fast)
        self._tick_to_signal = RecorderHistogram(service.tick_to_signal)

    def __call__(self) -> dict[str, Any]:
        service = self.service
        summary: dict[str, Any] = {
            "core": service.settings.name,
            "events_rejected": service.rejected,
            "rejected_by_reason": dict(service.rejected_by_reason),
            "reloads": service.reloads,
            "read_errors": service.read_errors,
            "redis": service.writer.stats(),
            "fast_cycle": {
                "histogram": self._fast.snapshot(),
                "overruns": service.fast.overruns,
                "budget_ms": service.fast.budget_ns / 1e6,
            },
            "tick_to_signal": {"histogram": self._tick_to_signal.snapshot()},
        }
        engine = service.engine
        if engine is not None:
            summary.update(
                events_in=engine.tracker.events,
                signals_out=engine.tracker.signals,
                fills=engine.tracker.fills,
                orders=engine.risk.accepted,
                equity=engine.portfolio.equity,
            )
        return summary


# --- exposition --------------------------------------------------------------------------------

_COUNTERS: tuple[tuple[str, str, str], ...] = (
    ("events_in", "events_in_total", "Market events taken in by the core."),
    ("signals_out", "signals_out_total", "Signals produced by the active strategy set."),
    ("orders", "orders_total", "Orders accepted by the risk manager."),
    ("fills", "fills_total", "Paper fills."),
    ("reloads", "reloads_total", "Hot reloads of the strategy set kept."),
    ("read_errors", "feed_read_errors_total", "Feed reads that failed (Redis away)."),
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
    ("tick_to_signal", "tick_to_signal_seconds", "From a tick reaching Redis to its signal."),
)
_QUANTILES: tuple[tuple[str, str], ...] = (
    ("0.5", "p50_us"),
    ("0.99", "p99_us"),
    ("0.999", "p999_us"),
)


def render_metrics(summary: Mapping[str, Any]) -> str:
    """Render a core's summary in the Prometheus text exposition format (version 0.0.4).

    Parameters
    ----------
    summary : mapping
        ``core`` (the ``core`` label), counters ``events_in``, ``signals_out``, ``orders``,
        ``fills``, ``reloads``, ``read_errors``; rejected input as ``rejected_by_reason``
        (label -> count) or a total ``events_rejected``; ``redis`` (the writer's stats);
        ``fast_cycle`` and ``tick_to_signal`` with a ``histogram`` (see :func:`histogram`) or
        percentiles (``count``, ``p50_us``, ``p99_us``, ``p999_us``); optional ``equity``,
        ``heartbeat_ns`` and ``per_strategy`` rows (``strategy``, ``pnl``). Absent keys are
        left out of the output.

    Returns
    -------
    str
        The exposition text, ending with a newline.
    """
    core = {"core": str(summary.get("core", ""))}
    lines: list[str] = []
    for key, name, help_text in _COUNTERS:
        if _is_number(summary.get(key)):
            lines += _family(name, "counter", help_text, [(core, summary[key])])
    lines += _rejections(summary, core)
    writer = summary.get("redis") or {}
    for key, name, kind, help_text in _WRITER:
        if _is_number(writer.get(key)):
            lines += _family(name, kind, help_text, [(core, writer[key])])
    fast = summary.get("fast_cycle") or {}
    if _is_number(fast.get("overruns")):
        lines += _family(
            "fast_cycle_overruns_total", "counter", "Fast cycles over their budget.",
            [(core, fast["overruns"])],
        )  # fmt: skip
    for key, name, help_text in _LATENCIES:
        lines += _latency(name, help_text, summary.get(key) or {}, core)
    lines += _gauges(summary, core)
    return "\n".join(lines) + "\n"


def _rejections(summary: Mapping[str, Any], core: dict[str, str]) -> list[str]:
    by_reason = summary.get("rejected_by_reason")
    if isinstance(by_reason, Mapping):
        samples = [({**core, "reason": str(r)}, n) for r, n in sorted(by_reason.items())]
    elif _is_number(summary.get("events_rejected")):
        samples = [({**core, "reason": "unclassified"}, summary["events_rejected"])]
    else:
        return []
    return _family(
        "input_rejected_total", "counter", "Input rejected and dead-lettered, by reason.", samples
    )


def _latency(
    name: str, help_text: str, timing: Mapping[str, Any], core: dict[str, str]
) -> list[str]:
    hist = timing.get("histogram")
    if isinstance(hist, Mapping):
        full = f"{PREFIX}_{name}"
        lines = [f"# HELP {full} {help_text}", f"# TYPE {full} histogram"]
        for bound, count in zip(hist["bounds_s"], hist["counts"], strict=True):
            lines.append(_sample(f"{full}_bucket", {**core, "le": _number(bound)}, count))
        lines.append(_sample(f"{full}_bucket", {**core, "le": "+Inf"}, hist["count"]))
        lines.append(_sample(f"{full}_sum", core, hist["sum_s"]))
        lines.append(_sample(f"{full}_count", core, hist["count"]))
        return lines
    if not _is_number(timing.get("count")):
        return []
    # Only percentiles are known (a published status): a summary, quantiles in seconds.
    samples = [
        ({**core, "quantile": q}, timing[key] / 1e6 if _is_number(timing.get(key)) else math.nan)
        for q, key in _QUANTILES
    ]
    full = f"{PREFIX}_{name}"
    lines = [f"# HELP {full} {help_text}", f"# TYPE {full} summary"]
    lines += [_sample(full, labels, value) for labels, value in samples]
    lines.append(_sample(f"{full}_count", core, timing["count"]))
    return lines


def _gauges(summary: Mapping[str, Any], core: dict[str, str]) -> list[str]:
    lines: list[str] = []
    if _is_number(summary.get("equity")):
        lines += _family("equity", "gauge", "Paper account equity.", [(core, summary["equity"])])
    if _is_number(summary.get("heartbeat_ns")):
        lines += _family(
            "status_timestamp_seconds", "gauge", "When the core last published its status.",
            [(core, summary["heartbeat_ns"] / 1e9)],
        )  # fmt: skip
    rows = [r for r in summary.get("per_strategy") or [] if _is_number(r.get("pnl"))]
    if rows:
        samples = [({**core, "strategy": str(r["strategy"])}, r["pnl"]) for r in rows]
        lines += _family("strategy_pnl", "gauge", "PnL of each strategy's own book.", samples)
    return lines


def _family(
    name: str, kind: str, help_text: str, samples: Iterable[tuple[dict[str, str], Any]]
) -> list[str]:
    full = f"{PREFIX}_{name}"
    lines = [f"# HELP {full} {help_text}", f"# TYPE {full} {kind}"]
    return lines + [_sample(full, labels, value) for labels, value in samples]


def _sample(name: str, labels: Mapping[str, str], value: Any) -> str:
    if not labels:
        return f"{name} {_number(value)}"
    body = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
    return f"{name}{{{body}}} {_number(value)}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    number = float(value)
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "+Inf" if number > 0 else "-Inf"
    return repr(number)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and (not isinstance(value, float) or math.isfinite(value))


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
        Returns the summary rendered on each scrape.
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
            body = render_metrics(self.server.get_summary()).encode()
        except Exception as exc:  # a scrape must answer, never take the server down
            self.respond(500, f"metrics unavailable: {type(exc).__name__}\n".encode(), _TEXT)
            return
        self.respond(200, body, CONTENT_TYPE)


def serve_metrics(
    get_summary: Callable[[], Mapping[str, Any]],
    host: str = "127.0.0.1",
    port: int = 9108,
    guard: HttpGuard | None = None,
) -> MetricsServer:
    """Serve ``/metrics`` rendered from ``get_summary()`` on ``host:port`` in a daemon thread.

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
