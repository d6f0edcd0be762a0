from __future__ import annotations

import pytest

from core import codec
from core.errors import MessageError
from core.model import (
    Bar,
    Fill,
    FundingRate,
    Lineage,
    NewsItem,
    Order,
    Position,
    Quote,
    Side,
    Signal,
    Trade,
)

T0 = 1_723_161_254_087_891_268

MESSAGES = [
    Bar(symbol="AAPL", ts_event=T0, open=95.1, high=96.4, low=94.9, close=96.4, volume=91973000.0),
    Quote(
        symbol="BTCUSDT",
        ts_event=T0,
        bid_price=61837.63,
        bid_size=3.79,
        ask_price=61837.64,
        ask_size=1.55,
    ),
    Trade(
        symbol="BTCUSDT",
        ts_event=T0,
        price=61837.63,
        size=0.02,
        aggressor=Side.SELL,
        trade_id="3735683259",
    ),
    FundingRate(symbol="BTC-USDT", venue="binance", ts_event=T0, rate=0.0001),
    NewsItem(ts_event=T0, text="$KO beats estimates", symbols=("KO",), source="twitter"),
    Signal(
        strategy="strategy.ma_crossover",
        symbol="AAPL",
        ts_event=T0,
        target_position=1.0,
        strength=0.02,
        reason={"fast_ma": 101.5, "slow_ma": 99.2},
        lineage=Lineage(
            model_name="strategy.ma_crossover", model_version="3", validation_run="abc"
        ),
    ),
    Order(order_id="AAPL-1", symbol="AAPL", side=Side.BUY, quantity=1.0, ts_event=T0),
    Fill(
        fill_id="AAPL-1-1",
        order_id="AAPL-1",
        symbol="AAPL",
        side=Side.BUY,
        quantity=1.0,
        price=96.5,
        fee=0.01,
        ts_event=T0,
    ),
    Position(symbol="AAPL", quantity=1.0, avg_price=96.5, realized_pnl=0.0, ts_event=T0),
]


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: m.kind)
def test_every_message_type_round_trips_through_versioned_json(message):
    payload = codec.encode(message)

    assert payload.startswith(b'{"v":1,"kind":"%s"' % message.kind.encode())
    assert codec.decode(payload, type(message)) == message


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"not json", "malformed message envelope"),
        (b'{"v":2,"kind":"bar","data":{}}', "unknown schema version 2"),
        (b'{"v":1,"kind":"candle","data":{}}', "unknown message kind 'candle'"),
        (b'{"v":1,"kind":"bar","data":{"symbol":"X"}}', "malformed bar message"),
        (
            b'{"v":1,"kind":"bar","data":{"symbol":"X","ts_event":1,"open":"1","high":1,'
            b'"low":1,"close":1,"volume":1}}',
            "malformed bar message",
        ),
        (b'{"v":1,"kind":"fill","data":{}, "extra": 1}', "malformed message envelope"),
    ],
)
def test_malformed_or_unknown_messages_are_rejected_with_a_reason(payload, reason):
    with pytest.raises(MessageError, match=reason):
        codec.decode(payload)


def test_a_message_of_another_kind_than_expected_is_rejected():
    with pytest.raises(MessageError, match="expected a Fill message, got 'signal'"):
        codec.decode(codec.encode(MESSAGES[5]), Fill)


def test_an_oversized_message_is_rejected_before_parsing():
    with pytest.raises(MessageError, match="message too large"):
        codec.decode(b" " * (codec.MAX_MESSAGE_BYTES + 1))
