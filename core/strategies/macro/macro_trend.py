"""Macro trend: a 10-month SMA trend filter on the index, tempered by the yield-curve slope.

Once a month (at the first bar of a new calendar month, when the previous month's close is
final) the strategy compares that month-end close with the mean of the last ``sma_months``
month-end closes (Faber's rule). Trend down: target 0. Trend up: target 1, or
``inverted_exposure`` while the curve is inverted, i.e. the latest ``long_series`` minus
``short_series`` yield (10y - 3m, percentage points) is at or below ``slope_floor``. The slope
counts only while both yields are at most ``max_slope_age_days`` old; a stale curve is ignored.

Events: :class:`MacroPoint` (the two yields) and the traded symbol's :class:`Bar`. Frame: the
event frame of :func:`core.data.macro.macro_event_frame`, one symbol's bars; the output holds the
last decision on every bar row (NaN on macro rows and before the first decision). Timing: a bar
stamped D is D's close; yields are stamped the day after their curve date.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from core.model import Bar, MacroPoint, Signal
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
from core.strategies.macro._common import (
    DAY_NS,
    Ring,
    bar_rows,
    fresh_since,
    month_index,
    month_indices,
    series_asof,
    series_rows,
    series_values,
)


class MacroTrendConfig(StrategyConfig, frozen=True, kw_only=True):
    aliases: ClassVar[dict[str, str]] = {"months": "sma_months"}

    sma_months: int = 10
    long_series: str = "DGS10"
    short_series: str = "DGS3MO"
    slope_floor: float = 0.0
    inverted_exposure: float = 0.5
    max_slope_age_days: int = 7

    def __post_init__(self) -> None:
        require(2 <= self.sma_months <= 120, f"sma_months must be in 2..120, was {self.sma_months}")
        require(
            math.isfinite(self.slope_floor) and abs(self.slope_floor) <= 10.0,
            f"slope_floor must be within ±10 points, was {self.slope_floor}",
        )
        require(
            0.0 <= self.inverted_exposure <= 1.0,
            f"inverted_exposure must be in [0, 1], was {self.inverted_exposure}",
        )
        require(
            self.max_slope_age_days >= 0,
            f"max_slope_age_days must be >= 0, was {self.max_slope_age_days}",
        )
        require(
            self.long_series != self.short_series,
            f"long_series and short_series must differ, both were {self.long_series!r}",
        )


class _MacroTrendState(StrategyState):
    month_closes: dict[str, Any]
    month: int
    last_close: float
    long: float  # the latest long and short yields, NaN until one was seen
    short: float
    long_ts: int
    short_ts: int


@register
class MacroTrend(Strategy[MacroTrendConfig]):
    """Long above the 10-month SMA (less when the curve is inverted), flat below."""

    spec = StrategySpec(
        name="macro_trend",
        family=Family.HIGH_TIME_FRAME,
        tier=Tier.STRATEGIC,
        data_kind=DataKind.MACRO,
        summary=(
            "10-month SMA trend filter on the index combined with the yield-curve slope (10y - 3m)."
        ),
        dataset="us_treasury_yields_zipline",
    )
    config_type = MacroTrendConfig

    def __init__(self, config: MacroTrendConfig, symbol: str, *, name: str | None = None) -> None:
        super().__init__(config, symbol, name=name)
        self._month_closes = Ring(config.sma_months)
        self._month = -1
        self._last_close = math.nan
        self._long = math.nan
        self._short = math.nan
        self._long_ts = 0
        self._short_ts = 0

    @property
    def warmup(self) -> int:
        # sma_months completed months need at least sma_months + 1 bars.
        return self.config.sma_months + 1

    def update(self, event: MacroPoint | Bar) -> Signal | None:
        if isinstance(event, MacroPoint):
            if event.series == self.config.long_series:
                self._long, self._long_ts = event.value, event.ts_event
            elif event.series == self.config.short_series:
                self._short, self._short_ts = event.value, event.ts_event
            return None
        if event.symbol != self.symbol:
            return None
        month = month_index(event.ts_event)
        new_month = self._month >= 0 and month != self._month
        if new_month:
            self._month_closes.push(self._last_close)
        self._month, self._last_close = month, event.close
        if not (new_month and self._month_closes.full):
            return None
        return self._decide(event.ts_event)

    def _decide(self, ts_event: int) -> Signal | None:
        cfg = self.config
        month_close = self._month_closes.newest
        sma = math.fsum(self._month_closes.values()) / cfg.sma_months
        max_age = cfg.max_slope_age_days * DAY_NS
        fresh = (
            not math.isnan(self._long)
            and not math.isnan(self._short)
            and ts_event - self._long_ts <= max_age
            and ts_event - self._short_ts <= max_age
        )
        slope = self._long - self._short if fresh else math.nan
        inverted = fresh and slope <= cfg.slope_floor
        target = 0.0 if month_close <= sma else (cfg.inverted_exposure if inverted else 1.0)
        reason = {
            "month_close": month_close,
            "sma": sma,
            "slope": slope,
            "inverted": float(inverted),
        }
        return self._emit(ts_event, target, abs(month_close / sma - 1.0), reason)

    def to_state(self) -> dict[str, Any]:
        saved = _MacroTrendState(
            month_closes=self._month_closes.to_state(),
            month=self._month,
            last_close=self._last_close,
            long=self._long,
            short=self._short,
            long_ts=self._long_ts,
            short_ts=self._short_ts,
        )
        return {**self._base_state(), **saved.to_dict()}

    def restore(self, state: dict[str, Any]) -> None:
        saved = _MacroTrendState.from_dict(state)
        self._restore_base(state)
        self._month_closes.restore(saved.month_closes)
        self._month = saved.month
        self._last_close, self._long, self._short = saved.last_close, saved.long, saved.short
        self._long_ts, self._short_ts = saved.long_ts, saved.short_ts

    @classmethod
    def vectorized(cls, config: MacroTrendConfig, frame: pd.DataFrame) -> pd.Series:
        bars = bar_rows(frame)
        ts = frame["ts_event"].to_numpy(np.int64)
        positions = np.flatnonzero(bars)
        months = month_indices(ts[positions])
        close = frame["close"].to_numpy(np.float64)[positions]
        # Bar k opens a new month: the close of bar k-1 is a month-end close.
        turns = np.flatnonzero(months[1:] != months[:-1]) + 1
        month_ends = close[turns - 1]
        n = config.sma_months
        decided = turns[n - 1 :]
        sma = np.array(
            [math.fsum(month_ends[i - n + 1 : i + 1]) / n for i in range(n - 1, len(month_ends))]
        )
        rows = positions[decided]
        slope, fresh = _vector_slope(config, frame)
        inverted = fresh[rows] & (slope[rows] <= config.slope_floor)
        up_target = np.where(inverted, config.inverted_exposure, 1.0)
        target = np.where(month_ends[n - 1 :] <= sma, 0.0, up_target)
        out = pd.Series(np.nan, index=frame.index, dtype="float64")
        out.iloc[rows] = target
        return out.ffill().where(bars)


def _vector_slope(config: MacroTrendConfig, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    ts = frame["ts_event"].to_numpy(np.int64)
    max_age = config.max_slope_age_days * DAY_NS
    fresh = np.ones(len(frame), dtype=bool)
    latest = []
    for name in (config.long_series, config.short_series):
        fresh &= fresh_since(ts, series_rows(frame, name), max_age)
        latest.append(series_asof(frame, series_values(frame, name)).to_numpy())
    return latest[0] - latest[1], fresh
