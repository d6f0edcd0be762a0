"""Risk is on wherever money could move: the core's defaults, the fat-finger band, kill switches.

The field report: with notional sizing, one bar at a close of 1e-6 became an order for 1e10
units, and the live core ran with every limit off. These tests run the real engine with the
limits a core applies by default (:meth:`RiskLimits.conservative`).
"""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.engine.engine import PositionSizing, TradingEngine
from core.engine.execution import BarFillModel
from core.engine.venue import Venue
from core.model import Bar
from core.ports import StrategyDeployment
from core.risk import RiskLimits, RiskManager
from core.runtime.service import CoreSettings

DAY = 86_400 * 10**9
T0 = 1_500_000_000 * 10**9
CAPITAL, NOTIONAL = 1_000_000.0, 10_000.0
LIMITS = RiskLimits.conservative(capital=CAPITAL, notional=NOTIONAL)


def _engine(limits: RiskLimits = LIMITS, **config) -> TradingEngine:
    deployment = StrategyDeployment(
        name="strategy.ma_crossover",
        version="1",
        type_name="ma_crossover",
        config={"fast_period": 3, "slow_period": 8, **config},
    )
    return TradingEngine(
        [deployment],
        venue=Venue(bars=BarFillModel(fee_bps=1.0)),
        initial_capital=CAPITAL,
        sizing=PositionSizing(notional=NOTIONAL),
        risk=RiskManager(limits),
        keep_history=True,
    )


def _bar(i: int, close: float, open_: float | None = None) -> Bar:
    o = close if open_ is None else open_
    return Bar(
        symbol="AAPL", ts_event=T0 + i * DAY, open=o, high=max(o, close), low=min(o, close),
        close=close, volume=1e6,
    )  # fmt: skip


def test_a_core_without_explicit_limits_runs_the_conservative_ones():
    settings = CoreSettings()

    limits = settings.risk_limits()

    assert limits == RiskLimits.conservative(capital=settings.capital, notional=settings.notional)
    assert limits.max_order_notional == 10 * settings.notional
    assert limits.max_drawdown == 0.2 and limits.max_daily_loss == 0.1
    assert limits.price_band == 0.5


def test_a_bar_at_1e_minus_6_cannot_make_an_oversized_order_fill():
    # Rising prices, then one bar at 1e-6 that turns a shortable crossover short: the
    # decision sizes 10,000 / 1e-6 = 1e10 units. The next bar opens at a real price again.
    bars = [_bar(i, 100.0 + i) for i in range(12)]
    bars += [_bar(12, 1e-6), _bar(13, 112.0), _bar(14, 113.0)]
    engine = _engine(allow_short=True)

    engine.run(bars)

    decided = [o for o in engine.risk.rejections if o.code == "price_band"]
    assert decided, "the oversized order was decided and then refused at execution"
    assert all(abs(f.quantity) * f.price <= 10 * NOTIONAL * 1.5 for f in engine.all_fills)
    assert abs(engine.portfolio.quantity("AAPL")) * 113.0 <= 10 * NOTIONAL * 1.5
    # Without limits, as the core ran before, the same bars buy the 1e10-unit position.
    unguarded = _engine(RiskLimits(), allow_short=True)
    unguarded.run(bars)
    assert max(abs(f.quantity) for f in unguarded.all_fills) >= 1e9


def test_a_daily_loss_beyond_the_limit_halts_and_flattens():
    limits = RiskLimits.conservative(capital=CAPITAL, notional=NOTIONAL).replace(
        max_daily_loss=0.001, max_drawdown=None
    )
    engine = _engine(limits)
    bars = [_bar(i, 100.0 + i) for i in range(12)]  # long from the crossover on
    # The same day, three events: the last marks a loss of more than 0.1% of the day's equity.
    day = T0 + 12 * DAY
    crash = [
        Bar(symbol="AAPL", ts_event=day + k, open=p, high=p, low=p, close=p, volume=1e6)
        for k, p in enumerate((112.0, 111.0, 60.0))
    ]

    engine.run([*bars, *crash, _bar(13, 61.0)])

    assert str(engine.risk.mode) == "halted" and "daily loss" in engine.risk.halt_reason
    assert engine.portfolio.quantity("AAPL") == 0.0


def test_halt_with_flatten_closes_everything_and_resume_trades_again():
    engine = _engine()
    bars = [_bar(i, 100.0 + i) for i in range(12)]
    engine.run(bars[:11])
    assert engine.portfolio.quantity("AAPL") > 0

    engine.halt("operator", flatten=True)
    engine.run([bars[11]])  # the flatten order fills at this open

    assert engine.portfolio.quantity("AAPL") == 0.0
    # Halted, the next signals open nothing; resumed, they trade again.
    down = [_bar(12 + i, 110.0 - 2 * i) for i in range(10)]
    up = [_bar(22 + i, 95.0 + 3 * i) for i in range(10)]
    engine.run(down)
    engine.resume()
    engine.run(up)
    assert engine.portfolio.quantity("AAPL") > 0


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.floats(min_value=1e-6, max_value=1e6, allow_nan=False), min_size=10, max_size=60),
    st.lists(st.floats(min_value=0.5, max_value=2.0), min_size=60, max_size=60),
)
def test_on_any_prices_no_fill_that_adds_risk_exceeds_the_order_bound(closes, gaps):
    """Whatever the prices (within the ingestion boundary's ranges), every fill that opens
    or grows a position is within max_order_notional at a price within the band."""
    bars = [_bar(i, c, open_=c * gaps[i]) for i, c in enumerate(closes)]
    engine = _engine(allow_short=True)

    engine.run(bars)

    held = 0.0
    bound = LIMITS.max_order_notional * (1 + LIMITS.price_band)  # type: ignore[operator]
    for fill in engine.all_fills:
        after = held + fill.signed_quantity
        if abs(after) > abs(held) or after * held < 0:
            assert fill.quantity * fill.price <= bound + 1e-6, fill
        held = after
    assert all(math.isfinite(f.price) for f in engine.all_fills)


def test_limits_that_make_no_sense_are_refused():
    with pytest.raises(ValueError, match="price_band must be within"):
        RiskLimits(price_band=1.5)
    with pytest.raises(ValueError, match="max_daily_loss must be within"):
        RiskLimits(max_daily_loss=0.0)
    with pytest.raises(ValueError, match="capital must be a finite number"):
        RiskLimits.conservative(capital=float("nan"), notional=1.0)
