"""The maker fill model: resting quotes filled by real prints, in the engine, with fees,
inventory, PnL and the fill analyzer's adverse selection."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from core.engine.analyzers import FillAnalyzer
from core.engine.engine import TradingEngine
from core.engine.quote_fills import QuoteFillConfig, QuoteFillModel
from core.engine.venue import Venue
from core.errors import ConfigError
from core.model import Quote, Side, Trade
from core.ports import StrategyDeployment
from core.strategies.market_making.frames import iter_quotes_trades
from tests.strategy_samples.samples_market_making import SYMBOL, btcusdt_spot

# Binance spot regular-tier maker fee, 0.1000 %.
SPOT_FEE_BPS = 10.0


def _print(price: float, size: float = 0.01, side: Side = Side.SELL) -> Trade:
    return Trade(symbol=SYMBOL, ts_event=1, price=price, size=size, aggressor=side, venue="spot")


@pytest.fixture(scope="module")
def tape() -> pd.DataFrame:
    """About three minutes of real spot BTCUSDT tape, 23:56:50 onward, through the 23:57:50 drop."""
    return btcusdt_spot().iloc[20_000:45_000].reset_index(drop=True)


def _market_make(type_name: str, events: list, config: QuoteFillConfig) -> dict:
    """Run one maker through the engine; each fill is recorded with the print that made it,
    that print's receive time and the mid before it, and the inventory after it."""
    deployment = StrategyDeployment(
        name=type_name, version="1", type_name=type_name, config={}, symbols=(SYMBOL,)
    )
    analyzer = FillAnalyzer()
    engine = TradingEngine(
        [deployment],
        venue=Venue(maker=config),
        keep_history=True,
        analyzer=analyzer,
        initial_capital=0.0,
    )
    fills, mid, inventory = [], math.nan, 0.0
    for event in events:
        seen = len(engine.all_fills)
        engine.on_event(event)
        if isinstance(event, Quote):
            mid = event.mid
        for fill in engine.all_fills[seen:]:
            inventory += fill.signed_quantity
            fills.append({
                "ts_recv": event.ts_recv, "side": fill.side.value, "price": fill.price,
                "quantity": fill.quantity, "fee": fill.fee, "trade_price": event.price,
                "mid": mid, "inventory": inventory,
            })  # fmt: skip
    engine.finish()
    position = engine.portfolio.positions()[0]
    return {
        "fills": fills,
        "engine": engine,
        "cash": engine.portfolio.cash,
        "inventory": engine.portfolio.quantity(SYMBOL),
        "mid": mid,
        "fees": math.fsum(f["fee"] for f in fills),
        "realized_pnl": position.realized_pnl,
        "unrealized_pnl": position.quantity * (mid - position.avg_price),
        "pnl": engine.portfolio.equity,  # capital 0: equity is the PnL
        **analyzer.report(),
    }


@pytest.fixture(scope="module", params=["adaptive_quote", "spread_adjuster"])
def run(request, tape) -> dict:
    events = list(iter_quotes_trades(tape, SYMBOL))
    return _market_make(request.param, events, QuoteFillConfig(max_inventory=0.005))


def test_a_print_above_the_bid_does_not_fill_it():
    model = QuoteFillModel()
    model.place(100.00, 100.02, 0.5)

    assert model.on_trade(_print(100.01), inventory=0.0) is None
    assert model.bid is not None and model.bid.remaining == 0.5


def test_a_print_through_the_bid_fills_all_of_it_at_the_bid_price():
    model = QuoteFillModel()
    model.place(100.00, 100.02, 0.5)

    fill = model.on_trade(_print(99.98, size=0.01), inventory=0.0)

    assert fill is not None
    assert (fill.side, fill.price, fill.quantity) == (Side.BUY, 100.00, 0.5)
    assert fill.fee == pytest.approx(0.5 * 100.00 * SPOT_FEE_BPS / 1e4)
    assert model.bid is None and model.ask is not None


def test_a_print_at_the_bid_fills_only_our_share_of_the_queue():
    model = QuoteFillModel(QuoteFillConfig(touch_fill_fraction=0.25))
    model.place(100.00, 100.02, 0.5)

    fill = model.on_trade(_print(100.00, size=0.4), inventory=0.0)

    assert fill is not None and fill.quantity == pytest.approx(0.1)
    assert model.bid is not None and model.bid.remaining == pytest.approx(0.4)


def test_a_print_through_the_ask_fills_it_as_a_sale():
    model = QuoteFillModel()
    model.place(100.00, 100.02, 0.5)

    fill = model.on_trade(_print(100.05, side=Side.BUY), inventory=0.0)

    assert fill is not None and (fill.side, fill.price, fill.signed_quantity) == (
        Side.SELL,
        100.02,
        -0.5,
    )


def test_fills_stop_at_the_inventory_limit():
    model = QuoteFillModel(QuoteFillConfig(max_inventory=1.0))
    model.place(100.00, 100.02, 0.5)

    partial = model.on_trade(_print(99.0), inventory=0.8)
    model.place(100.00, 100.02, 0.5)
    none = model.on_trade(_print(99.0), inventory=1.0)

    assert partial is not None and partial.quantity == pytest.approx(0.2)
    assert none is None


def test_out_of_range_fill_settings_are_refused_naming_the_value():
    with pytest.raises(ConfigError, match=r"touch_fill_fraction must be within \[0, 1\], was 1.5"):
        QuoteFillConfig(touch_fill_fraction=1.5)
    with pytest.raises(ConfigError, match="maker fee for 'spot' must be within"):
        QuoteFillConfig(maker_fee_bps={"spot": 5000.0})


def test_every_real_fill_has_a_real_print_at_or_through_the_quote(run, tape):
    fills = pd.DataFrame(run["fills"])
    prints = tape[tape["kind"] == "trade"]
    matched = fills.merge(prints, left_on="ts_recv", right_on="ts_recv", suffixes=("", "_tape"))

    assert len(fills) > 20
    assert len(matched) == len(fills)
    assert (matched["price_tape"] == matched["trade_price"]).all()
    buys, sells = matched[matched["side"] == "buy"], matched[matched["side"] == "sell"]
    assert len(buys) and len(sells)
    assert (buys["price_tape"] <= buys["price"] + 1e-9).all()
    assert (sells["price_tape"] >= sells["price"] - 1e-9).all()
    at_touch = buys["price_tape"].sub(buys["price"]).abs() < 1e-9
    assert (buys["quantity"][at_touch] <= 0.5 * buys["size"][at_touch] + 1e-12).all()


def test_pnl_accounting_identity_holds(run):
    fills = pd.DataFrame(run["fills"])
    signed = np.where(fills["side"] == "buy", fills["quantity"], -fills["quantity"])
    cash = -math.fsum(signed * fills["price"]) - math.fsum(fills["fee"])
    fees = math.fsum(fills["quantity"] * fills["price"] * SPOT_FEE_BPS / 1e4)

    assert run["cash"] == pytest.approx(cash, abs=1e-6)
    assert run["fees"] == pytest.approx(fees, rel=1e-9)
    assert run["inventory"] == pytest.approx(signed.sum(), abs=1e-12)
    assert run["pnl"] == pytest.approx(run["cash"] + run["inventory"] * run["mid"], abs=1e-9)
    # The ledger's realized PnL is before fees; fees are paid from cash.
    assert run["pnl"] == pytest.approx(
        run["realized_pnl"] + run["unrealized_pnl"] - run["fees"], abs=1e-6
    )


def test_inventory_path_stays_within_the_limit(run):
    path = np.array([fill["inventory"] for fill in run["fills"]])

    assert np.abs(path).max() <= 0.005 + 1e-12
    assert path.max() > 0 > path.min()  # it was both long and short on the real tape


def test_adverse_selection_matches_the_mid_one_second_after_each_fill(run, tape):
    fills = pd.DataFrame(run["fills"])
    quotes = tape[tape["kind"] == "quote"]
    later = pd.DataFrame(
        {
            "due": quotes["ts_recv"].to_numpy(),
            "mid_later": ((quotes["bid_price"] + quotes["ask_price"]) / 2).to_numpy(),
        }
    )
    fills["due"] = fills["ts_recv"] + 1_000_000_000
    marked = pd.merge_asof(fills.sort_values("due"), later, on="due", direction="forward")
    marked = marked.dropna(subset=["mid_later"])
    sign = np.where(marked["side"] == "buy", 1.0, -1.0)

    assert run["markouts"] == len(marked)
    assert run["adverse_selection"] == pytest.approx(
        -(sign * (marked["mid_later"] - marked["mid"])).mean(), rel=1e-9
    )
    assert run["markout"] == pytest.approx(
        (sign * (marked["mid_later"] - marked["price"])).mean(), rel=1e-9
    )


def test_a_zero_fee_venue_earns_exactly_the_fees_back(tape):
    events = list(iter_quotes_trades(tape, SYMBOL))
    paid = _market_make("adaptive_quote", events, QuoteFillConfig())
    free = _market_make("adaptive_quote", events, QuoteFillConfig(maker_fee_bps={"spot": 0.0}))

    assert free["fees"] == 0.0
    assert len(free["fills"]) == len(paid["fills"])
    assert free["pnl"] == pytest.approx(paid["pnl"] + paid["fees"], abs=1e-6)
