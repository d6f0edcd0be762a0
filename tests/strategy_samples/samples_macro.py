"""Macro samples: FRED monthly figures and Treasury yields merged with daily SPY bars (LEAN), and
the S&P 500 index (skfolio) as close-only bars."""

from __future__ import annotations

from functools import cache

from core.data.loaders import iter_bars
from core.data.macro import (
    between,
    fred_series,
    iter_macro_events,
    lean_daily_bars,
    macro_event_frame,
    sp500_index_bars,
    treasury_curve,
    treasury_points,
)
from tests.strategy_samples import StrategySample


@cache
def _events(series: tuple[str, ...], tenors: tuple[str, ...], start: str, end: str) -> tuple:
    macro = [between(fred_series(s).frame, start, end) for s in series]
    if tenors:
        macro.append(between(treasury_points(treasury_curve().frame, tenors), start, end))
    bars = between(lean_daily_bars("SPY").frame, start, end)
    frame = macro_event_frame(macro, {"SPY": bars})
    return frame, list(iter_macro_events(frame))


def fed_policy() -> StrategySample:
    # The 2004-2006 hiking cycle and the 2007-2008 cuts: the stance must flip both ways.
    frame, events = _events(("FEDFUNDS",), ("2year",), "2003-07-01", "2008-01-01")
    return StrategySample(
        symbol="SPY",
        config={"rate_window": 6, "yield_window": 126, "tightening_threshold": 0.25},
        events=events,
        frame=frame,
        bad_config={"rate_window": 0},
        bad_message="rate_window must be in 1..120, was 0",
    )


def global_liquidity() -> StrategySample:
    frame, events = _events(("M2SL", "BOGMBASE"), (), "2005-01-01", "2011-01-01")
    return StrategySample(
        symbol="SPY",
        config={"yoy_months": 12, "accel_months": 3, "growth_floor": 0.0},
        events=events,
        frame=frame,
        bad_config={"decelerating_exposure": 1.5},
        bad_message="decelerating_exposure must be in \\[0, 1\\], was 1.5",
    )


def macro_trend() -> StrategySample:
    # 1998-2003 spans the 2000 inversion and the dot-com bear market.
    frame, events = _events((), ("3month", "10year"), "1998-01-01", "2003-07-01")
    return StrategySample(
        symbol="SPY",
        config={"sma_months": 10, "slope_floor": 0.0, "inverted_exposure": 0.5},
        events=events,
        frame=frame,
        bad_config={"sma_months": 1},
        bad_message="sma_months must be in 2..120, was 1",
    )


@cache
def _index(start: str, end: str) -> tuple:
    frame = between(sp500_index_bars(), start, end)
    return frame, list(iter_bars(frame, "SP500"))


def regime_shift() -> StrategySample:
    frame, events = _index("2005-01-01", "2010-01-01")
    return StrategySample(
        symbol="SP500",
        config={"fit_window": 500, "min_fit_samples": 250, "refit_every": 63},
        events=events,
        frame=frame,
        bad_config={"n_components": 2, "regime_exposure": [1.0, 0.5, 0.0]},
        bad_message="regime_exposure needs n_components=2 values, had 3",
    )


SAMPLES = {
    "fed_policy": fed_policy,
    "global_liquidity": global_liquidity,
    "macro_trend": macro_trend,
    "regime_shift": regime_shift,
}
