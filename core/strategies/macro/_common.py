"""Small pieces shared by the macro strategies: a JSON-safe ring of floats and frame helpers."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from core.errors import DataError
from core.state import decode_floats, encode_floats
from core.strategies.arrays import last_row

DAY_NS = 86_400 * 1_000_000_000


class Ring:
    """The last ``size`` floats, oldest first once full; O(1) push, JSON-safe state."""

    __slots__ = ("_buffer", "_count", "_index", "size")

    def __init__(self, size: int) -> None:
        self.size = size
        self._buffer = [math.nan] * size
        self._index = 0
        self._count = 0

    @property
    def full(self) -> bool:
        return self._count >= self.size

    @property
    def count(self) -> int:
        return self._count

    def push(self, x: float) -> None:
        self._buffer[self._index] = x
        self._index = (self._index + 1) % self.size
        self._count = min(self._count + 1, self.size)

    @property
    def newest(self) -> float:
        return self._buffer[(self._index - 1) % self.size] if self._count else math.nan

    @property
    def oldest(self) -> float:
        """The value pushed ``size - 1`` pushes before the newest (NaN until full)."""
        return self._buffer[self._index] if self.full else math.nan

    def values(self) -> list[float]:
        """Contents oldest first."""
        if not self.full:
            return self._buffer[: self._count]
        return self._buffer[self._index :] + self._buffer[: self._index]

    def to_state(self) -> dict[str, Any]:
        return {"values": encode_floats(self.values())}

    def restore(self, state: dict[str, Any]) -> None:
        values = decode_floats(state["values"])
        if len(values) > self.size:
            raise ValueError(f"ring state has {len(values)} values, size is {self.size}")
        self.__init__(self.size)  # type: ignore[misc]
        for v in values:
            self.push(v)


def month_index(ts_event: int) -> int:
    """Calendar month number (year * 12 + month - 1) of a UTC nanosecond stamp."""
    day = datetime.fromtimestamp(ts_event // 1_000_000_000, tz=UTC)
    return day.year * 12 + day.month - 1


def month_indices(ts_event: np.ndarray) -> np.ndarray:
    """Vectorized :func:`month_index`."""
    stamps = pd.DatetimeIndex(np.asarray(ts_event, dtype=np.int64).astype("datetime64[ns]"))
    return np.asarray(stamps.year * 12 + stamps.month - 1, dtype=np.int64)


def bar_rows(frame: pd.DataFrame) -> np.ndarray:
    """Mask of the bar rows of an event frame, checking they are one symbol's bars."""
    bars = (frame["kind"] == "bar").to_numpy(bool)
    symbols = set(frame.loc[bars, "symbol"].astype("str"))
    if len(symbols) > 1:
        raise DataError(
            f"event frame has bars of several symbols ({', '.join(sorted(symbols))}); "
            "pass the traded symbol's bars only"
        )
    return bars


def series_asof(frame: pd.DataFrame, values: pd.Series) -> pd.Series:
    """Carry ``values`` (indexed by rows of ``frame``) forward to every later row.

    Values are NaN only during a series' own warm-up, which precedes its first number, so a
    forward fill never carries a number over a later gap.
    """
    out = pd.Series(np.nan, index=frame.index, dtype="float64")
    out.loc[values.index] = values.to_numpy(np.float64)
    return out.ffill()


def series_rows(frame: pd.DataFrame, series: str) -> np.ndarray:
    """Mask of the macro rows of ``series`` in an event frame."""
    return ((frame["kind"] == "macro") & (frame["series"] == series)).to_numpy(bool)


def series_values(frame: pd.DataFrame, series: str) -> pd.Series:
    """The ``value`` column of the macro rows of ``series``, in stream order."""
    return frame.loc[series_rows(frame, series), "value"].astype("float64")


def fresh_since(ts_event: np.ndarray, mask: np.ndarray, max_age_ns: int) -> np.ndarray:
    """Rows where the latest ``mask`` row exists and is at most ``max_age_ns`` old."""
    last = last_row(mask)
    ts = np.asarray(ts_event, dtype=np.int64)
    age = ts - ts[np.maximum(last, 0)]
    return (last >= 0) & (age <= max_age_ns)
