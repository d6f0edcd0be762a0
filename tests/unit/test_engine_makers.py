"""Market makers trade in the engine exactly as in their family backtest, on real prints."""

from __future__ import annotations

import pytest

from core.engine.engine import TradingEngine
from core.engine.quote_fills import QuoteFillConfig, backtest_market_maker
from core.ports import StrategyDeployment
from core.strategies.catalogue import build
from core.strategies.market_making.frames import iter_quotes_trades
from tests.strategy_samples.samples_market_making import btcusdt_spot


@pytest.fixture(scope="module")
def events():
    return list(iter_quotes_trades(btcusdt_spot().iloc[20_000:40_000], "BTCUSDT"))


@pytest.mark.parametrize(
    "type_name", ["adaptive_quote", "spread_adjuster", "volatility_responsive"]
)
def test_engine_fills_equal_the_market_making_backtest_on_real_prints(events, type_name):
    config = QuoteFillConfig()
    reference = backtest_market_maker(build(type_name, {}, "BTCUSDT"), events, config)
    deployment = StrategyDeployment(name=type_name, version="1", type_name=type_name, config={})
    engine = TradingEngine([deployment], maker_fills=config, keep_history=True)

    engine.run(events)

    got = [(f.side.value, f.price, f.quantity, f.fee) for f in engine.all_fills]
    want = [(f["side"], f["price"], f["quantity"], f["fee"]) for f in reference["fills"]]
    assert got == want
    assert len(got) > 10
    assert engine.portfolio.quantity("BTCUSDT") == pytest.approx(reference["inventory"])
    assert len({f.fill_id for f in engine.all_fills}) == len(got)


def test_without_a_maker_fill_model_quotes_are_recorded_but_never_fill(events):
    deployment = StrategyDeployment(name="mm", version="1", type_name="adaptive_quote", config={})
    engine = TradingEngine([deployment], keep_history=True)

    engine.run(events)

    assert engine.all_signals and engine.all_fills == []
