"""Arbitrage samples: Binance BTC funding, Binance BTCUSDT perp vs spot quotes, FXCM FX triangle."""

from __future__ import annotations

from functools import cache

import pandas as pd

from core.data.fx import iter_fx_quotes, read_fx_triangle_frame
from core.data.loaders import (
    iter_funding,
    iter_quotes,
    read_binance_quotes_frame,
    read_funding_frame,
)
from tests.strategy_samples import DATA, StrategySample

FUNDING_FILE = DATA / "funding_rates_btc_eth_supervik" / "derived" / "funding_rates_utc.csv.gz"
BBO_FILE = DATA / "crypto_l2_binance_hftbacktest" / "derived" / "bbo.csv.gz"


@cache
def funding_frame() -> pd.DataFrame:
    """Every venue's funding rates (UTC-corrected file), file order."""
    return read_funding_frame(FUNDING_FILE).frame


def one_instrument(symbol: str, venues: tuple[str, ...]) -> pd.DataFrame:
    """Funding rows of ``symbol`` on ``venues`` by time (venues alphabetical within a stamp)."""
    frame = funding_frame()
    rows = frame[(frame["symbol"] == symbol) & frame["venue"].isin(venues)]
    return rows.sort_values(["ts_event", "venue"], kind="stable").reset_index(drop=True)


@cache
def btc_perp_and_spot() -> pd.DataFrame:
    """BTCUSDT spot and USD-M quotes in arrival order, over the minutes both were captured."""
    frame = read_binance_quotes_frame(BBO_FILE).frame
    frame = frame[frame["symbol"] == "BTCUSDT"]
    frame = frame.sort_values("ts_recv", kind="stable").reset_index(drop=True)
    perp = frame.loc[frame["venue"] == "usdm", "ts_recv"]
    inside = frame["ts_recv"].between(perp.min(), perp.max())
    return frame[inside].reset_index(drop=True)


def funding_rate() -> StrategySample:
    frame = one_instrument("BTC-USDT", ("binance",))
    frame = frame[frame["ts_event"] < pd.Timestamp("2021-07-01").value].reset_index(drop=True)
    return StrategySample(
        symbol="BTC-USDT",
        config={"venue": "binance", "span": 9, "entry_apr": 0.15, "exit_apr": 0.05},
        events=list(iter_funding(frame)),
        frame=frame,
        bad_config={"entry_apr": 0.10, "exit_apr": 0.20},
        bad_message="exit_apr must be < entry_apr, was 0.2 >= 0.1",
    )


def latency() -> StrategySample:
    frame = btc_perp_and_spot()
    # 23:57:40-23:58:00 local: the sharpest perp moves of the capture, ~5,000 quotes.
    start = pd.Timestamp("2024-08-08 23:57:40").value
    end = pd.Timestamp("2024-08-08 23:58:00").value
    frame = frame[frame["ts_recv"].between(start, end)].reset_index(drop=True)
    return StrategySample(
        symbol="BTCUSDT:usdm/spot",
        config={"basis_span": 500, "entry_bps": 2.0, "fee_bps": 0.5},
        events=list(iter_quotes(frame)),
        frame=frame,
        bad_config={"entry_bps": 0.8, "fee_bps": 0.5},
        bad_message="entry_bps must be > round-trip fee 2 \\* fee_bps, was 0.8 <= 1.0",
    )


def triangular() -> StrategySample:
    # FXCM 2007-2008: the crossed closes cluster here, and so do the few real cycle edges.
    frame = read_fx_triangle_frame("fxcm").frame.iloc[:1200].reset_index(drop=True)
    return StrategySample(
        symbol="EUR/USD/GBP",
        config={"venue": "fxcm", "fee_bps": 0.0, "min_edge_bps": 1.0},
        events=list(iter_fx_quotes(frame)),
        frame=frame,
        bad_config={"fee_bps": -0.5},
        bad_message="fee_bps must be >= 0, was -0.5",
    )


SAMPLES = {"funding_rate": funding_rate, "latency": latency, "triangular": triangular}
