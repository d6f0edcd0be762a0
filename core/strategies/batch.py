"""Batch form of a strategy: one strategy type over many symbols, updated with numpy.

A deployment that runs on many symbols (a bar strategy over the equities universe) costs one
Python ``update`` per symbol per bar in its per-instance form. Its batch form keeps every
symbol's state as a row of numpy arrays and advances all the symbols of a batch of events in a
few array operations. It computes with the same floating-point operations in the same order as
the per-instance form, so the two give bit-identical signals, and a row's state is exactly the
per-instance ``to_state`` (snapshots, restores and hot-reload carry-over are shared).

Only the changed targets become :class:`Signal` objects; that and the rare exact re-summation of
a ring are the only per-symbol Python work left.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from typing import Any, ClassVar, Generic, Literal, TypeVar

import numpy as np
import numpy.typing as npt

from core.indicator_banks import FloatArray, IntArray
from core.model import Lineage, Signal
from core.strategies.base import Strategy, StrategyConfig

C = TypeVar("C", bound=StrategyConfig)

# When the applicator runs a batch form: from the form's ``auto_from`` symbols on, always
# (where one exists and the model is not pinned to one symbol), or never.
BatchMode = Literal["auto", "always", "never"]

# (the input's label, by default its index in the input arrays; the signal it caused)
Emitted = list[tuple[int, Signal]]


class BatchStrategy(ABC, Generic[C]):
    """Many instances of one strategy type with one config, one row per symbol.

    Subclasses set nothing by hand: :func:`batch_form` links them to their strategy type.
    They create their indicator banks in ``__init__``, add a row to each in :meth:`_add_rows`,
    compute targets in :meth:`_step`, and explain the few that changed in :meth:`_explain`.
    """

    strategy_type: ClassVar[type[Strategy[Any]]]
    # Names of the ``reason`` entries, in the order :meth:`_explain` returns them.
    reason_names: ClassVar[tuple[str, ...]]
    # The universe size from which the "auto" mode runs this form. Each array operation costs
    # about a microsecond whatever its length, so a form pays off only when a batch holds many
    # symbols; ``strategy-engine bench`` measures where (a form whose targets move on most bars
    # never pays: building the signals, the same in both forms, is then the cost).
    auto_from: ClassVar[int] = 256

    def __init__(self, config: C, name: str, lineage: Lineage, capacity: int = 16) -> None:
        self.config = config
        self.name = name
        self.lineage = lineage
        self.symbols: list[str] = []
        self._capacity = max(1, capacity)
        # The last emitted target per row; NaN until the row's first signal.
        self._last_target = np.full(self._capacity, np.nan)

    def add_symbol(self, symbol: str) -> int:
        """A row for ``symbol``, in the state of a freshly built instance."""
        row = len(self.symbols)
        if row == self._capacity:
            self._capacity *= 2
            self._last_target = _grown(self._last_target, self._capacity)
        self._last_target[row] = np.nan
        added = self._add_rows()
        if added != row:  # every bank grows in step with the symbol list
            raise RuntimeError(f"{self.name}: bank row {added} for symbol row {row}")
        self.symbols.append(symbol)
        return row

    def update(
        self, rows: IntArray, ts: IntArray, close: FloatArray, labels: IntArray | None = None
    ) -> Emitted:
        """Advance the distinct ``rows`` by one bar each; the signals of changed targets,
        each with its input's label (``labels[k]``, or ``k`` without labels)."""
        target = self._step(rows, close)
        # NaN != anything: a warming-up row (target NaN) is dropped by the isnan test, and a
        # row's first target always differs from its NaN "last".
        picked = np.flatnonzero(target != self._last_target[rows])
        if picked.size == 0:
            return []
        picked = picked[~np.isnan(target[picked])]
        if picked.size == 0:
            return []
        changed_rows = rows[picked]
        self._last_target[changed_rows] = target[picked]
        named = picked if labels is None else labels[picked]
        return self._signals(picked, named, changed_rows, ts, target)

    def _signals(
        self,
        picked: npt.NDArray[np.intp],
        labels: npt.NDArray[np.integer[Any]],
        rows: IntArray,
        ts: IntArray,
        target: FloatArray,
    ) -> Emitted:
        """The signals of the ``picked`` inputs (whose ``rows`` changed target)."""
        name, lineage, names, symbols = self.name, self.lineage, self.reason_names, self.symbols
        columns = (
            labels.tolist(),
            rows.tolist(),
            ts[picked].tolist(),
            target[picked].tolist(),
            *self._explain(picked),
        )
        return [
            (
                k,
                Signal(
                    strategy=name,
                    symbol=symbols[row],
                    ts_event=stamp,
                    target_position=position,
                    strength=force,
                    reason=dict(zip(names, values, strict=True)),
                    lineage=lineage,
                ),
            )
            for k, row, stamp, position, force, values in zip(*columns, strict=True)
        ]

    def update_in_rounds(
        self, rows: IntArray, ts: IntArray, close: FloatArray, labels: IntArray | None = None
    ) -> Emitted:
        """Advance rows that may repeat (several bars of a symbol in one batch), in order.

        The k-th bar of every symbol goes in round k, so each round's rows are distinct and
        each symbol still sees its bars in their order. Signals come round by round.
        """
        if rows.size == 0:
            return []
        names = np.arange(rows.size) if labels is None else labels
        rank = _occurrence_rank(rows)
        rounds = int(rank.max()) + 1
        if rounds == 1:
            return self.update(rows, ts, close, names)
        by_round = np.argsort(rank, kind="stable")
        bounds = np.searchsorted(rank[by_round], np.arange(rounds + 1))
        emitted: Emitted = []
        for start, stop in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True):
            at = by_round[start:stop]
            emitted += self.update(rows[at], ts[at], close[at], names[at])
        return emitted

    def row_state(self, row: int) -> dict[str, Any]:
        """The row's state, exactly the per-instance ``to_state``."""
        last = float(self._last_target[row])
        emitted = not math.isnan(last)
        return {
            "emitted": emitted,
            "last_output": [last if emitted else 0.0, None, None],
            **self._row_state(row),
        }

    def restore_row(self, row: int, state: dict[str, Any]) -> None:
        """Resume a row from a per-instance (or row) snapshot."""
        emitted = bool(state["emitted"])
        self._last_target[row] = float(state["last_output"][0]) if emitted else np.nan
        self._restore_row(row, state)

    @abstractmethod
    def _add_rows(self) -> int:
        """Add one row to every bank; return its index."""

    @abstractmethod
    def _step(self, rows: IntArray, close: FloatArray) -> FloatArray:
        """Advance ``rows``; their targets (NaN while warming up)."""

    @abstractmethod
    def _explain(
        self, picked: npt.NDArray[np.intp]
    ) -> tuple[list[float], Iterable[tuple[float, ...]]]:
        """Strength and ``reason_names`` values of the last step's ``picked`` inputs (plain
        floats, computed as the per-instance form does: only changed targets need them)."""

    @abstractmethod
    def _row_state(self, row: int) -> dict[str, Any]: ...

    @abstractmethod
    def _restore_row(self, row: int, state: dict[str, Any]) -> None: ...


B = TypeVar("B", bound=type[BatchStrategy[Any]])


def batch_form(strategy: type[Strategy[Any]]) -> Callable[[B], B]:
    """Class decorator: the decorated class is ``strategy``'s batch form."""

    def link(batch: B) -> B:
        batch.strategy_type = strategy
        strategy.batch_type = batch
        return batch

    return link


def _occurrence_rank(rows: IntArray) -> npt.NDArray[np.intp]:
    """For each position, how many earlier positions hold the same row."""
    n = rows.size
    order = np.argsort(rows, kind="stable")
    ordered = rows[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    group_start = np.repeat(starts, np.diff(np.r_[starts, n]))
    rank = np.empty(n, dtype=np.intp)
    rank[order] = np.arange(n) - group_start
    return rank


def _grown(array: np.ndarray, capacity: int) -> Any:
    new = np.full(capacity, np.nan)
    new[: array.size] = array
    return new
