"""Fed policy: a tightening score from the Fed funds rate and the 2-year yield sets risk-on/off.

Rule: ``score = Δ rate + Δ yield`` in percentage points, where Δ rate is the change of the
monthly Fed funds figure over ``rate_window`` publications and Δ yield the change of the daily
2-year Treasury yield over ``yield_window`` observations. ``score > tightening_threshold`` is
risk-off (policy is tightening), otherwise risk-on. The equity leg (``asset="equity"``, e.g. SPY)
holds 1 when risk-on and 0 when risk-off; the bond leg (``asset="bond"``, e.g. IEF) the reverse.
The yield term counts only while the latest yield is at most ``max_yield_age_days`` old (a
stopped feed is not a frozen signal); ``reason["yield_used"]`` says whether it did.

Events: :class:`MacroPoint` (the two series; anything else is ignored) and the traded symbol's
:class:`Bar`; decisions are taken at bars. Frame: the event frame of
:func:`core.data.macro.macro_event_frame` (columns ``ts_event, kind, series, value,
period_start, symbol, open, high, low, close, volume``; one symbol's bars), output NaN on macro
rows. Timing: a bar stamped D is D's close; macro points are stamped at publication and
precede bars of the same stamp.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Literal

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
    series_asof,
    series_rows,
    series_values,
)


class FedPolicyConfig(StrategyConfig, frozen=True, kw_only=True):
    aliases: ClassVar[dict[str, str]] = {"threshold": "tightening_threshold"}

    rate_series: str = "FEDFUNDS"
    yield_series: str = "DGS2"
    rate_window: int = 6
    yield_window: int = 126
    tightening_threshold: float = 0.25
    max_yield_age_days: int = 7
    asset: Literal["equity", "bond"] = "equity"

    def __post_init__(self) -> None:
        require(
            1 <= self.rate_window <= 120, f"rate_window must be in 1..120, was {self.rate_window}"
        )
        require(
            1 <= self.yield_window <= 2520,
            f"yield_window must be in 1..2520, was {self.yield_window}",
        )
        require(
            math.isfinite(self.tightening_threshold) and abs(self.tightening_threshold) <= 10.0,
            f"tightening_threshold must be within ±10 points, was {self.tightening_threshold}",
        )
        require(
            self.max_yield_age_days >= 0,
            f"max_yield_age_days must be >= 0, was {self.max_yield_age_days}",
        )
        require(
            self.rate_series != self.yield_series,
            f"rate_series and yield_series must differ, both were {self.rate_series!r}",
        )


class _FedPolicyState(StrategyState):
    rates: dict[str, Any]  # the rings' own states
    yields: dict[str, Any]
    yield_ts: int
    yield_seen: bool


@register
class FedPolicy(Strategy[FedPolicyConfig]):
    """Risk-off while the rate and the 2-year yield have risen by more than a threshold."""

    spec = StrategySpec(
        name="fed_policy",
        family=Family.NEWS_DRIVEN,
        tier=Tier.STRATEGIC,
        data_kind=DataKind.MACRO,
        summary=(
            "Changes in the fed funds rate and the 2-year Treasury yield over a window set a "
            "risk-on/off stance for equities versus bonds."
        ),
        dataset="macro_fred_monetary",
    )
    config_type = FedPolicyConfig

    def __init__(self, config: FedPolicyConfig, symbol: str, *, name: str | None = None) -> None:
        super().__init__(config, symbol, name=name)
        self._rates = Ring(config.rate_window + 1)
        self._yields = Ring(config.yield_window + 1)
        self._yield_ts = 0
        self._yield_seen = False

    @property
    def warmup(self) -> int:
        # rate_window + 1 rate figures and one bar, at the very least.
        return self.config.rate_window + 2

    def update(self, event: MacroPoint | Bar) -> Signal | None:
        if isinstance(event, MacroPoint):
            self._on_macro(event)
            return None
        if event.symbol != self.symbol or not self._rates.full:
            return None
        return self._decide(event)

    def _on_macro(self, point: MacroPoint) -> None:
        if point.series == self.config.rate_series:
            self._rates.push(point.value)
        elif point.series == self.config.yield_series:
            self._yields.push(point.value)
            self._yield_ts = point.ts_event
            self._yield_seen = True

    def _decide(self, bar: Bar) -> Signal | None:
        cfg = self.config
        rate_change = self._rates.newest - self._rates.oldest
        fresh = (
            self._yield_seen and bar.ts_event - self._yield_ts <= cfg.max_yield_age_days * DAY_NS
        )
        used = fresh and self._yields.full
        yield_change = self._yields.newest - self._yields.oldest if used else 0.0
        score = rate_change + yield_change
        risk_off = score > cfg.tightening_threshold
        target = float(risk_off) if cfg.asset == "bond" else float(not risk_off)
        reason = {
            "score": score,
            "rate_change": rate_change,
            "yield_change": yield_change,
            "yield_used": float(used),
            "risk_off": float(risk_off),
        }
        return self._emit(bar.ts_event, target, abs(score - cfg.tightening_threshold), reason)

    def to_state(self) -> dict[str, Any]:
        saved = _FedPolicyState(
            rates=self._rates.to_state(),
            yields=self._yields.to_state(),
            yield_ts=self._yield_ts,
            yield_seen=self._yield_seen,
        )
        return {**self._base_state(), **saved.to_dict()}

    def restore(self, state: dict[str, Any]) -> None:
        saved = _FedPolicyState.from_dict(state)
        self._restore_base(state)
        self._rates.restore(saved.rates)
        self._yields.restore(saved.yields)
        self._yield_ts = saved.yield_ts
        self._yield_seen = saved.yield_seen

    @classmethod
    def vectorized(cls, config: FedPolicyConfig, frame: pd.DataFrame) -> pd.Series:
        bars = bar_rows(frame)
        rates = series_values(frame, config.rate_series)
        yields = series_values(frame, config.yield_series)
        rate_change = series_asof(frame, rates - rates.shift(config.rate_window))
        yield_change = series_asof(frame, yields - yields.shift(config.yield_window))
        is_yield = series_rows(frame, config.yield_series)
        fresh = fresh_since(
            frame["ts_event"].to_numpy(np.int64), is_yield, config.max_yield_age_days * DAY_NS
        )
        used = fresh & yield_change.notna().to_numpy()
        score = rate_change + pd.Series(np.where(used, yield_change, 0.0), index=frame.index)
        risk_off = (score > config.tightening_threshold).to_numpy()
        target = risk_off if config.asset == "bond" else ~risk_off
        out = pd.Series(target.astype("float64"), index=frame.index)
        return out.where(bars & rate_change.notna().to_numpy())
