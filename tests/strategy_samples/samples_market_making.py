"""Market-making samples: real Binance spot BTCUSDT best bid/ask and trades (2024-08-08/09)."""

from __future__ import annotations

from functools import cache

import pandas as pd

from core.data.loaders import read_binance_quotes_frame, read_binance_trades_frame
from core.strategies.market_making.frames import iter_quotes_trades, quotes_trades_frame
from tests.strategy_samples import DATA, StrategySample

FOLDER = DATA / "crypto_l2_binance_hftbacktest" / "derived"
SYMBOL = "BTCUSDT"


@cache
def btcusdt_spot() -> pd.DataFrame:
    """The whole spot BTCUSDT capture (about 93k quotes and trades, 11 minutes) as one frame."""
    quotes = read_binance_quotes_frame(FOLDER / "bbo.csv.gz").frame
    trades = read_binance_trades_frame(FOLDER / "trades.csv.gz").frame
    return quotes_trades_frame(quotes, trades, symbol=SYMBOL, venue="spot")


@cache
def _slice(start: int, rows: int) -> tuple[pd.DataFrame, tuple]:
    frame = btcusdt_spot().iloc[start : start + rows].reset_index(drop=True)
    return frame, tuple(iter_quotes_trades(frame, SYMBOL))


def _sample(config: dict, bad_config: dict, bad_message: str) -> StrategySample:
    # Rows 20k-23k: about 25 seconds of tape around 23:56:30 UTC, with both quiet and busy spells.
    frame, events = _slice(20_000, 3_000)
    return StrategySample(
        symbol=SYMBOL,
        config=config,
        events=list(events),
        frame=frame,
        bad_config=bad_config,
        bad_message=bad_message,
    )


def adaptive_quote() -> StrategySample:
    return _sample(
        {"gamma": 0.01, "horizon_seconds": 1.0, "vol_span": 200, "k_span": 50},
        {"gamma": -1.0},
        "gamma must be > 0, was -1.0",
    )


def spread_adjuster() -> StrategySample:
    return _sample(
        {"flow_span": 50, "spread_multiplier": 1.5, "trade_weight": 0.4, "book_weight": 0.4},
        {"trade_weight": 0.7, "book_weight": 0.6},
        "trade_weight \\+ book_weight must be <= 1, was 0.7 \\+ 0.6",
    )


def volatility_responsive() -> StrategySample:
    # A ceiling low enough that this busy stretch pulls the quotes at times.
    return _sample(
        {"vol_span": 200, "vol_reference_bps": 0.5, "vol_ceiling_bps": 2.5},
        {"vol_reference_bps": 2.0, "vol_ceiling_bps": 1.5},
        "vol_ceiling_bps must be > vol_reference_bps, was 1.5 <= 2.0",
    )


SAMPLES = {
    "adaptive_quote": adaptive_quote,
    "spread_adjuster": spread_adjuster,
    "volatility_responsive": volatility_responsive,
}
