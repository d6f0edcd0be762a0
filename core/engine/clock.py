"""Clocks: the core never reads the wall clock directly, so replay and live share one path."""

from __future__ import annotations


class SimulatedClock:
    """Time advanced by the events being replayed: ``now`` is the last event's timestamp."""

    __slots__ = ("_now",)

    def __init__(self, start_ns: int = 0) -> None:
        self._now = start_ns

    def advance_to(self, ts_ns: int) -> None:
        if ts_ns > self._now:
            self._now = ts_ns

    def now_ns(self) -> int:
        return self._now
