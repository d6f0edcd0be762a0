"""Online Generator on real stocknet88 bars: shadow variants, Hedge weights, proposals, state."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from core.data.feeds import replay_events
from core.engine.engine import PositionSizing, TradingEngine
from core.engine.execution import BarFillModel
from core.engine.venue import Venue
from core.errors import ConfigError
from core.model import Bar
from core.online import OnlineGenerator, variant_configs
from core.online.generator import ShadowBooks
from core.ports import StrategyDeployment

FEED = "equities_daily_stocknet88"
SYMBOLS = ["AAPL", "KO", "XOM"]
LIVE = StrategyDeployment(
    name="strategy.ma_crossover",
    version="1",
    type_name="ma_crossover",
    config={"fast_period": 10, "slow_period": 30},
)
FILLS = BarFillModel(fee_bps=1.0)
SIZING = PositionSizing(notional=10_000.0)
CAPITAL = 100_000.0
ETA = 20.0


@pytest.fixture(scope="module")
def bars() -> list:
    return replay_events(FEED, symbols=SYMBOLS)


@pytest.fixture(scope="module")
def configs() -> list[dict]:
    return variant_configs("ma_crossover", LIVE.config, max_variants=8)


def _generator(configs: list[dict], **overrides) -> OnlineGenerator:
    options = {"margin": 0.01, "min_periods": 60, "eta": ETA, **overrides}
    return OnlineGenerator(
        LIVE, configs, fill_model=FILLS, capital=CAPITAL, sizing=SIZING, **options
    )


def _engine(deployment: StrategyDeployment, shadow: OnlineGenerator | None = None):
    return TradingEngine(
        [deployment],
        venue=Venue(bars=FILLS),
        initial_capital=CAPITAL,
        sizing=SIZING,
        keep_history=True,
        shadow=shadow,
    )


@pytest.fixture(scope="module")
def backtested(configs, bars) -> list[dict]:
    """Each variant run alone as the live strategy by the engine: the independent reference."""
    out = []
    for config in configs:
        deployment = StrategyDeployment(
            name="alone", version="1", type_name="ma_crossover", config=config
        )
        out.append(_engine(deployment).run(bars))
    return out


def test_the_variant_grid_starts_with_the_live_config_and_stays_within_bounds(configs):
    live = configs[0]

    assert live == {**live, "fast_period": 10, "slow_period": 30}
    assert 2 <= len(configs) <= 8
    assert len({json.dumps(c, sort_keys=True) for c in configs}) == len(configs)
    for config in configs:
        assert config["fast_period"] < config["slow_period"]
        for field in ("fast_period", "slow_period"):
            assert 0.25 <= config[field] / live[field] <= 4.0


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: variant_configs("ma_crossover", {}, max_variants=17), "was 17"),
        (lambda: variant_configs("ma_crossover", {}, factors=(0.1, 1.0)), "was 0.1"),
        (lambda: OnlineGenerator(LIVE, [LIVE.config]), "were 1"),
        (
            lambda: OnlineGenerator(
                StrategyDeployment(name="q", version="1", type_name="adaptive_quote", config={}),
                [{}, {}],
            ),
            "adaptive_quote",
        ),
    ],
)
def test_out_of_bounds_settings_are_refused_naming_the_value(call, message):
    with pytest.raises(ConfigError, match=message):
        call()


def test_shadow_variants_never_place_orders_or_fills_in_the_engines_portfolio(configs, bars):
    plain = _engine(LIVE)
    shadowed = _engine(LIVE, shadow=_generator(configs))

    expected = plain.run(bars)
    got = shadowed.run(bars)

    assert got.pop("shadow")["counters"]["signals"] > 0
    assert got == expected
    assert shadowed.all_signals == plain.all_signals
    assert shadowed.all_fills == plain.all_fills
    assert all("~v" not in f.strategy for f in shadowed.all_fills)
    assert {p.symbol: p.quantity for p in shadowed.portfolio.positions()} == {
        p.symbol: p.quantity for p in plain.portfolio.positions()
    }


def test_each_variants_evidence_equals_its_own_engine_backtest(configs, bars, backtested):
    generator = _generator(configs)
    _engine(LIVE, shadow=generator).run(bars)

    expected = np.array([math.log1p(r["total_return"]) for r in backtested])
    assert generator.bandit.total == pytest.approx(expected, abs=1e-9)
    assert generator.bandit.periods == backtested[0]["periods"]
    assert generator.books.fills.tolist() == [r["fills"] for r in backtested]


def test_the_recorded_choices_converge_to_the_variant_with_the_best_backtested_return(
    configs, bars, backtested
):
    generator = _generator(configs)

    _engine(LIVE, shadow=generator).run(bars)

    returns = np.array([math.log1p(r["total_return"]) for r in backtested])
    best = int(np.argmax(returns))
    softmax = np.exp(ETA * (returns - returns.max()))
    report = generator.report()
    later = [r["leader"] for r in report["records"][len(report["records"]) // 2 :]]
    assert report["leader"] == best
    assert report["weights"] == pytest.approx(softmax / softmax.sum(), abs=1e-6)
    assert report["weights"][best] > 1.0 / len(configs)
    assert later.count(best) > len(later) / 2
    json.dumps(report)  # publishable as is


def test_a_variant_ahead_by_the_margin_is_proposed_and_accepting_it_switches_nothing(
    configs, bars, backtested
):
    generator = _generator(configs, margin=0.01)
    engine = _engine(LIVE, shadow=generator)
    engine.run(bars)

    returns = np.array([math.log1p(r["total_return"]) for r in backtested])
    best = int(np.argmax(returns))
    assert best != 0 and returns[best] - returns[0] >= 0.01  # the data must allow a proposal
    proposal = generator.proposal()
    assert proposal is not None and proposal["variant"] == best
    assert proposal["edge_log_return"] == pytest.approx(returns[best] - returns[0], abs=1e-9)

    config = generator.accept(best)

    assert config == configs[best]
    assert engine.applicator.deployments[0].config == LIVE.config
    assert generator.report()["records"][-1]["what"] == "accepted"
    with pytest.raises(ConfigError, match="was 8"):
        generator.accept(8)


def test_no_proposal_is_made_before_the_minimum_number_of_periods(configs, bars):
    generator = _generator(configs, margin=0.0, min_periods=10_000)

    _engine(LIVE, shadow=generator).run(bars)

    assert generator.proposal() is None
    assert generator.counters["proposals"] == 0


def test_a_restored_generator_resumes_exactly_where_the_saved_one_was(configs, bars):
    whole, first = _generator(configs), _generator(configs)
    half = len(bars) // 2 + 1  # mid-day: the period in progress must survive too
    for event in bars:
        whole.on_event(event)
    for event in bars[:half]:
        first.on_event(event)

    resumed = _generator(configs)
    resumed.restore(json.loads(json.dumps(first.to_state())))
    for event in bars[half:]:
        resumed.on_event(event)

    assert resumed.to_state() == whole.to_state()


def test_a_state_of_other_variants_is_refused(configs):
    state = _generator(configs).to_state()

    with pytest.raises(ConfigError, match="differ"):
        _generator(configs[:4]).restore(state)


def test_the_records_list_stays_within_its_bound_while_the_counters_keep_counting(configs, bars):
    generator = _generator(configs, record_every=1, max_records=50)

    _engine(LIVE, shadow=generator).run(bars)

    assert len(generator.records) == 50
    assert generator.counters["records"] > 50
    assert generator.records[-1]["period"] == generator.counters["periods"]


@pytest.mark.integration
def test_an_engine_checkpoint_carries_the_generators_evidence_to_a_restarted_engine(
    configs, bars, redis_store
):
    half = len(bars) // 2
    before = _generator(configs)
    engine = TradingEngine(
        [LIVE], venue=Venue(bars=FILLS), initial_capital=CAPITAL, sizing=SIZING,
        sink=redis_store, state_store=redis_store, shadow=before,
    )  # fmt: skip
    for event in bars[:half]:
        engine.on_event(event)
    engine.checkpoint()

    after = _generator(configs)
    restarted = TradingEngine(
        [LIVE], venue=Venue(bars=FILLS), initial_capital=CAPITAL, sizing=SIZING, shadow=after
    )
    assert restarted.restore(redis_store, redis_store.read_fills())

    assert after.to_state() == before.to_state()
    assert after.counters["periods"] > 0


def test_shadow_books_saved_by_the_array_form_restore_with_their_cash_positions_and_orders():
    older = {  # what the books kept before they were the engine's accounts
        "symbols": ["AAPL", "KO"],
        "cash": [900.0, 1000.0],
        "qty": [[1.0, 0.0], [0.0, -2.0]],
        "pending": [[0.0, 3.0], [0.0, 0.0]],
        "last": [100.0, 50.0],
        "fills": [1, 1],
    }
    books = ShadowBooks(2, BarFillModel(), 1000.0)

    books.restore(older)

    assert books.equity().tolist() == [900.0 + 100.0, 1000.0 - 100.0]
    assert books.fills.tolist() == [1, 1]
    books.on_bar(Bar(symbol="KO", ts_event=1, open=51.0, high=52.0, low=50.0, close=52.0,
                     volume=1e6))  # fmt: skip
    assert books.accounts[0].portfolio.quantity("KO") == 3.0  # the waiting order filled
    assert books.fills.tolist() == [2, 1]
    assert books.equity().tolist() == [900.0 - 153.0 + 100.0 + 156.0, 1000.0 - 104.0]
    again = ShadowBooks(2, BarFillModel(), 1000.0)
    again.restore(books.to_state())
    assert again.equity().tolist() == books.equity().tolist()
