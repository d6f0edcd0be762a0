"""Containment below the ingestion boundary: one model on one symbol fails, nothing else does.

A strategy instance that raises, or whose signal is not finite, is quarantined on its symbol:
the same model goes on on its other symbols (as instances or as batch-form rows) and every other
model everywhere. A saved state that does not restore starts that one instance fresh, with the
reason recorded.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from core.data.datasets import load_bars
from core.data.loaders import iter_merged_bars
from core.engine.applicator import StrategyApplicator
from core.model import Bar, Signal
from core.ports import StrategyDeployment
from core.strategies.catalogue import strategy_type

SYMBOLS = ["AAPL", "KO", "XOM"]


@pytest.fixture(scope="module")
def bars() -> list[Bar]:
    loaded = load_bars("equities_daily_stocknet88", SYMBOLS)
    return list(iter_merged_bars({s: r.frame for s, r in loaded.items()}))[:900]


def _deployment(type_name: str) -> StrategyDeployment:
    return StrategyDeployment(
        name=f"strategy.{type_name}",
        version="1",
        type_name=type_name,
        config=strategy_type(type_name).config_type().to_dict(),
    )


def _applicator(batch_forms: str = "never") -> StrategyApplicator:
    return StrategyApplicator(
        [_deployment("ma_crossover"), _deployment("breakout")],
        batch_forms=batch_forms,  # type: ignore[arg-type]
    )


def _run(applicator: StrategyApplicator, bars: list[Bar]) -> list[Signal]:
    out = []
    for bar in bars:
        out += [routed.signal for routed in applicator.on_event(bar)]
    return out


def _sabotage(applicator: StrategyApplicator, key: str, failure: str) -> None:
    """Make one instance fail from now on: raise, or return a non-finite target."""
    instance = applicator.instances()[key]
    real = instance.update

    def update(event: Any) -> Signal | None:
        if failure == "raise":
            raise ZeroDivisionError("division by zero")
        signal = real(event)
        return Signal(
            strategy=instance.name, symbol=event.symbol, ts_event=event.ts_event,
            target_position=math.nan,
        ) if signal is not None else None  # fmt: skip

    instance.update = update  # type: ignore[method-assign]


@pytest.mark.parametrize("failure", ["raise", "nan"])
def test_a_failing_instance_is_quarantined_on_its_symbol_alone(bars, failure):
    reference = _applicator()
    _run(reference, bars[:30])
    expected = _run(reference, bars[30:])
    applicator = _applicator()
    _run(applicator, bars[:30])  # every instance exists
    _sabotage(applicator, "strategy.ma_crossover|KO", failure)

    signals = _run(applicator, bars[30:])

    lost = {("strategy.ma_crossover", "KO")}
    assert [s for s in expected if (s.strategy, s.symbol) not in lost] == signals
    assert any((s.strategy, s.symbol) in lost for s in expected), "KO did trade in the reference"
    assert [(e.model, e.symbol) for e in applicator.errors] == [("strategy.ma_crossover", "KO")]
    # Left out of checkpoints: a restart starts it fresh.
    assert "strategy.ma_crossover|KO" not in applicator.states()
    assert "strategy.ma_crossover|AAPL" in applicator.states()


def test_a_batch_form_row_with_a_non_finite_signal_is_quarantined_alone(bars, monkeypatch):
    reference = _run(_applicator("always"), bars)
    applicator = _applicator("always")
    slot = next(s for s in applicator._slots if s.batch is not None)
    real = type(slot.batch)._signals

    def signals(self: Any, *args: Any, **kwargs: Any) -> list[tuple[int, Signal]]:
        return [
            (at, Signal(strategy=s.strategy, symbol=s.symbol, ts_event=s.ts_event,
                        target_position=math.inf) if s.symbol == "XOM" else s)
            for at, s in real(self, *args, **kwargs)
        ]  # fmt: skip

    monkeypatch.setattr(type(slot.batch), "_signals", signals)
    got = _run(applicator, bars)

    lost = ("strategy.ma_crossover", "XOM")
    assert got == [s for s in reference if (s.strategy, s.symbol) != lost]
    assert [(e.model, e.symbol) for e in applicator.errors] == [lost]


@pytest.mark.parametrize("batch_forms", ["never", "always"])
def test_a_saved_state_that_does_not_restore_starts_that_instance_fresh(bars, batch_forms):
    original = _applicator(batch_forms)
    _run(original, bars)
    states = original.states()
    broken = dict(states)
    broken["strategy.ma_crossover|KO"] = {**states["strategy.ma_crossover|KO"], "fast": None}
    broken["strategy.breakout|AAPL"] = "not a state"  # type: ignore[assignment]

    restored = _applicator(batch_forms)
    count = restored.restore(broken)

    after = restored.states()
    assert count == len(states) - 2
    assert sorted(p.split(":", 1)[0] for p in restored.restore_problems) == [
        "strategy.breakout|AAPL",
        "strategy.ma_crossover|KO",
    ]
    for key in ("strategy.ma_crossover|KO", "strategy.breakout|AAPL"):
        assert after[key] == _fresh_state(key)
    for key in set(states) - {"strategy.ma_crossover|KO", "strategy.breakout|AAPL"}:
        assert after[key] == states[key]


def _fresh_state(key: str) -> dict[str, Any]:
    name, _, symbol = key.partition("|")
    cls = strategy_type(name.removeprefix("strategy."))
    return cls(cls.config_type(), symbol, name=name).to_state()
