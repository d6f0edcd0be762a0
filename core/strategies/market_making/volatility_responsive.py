"""Quotes that widen and shrink with measured volatility, and leave the book when it spikes.

Per event, with ``sigma`` the mid's volatility in price per √second (:class:`MidVariance`)
and ``sigma_bps`` the same in basis points of the mid::

    half   = min_half_spread_ticks * tick + vol_multiplier * sigma * sqrt(horizon_seconds)
    size   = quote_size * min(1, vol_reference_bps / sigma_bps)     (down to whole lots)
    center = mid - half * inventory_skew * inventory / max_inventory
    bid    = center - half,   ask = center + half

and both quotes are pulled (``None``) while ``sigma_bps > vol_ceiling_bps``.

Frame: the ``quotes_trades`` frame (see :mod:`core.strategies.market_making.frames`), plus an
optional ``inventory`` column (inventory as of each row; zero when absent).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from core.model import Quote, Signal, Trade
from core.strategies.base import DataKind, Execution, Family, StrategySpec, Tier, require
from core.strategies.catalogue import register
from core.strategies.market_making.common import (
    TICK_EPS,
    FrameBook,
    MidVariance,
    QuotingConfig,
    QuotingStrategy,
    check_non_negative,
    check_positive,
    check_span,
    frame_inventory,
    post_quotes,
    quotes_output,
)


class VolatilityResponsiveConfig(QuotingConfig, frozen=True, kw_only=True):
    vol_span: int = 500
    horizon_seconds: float = 1.0
    min_half_spread_ticks: float = 1.0
    vol_multiplier: float = 0.5
    vol_reference_bps: float = 0.5
    vol_ceiling_bps: float = 2.0
    inventory_skew: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        check_span("vol_span", self.vol_span)
        check_positive("horizon_seconds", self.horizon_seconds)
        check_positive("min_half_spread_ticks", self.min_half_spread_ticks)
        check_non_negative("vol_multiplier", self.vol_multiplier)
        check_positive("vol_reference_bps", self.vol_reference_bps)
        check_non_negative("inventory_skew", self.inventory_skew)
        require(
            self.vol_ceiling_bps > self.vol_reference_bps,
            f"vol_ceiling_bps must be > vol_reference_bps, was {self.vol_ceiling_bps} <= "
            f"{self.vol_reference_bps}",
        )


@register
class VolatilityResponsive(QuotingStrategy[VolatilityResponsiveConfig]):
    """Width and size follow EWMA volatility; quotes pulled above a volatility ceiling."""

    spec = StrategySpec(
        name="volatility_responsive",
        family=Family.MARKET_MAKING,
        tier=Tier.FAST,
        data_kind=DataKind.QUOTES_TRADES,
        summary=(
            "EWMA volatility of mid changes drives quote width and size; above a volatility "
            "ceiling it pulls its quotes."
        ),
        dataset="crypto_l2_binance_hftbacktest",
        execution=Execution.MAKER,
    )
    config_type = VolatilityResponsiveConfig

    def _init_indicators(self) -> None:
        self._variance = MidVariance(self.config.vol_span)

    @property
    def warmup(self) -> int:
        return self.config.vol_span + 1

    def _on_quote(self, quote: Quote) -> None:
        self._variance.update(quote.ts_event, self.mid)

    def _on_trade(self, trade: Trade) -> None:
        pass  # prints do not move this strategy's volatility, which is measured on the mid

    def _requote(self, ts_event: int) -> Signal | None:
        variance = self._variance.value
        if math.isnan(variance):
            return None
        c = self.config
        sigma = math.sqrt(variance)
        sigma_bps = sigma / self.mid * 1e4
        reason = {"mid": self.mid, "sigma_bps": sigma_bps}
        if sigma_bps > c.vol_ceiling_bps:
            return self._pull(ts_event, reason)
        half = c.min_half_spread_ticks * c.tick_size + c.vol_multiplier * sigma * math.sqrt(
            c.horizon_seconds
        )
        lots = c.quote_size * min(1.0, c.vol_reference_bps / sigma_bps) / c.lot_size
        size = max(1, math.floor(lots + TICK_EPS)) * c.lot_size
        center = self.mid - half * c.inventory_skew * (self.inventory / c.max_inventory)
        reason["half_spread"] = half
        return self._post(ts_event, center - half, center + half, size, reason)

    def _indicator_state(self) -> dict[str, Any]:
        return {"variance": self._variance.to_state()}

    def _restore_indicators(self, state: dict[str, Any]) -> None:
        self._variance.restore(state["variance"])

    @classmethod
    def vectorized(cls, config: VolatilityResponsiveConfig, frame: pd.DataFrame) -> pd.DataFrame:
        c = config
        book = FrameBook(frame)
        inventory = frame_inventory(frame)
        sigma = np.sqrt(book.variance_rate(c.vol_span))
        sigma_bps = sigma / book.mid * 1e4
        half = c.min_half_spread_ticks * c.tick_size + c.vol_multiplier * sigma * math.sqrt(
            c.horizon_seconds
        )
        center = book.mid - half * c.inventory_skew * (inventory / c.max_inventory)
        bid, ask = post_quotes(c, book, inventory, center - half, center + half)
        pulled = sigma_bps > c.vol_ceiling_bps
        bid[pulled] = np.nan
        ask[pulled] = np.nan
        return quotes_output(~np.isnan(sigma), inventory, bid, ask, frame.index)
