"""Arbitrage strategies on real data: Binance BTC funding carry, perp-spot lead-lag, FX triangle."""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np
import pandas as pd
import pytest

from core.data.fx import (
    ecb_triangle_frame,
    iter_fx_quotes,
    read_ecb_rates_frame,
    read_fx_triangle_frame,
)
from core.data.loaders import iter_funding, iter_quotes
from core.engine.analyzers import FillAnalyzer
from core.engine.engine import PositionSizing, TradingEngine
from core.engine.execution import TakerFillModel
from core.engine.venue import Venue
from core.errors import ConfigError
from core.model import Quote
from core.ports import StrategyDeployment
from core.strategies.arbitrage.funding_rate import FundingRateCarry, FundingRateConfig
from core.strategies.arbitrage.latency import LatencyConfig, LeadLagLatency
from core.strategies.arbitrage.triangular import Triangular, TriangularConfig
from tests.strategy_samples import DATA
from tests.strategy_samples.samples_arbitrage import btc_perp_and_spot, one_instrument

DAY = pd.Timedelta("1D").value


def _replay(strategy: Any, events: list[Any]) -> tuple[list[Any], np.ndarray]:
    """Signals emitted and the position held after each event."""
    signals, _, held = _replay_rows(strategy, events)
    return signals, held


def _replay_rows(strategy: Any, events: list[Any]) -> tuple[list[Any], list[int], np.ndarray]:
    """Signals emitted, the event row of each, and the position held after each event."""
    signals, rows, held = [], [], np.empty(len(events))
    for i, event in enumerate(events):
        signal = strategy.update(event)
        if signal is not None:
            signals.append(signal)
            rows.append(i)
        held[i] = strategy.target
    return signals, rows, held


# ---------------------------------------------------------------------------------------------
# Funding carry
# ---------------------------------------------------------------------------------------------


@cache
def _binance_btc_carry() -> tuple[pd.DataFrame, list[Any], np.ndarray]:
    frame = one_instrument("BTC-USDT", ("binance",))
    signals, held = _replay(
        FundingRateCarry(FundingRateConfig(), "BTC-USDT"), list(iter_funding(frame))
    )
    return frame, signals, held


def _daily_apr(frame: pd.DataFrame) -> pd.Series:
    """Independent annualized funding: mean 8-hourly rate of each UTC day * 3 * 365."""
    rates = pd.Series(frame["rate"].to_numpy(), index=pd.to_datetime(frame["ts_event"]))
    return rates.resample("1D").mean() * 3 * 365


def test_funding_carry_is_held_through_the_2021_bull_market_funding_and_dropped_when_negative():
    frame, _, held = _binance_btc_carry()
    daily = _daily_apr(frame)
    day = pd.to_datetime(frame["ts_event"]).dt.floor("1D").to_numpy()
    held_by_day = pd.Series(held, index=day).groupby(level=0).last()

    # pandas: Jan-Apr 2021 paid > 35 % a year on average; Jul 2021 and Nov 2022 were negative.
    assert daily["2021-01":"2021-04"].mean() > 0.35
    assert daily["2021-07"].mean() < 0 and daily["2022-11"].mean() < 0
    assert (held_by_day["2021-01-01":"2021-04-30"] == 1.0).mean() > 0.95
    assert held_by_day[pd.Timestamp("2021-02-15")] == 1.0
    # Flat on every day whose trailing week of funding was negative (the carry costs money).
    negative_week = daily.rolling(7).mean() < 0
    assert negative_week.sum() > 30
    assert (held_by_day[negative_week.reindex(held_by_day.index, fill_value=False)] == 0.0).all()


def test_funding_expected_rate_matches_a_pandas_ewm_and_entries_beat_the_hurdle():
    frame, signals, _ = _binance_btc_carry()
    config = FundingRateConfig()
    ewm = frame["rate"].ewm(span=config.span, adjust=False).mean() * 3 * 365
    by_ts = pd.Series(ewm.to_numpy(), index=frame["ts_event"].to_numpy())

    for signal in signals:
        assert signal.reason["expected_apr"] == pytest.approx(by_ts[signal.ts_event], rel=1e-12)
        if signal.target_position == 1.0:
            assert signal.reason["carry_apr"] > max(config.entry_apr, config.breakeven_apr)
        else:
            assert signal.reason["carry_apr"] < config.hurdle_apr
    assert sum(s.target_position == 1.0 for s in signals) >= 5


def test_funding_carry_collected_is_the_sum_of_rates_paid_into_the_held_position():
    frame = one_instrument("BTC-USDT", ("binance",))
    strategy = FundingRateCarry(FundingRateConfig(), "BTC-USDT")
    signals, rows, held = _replay_rows(strategy, list(iter_funding(frame)))
    # A settlement pays the position held going into it (the previous event's target).
    before = np.concatenate([[0.0], held[:-1]])
    earned = np.cumsum(before * frame["rate"].to_numpy())

    assert strategy.carry_collected == pytest.approx(earned[-1], rel=1e-9)
    assert signals[-1].reason["carry_collected"] == pytest.approx(earned[rows[-1]], rel=1e-9)
    assert earned[-1] > 0.3  # 2020-2023 Binance BTC carry: tens of percent of notional


def test_a_costly_round_trip_raises_the_entry_hurdle_and_cuts_trading():
    frame, cheap_signals, _ = _binance_btc_carry()
    costly = FundingRateConfig(round_trip_cost_bps=200.0, horizon_days=30.0)
    signals, _ = _replay(FundingRateCarry(costly, "BTC-USDT"), list(iter_funding(frame)))

    entries = [s for s in signals if s.target_position == 1.0]
    assert costly.breakeven_apr == pytest.approx(0.02 * 365 / 30)
    assert all(s.reason["carry_apr"] > costly.breakeven_apr for s in entries)
    assert 0 < len(entries) < sum(s.target_position == 1.0 for s in cheap_signals)


def test_cross_venue_carry_shorts_the_higher_funding_venue_and_matches_pandas():
    frame = one_instrument("BTC-USDT", ("binance", "bybit"))
    config = FundingRateConfig(
        venue="bybit", hedge_venue="binance", span=21, entry_apr=0.1, exit_apr=0.02
    )
    signals, _ = _replay(FundingRateCarry(config, "BTC-USDT"), list(iter_funding(frame)))
    apr = {
        venue: frame[frame["venue"] == venue]
        .set_index("ts_event")["rate"]
        .ewm(span=21, adjust=False)
        .mean()
        * 3
        * 365
        for venue in ("bybit", "binance")
    }

    entries = [s for s in signals if s.target_position != 0.0]
    assert len(entries) > 10
    for s in entries:
        spread = apr["bybit"][s.ts_event] - apr["binance"][s.ts_event]
        assert np.sign(spread) == s.target_position and abs(spread) > config.hurdle_apr
        assert s.reason["perp_units"] == -s.target_position  # short the perp where funding is high
    vectorized = FundingRateCarry.vectorized(config, frame).dropna()
    changes = vectorized[vectorized.diff() != 0]
    assert frame["ts_event"][changes.index].tolist() == [s.ts_event for s in signals]


def test_funding_config_refuses_a_hedge_on_the_same_venue():
    with pytest.raises(ConfigError, match="hedge_venue must differ from venue, was 'bybit'"):
        FundingRateConfig.from_dict({"venue": "bybit", "hedge_venue": "bybit"})


# ---------------------------------------------------------------------------------------------
# Lead-lag latency
# ---------------------------------------------------------------------------------------------


@cache
def _lead_lag() -> tuple[pd.DataFrame, list[Any], list[int]]:
    frame = btc_perp_and_spot()
    signals, rows, _ = _replay_rows(
        LeadLagLatency(LatencyConfig(), "BTCUSDT:usdm/spot"), list(iter_quotes(frame))
    )
    return frame, signals, rows


def test_latency_entries_come_right_after_real_perp_mid_jumps_that_spot_has_not_followed():
    frame, signals, rows = _lead_lag()
    config = LatencyConfig()
    perp = frame[frame["venue"] == "usdm"]
    spot = frame[frame["venue"] == "spot"]
    # Independent: the perp's mid change from its previous quote, and spot's mid at that time.
    perp_mid = (perp["bid_price"] + perp["ask_price"]) / 2
    perp_jump = (perp_mid / perp_mid.shift(1) - 1) * 1e4
    spot_mid = pd.Series(
        ((spot["bid_price"] + spot["ask_price"]) / 2).to_numpy(), index=spot["ts_recv"].to_numpy()
    )
    entries = [s for s in signals if s.target_position != 0.0]
    assert len(entries) >= 4
    for s, row in zip(signals, rows, strict=True):
        if s.target_position == 0.0:
            continue
        assert frame["venue"][row] == "usdm"  # every entry is triggered by a perp quote
        jump = perp_jump[row] * s.target_position
        assert jump > config.jump_bps
        recv = frame["ts_recv"][row]
        spot_move = (spot_mid.asof(recv) / spot_mid.asof(recv - 50_000_000) - 1) * 1e4
        assert spot_move * s.target_position < jump  # spot lagged the perp's move


def _latency_run(latency_ms: float) -> dict[str, float]:
    """The lead-lag sample through the engine at a taker venue with ``latency_ms``, trading
    0.001 BTC (a size the touch almost always shows, so the latency alone moves the fills)."""
    frame, _, _ = _lead_lag()
    config = LatencyConfig(latency_ms=latency_ms)
    deployment = StrategyDeployment(
        name="latency", version="1", type_name="latency", config=config.to_dict(),
        symbols=("BTCUSDT:usdm/spot",),
    )  # fmt: skip
    analyzer = FillAnalyzer()
    venue = Venue(
        taker=TakerFillModel(latency_ns=round(latency_ms * 1e6), default_fee_bps=config.fee_bps)
    )
    engine = TradingEngine(
        [deployment], venue=venue, sizing=PositionSizing(units=0.001), keep_history=True,
        analyzer=analyzer, initial_capital=0.0,
    )  # fmt: skip
    engine.run(list(iter_quotes(frame)))
    fees = sum(f.fee for f in engine.all_fills)
    net = engine.portfolio.equity  # capital 0: the equity is the PnL, marked to the last mids
    return {
        "orders": len({f.order_id for f in engine.all_fills}),
        "fees": fees,
        "net_pnl": net,
        "gross_pnl": net + fees,
        **{k: analyzer.report()[k] for k in ("stale_fills", "moved_fills")},
    }


def test_latency_net_pnl_after_fees_is_reported_and_decays_with_reaction_latency(record_property):
    stated_ms = LatencyConfig().latency_ms
    results = {ms: _latency_run(ms) for ms in (0.0, stated_ms, 100.0)}
    for ms, result in results.items():
        record_property(f"latency_{ms:g}ms_net_pnl_usdt", round(result["net_pnl"], 4))
        print(f"latency {ms:g} ms: {result}")

    stated = results[stated_ms]
    assert stated["orders"] >= 8 and stated["fees"] > 0
    # Zero latency fills the very stale quote the signal saw: that is the edge, before fees.
    assert results[0.0]["stale_fills"] == results[0.0]["orders"] and results[0.0]["gross_pnl"] > 0
    assert results[0.0]["gross_pnl"] > stated["gross_pnl"] > results[100.0]["gross_pnl"]
    assert stated["moved_fills"] > 0  # spot often reprices before a 5 ms order lands


def test_latency_skips_and_counts_a_crossed_quote():
    strategy = LeadLagLatency(LatencyConfig(basis_span=2), "BTCUSDT:usdm/spot")
    crossed = Quote(
        symbol="BTCUSDT",
        ts_event=1,
        venue="spot",
        bid_price=101.0,
        bid_size=1.0,
        ask_price=100.0,
        ask_size=1.0,
    )

    assert strategy.update(crossed) is None
    assert strategy.rejected_quotes == 1
    assert strategy.to_state()["bid"] is None


# ---------------------------------------------------------------------------------------------
# Triangular
# ---------------------------------------------------------------------------------------------


@cache
def _fxcm_replay() -> tuple[list[Any], Triangular]:
    strategy = Triangular(TriangularConfig(venue="fxcm"), "EUR/USD/GBP")
    signals, _ = _replay(strategy, list(iter_fx_quotes(read_fx_triangle_frame("fxcm").frame)))
    return signals, strategy


def test_triangular_rejects_the_297_crossed_fxcm_closes_counted_in_provenance():
    signals, strategy = _fxcm_replay()
    crossed = sum(
        int((pair["bid_close"] > pair["ask_close"]).sum())
        for pair in (
            pd.read_csv(DATA / "fx_triangle_daily_lean" / "fxcm" / f"{p}_daily.csv")
            for p in ("EURUSD", "GBPUSD", "EURGBP")
        )
    )

    assert crossed == 297 and strategy.rejected_crossed == 297
    assert signals[-1].reason["rejected_crossed"] <= 297
    loaded = read_fx_triangle_frame("fxcm", reject_crossed=True)
    assert len(loaded.rejected) == 297
    assert all("crossed close: bid" in r.reason for r in loaded.rejected)


@pytest.mark.parametrize("market", ["fxcm", "oanda"])
def test_triangular_fires_exactly_on_the_dates_where_an_executable_cycle_beats_costs(market):
    config = TriangularConfig(venue=market, fee_bps=0.0, min_edge_bps=1.0)
    strategy = Triangular(config, "EUR/USD/GBP")
    signals, _ = _replay(strategy, list(iter_fx_quotes(read_fx_triangle_frame(market).frame)))
    # Independent: the staging script's aligned closes, crossed pair-dates dropped.
    aligned = pd.read_csv(DATA / "fx_triangle_daily_lean" / market / "triangle_close_aligned.csv")
    clean = np.ones(len(aligned), dtype=bool)
    for pair in ("EURUSD", "GBPUSD", "EURGBP"):
        clean &= (aligned[f"{pair}_bid"] <= aligned[f"{pair}_ask"]).to_numpy()
    forward = aligned["cycle_usd_eur_gbp_usd"]
    reverse = aligned["EURUSD_bid"] / (aligned["GBPUSD_ask"] * aligned["EURGBP_ask"])
    want_forward = set(aligned["date"][clean & (forward > config.hurdle)])
    want_reverse = set(aligned["date"][clean & (reverse > config.hurdle)])

    def dates(sign: float) -> set[str]:
        tz = "Etc/GMT+5" if market == "fxcm" else "UTC"
        return {
            pd.Timestamp(s.ts_event, tz="UTC").tz_convert(tz).strftime("%Y-%m-%d")
            for s in signals
            if s.target_position == sign
        }

    assert want_forward and dates(1.0) == want_forward
    assert dates(-1.0) == want_reverse
    assert all(
        s.reason["forward_product"] > config.hurdle for s in signals if s.target_position == 1
    )


def test_ecb_reference_rates_close_the_triangle_and_never_trigger():
    quotes = ecb_triangle_frame(read_ecb_rates_frame().frame)
    wide = quotes.pivot(index="ts_event", columns="symbol", values="bid_price")
    forward = wide["EURGBP"] * wide["GBPUSD"] / wide["EURUSD"]
    reverse = wide["EURUSD"] / (wide["GBPUSD"] * wide["EURGBP"])
    config = TriangularConfig(venue="ecb", min_edge_bps=0.01)

    signals, _ = _replay(Triangular(config, "EUR/USD/GBP"), list(iter_fx_quotes(quotes)))

    assert len(wide) > 7000
    assert np.abs(forward - 1).max() < 1e-12 and np.abs(reverse - 1).max() < 1e-12
    assert [s.target_position for s in signals] == [0.0]
    assert (Triangular.vectorized(config, quotes).dropna() == 0.0).all()


def test_triangular_refuses_a_zero_cost_hurdle_that_rounding_noise_would_beat():
    with pytest.raises(ConfigError, match=r"3 \* fee_bps \+ min_edge_bps must be > 0, was 0.0"):
        TriangularConfig(fee_bps=0.0, min_edge_bps=0.0)


def test_latency_ignores_the_trades_that_share_its_feed():
    from core.data.feeds import replay_events
    from core.strategies.catalogue import build

    events = replay_events("crypto_l2_binance_hftbacktest", symbols=["BTCUSDT"], fast=True)
    strategy = build("latency", {}, "BTCUSDT:usdm/spot")

    signals = [s for e in events if (s := strategy.update(e)) is not None]

    assert any(e.kind == "trade" for e in events)
    assert all(s.symbol == "BTCUSDT:usdm/spot" for s in signals)
