"""Domain types: market events, signals, orders, fills and positions.

All timestamps are integer nanoseconds since the Unix epoch, UTC: ``ts_event`` when it
happened at the venue, ``ts_recv`` when the engine received it. Types are frozen ``msgspec``
structs so that encoding and validation are fast and strict (see :mod:`core.codec`).
"""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar

import msgspec


class InstanceKey(str):
    """One strategy instance: a model on a symbol, written ``<model>|<symbol>``.

    A string (state keys in Redis, checkpoints and the composer's keys are this form), built
    and taken apart only here; model names never contain ``|`` (the ingestion boundary and the
    registry refuse it).
    """

    __slots__ = ()

    def __new__(cls, model: str, symbol: str) -> InstanceKey:
        return super().__new__(cls, f"{model}|{symbol}")

    @classmethod
    def parse(cls, text: str) -> InstanceKey:
        """The key a stored ``<model>|<symbol>`` names; ValueError without both parts."""
        model, bar, symbol = text.partition("|")
        if not (model and bar and symbol):
            raise ValueError(f"not an instance key <model>|<symbol>: {text!r}")
        return cls(model, symbol)

    @property
    def model(self) -> str:
        return self.partition("|")[0]

    @property
    def symbol(self) -> str:
        return self.partition("|")[2]


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"


class _Message(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Base of every message that is stored or sent; ``kind`` names it on the wire."""

    kind: ClassVar[str] = ""


class Bar(_Message, frozen=True, kw_only=True):
    kind: ClassVar[str] = "bar"
    symbol: str
    ts_event: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    ts_recv: int = 0


class Quote(_Message, frozen=True, kw_only=True):
    kind: ClassVar[str] = "quote"
    symbol: str
    ts_event: int
    bid_price: float
    bid_size: float
    ask_price: float
    ask_size: float
    venue: str = ""
    ts_recv: int = 0

    @property
    def mid(self) -> float:
        return 0.5 * (self.bid_price + self.ask_price)


class Trade(_Message, frozen=True, kw_only=True):
    kind: ClassVar[str] = "trade"
    symbol: str
    ts_event: int
    price: float
    size: float
    aggressor: Side | None = None
    trade_id: str = ""
    venue: str = ""
    ts_recv: int = 0


class FundingRate(_Message, frozen=True, kw_only=True):
    kind: ClassVar[str] = "funding"
    symbol: str
    venue: str
    ts_event: int
    rate: float
    ts_recv: int = 0


class NewsItem(_Message, frozen=True, kw_only=True):
    kind: ClassVar[str] = "news"
    ts_event: int
    text: str
    symbols: tuple[str, ...] = ()
    source: str = ""
    ts_recv: int = 0


class MacroPoint(_Message, frozen=True, kw_only=True):
    """One observation of an economic series, stamped when it became public.

    ``ts_event`` is the publication time (the first moment the value may be used);
    ``period_start`` is the start of the period it measures (e.g. the month of an M2 figure).
    """

    kind: ClassVar[str] = "macro"
    series: str
    ts_event: int
    value: float
    period_start: int = 0
    ts_recv: int = 0


class Lineage(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Where a signal came from: the registered model version and the data gate that admitted it."""

    model_name: str = ""
    model_version: str = ""
    validation_run: str = ""


class Signal(_Message, frozen=True, kw_only=True):
    """A strategy's wish: a target position for ``symbol``, with the numbers that triggered it.

    Market makers also state the quotes they want resting (``bid_price``/``ask_price``, sized
    ``quote_size``); ``None`` means no quote on that side (quotes pulled).
    """

    kind: ClassVar[str] = "signal"
    strategy: str
    symbol: str
    ts_event: int
    target_position: float
    strength: float = 1.0
    reason: dict[str, float] = msgspec.field(default_factory=dict)
    lineage: Lineage = msgspec.field(default_factory=Lineage)
    bid_price: float | None = None
    ask_price: float | None = None
    quote_size: float = 0.0


class Order(_Message, frozen=True, kw_only=True):
    kind: ClassVar[str] = "order"
    order_id: str
    symbol: str
    side: Side
    quantity: float
    ts_event: int
    strategy: str = ""
    limit_price: float | None = None


class Fill(_Message, frozen=True, kw_only=True):
    kind: ClassVar[str] = "fill"
    fill_id: str
    order_id: str
    symbol: str
    side: Side
    quantity: float
    price: float
    fee: float
    ts_event: int
    strategy: str = ""

    @property
    def signed_quantity(self) -> float:
        return self.quantity if self.side is Side.BUY else -self.quantity


class Position(_Message, frozen=True, kw_only=True):
    kind: ClassVar[str] = "position"
    symbol: str
    quantity: float
    avg_price: float
    realized_pnl: float
    ts_event: int


MESSAGE_TYPES: dict[str, type[_Message]] = {
    t.kind: t
    for t in (Bar, Quote, Trade, FundingRate, NewsItem, MacroPoint, Signal, Order, Fill, Position)
}
