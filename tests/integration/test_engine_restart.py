"""A restarted engine continues exactly: no lost or duplicated fills, identical results."""

from __future__ import annotations

import pytest

from core.adapters.redis_store import RedisStore
from core.data.datasets import load_bars
from core.data.loaders import merge_bars
from core.engine.engine import PositionSizing, TradingEngine
from core.engine.execution import BarFillModel
from core.engine.venue import Venue
from core.ports import StrategyDeployment
from core.strategies.batch import BatchMode

pytestmark = pytest.mark.integration

DEPLOYMENTS = [
    StrategyDeployment(
        name="strategy.ma_crossover", version="3", type_name="ma_crossover", config={}
    ),
    StrategyDeployment(name="strategy.breakout", version="1", type_name="breakout", config={}),
]


@pytest.fixture(scope="module")
def events():
    loaded = load_bars("equities_daily_stocknet88", ["AAPL", "KO", "XOM"])
    return merge_bars({s: r.frame for s, r in loaded.items()})


def _engine(store: RedisStore | None, batch_forms: BatchMode = "auto") -> TradingEngine:
    return TradingEngine(
        DEPLOYMENTS,
        batch_forms=batch_forms,
        keep_history=store is None,
        venue=Venue(bars=BarFillModel(fee_bps=1.0)),
        initial_capital=30_000.0,
        sizing=PositionSizing(notional=10_000.0),
        sink=store,
        state_store=store,
        flush_every=64,
    )


def _uninterrupted(events):
    engine = _engine(None)
    engine.run(events)
    return engine


# Either form may write the checkpoint and either resume it: their states are the same.
@pytest.mark.parametrize(
    ("before", "after"), [("auto", "auto"), ("always", "never"), ("never", "always")]
)
def test_a_restart_from_a_checkpoint_ends_where_an_uninterrupted_run_ends(
    redis_store, events, before, after
):
    cut = len(events) * 3 // 5
    first = _engine(redis_store, before)
    first.run(events[:cut], batch_size=256)  # run() ends with a checkpoint
    del first  # the process stops here

    second = _engine(redis_store, after)
    assert second.restore(redis_store, redis_store.read_fills())
    second.run(events[cut:], batch_size=256)

    reference = _uninterrupted(events)
    assert second.portfolio.positions() == reference.portfolio.positions()
    assert second.portfolio.equity == pytest.approx(reference.portfolio.equity, rel=1e-12)
    assert redis_store.read_fills() == reference.all_fills


def test_work_done_after_the_last_checkpoint_is_redone_without_duplicating_fills(
    redis_store, events
):
    cut, crash = len(events) // 2, len(events) // 2 + 700
    first = _engine(redis_store)
    for event in events[:cut]:
        first.on_event(event)
    first.checkpoint()
    for event in events[cut:crash]:  # processed and flushed, but never checkpointed
        first.on_event(event)
    first.flush()
    written_before_crash = len(redis_store.read_fills())

    second = _engine(redis_store)
    second.restore(redis_store, redis_store.read_fills())
    for event in events[cut:]:  # the stream redelivers everything after the checkpoint
        second.on_event(event)
    second.finish()

    reference = _uninterrupted(events)
    fills = redis_store.read_fills()
    assert written_before_crash > 0
    assert len({f.fill_id for f in fills}) == len(fills)
    assert len(fills) == reference.tracker.fills
    assert second.portfolio.positions() == reference.portfolio.positions()


def _held(engine: TradingEngine, model: str) -> dict[str, float]:
    """The model's non-zero positions as the composer holds them, by symbol."""
    return {
        symbol: position
        for symbol, per in engine.composer.to_state()["legs"].items()
        for key, position in per.items()
        if key.startswith(f"{model}|") and position != 0.0
    }


def test_a_model_that_left_the_set_while_the_core_was_down_is_unwound_on_restore(
    redis_store, events
):
    first = _engine(redis_store)
    first.run(events[: len(events) // 2])
    leaving, staying = DEPLOYMENTS  # the crossover is long somewhere at this point
    gone = _held(first, leaving.name)
    assert gone
    del first

    second = TradingEngine(
        [staying],  # the registry set no longer holds the crossover
        venue=Venue(bars=BarFillModel(fee_bps=1.0)),
        initial_capital=30_000.0,
        sizing=PositionSizing(notional=10_000.0),
        sink=redis_store,
        state_store=redis_store,
    )
    second.restore(redis_store, redis_store.read_fills())
    second.flush()

    assert _held(second, leaving.name) == {}
    kept = _held(second, staying.name)
    for symbol in gone:
        assert second.composer.target(symbol) == kept.get(symbol, 0.0)
    unwinding = [o for o in redis_store.read_orders() if o.strategy == "composer"]
    assert {o.symbol for o in unwinding} == set(gone)
