"""Per strategy type, the real event stream that the shipped data sets give it.

:func:`stream_for` answers "what does type X run on": the events in replay order, the instance
symbols a deployment should name (a pair ``"KO/PEP"``, a triangle ``"EUR/USD/GBP"``), the capital
that one unit per instance costs at the start, and for the quote, funding and FX kinds their
standard frame. ``fast=True`` gives the small slices the tests use (the windows the strategy
samples were chosen on); the default is the whole set.

Capital conventions (one unit per instance):

* bars, news, macro: the first open of each traded symbol, summed;
* pairs: first open of leg A plus first open of leg B, summed over pairs;
* quotes (market makers, latency): the price of one unit of the instrument (its first mid);
  the market-making backtest scales it by ``max_inventory``;
* funding carry and the FX triangle: 1.0, i.e. one unit of notional per instance.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import pandas as pd

from core.data.datasets import (
    get_dataset,
    ingested_state,
    load_bars,
    load_shipped_file,
)
from core.data.fx import (
    TRIANGLE_DATASET,
    ecb_triangle_frame,
    iter_fx_quotes,
    read_ecb_rates_frame,
    read_fx_triangle_frame,
)
from core.data.loaders import (
    LoadResult,
    RejectedRow,
    iter_bars,
    iter_funding,
    iter_merged_bars,
    iter_quotes,
    read_bars_frame,
    read_binance_quotes_frame,
    read_binance_trades_frame,
    read_funding_frame,
    read_tweets_frame,
)
from core.data.macro import (
    TREASURY_DATASET,
    TREASURY_SERIES,
    between,
    fred_series,
    iter_macro_events,
    lean_daily_bars,
    macro_event_frame,
    sp500_index_bars,
    treasury_curve,
    treasury_points,
)
from core.data.news import TWEETS_DATASET, iter_news_bar_events, news_bar_frame
from core.errors import DataError
from core.model import Bar, NewsItem
from core.strategies.base import DataKind
from core.strategies.catalogue import strategy_type
from core.strategies.market_making.frames import iter_quotes_trades, quotes_trades_frame
from core.strategies.statarb.pairs_common import pair_frame, split_pair

FAST_BAR_ROWS = 500
FAST_BAR_SYMBOLS = 3
FAST_PAIR_ROWS = 700
FAST_QUOTE_ROWS = (20_000, 3_000)  # market makers: about 25 s of BTCUSDT spot tape
FAST_LATENCY_WINDOW = ("2024-08-08 23:57:40", "2024-08-08 23:58:00")
FAST_FUNDING_END = "2021-07-01"
FAST_FX_ROWS = 1_200
FAST_NEWS_WINDOW = ("2014-01-01", "2015-01-01")
# The windows the macro samples were picked on: each holds a regime change the rule must see.
FAST_MACRO_WINDOWS = {
    "fed_policy": ("2003-07-01", "2008-01-01"),
    "global_liquidity": ("2005-01-01", "2011-01-01"),
    "macro_trend": ("1998-01-01", "2003-07-01"),
}
FAST_INDEX_WINDOW = ("2005-01-01", "2010-01-01")

SKFOLIO_DATASET = "equities_adjclose_skfolio"
INTRADAY_SPY_DATASET = "intraday_spy_1min_pyalgotrade"
BINANCE_DATASET = "crypto_l2_binance_hftbacktest"
BINANCE_QUOTES, BINANCE_TRADES = "derived/bbo.csv.gz", "derived/trades.csv.gz"
FUNDING_DATASET = "funding_rates_btc_eth_supervik"
ECB_DATASET = "fx_ecb_reference_rates"
MACRO_DATASETS = ("macro_fred_monetary", "us_treasury_yields_zipline")
DEFAULT_PAIRS = {
    "equities_daily_stocknet88": ("KO/PEP", "XOM/CVX"),
    "etf_daily_pyalgotrade": ("GLD/GDX",),
}
_MARKET_MAKERS = frozenset({"adaptive_quote", "spread_adjuster", "volatility_responsive"})
_FRED_SERIES = frozenset({"FEDFUNDS", "M2SL", "M1SL", "BOGMBASE", "EXUSEU"})
_TENOR_OF = {series: tenor for tenor, series in TREASURY_SERIES.items()}


@dataclass(frozen=True)
class Stream:
    """What one backtest replays.

    ``events`` are in replay order; ``instances`` the deployment's symbols; ``capital`` what one
    unit per instance costs at the start (see the module docstring); ``frame`` the standard frame
    of a quote, funding or FX data kind; ``rejected_rows`` rows the loaders dropped.
    """

    type_name: str
    dataset: str
    events: list[Any]
    instances: tuple[str, ...]
    capital: float
    frame: pd.DataFrame | None = None
    rejected_rows: int = 0
    # The rows counted in ``rejected_rows`` as (symbol, row), where the loader names them
    # (per-symbol bar files, a user's CSV); other kinds give the count only.
    rejections: tuple[tuple[str, RejectedRow], ...] = ()


def stream_for(
    type_name: str,
    dataset: str | None = None,
    symbols: Sequence[str] | None = None,
    fast: bool = False,
    *,
    params: Mapping[str, Any] | None = None,
) -> Stream:
    """Build the event stream of strategy type ``type_name`` from a shipped data set.

    Parameters
    ----------
    type_name
        A catalogued strategy type.
    dataset
        A shipped data set; defaults to the type's own (``StrategySpec.dataset``).
    symbols
        Instances to run: tickers for bar and news types, ``"A/B"`` for pairs, the instrument
        for quote and funding types (``BTCUSDT``, ``BTC-USDT``), the broker for the FX triangle
        (``fxcm``, ``oanda``). Defaults to the data set's default symbols.
    fast
        Use a small slice (for tests) instead of the whole set.
    params
        The strategy's parameters, where they decide which series to load (macro types) or
        which venues (funding).

    Raises
    ------
    DataError
        If the data set is unknown or does not serve this type, or a symbol is not in it.
    """
    cls = strategy_type(type_name)
    kind = cls.spec.data_kind
    name = dataset or cls.spec.dataset
    chosen = tuple(symbols) if symbols else None
    config = cls.config_type.from_dict(dict(params or {})).to_dict()
    if kind is DataKind.BARS:
        return _bars_dataset(type_name, name, chosen, fast)
    if kind is DataKind.PAIR_BARS:
        return _pairs_dataset(type_name, name, chosen, fast)
    if kind is DataKind.NEWS:
        return _news_dataset(type_name, name, chosen, fast)
    if kind is DataKind.MACRO:
        return _macro_dataset(type_name, name, chosen, fast, config)
    if kind is DataKind.FUNDING:
        return _funding_dataset(type_name, name, chosen, fast, config)
    if type_name == "triangular":
        return _triangle_dataset(type_name, name, chosen, fast)
    if type_name == "latency":
        return _latency_dataset(type_name, name, chosen, fast)
    if type_name in _MARKET_MAKERS:
        return _quoting_dataset(type_name, name, chosen, fast)
    raise DataError(f"no shipped data stream is known for strategy type '{type_name}'")


# ---------------------------------------------------------------------------------------------
# Bars and pairs
# ---------------------------------------------------------------------------------------------


def bars_stream(type_name: str, dataset: str, frames: Mapping[str, pd.DataFrame]) -> Stream:
    """One instance per symbol over its bars; all symbols merged in time order."""
    frames = _non_empty(frames, dataset)
    events: list[Any]
    if len(frames) == 1:
        ((symbol, frame),) = frames.items()
        events = list(iter_bars(frame, symbol))
    else:
        events = list(iter_merged_bars(frames))
    return Stream(
        type_name=type_name,
        dataset=dataset,
        events=events,
        instances=tuple(sorted(frames)),
        capital=_first_opens(frames.values()),
    )


def pair_stream(
    type_name: str, dataset: str, frames: Mapping[str, pd.DataFrame], pairs: Sequence[str]
) -> Stream:
    """One instance per ``"A/B"`` pair; every leg's bars merged in time order."""
    frames = _non_empty(frames, dataset)
    legs = [split_pair(p) for p in pairs]
    for leg in {s for pair in legs for s in pair} - set(frames):
        raise DataError(f"no bars for pair leg '{leg}' in {dataset}")
    capital = sum(float(frames[a]["open"].iloc[0] + frames[b]["open"].iloc[0]) for a, b in legs)
    return Stream(
        type_name=type_name,
        dataset=dataset,
        events=list(iter_merged_bars(frames)),
        instances=tuple(pairs),
        capital=capital,
    )


def _bars_dataset(
    type_name: str, dataset: str, symbols: tuple[str, ...] | None, fast: bool
) -> Stream:
    frames, rejections = _bar_frames(dataset, symbols, fast)
    return _with_rejects(bars_stream(type_name, dataset, frames), len(rejections), rejections)


def csv_bars_stream(type_name: str, path: str | Path, symbol: str) -> Stream:
    """The stream of a user's CSV of one instrument's bars (``dataset`` is ``csv:<symbol>``).

    The instrument is named by the caller: a file name says nothing reliable about it. Rows
    the loader cannot use are kept in ``rejections`` with their line and reason.
    """
    loaded = read_bars_frame(path, symbol)
    rejections = tuple((symbol, row) for row in loaded.rejected)
    stream = bars_stream(type_name, f"csv:{symbol}", {symbol: loaded.frame})
    return _with_rejects(stream, len(rejections), rejections)


def _bar_frames(
    dataset: str, symbols: tuple[str, ...] | None, fast: bool
) -> tuple[dict[str, pd.DataFrame], tuple[tuple[str, RejectedRow], ...]]:
    """The bars of a shipped bar set, keyed by symbol, and the rows that were rejected."""
    if dataset == SKFOLIO_DATASET:
        _only(symbols, ("SP500",), dataset)
        bars = sp500_index_bars()
        return {"SP500": between(bars, *FAST_INDEX_WINDOW) if fast else bars}, ()
    entry = get_dataset(dataset)
    if dataset == INTRADAY_SPY_DATASET:
        _only(symbols, ("SPY",), dataset)
        parts = [read_bars_frame(path, "SPY") for path in entry.files()]
        frame = pd.concat([r.frame for r in parts], ignore_index=True)
        return {"SPY": frame}, tuple(("SPY", row) for r in parts for row in r.rejected)
    if not entry.bars_pattern:
        raise DataError(f"dataset '{dataset}' holds {entry.kind}, not per-symbol bars")
    chosen = list(symbols) if symbols else list(entry.tickers)
    if fast and not symbols:
        chosen = chosen[:FAST_BAR_SYMBOLS]
    loaded = load_bars(dataset, chosen)
    frames = {s: r.frame for s, r in loaded.items()}
    if fast:
        frames = {s: f.iloc[:FAST_BAR_ROWS].reset_index(drop=True) for s, f in frames.items()}
    return frames, tuple((s, row) for s, r in loaded.items() for row in r.rejected)


def _pairs_dataset(
    type_name: str, dataset: str, pairs: tuple[str, ...] | None, fast: bool
) -> Stream:
    if dataset not in DEFAULT_PAIRS:
        raise DataError(
            f"pair types run on {', '.join(sorted(DEFAULT_PAIRS))}, not on dataset '{dataset}'"
        )
    chosen = pairs or DEFAULT_PAIRS[dataset]
    legs = sorted({leg for pair in chosen for leg in split_pair(pair)})
    loaded = load_bars(dataset, legs)
    frames = {s: r.frame for s, r in loaded.items()}
    if fast:
        frames = _cut_pairs(frames, chosen, FAST_PAIR_ROWS)
    stream = pair_stream(type_name, dataset, frames, chosen)
    return _with_rejects(stream, sum(len(r.rejected) for r in loaded.values()))


def _cut_pairs(
    frames: dict[str, pd.DataFrame], pairs: Sequence[str], rows: int
) -> dict[str, pd.DataFrame]:
    """Keep every leg's bars up to the ``rows``-th pair bar of the first pair."""
    a, b = split_pair(pairs[0])
    joined = pair_frame(frames[a], frames[b])
    last = int(joined["ts_event"].iloc[min(rows, len(joined)) - 1])
    return {s: f[f["ts_event"] <= last].reset_index(drop=True) for s, f in frames.items()}


# ---------------------------------------------------------------------------------------------
# News and macro (context events merged with bars)
# ---------------------------------------------------------------------------------------------


def _news_dataset(
    type_name: str, dataset: str, symbols: tuple[str, ...] | None, fast: bool
) -> Stream:
    if dataset != TWEETS_DATASET:
        raise DataError(f"news types run on {TWEETS_DATASET}, not on dataset '{dataset}'")
    entry = get_dataset(dataset)
    chosen = symbols or (entry.tickers[:1] if fast else entry.tickers)
    for symbol in chosen:
        if symbol not in entry.tickers:
            raise DataError(f"no tweets for symbol '{symbol}' (have: {', '.join(entry.tickers)})")
    loaded_tweets = _tweets()
    tweets, rejected = loaded_tweets.frame, len(loaded_tweets.rejected)
    if fast:
        start, end = FAST_NEWS_WINDOW
    else:  # the days the tweets cover: before and after, the rule only sees silence
        stamps = tweets["ts_event"]
        start = pd.Timestamp(int(stamps.min())).strftime("%Y-%m-%d")
        end = (pd.Timestamp(int(stamps.max())) + pd.Timedelta(days=1)).strftime("%Y-%m-%d")
    per_symbol, opens = [], []
    for symbol in chosen:
        loaded = load_bars("equities_daily_stocknet88", [symbol])[symbol]
        rejected += len(loaded.rejected)
        frame = between(news_bar_frame(tweets, loaded.frame, symbol), start, end)
        per_symbol.append(list(iter_news_bar_events(frame, symbol)))
        opens.append(frame.loc[frame["kind"] == "bar", "open"].iloc[0])
    # Merge by time, news before bars at one stamp (as within each symbol's stream).
    events = list(heapq.merge(*per_symbol, key=_news_order))
    return Stream(type_name, dataset, events, tuple(chosen), float(sum(opens)), None, rejected)


def _news_order(event: NewsItem | Bar) -> tuple[int, int]:
    return event.ts_event, 1 if isinstance(event, Bar) else 0


def _macro_dataset(
    type_name: str,
    dataset: str,
    symbols: tuple[str, ...] | None,
    fast: bool,
    config: dict[str, Any],
) -> Stream:
    if dataset not in MACRO_DATASETS:
        raise DataError(f"macro types run on {', '.join(MACRO_DATASETS)}, not on '{dataset}'")
    series = [v for k, v in config.items() if k.endswith("_series") and isinstance(v, str)]
    loaded_points = [_macro_points(name) for name in series]
    points = [frame for frame, _ in loaded_points]
    chosen = symbols or ("SPY",)
    loaded_bars = {s: lean_daily_bars(s) for s in chosen}
    bars = {s: loaded.frame for s, loaded in loaded_bars.items()}
    rejected = sum(n for _, n in loaded_points)
    rejected += sum(len(loaded.rejected) for loaded in loaded_bars.values())
    if fast:
        start, end = FAST_MACRO_WINDOWS.get(type_name, ("2005-01-01", "2010-01-01"))
        points = [between(p, start, end) for p in points]
        bars = {s: between(f, start, end) for s, f in bars.items()}
    else:  # stop the bars where the first series ends: later decisions would use stale data
        last = min((int(p["ts_event"].max()) for p in points), default=None)
        if last is not None:
            bars = {s: f[f["ts_event"] <= last].reset_index(drop=True) for s, f in bars.items()}
    bars = _non_empty(bars, dataset)
    frame = macro_event_frame(points, bars)
    events = list(iter_macro_events(frame))
    opens = _first_opens(bars.values())
    return Stream(type_name, dataset, events, tuple(chosen), opens, frame, rejected)


def _macro_points(series: str) -> tuple[pd.DataFrame, int]:
    """A series' points and how many of its rows the loader could not use."""
    if series in _FRED_SERIES:
        loaded = fred_series(series)
        return loaded.frame, len(loaded.rejected)
    if series in _TENOR_OF:
        curve = _treasury()
        return treasury_points(curve.frame, (_TENOR_OF[series],)), len(curve.rejected)
    known = ", ".join(sorted(_FRED_SERIES | set(_TENOR_OF)))
    raise DataError(f"no shipped macro series '{series}' (known: {known})")


# ---------------------------------------------------------------------------------------------
# Funding, quotes and the FX triangle (replayed at the engine's carry, quote and cycle venues)
# ---------------------------------------------------------------------------------------------


def _funding_dataset(
    type_name: str,
    dataset: str,
    symbols: tuple[str, ...] | None,
    fast: bool,
    config: dict[str, Any],
) -> Stream:
    if dataset != FUNDING_DATASET:
        raise DataError(f"funding types run on {FUNDING_DATASET}, not on dataset '{dataset}'")
    symbol = _single(symbols, "BTC-USDT", dataset)
    loaded = _funding()
    frame = loaded.frame
    known = sorted(set(frame["symbol"]))
    if symbol not in known:
        raise DataError(f"no funding rates for '{symbol}' (have: {', '.join(known)})")
    venues = [v for v in (config.get("venue", ""), config.get("hedge_venue", "")) if v]
    rows = frame[(frame["symbol"] == symbol) & frame["venue"].isin(venues)]
    rows = rows.sort_values(["ts_event", "venue"], kind="stable").reset_index(drop=True)
    if fast:
        rows = rows[rows["ts_event"] < pd.Timestamp(FAST_FUNDING_END).value]
        rows = rows.reset_index(drop=True)
    if rows.empty:
        raise DataError(f"no funding rates for '{symbol}' on venue(s) {', '.join(venues)}")
    events = list(iter_funding(rows))
    return Stream(type_name, dataset, events, (symbol,), 1.0, rows, len(loaded.rejected))


def _latency_dataset(
    type_name: str, dataset: str, symbols: tuple[str, ...] | None, fast: bool
) -> Stream:
    _require_dataset(dataset, BINANCE_DATASET, type_name)
    symbol = _single(symbols, "BTCUSDT", dataset)
    loaded = _binance_quotes()
    frame = loaded.frame
    frame = frame[frame["symbol"] == symbol].sort_values("ts_recv", kind="stable")
    perp = frame.loc[frame["venue"] == "usdm", "ts_recv"]
    if perp.empty:
        raise DataError(f"no USD-M quotes for '{symbol}' in {dataset} (latency needs both)")
    if fast:
        start, end = (pd.Timestamp(t).value for t in FAST_LATENCY_WINDOW)
    else:  # the minutes both venues were captured
        start, end = int(perp.min()), int(perp.max())
    frame = frame[frame["ts_recv"].between(start, end)].reset_index(drop=True)
    spot = frame[frame["venue"] == "spot"]
    unit = float(0.5 * (spot["bid_price"].iloc[0] + spot["ask_price"].iloc[0]))
    instance = f"{symbol}:usdm/spot"
    events = list(iter_quotes(frame))
    return Stream(type_name, dataset, events, (instance,), unit, frame, len(loaded.rejected))


def _quoting_dataset(
    type_name: str, dataset: str, symbols: tuple[str, ...] | None, fast: bool
) -> Stream:
    _require_dataset(dataset, BINANCE_DATASET, type_name)
    symbol = _single(symbols, "BTCUSDT", dataset)
    frame, rejected = _spot_quotes_trades(symbol)
    if frame.empty:
        raise DataError(f"no spot quotes or trades for '{symbol}' in {dataset}")
    if fast:
        start, rows = FAST_QUOTE_ROWS
        frame = frame.iloc[start : start + rows].reset_index(drop=True)
    quotes = frame[frame["kind"] == "quote"]
    unit = float(0.5 * (quotes["bid_price"].iloc[0] + quotes["ask_price"].iloc[0]))
    events = list(iter_quotes_trades(frame, symbol))
    return Stream(type_name, dataset, events, (symbol,), unit, frame, rejected)


def _triangle_dataset(
    type_name: str, dataset: str, symbols: tuple[str, ...] | None, fast: bool
) -> Stream:
    if dataset == ECB_DATASET:
        _only(symbols, ("ecb",), dataset)
        frame = ecb_triangle_frame(read_ecb_rates_frame().frame)
        rejected = 0
    elif dataset == TRIANGLE_DATASET:
        market = _single(symbols, "fxcm", dataset)
        loaded = read_fx_triangle_frame(market)
        frame, rejected = loaded.frame, len(loaded.rejected)
    else:
        raise DataError(
            f"triangular runs on {TRIANGLE_DATASET} or {ECB_DATASET}, not on '{dataset}'"
        )
    if fast:
        frame = frame.iloc[:FAST_FX_ROWS].reset_index(drop=True)
    events = list(iter_fx_quotes(frame))
    return Stream(type_name, dataset, events, ("EUR/USD/GBP",), 1.0, frame, rejected)


# ---------------------------------------------------------------------------------------------
# Shared loading (cached: the report reads each file once) and small checks
# ---------------------------------------------------------------------------------------------


def _tweets() -> LoadResult:
    return _tweets_as_of(ingested_state(TWEETS_DATASET))


# Keyed by the ingested files' state: rows ingested since the last read are read too.
@lru_cache(maxsize=1)
def _tweets_as_of(_state: tuple[tuple[str, int, int], ...]) -> LoadResult:
    (path,) = get_dataset(TWEETS_DATASET).paths
    return load_shipped_file(TWEETS_DATASET, path, read_tweets_frame)


def _treasury() -> LoadResult:
    return _treasury_as_of(ingested_state(TREASURY_DATASET))


@lru_cache(maxsize=1)
def _treasury_as_of(_state: tuple[tuple[str, int, int], ...]) -> LoadResult:
    return treasury_curve()


def _funding() -> LoadResult:
    return _funding_as_of(ingested_state(FUNDING_DATASET))


@lru_cache(maxsize=1)
def _funding_as_of(_state: tuple[tuple[str, int, int], ...]) -> LoadResult:
    (path,) = get_dataset(FUNDING_DATASET).paths
    return load_shipped_file(FUNDING_DATASET, path, read_funding_frame)


def _binance_quotes() -> LoadResult:
    return _binance_quotes_as_of(ingested_state(BINANCE_DATASET))


@lru_cache(maxsize=1)
def _binance_quotes_as_of(_state: tuple[tuple[str, int, int], ...]) -> LoadResult:
    return load_shipped_file(BINANCE_DATASET, BINANCE_QUOTES, read_binance_quotes_frame)


def _spot_quotes_trades(symbol: str) -> tuple[pd.DataFrame, int]:
    """The spot tape of ``symbol`` and the rows of both files the loaders could not use."""
    return _spot_quotes_trades_as_of(symbol, ingested_state(BINANCE_DATASET))


@lru_cache(maxsize=4)
def _spot_quotes_trades_as_of(
    symbol: str, _state: tuple[tuple[str, int, int], ...]
) -> tuple[pd.DataFrame, int]:
    trades = load_shipped_file(BINANCE_DATASET, BINANCE_TRADES, read_binance_trades_frame)
    quotes = _binance_quotes()
    frame = quotes_trades_frame(quotes.frame, trades.frame, symbol=symbol, venue="spot")
    return frame, len(quotes.rejected) + len(trades.rejected)


def _first_opens(frames: Iterable[pd.DataFrame]) -> float:
    return float(sum(float(f["open"].iloc[0]) for f in frames))


def _non_empty(frames: Mapping[str, pd.DataFrame], dataset: str) -> dict[str, pd.DataFrame]:
    for symbol, frame in frames.items():
        if frame.empty:
            raise DataError(f"no bars for '{symbol}' in {dataset}")
    if not frames:
        raise DataError(f"no symbols to backtest in {dataset}")
    return dict(frames)


def _with_rejects(
    stream: Stream, rejected: int, rejections: tuple[tuple[str, RejectedRow], ...] = ()
) -> Stream:
    return Stream(
        stream.type_name,
        stream.dataset,
        stream.events,
        stream.instances,
        stream.capital,
        stream.frame,
        rejected,
        rejections,
    )


def _single(symbols: tuple[str, ...] | None, default: str, dataset: str) -> str:
    if not symbols:
        return default
    if len(symbols) > 1:
        raise DataError(f"{dataset} streams run one instrument at a time, got {list(symbols)}")
    return symbols[0]


def _only(symbols: tuple[str, ...] | None, allowed: tuple[str, ...], dataset: str) -> None:
    for symbol in symbols or ():
        if symbol not in allowed:
            raise DataError(f"dataset '{dataset}' has no symbol '{symbol}' (has: {allowed[0]})")


def _require_dataset(dataset: str, wanted: str, type_name: str) -> None:
    if dataset != wanted:
        raise DataError(f"{type_name} runs on {wanted}, not on dataset '{dataset}'")
