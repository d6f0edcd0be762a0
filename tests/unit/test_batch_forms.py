"""Batch forms (many symbols per numpy update) against the per-instance forms, on real bars.

The two forms must agree exactly: same signals, bit for bit, and the same state, so that a
snapshot taken in either form resumes in the other.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from core.data.datasets import get_dataset, load_bars
from core.data.loaders import iter_merged_bars
from core.engine.applicator import StrategyApplicator
from core.engine.engine import TradingEngine
from core.engine.execution import BarFillModel
from core.engine.venue import Venue
from core.model import Bar, Lineage, NewsItem, Signal
from core.ports import StrategyDeployment
from core.strategies.batch import BatchMode, BatchStrategy
from core.strategies.catalogue import strategy_type, strategy_types

TICKERS = 12  # a real slice of the 88-ticker universe: every symbol has ~1,250 bars
VARIANTS = {
    "ma_crossover": [
        {},
        {"fast_period": 5, "slow_period": 20, "ma_type": "ema", "allow_short": True},
    ],
    "mean_reversion": [{}, {"window": 7, "z_entry": 1.5, "z_exit": 0.2, "allow_short": False}],
}
BATCHED = sorted(VARIANTS)
CASES = [(name, config) for name in BATCHED for config in VARIANTS[name]]


@pytest.fixture(scope="module")
def universe() -> list[Bar]:
    """Bars of the first tickers of the StockNet set, merged in time order."""
    dataset = get_dataset("equities_daily_stocknet88")
    loaded = load_bars(dataset.name, list(dataset.symbols()[:TICKERS]))
    return list(iter_merged_bars({symbol: result.frame for symbol, result in loaded.items()}))


def _per_instance(name: str, config: dict[str, Any], bars: list[Bar]) -> tuple[list, dict]:
    cls = strategy_type(name)
    parsed = cls.config_type.from_dict(config)
    instances: dict[str, Any] = {}
    signals = []
    for i, bar in enumerate(bars):
        strategy = instances.get(bar.symbol)
        if strategy is None:
            strategy = instances[bar.symbol] = cls(parsed, bar.symbol)
        signal = strategy.update(bar)
        if signal is not None:
            signals.append((i, signal))
    return signals, {symbol: s.to_state() for symbol, s in instances.items()}


def _batch(name: str, config: dict[str, Any]) -> BatchStrategy[Any]:
    cls = strategy_type(name)
    assert cls.batch_type is not None
    return cls.batch_type(cls.config_type.from_dict(config), name, Lineage(), capacity=1)


def _run_batch(
    batch: BatchStrategy[Any], bars: list[Bar], size: int, rows: dict[str, int], offset: int = 0
) -> list[tuple[int, Signal]]:
    signals = []
    for start in range(0, len(bars), size):
        chunk = bars[start : start + size]
        for bar in chunk:
            if bar.symbol not in rows:
                rows[bar.symbol] = batch.add_symbol(bar.symbol)
        emitted = batch.update_in_rounds(
            np.array([rows[b.symbol] for b in chunk], dtype=np.int64),
            np.array([b.ts_event for b in chunk], dtype=np.int64),
            np.array([b.close for b in chunk], dtype=np.float64),
        )
        signals += [(offset + start + k, signal) for k, signal in emitted]
    return sorted(signals, key=lambda pair: pair[0])


def test_the_bar_types_that_run_on_many_symbols_have_batch_forms():
    assert sorted(c.spec.name for c in strategy_types() if c.batch_type is not None) == BATCHED


@pytest.mark.parametrize("size", [1, 7, 1024])
@pytest.mark.parametrize(("name", "config"), CASES)
def test_batch_form_gives_the_per_instance_signals_and_states_exactly(universe, name, config, size):
    expected, states = _per_instance(name, config, universe)
    batch, rows = _batch(name, config), {}

    signals = _run_batch(batch, universe, size, rows)

    assert len(expected) > TICKERS  # every symbol signals, most more than once
    assert signals == expected  # Signal equality: every float of target, strength, reason
    assert {symbol: batch.row_state(row) for symbol, row in rows.items()} == states


@pytest.mark.parametrize(("name", "config"), CASES)
def test_a_snapshot_of_either_form_resumes_in_the_other(universe, name, config):
    expected, _ = _per_instance(name, config, universe)
    half = len(universe) // 2
    cls = strategy_type(name)
    parsed = cls.config_type.from_dict(config)

    # First half in the batch form, second half per instance from its row states ...
    batch, rows = _batch(name, config), {}
    first = _run_batch(batch, universe[:half], 256, rows)
    instances = {}
    for symbol, row in rows.items():
        instances[symbol] = cls(parsed, symbol)
        instances[symbol].restore(batch.row_state(row))
    second = []
    for i, bar in enumerate(universe[half:], start=half):
        signal = instances[bar.symbol].update(bar)
        if signal is not None:
            second.append((i, signal))
    assert first + second == expected

    # ... and the other way: per-instance states restored into a fresh batch form's rows.
    _, states = _per_instance(name, config, universe[:half])
    resumed, resumed_rows = _batch(name, config), {}
    for symbol, state in states.items():
        resumed_rows[symbol] = resumed.add_symbol(symbol)
        resumed.restore_row(resumed_rows[symbol], state)
    later = _run_batch(resumed, universe[half:], 256, resumed_rows, offset=half)
    assert later == [pair for pair in expected if pair[0] >= half]


def _deployments(universe: list[Bar] | None = None) -> list[StrategyDeployment]:
    deployments = [
        StrategyDeployment(name="trend", version="3", type_name="ma_crossover", config={}),
        StrategyDeployment(name="fade", version="1", type_name="mean_reversion", config={}),
        StrategyDeployment(name="breakout", version="2", type_name="breakout", config={}),
    ]
    if universe is not None:  # models pinned to some symbols: a batch form, and one instance
        symbols = sorted({bar.symbol for bar in universe})
        short = {"window": 7, "z_entry": 1.5}
        deployments += [
            StrategyDeployment(
                name="pinned",
                version="1",
                type_name="mean_reversion",
                config=short,
                symbols=symbols[:3],
            ),
            StrategyDeployment(
                name="alone",
                version="1",
                type_name="mean_reversion",
                config=short,
                symbols=symbols[3:4],
            ),
        ]
    return deployments


def _engine(batch_forms: BatchMode, universe: list[Bar] | None = None) -> TradingEngine:
    return TradingEngine(
        _deployments(universe),
        venue=Venue(bars=BarFillModel(fee_bps=1.0)),
        initial_capital=100_000.0,
        keep_history=True,
        batch_forms=batch_forms,
    )


def test_an_engine_with_batch_forms_trades_exactly_as_one_without(universe):
    batched, single = _engine("always", universe), _engine("never", universe)

    # breakout has no batch form; a model pinned to one symbol runs as an instance
    assert batched.applicator.vectorized == ["trend", "fade", "pinned"]
    assert single.applicator.vectorized == []
    a = batched.run(universe, batch_size=500)
    b = single.run(universe)

    assert a == b
    assert batched.all_signals == single.all_signals
    assert batched.all_fills == single.all_fills
    assert {s.strategy for s in batched.all_signals} == set(batched.applicator.vectorized) | {
        "breakout",
        "alone",
    }
    assert batched.applicator.states() == single.applicator.states()


def test_events_fed_one_at_a_time_or_prepared_in_batches_agree(universe):
    prepared, unprepared = _engine("always"), _engine("always")
    prepared.run(universe[:3000], batch_size=333)
    for bar in universe[:3000]:
        unprepared.on_event(bar)

    assert prepared.all_signals == unprepared.all_signals
    assert prepared.applicator.states() == unprepared.applicator.states()


def test_a_batch_form_pinned_to_some_symbols_skips_the_others(universe):
    symbols = sorted({bar.symbol for bar in universe})
    pinned = [
        StrategyDeployment(
            name="some", version="1", type_name="ma_crossover", config={}, symbols=symbols[::4]
        )
    ]
    batched = StrategyApplicator(pinned, batch_forms="always")
    single = StrategyApplicator(pinned, batch_forms="never")
    got, expected = [], []
    for start in range(0, len(universe), 500):
        chunk = universe[start : start + 500]
        batched.prepare(chunk)
        for bar in chunk:
            got += [r.signal for r in batched.on_event(bar)]
            expected += [r.signal for r in single.on_event(bar)]

    assert got == expected
    assert {s.symbol for s in got} == set(symbols[::4])
    assert batched.states() == single.states()


def test_prepared_events_must_be_fed_in_their_order(universe):
    applicator = StrategyApplicator(_deployments(), batch_forms="always")
    applicator.prepare(universe[:10])

    with pytest.raises(RuntimeError, match="prepared events were not fed"):
        applicator.states()
    with pytest.raises(RuntimeError, match="was not the one prepared"):
        applicator.on_event(universe[1])


def test_a_hot_swap_carries_batch_form_state_to_the_same_config(universe):
    engine = _engine("always")
    engine.run(universe[:4000])
    before = engine.applicator.states()
    moved = [
        StrategyDeployment(name="trend", version="4", type_name="ma_crossover", config={}),
        StrategyDeployment(
            name="fade", version="2", type_name="mean_reversion", config={"window": 30}
        ),
    ]

    engine.swap_deployments(moved)

    after = engine.applicator.states()
    carried = {k: v for k, v in before.items() if k.startswith("trend|")}
    assert carried and {k: v for k, v in after.items() if k.startswith("trend|")} == carried
    assert not any(k.startswith("fade|") for k in after)  # a new config starts fresh


def test_auto_switches_a_growing_deployment_to_its_batch_form_without_a_seam(universe, monkeypatch):
    # Lowered from the measured break-even so that the 12-ticker slice crosses it mid-run.
    monkeypatch.setattr(strategy_type("ma_crossover").batch_type, "auto_from", 6)
    auto, single = _engine("auto"), _engine("never")
    half = len(universe) // 2
    auto.run(universe[:half], batch_size=300)
    single.run(universe[:half])
    assert auto.applicator.vectorized == ["trend"]  # mean_reversion's stays at its default

    auto.run(universe[half:], batch_size=300)
    single.run(universe[half:])

    assert auto.all_signals == single.all_signals
    assert auto.all_fills == single.all_fills
    assert auto.applicator.states() == single.applicator.states()


def test_auto_keeps_instances_below_the_break_even(universe):
    engine = _engine("auto", universe)
    engine.run(universe[:2000])

    assert engine.applicator.vectorized == []  # 12 symbols


def test_no_switch_to_a_batch_form_happens_midway_through_a_prepared_batch(universe, monkeypatch):
    # mean_reversion switches at once; the crossover only when a news item names a 13th symbol
    # in the middle of a batch that the other form has already prepared.
    monkeypatch.setattr(strategy_type("mean_reversion").batch_type, "auto_from", 3)
    monkeypatch.setattr(strategy_type("ma_crossover").batch_type, "auto_from", TICKERS + 1)
    seen: set[str] = set()
    everyone = next(
        i for i, bar in enumerate(universe) if seen.add(bar.symbol) or len(seen) == TICKERS
    )
    batch = 400
    at = (everyone // batch + 1) * batch + 100  # the 101st event of the next batch
    news = NewsItem(ts_event=universe[at].ts_event, text="a new name", symbols=("NEW",))
    events = [*universe[:at], news, *universe[at:]]
    auto, single = _engine("auto"), _engine("never")

    auto.run(events, batch_size=batch)  # 12 symbols seen before the news item's batch starts
    single.run(events)

    assert auto.applicator.vectorized == ["trend", "fade"]
    assert auto.all_signals == single.all_signals
    assert auto.applicator.states() == single.applicator.states()
