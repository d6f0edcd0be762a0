"""Perpetual funding carry: hold the delta-neutral position that collects an expected funding rate.

The expected funding rate of a venue is the EWMA (span ``span`` settlements, seeded with the first
rate, ``alpha = 2 / (span + 1)``) of its realized rates, annualized with the venue's funding
interval: ``apr = ewma * 365 * 24 / interval_hours``. Positive funding means longs pay shorts.

Two modes, one instance per instrument (``symbol`` e.g. ``"BTC-USDT"``):

* spot carry (``hedge_venue`` empty): the carry is ``apr(venue)``. Target ``+1`` = hold one unit
  short the perpetual on ``venue`` and long one unit of spot (collects positive funding); ``-1`` =
  the reverse (long perp, short spot), only with ``allow_reverse``.
* cross-venue (``hedge_venue`` set): the carry is ``apr(venue) - apr(hedge_venue)``. Target ``+1``
  = short the perp on ``venue`` (the higher funding) and long the perp on ``hedge_venue`` (the
  lower); ``-1`` the mirror image, always allowed since both legs are perpetuals.

Entry/exit costs are counted twice over: a position opens only when ``|carry|`` exceeds
``hurdle = max(entry_apr, breakeven_apr)``, where ``breakeven_apr = round_trip_cost_bps / 1e4 *
365 / horizon_days`` is the carry that repays the four fills of a round trip within the expected
holding horizon; and it closes only when the carry falls below ``exit_apr`` (hysteresis band), so
small wiggles around the threshold do not churn fees.

Event: :class:`~core.model.FundingRate` (one per venue settlement); rates of other venues or
symbols are ignored. ``carry_collected`` accumulates the funding earned by the held position
(per unit of notional, rates as decimals) and is reported in every signal.

Vectorized frame: the funding frame of :func:`core.data.loaders.read_funding_frame` for ONE
instrument (columns ``ts_event``, ``venue``, ``rate``; ``symbol`` optional), in event order. Rows
of other venues, and rows before the expected rates are ready, give NaN.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from core.indicators import ExponentialMean
from core.model import FundingRate, Signal
from core.strategies.arrays import carried
from core.strategies.base import (
    DataKind,
    Execution,
    Family,
    Strategy,
    StrategyConfig,
    StrategySpec,
    Tier,
    require,
)
from core.strategies.catalogue import register

_HOURS_PER_YEAR = 365.0 * 24.0


class FundingRateConfig(StrategyConfig, frozen=True, kw_only=True):
    venue: str = "binance"
    hedge_venue: str = ""  # empty: hedge with spot; else: cross-venue, long perp here
    span: int = 9  # EWMA span in settlements (9 x 8 h = 3 days)
    entry_apr: float = 0.15
    exit_apr: float = 0.05
    round_trip_cost_bps: float = 20.0  # fees + slippage of opening and closing both legs
    horizon_days: float = 30.0  # holding period over which the carry must repay the round trip
    interval_hours: float = 8.0  # funding interval of ``venue``
    hedge_interval_hours: float = 8.0  # funding interval of ``hedge_venue`` (dYdX: 1)
    allow_reverse: bool = False  # spot mode: short spot / long perp on negative funding

    def __post_init__(self) -> None:
        require(bool(self.venue), "venue must be non-empty, was ''")
        require(
            self.hedge_venue != self.venue,
            f"hedge_venue must differ from venue, was {self.hedge_venue!r} == {self.venue!r}",
        )
        require(2 <= self.span <= 10_000, f"span must be in [2, 10000], was {self.span}")
        require(self.entry_apr > 0, f"entry_apr must be > 0, was {self.entry_apr}")
        require(
            self.exit_apr < self.entry_apr,
            f"exit_apr must be < entry_apr, was {self.exit_apr} >= {self.entry_apr}",
        )
        require(
            self.round_trip_cost_bps >= 0,
            f"round_trip_cost_bps must be >= 0, was {self.round_trip_cost_bps}",
        )
        require(self.horizon_days > 0, f"horizon_days must be > 0, was {self.horizon_days}")
        for field in ("interval_hours", "hedge_interval_hours"):
            hours = getattr(self, field)
            require(0 < hours <= 24, f"{field} must be in (0, 24], was {hours}")

    @property
    def cross_venue(self) -> bool:
        return bool(self.hedge_venue)

    @property
    def breakeven_apr(self) -> float:
        return self.round_trip_cost_bps / 1e4 * 365.0 / self.horizon_days

    @property
    def hurdle_apr(self) -> float:
        return max(self.entry_apr, self.breakeven_apr)


def _next_target(position: float, carry: float, config: FundingRateConfig, reverse: bool) -> float:
    """Hysteresis: open beyond the hurdle, close inside the exit band, flip only past the hurdle."""
    hurdle, exit_apr = config.hurdle_apr, config.exit_apr
    if position > 0 and carry >= exit_apr:
        return position
    if position < 0 and carry <= -exit_apr:
        return position
    if carry > hurdle:
        return 1.0
    if reverse and carry < -hurdle:
        return -1.0
    return 0.0


@register
class FundingRateCarry(Strategy[FundingRateConfig]):
    """Short perp / long spot (or across venues) while the expected funding carry pays."""

    spec = StrategySpec(
        name="funding_rate",
        family=Family.ARBITRAGE,
        tier=Tier.FAST,
        data_kind=DataKind.FUNDING,
        summary=(
            "Perpetual funding carry: hold short perp / long spot (or short the high-funding and "
            "long the low-funding venue) while expected annualized funding beats costs."
        ),
        dataset="funding_rates_btc_eth_supervik",
        execution=Execution.CARRY,
    )
    config_type = FundingRateConfig

    def __init__(self, config: FundingRateConfig, symbol: str, *, name: str | None = None) -> None:
        super().__init__(config, symbol, name=name)
        self._main = ExponentialMean(config.span)
        self._hedge = ExponentialMean(config.span)
        self.carry_collected = 0.0
        self._main_ts = -1
        self._hedge_ts = -1

    @property
    def warmup(self) -> int:
        return self.config.span * (2 if self.config.cross_venue else 1)

    def legs(self, signal: Signal) -> dict[str, float]:
        # Target +1: short the perpetual on ``venue`` and long the hedge (spot, or the other
        # venue's perpetual), one unit of notional each; the venue settles funding on them.
        hedge = self.config.hedge_venue or "spot"
        target = signal.target_position
        return {f"{self.symbol}:{self.config.venue}": -target, f"{self.symbol}:{hedge}": target}

    def update(self, event: FundingRate) -> Signal | None:
        cfg = self.config
        if event.symbol != self.symbol:
            return None
        if event.venue == cfg.venue:
            # A settlement pays the position held going into it: short perp earns +rate.
            self.carry_collected += self.target * event.rate
            self._main.update(event.rate)
            self._main_ts = event.ts_event
        elif cfg.cross_venue and event.venue == cfg.hedge_venue:
            self.carry_collected -= self.target * event.rate
            self._hedge.update(event.rate)
            self._hedge_ts = event.ts_event
        else:
            return None
        if not self._main.ready:
            return None
        # Venues settle at the same hour: deciding between their two updates would churn.
        if cfg.cross_venue and (not self._hedge.ready or self._main_ts != self._hedge_ts):
            return None
        main_apr = self._main.value * _HOURS_PER_YEAR / cfg.interval_hours
        hedge_apr = (
            self._hedge.value * _HOURS_PER_YEAR / cfg.hedge_interval_hours
            if cfg.cross_venue
            else 0.0
        )
        carry = main_apr - hedge_apr
        target = _next_target(self.target, carry, cfg, cfg.allow_reverse or cfg.cross_venue)
        reason = {
            "expected_apr": main_apr,
            "hedge_expected_apr": hedge_apr,
            "carry_apr": carry,
            "hurdle_apr": cfg.hurdle_apr,
            "exit_apr": cfg.exit_apr,
            "breakeven_apr": cfg.breakeven_apr,
            "perp_units": -target if target else 0.0,
            "hedge_units": target,
            "carry_collected": self.carry_collected,
        }
        return self._emit(event.ts_event, target, abs(carry), reason)

    def to_state(self) -> dict[str, Any]:
        return {
            **self._base_state(),
            "main": self._main.to_state(),
            "hedge": self._hedge.to_state(),
            "carry_collected": self.carry_collected,
            "main_ts": self._main_ts,
            "hedge_ts": self._hedge_ts,
        }

    def restore(self, state: dict[str, Any]) -> None:
        self._restore_base(state)
        self._main.restore(state["main"])
        self._hedge.restore(state["hedge"])
        self.carry_collected = float(state["carry_collected"])
        self._main_ts = int(state["main_ts"])
        self._hedge_ts = int(state["hedge_ts"])

    @classmethod
    def vectorized(cls, config: FundingRateConfig, frame: pd.DataFrame) -> pd.Series:
        venue = frame["venue"].astype("str").to_numpy()
        rate = frame["rate"].astype("float64")
        is_main = venue == config.venue
        is_hedge = (venue == config.hedge_venue) if config.cross_venue else np.zeros_like(is_main)
        main_apr = _expected_apr(rate, is_main, config.span, config.interval_hours)
        if config.cross_venue:
            hedge_apr = _expected_apr(rate, is_hedge, config.span, config.hedge_interval_hours)
        else:
            hedge_apr = np.zeros(len(frame))
        carry = main_apr - hedge_apr
        decide = (is_main | is_hedge) & ~np.isnan(carry)
        if config.cross_venue:
            ts = frame["ts_event"].to_numpy(np.int64)
            decide &= carried(is_main, ts, -1) == carried(is_hedge, ts, -1)
        reverse = config.allow_reverse or config.cross_venue
        target = np.full(len(frame), np.nan)
        position = 0.0
        for i in np.flatnonzero(decide).tolist():
            position = _next_target(position, float(carry[i]), config, reverse)
            target[i] = position
        return pd.Series(target, index=frame.index)


def _expected_apr(rate: pd.Series, rows: np.ndarray, span: int, hours: float) -> np.ndarray:
    """EWMA of one venue's rates, annualized, carried forward to every later row."""
    ewma = rate[rows].ewm(span=span, adjust=False, min_periods=span).mean()
    apr = ewma * _HOURS_PER_YEAR / hours
    return apr.reindex(rate.index).ffill().to_numpy(np.float64)
