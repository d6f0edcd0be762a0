"""The standard backtest result, the per-type streams and every type's venue in the engine."""

from __future__ import annotations

import numpy as np
import pytest

from core.backtest.runner import backtest, engine_for, turnover
from core.backtest.streams import stream_for
from core.errors import ConfigError, DataError
from core.model import Bar, MacroPoint, NewsItem, Quote, Side
from core.strategies.arbitrage.funding_rate import FundingRateCarry, FundingRateConfig
from core.strategies.arbitrage.latency import LatencyConfig
from core.strategies.arbitrage.triangular import Triangular, TriangularConfig


def test_turnover_is_traded_notional_over_the_mean_of_the_equity_curve():
    assert turnover(300.0, np.array([100.0, 200.0]), 100.0) == pytest.approx(2.0)


def test_turnover_falls_back_to_the_initial_capital_when_equity_averages_below_zero():
    assert turnover(50.0, np.array([10.0, -30.0]), 25.0) == pytest.approx(2.0)


def test_pair_stream_names_the_pair_and_costs_one_unit_of_each_leg():
    stream = stream_for("cointegration", "equities_daily_stocknet88", ["KO/PEP"], fast=True)

    legs = {e.symbol for e in stream.events}
    ko = next(e for e in stream.events if e.symbol == "KO")
    pep = next(e for e in stream.events if e.symbol == "PEP")
    assert stream.instances == ("KO/PEP",)
    assert legs == {"KO", "PEP"}
    assert stream.capital == pytest.approx(ko.open + pep.open)
    stamps = [e.ts_event for e in stream.events]
    assert stamps == sorted(stamps)


def test_news_stream_merges_tickers_in_time_with_tweets_before_the_close_they_precede():
    stream = stream_for("sentiment_analysis", symbols=["KO", "PEP"], fast=True)

    keys = [(e.ts_event, isinstance(e, Bar)) for e in stream.events]
    assert keys == sorted(keys)
    assert {s for e in stream.events if isinstance(e, NewsItem) for s in e.symbols} == {
        "KO",
        "PEP",
    }
    assert stream.instances == ("KO", "PEP")


def test_macro_stream_carries_the_series_the_config_names_and_stops_bars_at_their_end():
    stream = stream_for("macro_trend")

    series = {e.series for e in stream.events if isinstance(e, MacroPoint)}
    last_point = max(e.ts_event for e in stream.events if isinstance(e, MacroPoint))
    last_bar = max(e.ts_event for e in stream.events if isinstance(e, Bar))
    assert series == {"DGS10", "DGS3MO"}
    assert last_bar <= last_point


def test_an_unknown_data_set_or_symbol_is_a_data_error_naming_it():
    with pytest.raises(DataError, match="unknown dataset 'nope'"):
        stream_for("ma_crossover", "nope")
    with pytest.raises(DataError, match="'ZZZZ'"):
        stream_for("ma_crossover", "equities_daily_stocknet88", ["ZZZZ"])


def test_an_out_of_range_parameter_fails_before_any_data_is_read():
    with pytest.raises(ConfigError, match="fast_period must be < slow_period"):
        backtest("ma_crossover", dataset="nope", params={"fast": 40})


def test_funding_ledger_is_carry_collected_minus_half_a_round_trip_per_unit_changed():
    result = backtest("funding_rate", fast=True)

    # Independently: the vectorized targets of the same rows give the position changes.
    stream = stream_for("funding_rate", fast=True)
    config = FundingRateConfig()
    targets = FundingRateCarry.vectorized(config, stream.frame).dropna()
    held = np.concatenate([[0.0], targets.to_numpy()])
    units_changed = np.abs(np.diff(held)).sum()
    costs = units_changed * config.round_trip_cost_bps / 2 / 1e4
    # The carry: each settlement of the venue pays the position held going into it x rate.
    frame = stream.frame
    held_before = targets.reindex(frame.index).ffill().fillna(0.0).shift(1).fillna(0.0).to_numpy()
    main = (frame["venue"].astype(str) == config.venue).to_numpy()
    carry = float(np.sum(held_before[main] * frame["rate"].to_numpy(np.float64)[main]))
    assert carry != 0.0
    assert result["costs"] == pytest.approx(costs)
    assert result["carry_collected"] == pytest.approx(carry, rel=1e-9)
    assert result["pnl"] == pytest.approx(carry - costs, rel=1e-9)
    assert result["trades"] == 2 * int((np.diff(held) != 0).sum()) > 0


def test_triangular_pnl_is_the_sum_of_each_entered_cycles_product_minus_one():
    result = backtest("triangular", fast=True)

    # Independently: carry each pair's last uncrossed close, recompute both cycle products.
    frame = stream_for("triangular", fast=True).frame
    config = TriangularConfig()
    ok = (frame["bid_price"] > 0) & (frame["bid_price"] <= frame["ask_price"])
    legs = {}
    for pair in config.legs:
        mine = ok & (frame["symbol"] == pair)
        legs[pair] = frame[["bid_price", "ask_price"]].where(mine).ffill()
    ab, cb, ac = (legs[p] for p in config.legs)
    forward = ac["bid_price"] * cb["bid_price"] / ab["ask_price"]
    reverse = ab["bid_price"] / (cb["ask_price"] * ac["ask_price"])
    target = Triangular.vectorized(config, frame).dropna()
    entered = target[(target != 0) & (target != target.shift(1).fillna(0.0))]
    pnl = sum((forward[i] if t > 0 else reverse[i]) - 1.0 for i, t in entered.items())
    # Each cycle is four ledger entries: the first currency bought, exchanged for the second
    # (two entries), and that one sold; they leave no currency held.
    assert result["cycles"] == len(entered) > 0
    assert result["trades"] == 4 * len(entered)
    assert result["pnl"] == pytest.approx(pnl, rel=1e-9)


def test_latency_fills_take_the_laggers_book_standing_when_each_order_arrives():
    stream = stream_for("latency", fast=True)
    config = LatencyConfig()
    engine, _, _ = engine_for(stream, LatencyConfig().to_dict())
    engine.run(stream.events)

    # Independently: each order's first fill is at the last spot quote received at or before
    # its decision's receive time plus the latency, on the order's side.
    spot = [e for e in stream.events if isinstance(e, Quote) and e.venue == "spot"]
    spot = [q for q in spot if 0 < q.bid_price <= q.ask_price]
    recv = np.array([q.ts_recv for q in spot])
    decided = {s.ts_event: s for s in engine.all_signals}
    decision_recv = {e.ts_event: e.ts_recv for e in stream.events if e.ts_event in decided}
    first_fills = {}
    for fill in engine.all_fills:
        first_fills.setdefault(fill.order_id, fill)
    assert len(first_fills) >= 2
    for order_id, fill in first_fills.items():
        ts_decided = int(order_id.split("-")[-2])
        arrival = decision_recv[ts_decided] + round(config.latency_ms * 1e6)
        standing = spot[int(np.searchsorted(recv, arrival, side="right")) - 1]
        expected = standing.ask_price if fill.side is Side.BUY else standing.bid_price
        assert fill.price == expected
        assert fill.symbol == "BTCUSDT:spot"
        assert fill.fee == pytest.approx(fill.quantity * fill.price * config.fee_bps / 1e4)


def test_market_maker_result_reports_the_fill_models_pnl_on_max_inventory_capital():
    result = backtest("adaptive_quote", fast=True)

    stream = stream_for("adaptive_quote", fast=True)
    quotes = stream.frame[stream.frame["kind"] == "quote"].iloc[0]
    capital = 0.005 * 0.5 * (quotes["bid_price"] + quotes["ask_price"])  # default max_inventory
    assert result["capital"] == pytest.approx(capital)
    assert result["total_return"] == pytest.approx(result["pnl"] / capital)
    assert result["trades"] > 0
    assert abs(result["final_position"]) <= 0.005 + 1e-12
