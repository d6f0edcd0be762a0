"""Avellaneda–Stoikov quoting with volatility and order-arrival intensity measured online.

Reservation price and total spread (Avellaneda & Stoikov, 2008), with a rolling horizon so
``T - t`` is the constant ``horizon_seconds``::

    r      = mid - q * gamma * sigma² * (T - t)
    spread = gamma * sigma² * (T - t) + (2 / gamma) * ln(1 + gamma / k)
    bid    = r - spread / 2,   ask = r + spread / 2

``sigma²`` is the mid's variance rate in price² per second (:class:`MidVariance`), ``q`` the
inventory counted in quote lots (inventory / quote_size, as in the paper's unit orders),
``gamma`` the risk aversion (per price unit) and ``k`` the decay of the order-arrival intensity
with distance from the mid, ``lambda(d) = A exp(-k d)``.
Under that model the distance of a print from the mid is exponential with rate ``k``, so ``k``
is estimated as 1 / EWMA of ``|price - mid|`` over recent trades (floored at half a tick).

Frame: the ``quotes_trades`` frame (see :mod:`core.strategies.market_making.frames`), plus an
optional ``inventory`` column (inventory as of each row; zero when absent).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from core.indicators import ExponentialMean
from core.model import Quote, Signal, Trade
from core.strategies.base import DataKind, Execution, Family, StrategySpec, Tier
from core.strategies.catalogue import register
from core.strategies.market_making.common import (
    FrameBook,
    MidVariance,
    QuotingConfig,
    QuotingStrategy,
    check_positive,
    check_span,
    frame_inventory,
    post_quotes,
    quotes_output,
)


class AdaptiveQuoteConfig(QuotingConfig, frozen=True, kw_only=True):
    gamma: float = 0.01
    horizon_seconds: float = 1.0
    vol_span: int = 500
    k_span: int = 100

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive("gamma", self.gamma)
        check_positive("horizon_seconds", self.horizon_seconds)
        check_span("vol_span", self.vol_span)
        check_span("k_span", self.k_span)


def intensity_decay(mean_distance: float, tick_size: float) -> float:
    """``k`` from the mean distance of prints from the mid (exponential MLE), in 1/price."""
    return 1.0 / max(mean_distance, 0.5 * tick_size)


@register
class AdaptiveQuote(QuotingStrategy[AdaptiveQuoteConfig]):
    """Avellaneda–Stoikov bid and ask around an inventory-skewed reservation price."""

    spec = StrategySpec(
        name="adaptive_quote",
        family=Family.MARKET_MAKING,
        tier=Tier.FAST,
        data_kind=DataKind.QUOTES_TRADES,
        summary=(
            "Avellaneda–Stoikov: reservation price r = mid − q·γ·σ²·(T−t), spread "
            "γσ²(T−t) + (2/γ)·ln(1+γ/k); σ and k estimated online; inventory limits."
        ),
        dataset="crypto_l2_binance_hftbacktest",
        execution=Execution.MAKER,
    )
    config_type = AdaptiveQuoteConfig

    def _init_indicators(self) -> None:
        self._variance = MidVariance(self.config.vol_span)
        self._distance = ExponentialMean(self.config.k_span)

    @property
    def warmup(self) -> int:
        # vol_span + 1 quotes to measure sigma, k_span prints to measure k.
        return self.config.vol_span + 1 + self.config.k_span

    def _on_quote(self, quote: Quote) -> None:
        self._variance.update(quote.ts_event, self.mid)

    def _on_trade(self, trade: Trade) -> None:
        self._distance.update(abs(trade.price - self.mid))

    def _requote(self, ts_event: int) -> Signal | None:
        variance, distance = self._variance.value, self._distance.value
        if math.isnan(variance) or math.isnan(distance):
            return None
        c = self.config
        k = intensity_decay(distance, c.tick_size)
        risk = c.gamma * variance * c.horizon_seconds
        reservation = self.mid - (self.inventory / c.quote_size) * risk
        spread = risk + (2.0 / c.gamma) * math.log1p(c.gamma / k)
        reason = {
            "mid": self.mid,
            "sigma": math.sqrt(variance),
            "k": k,
            "reservation": reservation,
            "spread": spread,
        }
        half = 0.5 * spread
        return self._post(ts_event, reservation - half, reservation + half, c.quote_size, reason)

    def _indicator_state(self) -> dict[str, Any]:
        return {"variance": self._variance.to_state(), "distance": self._distance.to_state()}

    def _restore_indicators(self, state: dict[str, Any]) -> None:
        self._variance.restore(state["variance"])
        self._distance.restore(state["distance"])

    @classmethod
    def vectorized(cls, config: AdaptiveQuoteConfig, frame: pd.DataFrame) -> pd.DataFrame:
        book = FrameBook(frame)
        inventory = frame_inventory(frame)
        variance = book.variance_rate(config.vol_span)
        distance = book.trade_ewm(np.abs(book.price - book.mid), config.k_span)
        k = 1.0 / np.maximum(distance, 0.5 * config.tick_size)
        risk = config.gamma * variance * config.horizon_seconds
        reservation = book.mid - (inventory / config.quote_size) * risk
        spread = risk + (2.0 / config.gamma) * np.log1p(config.gamma / k)
        half = 0.5 * spread
        bid, ask = post_quotes(config, book, inventory, reservation - half, reservation + half)
        ready = ~np.isnan(variance) & ~np.isnan(distance)
        return quotes_output(ready, inventory, bid, ask, frame.index)
