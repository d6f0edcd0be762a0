"""The adaptation engine's rules and bounds, and the core applying a weights message."""

from __future__ import annotations

import math

import pytest

from core.data.loaders import iter_bars
from core.engine.engine import TradingEngine
from core.errors import ConfigError, MessageError
from core.ports import StrategyDeployment
from core.risk import RiskMode
from core.runtime.control import ControlInbox, WeightLimits, apply_control, current_weights
from core.runtime.control_signing import ControlVerifier, sign_control
from core.strategies.trend.breakout import Breakout, BreakoutConfig
from core.strategies.trend.ma_crossover import MACrossover, MACrossoverConfig
from pipelines.adaptation import (
    AdaptationBounds,
    AdaptationEngine,
    Context,
    Performance,
    StrategyBounds,
    apply_changes,
    default_bounds,
    performance_from_status,
    plan_adaptation,
    weights_from_status,
)

TREND, REVERSION, CARRY = "strategy.breakout", "strategy.mean_reversion", "strategy.funding_rate"
CALM = Context(turbulent_probability=0.01, regime="calm", macro_stance="risk_on")
TURBULENT = Context(turbulent_probability=0.99, regime="turbulent", macro_stance="risk_on")


def _bounds(**overrides: object) -> AdaptationBounds:
    strategies = {
        TREND: StrategyBounds(
            min_weight=0.2, max_weight=1.5, max_step=0.2, style="trend_following"
        ),
        REVERSION: StrategyBounds(max_weight=1.3, max_step=0.5, style="mean_reversion"),
        CARRY: StrategyBounds(equity=False),
    }
    return AdaptationBounds(strategies=strategies, **overrides)  # type: ignore[arg-type]


def _weights(changes: list, start: dict[str, float]) -> dict[str, float]:
    return apply_changes(start, {}, changes)[0]


def test_a_turbulent_regime_scales_trend_following_down_and_mean_reversion_up():
    engine = AdaptationEngine(_bounds())

    changes = engine.adapt({TREND: 1.0, REVERSION: 1.0, CARRY: 1.0}, TURBULENT, {})

    by_name = {c.strategy: c for c in changes}
    assert by_name[TREND].new < 1.0 < by_name[REVERSION].new
    assert CARRY not in by_name  # neither trend nor mean reversion: the regime leaves it
    assert "turbulent regime" in by_name[TREND].why and "trend_following" in by_name[TREND].why


def test_weights_never_leave_their_bounds_nor_move_more_than_a_step_per_run():
    bounds = _bounds()
    engine = AdaptationEngine(bounds)
    losing = {TREND: Performance(sharpe=-3.0, periods=250)}
    weights = {TREND: 1.0, REVERSION: 1.0, CARRY: 1.0}
    context = Context(turbulent_probability=0.99, macro_stance="risk_off")

    for _ in range(10):  # the flow runs every minute in the same conditions
        changes = engine.adapt(weights, context, losing)
        for change in changes:
            limits = bounds.strategies[change.strategy]
            assert limits.min_weight <= change.new <= limits.max_weight
            assert abs(change.new - change.old) <= limits.max_step + 1e-12
        weights = _weights(changes, weights)

    # 1.0 x 0.5 (turbulent) x 0.5 (losing) x 0.5 (risk-off) = 0.125, clamped to the 0.2 floor.
    assert weights[TREND] == pytest.approx(0.2)
    # 1.0 x 1.5 (turbulent) x 0.5 (risk-off) = 0.75; the carry trade holds no equity exposure.
    assert weights[REVERSION] == pytest.approx(0.75)
    assert weights[CARRY] == 1.0
    assert engine.adapt(weights, context, losing) == []  # converged: nothing left to change


def test_the_mean_reversion_boost_is_clamped_to_its_maximum_weight():
    engine = AdaptationEngine(_bounds())

    (change,) = [
        c for c in engine.adapt({REVERSION: 1.0}, TURBULENT, {}) if c.strategy == REVERSION
    ]

    assert change.new == 1.3  # 1.5 wanted, 1.3 allowed
    assert "clamped to [0, 1.3]" in change.why


def test_a_strategy_with_a_sharpe_below_the_floor_loses_weight_and_a_winner_keeps_it():
    engine = AdaptationEngine(_bounds(sharpe_floor=-0.5, min_periods=20))
    performance = {
        TREND: Performance(sharpe=-1.4, periods=60),
        REVERSION: Performance(sharpe=0.8, periods=60),
    }

    changes = engine.adapt({TREND: 1.0, REVERSION: 1.0, CARRY: 1.0}, CALM, performance)

    (change,) = changes
    assert (change.strategy, change.what, change.old, change.new) == (TREND, "weight", 1.0, 0.8)
    assert "recent Sharpe -1.40 < -0.5 over 60 periods" in change.why


def test_too_short_a_track_record_is_not_judged():
    engine = AdaptationEngine(_bounds(min_periods=20))

    changes = engine.adapt({TREND: 1.0}, CALM, {TREND: Performance(sharpe=-5.0, periods=5)})

    assert [c for c in changes if c.strategy == TREND] == []


def test_macro_risk_off_or_bearish_news_reduces_only_equity_exposed_strategies():
    engine = AdaptationEngine(_bounds())
    weights = {TREND: 1.0, REVERSION: 1.0, CARRY: 1.0}

    by_macro = engine.adapt(weights, Context(macro_stance="risk_off"), {})
    by_news = engine.adapt(weights, Context(market_sentiment=-0.45), {})

    for changes, cause in ((by_macro, "macro stance risk_off"), (by_news, "sentiment -0.45")):
        assert {c.strategy for c in changes} == {TREND, REVERSION}
        assert all(c.new < c.old and cause in c.why for c in changes)


def _with_params(bounds: AdaptationBounds, params: dict[str, dict]) -> AdaptationBounds:
    raw = bounds.to_dict()
    raw["strategies"][TREND]["params"] = params
    return AdaptationBounds.from_dict(raw)


def test_every_change_records_what_old_new_and_why():
    params = {"entry_period": {"min": 10, "max": 60, "base": 20, "turbulent": 40, "max_step": 15}}
    engine = AdaptationEngine(_with_params(_bounds(), params))

    found = engine.adapt({TREND: 1.0}, TURBULENT, {}, {TREND: {"entry_period": 20.0}})

    changes = [c for c in found if c.strategy == TREND]

    assert [(c.what, c.old, c.new) for c in changes] == [
        ("weight", 1.0, 0.8),
        ("param:entry_period", 20.0, 35.0),
    ]
    for change in changes:
        record = change.to_dict()
        assert set(record) == {"strategy", "what", "old", "new", "why"}
        assert record["why"]
    assert "step limited to 15" in changes[1].why


def test_after_the_turbulence_weights_and_parameters_return_toward_their_base():
    params = {"entry_period": {"min": 10, "max": 60, "base": 20, "turbulent": 40}}
    engine = AdaptationEngine(_with_params(_bounds(), params))

    found = engine.adapt({TREND: 0.5}, CALM, {}, {TREND: {"entry_period": 40.0}})

    changes = [c for c in found if c.strategy == TREND]

    assert [(c.what, c.old, c.new) for c in changes] == [
        ("weight", 0.5, 0.7),
        ("param:entry_period", 40.0, 20.0),
    ]
    assert "no adverse condition" in changes[0].why


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"strategies": {TREND: {"min_weight": 0.8, "max_weight": 0.5}}}, "was 0.8 > 0.5"),
        ({"strategies": {TREND: {"max_step": -0.1}}}, "max_step must be > 0, was -0.1"),
        ({"strategies": {TREND: {"max_weight": math.inf}}}, "max_weight must be finite, was inf"),
        ({"strategies": {TREND: {"base_weight": 3.0}}}, "within [0.0, 2.0], was 3.0"),
        ({"strategies": {TREND: {"style": "momentum"}}}, "'momentum'"),
        ({"strategies": {TREND: {"weight": 1.0}}}, "unknown field `weight`"),
        ({"strategies": {}}, "name no strategy"),
        ({"strategies": {TREND: {}}, "turbulent_probability": 1.5}, "was 1.5"),
        (
            {"strategies": {TREND: {"params": {"window": {"min": 5, "max": 50, "base": 80}}}}},
            "strategies.strategy.breakout.params.window.base must be within [5.0, 50.0], was 80",
        ),
    ],
)
def test_invalid_bounds_are_refused_with_a_message_naming_the_value(raw, message):
    with pytest.raises(ConfigError) as caught:
        AdaptationBounds.from_dict(raw)

    assert message in str(caught.value)


def test_default_bounds_style_strategies_by_their_catalogue_family():
    bounds = default_bounds([TREND, REVERSION, CARRY, "strategy.pairs_trading", "strategy.unknown"])

    styles = {n: (b.style, b.equity) for n, b in bounds.strategies.items()}
    assert styles == {
        TREND: ("trend_following", True),
        REVERSION: ("mean_reversion", True),
        CARRY: ("other", False),
        "strategy.pairs_trading": ("mean_reversion", False),
        "strategy.unknown": ("other", False),
    }


def test_performance_is_read_from_per_strategy_rows_and_malformed_rows_are_skipped():
    status = {
        "per_strategy": [
            {"strategy": TREND, "sharpe": -1.2, "periods": 40},
            {"strategy": REVERSION, "sharpe": "high", "periods": 40},
            "not a row",
        ]
    }

    assert performance_from_status(status) == {TREND: Performance(sharpe=-1.2, periods=40)}
    assert performance_from_status({"core": "core-1"}) == {}


def test_weights_are_read_from_the_per_strategy_rows_a_core_publishes_before_older_forms():
    rows = {"per_strategy": [{"strategy": TREND, "weight": 0.8}, {"strategy": REVERSION}]}
    previous = {"weights": {TREND: 0.3, REVERSION: 0.4}}
    active = {"active_set": [{"name": TREND, "weight": 0.6}, {"name": REVERSION}]}

    assert weights_from_status(rows, previous) == {TREND: 0.8}
    assert weights_from_status({"weights": {TREND: 0.7}, **rows}, previous) == {TREND: 0.7}
    assert weights_from_status(active, previous) == {TREND: 0.3, REVERSION: 0.4}
    assert weights_from_status(active, None) == {TREND: 0.6, REVERSION: 1.0}


def test_a_status_that_is_not_what_a_core_publishes_fails_the_plan_naming_the_field():
    hand_written = {"core": "core-1", "per_strategy": [{"strategy": TREND, "sharpe": -1.5}]}

    with pytest.raises(MessageError, match="status:core-1 does not match its contract"):
        plan_adaptation({"status": hand_written}, None, "core-1")


# --- the core side: apply_control on a real engine ------------------------------------------

MA, BREAKOUT = "strategy.ma_crossover", "strategy.breakout"


def _engine() -> TradingEngine:
    return TradingEngine(
        [
            StrategyDeployment(name=MA, version="1", type_name="ma_crossover", config={}),
            StrategyDeployment(name=BREAKOUT, version="3", type_name="breakout", config={}),
        ]
    )


def test_a_weights_message_sets_the_weights_the_composer_trades_with(aapl_bars):
    engine = _engine()

    outcome = apply_control(engine, {"action": "weights", "weights": {MA: 0.5}, "changes": []})
    engine.run(iter_bars(aapl_bars, "AAPL"))

    assert outcome == f"applied weights to 1 strategies: {MA} 1->0.5"
    assert current_weights(engine) == {MA: 0.5, BREAKOUT: 1.0}
    # One unit per +1: the AAPL target is the weighted sum of each strategy's last target.
    ma_last = MACrossover.vectorized(MACrossoverConfig(), aapl_bars).iloc[-1]
    breakout_last = Breakout.vectorized(BreakoutConfig(), aapl_bars).iloc[-1]
    assert engine.composer.target("AAPL") == pytest.approx(0.5 * ma_last + breakout_last)


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (
            {"action": "weights", "weights": {MA: 2.5}},
            f"weight of '{MA}' must be within [0, 2], was 2.5",
        ),
        ({"action": "weights", "weights": {MA: -0.1}}, "was -0.1"),
        ({"action": "weights", "weights": {MA: float("nan")}}, "must be finite, was nan"),
        (
            {"action": "weights", "weights": {MA: "0.5"}},
            f"weight of '{MA}' must be a number, was '0.5'",
        ),
        ({"action": "weights", "weights": {MA: True}}, "must be a number, was True"),
        (
            {"action": "weights", "weights": {"strategy.ghost": 0.5}},
            "'strategy.ghost' is not in the active set",
        ),
        ({"action": "weights", "weights": {}}, "'weights' must be a non-empty object"),
        ({"action": "weights", "weights": [0.5]}, "was [0.5]"),
        ({"action": "weights"}, "was None"),
    ],
)
def test_an_out_of_bounds_or_malformed_message_is_refused_with_a_reason(message, reason):
    engine = _engine()

    outcome = apply_control(engine, message)

    assert outcome.startswith("refused weights message: ")
    assert reason in outcome
    assert current_weights(engine) == {MA: 1.0, BREAKOUT: 1.0}


def test_one_bad_entry_refuses_the_whole_message():
    engine = _engine()

    outcome = apply_control(engine, {"action": "weights", "weights": {BREAKOUT: 0.3, MA: 2.5}})

    assert outcome.startswith("refused weights message: ")
    assert current_weights(engine) == {MA: 1.0, BREAKOUT: 1.0}  # not even the valid 0.3


def test_a_step_larger_than_the_core_allows_is_refused():
    engine = _engine()

    outcome = apply_control(
        engine, {"action": "weights", "weights": {MA: 0.2}}, WeightLimits(max_step=0.5)
    )

    assert outcome == (
        f"refused weights message: weight of '{MA}' may move by at most 0.5 per message, "
        "was 1 -> 0.2"
    )


def test_messages_that_are_not_weight_updates_are_ignored_or_refused():
    engine = _engine()

    assert apply_control(engine, {"action": "reload"}).startswith("ignored control message")
    assert apply_control(engine, [1, 2]) == (
        "refused control message: expected a JSON object, was list"
    )
    assert current_weights(engine) == {MA: 1.0, BREAKOUT: 1.0}


class _Records:
    def __init__(self) -> None:
        self.audit: list[dict] = []

    def audit_control(self, record: dict) -> None:
        self.audit.append(record)

    def dead_letter(self, source, reason, raw, *, key="", code="") -> bool:
        return True


def test_a_signed_halt_whose_fields_do_not_decode_still_stops_new_risk_but_never_flattens():
    engine, key, records = _engine(), bytes(range(32)), _Records()
    inbox = ControlInbox(ControlVerifier(key), records, core="core-1")
    payload = sign_control({"action": "halt", "flatten": "yes"}, key, sender="ops")

    reload, (note,) = inbox.handle(engine, [payload])

    assert not reload and engine.risk.mode == RiskMode.HALTED
    assert note.startswith("halted: operator halt, fields ignored: Expected `bool`")
    assert records.audit == [
        {"core": "core-1", "at_ns": records.audit[0]["at_ns"], "sender": "ops",
         "action": "halt", "outcome": note}
    ]  # fmt: skip


def test_core_weight_limits_are_validated():
    with pytest.raises(ConfigError, match=r"min_weight <= max_weight, were \[1.5, 1.0\]"):
        WeightLimits(min_weight=1.5, max_weight=1.0)


def test_core_weight_limits_are_a_config_read_from_data():
    limits = WeightLimits.from_dict({"max_weight": 1.0, "max_step": None})
    assert limits == WeightLimits(max_weight=1.0, max_step=None)
    assert WeightLimits.from_dict(limits.to_dict()) == limits
    with pytest.raises(ConfigError, match=r"max_step must be > 0, was 0\.0"):
        limits.replace(max_step=0.0)
    with pytest.raises(ConfigError, match="weight limits must be finite"):
        WeightLimits.from_dict({"min_weight": float("nan")})
    with pytest.raises(ConfigError, match="unknown field `max_weights`"):
        WeightLimits.from_dict({"max_weights": 1.0})
