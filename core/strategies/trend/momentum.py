"""Time-series momentum, sized to a volatility target with an EWMA volatility estimate.

Rule on each bar ``t`` (closes ``c``):

- momentum ``m = c[t - skip] / c[t - skip - lookback] - 1`` (the return over ``lookback`` bars,
  ending ``skip`` bars ago so the most recent, often reversing, bars are left out);
- volatility: an EWMA of squared one-bar simple returns (zero mean, as RiskMetrics), with
  ``alpha = 2 / (vol_span + 1)``, seeded with the first squared return, annualized with
  ``periods_per_year``: ``(r ** 2).ewm(span=vol_span, adjust=False).mean()`` in pandas;
- target ``sign(m) * min(vol_target / vol, max_leverage)``: the exposure, in units of the
  instrument's notional per unit of capital, whose ex-ante volatility is ``vol_target``.

Daily bars use ``periods_per_year=252``; the intraday variant runs the same rule on 1-minute
bars with e.g. ``periods_per_year=98280`` (252 sessions of 390 minutes).

Frame for :meth:`Momentum.vectorized`: the standard bars frame, columns ``ts_event`` (int64 ns
UTC), ``open, high, low, close, volume`` (float64), one row per bar in time order.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from core.model import Bar, Signal
from core.state import StrategyState
from core.strategies.base import (
    DataKind,
    Family,
    Strategy,
    StrategyConfig,
    StrategySpec,
    Tier,
    require,
)
from core.strategies.catalogue import register


class MomentumConfig(StrategyConfig, frozen=True, kw_only=True):
    lookback: int = 252
    skip: int = 21
    vol_span: int = 60
    vol_target: float = 0.15  # annualized
    max_leverage: float = 2.0
    periods_per_year: float = 252.0

    def __post_init__(self) -> None:
        require(self.lookback >= 1, f"lookback must be >= 1, was {self.lookback}")
        require(self.skip >= 0, f"skip must be >= 0, was {self.skip}")
        require(
            self.skip < self.lookback,
            f"skip must be < lookback, was {self.skip} >= {self.lookback}",
        )
        require(
            self.lookback + self.skip <= 10_000,
            f"lookback + skip must be <= 10000, was {self.lookback + self.skip}",
        )
        require(
            2 <= self.vol_span <= 10_000, f"vol_span must be in [2, 10000], was {self.vol_span}"
        )
        for field, value in (
            ("vol_target", self.vol_target),
            ("max_leverage", self.max_leverage),
            ("periods_per_year", self.periods_per_year),
        ):
            require(
                math.isfinite(value) and value > 0.0,
                f"{field} must be a finite number > 0, was {value}",
            )

    @property
    def warmup(self) -> int:
        # The momentum needs lookback + skip earlier closes; the EWMA needs vol_span returns.
        return max(self.lookback + self.skip, self.vol_span) + 1


def _target(momentum: float, vol: float, config: MomentumConfig) -> float:
    """Signed exposure whose ex-ante annualized volatility is the target, capped."""
    if momentum == 0.0:
        return 0.0
    size = config.max_leverage if vol <= 0.0 else min(config.vol_target / vol, config.max_leverage)
    return math.copysign(size, momentum)


class _MomentumState(StrategyState):
    closes: list[float]  # the ring of closes, NaN where none was seen yet
    index: int
    count: int
    variance: float


@register
class Momentum(Strategy[MomentumConfig]):
    """Long (short) after a positive (negative) lookback return, sized to a volatility target."""

    spec = StrategySpec(
        name="momentum",
        family=Family.TREND_FOLLOWING,
        tier=Tier.TACTICAL,
        data_kind=DataKind.BARS,
        summary=(
            "Time-series momentum: sign of the return over a lookback L skipping the most recent "
            "S bars, position scaled to a volatility target (EWMA vol)."
        ),
        dataset="equities_daily_stocknet88",
    )
    config_type = MomentumConfig

    def __init__(self, config: MomentumConfig, symbol: str, *, name: str | None = None) -> None:
        super().__init__(config, symbol, name=name)
        # Ring of the last lookback + skip + 1 closes: both momentum ends are in it.
        self._closes = [math.nan] * (config.lookback + config.skip + 1)
        self._index = 0
        self._count = 0
        self._alpha = 2.0 / (config.vol_span + 1.0)
        self._variance = math.nan

    @property
    def warmup(self) -> int:
        return self.config.warmup

    def update(self, bar: Bar) -> Signal | None:
        config, closes = self.config, self._closes
        previous = closes[self._index - 1]  # the index -1 wraps to the end of the ring
        if self._count > 0:
            r = bar.close / previous - 1.0
            squared = r * r
            if math.isnan(self._variance):
                self._variance = squared
            else:
                self._variance = (1.0 - self._alpha) * self._variance + self._alpha * squared
        closes[self._index] = bar.close
        size = len(closes)
        self._index = (self._index + 1) % size
        self._count += 1
        if self._count < config.warmup:
            return None
        # After the write, the ring's oldest close (lookback + skip bars ago) sits at _index.
        recent = closes[(self._index - 1 - config.skip) % size]
        momentum = recent / closes[self._index] - 1.0
        vol = math.sqrt(self._variance * config.periods_per_year)
        target = _target(momentum, vol, config)
        reason = {"momentum": momentum, "vol": vol}
        return self._emit(bar.ts_event, target, abs(momentum), reason)

    def to_state(self) -> dict[str, Any]:
        saved = _MomentumState(
            closes=list(self._closes),
            index=self._index,
            count=self._count,
            variance=self._variance,
        )
        return {**self._base_state(), **saved.to_dict()}

    def restore(self, state: dict[str, Any]) -> None:
        saved = _MomentumState.from_dict(state)
        if len(saved.closes) != len(self._closes):
            raise ValueError(
                f"state has {len(saved.closes)} closes, lookback + skip + 1 is {len(self._closes)}"
            )
        self._restore_base(state)
        self._closes = saved.closes
        self._index = saved.index
        self._count = saved.count
        self._variance = saved.variance

    @classmethod
    def vectorized(cls, config: MomentumConfig, frame: pd.DataFrame) -> pd.Series:
        close = frame["close"].astype("float64").reset_index(drop=True)
        momentum = close.shift(config.skip) / close.shift(config.skip + config.lookback) - 1.0
        returns = close / close.shift(1) - 1.0
        variance = (returns * returns).ewm(span=config.vol_span, adjust=False).mean()
        vol = np.sqrt(variance * config.periods_per_year)
        with np.errstate(divide="ignore"):
            size = np.minimum(config.vol_target / vol, config.max_leverage)
        target = np.sign(momentum) * size
        target[: config.warmup - 1] = np.nan
        return pd.Series(target.to_numpy(), index=frame.index)
