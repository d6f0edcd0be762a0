"""Market data through Redis Streams: a publisher for replays and adapters, a reader per core.

One stream per feed (``{ns}:md:{feed}``), each entry one event in the versioned envelope plus
``t_pub``, the wall-clock nanoseconds at which it reached Redis (tick-to-signal latency starts
there). A feed ends with an entry ``end=1``. Each core reads through its own consumer group
and keeps the entries of its own symbols (``core.runtime.shard``), so several cores can split a
universe on the same feeds, and a restarted core first gets back the entries it had read but
not acknowledged, then resumes after them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias, cast

import redis

from core import codec
from core.errors import MessageError
from core.runtime.guard import EventGuard
from core.runtime.shard import SymbolShard

END_FIELD = b"end"
PUBLISH_BATCH = 2000

DeadLetter = Callable[[str, str, bytes], object]
_Entry: TypeAlias = tuple[bytes, dict[bytes, bytes]]


def feed_key(namespace: str, feed: str) -> str:
    return f"{namespace}:md:{feed}"


class FeedPublisher:
    """Append events to a feed's stream, as fast as possible or paced on their timestamps."""

    def __init__(self, client: redis.Redis, namespace: str) -> None:
        self.client = client
        self.namespace = namespace

    def publish(
        self, feed: str, events: Iterable[Any], *, speed: float | None = None, end: bool = True
    ) -> int:
        """Publish ``events`` in order; ``speed`` X replays X times faster than they happened.

        With ``speed`` None events go out in pipelined batches as fast as Redis takes them.
        Returns the number of events published.
        """
        key = feed_key(self.namespace, feed)
        count = 0
        batch: list[bytes] = []
        pace = _Pacer(speed)
        for event in events:
            batch.append(codec.encode(event))
            count += 1
            if pace.wait_for(event.ts_event) or len(batch) >= PUBLISH_BATCH:
                self._send(key, batch)
                batch = []
        self._send(key, batch)
        if end:
            self.client.xadd(key, {END_FIELD: b"1", b"t_pub": str(time.time_ns()).encode()})
        return count

    def publish_raw(self, feed: str, payload: bytes) -> None:
        """Append one raw payload (for adapters and for testing what the reader rejects)."""
        self._send(feed_key(self.namespace, feed), [payload])

    def _send(self, key: str, payloads: Sequence[bytes]) -> None:
        if not payloads:
            return
        with self.client.pipeline(transaction=False) as pipe:
            for payload in payloads:
                pipe.xadd(key, {b"msg": payload, b"t_pub": str(time.time_ns()).encode()})
            pipe.execute()


class _Pacer:
    """Sleep so that event time advances ``speed`` times faster than wall time."""

    def __init__(self, speed: float | None) -> None:
        self.speed = speed
        self._origin: tuple[int, float] | None = None

    def wait_for(self, ts_event: int) -> bool:
        """Sleep until ``ts_event`` is due; True when the caller should send what it holds."""
        if self.speed is None:
            return False
        now = time.perf_counter()
        if self._origin is None:
            self._origin = (ts_event, now)
            return True
        due = self._origin[1] + (ts_event - self._origin[0]) / 1e9 / self.speed
        if due > now:
            time.sleep(due - now)
        return True


@dataclass
class Delivery:
    """One read from the feeds: valid events with their entry references and arrival times."""

    events: list[Any] = field(default_factory=list)
    refs: list[tuple[str, bytes]] = field(default_factory=list)
    arrivals_ns: list[int] = field(default_factory=list)
    ended: set[str] = field(default_factory=set)
    rejected: int = 0
    skipped: int = 0  # entries of symbols other cores own


class FeedReader:
    """Read feeds through a consumer group, validate every entry, acknowledge on request.

    Malformed entries (bad JSON, unknown version, missing field) and implausible events (see
    :class:`core.runtime.guard.EventGuard`) are dead-lettered with the reason and acknowledged at
    once, so they are never delivered again; the rest are returned for processing and
    acknowledged by :meth:`ack` after the core has checkpointed their effects.
    """

    def __init__(
        self,
        client: redis.Redis,
        namespace: str,
        feeds: Sequence[str],
        *,
        group: str,
        consumer: str,
        dead_letter: DeadLetter,
        guard: EventGuard | None = None,
        shard: SymbolShard | None = None,
    ) -> None:
        self.client = client
        self.keys = {feed_key(namespace, f): f for f in feeds}
        self.group = group
        self.consumer = consumer
        self.guard = guard or EventGuard()
        self.shard = shard or SymbolShard()
        self._dead_letter = dead_letter
        self._recovering = True  # first drain our own pending entries (read, never acked)
        # Where the recovery read goes on from: XREADGROUP with id 0 returns the same pending
        # entries on every call until they are acknowledged (at the next checkpoint), so
        # without a cursor a restarted core processed them again on every fast cycle.
        self._pending_cursor = dict.fromkeys(self.keys, "0")
        self._covered: dict[str, tuple[int, int]] = {}

    def resume_after(self, cursor: dict[str, str]) -> None:
        """Skip (and acknowledge) redelivered entries up to ``cursor``'s id per stream key.

        A core that checkpointed and was killed before acknowledging gets those entries again;
        their effects are already in the checkpoint, so applying them again would count twice.
        """
        self._covered = {key: _entry_id(value) for key, value in cursor.items() if key in self.keys}

    def ensure_groups(self) -> None:
        for key in self.keys:
            try:
                self.client.xgroup_create(key, self.group, id="0", mkstream=True)
            except redis.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    def read(self, count: int, block_ms: int) -> Delivery:
        delivery = Delivery()
        streams: dict[Any, Any] = (
            dict(self._pending_cursor) if self._recovering else dict.fromkeys(self.keys, ">")
        )
        try:
            response = self._read_group(streams, count, block_ms)
        except redis.ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            # Redis came back without its data (no persistence): the group is gone. Make it
            # again; the feed's surviving entries are read from the start of the new stream.
            self.ensure_groups()
            response = self._read_group(streams, count, block_ms)
        entries = 0
        for key_bytes, stream_entries in response or []:
            key = key_bytes.decode()
            for entry_id, fields in stream_entries:
                entries += 1
                self._take(delivery, key, entry_id, fields)
            if self._recovering and stream_entries:
                self._pending_cursor[key] = stream_entries[-1][0].decode()
        if self._recovering and entries == 0:
            self._recovering = False
        return delivery

    def _read_group(
        self, streams: dict[Any, Any], count: int, block_ms: int
    ) -> list[tuple[bytes, list[_Entry]]]:
        return cast(
            list[tuple[bytes, list[_Entry]]],
            self.client.xreadgroup(
                self.group,
                self.consumer,
                streams,
                count=count,
                block=None if self._recovering else block_ms,
            ),
        )

    def ack(self, refs: Sequence[tuple[str, bytes]]) -> None:
        by_key: dict[str, list[bytes]] = {}
        for key, entry_id in refs:
            by_key.setdefault(key, []).append(entry_id)
        if not by_key:
            return
        with self.client.pipeline(transaction=False) as pipe:
            for key, ids in by_key.items():
                pipe.xack(key, self.group, *ids)
            pipe.execute()

    def _take(
        self, delivery: Delivery, key: str, entry_id: bytes, fields: dict[bytes, bytes]
    ) -> None:
        if fields.get(END_FIELD) == b"1":
            delivery.ended.add(self.keys[key])
            delivery.refs.append((key, entry_id))
            return
        covered = self._covered.get(key)
        if covered is not None and _entry_id(entry_id.decode()) <= covered:
            delivery.refs.append((key, entry_id))  # acknowledged with the next checkpoint
            return
        payload = fields.get(b"msg", b"")
        event: Any = None
        try:
            event = self.shard.admit(codec.decode(payload))
            if event is None:  # another core's symbol: theirs to check and to act on
                delivery.refs.append((key, entry_id))
                delivery.skipped += 1
                return
            reason = self.guard.check(event)
        except MessageError as exc:
            reason = str(exc)
        if reason is not None:
            self._dead_letter(f"{key}#{entry_id.decode()}", reason, payload)
            self.client.xack(key, self.group, entry_id)
            delivery.rejected += 1
            return
        delivery.events.append(event)
        delivery.refs.append((key, entry_id))
        delivery.arrivals_ns.append(int(fields.get(b"t_pub", b"0")))


def _entry_id(value: str) -> tuple[int, int]:
    """A stream entry id (``<ms>-<seq>``) as a pair that orders like Redis orders them."""
    ms, _, seq = value.partition("-")
    return int(ms), int(seq or 0)
