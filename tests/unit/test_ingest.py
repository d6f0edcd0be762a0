"""The ingestion boundary: anything given to it becomes an event or a coded rejection.

Property tests (Hypothesis) feed it arbitrary entries, arbitrary bytes, arbitrary JSON in the
envelope and hostile numbers; example tests pin each reason code and the state rules.
"""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core import codec
from core.model import Bar, Fill, MacroPoint, NewsItem, Order, Position, Quote, Side, Signal, Trade
from core.runtime.ingest import (
    DAY_NS,
    END,
    INT64_MAX,
    MARKET_KINDS,
    IngestionBoundary,
    IngestLimits,
    RejectCode,
    Rejection,
)

WALL = 1_800_000_000 * 10**9  # 2027-01-15, the boundary's "now" in these tests
T0 = 1_600_000_000 * 10**9
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _boundary(**limits) -> IngestionBoundary:
    return IngestionBoundary(IngestLimits(**limits), wall_ns=lambda: WALL)


def _bar(symbol: str = "AAPL", ts: int = T0, close: float = 100.0, **fields) -> Bar:
    values = {"open": close, "high": close, "low": close, "close": close, "volume": 1000.0}
    values.update(fields)
    return Bar(symbol=symbol, ts_event=ts, **values)


def _entry(message, **extra: bytes) -> dict[bytes, bytes]:
    payload = message if isinstance(message, bytes) else codec.encode(message)
    return {
        b"msg": payload,
        b"t_pub": str(WALL).encode(),
        **{k.encode(): v for k, v in extra.items()},
    }


def _outcome_is_valid(outcome) -> None:
    """What admit_entry may return: the end marker, a rejection with a known code, None for
    another core's symbol, or an event that is market data within every bound."""
    if outcome is END or outcome is None:
        return
    if isinstance(outcome, Rejection):
        assert outcome.code in set(RejectCode) and outcome.code is not RejectCode.INTERNAL_ERROR
        assert outcome.reason and "\n" not in outcome.reason
        return
    assert outcome.kind in MARKET_KINDS
    assert 0 <= outcome.ts_event <= INT64_MAX
    for name in outcome.__struct_fields__:
        value = getattr(outcome, name)
        if isinstance(value, float):
            assert math.isfinite(value) and abs(value) <= 1e15
    # An admitted event encodes again (state and outputs keyed by it can be written).
    assert codec.decode(codec.encode(outcome)) == outcome


# --- properties ---------------------------------------------------------------------------------

_field_names = st.sampled_from([b"msg", b"t_pub", b"end"]) | st.binary(max_size=12)


@SETTINGS
@given(st.dictionaries(_field_names, st.binary(max_size=300), max_size=4))
def test_any_entry_of_any_bytes_is_an_event_or_a_coded_rejection(fields):
    _outcome_is_valid(_boundary().admit_entry("feed", fields))


_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
_market_fields = st.fixed_dictionaries(
    {},
    optional={
        "symbol": st.text(max_size=70) | st.sampled_from(["AAPL", "BTCUSDT", "A|B", "", " "]),
        "ts_event": st.integers(min_value=-(2**65), max_value=2**65),
        "open": _json, "high": _json, "low": _json,
        "close": st.floats() | st.integers(min_value=-(10**40), max_value=10**40),
        "volume": st.floats() | st.integers(min_value=-(10**20), max_value=10**20),
        "bid_price": st.floats(), "ask_price": st.floats(),
        "bid_size": st.floats(), "ask_size": st.floats(), "price": st.floats(), "size": st.floats(),
        "venue": st.text(max_size=5), "rate": st.floats(), "text": st.text(max_size=50),
        "symbols": st.lists(st.text(max_size=6), max_size=3), "series": st.text(max_size=8),
        "value": st.floats(), "ts_recv": st.integers(min_value=-(2**65), max_value=2**65),
        "junk": _json,
    },
)  # fmt: skip


@SETTINGS
@given(
    st.sampled_from([*sorted(codec.MESSAGE_TYPES), "candle", ""]),
    st.sampled_from([1, 1, 1, 0, 2]),
    _market_fields,
)
def test_any_json_inside_the_envelope_is_an_event_or_a_coded_rejection(kind, version, data):
    envelope = {"v": version, "kind": kind, "data": data}
    payload = json.dumps(envelope, allow_nan=True).encode()

    _outcome_is_valid(_boundary().admit_entry("feed", {b"msg": payload}))


@SETTINGS
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_as_the_message_are_rejected_with_a_code(payload):
    outcome = _boundary().admit_entry("feed", {b"msg": payload})

    assert isinstance(outcome, Rejection)
    _outcome_is_valid(outcome)


@SETTINGS
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["AAPL", "KO", "BRK-B", "EUR/USD"]),
            st.integers(min_value=0, max_value=10 * DAY_NS),
            st.floats(min_value=0.5, max_value=2.0),
        ),
        min_size=1,
        max_size=40,
    )
)
def test_plausible_bars_in_time_order_are_all_admitted(steps):
    boundary = _boundary()
    ts, price = T0, {}
    for symbol, gap, move in steps:
        ts += gap
        close = price.get(symbol, 100.0) * move
        price[symbol] = close
        outcome = boundary.admit_entry("feed", _entry(_bar(symbol, ts, close)))
        assert isinstance(outcome, Bar), outcome


@SETTINGS
@given(st.dictionaries(_field_names, st.binary(max_size=200), max_size=4))
def test_a_rejection_leaves_the_boundary_state_as_it_was(fields):
    boundary = _boundary()
    boundary.admit_entry("feed", _entry(_bar(ts=T0)))
    before = boundary.to_state()

    outcome = boundary.admit_entry("feed", fields)

    if isinstance(outcome, Rejection):
        assert boundary.to_state() == before


@SETTINGS
@given(_json)
def test_a_saved_state_of_any_shape_restores_or_is_refused_with_a_reason(state):
    boundary = _boundary()
    problem = boundary.restore(state if isinstance(state, dict) else {"last_ts": state})

    if problem is not None:
        assert "starting fresh" in problem
        assert boundary.to_state() == _boundary().to_state()


# --- every code, by example ---------------------------------------------------------------------

_VALID = codec.encode(_bar())
_DEEP = b'{"v":1,"kind":"bar","data":' + b"[" * 20_000 + b"]" * 20_000 + b"}"


def _with(**fields) -> bytes:
    data = json.loads(_VALID)
    data["data"].update(fields)
    return json.dumps(data).encode()


C = RejectCode
CASES: list[tuple[str, dict[bytes, bytes], RejectCode]] = [
    ("no msg", {b"t_pub": b"1"}, C.MISSING_PAYLOAD),
    ("extra field", {b"msg": _VALID, b"user": b"x"}, C.UNKNOWN_FIELD),
    ("t_pub not a number", {b"msg": _VALID, b"t_pub": b"12ab"}, C.BAD_T_PUB),
    ("t_pub beyond int64", {b"msg": _VALID, b"t_pub": b"18446744073709551615"}, C.BAD_T_PUB),
    ("t_pub in the future", {b"msg": _VALID, b"t_pub": str(WALL + 2 * DAY_NS).encode()},
     C.BAD_T_PUB),
    ("end=2", {b"end": b"2"}, C.BAD_END_MARKER),
    ("end with msg", {b"end": b"1", b"msg": _VALID}, C.BAD_END_MARKER),
    ("64 KiB + 1", {b"msg": b" " * (codec.MAX_MESSAGE_BYTES + 1)}, C.TOO_LARGE),
    ("not UTF-8 at 0", {b"msg": b"\xff" + _VALID}, C.NOT_UTF8),
    ("not UTF-8 in a string", {b"msg": _VALID.replace(b"AAPL", b"AA\xffL")}, C.NOT_UTF8),
    ("20,000 deep", {b"msg": _DEEP}, C.TOO_DEEP),
    ("truncated", {b"msg": _VALID[:-5]}, C.MALFORMED_ENVELOPE),
    ("version 2", {b"msg": _VALID.replace(b'"v":1', b'"v":2')}, C.UNKNOWN_SCHEMA_VERSION),
    ("kind candle", {b"msg": _VALID.replace(b'"bar"', b'"candle"')}, C.UNKNOWN_KIND),
    ("missing close", {b"msg": _VALID.replace(b'"close":100.0,', b"")}, C.MALFORMED_MESSAGE),
    ("close 1e400", {b"msg": _with(close="X").replace(b'"X"', b"1e400")}, C.VALUE_OUT_OF_RANGE),
    ("ts 2^63", {b"msg": _with(ts_event=2**63)}, C.TIME_OUT_OF_RANGE),
    ("ts negative", {b"msg": _with(ts_event=-1)}, C.TIME_OUT_OF_RANGE),
    ("30-digit price", {b"msg": _with(close=10**29, high=10**29)}, C.VALUE_OUT_OF_RANGE),
    ("close 1e308", {b"msg": _with(close=1e308, high=1e308)}, C.VALUE_OUT_OF_RANGE),
    ("symbol with '|'", {b"msg": _with(symbol="A|B")}, C.BAD_NAME),
    ("empty symbol", {b"msg": _with(symbol="")}, C.BAD_NAME),
    ("close 0", {b"msg": _with(close=0.0)}, C.NON_POSITIVE_PRICE),
    ("volume -1", {b"msg": _with(volume=-1.0)}, C.NEGATIVE_VOLUME),
    ("high < low", {b"msg": _with(high=90.0, low=95.0)}, C.HIGH_BELOW_LOW),
    ("crossed", {b"msg": codec.encode(Quote(symbol="X", ts_event=T0, bid_price=2.0, bid_size=1,
                                             ask_price=1.0, ask_size=1))}, C.CROSSED_BOOK),
    ("trade size 0", {b"msg": codec.encode(Trade(symbol="X", ts_event=T0, price=1.0, size=0.0))},
     C.NON_POSITIVE_SIZE),
    ("ts beyond the clock", {b"msg": _with(ts_event=WALL + 2 * DAY_NS)}, C.FUTURE_TIME),
    ("news with '|'", {b"msg": codec.encode(NewsItem(ts_event=T0, text="x", symbols=("A|B",)))},
     C.BAD_NAME),
]  # fmt: skip
_NOT_MARKET = [
    Signal(strategy="s", symbol="AAPL", ts_event=T0, target_position=1.0),
    Order(order_id="o", symbol="AAPL", side=Side.BUY, quantity=1.0, ts_event=T0),
    Fill(fill_id="f", order_id="o", symbol="AAPL", side=Side.BUY, quantity=1.0, price=1.0,
         fee=0.0, ts_event=T0),
    Position(symbol="AAPL", quantity=1.0, avg_price=1.0, realized_pnl=0.0, ts_event=T0),
]  # fmt: skip


@pytest.mark.parametrize(("name", "fields", "code"), CASES, ids=[c[0] for c in CASES])
def test_each_failure_mode_has_its_code(name, fields, code):
    outcome = _boundary().admit_entry("feed", fields)

    assert isinstance(outcome, Rejection) and outcome.code is code, outcome


@pytest.mark.parametrize("message", _NOT_MARKET, ids=lambda m: m.kind)
def test_signals_orders_fills_and_positions_are_not_market_data(message):
    outcome = _boundary().admit_entry("feed", _entry(message))

    assert isinstance(outcome, Rejection) and outcome.code is RejectCode.KIND_NOT_ALLOWED


def test_the_end_marker_is_exactly_end_1():
    assert _boundary().admit_entry("feed", {b"end": b"1", b"t_pub": b"5"}) is END


def test_time_going_back_beyond_the_tolerance_is_out_of_order_per_instrument():
    boundary = _boundary()
    assert isinstance(boundary.admit_entry("f", _entry(_bar("A", T0 + 10 * DAY_NS))), Bar)

    back = boundary.admit_entry("f", _entry(_bar("A", T0)))
    other = boundary.admit_entry("f", _entry(_bar("B", T0)))  # its own clock
    within = boundary.admit_entry("f", _entry(_bar("A", T0 + 10 * DAY_NS - 10**8)))

    assert isinstance(back, Rejection) and back.code is RejectCode.OUT_OF_ORDER
    assert isinstance(other, Bar) and isinstance(within, Bar)


def test_a_far_future_time_cannot_move_the_feed_or_starve_a_symbol():
    boundary = _boundary()
    boundary.admit_entry("f", _entry(_bar("A", T0)))

    jump = boundary.admit_entry("f", _entry(_bar("A", T0 + 500 * DAY_NS)))
    future = boundary.admit_entry("f", _entry(_bar("A", WALL + 2 * DAY_NS)))
    next_day = boundary.admit_entry("f", _entry(_bar("A", T0 + DAY_NS)))

    assert isinstance(jump, Rejection) and jump.code is RejectCode.TIME_JUMP
    assert isinstance(future, Rejection) and future.code is RejectCode.FUTURE_TIME
    assert isinstance(next_day, Bar)


def test_live_feeds_also_refuse_stale_events():
    live = _boundary(live=True, max_staleness_ns=60 * 10**9)

    stale = live.admit_entry("f", _entry(_bar("A", WALL - 120 * 10**9)))
    fresh = live.admit_entry("f", _entry(_bar("A", WALL - 10 * 10**9)))

    assert isinstance(stale, Rejection) and stale.code is RejectCode.STALE
    assert isinstance(fresh, Bar)


def test_a_fat_finger_price_is_refused_and_a_confirmed_new_level_is_taken():
    boundary = _boundary(price_jump_confirmations=3)
    boundary.admit_entry("f", _entry(_bar("A", T0, close=100.0)))

    fat_open = boundary.admit_entry("f", _entry(_bar("A", T0 + 1, close=100.0, open=5000.0,
                                                     high=5000.0)))  # fmt: skip
    outcomes = [boundary.admit_entry("f", _entry(_bar("A", T0 + 2 + i, close=2000.0 + i)))
                for i in range(3)]  # fmt: skip

    assert isinstance(fat_open, Rejection) and fat_open.code is RejectCode.PRICE_JUMP
    assert [type(o).__name__ for o in outcomes] == ["Rejection", "Rejection", "Bar"]
    # The new level is the reference from now on.
    assert isinstance(boundary.admit_entry("f", _entry(_bar("A", T0 + 9, close=2100.0))), Bar)


def test_macro_and_news_pass_with_their_own_rules():
    boundary = _boundary()
    macro = MacroPoint(series="M2SL", ts_event=T0, value=21_000.5)
    news = NewsItem(ts_event=T0, text="AAPL beats " * 10, symbols=("AAPL", "MSFT"), source="wire")

    assert boundary.admit_entry("f", _entry(macro)) == macro
    assert boundary.admit_entry("f", _entry(news)) == news


def test_a_narrowing_shard_sees_the_event_before_any_state_moves():
    boundary = _boundary()

    skipped = boundary.admit_entry("f", _entry(_bar("A", T0)), narrow=lambda event: None)

    assert skipped is None and boundary.to_state() == _boundary().to_state()


def test_limits_that_make_no_sense_are_refused_at_start():
    with pytest.raises(ValueError, match="max_price_jump must be > 1"):
        IngestLimits(max_price_jump=1.0)
    with pytest.raises(ValueError, match="max_price must be a positive number"):
        IngestLimits(max_price=float("nan"))


def test_a_named_universe_refuses_other_symbols_and_an_open_one_is_bounded():
    named = _boundary(universe=frozenset({"AAPL", "KO"}))
    bounded = _boundary(max_symbols=2)

    outside = named.admit_entry("f", _entry(_bar("XOM", T0)))
    taken = [bounded.admit_entry("f", _entry(_bar(s, T0))) for s in ("A", "B", "C", "A")]
    news = bounded.admit_entry("f", _entry(NewsItem(ts_event=T0, text="x", symbols=("A", "D"))))

    assert isinstance(outside, Rejection) and outside.code is RejectCode.UNKNOWN_SYMBOL
    assert isinstance(named.admit_entry("f", _entry(_bar("KO", T0))), Bar)
    assert [type(t).__name__ for t in taken] == ["Bar", "Bar", "Rejection", "Bar"]
    assert taken[2].code is RejectCode.UNIVERSE_FULL
    assert isinstance(news, Rejection) and news.code is RejectCode.UNIVERSE_FULL
    # The bound survives a restart.
    again = _boundary(max_symbols=2)
    assert again.restore(bounded.to_state()) is None
    assert again.admit_entry("f", _entry(_bar("C", T0 + 1))).code is RejectCode.UNIVERSE_FULL


_prices = st.floats(min_value=-10.0, max_value=1e10) | st.sampled_from([math.nan, math.inf, 0.0])
_typed_events = st.one_of(
    st.builds(
        Quote,
        symbol=st.sampled_from(["EURUSD", "BTCUSDT", "A|B"]),
        ts_event=st.integers(min_value=-DAY_NS, max_value=30 * DAY_NS),
        bid_price=_prices, ask_price=_prices, bid_size=_prices, ask_size=_prices,
        venue=st.sampled_from(["", "spot", "bad venue"]),
    ),
    st.builds(
        Bar,
        symbol=st.sampled_from(["AAPL", "KO"]),
        ts_event=st.integers(min_value=0, max_value=30 * DAY_NS),
        open=_prices, high=_prices, low=_prices, close=_prices, volume=_prices,
    ),
)  # fmt: skip


@SETTINGS
@given(st.lists(_typed_events, max_size=30))
def test_a_typed_event_meets_the_same_decision_as_its_bytes_on_a_feed(events):
    typed, wire = _boundary(), _boundary()
    for event in events:
        direct = typed.admit_event("feed", event)
        decoded = wire.admit_message("feed", codec.encode(event))
        if isinstance(decoded, Rejection):
            assert isinstance(direct, Rejection)
            # NaN has no JSON form: on the wire it is a malformed message, typed it is non-finite
            assert direct.code == decoded.code or direct.code is RejectCode.NON_FINITE
        else:
            assert direct == decoded
