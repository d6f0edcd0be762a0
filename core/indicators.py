"""Incremental indicators: O(1) time and fixed memory per update.

Each indicator is a tiny object with ``update(x) -> value | nan`` and JSON-safe state, so a
strategy that owns it can be saved and restored exactly.
"""

from __future__ import annotations

import math
from typing import Any

from core.state import decode_float, decode_floats, encode_float


def saved_ring(state: dict[str, Any], length: int, what: str = "period") -> list[float]:
    """The ``buffer`` of a ring-buffer snapshot, refused unless it holds ``length`` values."""
    buffer = decode_floats(state["buffer"])
    if len(buffer) != length:
        raise ValueError(f"state buffer has {len(buffer)} values, {what} is {length}")
    return buffer


class RollingMean:
    """Simple moving average over the last ``period`` values, via a ring buffer and a running sum.

    The running sum is rebuilt from the buffer once per full turn of the ring so floating-point
    drift cannot accumulate over a long-running session.
    """

    __slots__ = ("_buffer", "_count", "_index", "_sum", "period")

    def __init__(self, period: int) -> None:
        self.period = period
        self._buffer = [0.0] * period
        self._index = 0
        self._count = 0
        self._sum = 0.0

    @property
    def ready(self) -> bool:
        return self._count >= self.period

    @property
    def value(self) -> float:
        return self._sum / self.period if self.ready else math.nan

    def update(self, x: float) -> float:
        i = self._index
        self._sum += x - self._buffer[i]
        self._buffer[i] = x
        self._index = i + 1 if i + 1 < self.period else 0
        if self._count < self.period:
            self._count += 1
        if self._index == 0:
            self._sum = math.fsum(self._buffer)
        # Inlined ``value``: this runs once per bar per indicator, a property call doubles it.
        return self._sum / self.period if self._count >= self.period else math.nan

    def to_state(self) -> dict[str, Any]:
        # The running sum is saved as is, so a restored average continues bit for bit.
        return {
            "buffer": list(self._buffer),
            "index": self._index,
            "count": self._count,
            "sum": self._sum,
        }

    def restore(self, state: dict[str, Any]) -> None:
        buffer = saved_ring(state, self.period)
        self._buffer = buffer
        self._index = int(state["index"])
        self._count = int(state["count"])
        self._sum = float(state["sum"]) if "sum" in state else math.fsum(buffer)


class ExponentialMean:
    """Exponential moving average with ``alpha = 2 / (span + 1)``, seeded with the first value.

    Matches ``pandas.Series.ewm(span=span, adjust=False).mean()``; ``ready`` after ``span``
    values so its warm-up equals that of a simple average of the same length.
    """

    __slots__ = ("_alpha", "_count", "_value", "span")

    def __init__(self, span: int) -> None:
        self.span = span
        self._alpha = 2.0 / (span + 1.0)
        self._value = math.nan
        self._count = 0

    @property
    def ready(self) -> bool:
        return self._count >= self.span

    @property
    def value(self) -> float:
        return self._value if self.ready else math.nan

    def update(self, x: float) -> float:
        if self._count == 0:
            self._value = x
        else:
            self._value = self._alpha * x + (1.0 - self._alpha) * self._value
        self._count += 1
        return self._value if self._count >= self.span else math.nan

    def to_state(self) -> dict[str, Any]:
        return {"value": encode_float(self._value), "count": self._count}

    def restore(self, state: dict[str, Any]) -> None:
        self._value = decode_float(state["value"])
        self._count = int(state["count"])
