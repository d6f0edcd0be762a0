"""The engine's Redis data model: signals, orders, fills, positions, state, context, control.

Every key starts with the store's namespace. Messages are stored as versioned envelopes
(:func:`core.codec.encode`), plain dicts as JSON (:func:`core.codec.dumps`); nothing read back
is unpickled or evaluated. A reader that meets a malformed value skips it, records it once in
the dead-letter stream with the reason, and returns the rest. Writes of a batch go out in one
pipeline (a MULTI/EXEC transaction), so a batch is stored whole or not at all.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar, cast

import msgspec
import redis

from core import codec
from core.adapters.control_key import control_key
from core.codec import MAX_MESSAGE_BYTES
from core.errors import ConfigError, DataError, MessageError
from core.messages import ControlBody, CoreStatus, Message, read_as
from core.model import Fill, Order, Position, Signal
from core.ports import DEFAULT_CORE
from core.runtime.control_signing import sign_control

if TYPE_CHECKING:
    from core.adapters.market_streams import RejectedEntry

M = TypeVar("M", bound=msgspec.Struct)
S = TypeVar("S", bound=Message)
_Entry: TypeAlias = tuple[bytes, dict[bytes, bytes]]

MAX_DEAD_LETTER_RAW = 4096
"""Bytes of a rejected payload kept in the dead-letter stream."""
MAX_STREAM_LEN = 1_000_000
"""Approximate cap of the signal and control-log streams; orders and fills are kept."""
MAX_DEAD_LETTERS = 100_000
"""Approximate cap of the dead-letter stream (an entry keeps up to 64 KiB of raw bytes); the
counts by code in ``<ns>:deadletter:counts`` are kept whole."""

LEARNING_EVENT_KINDS = ("gate_failed", "retrain_failed", "promoted", "rolled_back")
"""What :meth:`RedisStore.count_learning_event` counts."""

ID_GENERATION = 100_000
"""Ids remembered per generation of an id set; two generations are kept (see _ADD_ONCE)."""

# Adds an entry to a stream only if its id was not seen recently, atomically, so a retried
# write (after a crash or a timeout whose reply was lost) never stores an order or fill twice.
# Ids are unique by construction (a sequence), so a repeat can only be work redone since the
# last checkpoint: the ids of the last one to two generations are enough, and the sets stay
# bounded (the current set becomes the previous one once it holds a generation). The entry is
# written before its id is remembered: a script that fails (WRONGTYPE, OOM) changes nothing,
# so its retry writes the entry (remembering first lost it: a Lua error does not roll back).
# KEYS: current ids, previous ids, stream. ARGV: id, max stream length ('' for none),
# generation size, field, value, ...
_ADD_ONCE = """
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then return 0 end
if redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 1 then return 0 end
if ARGV[2] == '' then
  redis.call('XADD', KEYS[3], '*', unpack(ARGV, 4))
else
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[2], '*', unpack(ARGV, 4))
end
redis.call('SADD', KEYS[1], ARGV[1])
if redis.call('SCARD', KEYS[1]) >= tonumber(ARGV[3]) then
  redis.call('RENAME', KEYS[1], KEYS[2])
end
return 1
"""


LEDGER = frozenset({"orders", "fills", "positions"})
"""What each core keeps of its own (see :class:`RedisStore`)."""


def ledger_key(namespace: str, core: str, name: str) -> str:
    """The key of ``name`` (``orders``, ``fills``, ``positions``, or their id sets) of ``core``."""
    own = "" if core == DEFAULT_CORE else f"ledger:{core}:"
    return f"{namespace}:{own}{name}"


class RedisStore:
    """Read and write the engine's records in one Redis namespace.

    Parameters
    ----------
    client : redis.Redis
        A client with ``decode_responses=False`` (see :func:`core.adapters.redis_server.connect`).
    namespace : str
        Prefix of every key, e.g. ``"se"`` gives ``se:signals``.
    core : str
        Whose ledger (orders, fills, positions) this store reads and writes. Each core owns
        its ledger, so cores that split a universe never rebuild from each other's fills: the
        default core keeps the namespace's historical keys (``se:orders``, ``se:fills``,
        ``se:positions``), any other core ``se:ledger:<core>:orders`` and so on. Signals,
        state, context, control and dead letters are the namespace's.
    """

    def __init__(
        self, client: redis.Redis, namespace: str = "se", core: str = DEFAULT_CORE
    ) -> None:
        if not namespace or any(c.isspace() for c in namespace):
            raise ConfigError(f"namespace must be non-empty without spaces, was {namespace!r}")
        if not core or any(c.isspace() or c in ":*?[]" for c in core):
            raise ConfigError(
                f"core name must be non-empty without spaces or ':*?[]', was {core!r}"
            )
        self.client = client
        self.namespace = namespace
        self.core = core
        self._add_once = client.register_script(_ADD_ONCE)
        self._sha: str | None = None

    def key(self, name: str) -> str:
        """Return the full key of ``name`` in this namespace."""
        return f"{self.namespace}:{name}"

    def ledger_key(self, name: str) -> str:
        """The full key of ``orders``, ``fills`` or ``positions`` (or their id sets) of this
        store's core."""
        return ledger_key(self.namespace, self.core, name)

    def ledger_keys(self) -> list[str]:
        """Every key of this core's ledger."""
        names = ("orders", "fills", "positions", "orders:ids", "fills:ids", "orders:ids:previous",
                 "fills:ids:previous")  # fmt: skip
        return [self.ledger_key(n) for n in names]

    def clear(self) -> int:
        """Delete every key of this namespace (and only those); return how many were deleted."""
        keys = list(self.client.scan_iter(match=f"{self.namespace}:*", count=1000))
        return int(self.client.delete(*keys)) if keys else 0

    # --- signals ---------------------------------------------------------------------------

    def publish_signals(self, signals: Sequence[Signal]) -> None:
        """Append signals to the stream and make each the latest for its strategy and symbol.

        Within a batch the last signal for a (strategy, symbol) pair is the latest one.
        """
        if not signals:
            return
        encoded = [
            (signal_id(s, payload), payload) for s in signals for payload in [codec.encode(s)]
        ]
        latest = {
            _latest_field(s.strategy, s.symbol): e
            for s, (_, e) in zip(signals, encoded, strict=True)
        }
        keys = [self.key("signals:ids"), self.key("signals:ids:previous"), self.key("signals")]

        def queue(pipe: Any, sha: str) -> None:
            for item_id, payload in encoded:
                pipe.evalsha(sha, 3, *keys, item_id, MAX_STREAM_LEN, ID_GENERATION, "msg", payload)
            pipe.hset(self.key("signals:latest"), mapping=latest)

        self._run_with_script(queue)

    def read_signals(self, count: int | None = None) -> list[Signal]:
        """Return the signals, oldest first; with ``count``, only the most recent ``count``."""
        return self._read_stream("signals", Signal, count)

    def latest_signal(self, strategy: str, symbol: str) -> Signal | None:
        """Return the last signal published for ``strategy`` and ``symbol``, or None."""
        return self._read_field("signals:latest", _latest_field(strategy, symbol), Signal)

    # --- orders and fills ------------------------------------------------------------------

    def record_orders(self, orders: Sequence[Order]) -> int:
        """Append orders not recorded before (by ``order_id``); return how many were new."""
        return self._add_once_each("orders", [(o.order_id, codec.encode(o)) for o in orders])

    def read_orders(self) -> list[Order]:
        """Return the recorded orders of this store's core, oldest first."""
        return self._read_stream("orders", Order, ledger=True)

    def record_fills(self, fills: Sequence[Fill]) -> int:
        """Append fills not recorded before (by ``fill_id``); return how many were new."""
        return self._add_once_each("fills", [(f.fill_id, codec.encode(f)) for f in fills])

    def read_fills(self) -> list[Fill]:
        """Return the recorded fills of this store's core, oldest first, each once."""
        return self._read_stream("fills", Fill, ledger=True)

    def _add_once_each(self, stream: str, items: list[tuple[str, bytes]]) -> int:
        if not items:
            return 0
        keys = [
            self.ledger_key(f"{stream}:ids"),
            self.ledger_key(f"{stream}:ids:previous"),
            self.ledger_key(stream),
        ]

        def queue(pipe: Any, sha: str) -> None:
            for item_id, payload in items:
                pipe.evalsha(sha, 3, *keys, item_id, "", ID_GENERATION, "msg", payload)

        return sum(self._run_with_script(queue))

    def _run_with_script(self, queue: Callable[[Any, str], None]) -> list[Any]:
        """Run one MULTI/EXEC of add-once calls by SHA: one round trip, not two.

        redis-py's registered scripts send SCRIPT EXISTS before every pipeline; loading the
        script once and calling it by SHA avoids that. A server that lost its script cache (a
        restart) answers NOSCRIPT to every call of the batch, so none applied: load, retry.
        """
        for attempt in (1, 2):
            if self._sha is None:
                self._sha = str(self.client.script_load(_ADD_ONCE))
            try:
                with self.client.pipeline() as pipe:
                    queue(pipe, self._sha)
                    return list(pipe.execute())
            except redis.exceptions.NoScriptError:
                self._sha = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    # --- positions, state, context, reports --------------------------------------------------

    def save_positions(self, positions: Sequence[Position]) -> None:
        """Store each position under its symbol, replacing the previous one."""
        if positions:
            mapping = {p.symbol: codec.encode(p) for p in positions}
            self.client.hset(self.ledger_key("positions"), mapping=mapping)  # type: ignore[arg-type]

    def load_positions(self) -> dict[str, Position]:
        """Return the stored positions by symbol."""
        raw: dict[bytes, bytes] = self.client.hgetall(self.ledger_key("positions"))  # type: ignore[assignment]
        positions = {}
        for field, payload in raw.items():
            position = self._decode(f"positions[{field.decode()}]", payload, Position)
            if position is not None:
                positions[position.symbol] = position
        return positions

    def save_state(self, key: str, state: dict[str, Any]) -> None:
        """Store a strategy's state snapshot (a JSON-safe dict) under ``key``."""
        self._save_dict("state", key, state)

    def load_state(self, key: str) -> dict[str, Any] | None:
        """Return the state snapshot stored under ``key``, or None."""
        return self._load_dict("state", key)

    def set_context(self, name: str, context: dict[str, Any] | Message) -> None:
        """Store a context record of the strategic tier (regime, sentiment, macro stance)."""
        plain = context.to_dict() if isinstance(context, Message) else context
        self._save_dict("context", name, plain)

    def get_context(self, name: str) -> dict[str, Any] | None:
        """Return the context record ``name`` as plain data, or None."""
        return self._load_dict("context", name)

    def read_context(self, name: str, kind: type[S]) -> S | None:
        """Return the context record ``name`` decoded as ``kind``, or None if there is none.

        Raises
        ------
        MessageError
            If the record is not a ``kind`` (code ``contract_mismatch``); it is dead-lettered.
        """
        return self._read_message("context", name, kind)

    def save_report(self, name: str, report: dict[str, Any]) -> None:
        """Store a run summary under ``name``."""
        self._save_dict("reports", name, report)

    def load_report(self, name: str) -> dict[str, Any] | None:
        """Return the run summary ``name``, or None."""
        return self._load_dict("reports", name)

    def save_status(self, status: CoreStatus) -> None:
        """Publish a core's status (report ``status:<core>``)."""
        self._save_dict("reports", f"status:{status.core}", status.to_dict())

    def read_status(self, core: str) -> CoreStatus | None:
        """The last status ``core`` published, or None if it never published one.

        Raises
        ------
        MessageError
            If the record is not a :class:`CoreStatus` (code ``contract_mismatch``); it is
            dead-lettered.
        """
        return self._read_message("reports", f"status:{core}", CoreStatus)

    def record_start(self, core: str) -> int:
        """Count a start of ``core`` in ``<ns>:runs:<core>``; return its restarts so far.

        The hash holds ``starts``, ``restarts`` and ``running`` (1 from a start until
        :meth:`record_clean_stop`). A start that finds ``running`` still 1 follows a run that
        never stopped cleanly (killed, crashed, its machine lost), and counts as a restart.
        """
        key = self.key(f"runs:{core}")
        record = self.client.register_script(_RECORD_START)  # our own script, run by SHA
        restarts = record(keys=[key], args=[time.time_ns()])
        return int(restarts)

    def record_clean_stop(self, core: str) -> None:
        """Mark ``core``'s run as ended cleanly (the next start is not a restart)."""
        self.client.hset(
            self.key(f"runs:{core}"), mapping={"running": 0, "stopped_ns": time.time_ns()}
        )

    def save_states(self, states: dict[str, dict[str, Any]]) -> None:
        """Store several state snapshots in one round trip (a checkpoint's worth)."""
        if states:
            mapping = {key: _json_dict("state", key, s) for key, s in states.items()}
            self.client.hset(self.key("state"), mapping=mapping)  # type: ignore[arg-type]

    def _save_dict(self, hash_name: str, field: str, value: dict[str, Any]) -> None:
        self.client.hset(self.key(hash_name), field, _json_dict(hash_name, field, value))

    def _read_message(self, hash_name: str, field: str, kind: type[S]) -> S | None:
        plain = self._load_dict(hash_name, field)
        if plain is None:
            return None
        try:
            return read_as(kind, plain, f"{hash_name} {field!r}")
        except MessageError as exc:
            self._reject(f"{hash_name}[{field}]", str(exc), codec.dumps(plain))
            raise

    def _load_dict(self, hash_name: str, field: str) -> dict[str, Any] | None:
        payload: bytes | None = self.client.hget(self.key(hash_name), field)  # type: ignore[assignment]
        if payload is None:
            return None
        try:
            value = codec.loads(payload)
            if not isinstance(value, dict):
                raise MessageError(f"expected a JSON object, got {type(value).__name__}")
        except MessageError as exc:
            self._reject(f"{hash_name}[{field}]", str(exc), payload)
            return None
        return value

    # --- control ---------------------------------------------------------------------------

    def publish_control(
        self,
        message: dict[str, Any] | ControlBody,
        *,
        sender: str = "",
        key: bytes | None = None,
    ) -> int:
        """Announce ``message`` (a :data:`core.messages.ControlBody`, or plain data such as
        ``{"action": "reload"}``) on the control channel, signed with the control key
        (:mod:`core.adapters.control_key` unless ``key`` is given), and log it. Cores act only
        on signed messages (:mod:`core.runtime.control`).

        Returns
        -------
        int
            How many subscribers received it.

        Raises
        ------
        DataError
            If plain data is not a control message (unknown action, a field of the wrong
            type): nothing is sent.
        """
        if isinstance(message, Message):
            message = message.to_dict()
        else:
            read_as(ControlBody, message, "the control message")  # type: ignore[arg-type]
        signed = sign_control(
            message, key if key is not None else control_key(), sender=sender or _who()
        )
        with self.client.pipeline() as pipe:
            pipe.publish(self.key("control"), signed)
            pipe.xadd(
                self.key("control:log"),
                {"msg": codec.dumps(message)},
                maxlen=MAX_STREAM_LEN,
                approximate=True,
            )
            received, _ = pipe.execute()
        return int(received)

    def audit_control(self, record: dict[str, Any]) -> None:
        """Append what a core did with a control message (who, what, outcome) to the audit."""
        self.client.xadd(
            self.key("control:audit"),
            {"msg": codec.dumps(record)},
            maxlen=MAX_STREAM_LEN,
            approximate=True,
        )

    def read_control_audit(self) -> list[dict[str, Any]]:
        """The audit of control messages, oldest first."""
        return [codec.loads(fields[b"msg"]) for _, fields in self._entries("control:audit")]

    def read_control_log(self) -> list[dict[str, Any]]:
        """Return the control messages published so far, oldest first."""
        messages = []
        for entry_id, fields in self._entries("control:log"):
            payload = fields.get(b"msg", b"")
            try:
                messages.append(codec.loads(payload))
            except MessageError as exc:
                self._reject(f"control:log#{entry_id.decode()}", str(exc), payload)
        return messages

    # --- dead letters ----------------------------------------------------------------------

    def dead_letter(
        self, source: str, reason: str, raw: bytes | str, *, key: str = "", code: str = ""
    ) -> bool:
        """Record rejected input with the reason; ``raw`` is kept up to 4 KiB.

        Parameters
        ----------
        source : str
            Where the input came from (a stream entry, a file, a feed).
        reason : str
            Why it was rejected (one line).
        raw : bytes or str
            The rejected payload.
        key : str, optional
            A unique id of this rejection: a second call with the same key records nothing.
        code : str, optional
            A stable reason code (empty for free-text reasons).

        Returns
        -------
        bool
            Whether an entry was written.
        """
        data = raw.encode() if isinstance(raw, str) else raw
        fields: dict[str, str | bytes] = {
            "source": source,
            "code": code,
            "reason": reason,
            "raw": data[:MAX_DEAD_LETTER_RAW],
            "size": str(len(data)),
            "ts": str(time.time_ns()),
        }
        if not key:
            with self.client.pipeline() as pipe:
                pipe.xadd(
                    self.key("deadletter"),
                    fields,  # type: ignore[arg-type]
                    maxlen=MAX_DEAD_LETTERS,
                    approximate=True,
                )
                pipe.hincrby(self.key("deadletter:counts"), code or "unclassified", 1)
                pipe.execute()
            return True
        flat: list[str | bytes] = [part for pair in fields.items() for part in pair]
        keys = [
            self.key("deadletter:ids"), self.key("deadletter:ids:previous"), self.key("deadletter")
        ]  # fmt: skip
        args = [key, MAX_DEAD_LETTERS, ID_GENERATION, *flat]
        written = bool(self._add_once(keys=keys, args=args))
        if written:
            self.client.hincrby(self.key("deadletter:counts"), code or "unclassified", 1)
        return written

    def count_learning_event(self, kind: str, strategy: str) -> int:
        """Count one learning-tier event in ``<ns>:learning:counts``, field ``kind|strategy``;
        return the new count. Alerting reads the hash (a counter per field)."""
        if kind not in LEARNING_EVENT_KINDS:
            known = ", ".join(LEARNING_EVENT_KINDS)
            raise ConfigError(f"learning event kind must be one of {known}, was {kind!r}")
        if not strategy or "|" in strategy:
            raise ConfigError(f"strategy must be non-empty without '|', was {strategy!r}")
        return int(
            cast(int, self.client.hincrby(self.key("learning:counts"), f"{kind}|{strategy}", 1))
        )

    def learning_event_counts(self) -> dict[str, int]:
        """Every learning-tier event counted so far, by ``kind|strategy``."""
        raw = cast(dict[bytes, bytes], self.client.hgetall(self.key("learning:counts")))
        return {k.decode(): int(v) for k, v in sorted(raw.items())}

    def reject_entries(self, group: str, entries: Sequence[RejectedEntry]) -> None:
        """Dead-letter feed entries and acknowledge them for ``group``, in one transaction.

        Either both happen or neither, so a rejected entry is recorded exactly once: a core
        that dies before the transaction gets the entry again, one that dies after never does.
        The message is kept whole up to :data:`core.codec.MAX_MESSAGE_BYTES` (a longer one is
        rejected for its size: its first bytes, size and digest are kept); the entry's other
        fields are kept as JSON, each value up to 256 bytes.
        """
        if not entries:
            return
        now = str(time.time_ns())
        with self.client.pipeline(transaction=True) as pipe:
            for entry in entries:
                raw = entry.fields.get(b"msg", b"")
                others = {
                    k.decode(errors="backslashreplace")[:64]: v[:256].decode(
                        errors="backslashreplace"
                    )
                    for k, v in list(entry.fields.items())[:16]
                    if k != b"msg"
                }
                fields = {
                    "source": entry.source,
                    "code": str(entry.rejection.code),
                    "reason": entry.rejection.reason,
                    "raw": raw[:MAX_MESSAGE_BYTES],
                    "size": str(len(raw)),
                    "digest": hashlib.blake2b(raw, digest_size=16).hexdigest(),
                    "entry": codec.dumps(others),
                    "ts": now,
                }
                pipe.xadd(self.key("deadletter"), fields, maxlen=MAX_DEAD_LETTERS, approximate=True)  # type: ignore[arg-type]
                pipe.hincrby(self.key("deadletter:counts"), str(entry.rejection.code), 1)
                pipe.xack(entry.key, group, entry.entry_id)
            pipe.execute()

    def read_dead_letters(self) -> list[dict[str, Any]]:
        """Return the dead letters, oldest first, as dicts of id, source, code, reason, raw,
        size, ts (``code`` is empty for rejections recorded before codes existed)."""
        letters = []
        for entry_id, fields in self._entries("deadletter"):
            text = {k.decode(): v.decode(errors="replace") for k, v in fields.items()}
            letters.append(
                {
                    "id": entry_id.decode(),
                    "source": text.get("source", ""),
                    "code": text.get("code", ""),
                    "reason": text.get("reason", ""),
                    "raw": text.get("raw", ""),
                    "size": int(text.get("size", "0")),
                    "ts": int(text.get("ts", "0")),
                }
            )
        return letters

    # --- reports ---------------------------------------------------------------------------

    def stream_lengths(self) -> dict[str, int]:
        """Return the number of entries in each stream of this namespace (orders and fills:
        this store's core's)."""
        names = ("signals", "orders", "fills", "deadletter", "control:log")
        with self.client.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.xlen(self.ledger_key(name) if name in ("orders", "fills") else self.key(name))
            return dict(zip(names, pipe.execute(), strict=True))

    # --- reading ---------------------------------------------------------------------------

    def _entries(
        self, stream: str, count: int | None = None, *, ledger: bool = False
    ) -> list[_Entry]:
        """Return a stream's entries oldest first; with ``count``, only the most recent."""
        key = self.ledger_key(stream) if ledger else self.key(stream)
        if count is None:
            return cast(list[_Entry], self.client.xrange(key))
        return cast(list[_Entry], self.client.xrevrange(key, count=count))[::-1]

    def _read_stream(
        self, stream: str, kind: type[M], count: int | None = None, *, ledger: bool = False
    ) -> list[M]:
        messages = []
        for entry_id, fields in self._entries(stream, count, ledger=ledger):
            message = self._decode(f"{stream}#{entry_id.decode()}", fields.get(b"msg"), kind)
            if message is not None:
                messages.append(message)
        return messages

    def _read_field(self, hash_name: str, field: str, kind: type[M]) -> M | None:
        payload: bytes | None = self.client.hget(self.key(hash_name), field)  # type: ignore[assignment]
        if payload is None:
            return None
        return self._decode(f"{hash_name}[{field}]", payload, kind)

    def _decode(self, source: str, payload: bytes | None, kind: type[M]) -> M | None:
        if payload is None:
            self._reject(source, "entry has no 'msg' field", b"")
            return None
        try:
            return codec.decode(payload, kind)
        except MessageError as exc:
            self._reject(source, str(exc), payload)
            return None

    def _reject(self, source: str, reason: str, payload: bytes) -> None:
        # Keyed by place and content: rereading the same bad value does not flood the stream,
        # while a new bad value written to the same place is recorded again.
        digest = hashlib.blake2b(payload, digest_size=8).hexdigest()
        self.dead_letter(self.key(source), reason, payload, key=f"{source}:{digest}")


def _who() -> str:
    """The default sender of a control message: this user at this host."""
    import getpass
    import socket

    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


def _json_dict(hash_name: str, field: str, value: dict[str, Any]) -> bytes:
    if not isinstance(value, dict):
        raise DataError(f"{hash_name} {field!r} must be a dict, was {type(value).__name__}")
    try:
        return codec.dumps(value)
    except (TypeError, msgspec.EncodeError) as exc:
        raise DataError(f"{hash_name} {field!r} is not JSON-safe: {exc}") from None


def signal_id(signal: Signal, payload: bytes) -> str:
    """A signal's identity: its strategy, symbol and time, and a digest of all it says.

    Writing signals once per id makes a retried batch (after a lost reply or a reconnect)
    harmless, as order and fill ids do for orders and fills. The digest covers the reason
    too: a market maker may quote A, then B, then A again within one exchange timestamp, and
    the third is a new signal (its volatility and intensity estimates moved), not a retry.
    """
    digest = hashlib.blake2b(payload, digest_size=12).hexdigest()
    return f"{signal.strategy}|{signal.symbol}|{signal.ts_event}|{digest}"


def _latest_field(strategy: str, symbol: str) -> str:
    return f"{strategy}|{symbol}"


# One round trip, atomic: a start and the restart it may be are counted together.
_RECORD_START = """
local running = redis.call('HGET', KEYS[1], 'running')
if running == '1' then redis.call('HINCRBY', KEYS[1], 'restarts', 1) end
redis.call('HINCRBY', KEYS[1], 'starts', 1)
redis.call('HSET', KEYS[1], 'running', 1, 'started_ns', ARGV[1])
return tonumber(redis.call('HGET', KEYS[1], 'restarts') or '0')
"""
