from __future__ import annotations

import math

import msgspec
import pytest

from core.data.loaders import iter_bars
from core.engine.execution import BarFillModel, PaperBroker
from core.engine.portfolio import Portfolio
from core.errors import ConfigError
from core.model import Order, Side
from core.risk import (
    ACCEPTED,
    RiskCode,
    RiskLimits,
    RiskManager,
    RiskMode,
    flatten_orders,
)
from core.strategies.trend.ma_crossover import MACrossover, MACrossoverConfig

T0 = 1_700_000_000_000_000_000
SECOND = 1_000_000_000


def _order(qty: float, side: Side = Side.BUY, symbol: str = "AAPL", n: int = 0) -> Order:
    return Order(order_id=f"o{n}", symbol=symbol, side=side, quantity=qty, ts_event=T0)


def _check(
    manager: RiskManager,
    order: Order,
    *,
    price: float = 100.0,
    position: float = 0.0,
    gross: float | None = None,
    equity: float = 1e6,
    ts_ns: int = T0,
):
    gross = abs(position) * price if gross is None else gross
    return manager.check(
        order, price=price, position=position, gross_exposure=gross, equity=equity, ts_ns=ts_ns
    )


# ---------------------------------------------------------------- config


def test_default_limits_accept_any_well_formed_order():
    decision = _check(RiskManager(RiskLimits()), _order(1e9), price=1e6, position=1e9)
    assert decision is ACCEPTED


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"max_position": -1.0}, "max_position must be a finite number >= 0, was -1.0"),
        ({"max_gross_exposure": 0.0}, "max_gross_exposure must be a finite number > 0, was 0.0"),
        ({"max_order_quantity": math.nan}, "max_order_quantity must be a finite number > 0"),
        ({"max_order_notional": math.inf}, "max_order_notional must be a finite number > 0"),
        ({"max_orders_per_second": 0}, "max_orders_per_second must be within [1, 1000000], was 0"),
        ({"max_drawdown": 1.0}, "max_drawdown must be within (0, 1), was 1.0"),
        ({"max_drawdown": 0.0}, "max_drawdown must be within (0, 1), was 0.0"),
        ({"position_overrides": {"AAPL": -5.0}}, "position_overrides['AAPL'] must be"),
        ({"allowed_symbols": [" AAPL"]}, "allowed_symbols holds an invalid symbol ' AAPL'"),
        (
            {"allowed_symbols": ["AAPL"], "position_overrides": {"MSFT": 1.0}},
            "position_overrides names 'MSFT', not in allowed_symbols",
        ),
        ({"max_leverage": 2.0}, "max_leverage"),
        ({"max_order_quantity": "many"}, "max_order_quantity"),
    ],
)
def test_limits_reject_out_of_range_values_naming_them(changes, message):
    with pytest.raises(ConfigError, match="RiskLimits") as raised:
        RiskLimits.from_dict(changes)
    assert message in str(raised.value)


def test_limits_survive_a_json_round_trip():
    limits = RiskLimits(
        max_position=100.0,
        position_overrides={"MSFT": 10.0},
        max_gross_exposure=1e6,
        max_order_quantity=50.0,
        max_order_notional=1e5,
        max_orders_per_second=5,
        max_drawdown=0.2,
        allowed_symbols=("AAPL", "MSFT"),
    )
    decoded = RiskLimits.from_dict(msgspec.json.decode(msgspec.json.encode(limits)))
    assert decoded == limits
    assert decoded.position_limit("MSFT") == 10.0
    assert decoded.position_limit("AAPL") == 100.0
    assert RiskLimits().position_limit("AAPL") == math.inf


# ---------------------------------------------------------------- each limit at its boundary


BOUNDARY_CASES = [
    # (limits, order at the limit, order just past it, position, gross, code, reason)
    (
        {"max_order_quantity": 100.0},
        _order(100),
        _order(101),
        0.0,
        None,
        RiskCode.MAX_ORDER_QUANTITY,
        "order quantity 101 exceeds max_order_quantity 100 for AAPL",
    ),
    (
        {"max_order_notional": 10_000.0},
        _order(100),
        _order(101),
        0.0,
        None,
        RiskCode.MAX_ORDER_NOTIONAL,
        "order notional 10100 exceeds max_order_notional 10000 for AAPL",
    ),
    (
        {"max_position": 100.0},
        _order(40),
        _order(41),
        60.0,
        None,
        RiskCode.MAX_POSITION,
        "position 101 would exceed max_position 100 for AAPL",
    ),
    (
        {"max_position": 100.0},
        _order(40, Side.SELL),
        _order(41, Side.SELL),
        -60.0,
        None,
        RiskCode.MAX_POSITION,
        "position -101 would exceed max_position 100 for AAPL",
    ),
    (
        {"max_position": 100.0, "position_overrides": {"MSFT": 10.0}},
        _order(10, symbol="MSFT"),
        _order(11, symbol="MSFT"),
        0.0,
        None,
        RiskCode.MAX_POSITION,
        "position 11 would exceed max_position 10 for MSFT",
    ),
    (
        # 15 000 held in other symbols, so 50 more at 100 reaches the limit exactly.
        {"max_gross_exposure": 20_000.0},
        _order(50),
        _order(51),
        0.0,
        15_000.0,
        RiskCode.MAX_GROSS_EXPOSURE,
        "gross exposure 20100 would exceed max_gross_exposure 20000 (AAPL)",
    ),
]


@pytest.mark.parametrize(
    ("limits", "at_limit", "past_limit", "position", "gross", "code", "reason"), BOUNDARY_CASES
)
def test_each_limit_accepts_at_its_boundary_and_rejects_just_past_it(
    limits, at_limit, past_limit, position, gross, code, reason
):
    manager = RiskManager(RiskLimits.from_dict(limits))

    accepted = _check(manager, at_limit, position=position, gross=gross)
    rejected = _check(manager, past_limit, position=position, gross=gross)

    assert accepted is ACCEPTED
    assert (rejected.accepted, rejected.code, rejected.reason) == (False, code, reason)
    assert manager.rejected_by_code == {code: 1}
    assert manager.rejections[-1].reason == reason


def test_a_reducing_order_is_accepted_even_when_the_position_already_exceeds_the_limits():
    # Limits tightened below what is held: closing part of it must still be possible.
    manager = RiskManager(RiskLimits(max_position=100.0, max_order_quantity=10.0))

    decision = _check(manager, _order(50, Side.SELL), position=150.0)

    assert decision is ACCEPTED


def test_a_flip_that_shrinks_the_position_is_judged_by_order_size_not_position_limit():
    manager = RiskManager(RiskLimits(max_position=100.0, max_order_quantity=250.0))

    shrinking_flip = _check(manager, _order(200, Side.SELL), position=150.0)  # 150 -> -50
    growing_flip = _check(manager, _order(250, Side.SELL), position=120.0)  # 120 -> -130

    assert shrinking_flip is ACCEPTED
    assert growing_flip.code == RiskCode.MAX_POSITION
    assert growing_flip.reason == "position -130 would exceed max_position 100 for AAPL"


# ---------------------------------------------------------------- order rate


def test_order_rate_is_limited_over_a_sliding_one_second_window_of_event_time():
    manager = RiskManager(RiskLimits(max_orders_per_second=3))
    times = {
        0.0: True,
        0.1: True,
        0.2: True,
        0.999999999: False,  # a 4th order inside (t-1 s, t]
        1.0: True,  # the order at 0.0 has just left the window
        1.05: False,  # 0.1, 0.2 and 1.0 are inside
        1.1: True,
    }

    decisions = {
        t: _check(manager, _order(1, n=i), ts_ns=T0 + round(t * SECOND))
        for i, t in enumerate(times)
    }

    assert {t: d.accepted for t, d in decisions.items()} == times
    assert decisions[0.999999999].code == RiskCode.ORDER_RATE
    assert decisions[0.999999999].reason == (
        "4 orders within 1 s would exceed max_orders_per_second 3 (AAPL)"
    )
    assert manager.rejected_by_code == {RiskCode.ORDER_RATE: 2}


# ---------------------------------------------------------------- kill switch


def test_drawdown_past_the_limit_halts_and_flattens_every_open_position():
    manager = RiskManager(RiskLimits(max_drawdown=0.2))
    positions = {"MSFT": -3.0, "AAPL": 2.0, "IBM": 0.0}

    assert manager.on_equity(100.0, T0, positions) == ()
    assert manager.on_equity(80.0, T0 + 1, positions) == ()  # exactly 0.2: still allowed
    assert manager.mode is RiskMode.NORMAL
    flatten = manager.on_equity(74.7, T0 + 2, positions)

    assert manager.mode is RiskMode.HALTED
    assert manager.halt_reason == "halted: drawdown 0.253 exceeded max_drawdown 0.2"
    assert [(o.order_id, o.symbol, o.side, o.quantity) for o in flatten] == [
        (f"flatten-AAPL-{T0 + 2}", "AAPL", Side.SELL, 2.0),
        (f"flatten-MSFT-{T0 + 2}", "MSFT", Side.BUY, 3.0),
    ]
    assert manager.on_equity(70.0, T0 + 3, positions) == ()  # flattened once, not per event


def test_a_halted_manager_rejects_opening_orders_and_accepts_the_flattening_ones():
    manager = RiskManager(RiskLimits(max_drawdown=0.2, max_order_quantity=1.0))
    positions = {"AAPL": 2.0, "MSFT": -3.0}
    manager.on_equity(100.0, T0, positions)
    flatten = manager.on_equity(74.7, T0 + 1, positions)

    opening = _check(manager, _order(1, Side.BUY), position=2.0, equity=74.7)
    closing = [
        _check(manager, o, position=positions[o.symbol], equity=74.7, ts_ns=T0 + 2) for o in flatten
    ]

    assert (opening.accepted, opening.code) == (False, RiskCode.HALTED)
    assert opening.reason == "halted: drawdown 0.253 exceeded max_drawdown 0.2"
    assert all(d is ACCEPTED for d in closing)  # even past max_order_quantity: they only reduce


def test_the_kill_switch_also_trips_from_the_equity_given_to_a_check():
    manager = RiskManager(RiskLimits(max_drawdown=0.1))
    _check(manager, _order(1), equity=1000.0)

    decision = _check(manager, _order(1), equity=899.0)

    assert decision.code == RiskCode.HALTED
    assert manager.mode is RiskMode.HALTED


def test_resume_after_a_halt_measures_drawdown_from_the_next_equity():
    manager = RiskManager(RiskLimits(max_drawdown=0.2))
    manager.on_equity(100.0, T0, {})
    manager.on_equity(70.0, T0 + 1, {})

    manager.resume()
    after = manager.on_equity(70.0, T0 + 2, {"AAPL": 1.0})

    assert after == ()
    assert manager.mode is RiskMode.NORMAL
    assert manager.peak_equity == 70.0
    assert _check(manager, _order(1), equity=70.0) is ACCEPTED


def test_flatten_orders_are_deterministic_and_skip_flat_and_non_finite_positions():
    positions = {"B": 1.5, "A": -2.0, "C": 0.0, "D": math.nan}

    first = flatten_orders(positions, T0)

    assert first == flatten_orders(dict(reversed(positions.items())), T0)
    assert [(o.order_id, o.side, o.quantity, o.strategy) for o in first] == [
        (f"flatten-A-{T0}", Side.BUY, 2.0, "risk"),
        (f"flatten-B-{T0}", Side.SELL, 1.5, "risk"),
    ]


# ---------------------------------------------------------------- reduce-only


@pytest.mark.parametrize(
    ("side", "qty", "position", "reason"),
    [
        (Side.SELL, 1.0, 2.0, None),
        (Side.SELL, 2.0, 2.0, None),
        (Side.BUY, 2.0, -2.0, None),
        (Side.BUY, 1.0, 2.0, "reduce-only: order would increase |position| from 2 to 3"),
        (Side.SELL, 3.0, 2.0, "reduce-only: order would flip position from 2 to -1"),
        (Side.BUY, 1.0, 0.0, "reduce-only: order would increase |position| from 0 to 1"),
        (Side.SELL, 1.0, -2.0, "reduce-only: order would increase |position| from 2 to 3"),
    ],
)
def test_reduce_only_accepts_reducing_orders_and_rejects_increasing_or_flipping_ones(
    side, qty, position, reason
):
    manager = RiskManager(RiskLimits())
    manager.set_reduce_only()

    decision = _check(manager, _order(qty, side), position=position)

    if reason is None:
        assert decision is ACCEPTED
    else:
        assert (decision.accepted, decision.code, decision.reason) == (
            False,
            RiskCode.REDUCE_ONLY,
            reason,
        )


def test_resume_lifts_reduce_only():
    manager = RiskManager(RiskLimits())
    manager.set_reduce_only()
    manager.resume()

    assert _check(manager, _order(1), position=2.0) is ACCEPTED


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("order", "inputs", "code", "reason"),
    [
        (_order(1), {"price": math.nan}, RiskCode.BAD_PRICE, "price is NaN for AAPL"),
        (_order(1), {"price": math.inf}, RiskCode.BAD_PRICE, "price is inf for AAPL"),
        (_order(1), {"price": -1.0}, RiskCode.BAD_PRICE, "price must be > 0, was -1 for AAPL"),
        (_order(-3), {}, RiskCode.BAD_QUANTITY, "negative quantity -3 for AAPL"),
        (_order(0), {}, RiskCode.BAD_QUANTITY, "zero quantity for AAPL"),
        (_order(math.nan), {}, RiskCode.BAD_QUANTITY, "quantity is NaN for AAPL"),
        (_order(1, symbol="ZZZ"), {}, RiskCode.UNKNOWN_SYMBOL, "unknown symbol 'ZZZ'"),
        (_order(1, symbol=""), {}, RiskCode.UNKNOWN_SYMBOL, "unknown symbol ''"),
        (_order(1), {"position": math.nan}, RiskCode.BAD_STATE, "position is NaN for AAPL"),
        (_order(1), {"equity": math.nan}, RiskCode.BAD_STATE, "equity is NaN for AAPL"),
    ],
)
def test_bad_input_is_rejected_and_recorded_without_disturbing_state(order, inputs, code, reason):
    # A one-order-per-second limit and a drawdown switch: had the bad order touched the rate
    # window or the equity peak, the valid order after it would be refused.
    manager = RiskManager(
        RiskLimits(max_orders_per_second=1, max_drawdown=0.1, allowed_symbols=("AAPL", "MSFT"))
    )
    manager.on_equity(1000.0, T0, {})
    before = manager.stats()

    decision = _check(manager, order, equity=inputs.pop("equity", 1000.0), **inputs)
    valid = _check(manager, _order(1, n=1), equity=1000.0)

    assert (decision.accepted, decision.code, decision.reason) == (False, code, reason)
    assert [(r.order_id, r.code, r.reason) for r in manager.rejections] == [("o0", code, reason)]
    assert manager.rejected_by_code == {code: 1}
    assert valid is ACCEPTED
    assert manager.peak_equity == before["peak_equity"]
    assert manager.mode is RiskMode.NORMAL


def test_the_rejection_log_is_bounded_while_the_counters_keep_counting():
    manager = RiskManager(RiskLimits(max_order_quantity=1.0), log_size=2)

    for n in range(3):
        _check(manager, _order(5, n=n))

    assert [r.order_id for r in manager.rejections] == ["o1", "o2"]
    assert manager.stats()["rejected"] == 3


# ---------------------------------------------------------------- real data replay


UNITS = 100.0
GROSS_LIMIT = 14_000.0


def test_an_ma_crossover_order_flow_over_real_aapl_bars_never_breaches_the_limits(aapl_bars):
    limits = RiskLimits(
        max_position=UNITS,
        max_order_quantity=UNITS,
        max_order_notional=20_000.0,
        max_gross_exposure=GROSS_LIMIT,
        max_orders_per_second=1,
        max_drawdown=0.5,
        allowed_symbols=("AAPL",),
    )
    manager = RiskManager(limits)
    strategy = MACrossover(MACrossoverConfig(fast_period=10, slow_period=30), "AAPL")
    broker, portfolio = PaperBroker(BarFillModel()), Portfolio(20_000.0)
    positions: dict[str, float] = {}
    signals, accepted_after = [], []

    for bar in iter_bars(aapl_bars, "AAPL"):
        fill = broker.on_bar_open(bar)
        if fill is not None:
            portfolio.apply_fill(fill)
        portfolio.mark("AAPL", bar.close)
        held = positions["AAPL"] = portfolio.quantity("AAPL")
        assert abs(held) <= UNITS
        assert manager.on_equity(portfolio.equity, bar.ts_event, positions) == ()
        signal = strategy.update(bar)
        if signal is None:
            continue
        signals.append((bar.ts_event, bar.close, signal.target_position))
        order = broker.submit("AAPL", signal.target_position * UNITS - held, bar.ts_event)
        if order is None:
            continue
        decision = manager.check(
            order,
            price=bar.close,
            position=held,
            gross_exposure=abs(held) * bar.close,
            equity=portfolio.equity,
            ts_ns=bar.ts_event,
        )
        if decision.accepted:
            after = held + (order.quantity if order.side is Side.BUY else -order.quantity)
            accepted_after.append((abs(after), abs(after) * bar.close))
        else:
            broker.submit("AAPL", 0.0, bar.ts_event)  # cancel: the position stays as it was

    # Long-only: every buy opens 100 shares from flat, so it is refused exactly when 100 shares
    # at that close would be worth more than the gross limit.
    expected = {
        f"AAPL-{ts}" for ts, close, t in signals if t == 1.0 and UNITS * close > GROSS_LIMIT
    }
    assert expected  # the real 2017 prices do reach the limit
    assert {r.order_id.rpartition("-")[0] for r in manager.rejections} == expected
    assert set(manager.rejected_by_code) == {RiskCode.MAX_GROSS_EXPOSURE}
    assert accepted_after and all(
        size <= UNITS and gross <= GROSS_LIMIT for size, gross in accepted_after
    )
    assert manager.mode is RiskMode.NORMAL


def test_the_benchmark_runs_checks_over_real_aapl_orders():
    from benchmarks.bench_risk import measure_risk_checks

    result = measure_risk_checks(n=5_000)

    assert result["checks"] == 5_000
    assert result["accepted"] + sum(result["rejected_by_code"].values()) == 5_000
    assert result["accepted"] > 0 and result["rejected_by_code"]
    print(f"risk checks per second (n=5000): {result['checks_per_second']:,.0f}")
