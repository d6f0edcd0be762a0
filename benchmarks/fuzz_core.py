"""Fuzz the core's ingestion boundary through the real process, on the real stocknet88 replay.

Run: ``.venv/bin/python benchmarks/fuzz_core.py [--entries N] [--symbols K] [--seed S] [--json]``
(exit status 1 if any check fails).

The real daily bars of ``equities_daily_stocknet88`` (all 88 tickers by default) are published
twice, in two namespaces: once clean, once with ``N`` hostile entries mixed in at seeded random
positions. Each hostile entry is one variant of a category of bad input (broken bytes, broken
JSON, wrong schema, wrong kind, wrong types, values out of range, bad names, a bad stream entry
around the message, impossible market content, implausible times and prices) and carries the
:class:`~core.runtime.ingest.RejectCode` the boundary must give it. Before anything is
published, the poisoned feed is replayed through an in-process
:class:`~core.runtime.ingest.IngestionBoundary`, so that a wrong expectation shows up as a
generator mismatch, not as a core failure.

``strategy-engine core --feed F --until-end --json`` then runs as a subprocess on each namespace
(``ma_crossover`` and ``breakout``), and once more on the poisoned one after its end (a restart
that must exit at once and change nothing). The checks:

- every run exits 0;
- every hostile entry is in the dead-letter stream exactly once, under its entry id, with its
  expected code, and nothing else is;
- no entry is left pending for the core's consumer group;
- the summary's ``events_rejected`` and ``rejected_by_reason`` are the hostile counts;
- the poisoned run's signals, orders and fills streams are byte-identical to the clean run's;
- the restart adds nothing to any stream.

``REDIS_URL`` selects a server; otherwise an embedded one runs in a temp dir.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import msgspec
import redis

from benchmarks.harness import core_env
from core import codec
from core.adapters.market_streams import PUBLISH_BATCH, feed_key
from core.adapters.redis_server import connect
from core.adapters.redis_store import RedisStore
from core.data.datasets import get_dataset
from core.data.feeds import replay_events
from core.model import Bar, Fill, Order, Position, Side, Signal
from core.runtime.ingest import (
    DAY_NS,
    END,
    INT64_MAX,
    IngestionBoundary,
    IngestLimits,
    RejectCode,
    Rejection,
)

REPO = Path(__file__).resolve().parents[1]
DATASET = "equities_daily_stocknet88"
FEED = DATASET
STRATEGIES = "ma_crossover,breakout"
CORE = "core-1"
GROUP = f"core:{CORE}"
OUTPUT_STREAMS = ("signals", "orders", "fills")
DEFAULT_ENTRIES = 10_000
# A restarted core on an ended feed does nothing but start, checkpoint and stop: allow for
# the interpreter's imports on a slow machine, not for reading the feed again.
RESTART_LIMIT_S = 60.0

Fields = dict[bytes, bytes]
_LIMITS = IngestLimits()


# -- the feed ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class FeedEntry:
    """One stream entry to publish: its fields, and what the boundary must make of it.

    ``stamp`` adds ``t_pub`` (wall-clock ns) at publish time, as
    :class:`~core.adapters.market_streams.FeedPublisher` does; entries that test ``t_pub``
    itself carry their own. ``code`` is None for a clean event.
    """

    fields: Fields
    stamp: bool = True
    category: str = ""
    variant: str = ""
    code: RejectCode | None = None

    @property
    def hostile(self) -> bool:
        return self.code is not None


@dataclass
class _History:
    """What the clean feed has shown before an insertion point (what the boundary knows)."""

    last: dict[str, Bar] = field(default_factory=dict)  # symbol -> its latest clean bar
    newest: int | None = None  # newest clean time on the feed
    # Symbols given a price-jump poison since their last clean bar. Jumps in a row that agree
    # are how the boundary recognises a real new level (five re-anchor the price), so each
    # poison is followed by a clean bar of its symbol before the next one.
    jumped: set[str] = field(default_factory=set)

    def see(self, bar: Bar) -> None:
        self.last[bar.symbol] = bar
        self.newest = bar.ts_event if self.newest is None else max(self.newest, bar.ts_event)
        self.jumped.discard(bar.symbol)


@dataclass
class _Context:
    rng: random.Random
    history: _History
    wall_ns: int
    upcoming: Bar  # the next clean bar (the base of stateless variants before any history)

    def base(self) -> Bar:
        """A plausible bar to corrupt: a seen symbol's latest bar, else the next one."""
        if not self.history.last:
            return self.upcoming
        return self.history.last[self.rng.choice(sorted(self.history.last))]

    def near(self, bar: Bar, ts: int) -> Bar:
        """``bar`` at time ``ts`` with its prices moved by under 2% (so only its time is wrong)."""
        f = self.rng.uniform(0.98, 1.02)
        return msgspec.structs.replace(
            bar,
            ts_event=ts,
            open=bar.open * f,
            high=bar.high * f,
            low=bar.low * f,
            close=bar.close * f,
        )


Maker = Callable[[_Context], "Fields | None"]


@dataclass(frozen=True)
class Variant:
    """One way to be hostile: its category, the code it must get, and how to make one.

    ``make`` returns the entry's fields, or None where the feed so far does not allow it
    (stateful variants need a symbol seen before, a price not poisoned twice in a row, ...).
    """

    category: str
    name: str
    code: RejectCode
    make: Maker
    stamp: bool = True
    stateful: bool = False


# -- message building -------------------------------------------------------------------------


def _token(value: Any) -> bytes:
    return msgspec.json.encode(value)


def _data(bar: Bar, **tokens: bytes) -> bytes:
    """A bar's JSON object with some field values replaced by raw JSON tokens (or dropped)."""
    values = {name: _token(getattr(bar, name)) for name in bar.__struct_fields__}
    values.update(tokens)
    parts = [b'"%s":%s' % (name.encode(), value) for name, value in values.items() if value]
    return b"{" + b",".join(parts) + b"}"


def _envelope(data: bytes, kind: bytes = b"bar", version: bytes = b"1") -> bytes:
    return b'{"v":%s,"kind":"%s","data":%s}' % (version, kind, data)


def _msg(payload: bytes) -> Fields:
    return {b"msg": payload}


def _bar_msg(bar: Bar, **tokens: bytes) -> Fields:
    return _msg(_envelope(_data(bar, **tokens)))


def _quote_msg(ctx: _Context, **overrides: float) -> Fields:
    bar = ctx.base()
    spread = bar.close * 0.001
    quote = {
        "symbol": bar.symbol,
        "ts_event": bar.ts_event,
        "bid_price": bar.close - spread,
        "bid_size": 100.0,
        "ask_price": bar.close + spread,
        "ask_size": 100.0,
        "venue": "XNYS",
    }
    quote.update(overrides)
    return _msg(_envelope(_token(quote), b"quote"))


def _digits(rng: random.Random, count: int) -> bytes:
    return str(rng.randint(1, 9)).encode() + b"".join(
        str(rng.randint(0, 9)).encode() for _ in range(count - 1)
    )


# -- the variants -----------------------------------------------------------------------------
# Each is checked against the real boundary (check_against_boundary) before a run relies on it.


def _not_utf8_in_string(ctx: _Context) -> Fields:
    bar = ctx.base()
    bad = bar.symbol[:1].encode() + ctx.rng.choice([b"\xff\xfe", b"\xc3\x28", b"\xed\xa0\x80"])
    return _bar_msg(bar, symbol=b'"' + bad + bar.symbol[1:].encode() + b'"')


def _not_utf8_at_start(ctx: _Context) -> Fields:
    return _msg(ctx.rng.choice([b"\xff", b"\x80", b"\xfe\xff"]) + _bar_msg(ctx.base())[b"msg"])


def _truncated(ctx: _Context) -> Fields:
    payload = _bar_msg(ctx.base())[b"msg"]
    return _msg(payload[: ctx.rng.randrange(0, len(payload) - 1)])


def _too_deep(ctx: _Context) -> Fields:
    # As deep as fits in the size bound (a deeper one is rejected for its size first).
    if ctx.rng.random() < 0.5:
        data = b"[" * 20_000 + b"]" * 20_000
    else:
        data = b'{"a":' * 10_000 + b"1" + b"}" * 10_000
    return _msg(_envelope(data))


def _too_large(ctx: _Context) -> Fields:
    # Valid JSON but for its size: whitespace padding, or a news story of 70 KiB.
    if ctx.rng.random() < 0.5:
        payload = _bar_msg(ctx.base())[b"msg"]
        return _msg(payload[:-1] + b" " * (codec.MAX_MESSAGE_BYTES + 1 - len(payload)) + b"}")
    bar = ctx.base()
    news = {"ts_event": bar.ts_event, "text": "x" * 70_000, "symbols": [bar.symbol]}
    return _msg(_envelope(_token(news), b"news"))


def _not_allowed(kind: str) -> Maker:
    def make(ctx: _Context) -> Fields:
        bar = ctx.base()
        order_id = f"{bar.symbol}-{bar.ts_event}"
        message: msgspec.Struct
        if kind == "signal":
            message = Signal(
                strategy="strategy.ma_crossover",
                symbol=bar.symbol,
                ts_event=bar.ts_event,
                target_position=ctx.rng.choice([-1.0, 1.0]),
                reason={"fast": bar.close, "slow": bar.open},
            )
        elif kind == "order":
            message = Order(
                order_id=order_id,
                symbol=bar.symbol,
                side=Side.BUY,
                quantity=round(10_000 / bar.close, 4),
                ts_event=bar.ts_event,
                strategy="strategy.breakout",
            )
        elif kind == "fill":
            message = Fill(
                fill_id=f"{order_id}-1",
                order_id=order_id,
                symbol=bar.symbol,
                side=Side.SELL,
                quantity=10.0,
                price=bar.close,
                fee=0.01,
                ts_event=bar.ts_event,
            )
        else:
            message = Position(
                symbol=bar.symbol,
                quantity=1e6,
                avg_price=bar.close,
                realized_pnl=0.0,
                ts_event=bar.ts_event,
            )
        return _msg(codec.encode(message))

    return make


def _bar_with(**choices: Sequence[bytes]) -> Maker:
    """A maker of a seen bar with each named field's value one of ``choices`` (raw JSON;
    an empty token drops the field)."""

    def make(ctx: _Context) -> Fields:
        bar = ctx.base()
        return _bar_msg(bar, **{name: ctx.rng.choice(tokens) for name, tokens in choices.items()})

    return make


def _one_of(*payloads: bytes) -> Maker:
    return lambda ctx: _msg(ctx.rng.choice(payloads))


def _in_array(ctx: _Context) -> Fields:
    return _msg(b"[" + _bar_msg(ctx.base())[b"msg"] + b"]")


def _envelope_extra_key(ctx: _Context) -> Fields:
    return _msg(_bar_msg(ctx.base())[b"msg"][:-1] + b',"sig":"x"}')


def _version(ctx: _Context) -> Fields:
    version = ctx.rng.choice([b"0", b"2", b"99", b"-1"])
    return _msg(_envelope(_data(ctx.base()), version=version))


def _kind(ctx: _Context) -> Fields:
    kind = ctx.rng.choice([b"candle", b"tick", b"", b"Bar", b"bars"])
    return _msg(_envelope(_data(ctx.base()), kind=kind))


def _missing_field(ctx: _Context) -> Fields:
    return _bar_msg(ctx.base(), **{ctx.rng.choice(["close", "symbol", "ts_event"]): b""})


def _wrong_type(ctx: _Context) -> Fields:
    name, token = ctx.rng.choice([
        ("open", b'"95.1"'), ("volume", b"true"), ("close", b"null"), ("ts_event", b"1.5e18"),
        ("symbol", b"42"),
    ])  # fmt: skip
    return _bar_msg(ctx.base(), **{name: token})


def _ts_beyond_int64(ctx: _Context) -> Fields:
    return _bar_msg(ctx.base(), ts_event=str(ctx.rng.randrange(2**63, 2**64)).encode())


def _ts_negative(ctx: _Context) -> Fields:
    return _bar_msg(ctx.base(), ts_event=str(-ctx.rng.randrange(1, 2**63)).encode())


def _price_30_digits(ctx: _Context) -> Fields:
    name = ctx.rng.choice(["open", "high", "close"])
    return _bar_msg(ctx.base(), **{name: _digits(ctx.rng, 30)})


def _non_positive_price(ctx: _Context) -> Fields:
    name = ctx.rng.choice(["open", "low", "close"])
    return _bar_msg(ctx.base(), **{name: ctx.rng.choice([b"0.0", b"0", b"-1.5"])})


def _high_below_low(ctx: _Context) -> Fields:
    bar = ctx.base()
    return _bar_msg(bar, high=_token(bar.low * ctx.rng.uniform(0.5, 0.99)))


def _extra_entry_field(ctx: _Context) -> Fields:
    name = ctx.rng.choice([b"extra", b"MSG", b"msg ", b"t_pub2", b"\xff"])
    return {**_bar_msg(ctx.base()), name: b"1"}


def _t_pub(*values: bytes) -> Maker:
    return lambda ctx: {**_bar_msg(ctx.base()), b"t_pub": ctx.rng.choice(values)}


def _t_pub_ahead(ctx: _Context) -> Fields:
    return {**_bar_msg(ctx.base()), b"t_pub": str(ctx.wall_ns + 2 * DAY_NS).encode()}


def _end(*values: bytes) -> Maker:
    return lambda ctx: {b"end": ctx.rng.choice(values)}


def _end_with_msg(ctx: _Context) -> Fields:
    return {**_bar_msg(ctx.base()), b"end": b"1"}


def _quote(**overrides: float) -> Maker:
    return lambda ctx: _quote_msg(ctx, **overrides)


def _trade_size_zero(ctx: _Context) -> Fields:
    bar = ctx.base()
    trade = {"symbol": bar.symbol, "ts_event": bar.ts_event, "price": bar.close, "size": 0.0}
    return _msg(_envelope(_token(trade), b"trade"))


def _funding_rate(ctx: _Context) -> Fields:
    bar = ctx.base()
    rate = ctx.rng.choice([0.5, -0.9, 3.0])
    funding = {"symbol": bar.symbol, "venue": "XNYS", "ts_event": bar.ts_event, "rate": rate}
    return _msg(_envelope(_token(funding), b"funding"))


def _out_of_order(ctx: _Context) -> Fields | None:
    if not ctx.history.last:
        return None
    bar = ctx.base()
    return _bar_msg(ctx.near(bar, bar.ts_event - 30 * DAY_NS))


def _future_time(ctx: _Context) -> Fields:
    return _bar_msg(ctx.near(ctx.base(), ctx.wall_ns + 30 * DAY_NS))


def _time_jump(ctx: _Context) -> Fields | None:
    newest = ctx.history.newest
    if newest is None:
        return None
    ts = newest + 500 * DAY_NS
    if ts >= ctx.wall_ns:  # it would be ahead of the clock: a future_time, not a jump
        return None
    return _bar_msg(ctx.near(ctx.base(), ts))


def _price_jump(up: bool) -> Maker:
    def make(ctx: _Context) -> Fields | None:
        history = ctx.history
        candidates = sorted(set(history.last) - history.jumped)
        if not candidates:
            return None
        bar = history.last[ctx.rng.choice(candidates)]
        factor = ctx.rng.uniform(50.0, 1000.0)
        # Above max_price it would be value_out_of_range, not a jump.
        price = min(bar.close * factor, _LIMITS.max_price / 2) if up else bar.close / factor
        band = _LIMITS.max_price_jump * 1.1
        if bar.close / band <= price <= bar.close * band:
            return None
        history.jumped.add(bar.symbol)
        # At the symbol's own last time: not out of order, not a time jump; the boundary's
        # last good price of the symbol is that bar's close.
        jump = msgspec.structs.replace(bar, open=price, high=price, low=price, close=price)
        return _bar_msg(jump)

    return make


_R = RejectCode
# Variants made from the clean data before them (the boundary's per-feed state).
STATEFUL = frozenset({"out_of_order", "time_jump", "price_jump"})
_TABLE: tuple[tuple[str, str, RejectCode, Maker], ...] = (
    ("not_utf8", "in_string", _R.NOT_UTF8, _not_utf8_in_string),
    ("not_utf8", "at_byte_0", _R.NOT_UTF8, _not_utf8_at_start),
    ("malformed_envelope", "truncated", _R.MALFORMED_ENVELOPE, _truncated),
    ("malformed_envelope", "array", _R.MALFORMED_ENVELOPE, _in_array),
    ("malformed_envelope", "empty_array", _R.MALFORMED_ENVELOPE, _one_of(b"[]")),
    ("malformed_envelope", "bare_value", _R.MALFORMED_ENVELOPE, _one_of(b'"bar"', b"null", b"42")),
    ("malformed_envelope", "empty", _R.MALFORMED_ENVELOPE, _one_of(b"")),
    ("malformed_envelope", "extra_key", _R.MALFORMED_ENVELOPE, _envelope_extra_key),
    ("too_deep", "nested", _R.TOO_DEEP, _too_deep),
    ("too_large", "over_64KiB", _R.TOO_LARGE, _too_large),
    ("unknown_schema_version", "version", _R.UNKNOWN_SCHEMA_VERSION, _version),
    ("unknown_kind", "kind", _R.UNKNOWN_KIND, _kind),
    ("kind_not_allowed", "signal", _R.KIND_NOT_ALLOWED, _not_allowed("signal")),
    ("kind_not_allowed", "order", _R.KIND_NOT_ALLOWED, _not_allowed("order")),
    ("kind_not_allowed", "fill", _R.KIND_NOT_ALLOWED, _not_allowed("fill")),
    ("kind_not_allowed", "position", _R.KIND_NOT_ALLOWED, _not_allowed("position")),
    ("malformed_message", "missing_field", _R.MALFORMED_MESSAGE, _missing_field),
    ("malformed_message", "wrong_type", _R.MALFORMED_MESSAGE, _wrong_type),
    ("malformed_message", "unknown_data_field", _R.MALFORMED_MESSAGE, _bar_with(vwap=[b"1.0"])),
    # JSON cannot spell a non-finite float (no NaN or Infinity literals); the nearest thing, a
    # number beyond float64, is refused by the decoder as out of range, never made inf.
    (
        "non_finite",
        "1e400",
        _R.VALUE_OUT_OF_RANGE,
        _bar_with(close=[b"1e400", b"-1e400", b"1e309"]),
    ),
    ("time_out_of_range", "beyond_int64", _R.TIME_OUT_OF_RANGE, _ts_beyond_int64),
    ("time_out_of_range", "negative", _R.TIME_OUT_OF_RANGE, _ts_negative),
    ("value_out_of_range", "30_digit_price", _R.VALUE_OUT_OF_RANGE, _price_30_digits),
    (
        "value_out_of_range",
        "close_1e308",
        _R.VALUE_OUT_OF_RANGE,
        _bar_with(high=[b"1e308"], close=[b"1e308"]),
    ),
    ("bad_name", "space", _R.BAD_NAME, _bar_with(symbol=[b'"BRK B"', b'" AAPL"'])),
    ("bad_name", "pipe", _R.BAD_NAME, _bar_with(symbol=[b'"AAPL|x"'])),
    ("bad_name", "empty", _R.BAD_NAME, _bar_with(symbol=[b'""'])),
    ("bad_name", "control_char", _R.BAD_NAME, _bar_with(symbol=[b'"AA\\u0001PL"', b'"A\\nB"'])),
    ("bad_name", "too_long", _R.BAD_NAME, _bar_with(symbol=[b'"' + b"A" * 65 + b'"'])),
    ("unknown_field", "extra_entry_field", _R.UNKNOWN_FIELD, _extra_entry_field),
    ("bad_t_pub", "not_digits", _R.BAD_T_PUB, _t_pub(b"12ab", b"-1", b"", b"1.5e18", b" 123")),
    ("bad_t_pub", "2^64", _R.BAD_T_PUB, _t_pub(str(2**64).encode())),
    ("bad_t_pub", "beyond_int64", _R.BAD_T_PUB, _t_pub(str(INT64_MAX + 1).encode())),
    ("bad_t_pub", "ahead_of_clock", _R.BAD_T_PUB, _t_pub_ahead),
    ("bad_end_marker", "end_not_1", _R.BAD_END_MARKER, _end(b"2", b"0", b"", b"true", b"1 ")),
    ("bad_end_marker", "end_with_msg", _R.BAD_END_MARKER, _end_with_msg),
    ("missing_payload", "only_t_pub", _R.MISSING_PAYLOAD, lambda ctx: {}),
    ("non_positive_price", "bar", _R.NON_POSITIVE_PRICE, _non_positive_price),
    ("non_positive_price", "quote", _R.NON_POSITIVE_PRICE, _quote(bid_price=0.0)),
    ("negative_volume", "bar", _R.NEGATIVE_VOLUME, _bar_with(volume=[b"-100.0", b"-1e-9"])),
    ("high_below_low", "bar", _R.HIGH_BELOW_LOW, _high_below_low),
    ("crossed_book", "quote", _R.CROSSED_BOOK, _quote(bid_price=101.0, ask_price=100.0)),
    ("negative_size", "quote", _R.NEGATIVE_SIZE, _quote(bid_size=-5.0)),
    ("non_positive_size", "trade", _R.NON_POSITIVE_SIZE, _trade_size_zero),
    ("implausible_rate", "funding", _R.IMPLAUSIBLE_RATE, _funding_rate),
    ("out_of_order", "30_days_back", _R.OUT_OF_ORDER, _out_of_order),
    ("future_time", "30_days_ahead", _R.FUTURE_TIME, _future_time),
    ("time_jump", "500_days", _R.TIME_JUMP, _time_jump),
    ("price_jump", "up_50_1000x", _R.PRICE_JUMP, _price_jump(up=True)),
    ("price_jump", "down_50_1000x", _R.PRICE_JUMP, _price_jump(up=False)),
)
VARIANTS = tuple(
    Variant(category, name, code, make, category != "bad_t_pub", category in STATEFUL)
    for category, name, code, make in _TABLE
)
"""Every hostile variant: category, name, the code it must get, its maker."""
CATEGORIES = tuple(dict.fromkeys(v.category for v in VARIANTS))


# -- generation -------------------------------------------------------------------------------


def hostile_entries(
    events: Sequence[Bar],
    rng: random.Random,
    n: int,
    wall_ns: int,
    *,
    categories: Sequence[str] | None = None,
) -> list[tuple[int, FeedEntry]]:
    """``n`` hostile entries and where they go: ``(i, entry)`` goes just before ``events[i]``.

    Every variant (of ``categories``, all by default) is used ``n // variants`` or one more
    times, in seeded random order, at seeded random positions. Stateful variants (out of
    order, time jump, price jump) are made from the clean events before their position; where
    the feed so far does not allow one (no symbol seen yet, every seen symbol's price already
    poisoned), it goes at the next position that does, or at the end of the feed.

    Parameters
    ----------
    events : sequence of Bar
        The clean replay, in feed order.
    rng : random.Random
        The source of every random choice (seed it to reproduce a feed).
    n : int
        How many hostile entries; at least one per variant.
    wall_ns : int
        The wall clock (ns) the future and clock-skew variants are set against.
    categories : sequence of str, optional
        Only these categories (names in :data:`CATEGORIES`).

    Returns
    -------
    list of (int, FeedEntry)
        Sorted by position.
    """
    variants = [v for v in VARIANTS if categories is None or v.category in categories]
    if not variants or not events:
        raise ValueError("no variants or no events to mix them into")
    if n < len(variants):
        raise ValueError(f"{n} entries cannot cover the {len(variants)} variants")
    order = [variants[i % len(variants)] for i in range(n)]
    rng.shuffle(order)
    positions = sorted(rng.randrange(0, len(events) + 1) for _ in range(n))
    history = _History()
    seen = 0
    out: list[tuple[int, FeedEntry]] = []
    # Stateful variants the feed did not allow where they were drawn, tried again later on.
    deferred: list[Variant] = []
    for position, drawn in [*zip(positions, order, strict=True), (len(events), None)]:
        while seen < position:
            history.see(events[seen])
            seen += 1
        ctx = _Context(rng, history, wall_ns, events[min(position, len(events) - 1)])
        todo, deferred = [*deferred, *([drawn] if drawn else [])], []
        for variant in todo:
            fields = variant.make(ctx)
            if fields is None:
                deferred.append(variant)
                continue
            entry = FeedEntry(fields, variant.stamp, variant.category, variant.name, variant.code)
            out.append((position, entry))
    if deferred:
        names = sorted({f"{v.category}/{v.name}" for v in deferred})
        raise ValueError(f"the feed leaves no place for {len(deferred)} of {names}")
    return out


def poisoned_feed(
    events: Sequence[Bar], hostile: Sequence[tuple[int, FeedEntry]]
) -> list[FeedEntry]:
    """The clean events as entries with the hostile ones inserted at their positions."""
    feed: list[FeedEntry] = []
    k = 0
    for i, event in enumerate(events):
        while k < len(hostile) and hostile[k][0] <= i:
            feed.append(hostile[k][1])
            k += 1
        feed.append(FeedEntry(_msg(codec.encode(event))))
    feed.extend(entry for _, entry in hostile[k:])
    return feed


def clean_feed(events: Sequence[Bar]) -> list[FeedEntry]:
    return [FeedEntry(_msg(codec.encode(event))) for event in events]


def check_against_boundary(feed: Sequence[FeedEntry], wall_ns: int | None = None) -> list[str]:
    """Replay ``feed`` through one in-process boundary; every way it differs from the plan.

    A hostile entry must get its code, a clean one must come back as its event. Returns one
    line per mismatch (empty when the plan holds).
    """
    boundary = IngestionBoundary()
    now = time.time_ns() if wall_ns is None else wall_ns
    problems = []
    for index, entry in enumerate(feed):
        fields = _stamped(entry, now)
        outcome = boundary.admit_entry(FEED, fields)
        if entry.code is not None:
            got = outcome.code if isinstance(outcome, Rejection) else type(outcome).__name__
            if got != entry.code:
                problems.append(
                    f"#{index} {entry.category}/{entry.variant}: expected {entry.code}, got "
                    f"{got} ({getattr(outcome, 'reason', outcome)}) for {_show(fields)}"
                )
        elif isinstance(outcome, Rejection) or outcome is END or outcome is None:
            problems.append(f"#{index} clean entry not accepted: {outcome} for {_show(fields)}")
        elif codec.encode(outcome) != entry.fields[b"msg"]:
            problems.append(f"#{index} clean entry came back changed: {outcome}")
    return problems


def _stamped(entry: FeedEntry, now_ns: int) -> Fields:
    if not entry.stamp:
        return dict(entry.fields)
    return {**entry.fields, b"t_pub": str(now_ns).encode()}


def _show(fields: Fields) -> str:
    return repr({k: v[:160] for k, v in fields.items()})


# -- Redis and the core process ---------------------------------------------------------------


def publish(client: redis.Redis, namespace: str, feed: Sequence[FeedEntry]) -> list[bytes]:
    """XADD every entry in pipelined batches, then the end marker; return the entry ids.

    ``t_pub`` is taken as each entry is queued, as the core's own publisher does.
    """
    key = feed_key(namespace, FEED)
    ids: list[bytes] = []
    for start in range(0, len(feed), PUBLISH_BATCH):
        with client.pipeline(transaction=False) as pipe:
            for entry in feed[start : start + PUBLISH_BATCH]:
                pipe.xadd(key, _stamped(entry, time.time_ns()))  # type: ignore[arg-type]
            ids.extend(_as_bytes(i) for i in pipe.execute())
    client.xadd(key, {b"end": b"1", b"t_pub": str(time.time_ns()).encode()})
    return ids


def core_argv(namespace: str) -> list[str]:
    """The ``strategy-engine core`` command line on the fuzz feed, run by this Python."""
    return [
        sys.executable, "-m", "strategy_engine.cli", "core",
        "--feed", FEED, "--until-end", "--json", "--strategies", STRATEGIES,
        "--namespace", namespace, "--no-mlflow",
    ]  # fmt: skip


@dataclass
class CoreRun:
    returncode: int
    seconds: float
    summary: dict[str, Any]
    stderr: str


def run_core(namespace: str, env: dict[str, str], timeout_s: float) -> CoreRun:
    """Run the core to the end of its feed as a subprocess; its exit, time and summary."""
    started = time.perf_counter()
    done = subprocess.run(
        core_argv(namespace),
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    seconds = time.perf_counter() - started
    summary: dict[str, Any] = {}
    if done.returncode == 0:
        try:
            summary = json.loads(done.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            summary = {}
    return CoreRun(done.returncode, seconds, summary, done.stderr[-4000:])


def _as_bytes(value: Any) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()


def _stream_msgs(client: redis.Redis, key: str) -> list[bytes]:
    entries = cast(list[tuple[bytes, dict[bytes, bytes]]], client.xrange(key))
    return [fields.get(b"msg", b"") for _, fields in entries]


def _outputs(client: redis.Redis, namespace: str) -> dict[str, list[bytes]]:
    return {name: _stream_msgs(client, f"{namespace}:{name}") for name in OUTPUT_STREAMS}


def _snapshot(client: redis.Redis, namespace: str) -> dict[str, Any]:
    """What a run could change: every stream's entries (the feed's length, last id and
    consumer groups: it is large and append-only) and the positions."""
    snapshot: dict[str, Any] = {}
    for key in sorted(_as_bytes(k) for k in client.scan_iter(match=f"{namespace}:*", count=1000)):
        if _as_bytes(client.type(key)) != b"stream":
            continue
        if key == feed_key(namespace, FEED).encode():
            info = cast(dict[str, Any], client.xinfo_stream(key))
            groups = cast(list[dict[str, Any]], client.xinfo_groups(key))
            snapshot[key.decode()] = (info["length"], info["last-generated-id"], groups)
        else:
            snapshot[key.decode()] = client.xrange(key)
    snapshot["positions"] = client.hgetall(f"{namespace}:positions")
    return snapshot


def _pending(client: redis.Redis, namespace: str) -> int:
    info = cast(dict[str, Any], client.xpending(feed_key(namespace, FEED), GROUP))
    return int(info.get("pending", 0))


# -- the benchmark ----------------------------------------------------------------------------


def load_events(symbols: int | None, seed: int) -> list[Bar]:
    """The real replay, of all tickers or ``symbols`` of them drawn with ``seed``."""
    tickers = list(get_dataset(DATASET).tickers)
    if symbols is not None and symbols < len(tickers):
        tickers = sorted(random.Random(seed).sample(tickers, symbols))
    return cast(list[Bar], replay_events(DATASET, symbols=tickers))


def run_fuzz(
    connection_url: str,
    namespace: str,
    *,
    entries: int = DEFAULT_ENTRIES,
    symbols: int | None = None,
    seed: int = 0,
    work_dir: Path | None = None,
    timeout_s: float = 3600.0,
) -> dict[str, Any]:
    """Publish the clean and the poisoned replay, run the core on both, and check the results.

    Parameters
    ----------
    connection_url : str
        The Redis server (the core subprocesses get it as ``REDIS_URL``).
    namespace : str
        Key prefix; the clean run uses ``{namespace}:clean``, the poisoned ``{namespace}:fuzz``.
    entries : int
        Hostile entries to mix in (at least one per variant).
    symbols : int, optional
        Only this many tickers (drawn with ``seed``); all by default.
    seed : int
        Seed of the ticker draw and of every hostile entry and position.
    work_dir : Path, optional
        Where the cores keep local state (a temp dir by default).
    timeout_s : float
        Longest a core run may take.

    Returns
    -------
    dict
        ``ok``, ``checks`` (name -> bool), ``failures`` (details), counts per category and
        variant, dead-letter and pending counts, the runs' figures and the timings.
    """
    if work_dir is None:
        with tempfile.TemporaryDirectory(prefix="se-fuzz-") as tmp:
            return run_fuzz(
                connection_url, namespace, entries=entries, symbols=symbols, seed=seed,
                work_dir=Path(tmp), timeout_s=timeout_s,
            )  # fmt: skip
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    events = load_events(symbols, seed)
    timings["load_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    wall_ns = time.time_ns()
    hostile = hostile_entries(events, random.Random(seed), entries, wall_ns)
    feed = poisoned_feed(events, hostile)
    clean = clean_feed(events)
    timings["generate_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    plan_problems = check_against_boundary(feed)
    timings["boundary_check_s"] = time.perf_counter() - t0

    fuzz_ns, clean_ns = f"{namespace}:fuzz", f"{namespace}:clean"
    connection = connect(connection_url)
    client = connection.client
    try:
        t0 = time.perf_counter()
        clean_ids = publish(client, clean_ns, clean)
        timings["publish_clean_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        ids = publish(client, fuzz_ns, feed)
        timings["publish_fuzz_s"] = time.perf_counter() - t0

        env = core_env(connection_url, work_dir)
        clean_run = run_core(clean_ns, env, timeout_s)
        fuzz_run = run_core(fuzz_ns, env, timeout_s)
        before = _snapshot(client, fuzz_ns)
        restart = run_core(fuzz_ns, env, min(timeout_s, 10 * RESTART_LIMIT_S))
        after = _snapshot(client, fuzz_ns)

        letters = RedisStore(client, namespace=fuzz_ns).read_dead_letters()
        clean_letters = RedisStore(client, namespace=clean_ns).read_dead_letters()
        pending = _pending(client, fuzz_ns)
        clean_pending = _pending(client, clean_ns)
        outputs = _outputs(client, fuzz_ns)
        clean_outputs = _outputs(client, clean_ns)
    finally:
        connection.close()
    timings["run_clean_s"] = clean_run.seconds
    timings["run_fuzz_s"] = fuzz_run.seconds
    timings["restart_s"] = restart.seconds

    key = feed_key(fuzz_ns, FEED)
    expected = {
        f"{key}#{entry_id.decode()}": entry
        for entry_id, entry in zip(ids, feed, strict=True)
        if entry.hostile
    }
    failures: list[str] = [f"generator: {p}" for p in plan_problems[:20]]
    checks = _check(
        expected, letters, clean_letters, pending, clean_pending, outputs, clean_outputs,
        clean_run, fuzz_run, restart, before, after, len(events), failures,
    )  # fmt: skip
    checks["generator_matches_boundary"] = not plan_problems

    per_variant = Counter((e.category, e.variant, str(e.code)) for _, e in hostile)
    per_code = Counter(str(e.code) for _, e in hostile)
    lettered = Counter(letter["source"] for letter in letters)
    run_s = max(fuzz_run.seconds, 1e-9)
    return {
        "ok": all(checks.values()),
        "checks": checks,
        "failures": failures,
        "dataset": DATASET,
        "seed": seed,
        "symbols": len({e.symbol for e in events}),
        "clean_events": len(events),
        "hostile_entries": len(hostile),
        "feed_entries": len(feed),
        "clean_feed_entries": len(clean_ids),
        "categories": len({e.category for _, e in hostile}),
        "variants": len(per_variant),
        "by_category": dict(Counter(e.category for _, e in hostile)),
        "by_variant": [
            {"category": c, "variant": v, "code": code, "count": count}
            for (c, v, code), count in per_variant.items()
        ],
        "expected_by_code": dict(sorted(per_code.items())),
        "dead_lettered": len(letters),
        "dead_lettered_hostile": sum(1 for s in expected if lettered[s] == 1),
        "pending": pending,
        "identical": {name: outputs[name] == clean_outputs[name] for name in OUTPUT_STREAMS},
        "outputs": {name: len(outputs[name]) for name in OUTPUT_STREAMS},
        "runs": {
            name: _run_figures(run)
            for name, run in (("clean", clean_run), ("fuzz", fuzz_run), ("restart", restart))
        },
        "timings": {
            **{k: round(v, 3) for k, v in timings.items()},
            "fuzz_entries_per_s": round(len(feed) / run_s),
            "clean_events_per_s": round(len(events) / max(clean_run.seconds, 1e-9)),
        },
        "redis": "REDIS_URL" if os.environ.get("REDIS_URL") else "embedded",
    }


def _check(
    expected: dict[str, FeedEntry],
    letters: list[dict[str, Any]],
    clean_letters: list[dict[str, Any]],
    pending: int,
    clean_pending: int,
    outputs: dict[str, list[bytes]],
    clean_outputs: dict[str, list[bytes]],
    clean_run: CoreRun,
    fuzz_run: CoreRun,
    restart: CoreRun,
    before: dict[str, Any],
    after: dict[str, Any],
    n_events: int,
    failures: list[str],
) -> dict[str, bool]:
    """Every check of the run; each failed one adds a line (with examples) to ``failures``."""
    checks: dict[str, bool] = {}

    def check(name: str, ok: bool, detail: str = "") -> None:
        checks[name] = ok
        if not ok:
            failures.append(f"{name}: {detail}")

    for name, run in (("clean", clean_run), ("fuzz", fuzz_run), ("restart", restart)):
        check(f"{name}_exit_0", run.returncode == 0, f"exit {run.returncode}: {run.stderr}")
    by_source: dict[str, list[dict[str, Any]]] = {}
    for letter in letters:
        by_source.setdefault(letter["source"], []).append(letter)
    missing = [s for s in expected if s not in by_source]
    twice = [s for s, found in by_source.items() if len(found) > 1]
    stray = [s for s in by_source if s not in expected]
    wrong = [
        f"{s} {expected[s].category}/{expected[s].variant}: expected {expected[s].code}, got "
        f"{by_source[s][0]['code']} ({by_source[s][0]['reason'][:160]})"
        for s in expected
        if s in by_source and by_source[s][0]["code"] != expected[s].code
    ]
    check("every_hostile_dead_lettered", not missing, _examples(missing, expected))
    check("dead_lettered_once", not twice, ", ".join(twice[:5]))
    check("codes_as_expected", not wrong, "; ".join(wrong[:10]))
    check("no_clean_entry_dead_lettered", not stray, ", ".join(stray[:5]))
    check("clean_run_dead_letters_none", not clean_letters, f"{len(clean_letters)} dead letters")
    pending_detail = f"{pending} pending (clean: {clean_pending})"
    check("nothing_pending", pending == 0 and clean_pending == 0, pending_detail)

    summary, clean_summary = fuzz_run.summary, clean_run.summary
    want_codes = dict(sorted(Counter(str(e.code) for e in expected.values()).items()))
    rejected, by_reason = summary.get("events_rejected"), summary.get("rejected_by_reason")
    check("events_rejected", rejected == len(expected), f"{rejected} != {len(expected)}")
    check("rejected_by_reason", by_reason == want_codes, f"{by_reason} != {want_codes}")
    events_in, clean_in = summary.get("events_in"), clean_summary.get("events_in")
    check(
        "events_in",
        events_in == clean_in == n_events,
        f"poisoned {events_in}, clean {clean_in}, published {n_events}",
    )
    check(
        "clean_run_rejected_nothing",
        clean_summary.get("events_rejected") == 0,
        f"{clean_summary.get('rejected_by_reason')}",
    )
    for name in OUTPUT_STREAMS:
        same = outputs[name] == clean_outputs[name]
        check(f"{name}_identical", same, _first_difference(outputs[name], clean_outputs[name]))
    check(
        "signals_and_fills_not_empty",
        bool(clean_outputs["signals"] and clean_outputs["fills"]),
        "the clean run produced no signals or fills to compare",
    )
    check("restart_prompt", restart.seconds < RESTART_LIMIT_S, f"{restart.seconds:.1f} s")
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    again = restart.summary.get("events_rejected")
    check(
        "restart_changed_nothing",
        not changed and again == 0,
        f"changed: {changed}; the restart rejected {again}",
    )
    return checks


def _examples(sources: list[str], expected: dict[str, FeedEntry]) -> str:
    shown = [
        f"{s} {expected[s].category}/{expected[s].variant} {_show(expected[s].fields)}"
        for s in sources[:5]
    ]
    return f"{len(sources)} missing, e.g. " + "; ".join(shown)


def _first_difference(got: list[bytes], want: list[bytes]) -> str:
    for i, (a, b) in enumerate(zip(got, want, strict=False)):
        if a != b:
            return f"entry {i}: {a[:200]!r} != clean {b[:200]!r}"
    return f"{len(got)} entries != clean {len(want)}"


_RUN_FIGURES = ("events_in", "events_rejected", "rejected_by_reason", "signals_out", "orders",
                "fills", "restored_from_checkpoint", "read_errors", "last_error")  # fmt: skip


def _run_figures(run: CoreRun) -> dict[str, Any]:
    figures = {k: run.summary.get(k) for k in _RUN_FIGURES}
    return {"exit": run.returncode, "seconds": round(run.seconds, 3), **figures}


# -- output -----------------------------------------------------------------------------------


def report(result: dict[str, Any]) -> str:
    """The result as a table of categories and counts, the checks and the timings."""
    lines = [f"{'category':<24}{'variant':<20}{'expected code':<24}{'count':>7}"]
    rows = sorted(
        result["by_variant"], key=lambda r: (CATEGORIES.index(r["category"]), r["variant"])
    )
    for row in rows:
        lines.append(f"{row['category']:<24}{row['variant']:<20}{row['code']:<24}{row['count']:>7}")
    t = result["timings"]
    lines += [
        "",
        f"clean events {result['clean_events']} ({result['symbols']} symbols), hostile "
        f"{result['hostile_entries']} in {result['categories']} categories / "
        f"{result['variants']} variants",
        f"dead-lettered {result['dead_lettered']} (hostile exactly once: "
        f"{result['dead_lettered_hostile']}), pending {result['pending']}, outputs identical: "
        + ", ".join(f"{k} {'yes' if v else 'NO'}" for k, v in result["identical"].items())
        + f" ({', '.join(f'{k} {v}' for k, v in result['outputs'].items())})",
        f"publish: clean {t['publish_clean_s']:.2f} s, poisoned {t['publish_fuzz_s']:.2f} s; "
        f"core: clean {t['run_clean_s']:.2f} s ({t['clean_events_per_s']} events/s), poisoned "
        f"{t['run_fuzz_s']:.2f} s ({t['fuzz_entries_per_s']} entries/s), restart "
        f"{t['restart_s']:.2f} s; boundary pre-check {t['boundary_check_s']:.2f} s",
        "",
        "checks: "
        + ", ".join(f"{k} {'ok' if v else 'FAILED'}" for k, v in result["checks"].items()),
    ]
    lines += [f"  - {line}" for line in result["failures"]]
    lines.append("OK" if result["ok"] else "FAILED")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--entries", type=int, default=DEFAULT_ENTRIES, help="hostile entries")
    parser.add_argument("--symbols", type=int, default=None, help="tickers (default: all 88)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout-s", type=float, default=3600.0, help="per core run")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if args.entries < len(VARIANTS):
        parser.error(f"--entries must be at least {len(VARIANTS)} (one per variant)")
    namespace = f"fuzz-{uuid.uuid4().hex[:10]}"
    with tempfile.TemporaryDirectory(prefix="se-fuzz-") as tmp:
        connection = connect(data_dir=Path(tmp) / "redis")
        try:
            result = run_fuzz(
                connection.url, namespace, entries=args.entries, symbols=args.symbols,
                seed=args.seed, work_dir=Path(tmp), timeout_s=args.timeout_s,
            )  # fmt: skip
        finally:
            _delete_namespace(connection.client, namespace)
            connection.close()
    print(json.dumps(result) if args.json else report(result))
    return 0 if result["ok"] else 1


def _delete_namespace(client: redis.Redis, namespace: str) -> None:
    keys = list(client.scan_iter(match=f"{namespace}:*", count=1000))
    for start in range(0, len(keys), 1000):
        client.delete(*keys[start : start + 1000])


if __name__ == "__main__":
    raise SystemExit(main())
