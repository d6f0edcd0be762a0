"""The composer reruns when the weights or the active set change, and the engine trades it."""

from __future__ import annotations

import pytest

from core.adapters.redis_store import RedisStore
from core.data.loaders import iter_bars
from core.engine.composer import StrategyComposer
from core.engine.engine import COMPOSER, TradingEngine
from core.ports import StrategyDeployment
from core.strategies.statarb.mean_reversion import MeanReversion, MeanReversionConfig
from core.strategies.trend.ma_crossover import MACrossover, MACrossoverConfig

TREND, FADE = "trend", "fade"


def _composer() -> StrategyComposer:
    composer = StrategyComposer({TREND: 1.0, FADE: 1.0})
    composer.on_legs(TREND, "trend|AAPL", {"AAPL": 10.0})
    composer.on_legs(FADE, "fade|AAPL", {"AAPL": -4.0})
    composer.on_legs(FADE, "fade|KO", {"KO": 3.0})
    composer.on_legs(TREND, "trend|XOM", {"XOM": 2.0})
    return composer


def test_new_weights_recompose_every_symbol_they_touch_and_no_other():
    composer = _composer()

    changed = composer.set_weights({TREND: 0.5, FADE: 1.0})

    assert changed == {"AAPL": 0.5 * 10.0 - 4.0, "XOM": 1.0}
    assert composer.target("KO") == 3.0
    assert composer.set_weights({TREND: 0.5, FADE: 1.0}) == {}  # nothing moved


def test_a_model_that_leaves_the_set_gives_up_its_positions():
    composer = _composer()

    changed = composer.retain([TREND])

    assert changed == {"AAPL": 10.0, "KO": 0.0}
    assert composer.retain([TREND]) == {}
    assert composer.set_weights({FADE: 0.0}) == {}  # fade holds nothing any more


def test_state_round_trips_with_its_weights_and_an_older_snapshot_still_reads():
    composer = _composer()
    composer.set_weights({TREND: 0.25})
    restored = StrategyComposer()
    restored.restore(composer.to_state())
    assert restored.weights == {TREND: 0.25}
    assert restored.target("AAPL") == composer.target("AAPL") == 0.25 * 10.0 - 4.0

    # A snapshot written before positions were kept unweighted: targets as they were, and
    # an instance's next signal replaces its old weighted position.
    older = StrategyComposer({TREND: 0.5})
    older.restore({"AAPL": {"trend|AAPL": 5.0, "fade|AAPL": -4.0}})
    assert older.target("AAPL") == 1.0
    assert older.on_legs(TREND, "trend|AAPL", {"AAPL": 8.0}) == {"AAPL": 0.5 * 8.0 - 4.0}


def _engine(sink: RedisStore) -> TradingEngine:
    return TradingEngine(
        [
            StrategyDeployment(name=TREND, version="1", type_name="ma_crossover", config={}),
            StrategyDeployment(
                name=FADE, version="1", type_name="mean_reversion", config={"window": 10}
            ),
        ],
        initial_capital=1_000.0,
        sink=sink,
    )


def _positions(engine: TradingEngine) -> dict[str, float]:
    """Each model's latest (unweighted) AAPL position as the composer holds it."""
    legs = engine.composer.to_state()["legs"]["AAPL"]
    return {key.partition("|")[0]: position for key, position in legs.items()}


@pytest.fixture(scope="module")
def aapl_events(aapl_bars) -> list:
    return list(iter_bars(aapl_bars, "AAPL"))


@pytest.fixture(scope="module")
def cut(aapl_bars) -> int:
    """A bar after which the crossover is long and the mean reversion holds a position (the
    first past the first 300), so that both a new weight and a removal move the target."""
    long = MACrossover.vectorized(MACrossoverConfig(), aapl_bars).to_numpy() == 1.0
    config = MeanReversionConfig(window=10)
    holding = MeanReversion.vectorized(config, aapl_bars).fillna(0.0).to_numpy() != 0.0
    return 300 + int((long & holding)[300:].argmax()) + 1


def test_the_engine_trades_to_new_weights_at_once_on_real_bars(aapl_events, cut, redis_store):
    engine = _engine(redis_store)
    engine.run(aapl_events[:cut])
    held = _positions(engine)
    assert held[TREND] == 1.0

    targets = engine.set_weights({TREND: 0.5, FADE: 1.0})
    engine.on_event(aapl_events[cut])  # the composer's order fills at this bar's open
    engine.flush()

    assert targets == {"AAPL": 0.5 * held[TREND] + held[FADE]}
    orders = redis_store.read_orders()
    assert [o.strategy for o in orders].count(COMPOSER) == 1
    assert len({o.order_id for o in orders}) == len(orders)  # each order recorded once
    fill_at_open = engine.portfolio.quantity("AAPL")
    assert fill_at_open == pytest.approx(targets["AAPL"])


def test_a_model_that_leaves_the_set_is_unwound_and_the_others_kept(aapl_events, cut, redis_store):
    engine = _engine(redis_store)
    engine.run(aapl_events[:cut])
    held = _positions(engine)
    assert held[TREND] == 1.0 and held[FADE] != 0.0

    engine.swap_deployments(
        [StrategyDeployment(name=TREND, version="2", type_name="ma_crossover", config={})]
    )
    engine.on_event(aapl_events[cut])

    assert _positions(engine) == {TREND: held[TREND]}
    assert engine.portfolio.quantity("AAPL") == pytest.approx(held[TREND])
