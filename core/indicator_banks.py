"""Indicator banks: one incremental indicator for many symbols, updated with numpy.

Row ``r`` of a bank holds what one :mod:`core.indicators` object holds for one symbol. An update
takes an array of distinct rows and their new values and advances all of them with the same
floating-point operations, in the same order, as the scalar indicator, so a bank's values are
bit-identical to the per-symbol objects and its row states are their ``to_state`` exactly
(a bank row restores from a scalar snapshot and the other way round).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any

import numpy as np
import numpy.typing as npt

from core.indicators import saved_ring
from core.state import decode_float, encode_float

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


class Bank(ABC):
    """Per-row numpy arrays (named in ``_fields``) that double in length when rows run out."""

    _fields: tuple[str, ...] = ()

    def __init__(self, capacity: int) -> None:
        self.rows = 0
        self._capacity = max(1, capacity)

    def add_row(self) -> int:
        """A new row, in the state of a freshly built indicator."""
        row = self.rows
        if row == self._capacity:
            self._capacity *= 2
            for name in self._fields:
                old = getattr(self, name)
                new = np.zeros((self._capacity, *old.shape[1:]), dtype=old.dtype)
                new[:row] = old
                setattr(self, name, new)
        self.rows += 1
        self._reset_row(row)
        return row

    @abstractmethod
    def _reset_row(self, row: int) -> None:
        """Put ``row`` in the state of a freshly built indicator."""


class RollingMeanBank(Bank):
    """:class:`core.indicators.RollingMean` for many rows (ring buffers in one 2-D array).

    ``_seen`` counts values without the scalar's cap at ``period`` (one operation fewer per
    update); the state reports it capped, as the scalar form does.
    """

    _fields = ("_buffer", "_index", "_seen", "_sum", "_ring_start")

    def __init__(self, period: int, capacity: int = 16) -> None:
        super().__init__(capacity)
        self.period = period
        self._buffer = np.zeros((self._capacity, period))
        self._index = np.zeros(self._capacity, dtype=np.int64)
        self._seen = np.zeros(self._capacity, dtype=np.int64)
        self._sum = np.zeros(self._capacity)
        self._ring_start = np.zeros(self._capacity, dtype=np.int64)

    def _reset_row(self, row: int) -> None:
        self._buffer[row] = 0.0
        self._index[row] = self._seen[row] = 0
        self._sum[row] = 0.0
        self._ring_start[row] = row * self.period

    def update(self, rows: IntArray, x: FloatArray) -> FloatArray:
        """Add ``x[k]`` to row ``rows[k]`` (rows distinct); the means, NaN where not yet full."""
        period, ring = self.period, self._buffer.reshape(-1)
        index = self._index[rows]
        slot = self._ring_start[rows] + index
        total = self._sum[rows] + (x - ring[slot])
        ring[slot] = x
        index += 1
        wrapped = np.flatnonzero(index == period)
        if wrapped.size:
            index[wrapped] = 0
            # Once per turn of a ring its running sum is rebuilt exactly, as the scalar does.
            for k, row in zip(wrapped.tolist(), rows[wrapped].tolist(), strict=True):
                total[k] = math.fsum(self._buffer[row].tolist())
        self._index[rows] = index
        self._sum[rows] = total
        seen = self._seen[rows] + 1
        self._seen[rows] = seen
        return np.where(seen >= period, total / period, np.nan)

    def row_state(self, row: int) -> dict[str, Any]:
        return {
            "buffer": self._buffer[row].tolist(),
            "index": int(self._index[row]),
            "count": min(int(self._seen[row]), self.period),
            "sum": float(self._sum[row]),
        }

    def restore_row(self, row: int, state: dict[str, Any]) -> None:
        buffer = saved_ring(state, self.period)
        self._buffer[row] = buffer
        self._index[row] = int(state["index"])
        self._seen[row] = int(state["count"])
        self._sum[row] = float(state["sum"]) if "sum" in state else math.fsum(buffer)


class ExponentialMeanBank(Bank):
    """:class:`core.indicators.ExponentialMean` for many rows."""

    _fields = ("_value", "_count")

    def __init__(self, span: int, capacity: int = 16) -> None:
        super().__init__(capacity)
        self.span = span
        self._alpha = 2.0 / (span + 1.0)
        self._value = np.full(self._capacity, math.nan)
        self._count = np.zeros(self._capacity, dtype=np.int64)

    def _reset_row(self, row: int) -> None:
        self._value[row] = math.nan
        self._count[row] = 0

    def update(self, rows: IntArray, x: FloatArray) -> FloatArray:
        alpha = self._alpha
        count = self._count[rows]
        value = np.where(count == 0, x, alpha * x + (1.0 - alpha) * self._value[rows])
        self._value[rows] = value
        count += 1
        self._count[rows] = count
        return np.where(count >= self.span, value, np.nan)

    def row_state(self, row: int) -> dict[str, Any]:
        return {"value": encode_float(float(self._value[row])), "count": int(self._count[row])}

    def restore_row(self, row: int, state: dict[str, Any]) -> None:
        self._value[row] = decode_float(state["value"])
        self._count[row] = int(state["count"])
