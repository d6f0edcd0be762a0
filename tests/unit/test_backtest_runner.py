"""The standard backtest result, the per-type streams and the family simulator wrappers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.backtest.runner import backtest, turnover
from core.backtest.simulators import _latency_fills
from core.backtest.streams import stream_for
from core.errors import ConfigError, DataError
from core.model import Bar, MacroPoint, NewsItem
from core.strategies.arbitrage.funding_rate import FundingRateCarry, FundingRateConfig
from core.strategies.arbitrage.latency import LatencyConfig, simulate_latency_fills
from core.strategies.arbitrage.triangular import Triangular, TriangularConfig
from core.strategies.catalogue import build


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
    assert result["costs"] == pytest.approx(costs)
    assert result["pnl"] == pytest.approx(result["carry_collected"] - costs)
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
    assert result["trades"] == 3 * len(entered) > 0
    assert result["pnl"] == pytest.approx(pnl, rel=1e-9)


def test_latency_fill_replay_agrees_with_the_simulators_total():
    stream = stream_for("latency", fast=True)
    config = LatencyConfig()
    strategy = build("latency", {}, stream.instances[0])
    target = np.full(len(stream.frame), np.nan)
    for i, event in enumerate(stream.events):
        signal = strategy.update(event)
        if signal is not None:
            target[i] = signal.target_position

    qty, price, _ = _latency_fills(stream.frame, target, config)
    totals = simulate_latency_fills(stream.frame, pd.Series(target), config)

    lagger = stream.frame[stream.frame["venue"] == "spot"].iloc[-1]
    mark = qty.sum() * 0.5 * (lagger["bid_price"] + lagger["ask_price"])
    fees = np.sum(np.abs(qty) * price) * config.fee_bps / 1e4
    assert len(qty) == totals["trades"] > 0
    assert -np.sum(qty * price) + mark - fees == pytest.approx(totals["net_pnl"], abs=1e-9)


def test_market_maker_result_reports_the_fill_models_pnl_on_max_inventory_capital():
    result = backtest("adaptive_quote", fast=True)

    stream = stream_for("adaptive_quote", fast=True)
    quotes = stream.frame[stream.frame["kind"] == "quote"].iloc[0]
    capital = 0.005 * 0.5 * (quotes["bid_price"] + quotes["ask_price"])  # default max_inventory
    assert result["capital"] == pytest.approx(capital)
    assert result["total_return"] == pytest.approx(result["pnl"] / capital)
    assert result["trades"] > 0
    assert abs(result["final_position"]) <= 0.005 + 1e-12
