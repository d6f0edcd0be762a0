"""Fixed-size timing records: cycle durations and latencies, with percentiles on demand."""

from __future__ import annotations

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
