"""Writes to Redis that survive Redis going away: a bounded, ordered buffer with retries.

Batches are kept in order and retried on every drain; ids make a retried batch harmless (the
store writes each signal, order and fill once). State and positions are last-write-wins, so
only the newest of each is kept, and they are written after the batches queued before them,
so a checkpoint never claims fills Redis does not have yet. Nothing is ever dropped: past
``max_items`` buffered items the writer is :attr:`~BufferedWriter.saturated`, and the core
stops reading input until Redis takes the backlog (backpressure). Its input stays in Redis,
unacknowledged, meanwhile.

An order or fill the store refuses as already written is counted (``duplicates``): after a
restart that redoes work since the last checkpoint this is expected; on a run without one it
would be a bug, and the tests hold it to zero.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from core.model import Fill, Order, Position, Signal

log = logging.getLogger(__name__)

# Errors that mean "Redis is away", not "this data is wrong"; given by the adapter.
TransientErrors = tuple[type[BaseException], ...]


class BufferedWriter:
    """A :class:`core.ports.SignalSink` and state store in front of a Redis store."""

    def __init__(
        self,
        store: Any,
        *,
        transient: TransientErrors,
        max_items: int = 200_000,
        retry_every_s: float = 0.5,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.max_items = max_items
        self._retry_every = retry_every_s
        self._monotonic = monotonic
        self._next_attempt = 0.0
        self._transient = transient
        # (write, items, counts): counted writes return how many items were new.
        self._batches: deque[tuple[Callable[[Sequence[Any]], object], list[Any], bool]] = deque()
        self._states: dict[str, dict[str, Any]] = {}
        self._positions: list[Position] | None = None
        self.buffered_items = 0
        self.duplicates = 0
        self.reconnects = 0
        self.connected = True
        self.last_error = ""
        # When the writer went away or filled up (monotonic s), for the "ended" events' length.
        self._lost_at = 0.0
        self._saturated_at: float | None = None

    def publish_signals(self, signals: Sequence[Signal]) -> None:
        self._submit(self.store.publish_signals, signals, counted=False)

    def record_orders(self, orders: Sequence[Order]) -> int:
        return self._submit(self.store.record_orders, orders, counted=True)

    def record_fills(self, fills: Sequence[Fill]) -> int:
        return self._submit(self.store.record_fills, fills, counted=True)

    @property
    def saturated(self) -> bool:
        """Whether the buffer holds its bound: the core must stop taking input."""
        return self.buffered_items >= self.max_items

    def save_positions(self, positions: Sequence[Position]) -> None:
        self._positions = list(positions)

    def save_state(self, key: str, state: dict[str, Any]) -> None:
        """Keep the newest state per key; :meth:`drain` writes them all in one round trip."""
        self._states[key] = state

    def load_state(self, key: str) -> dict[str, Any] | None:
        result: dict[str, Any] | None = self.store.load_state(key)
        return result

    def drain(self, *, force: bool = False) -> bool:
        """Write everything buffered, oldest first; False if Redis is still away.

        While Redis is away, attempts are spaced ``retry_every_s`` apart (``force`` overrides),
        so a dead connection costs the hot path nothing between attempts.
        """
        if not self.connected and not force and self._monotonic() < self._next_attempt:
            self._note_saturation()
            return False
        try:
            while self._batches:
                write, items, counted = self._batches[0]
                written = write(items)
                self._batches.popleft()
                self.buffered_items -= len(items)
                if counted and isinstance(written, int):
                    self.duplicates += len(items) - written
            if self._positions is not None:
                self.store.save_positions(self._positions)
                self._positions = None
            if self._states:
                self.store.save_states(self._states)
                self._states = {}
        except self._transient as exc:
            self.last_error = f"{type(exc).__name__}: {exc}"
            self._next_attempt = self._monotonic() + self._retry_every
            if self.connected:  # the first failure of an outage; retries stay quiet
                self._lost_at = self._monotonic()
                log.error(
                    "Redis write failed: outputs are buffered until it is back",
                    extra={"event": "redis_connection_lost", "component": "writer",
                           "error": self.last_error[:400], "buffered": self.buffered_items},
                )  # fmt: skip
            self.connected = False
            self._note_saturation()
            return False
        if not self.connected:
            self.connected = True
            self.reconnects += 1
            log.warning(
                "Redis write succeeded again: the buffered outputs are stored",
                extra={"event": "redis_reconnected", "component": "writer",
                       "down_s": round(self._monotonic() - self._lost_at, 3),
                       "reconnects": self.reconnects},
            )  # fmt: skip
        self._note_saturation()
        return True

    def _note_saturation(self) -> None:
        """Log when the buffer reaches its bound (the core stops reading) and when it drains
        below it again: once per episode, whatever the number of cycles in between."""
        saturated = self.buffered_items >= self.max_items
        if saturated and self._saturated_at is None:
            self._saturated_at = self._monotonic()
            log.error(
                "write buffer full: the core takes no input until Redis takes the backlog",
                extra={"event": "backpressure_started", "buffered": self.buffered_items,
                       "buffer_bound": self.max_items, "error": self.last_error[:400]},
            )  # fmt: skip
        elif not saturated and self._saturated_at is not None:
            log.warning(
                "write buffer below its bound again: the core reads input again",
                extra={"event": "backpressure_ended", "buffered": self.buffered_items,
                       "buffer_bound": self.max_items,
                       "duration_s": round(self._monotonic() - self._saturated_at, 3)},
            )  # fmt: skip
            self._saturated_at = None

    def stats(self) -> dict[str, Any]:
        return {
            "connected": self.connected,
            "buffered": self.buffered_items,
            "buffer_bound": self.max_items,
            "dropped": 0,  # kept for readers of this field: nothing is dropped any more
            "duplicates": self.duplicates,
            "saturated": self.saturated,
            "reconnects": self.reconnects,
            "last_error": self.last_error,
        }

    def _submit(
        self, write: Callable[[Sequence[Any]], object], items: Sequence[Any], *, counted: bool
    ) -> int:
        if not items:
            return 0
        self._batches.append((write, list(items), counted))
        self.buffered_items += len(items)
        self.drain()
        return len(items)
