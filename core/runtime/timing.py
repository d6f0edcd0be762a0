"""Fixed-size timing records: cycle durations and latencies, with percentiles and cumulative
histograms on demand."""

from __future__ import annotations

import threading
import weakref
from typing import Any

import numpy as np


class LatencyRecorder:
    """The last ``capacity`` samples (nanoseconds) in a preallocated ring; O(1) per sample."""

    def __init__(self, capacity: int = 200_000) -> None:
        self._values = np.zeros(capacity, dtype=np.int64)
        self._next = 0
        self.count = 0

    def record(self, value_ns: int) -> None:
        self._values[self._next] = value_ns
        self._next = (self._next + 1) % len(self._values)
        self.count += 1

    def samples(self) -> np.ndarray:
        return self._values[: min(self.count, len(self._values))]

    def summary(self) -> dict[str, Any]:
        """Count and p50/p99/p99.9/max in microseconds (None when empty)."""
        values = self.samples()
        if len(values) == 0:
            return {"count": 0, "p50_us": None, "p99_us": None, "p999_us": None, "max_us": None}
        p50, p99, p999 = np.percentile(values, [50, 99, 99.9]) / 1e3
        return {
            "count": self.count,
            "p50_us": round(float(p50), 1),
            "p99_us": round(float(p99), 1),
            "p999_us": round(float(p999), 1),
            "max_us": round(float(values.max()) / 1e3, 1),
        }


class TierTimer(LatencyRecorder):
    """Cycle durations of one tier against its budget; a cycle over budget is an overrun."""

    def __init__(self, budget_ns: int, capacity: int = 100_000) -> None:
        super().__init__(capacity)
        self.budget_ns = budget_ns
        self.overruns = 0

    def record(self, value_ns: int) -> None:
        super().record(value_ns)
        if value_ns > self.budget_ns:
            self.overruns += 1

    def summary(self) -> dict[str, Any]:
        return {
            **super().summary(),
            "budget_ms": self.budget_ns / 1e6,
            "overruns": self.overruns,
        }


# --- cumulative histograms ---------------------------------------------------------------------

LATENCY_BUCKETS_S: tuple[float, ...] = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
)  # fmt: skip
"""Upper bounds (seconds) of the latency buckets: 100 µs up to ten fast-cycle budgets."""
TACTICAL_BUCKETS_S: tuple[float, ...] = (*LATENCY_BUCKETS_S, 2.5, 5.0, 10.0)
"""The tactical cycle's bounds: its budget is 1 to 60 s and it checkpoints the whole state
and waits on Redis, so durations of seconds are expected and must not all fall past 1 s."""


def bucket_counts(samples_ns: np.ndarray, bounds_s: tuple[float, ...]) -> np.ndarray:
    """Samples per bucket (not cumulative), the last entry past the highest bound."""
    bounds_ns = np.round(np.asarray(bounds_s) * 1e9).astype(np.int64)
    # side="left": a sample equal to a bound belongs to that bound's bucket (le = "<=").
    index = np.searchsorted(bounds_ns, samples_ns, side="left")
    return np.bincount(index, minlength=len(bounds_ns) + 1).astype(np.int64)


class RecorderHistogram:
    """Cumulative bucket counts of a :class:`LatencyRecorder`, growing as it records.

    Each :meth:`snapshot` adds the samples recorded since the previous one, read from the
    recorder's ring, so the counts only ever grow (as Prometheus counters must) however long
    the core runs, and a snapshot costs only what arrived since the last. Samples overwritten
    in the ring before a snapshot saw them (more than the ring's capacity in between) are not
    counted. Safe to call from several threads.
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
        """``bounds_s`` (upper bounds), ``counts`` (samples <= each bound), ``count`` (all
        samples, the ``+Inf`` bucket) and ``sum_s`` (their sum in seconds)."""
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
        self._per_bucket += bucket_counts(new, self._bounds_s)
        self._sum_ns += int(new.sum())
        self._seen = total


_SHARED: weakref.WeakKeyDictionary[LatencyRecorder, dict[tuple[float, ...], RecorderHistogram]]
_SHARED = weakref.WeakKeyDictionary()
_SHARED_LOCK = threading.Lock()


def cumulative_histogram(
    recorder: LatencyRecorder, bounds_s: tuple[float, ...] = LATENCY_BUCKETS_S
) -> dict[str, Any]:
    """The snapshot (see :meth:`RecorderHistogram.snapshot`) of the one cumulative histogram
    of ``recorder`` over ``bounds_s``.

    Every reader of a recorder (the status the core publishes, the metrics server's scrapes
    on their own thread) shares that histogram, so all report the same counts and none ever
    sees them go down.
    """
    with _SHARED_LOCK:
        per_bounds = _SHARED.setdefault(recorder, {})
        shared = per_bounds.get(bounds_s)
        if shared is None:
            shared = per_bounds[bounds_s] = RecorderHistogram(recorder, bounds_s)
    return shared.snapshot()
