"""Paper execution: volume-capped bar fills, taker fills on quotes after a latency, stable ids."""

from __future__ import annotations

import pytest

from core.adapters.redis_store import RedisStore
from core.data.feeds import replay_events
from core.data.loaders import iter_bars
from core.engine.engine import PositionSizing, TradingEngine
from core.engine.execution import BarFillModel, PaperBroker, TakerFillModel
from core.engine.venue import Venue
from core.errors import ConfigError
from core.model import Bar, Quote, Side
from core.ports import StrategyDeployment

# AAPL trades tens of millions of shares a day: a millionth of that is a few dozen shares.
FRACTION = 1e-6
LATENCY_NS = 5_000_000  # 5 ms
FEES = {"spot": 10.0, "usdm": 2.0}


@pytest.fixture(scope="module")
def btc_events() -> list:
    return replay_events("crypto_l2_binance_hftbacktest", symbols=["BTCUSDT"], fast=True)


def _clock(quote: Quote) -> int:
    return quote.ts_recv or quote.ts_event


def _quotes_after(events: list, start: int, venue: str, not_before: int) -> list[Quote]:
    """The venue's quotes after ``events[start]`` received at or after ``not_before``, in order."""
    return [
        e
        for e in events[start + 1 :]
        if isinstance(e, Quote) and e.venue == venue and _clock(e) >= not_before
    ]


def test_bar_fill_model_refuses_a_volume_fraction_outside_zero_to_one():
    for bad in (0.0, -0.1, 1.5):
        with pytest.raises(ConfigError, match=f"max_volume_fraction must be within .*{bad}"):
            BarFillModel(max_volume_fraction=bad)


def test_a_volume_cap_splits_an_order_across_the_next_bars_at_each_open(aapl_bars):
    bars = list(iter_bars(aapl_bars, "AAPL"))[:40]
    broker = PaperBroker(BarFillModel(max_volume_fraction=FRACTION))
    order = broker.submit("AAPL", 1000.0, bars[0].ts_event)
    assert order is not None

    fills, used = [], []
    for bar in bars[1:]:
        fill = broker.on_bar_open(bar)
        if fill is not None:
            fills.append(fill)
            used.append(bar)

    assert len(fills) > 2, "1000 shares at a millionth of AAPL's daily volume take several bars"
    assert sum(f.quantity for f in fills) == pytest.approx(1000.0, rel=1e-12)
    assert used == bars[1 : 1 + len(fills)]  # consecutive bars, from the very next one
    for fill, bar in zip(fills, used, strict=True):
        assert fill.quantity <= FRACTION * bar.volume * (1 + 1e-12)
        assert fill.price == bar.open
        assert fill.side is Side.BUY
    assert [f.fill_id for f in fills] == [f"{order.order_id}-{n}" for n in range(1, len(fills) + 1)]
    assert broker.pending() == []


def test_without_a_volume_cap_an_order_fills_whole_at_the_next_open(aapl_bars):
    bars = list(iter_bars(aapl_bars, "AAPL"))[:3]
    broker = PaperBroker(BarFillModel())
    order = broker.submit("AAPL", 1e12, bars[0].ts_event)  # far more than the bar traded

    fill = broker.on_bar_open(bars[1])

    assert order is not None and fill is not None
    assert (fill.quantity, fill.price, fill.fill_id) == (1e12, bars[1].open, f"{order.order_id}-1")
    assert broker.on_bar_open(bars[2]) is None


def test_a_new_decision_replaces_the_unfilled_remainder(aapl_bars):
    bars = list(iter_bars(aapl_bars, "AAPL"))[:10]
    broker = PaperBroker(BarFillModel(max_volume_fraction=FRACTION))
    first = broker.submit("AAPL", 150.0, bars[0].ts_event)
    partial = broker.on_bar_open(bars[1])
    assert first is not None and partial is not None and partial.quantity < 150.0

    second = broker.submit("AAPL", -5.0, bars[1].ts_event)  # the strategy changed its mind
    fills = [f for bar in bars[2:] if (f := broker.on_bar_open(bar)) is not None]

    assert second is not None
    assert [(f.order_id, f.side, f.quantity) for f in fills] == [(second.order_id, Side.SELL, 5.0)]
    assert fills[0].fill_id == f"{second.order_id}-1"
    assert fills[0].price == bars[2].open


def test_every_order_gets_its_own_id_also_across_a_restart_and_times_that_repeat(aapl_bars):
    bars = list(iter_bars(aapl_bars, "AAPL"))[:3]
    broker = PaperBroker(BarFillModel())
    t0, t1 = bars[0].ts_event, bars[1].ts_event
    # Times T, T+1, T: the field report's collision of the older per-time scheme.
    ids = [broker.submit("AAPL", q, t) for q, t in ((2.0, t0), (-1.0, t1), (1.0, t0))]
    broker.submit("AAPL", 0.0, t0)  # a cancel issues no id
    restarted = PaperBroker(BarFillModel())
    restarted.sequence = broker.sequence  # as the engine's checkpoint carries it
    again = restarted.submit("AAPL", 3.0, t0)
    later = restarted.submit("AAPL", 1.0, t1)

    named = [o.order_id for o in (*ids, again, later) if o is not None]
    assert named == [
        f"AAPL-{t0}-1", f"AAPL-{t1}-2", f"AAPL-{t0}-3", f"AAPL-{t0}-4", f"AAPL-{t1}-5"
    ]  # fmt: skip
    fill = restarted.on_bar_open(bars[2])
    assert fill is not None and fill.order_id == named[-1]


def _capped_engine(store: RedisStore | None) -> TradingEngine:
    deployment = StrategyDeployment(name="ma", version="1", type_name="ma_crossover", config={})
    return TradingEngine(
        [deployment],
        venue=Venue(bars=BarFillModel(fee_bps=1.0, max_volume_fraction=FRACTION)),
        initial_capital=100_000.0,
        sizing=PositionSizing(units=300.0),  # several bars' worth of the cap
        sink=store,
        state_store=store,
        keep_history=store is None,
        flush_every=16,
    )


def test_a_restart_in_the_middle_of_a_partial_fill_resumes_it_identically(aapl_bars, redis_store):
    bars = list(iter_bars(aapl_bars, "AAPL"))
    reference = _capped_engine(None)
    cut = None
    for i, bar in enumerate(bars):
        reference.on_event(bar)
        working = reference.broker._pending.get("AAPL")
        if cut is None and working is not None and working.fills > 0:
            cut = i + 1  # the process stops right after a partial fill
    reference.finish()
    assert cut is not None, "300 units at a millionth of the volume must fill in parts"

    first = _capped_engine(redis_store)
    for bar in bars[:cut]:
        first.on_event(bar)
    first.checkpoint()
    del first
    second = _capped_engine(redis_store)
    assert second.restore(redis_store, redis_store.read_fills())
    for bar in bars[cut:]:
        second.on_event(bar)
    second.finish()

    fills = redis_store.read_fills()
    assert fills == reference.all_fills
    assert len({f.fill_id for f in fills}) == len(fills)
    assert any(f.fill_id.endswith("-2") for f in fills)  # the resumed order kept its count
    assert second.portfolio.positions() == reference.portfolio.positions()
    assert second.portfolio.equity == pytest.approx(reference.portfolio.equity, rel=1e-12)


def _quote_broker(latency_ns: int = LATENCY_NS) -> PaperBroker:
    return PaperBroker(BarFillModel(), TakerFillModel(latency_ns=latency_ns, taker_fee_bps=FEES))


def _decide_at(broker: PaperBroker, event, symbol: str, delta: float):
    broker.local_ns = event.ts_recv or event.ts_event
    return broker.submit(symbol, delta, event.ts_event, "taker")


def test_a_taker_buy_takes_the_book_standing_at_its_arrival_and_the_rest_from_later_quotes(
    btc_events,
):
    start = 100
    arrival = btc_events[start].ts_recv + LATENCY_NS
    spot = [e for e in btc_events if isinstance(e, Quote) and e.venue == "spot"]
    standing = [q for q in spot if _clock(q) <= arrival][-1]  # the book when the order lands
    later = _quotes_after(btc_events, start, "spot", arrival + 1)
    size = standing.ask_size + 0.5 * later[0].ask_size  # more than the standing book shows
    broker = _quote_broker()
    for event in btc_events[:start]:  # the tape before the decision: the broker's book
        if isinstance(event, Quote):
            broker.on_quote(event)
    order = _decide_at(broker, btc_events[start], "BTCUSDT:spot", size)

    fills = [f for e in btc_events[start:] if isinstance(e, Quote) for f in broker.on_quote(e)]

    assert order is not None
    first, second = fills[0], fills[1]
    # The arrival is learned from the first spot quote after it; the fill is at the book
    # that stood at the arrival, and what it could not fill takes that later quote.
    assert (first.price, first.quantity, first.ts_event) == (
        standing.ask_price,
        standing.ask_size,
        later[0].ts_event,
    )
    assert second.price == later[0].ask_price and second.ts_event == later[0].ts_event
    assert sum(f.quantity for f in fills) == pytest.approx(size, rel=1e-12)
    assert all(f.side is Side.BUY and f.symbol == "BTCUSDT:spot" for f in fills)
    assert [f.fill_id for f in fills] == [f"{order.order_id}-{n}" for n in range(1, len(fills) + 1)]


def test_a_taker_sell_fills_at_the_bid_and_pays_its_venues_taker_fee(btc_events):
    start = 200
    decided = btc_events[start].ts_recv
    broker = _quote_broker()
    _decide_at(broker, btc_events[start], "BTCUSDT:spot", -0.001)
    broker.submit("BTCUSDT:usdm", -0.001, btc_events[start].ts_event, "taker")

    fills = [f for e in btc_events[start + 1 :] if isinstance(e, Quote) for f in broker.on_quote(e)]

    by_symbol = {f.symbol: f for f in fills}
    assert len(fills) == 2
    for venue, bps in FEES.items():
        fill = by_symbol[f"BTCUSDT:{venue}"]
        quote = _quotes_after(btc_events, start, venue, decided + LATENCY_NS)[0]
        assert (fill.price, fill.quantity) == (quote.bid_price, 0.001)
        assert fill.fee == pytest.approx(0.001 * quote.bid_price * bps / 1e4, rel=1e-12)


def test_an_order_sees_no_quote_before_its_latency_has_passed(btc_events):
    last = max(_clock(e) for e in btc_events if isinstance(e, Quote))
    broker = _quote_broker(latency_ns=last - btc_events[0].ts_recv + 1)
    _decide_at(broker, btc_events[0], "BTCUSDT", 1.0)

    fills = [f for e in btc_events[1:] if isinstance(e, Quote) for f in broker.on_quote(e)]

    assert fills == []
    assert [o.symbol for o in broker.pending()] == ["BTCUSDT"]


def test_bars_do_not_fill_a_quote_symbols_order_and_quotes_of_another_symbol_do_not_either():
    broker = _quote_broker(latency_ns=0)
    broker.submit("ETHUSDT", 1.0, 1)
    quote = Quote(
        symbol="BTCUSDT", ts_event=2, bid_price=1.0, bid_size=1.0, ask_price=2.0, ask_size=1.0
    )
    bar = Bar(symbol="BTCUSDT", ts_event=3, open=1.0, high=1.0, low=1.0, close=1.0, volume=1.0)

    assert broker.on_quote(quote) == [] and broker.on_bar_open(bar) is None
    assert [o.symbol for o in broker.pending()] == ["ETHUSDT"]


def _run_quote_engine(events: list) -> TradingEngine:
    """Quotes through the engine; two decisions placed by hand (no deployed quote strategy
    routes to a tradable ``symbol:venue`` leg yet), each between two events."""
    engine = TradingEngine(
        [],
        venue=Venue(taker=TakerFillModel(latency_ns=LATENCY_NS, taker_fee_bps=FEES)),
        initial_capital=100_000.0,
        keep_history=True,
    )
    targets = {300: 2.0, 2000: 0.0}  # event index -> target position
    for i, event in enumerate(events):
        engine.on_event(event)
        if i in targets:
            delta = targets[i] - engine.portfolio.quantity("BTCUSDT:spot")
            engine._place("BTCUSDT:spot", delta, event.ts_event, "taker")
    engine.finish()
    return engine


def test_the_engine_fills_quote_decisions_and_marks_to_the_mid_with_stable_ids(btc_events):
    first, second = _run_quote_engine(btc_events), _run_quote_engine(btc_events)

    fills = first.all_fills
    ids = [f.fill_id for f in fills]
    assert fills == second.all_fills
    assert len(set(ids)) == len(ids)
    assert {f.side for f in fills} == {Side.BUY, Side.SELL}
    assert first.portfolio.quantity("BTCUSDT:spot") == pytest.approx(0.0, abs=1e-9)
    assert fills[0].ts_event >= btc_events[300].ts_recv + LATENCY_NS
    last_spot = next(e for e in reversed(btc_events) if isinstance(e, Quote) and e.venue == "spot")
    assert first.portfolio.last_price("BTCUSDT:spot") == last_spot.mid
