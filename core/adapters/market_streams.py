"""Market data through Redis Streams: a publisher for replays and adapters, a reader per core.

One stream per feed (``{ns}:md:{feed}``), each entry one event in the versioned envelope plus
``t_pub``, the wall-clock nanoseconds at which it reached Redis (tick-to-signal latency starts
there). A feed ends with an entry ``end=1``. Each core reads through its own consumer group
and keeps the entries of its own symbols (``core.runtime.shard``), so several cores can split a
universe on the same feeds, and a restarted core first gets back the entries it had read but
not acknowledged, then resumes after them. Every entry passes the ingestion boundary
(:mod:`core.runtime.ingest`) before anything else looks at it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeAlias, cast

import redis

from core import codec
from core.runtime.ingest import END, IngestionBoundary, Rejection
from core.runtime.shard import SymbolShard

log = logging.getLogger(__name__)

END_FIELD = b"end"
PUBLISH_BATCH = 2000

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


@dataclass(frozen=True)
class RejectedEntry:
    """A feed entry the boundary refused: where it is, why, and its fields as they came."""

    key: str
    entry_id: bytes
    rejection: Rejection
    fields: dict[bytes, bytes]

    @property
    def source(self) -> str:
        return f"{self.key}#{self.entry_id.decode()}"


@dataclass
class Delivery:
    """One read from the feeds: valid events with their entry references and arrival times."""

    events: list[Any] = field(default_factory=list)
    refs: list[tuple[str, bytes]] = field(default_factory=list)
    arrivals_ns: list[int] = field(default_factory=list)
    ended: set[str] = field(default_factory=set)
    rejections: list[RejectedEntry] = field(default_factory=list)
    skipped: int = 0  # entries of symbols other cores own

    @property
    def rejected(self) -> int:
        return len(self.rejections)


class DeadLetters(Protocol):
    """Where rejected entries go (:meth:`core.adapters.redis_store.RedisStore.reject_entries`)."""

    def reject_entries(self, group: str, entries: Sequence[RejectedEntry]) -> None: ...


class FeedReader:
    """Read feeds through a consumer group; every entry passes the ingestion boundary.

    Entries the boundary rejects are dead-lettered with their code, reason and raw bytes and
    acknowledged in one transaction, so each is recorded exactly once and never delivered
    again; the rest are returned for processing and acknowledged by :meth:`ack` after the core
    has checkpointed their effects. A Redis failure anywhere in a read loses no entry: a read
    whose reply was lost is redone from the pending entries, and a read whose rejections could
    not be recorded is held, its events with it, until they are.
    """

    def __init__(
        self,
        client: redis.Redis,
        namespace: str,
        feeds: Sequence[str],
        *,
        group: str,
        consumer: str,
        dead_letters: DeadLetters,
        boundary: IngestionBoundary | None = None,
        shard: SymbolShard | None = None,
    ) -> None:
        self.client = client
        self.keys = {feed_key(namespace, f): f for f in feeds}
        self.group = group
        self.consumer = consumer
        self.boundary = boundary or IngestionBoundary()
        self.shard = shard or SymbolShard()
        self._dead_letters = dead_letters
        self._recovering = True  # first drain our own pending entries (read, never acked)
        # Where the recovery read goes on from: XREADGROUP with id 0 returns the same pending
        # entries on every call until they are acknowledged (at the next checkpoint), so
        # without a cursor a restarted core processed them again on every fast cycle.
        self._pending_cursor = dict.fromkeys(self.keys, "0")
        # The last entry id handed out per stream key: a failed read goes back to it.
        self._delivered = dict.fromkeys(self.keys, "0")
        self._covered: dict[str, tuple[int, int]] = {}
        self._held: Delivery | None = None
        self._failed_reads = 0  # reads failed in a row: logged when the first fails and on return

    def resume_after(self, cursor: dict[str, str]) -> None:
        """Skip (and acknowledge) redelivered entries up to ``cursor``'s id per stream key.

        A core that checkpointed and was killed before acknowledging gets those entries again;
        their effects are already in the checkpoint, so applying them again would count twice.
        """
        self._covered = {key: _entry_id(value) for key, value in cursor.items() if key in self.keys}

    def ensure_groups(self, start_at: dict[str, str] | None = None, default: str = "0") -> set[str]:
        """Create this core's missing consumer groups; return the stream keys that had none.

        A missing group starts at ``start_at[key]`` (the checkpoint's last entry, so nothing
        is read twice), else at ``default`` (the stream's start).
        """
        created = set()
        for key in self.keys:
            position = (start_at or {}).get(key, default)
            try:
                self.client.xgroup_create(key, self.group, id=position, mkstream=True)
                created.add(key)
            except redis.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise
        return created

    def progress(self) -> dict[str, str]:
        """The last entry id this core's group was given, per stream key that has the group."""
        found = {}
        for key in self.keys:
            try:
                groups = cast(list[dict[str, Any]], self.client.xinfo_groups(key))
            except redis.ResponseError:  # no such stream
                continue
            mine = next((g for g in groups if _text(g.get("name")) == self.group), None)
            if mine is not None:
                found[key] = _text(mine.get("last-delivered-id"))
        return found

    def trim(self, retention_ms: int, now_ms: int | None = None) -> int:
        """Trim what every consumer group of each feed has acknowledged and that is older than
        ``retention_ms``; return how many entries went.

        An entry stays while any group has it pending or has not been given it yet, and for
        at least the retention (a core that joins later, or an operator, may want it). The
        last entry a group was given stays too, so a feed's end marker is still seen.
        """
        now = int(time.time() * 1000) if now_ms is None else now_ms
        oldest_kept = now - retention_ms
        removed = 0
        for key in self.keys:
            groups = cast(list[dict[str, Any]], self.client.xinfo_groups(key))
            if not groups:
                continue
            bounds = []
            for group in groups:
                name = _text(group.get("name"))
                if int(group.get("pending", 0)):
                    summary = cast(dict[str, Any], self.client.xpending(key, name))
                    bounds.append(_entry_id(_text(summary["min"])))
                else:
                    bounds.append(_entry_id(_text(group.get("last-delivered-id")) or "0-0"))
            keep_from = min(min(bounds), (oldest_kept, 0))
            if keep_from > (0, 0):
                removed += int(
                    self.client.xtrim(
                        key, minid=f"{keep_from[0]}-{keep_from[1]}", approximate=False
                    )
                )
        return removed

    def move_group(self, key: str, position: str) -> None:
        """Point this core's group on ``key`` at ``position`` (an entry id, ``0`` or ``$``)."""
        self.client.xgroup_setid(key, self.group, id=position)

    def ended_feeds(self) -> set[str]:
        """Feeds whose last entry is an end marker this group has already been given.

        A core restarted after it consumed the end marker would otherwise wait for it forever.
        """
        ended = set()
        for key, feed in self.keys.items():
            last = cast(list[_Entry], self.client.xrevrange(key, count=1))
            if not last or last[0][1].get(END_FIELD) != b"1":
                continue
            groups = cast(list[dict[str, Any]], self.client.xinfo_groups(key))
            mine = next((g for g in groups if _text(g.get("name")) == self.group), None)
            delivered = _text(mine.get("last-delivered-id")) if mine else ""
            if delivered and _entry_id(delivered) >= _entry_id(last[0][0].decode()):
                ended.add(feed)
        return ended

    def read(self, count: int, block_ms: int) -> Delivery:
        """The next entries, checked; raises the client's error if Redis fails (retry later)."""
        try:
            delivery = self._read(count, block_ms)
        except Exception as exc:
            # The core retries every fast cycle: one record when an outage starts, one when it
            # ends, never one per retry.
            if not self._failed_reads:
                log.error(
                    "feed read failed: retrying, nothing is acknowledged meanwhile",
                    extra={"event": "redis_connection_lost", "component": "feed_reader",
                           "group": self.group, "error": f"{type(exc).__name__}: {exc}"[:400]},
                )  # fmt: skip
            self._failed_reads += 1
            raise
        if self._failed_reads:
            log.warning(
                "feed read succeeded again",
                extra={"event": "redis_reconnected", "component": "feed_reader",
                       "group": self.group, "failed_reads": self._failed_reads},
            )  # fmt: skip
            self._failed_reads = 0
        return delivery

    def _read(self, count: int, block_ms: int) -> Delivery:
        if self._held is not None:  # its rejections first; its events follow them
            self._dead_letters.reject_entries(self.group, self._held.rejections)
            delivery, self._held = self._held, None
            return delivery
        streams: dict[Any, Any] = (
            dict(self._pending_cursor) if self._recovering else dict.fromkeys(self.keys, ">")
        )
        try:
            response = self._read_group(streams, count, block_ms)
        except Exception:
            # The server may have handed the entries out before the reply was lost: they are
            # pending now, and only a recovery read gets them back.
            self._recover()
            raise
        delivery = Delivery()
        entries = 0
        for key_bytes, stream_entries in response or []:
            key = key_bytes.decode()
            for entry_id, fields in stream_entries:
                entries += 1
                self._take(delivery, key, entry_id, fields)
            if stream_entries:
                last = stream_entries[-1][0].decode()
                self._delivered[key] = last
                if self._recovering:
                    self._pending_cursor[key] = last
        if self._recovering and entries == 0:
            self._recovering = False
        if delivery.rejections:
            try:
                self._dead_letters.reject_entries(self.group, delivery.rejections)
            except Exception:
                self._held = delivery
                raise
        return delivery

    def _recover(self) -> None:
        self._recovering = True
        self._pending_cursor = dict(self._delivered)

    def _read_group(
        self, streams: dict[Any, Any], count: int, block_ms: int
    ) -> list[tuple[bytes, list[_Entry]]]:
        try:
            return self._xreadgroup(streams, count, block_ms)
        except redis.ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
        # Redis came back without its data (or someone deleted the group): make it again
        # after the last entry this core was given, never from the start of the feed.
        made = self.ensure_groups(dict(self._delivered))
        log.warning(
            "consumer group was gone: made again after the last entry this core was given",
            extra={"event": "consumer_group_recreated", "group": self.group,
                   "streams": sorted(made), "after": {k: self._delivered[k] for k in sorted(made)}},
        )  # fmt: skip
        return self._xreadgroup(streams, count, block_ms)

    def _xreadgroup(
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
        covered = self._covered.get(key)
        if covered is not None and _entry_id(entry_id.decode()) <= covered:
            # Its effects are in the checkpoint (and an end marker's too): only acknowledge.
            if fields.get(END_FIELD) == b"1":
                delivery.ended.add(self.keys[key])
            delivery.refs.append((key, entry_id))
            return
        outcome = self.boundary.admit_entry(self.keys[key], fields, narrow=self.shard.admit)
        if outcome is END:
            delivery.ended.add(self.keys[key])
            delivery.refs.append((key, entry_id))
        elif outcome is None:  # another core's symbol: theirs to check and to act on
            delivery.refs.append((key, entry_id))
            delivery.skipped += 1
        elif isinstance(outcome, Rejection):
            delivery.rejections.append(RejectedEntry(key, entry_id, outcome, fields))
        else:
            delivery.events.append(outcome)
            delivery.refs.append((key, entry_id))
            delivery.arrivals_ns.append(self.boundary.arrival_ns(fields))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value or "")


def _entry_id(value: str) -> tuple[int, int]:
    """A stream entry id (``<ms>-<seq>``) as a pair that orders like Redis orders them."""
    ms, _, seq = value.partition("-")
    return int(ms), int(seq or 0)
