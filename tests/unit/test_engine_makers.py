"""Market makers in the engine on real prints: each one's fills and its own book."""

from __future__ import annotations

import pytest

from core.engine.engine import TradingEngine
from core.engine.quote_fills import QuoteFillConfig
from core.engine.venue import Venue
from core.ports import StrategyDeployment
from core.strategies.market_making.frames import iter_quotes_trades
from tests.strategy_samples.samples_market_making import btcusdt_spot


@pytest.fixture(scope="module")
def events():
    return list(iter_quotes_trades(btcusdt_spot().iloc[20_000:40_000], "BTCUSDT"))


MAKERS = ("adaptive_quote", "spread_adjuster", "volatility_responsive")


def _engine(types: tuple[str, ...]) -> TradingEngine:
    deployments = [
        StrategyDeployment(name=t, version="1", type_name=t, config={}, symbols=("BTCUSDT",))
        for t in types
    ]
    return TradingEngine(deployments, venue=Venue(maker=QuoteFillConfig()), keep_history=True)


def test_each_makers_own_book_holds_exactly_what_it_earns_alone_on_real_prints(events):
    together = _engine(MAKERS)
    together.run(events)

    for type_name in MAKERS:
        alone = _engine((type_name,))
        alone.run(events)
        own = [f for f in together.all_fills if f.strategy == type_name]
        book = together.books[type_name]
        assert len(alone.all_fills) > 10
        assert [(f.side, f.price, f.quantity, f.fee) for f in own] == [
            (f.side, f.price, f.quantity, f.fee) for f in alone.all_fills
        ]
        assert book.separate and book.portfolio.equity == pytest.approx(alone.portfolio.equity)
        assert book.tracker.fills == len(own)
        # Alone, the strategy's book is the engine's own ledger.
        assert alone.books[type_name].portfolio is alone.portfolio
    assert len({f.fill_id for f in together.all_fills}) == len(together.all_fills)


def test_without_a_maker_fill_model_quotes_are_recorded_but_never_fill(events):
    deployment = StrategyDeployment(name="mm", version="1", type_name="adaptive_quote", config={})
    engine = TradingEngine([deployment], keep_history=True)

    engine.run(events)

    assert engine.all_signals and engine.all_fills == []
