"""The shipped data sets as live-like feeds: every event of a set in arrival order.

A replay publishes one of these into Redis Streams (``strategy-engine replay``), and the core
consumes it exactly as it would an exchange adapter's feed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from core.data.datasets import get_dataset, load_bars, load_shipped_file
from core.data.loaders import (
    iter_funding,
    iter_quotes,
    iter_trades,
    merge_bars,
    read_binance_quotes_frame,
    read_binance_trades_frame,
    read_funding_frame,
)
from core.errors import DataError

BINANCE = "crypto_l2_binance_hftbacktest"
FUNDING = "funding_rates_btc_eth_supervik"
FUNDING_FILE = "derived/funding_rates_utc.csv.gz"
FAST_BARS = 300  # per symbol, for tests
FAST_TICKS = 20_000


def replay_events(
    dataset: str, symbols: Sequence[str] | None = None, fast: bool = False
) -> list[Any]:
    """Every event of ``dataset`` (or of ``symbols`` in it) in the order it would arrive.

    Bars are ordered by time then symbol; Binance quotes and trades by local receive time
    (the two venues' exchange clocks disagree by about a second); funding by settlement time.
    """
    if dataset == BINANCE:
        return _binance(symbols, fast)
    if dataset == FUNDING:
        return _funding(symbols, fast)
    entry = get_dataset(dataset)
    if entry.kind != "bars" or not entry.tickers:
        raise DataError(
            f"dataset '{dataset}' cannot be replayed as a feed "
            f"(feeds: {BINANCE}, {FUNDING}, and per-ticker bar sets)"
        )
    loaded = load_bars(dataset, list(symbols) if symbols else None)
    frames = {s: r.frame.iloc[:FAST_BARS] if fast else r.frame for s, r in loaded.items()}
    return merge_bars(frames)


def _binance(symbols: Sequence[str] | None, fast: bool) -> list[Any]:
    quotes = load_shipped_file(BINANCE, "derived/bbo.csv.gz", read_binance_quotes_frame).frame
    trades = load_shipped_file(BINANCE, "derived/trades.csv.gz", read_binance_trades_frame).frame
    if symbols:
        quotes = quotes[quotes["symbol"].isin(symbols)]
        trades = trades[trades["symbol"].isin(symbols)]
    events: list[Any] = [*iter_quotes(quotes), *iter_trades(trades)]
    received = np.array([e.ts_recv for e in events], dtype=np.int64)
    ordered = [events[i] for i in np.argsort(received, kind="stable")]
    return ordered[:FAST_TICKS] if fast else ordered


def _funding(symbols: Sequence[str] | None, fast: bool) -> list[Any]:
    frame = load_shipped_file(FUNDING, FUNDING_FILE, read_funding_frame).frame
    if symbols:
        frame = frame[frame["symbol"].isin(symbols)]
    frame = frame.sort_values(["ts_event", "venue", "symbol"], kind="stable")
    events = list(iter_funding(frame))
    return events[:FAST_TICKS] if fast else events
