"""Global liquidity: money-supply and monetary-base growth and its acceleration set equity exposure.

Per series (M2 ``M2SL`` and the monetary base ``BOGMBASE``): year-over-year growth
``g = level / level[12 figures ago] - 1`` and acceleration ``a = g - g[accel_months figures
ago]``. A series votes 0 when ``g <= growth_floor`` (liquidity shrinking), ``decelerating_exposure``
when growing but decelerating (``a < 0``) and 1 when growing and accelerating. The equity target
(e.g. SPY) is ``m2_weight * vote_m2 + (1 - m2_weight) * vote_base``.

No look-ahead: a month's figure enters only when its :class:`MacroPoint` arrives, and
:mod:`core.data.macro` stamps FRED figures at publication (assumed 28 days after the end of the
month for M2 and the base, the H.6 release schedule). ``reason`` carries the period and
publication day of the M2 and base figures in use (days since 1970-01-01) so a signal can be
audited against the release calendar.

Events: :class:`MacroPoint` and the traded symbol's :class:`Bar`; decisions at bars. Frame: the
event frame of :func:`core.data.macro.macro_event_frame`, one symbol's bars, NaN on macro rows.
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
from core.strategies.macro._common import DAY_NS, Ring, bar_rows, series_asof, series_values


class GlobalLiquidityConfig(StrategyConfig, frozen=True, kw_only=True):
    aliases: ClassVar[dict[str, str]] = {"floor": "growth_floor"}

    m2_series: str = "M2SL"
    base_series: str = "BOGMBASE"
    yoy_months: int = 12
    accel_months: int = 3
    growth_floor: float = 0.0
    decelerating_exposure: float = 0.5
    m2_weight: float = 0.5

    def __post_init__(self) -> None:
        require(1 <= self.yoy_months <= 60, f"yoy_months must be in 1..60, was {self.yoy_months}")
        require(
            1 <= self.accel_months <= 24,
            f"accel_months must be in 1..24, was {self.accel_months}",
        )
        require(
            math.isfinite(self.growth_floor) and -1.0 < self.growth_floor < 1.0,
            f"growth_floor must be in (-1, 1), was {self.growth_floor}",
        )
        require(
            0.0 <= self.decelerating_exposure <= 1.0,
            f"decelerating_exposure must be in [0, 1], was {self.decelerating_exposure}",
        )
        require(0.0 <= self.m2_weight <= 1.0, f"m2_weight must be in [0, 1], was {self.m2_weight}")
        require(
            self.m2_series != self.base_series,
            f"m2_series and base_series must differ, both were {self.m2_series!r}",
        )


class _Growth:
    """YoY growth and its acceleration of one monthly series, O(1) per figure."""

    def __init__(self, yoy_months: int, accel_months: int) -> None:
        self.levels = Ring(yoy_months + 1)
        self.growth = Ring(accel_months + 1)
        self.period_start = 0
        self.published = 0

    @property
    def ready(self) -> bool:
        return self.growth.full

    def push(self, point: MacroPoint) -> None:
        self.levels.push(point.value)
        self.period_start, self.published = point.period_start, point.ts_event
        if self.levels.full:
            self.growth.push(self.levels.newest / self.levels.oldest - 1.0)

    def vote(self, floor: float, decelerating: float) -> tuple[float, float, float]:
        g, accel = self.growth.newest, self.growth.newest - self.growth.oldest
        return _vote(g, accel, floor, decelerating), g, accel

    def to_state(self) -> dict[str, Any]:
        return {
            "levels": self.levels.to_state(),
            "growth": self.growth.to_state(),
            "period_start": self.period_start,
            "published": self.published,
        }

    def restore(self, state: dict[str, Any]) -> None:
        self.levels.restore(state["levels"])
        self.growth.restore(state["growth"])
        self.period_start, self.published = int(state["period_start"]), int(state["published"])


def _vote(growth: float, accel: float, floor: float, decelerating: float) -> float:
    if growth <= floor:
        return 0.0
    return 1.0 if accel >= 0.0 else decelerating


class _GlobalLiquidityState(StrategyState):
    m2: dict[str, Any]  # each series' growth state (``_Growth.to_state``)
    base: dict[str, Any]


@register
class GlobalLiquidity(Strategy[GlobalLiquidityConfig]):
    """Equity exposure from M2 and monetary-base growth and acceleration, publication-lagged."""

    spec = StrategySpec(
        name="global_liquidity",
        family=Family.HIGH_TIME_FRAME,
        tier=Tier.STRATEGIC,
        data_kind=DataKind.MACRO,
        summary=(
            "Year-over-year growth of M2 and the monetary base, and its acceleration, set the "
            "equity exposure; a month's figure is used only once published."
        ),
        dataset="macro_fred_monetary",
    )
    config_type = GlobalLiquidityConfig

    def __init__(
        self, config: GlobalLiquidityConfig, symbol: str, *, name: str | None = None
    ) -> None:
        super().__init__(config, symbol, name=name)
        self._m2 = _Growth(config.yoy_months, config.accel_months)
        self._base = _Growth(config.yoy_months, config.accel_months)

    @property
    def warmup(self) -> int:
        # Both series need yoy + accel + 1 figures, then one bar.
        return 2 * (self.config.yoy_months + self.config.accel_months + 1) + 1

    def update(self, event: MacroPoint | Bar) -> Signal | None:
        if isinstance(event, MacroPoint):
            if event.series == self.config.m2_series:
                self._m2.push(event)
            elif event.series == self.config.base_series:
                self._base.push(event)
            return None
        if event.symbol != self.symbol or not (self._m2.ready and self._base.ready):
            return None
        return self._decide(event)

    def _decide(self, bar: Bar) -> Signal | None:
        cfg = self.config
        m2_vote, m2_g, m2_a = self._m2.vote(cfg.growth_floor, cfg.decelerating_exposure)
        base_vote, base_g, base_a = self._base.vote(cfg.growth_floor, cfg.decelerating_exposure)
        target = cfg.m2_weight * m2_vote + (1.0 - cfg.m2_weight) * base_vote
        reason = {
            "m2_yoy": m2_g,
            "m2_accel": m2_a,
            "base_yoy": base_g,
            "base_accel": base_a,
            "m2_period_day": float(self._m2.period_start // DAY_NS),
            "m2_published_day": float(self._m2.published // DAY_NS),
            "base_period_day": float(self._base.period_start // DAY_NS),
            "base_published_day": float(self._base.published // DAY_NS),
        }
        return self._emit(bar.ts_event, target, target, reason)

    def to_state(self) -> dict[str, Any]:
        saved = _GlobalLiquidityState(m2=self._m2.to_state(), base=self._base.to_state())
        return {**self._base_state(), **saved.to_dict()}

    def restore(self, state: dict[str, Any]) -> None:
        saved = _GlobalLiquidityState.from_dict(state)
        self._restore_base(state)
        self._m2.restore(saved.m2)
        self._base.restore(saved.base)

    @classmethod
    def vectorized(cls, config: GlobalLiquidityConfig, frame: pd.DataFrame) -> pd.Series:
        bars = bar_rows(frame)
        votes = [
            _vector_vote(frame, series_values(frame, name), config)
            for name in (config.m2_series, config.base_series)
        ]
        target = config.m2_weight * votes[0] + (1.0 - config.m2_weight) * votes[1]
        return target.where(bars)


def _vector_vote(
    frame: pd.DataFrame, levels: pd.Series, config: GlobalLiquidityConfig
) -> pd.Series:
    growth = levels / levels.shift(config.yoy_months) - 1.0
    accel = growth - growth.shift(config.accel_months)
    vote = np.where(
        growth <= config.growth_floor,
        0.0,
        np.where(accel >= 0.0, 1.0, config.decelerating_exposure),
    )
    return series_asof(frame, pd.Series(vote, index=levels.index).where(accel.notna()))
