"""What the dashboard shows, read from Redis: a core's status, its outputs, rejects and context.

The reader only reads. Messages are decoded with :mod:`core.codec` (versioned envelopes) and
plain records with :func:`core.codec.loads`; nothing is unpickled or evaluated. A value that
does not decode is skipped and counted (the core's own readers dead-letter it), so one bad
entry never blanks the page.
"""

from __future__ import annotations

import re
import threading
import time
from typing import Any, TypeAlias, TypeVar, cast

import msgspec
import redis

from core import codec
from core.adapters.redis_store import LEDGER, ledger_key
from core.errors import MessageError
from core.messages import CoreStatus, read_as
from core.model import Fill, Position, Signal
from strategy_engine.metrics import rejection_reason

M = TypeVar("M", bound=msgspec.Struct)
_Entry: TypeAlias = tuple[bytes, dict[bytes, bytes]]

CONTEXTS = ("regime", "news", "macro", "adaptation")
"""Context records of the strategic tier shown first, when present."""
MAX_RECORD_BYTES = 256 * 1024
"""Largest status or context record the dashboard decodes; larger ones are reported, not read."""
TALLY_BATCH = 1000
MAX_LEARNING_SERIES = 1000
"""Most learning-event series exposed, however many fields the hash holds."""
_LEARNING_KIND = re.compile(r"[a-z][a-z0-9_]{0,39}")
# Printable, no "|" (as the names of strategies are everywhere), bounded.
_LEARNING_STRATEGY = re.compile(r"[^|\x00-\x20\x7f-\x9f]{1,200}")
_COUNT = re.compile(rb"[0-9]{1,18}")


class DeadLetterTally:
    """Counts of dead letters by reason label, read incrementally from the stream.

    Each :meth:`update` reads only the entries added since the last one, so a scrape costs
    what arrived in between, not the whole stream.
    """

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self._cursor: bytes | None = None
        self._lock = threading.Lock()

    def update(self, client: redis.Redis, key: str) -> dict[str, int]:
        """Read the entries of ``key`` after the last one seen; return the counts so far."""
        with self._lock:
            if not client.exists(key):
                self.counts, self._cursor = {}, None  # the namespace was cleared
                return {}
            while True:
                start = b"-" if self._cursor is None else b"(" + self._cursor
                entries = cast(list[_Entry], client.xrange(key, min=start, count=TALLY_BATCH))
                for entry_id, fields in entries:
                    reason = fields.get(b"reason", b"").decode(errors="replace")
                    code = fields.get(b"code", b"").decode(errors="replace")
                    label = rejection_reason(reason, code)
                    self.counts[label] = self.counts.get(label, 0) + 1
                    self._cursor = entry_id
                if len(entries) < TALLY_BATCH:
                    return dict(self.counts)


class DashboardReader:
    """Read a core's dashboard state from one Redis namespace.

    Parameters
    ----------
    client : redis.Redis
        A client with ``decode_responses=False``.
    namespace : str
        The key prefix the core writes under (``se`` by default).
    core : str
        The core's name: its status is the report ``status:<core>``.
    recent : int
        How many recent signals, fills and dead letters to show.
    """

    def __init__(
        self, client: redis.Redis, namespace: str = "se", core: str = "core-1", recent: int = 10
    ) -> None:
        self.client = client
        self.namespace = namespace
        self.core = core
        self.recent = recent
        self.tally = DeadLetterTally()
        self.undecodable = 0

    def key(self, name: str) -> str:
        """The key of ``name``; orders, fills and positions are the shown core's own."""
        if name in LEDGER:
            return ledger_key(self.namespace, self.core, name)
        return f"{self.namespace}:{name}"

    def state(self) -> dict[str, Any]:
        """Return everything the page shows, JSON-safe."""
        status = self.status()
        streams = self.stream_lengths()
        return {
            "namespace": self.namespace,
            "core": self.core,
            "now_ns": time.time_ns(),
            "status": status,
            "active_set": (status or {}).get("active_set", []),
            "per_strategy": (status or {}).get("per_strategy", []),
            "streams": streams,
            "positions": self.positions(),
            "targets": self.targets(),
            "signals": self.recent_signals(),
            "fills": self.recent_fills(),
            "dead_letters": self.recent_dead_letters(),
            "rejected_by_reason": self.tally.update(self.client, self.key("deadletter")),
            "context": self.contexts(),
            "undecodable": self.undecodable,
        }

    def metrics_summary(self) -> dict[str, Any]:
        """Return the summary :func:`strategy_engine.metrics.exposition` takes.

        The core's published status (its counters, latency histograms and gauges, as the
        core's own ``/metrics`` has them), with rejections counted in Redis, the ledger
        streams' lengths (``orders_stored``, ``fills_stored``: gauges, as trimming shrinks
        them) and the learning tier's event counts.
        """
        streams = self.stream_lengths()
        return {
            **(self.status() or {}),
            "core": self.core,
            "orders_stored": streams["orders"],
            "fills_stored": streams["fills"],
            "rejected_by_reason": self.tally.update(self.client, self.key("deadletter")),
            "learning_events": self.learning_events(),
        }

    def learning_events(self) -> list[dict[str, Any]]:
        """The learning tier's event counts (``<ns>:learning:counts``, fields
        ``<kind>|<strategy>``), at most :data:`MAX_LEARNING_SERIES` rows, sorted.

        Anyone who can write Redis can write this hash: a field or value that is not what the
        flows write (no ``|``, not a name, not a non-negative integer) is skipped, and a key
        of another type reads as empty, so a bad entry never fails a scrape.
        """
        try:
            raw: dict[bytes, bytes] = self.client.hgetall(self.key("learning:counts"))  # type: ignore[assignment]
        except redis.ResponseError:  # WRONGTYPE: not the hash the flows write
            return []
        rows = []
        for field, value in raw.items():
            try:
                kind, _, strategy = field.decode().partition("|")
            except UnicodeDecodeError:
                continue
            if (
                _LEARNING_KIND.fullmatch(kind)
                and _LEARNING_STRATEGY.fullmatch(strategy)
                and _COUNT.fullmatch(value)
            ):
                rows.append({"kind": kind, "strategy": strategy, "count": int(value)})
        rows.sort(key=lambda row: (row["kind"], row["strategy"]))
        return rows[:MAX_LEARNING_SERIES]

    # --- records ----------------------------------------------------------------------------

    def status(self) -> dict[str, Any] | None:
        """The core's last status, with ``heartbeat_age_s``; None if it never published one.

        The record is shown as it is; one that does not match :class:`CoreStatus` (a core of
        another version, a hand-written record) is counted in ``undecodable`` too.
        """
        status = self._record("reports", f"status:{self.core}")
        if status is None:
            return None
        if "error" not in status:
            try:
                read_as(CoreStatus, status, f"status:{self.core}")
            except MessageError:
                self.undecodable += 1
        beat = status.get("heartbeat_ns")
        if isinstance(beat, int):
            status["heartbeat_age_s"] = round((time.time_ns() - beat) / 1e9, 3)
            # JavaScript numbers are exact only to 2**53: the page gets the exact stamp as text.
            status["heartbeat_ns_text"] = str(beat)
        return status

    def contexts(self) -> dict[str, Any]:
        """Every context record, the strategic tier's (regime, news, macro, adaptation) first."""
        names = sorted(
            (f.decode(errors="replace") for f in self.client.hkeys(self.key("context"))),  # type: ignore[union-attr]
            key=lambda n: (CONTEXTS.index(n) if n in CONTEXTS else len(CONTEXTS), n),
        )
        found = {name: self._record("context", name) for name in names}
        return {name: value for name, value in found.items() if value is not None}

    def stream_lengths(self) -> dict[str, int]:
        names = ("signals", "orders", "fills", "deadletter")
        with self.client.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.xlen(self.key(name))
            return dict(zip(names, (int(n) for n in pipe.execute()), strict=True))

    def positions(self) -> list[dict[str, Any]]:
        raw: dict[bytes, bytes] = self.client.hgetall(self.key("positions"))  # type: ignore[assignment]
        decoded = (self._decode(payload, Position) for payload in raw.values())
        rows = [msgspec.structs.asdict(p) for p in decoded if p is not None]
        return sorted(rows, key=lambda row: row["symbol"])

    def targets(self) -> list[dict[str, Any]]:
        """The latest target position of each strategy in each symbol."""
        raw: dict[bytes, bytes] = self.client.hgetall(self.key("signals:latest"))  # type: ignore[assignment]
        decoded = (self._decode(payload, Signal) for payload in raw.values())
        rows = [_signal_row(s) for s in decoded if s is not None]
        return sorted(rows, key=lambda row: (row["strategy"], row["symbol"]))

    def recent_signals(self) -> list[dict[str, Any]]:
        """The most recent signals, newest first."""
        return [_signal_row(s) for s in self._newest("signals", Signal)]

    def recent_fills(self) -> list[dict[str, Any]]:
        """The most recent fills, newest first."""
        return [msgspec.structs.asdict(f) for f in self._newest("fills", Fill)]

    def recent_dead_letters(self) -> list[dict[str, Any]]:
        """The most recent rejected input (source, reason, label, size, time), newest first."""
        rows = []
        for entry_id, fields in self._newest_entries("deadletter"):
            text = {k.decode(): v.decode(errors="replace") for k, v in fields.items()}
            reason = text.get("reason", "")
            rows.append(
                {
                    "id": entry_id.decode(),
                    "source": text.get("source", ""),
                    "reason": reason,
                    "code": text.get("code", ""),
                    "label": rejection_reason(reason, text.get("code", "")),
                    "size": _int(text.get("size")),
                    "ts": _int(text.get("ts")),
                }
            )
        return rows

    # --- decoding ---------------------------------------------------------------------------

    def _newest(self, stream: str, kind: type[M]) -> list[M]:
        decoded = (
            self._decode(fields.get(b"msg"), kind) for _, fields in self._newest_entries(stream)
        )
        return [m for m in decoded if m is not None]

    def _newest_entries(self, stream: str) -> list[_Entry]:
        return cast(list[_Entry], self.client.xrevrange(self.key(stream), count=self.recent))

    def _decode(self, payload: bytes | None, kind: type[M]) -> M | None:
        try:
            return codec.decode(payload or b"", kind)
        except MessageError:
            self.undecodable += 1
            return None

    def _record(self, hash_name: str, field: str) -> dict[str, Any] | None:
        payload: bytes | None = self.client.hget(self.key(hash_name), field)  # type: ignore[assignment]
        if payload is None:
            return None
        if len(payload) > MAX_RECORD_BYTES:
            self.undecodable += 1
            return {"error": f"record too large: {len(payload)} bytes > {MAX_RECORD_BYTES}"}
        try:
            value = codec.loads(payload)
        except MessageError as exc:
            self.undecodable += 1
            return {"error": str(exc)}
        return value if isinstance(value, dict) else {"error": "not a JSON object"}


def _signal_row(signal: Signal) -> dict[str, Any]:
    return {
        "strategy": signal.strategy,
        "symbol": signal.symbol,
        "ts_event": signal.ts_event,
        "target_position": signal.target_position,
        "strength": signal.strength,
    }


def _int(text: str | None) -> int:
    try:
        return int(text or "0")
    except ValueError:
        return 0
