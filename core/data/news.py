"""One ticker's tweets and daily bars merged into a single, causally ordered event stream.

Publication time decides the order. A tweet is usable from its ``created_at_utc``
(``NewsItem.ts_event``). A daily bar is usable only at the day's close, but the bar loader
stamps it at the day's 00:00 UTC; in the news stream every daily bar is therefore restamped at
**21:00 UTC of its date** (:data:`DAILY_CLOSE_OFFSET_NS`), which is at or after the 16:00 New York
close in both winter (EST, 21:00 UTC) and summer (EDT, 20:00 UTC). A tweet sent after the close
(say 22:30 UTC) thus sorts after that day's bar and can only act on the next day's close.
When a tweet and a bar carry the same stamp, the tweet sorts first: it was public at that
instant, so the close decision may use it.

The standard **news frame** (what :meth:`Strategy.vectorized` of news strategies reads) has one
row per event, in stream order:

``ts_event`` (int64 ns, availability time), ``kind`` (``"news"`` or ``"bar"``), ``text`` (the
tweet, ``""`` on bar rows), ``open, high, low, close, volume`` (float64, NaN on news rows).
:func:`iter_news_bar_events` turns the same frame into the ``NewsItem``/``Bar`` events replayed
through ``update``.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd

from core.data.datasets import get_dataset, load_shipped_file, load_symbol_bars
from core.data.loaders import read_tweets_frame
from core.errors import DataError
from core.model import Bar, NewsItem

DAILY_CLOSE_OFFSET_NS = 21 * 3_600 * 1_000_000_000
NEWS_FRAME_COLUMNS = ("ts_event", "kind", "text", "open", "high", "low", "close", "volume")
TWEETS_DATASET = "tweets_timestamped_stocknet"
BARS_DATASET = "equities_daily_stocknet88"
_PRICE_COLUMNS = ("open", "high", "low", "close", "volume")
_KIND_ORDER = {"news": 0, "bar": 1}  # ties: the tweet was public at the close instant


def bars_at_close(bars: pd.DataFrame) -> pd.DataFrame:
    """Return daily bars (stamped at 00:00 UTC) restamped at 21:00 UTC, when they are usable."""
    stamped = bars.copy()
    midnight = stamped["ts_event"].to_numpy(np.int64)
    if np.any(midnight % (24 * 3_600 * 1_000_000_000)):
        raise DataError("bars_at_close expects daily bars stamped at 00:00 UTC")
    stamped["ts_event"] = midnight + DAILY_CLOSE_OFFSET_NS
    return stamped


def news_bar_frame(news: pd.DataFrame, bars: pd.DataFrame, symbol: str) -> pd.DataFrame:
    """Merge ``symbol``'s tweets and its daily bars into the standard news frame.

    Parameters
    ----------
    news
        A tweets frame as :func:`core.data.loaders.read_tweets_frame` returns it (``ts_event``,
        ``text``, ``symbols``); only items whose ``symbols`` include ``symbol`` are kept.
    bars
        Daily bars as :func:`core.data.loaders.read_bars_frame` returns them (00:00 UTC stamps).
    symbol
        The ticker.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`NEWS_FRAME_COLUMNS`, ordered by (availability time, news before bar,
        original order), with a fresh ``RangeIndex``.
    """
    mine = news[news["symbols"].map(lambda symbols: symbol in symbols)]
    news_rows = pd.DataFrame({"ts_event": mine["ts_event"].to_numpy(np.int64), "kind": "news"})
    news_rows["text"] = mine["text"].astype("str").to_numpy()
    for column in _PRICE_COLUMNS:
        news_rows[column] = np.nan
    bar_rows = bars_at_close(bars)[["ts_event", *_PRICE_COLUMNS]].astype({"ts_event": np.int64})
    bar_rows.insert(1, "kind", "bar")
    bar_rows.insert(2, "text", "")
    merged = pd.concat([news_rows, bar_rows], ignore_index=True)
    order = np.lexsort(
        (
            np.arange(len(merged)),
            merged["kind"].map(_KIND_ORDER).to_numpy(),
            merged["ts_event"].to_numpy(),
        )
    )
    frame = merged.iloc[order].reset_index(drop=True)
    frame[list(_PRICE_COLUMNS)] = frame[list(_PRICE_COLUMNS)].astype("float64")
    return frame[list(NEWS_FRAME_COLUMNS)]


def iter_news_bar_events(frame: pd.DataFrame, symbol: str) -> Iterator[NewsItem | Bar]:
    """Yield the events of a news frame in row order: a NewsItem or a Bar per row."""
    columns = [frame[c].to_numpy().tolist() for c in NEWS_FRAME_COLUMNS]
    for ts, kind, text, o, h, lo, c, v in zip(*columns, strict=True):
        if kind == "news":
            yield NewsItem(ts_event=ts, text=text, symbols=(symbol,), source="stocknet")
        else:
            yield Bar(symbol=symbol, ts_event=ts, open=o, high=h, low=lo, close=c, volume=v)


def load_news_bar_frame(
    symbol: str, start: str | None = None, end: str | None = None
) -> pd.DataFrame:
    """Load the shipped tweets and bars of ``symbol`` as a news frame, optionally cut to dates.

    ``start`` and ``end`` are ISO dates (inclusive, UTC) applied to availability times.

    Raises
    ------
    DataError
        If the tweets data set has no ``symbol``.
    """
    tweets = get_dataset(TWEETS_DATASET)
    if symbol not in tweets.tickers:
        raise DataError(f"no tweets for symbol '{symbol}' (have: {', '.join(tweets.tickers)})")
    news = load_shipped_file(TWEETS_DATASET, tweets.paths[0], read_tweets_frame).frame
    bars = load_symbol_bars(BARS_DATASET, symbol).frame
    frame = news_bar_frame(news, bars, symbol)
    stamps = frame["ts_event"]
    keep = pd.Series(True, index=frame.index)
    if start is not None:
        keep &= stamps >= pd.Timestamp(start, tz="UTC").value
    if end is not None:
        keep &= stamps < (pd.Timestamp(end, tz="UTC") + pd.Timedelta(days=1)).value
    return frame[keep].reset_index(drop=True)
