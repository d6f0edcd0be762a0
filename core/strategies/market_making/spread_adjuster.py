"""Quotes sized to the spread takers are paying, leaned toward the order flow and off inventory.

Per event, from the merged quote/trade stream::

    h      = max(min_half_spread_ticks * tick, spread_multiplier * EWMA|price - mid|)
    flow   = trade_weight * EWMA(sign * size) / EWMA(size)
             + book_weight * (bid_size - ask_size) / (bid_size + ask_size)
    center = mid + h * (flow_skew * flow - inventory_skew * inventory / max_inventory)
    half   = h * (1 + flow_widen * |flow|)
    bid    = center - half,   ask = center + half

``EWMA|price - mid|`` is the recent effective half-spread: how far from the mid takers have
actually been trading (it widens when prints sweep through several levels). ``flow`` in
[-1, 1] combines the trade-sign imbalance (aggressor side, volume weighted) with the
top-of-book size imbalance: buying pressure moves both quotes up (the ask is the side that
would be picked off) and widens them; long inventory moves them down. EWMAs run over prints
(span ``flow_span``); the book imbalance is that of the latest quote.

Frame: the ``quotes_trades`` frame (see :mod:`core.strategies.market_making.frames`), plus an
optional ``inventory`` column (inventory as of each row; zero when absent).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from core.indicators import ExponentialMean
from core.model import Quote, Side, Signal, Trade
from core.strategies.base import DataKind, Execution, Family, StrategySpec, Tier, require
from core.strategies.catalogue import register
from core.strategies.market_making.common import (
    FrameBook,
    QuotingConfig,
    QuotingStrategy,
    check_non_negative,
    check_positive,
    check_span,
    frame_inventory,
    post_quotes,
    quotes_output,
)


class SpreadAdjusterConfig(QuotingConfig, frozen=True, kw_only=True):
    flow_span: int = 100
    spread_multiplier: float = 1.5
    min_half_spread_ticks: float = 1.0
    trade_weight: float = 0.5
    book_weight: float = 0.5
    flow_skew: float = 1.0
    flow_widen: float = 0.5
    inventory_skew: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        check_span("flow_span", self.flow_span)
        check_positive("spread_multiplier", self.spread_multiplier)
        check_positive("min_half_spread_ticks", self.min_half_spread_ticks)
        for name in ("trade_weight", "book_weight", "flow_skew", "flow_widen", "inventory_skew"):
            check_non_negative(name, getattr(self, name))
        total = self.trade_weight + self.book_weight
        require(
            total <= 1.0,
            f"trade_weight + book_weight must be <= 1, was {self.trade_weight} + "
            f"{self.book_weight} = {total:g}",
        )


def _sign(trade: Trade) -> float:
    if trade.aggressor is Side.BUY:
        return 1.0
    return -1.0 if trade.aggressor is Side.SELL else 0.0


@register
class SpreadAdjuster(QuotingStrategy[SpreadAdjusterConfig]):
    """Half-spread from the recent effective spread, skewed by order flow and inventory."""

    spec = StrategySpec(
        name="spread_adjuster",
        family=Family.MARKET_MAKING,
        tier=Tier.FAST,
        data_kind=DataKind.QUOTES_TRADES,
        summary=(
            "Half-spread from the recent effective spread of prints and order-flow imbalance "
            "(trade sign, top-of-book sizes); quotes skewed against inventory."
        ),
        dataset="crypto_l2_binance_hftbacktest",
        execution=Execution.MAKER,
    )
    config_type = SpreadAdjusterConfig

    def _init_indicators(self) -> None:
        span = self.config.flow_span
        self._distance = ExponentialMean(span)
        self._signed_volume = ExponentialMean(span)
        self._volume = ExponentialMean(span)

    @property
    def warmup(self) -> int:
        return 1 + self.config.flow_span  # a quote for the mid, then flow_span prints

    def _on_quote(self, quote: Quote) -> None:
        pass  # the book itself is all this strategy reads from quotes

    def _on_trade(self, trade: Trade) -> None:
        self._distance.update(abs(trade.price - self.mid))
        self._signed_volume.update(_sign(trade) * trade.size)
        self._volume.update(trade.size)

    def _requote(self, ts_event: int) -> Signal | None:
        distance = self._distance.value
        if math.isnan(distance):
            return None
        c = self.config
        volume = self._volume.value
        trade_flow = self._signed_volume.value / volume if volume > 0 else 0.0
        depth = self._bid_size + self._ask_size
        book_flow = (self._bid_size - self._ask_size) / depth if depth > 0 else 0.0
        flow = c.trade_weight * trade_flow + c.book_weight * book_flow
        h = max(c.min_half_spread_ticks * c.tick_size, c.spread_multiplier * distance)
        lean = c.flow_skew * flow - c.inventory_skew * (self.inventory / c.max_inventory)
        center = self.mid + h * lean
        half = h * (1.0 + c.flow_widen * abs(flow))
        reason = {"mid": self.mid, "half_spread": half, "trade_flow": trade_flow}
        reason |= {"book_flow": book_flow, "center": center}
        return self._post(ts_event, center - half, center + half, c.quote_size, reason)

    def _indicator_state(self) -> dict[str, Any]:
        return {
            "distance": self._distance.to_state(),
            "signed_volume": self._signed_volume.to_state(),
            "volume": self._volume.to_state(),
        }

    def _restore_indicators(self, state: dict[str, Any]) -> None:
        self._distance.restore(state["distance"])
        self._signed_volume.restore(state["signed_volume"])
        self._volume.restore(state["volume"])

    @classmethod
    def vectorized(cls, config: SpreadAdjusterConfig, frame: pd.DataFrame) -> pd.DataFrame:
        c = config
        book = FrameBook(frame)
        inventory = frame_inventory(frame)
        distance = book.trade_ewm(np.abs(book.price - book.mid), c.flow_span)
        signed = book.trade_ewm(book.aggressor_sign * book.size, c.flow_span)
        volume = book.trade_ewm(book.size, c.flow_span)
        depth = book.bid_size + book.ask_size
        with np.errstate(divide="ignore", invalid="ignore"):
            trade_flow = np.where(volume > 0, signed / volume, 0.0)
            book_flow = np.where(depth > 0, (book.bid_size - book.ask_size) / depth, 0.0)
        flow = c.trade_weight * trade_flow + c.book_weight * book_flow
        h = np.maximum(c.min_half_spread_ticks * c.tick_size, c.spread_multiplier * distance)
        lean = c.flow_skew * flow - c.inventory_skew * (inventory / c.max_inventory)
        center = book.mid + h * lean
        half = h * (1.0 + c.flow_widen * np.abs(flow))
        bid, ask = post_quotes(c, book, inventory, center - half, center + half)
        return quotes_output(~np.isnan(distance), inventory, bid, ask, frame.index)
