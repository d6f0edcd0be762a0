"""The ingestion boundary: every feed entry becomes a valid event or a coded rejection.

This is the one place that decides whether what arrived on a market-data feed may reach the
engine. It owns every failure mode of an entry, in the order they are checked:

1. the entry around the message: only ``msg``, ``t_pub`` and ``end`` fields; ``t_pub`` an
   int64 of wall-clock nanoseconds not ahead of this machine's clock; an end marker is exactly
   ``end=1``;
2. the bytes: size, UTF-8, JSON nesting, envelope, schema version, a kind allowed on a market
   feed (a signal, order, fill or position is not market data), every field's type
   (:mod:`core.codec`);
3. ranges: times are int64 nanoseconds, floats finite and bounded, names short and printable;
4. content: positive prices, non-negative sizes, an uncrossed book, high above low;
5. plausibility: time not ahead of the wall clock, not jumping ahead of the feed's own recent
   time, not going back per instrument, and, for live feeds, not stale; a price within a
   multiple of the instrument's last good price.

:meth:`IngestionBoundary.admit` never raises: it returns the event, or a :class:`Rejection`
with a stable :class:`RejectCode`, which the reader dead-letters with the raw bytes and
acknowledges, so no entry can crash a core twice. A rejection changes no state but one: the
count of consecutive price jumps that agree on a new level. The state is checkpointed with
the engine, so a restarted core takes the same decisions on the entries it gets again. O(1)
per entry.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from core import codec
from core.config import FrozenConfig, require
from core.errors import MessageError
from core.model import Bar, FundingRate, MacroPoint, NewsItem, Quote, Trade

INT64_MAX = 2**63 - 1
SECOND_NS = 1_000_000_000
DAY_NS = 86_400 * SECOND_NS

MARKET_KINDS = frozenset({"bar", "quote", "trade", "funding", "news", "macro"})
"""Message kinds a market-data feed may carry."""
ENTRY_FIELDS = frozenset({b"msg", b"t_pub", b"end"})

# Names (symbols, venues, series): what real tickers use (BRK-B, EUR/USD, ^GSPC, ES=F), no
# spaces, no '|' (it separates model from symbol in state keys), no control characters.
_NAME = re.compile(r"[A-Za-z0-9._\-/:^=+#$&!~*@]{1,64}")
_NAME_FULL = _NAME.fullmatch


class RejectCode(StrEnum):
    """Why an entry was rejected (stable strings: dead-letter ``code`` and metric labels)."""

    # the stream entry around the message
    MISSING_PAYLOAD = "missing_payload"
    UNKNOWN_FIELD = "unknown_field"
    BAD_T_PUB = "bad_t_pub"
    BAD_END_MARKER = "bad_end_marker"
    # bytes, JSON and schema (raised by core.codec with these codes)
    TOO_LARGE = "too_large"
    NOT_UTF8 = "not_utf8"
    TOO_DEEP = "too_deep"
    MALFORMED_ENVELOPE = "malformed_envelope"
    UNKNOWN_SCHEMA_VERSION = "unknown_schema_version"
    UNKNOWN_KIND = "unknown_kind"
    KIND_NOT_ALLOWED = "kind_not_allowed"
    MALFORMED_MESSAGE = "malformed_message"
    WRONG_KIND = "wrong_kind"
    NON_FINITE = "non_finite"
    # ranges
    TIME_OUT_OF_RANGE = "time_out_of_range"
    VALUE_OUT_OF_RANGE = "value_out_of_range"
    BAD_NAME = "bad_name"
    # content
    NON_POSITIVE_PRICE = "non_positive_price"
    NON_POSITIVE_SIZE = "non_positive_size"
    NEGATIVE_SIZE = "negative_size"
    NEGATIVE_VOLUME = "negative_volume"
    HIGH_BELOW_LOW = "high_below_low"
    CROSSED_BOOK = "crossed_book"
    IMPLAUSIBLE_RATE = "implausible_rate"
    # plausibility
    OUT_OF_ORDER = "out_of_order"
    FUTURE_TIME = "future_time"
    TIME_JUMP = "time_jump"
    STALE = "stale"
    PRICE_JUMP = "price_jump"
    # the universe
    UNKNOWN_SYMBOL = "unknown_symbol"
    UNIVERSE_FULL = "universe_full"
    # a check itself failed: a bug, but the entry still goes to the dead letters, not the core
    INTERNAL_ERROR = "internal_error"


class IngestLimits(FrozenConfig, frozen=True, kw_only=True):
    """The boundary's bounds; every field can be set per core (``strategy-engine core``)."""

    max_price: float = 1e9
    max_size: float = 1e15
    max_abs_value: float = 1e15  # macro observations
    max_funding_rate: float = 0.05
    max_text_bytes: int = codec.MAX_MESSAGE_BYTES
    max_news_symbols: int = 64
    # How far an instrument's time may go back (feeds interleave venues with clock skew).
    backwards_tolerance_ns: int = SECOND_NS
    # How far ahead of this machine's clock any event time or t_pub may be.
    max_clock_skew_ns: int = DAY_NS
    # How far ahead of the newest time accepted on the feed an event may jump (quarterly
    # macro releases are about 92 days apart).
    max_time_jump_ns: int = 400 * DAY_NS
    # A price beyond this multiple (or below its inverse) of the instrument's last good price
    # is a fat finger; ``price_jump_confirmations`` such prices in a row that agree with each
    # other (within 20%) are a real new level, and the last of them is taken.
    max_price_jump: float = 10.0
    price_jump_confirmations: int = 5
    # Live feeds only: an event older than this against the wall clock is stale.
    live: bool = False
    max_staleness_ns: int = 300 * SECOND_NS
    # The symbols this core trades: others are refused (an empty universe: any symbol, up to
    # ``max_symbols`` distinct ones, so that a flood of new names cannot grow state forever).
    universe: frozenset[str] = frozenset()
    max_symbols: int = 10_000

    def __post_init__(self) -> None:
        for name in ("max_price", "max_size", "max_abs_value", "max_funding_rate"):
            value = getattr(self, name)
            require(
                math.isfinite(value) and value > 0, f"{name} must be a positive number, was {value}"
            )
        require(
            math.isfinite(self.max_price_jump) and self.max_price_jump > 1,
            f"max_price_jump must be > 1, was {self.max_price_jump}",
        )
        for name in ("backwards_tolerance_ns", "max_clock_skew_ns", "max_time_jump_ns",
                     "max_staleness_ns", "price_jump_confirmations", "max_text_bytes",
                     "max_news_symbols", "max_symbols"):  # fmt: skip
            value = getattr(self, name)
            require(
                isinstance(value, int) and 0 <= value <= INT64_MAX,
                f"{name} must be a non-negative integer, was {value!r}",
            )


@dataclass(frozen=True, slots=True)
class Rejection:
    """An entry the boundary refused: a stable code and a one-line reason naming the value."""

    code: RejectCode
    reason: str


Narrow = Callable[[Any], Any]

END = object()
"""What :meth:`IngestionBoundary.admit_entry` returns for a feed's end marker."""


class _Rejected(Exception):
    """Raised inside the checks, turned into a :class:`Rejection` at the boundary's edge."""

    def __init__(self, code: RejectCode, reason: str) -> None:
        super().__init__(reason)
        self.code = code


class IngestionBoundary:
    """Decide, entry by entry, what reaches the engine (see the module docstring)."""

    def __init__(
        self, limits: IngestLimits | None = None, *, wall_ns: Callable[[], int] = time.time_ns
    ) -> None:
        self.limits = limits or IngestLimits()
        self._wall_ns = wall_ns
        self._last_ts: dict[str, int] = {}  # "<kind>|<instrument>" -> newest time
        self._feed_ts: dict[str, int] = {}  # feed -> newest time accepted on it
        self._last_price: dict[str, float] = {}  # instrument -> last good price
        # instrument -> (candidate price of a new level, how many in a row agreed with it)
        self._jumps: dict[str, tuple[float, int]] = {}
        self._symbols: set[str] = set()  # symbols admitted so far (bounded by max_symbols)

    # -- the edge -----------------------------------------------------------------------------

    def admit_entry(
        self, feed: str, fields: dict[bytes, bytes], *, narrow: Narrow | None = None
    ) -> Any:
        """A stream entry's fields -> the event, :data:`END`, a :class:`Rejection`, or None.

        ``narrow`` (event -> the part of it this core takes, or None) applies a shard before
        the plausibility checks, which keep per-instrument state: an event it does not take
        returns None, and is another core's to check.
        """
        try:
            payload = self._entry(fields)
            if payload is END:
                return END
            return self._admit(feed, payload, narrow)
        except _Rejected as exc:
            return Rejection(exc.code, str(exc))
        except Exception as exc:  # a check that failed is still not the core's failure
            return Rejection(RejectCode.INTERNAL_ERROR, f"{type(exc).__name__}: {exc}"[:300])

    def admit_message(self, feed: str, payload: bytes, *, narrow: Narrow | None = None) -> Any:
        """One message with no stream entry around it (an API post): as :meth:`admit_entry`."""
        try:
            return self._admit(feed, payload, narrow)
        except _Rejected as exc:
            return Rejection(exc.code, str(exc))
        except Exception as exc:
            return Rejection(RejectCode.INTERNAL_ERROR, f"{type(exc).__name__}: {exc}"[:300])

    def admit_event(self, feed: str, event: Any) -> Any:
        """An event that is already a typed message (a backtest's, from the data loaders): the
        event or a :class:`Rejection`, by the same checks :meth:`admit_message` makes once the
        bytes are decoded (kind, finite numbers, ranges, content, plausibility)."""
        try:
            if getattr(event, "kind", None) not in MARKET_KINDS:
                raise _Rejected(
                    RejectCode.KIND_NOT_ALLOWED,
                    f"a {type(event).__name__} is not market data",
                )
            try:
                codec.reject_non_finite(event.kind, event)
            except MessageError as exc:
                raise _Rejected(_code(exc.code), str(exc)[:300]) from None
            self._check(event)
            self._plausible(feed, event)
            return event
        except _Rejected as exc:
            return Rejection(exc.code, str(exc))
        except Exception as exc:
            return Rejection(RejectCode.INTERNAL_ERROR, f"{type(exc).__name__}: {exc}"[:300])

    def _admit(self, feed: str, payload: bytes, narrow: Narrow | None) -> Any:
        event = self._decode(payload)
        if narrow is not None:
            event = narrow(event)
            if event is None:
                return None
        self._plausible(feed, event)
        return event

    def arrival_ns(self, fields: dict[bytes, bytes]) -> int:
        """The entry's ``t_pub`` (0 if absent); call after :meth:`admit_entry` accepted it."""
        t_pub = fields.get(b"t_pub")
        return int(t_pub) if t_pub else 0

    # -- state (checkpointed with the engine, so a restart takes the same decisions) ----------

    def to_state(self) -> dict[str, Any]:
        return {
            "last_ts": dict(self._last_ts),
            "feed_ts": dict(self._feed_ts),
            "last_price": dict(self._last_price),
            "jumps": {k: [p, n] for k, (p, n) in self._jumps.items()},
            "symbols": sorted(self._symbols),
        }

    def restore(self, state: dict[str, Any]) -> str | None:
        """Take a saved state; a state that does not validate is ignored. Returns why, or None."""
        try:
            last_ts = {str(k): _int64(v) for k, v in state["last_ts"].items()}
            feed_ts = {str(k): _int64(v) for k, v in state["feed_ts"].items()}
            prices = {str(k): _positive(v) for k, v in state["last_price"].items()}
            jumps = {str(k): (_positive(p), int(n)) for k, (p, n) in state["jumps"].items()}
            symbols = {str(s) for s in state.get("symbols", ())}
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            return f"ingestion state not restored ({type(exc).__name__}: {exc}); starting fresh"
        self._last_ts, self._feed_ts, self._last_price, self._jumps, self._symbols = (
            last_ts, feed_ts, prices, jumps, symbols,
        )  # fmt: skip
        return None

    # -- checks -------------------------------------------------------------------------------

    def _entry(self, fields: dict[bytes, bytes]) -> Any:
        """The entry's own fields checked; its payload (or :data:`END`) returned."""
        unknown = fields.keys() - ENTRY_FIELDS
        if unknown:
            names = sorted(repr(k[:32]) for k in unknown)[:3]
            raise _Rejected(RejectCode.UNKNOWN_FIELD, f"unknown entry field(s) {', '.join(names)}")
        t_pub = fields.get(b"t_pub")
        if t_pub is not None:
            self._check_t_pub(t_pub)
        end = fields.get(b"end")
        if end is not None:
            if end != b"1" or b"msg" in fields:
                raise _Rejected(
                    RejectCode.BAD_END_MARKER,
                    f"an end marker is exactly end=1 with no msg, was end={end[:32]!r}",
                )
            return END
        payload = fields.get(b"msg")
        if payload is None:
            raise _Rejected(RejectCode.MISSING_PAYLOAD, "entry has no 'msg' field")
        return payload

    def _check_t_pub(self, t_pub: bytes) -> None:
        if not (0 < len(t_pub) <= 19 and t_pub.isdigit()):
            raise _Rejected(RejectCode.BAD_T_PUB, f"t_pub is not int64 nanoseconds: {t_pub[:32]!r}")
        value = int(t_pub)
        if value > INT64_MAX:
            raise _Rejected(RejectCode.BAD_T_PUB, f"t_pub {value} is beyond int64")
        ahead = value - self._wall_ns()
        if ahead > self.limits.max_clock_skew_ns:
            raise _Rejected(
                RejectCode.BAD_T_PUB, f"t_pub {value} is {ahead / 1e9:.0f} s ahead of the clock"
            )

    def _decode(self, payload: bytes) -> Any:
        try:
            event: Any = codec.decode(payload, kinds=MARKET_KINDS)
        except MessageError as exc:
            raise _Rejected(_code(exc.code), str(exc)[:300]) from None
        self._check(event)
        return event

    def _check(self, event: Any) -> None:
        """What a decoded message must hold besides its types: ranges and content."""
        self._ranges(event)
        _content(event, self.limits.max_funding_rate)

    def _ranges(self, event: Any) -> None:
        limits = self.limits
        kind = event.kind
        for name in ("ts_event", "ts_recv", "period_start"):
            value = getattr(event, name, 0)
            if not 0 <= value <= INT64_MAX:
                raise _Rejected(
                    RejectCode.TIME_OUT_OF_RANGE,
                    f"{kind}: {name} {value} is not int64 nanoseconds since the epoch",
                )
        if kind == "bar":
            _bounded(event, ("open", "high", "low", "close"), limits.max_price)
            _bounded(event, ("volume",), limits.max_size)
        elif kind == "quote":
            _bounded(event, ("bid_price", "ask_price"), limits.max_price)
            _bounded(event, ("bid_size", "ask_size"), limits.max_size)
        elif kind == "trade":
            _bounded(event, ("price",), limits.max_price)
            _bounded(event, ("size",), limits.max_size)
            _name(event, "trade_id", event.trade_id, allow_empty=True, pattern=False)
        elif kind == "macro":
            _bounded(event, ("value",), limits.max_abs_value)
            _name(event, "series", event.series)
        elif kind == "news":
            if len(event.symbols) > limits.max_news_symbols:
                raise _Rejected(
                    RejectCode.VALUE_OUT_OF_RANGE,
                    f"news: {len(event.symbols)} symbols > {limits.max_news_symbols}",
                )
            for symbol in event.symbols:
                _name(event, "symbols", symbol)
            _text(event, "text", event.text, limits.max_text_bytes)
            _text(event, "source", event.source, 256)
        if kind != "news" and kind != "macro":
            _name(event, "symbol", event.symbol)
        venue = getattr(event, "venue", "")
        if venue:
            _name(event, "venue", venue)

    def _plausible(self, feed: str, event: Any) -> None:
        limits = self.limits
        ts = event.ts_event
        wall = self._wall_ns()
        kind = event.kind
        if ts - wall > limits.max_clock_skew_ns:
            raise _Rejected(
                RejectCode.FUTURE_TIME,
                f"{kind} {_who(event)}: time {ts} is {(ts - wall) / 1e9:.0f} s ahead of the clock",
            )
        if limits.live and wall - ts > limits.max_staleness_ns:
            raise _Rejected(
                RejectCode.STALE,
                f"{kind} {_who(event)}: time {ts} is {(wall - ts) / 1e9:.1f} s old on a live feed "
                f"(staleness bound {limits.max_staleness_ns / 1e9:g} s)",
            )
        newest = self._feed_ts.get(feed)
        if newest is not None and ts - newest > limits.max_time_jump_ns:
            raise _Rejected(
                RejectCode.TIME_JUMP,
                f"{kind} {_who(event)}: time {ts} jumps {(ts - newest) / DAY_NS:.1f} days past "
                f"the feed's newest {newest} (bound {limits.max_time_jump_ns / DAY_NS:g} days)",
            )
        self._check_universe(event)
        instrument = _instrument(event)
        key = f"{kind}|{instrument}"
        last = self._last_ts.get(key)
        if last is not None and ts < last - limits.backwards_tolerance_ns:
            raise _Rejected(
                RejectCode.OUT_OF_ORDER,
                f"{kind} {_who(event)}: timestamp {ts} goes back {(last - ts) / 1e9:.3f} s "
                f"(tolerance {limits.backwards_tolerance_ns / 1e9:g} s)",
            )
        prices = _prices(event)
        if prices:
            self._check_jump(event, instrument, prices)
        # Accepted: only now does any state move (a rejection changes nothing).
        self._symbols.update(_symbols_of(event))
        if last is None or ts > last:
            self._last_ts[key] = ts
        if newest is None or ts > newest:
            self._feed_ts[feed] = ts

    def _check_universe(self, event: Any) -> None:
        named = _symbols_of(event)
        universe = self.limits.universe
        if universe:
            outside = [s for s in named if s not in universe]
            if outside:
                raise _Rejected(
                    RejectCode.UNKNOWN_SYMBOL,
                    f"{event.kind}: symbol {outside[0]!r} is not in this core's universe",
                )
            return
        new = [s for s in named if s not in self._symbols]
        if new and len(self._symbols) + len(new) > self.limits.max_symbols:
            raise _Rejected(
                RejectCode.UNIVERSE_FULL,
                f"{event.kind}: new symbol {new[0]!r} past max_symbols {self.limits.max_symbols}"
                " (name the universe, or raise the bound)",
            )

    def _check_jump(self, event: Any, instrument: str, prices: tuple[float, ...]) -> None:
        """Every price of the event within the band around the last good one (a bar's open
        fills orders, so a fat-fingered open matters as much as its close)."""
        price = prices[-1]
        last = self._last_price.get(instrument)
        limit = self.limits.max_price_jump
        if last is None or (last / limit <= min(prices) and max(prices) <= last * limit):
            self._last_price[instrument] = price
            self._jumps.pop(instrument, None)
            return
        candidate, agreed = self._jumps.get(instrument, (price, 0))
        agreed = agreed + 1 if abs(price / candidate - 1.0) <= 0.2 else 1
        if agreed >= self.limits.price_jump_confirmations:
            self._last_price[instrument] = price  # a real new level, confirmed
            self._jumps.pop(instrument, None)
            return
        self._jumps[instrument] = (candidate if agreed > 1 else price, agreed)
        raise _Rejected(
            RejectCode.PRICE_JUMP,
            f"{event.kind} {_who(event)}: price {price:g} is beyond {limit:g}x the last good "
            f"price {last:g}",
        )


def _code(code: str) -> RejectCode:
    try:
        return RejectCode(code)
    except ValueError:
        return RejectCode.MALFORMED_MESSAGE


def _bounded(event: Any, names: tuple[str, ...], bound: float) -> None:
    for name in names:
        value = getattr(event, name)
        if abs(value) > bound:
            raise _Rejected(
                RejectCode.VALUE_OUT_OF_RANGE,
                f"{event.kind} {_who(event)}: {name} {value:g} beyond the bound {bound:g}",
            )


def _name(event: Any, field: str, value: str, *, allow_empty: bool = False,
          pattern: bool = True) -> None:  # fmt: skip
    if allow_empty and not value:
        return
    ok = _NAME_FULL(value) is not None if pattern else (len(value) <= 128 and value.isprintable())
    if not ok:
        raise _Rejected(
            RejectCode.BAD_NAME, f"{event.kind}: {field} {value[:40]!r} is not a valid name"
        )


def _text(event: Any, field: str, value: str, max_bytes: int) -> None:
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:  # a lone surrogate from a JSON escape
        raise _Rejected(RejectCode.NOT_UTF8, f"{event.kind}: {field} is not valid text") from None
    if size > max_bytes:
        raise _Rejected(
            RejectCode.VALUE_OUT_OF_RANGE, f"{event.kind}: {field} of {size} bytes > {max_bytes}"
        )


def _content(event: Any, max_funding_rate: float) -> None:
    """What a well-formed message can still get wrong about the market."""
    if isinstance(event, Quote):
        book = f"bid {event.bid_price} ask {event.ask_price}"
        if event.bid_price <= 0 or event.ask_price <= 0:
            raise _Rejected(
                RejectCode.NON_POSITIVE_PRICE, f"quote {event.symbol}: non-positive price, {book}"
            )
        if event.bid_size < 0 or event.ask_size < 0:
            raise _Rejected(
                RejectCode.NEGATIVE_SIZE,
                f"quote {event.symbol}: negative size, {event.bid_size} x {event.ask_size}",
            )
        if event.bid_price > event.ask_price:
            raise _Rejected(RejectCode.CROSSED_BOOK, f"quote {event.symbol}: crossed book, {book}")
    elif isinstance(event, Trade):
        if event.price <= 0:
            raise _Rejected(
                RejectCode.NON_POSITIVE_PRICE,
                f"trade {event.symbol}: non-positive price {event.price}",
            )
        if event.size <= 0:
            raise _Rejected(
                RejectCode.NON_POSITIVE_SIZE,
                f"trade {event.symbol}: non-positive size {event.size}",
            )
    elif isinstance(event, Bar):
        if min(event.open, event.high, event.low, event.close) <= 0:
            raise _Rejected(
                RejectCode.NON_POSITIVE_PRICE, f"bar {event.symbol}: non-positive price"
            )
        if event.volume < 0:
            raise _Rejected(
                RejectCode.NEGATIVE_VOLUME, f"bar {event.symbol}: negative volume {event.volume}"
            )
        if event.high < event.low:
            raise _Rejected(
                RejectCode.HIGH_BELOW_LOW,
                f"bar {event.symbol}: high {event.high} below low {event.low}",
            )
    elif isinstance(event, FundingRate) and abs(event.rate) > max_funding_rate:
        raise _Rejected(
            RejectCode.IMPLAUSIBLE_RATE,
            f"funding {event.symbol}@{event.venue}: implausible rate {event.rate}",
        )


def _symbols_of(event: Any) -> tuple[str, ...]:
    """The tradable symbols an event names (news: several; macro: none)."""
    if isinstance(event, NewsItem):
        return event.symbols
    if isinstance(event, MacroPoint):
        return ()
    return (event.symbol,)


def _instrument(event: Any) -> str:
    # One symbol on two venues (spot and perpetual) is two clocks and two prices.
    if isinstance(event, MacroPoint):
        return event.series
    if isinstance(event, NewsItem):
        return event.source or "news"
    return f"{event.symbol}@{getattr(event, 'venue', '')}"


def _prices(event: Any) -> tuple[float, ...]:
    """The prices to hold against the last good one; the last is the new reference."""
    if isinstance(event, Bar):
        return (event.open, event.high, event.low, event.close)
    if isinstance(event, Quote):
        return (event.bid_price, event.ask_price, event.mid)
    if isinstance(event, Trade):
        return (event.price,)
    return ()


def _who(event: Any) -> str:
    return str(getattr(event, "symbol", "") or getattr(event, "series", "") or "")


def _int64(value: Any) -> int:
    if not isinstance(value, int) or not 0 <= value <= INT64_MAX:
        raise ValueError(f"not an int64 time: {value!r}")
    return value


def _positive(value: Any) -> float:
    if not isinstance(value, (int, float)) or not (math.isfinite(value) and value > 0):
        raise ValueError(f"not a positive price: {value!r}")
    return float(value)
