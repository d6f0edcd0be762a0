"""Donchian channel breakout with an optional ATR trailing stop.

Rule, evaluated on each bar's close against channels built from the *previous* bars only:

- long (+1) when the close exceeds the highest high of the previous ``entry_period`` bars;
- flat (0), or short (-1) when ``allow_short``, when the close falls below the lowest low of
  the previous ``exit_period`` bars;
- otherwise the position is held. A close can never break both channels on one bar (the
  upper channel is at least the previous bar's high, the lower at most its low).
- With ``atr_stop > 0`` an open position is also closed when the close crosses a trailing
  stop set at the previous close: the best close since entry minus (long) or plus (short)
  ``atr_stop`` times the previous bar's ATR. The ATR is Wilder's average of the true range
  (``alpha = 1 / atr_period``, seeded with the first bar's high - low), as
  ``tr.ewm(alpha=1/atr_period, adjust=False).mean()`` in pandas.

Frame for :meth:`Breakout.vectorized`: the standard bars frame, columns ``ts_event`` (int64 ns
UTC), ``open, high, low, close, volume`` (float64), one row per bar in time order.
"""

from __future__ import annotations

import math
from collections import deque
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


class BreakoutConfig(StrategyConfig, frozen=True, kw_only=True):
    entry_period: int = 20
    exit_period: int = 10
    allow_short: bool = False
    atr_period: int = 14
    atr_stop: float = 0.0  # stop distance in ATRs; 0 turns the stop off

    def __post_init__(self) -> None:
        for field, value in (
            ("entry_period", self.entry_period),
            ("exit_period", self.exit_period),
            ("atr_period", self.atr_period),
        ):
            require(1 <= value <= 10_000, f"{field} must be in [1, 10000], was {value}")
        require(
            math.isfinite(self.atr_stop) and self.atr_stop >= 0.0,
            f"atr_stop must be a finite number >= 0, was {self.atr_stop}",
        )

    @property
    def warmup(self) -> int:
        periods = [self.entry_period, self.exit_period]
        if self.atr_stop > 0.0:
            periods.append(self.atr_period)
        # Channels need that many previous bars; the signal comes on the bar after them.
        return max(periods) + 1


class _RollingExtreme:
    """Maximum (or minimum) of the last ``period`` values: a monotonic deque, O(1) amortized.

    The deque holds at most ``period`` (index, value) pairs, so memory is bounded.
    """

    __slots__ = ("_count", "_items", "_sign", "period")

    def __init__(self, period: int, *, largest: bool) -> None:
        self.period = period
        self._sign = 1.0 if largest else -1.0
        self._items: deque[tuple[int, float]] = deque()
        self._count = 0

    @property
    def value(self) -> float:
        """The extreme of the last ``period`` values, NaN until that many were seen."""
        if self._count < self.period:
            return math.nan
        return self._items[0][1]

    def update(self, x: float) -> None:
        items, sign = self._items, self._sign
        while items and sign * items[-1][1] <= sign * x:
            items.pop()
        items.append((self._count, x))
        self._count += 1
        if items[0][0] <= self._count - 1 - self.period:
            items.popleft()

    def to_state(self) -> dict[str, Any]:
        return {"items": [list(item) for item in self._items], "count": self._count}

    def restore(self, state: dict[str, Any]) -> None:
        self._items = deque((int(i), float(v)) for i, v in state["items"])
        self._count = int(state["count"])


def _step(
    position: float,
    close: float,
    upper: float,
    lower: float,
    stop: float,
    config: BreakoutConfig,
) -> float:
    """The new position from the channels and the stop level set at the previous close."""
    if close > upper:
        return 1.0
    if close < lower:
        return -1.0 if config.allow_short else 0.0
    if (position > 0.0 and close < stop) or (position < 0.0 and close > stop):
        return 0.0
    return position


def _stop_level(position: float, best: float, atr: float, multiple: float) -> float:
    """Trailing stop for the next bar; NaN (never hit) when flat or with the stop off."""
    if position == 0.0 or multiple <= 0.0:
        return math.nan
    return best - multiple * atr if position > 0.0 else best + multiple * atr


def _best_close(position: float, previous: float, best: float, close: float) -> float:
    """Best close since entry: reset on a new position, else ratcheted in its favour."""
    if position != previous:
        return close
    if position > 0.0:
        return max(best, close)
    if position < 0.0:
        return min(best, close)
    return close


class _BreakoutState(StrategyState):
    upper: dict[str, Any]  # the rolling extremes' own states
    lower: dict[str, Any]
    atr: float
    prev_close: float
    count: int
    position: float
    best: float  # the best close since the position was taken (NaN before the first bar)
    stop: float  # NaN: no stop (flat, or the stop is off)


@register
class Breakout(Strategy[BreakoutConfig]):
    """Donchian breakout: long above the prior N-bar high, out (or short) below the M-bar low."""

    spec = StrategySpec(
        name="breakout",
        family=Family.TREND_FOLLOWING,
        tier=Tier.TACTICAL,
        data_kind=DataKind.BARS,
        summary=(
            "Donchian channel: long when close exceeds the highest high of the previous N bars, "
            "flat/short below the lowest low of the previous M bars; optional ATR trailing stop."
        ),
        dataset="equities_daily_stocknet88",
    )
    config_type = BreakoutConfig

    def __init__(self, config: BreakoutConfig, symbol: str, *, name: str | None = None) -> None:
        super().__init__(config, symbol, name=name)
        self._upper = _RollingExtreme(config.entry_period, largest=True)
        self._lower = _RollingExtreme(config.exit_period, largest=False)
        self._alpha = 1.0 / config.atr_period
        self._atr = math.nan
        self._prev_close = math.nan
        self._count = 0
        self._position = 0.0
        self._best = math.nan
        self._stop = math.nan

    @property
    def warmup(self) -> int:
        return self.config.warmup

    def update(self, bar: Bar) -> Signal | None:
        # Channels from the previous bars, read before this bar enters them.
        upper, lower, stop = self._upper.value, self._lower.value, self._stop
        self._upper.update(bar.high)
        self._lower.update(bar.low)
        self._update_atr(bar)
        self._count += 1
        if self._count < self.config.warmup:
            return None
        previous = self._position
        self._position = _step(previous, bar.close, upper, lower, stop, self.config)
        self._best = _best_close(self._position, previous, self._best, bar.close)
        self._stop = _stop_level(self._position, self._best, self._atr, self.config.atr_stop)
        reason = {"close": bar.close, "upper": upper, "lower": lower}
        if not math.isnan(stop):
            reason["stop"] = stop
        return self._emit(bar.ts_event, self._position, 1.0, reason)

    def _update_atr(self, bar: Bar) -> None:
        if math.isnan(self._prev_close):
            true_range = bar.high - bar.low
        else:
            true_range = max(
                bar.high - bar.low,
                abs(bar.high - self._prev_close),
                abs(bar.low - self._prev_close),
            )
        if math.isnan(self._atr):
            self._atr = true_range
        else:
            self._atr = (1.0 - self._alpha) * self._atr + self._alpha * true_range
        self._prev_close = bar.close

    def to_state(self) -> dict[str, Any]:
        saved = _BreakoutState(
            upper=self._upper.to_state(),
            lower=self._lower.to_state(),
            atr=self._atr,
            prev_close=self._prev_close,
            count=self._count,
            position=self._position,
            best=self._best,
            stop=self._stop,
        )
        return {**self._base_state(), **saved.to_dict()}

    def restore(self, state: dict[str, Any]) -> None:
        saved = _BreakoutState.from_dict(state)
        self._restore_base(state)
        self._upper.restore(saved.upper)
        self._lower.restore(saved.lower)
        self._atr = saved.atr
        self._prev_close = saved.prev_close
        self._count = saved.count
        self._position = saved.position
        self._best = saved.best
        self._stop = saved.stop

    @classmethod
    def vectorized(cls, config: BreakoutConfig, frame: pd.DataFrame) -> pd.Series:
        high = frame["high"].astype("float64")
        low = frame["low"].astype("float64")
        close = frame["close"].astype("float64").to_numpy()
        upper = high.rolling(config.entry_period).max().shift(1).to_numpy()
        lower = low.rolling(config.exit_period).min().shift(1).to_numpy()
        atr = _wilder_atr(high.to_numpy(), low.to_numpy(), close, config.atr_period)
        target = np.full(len(frame), np.nan)
        position, best, stop = 0.0, math.nan, math.nan
        # The hold-until-the-other-channel rule and the trailing stop are path dependent.
        for i in range(config.warmup - 1, len(frame)):
            previous = position
            position = _step(previous, close[i], upper[i], lower[i], stop, config)
            best = _best_close(position, previous, best, close[i])
            stop = _stop_level(position, best, atr[i], config.atr_stop)
            target[i] = position
        return pd.Series(target, index=frame.index)


def _wilder_atr(high: np.ndarray, low: np.ndarray, close: np.ndarray, period: int) -> np.ndarray:
    """Wilder's average true range, seeded with the first bar's range."""
    previous = np.concatenate(([np.nan], close[:-1]))
    with np.errstate(invalid="ignore"):
        true_range = np.fmax(high - low, np.fmax(np.abs(high - previous), np.abs(low - previous)))
    alpha = 1.0 / period
    atr = np.empty(len(true_range))
    value = math.nan
    for i, tr in enumerate(true_range.tolist()):
        value = tr if i == 0 else (1.0 - alpha) * value + alpha * tr
        atr[i] = value
    return atr
