"""News-driven samples: KO's real 2014 tweets merged with its daily bars (bars at the close)."""

from __future__ import annotations

from functools import cache

import pandas as pd

from core.data.loaders import read_bars_frame, read_tweets_frame
from core.data.news import iter_news_bar_events, news_bar_frame
from tests.strategy_samples import DATA, StrategySample

TWEETS = DATA / "tweets_timestamped_stocknet" / "tweets_KO_PEP_XOM_CVX_JPM_BAC.csv.gz"
PRICES = DATA / "equities_daily_stocknet88" / "prices"


@cache
def news_stream(symbol: str, start: str, end: str) -> tuple[pd.DataFrame, list]:
    """``symbol``'s tweets and bars from ``start`` to ``end`` (ISO dates, end exclusive)."""
    news = read_tweets_frame(TWEETS).frame
    bars = read_bars_frame(PRICES / f"{symbol}.csv", symbol).frame
    frame = news_bar_frame(news, bars, symbol)
    lo, hi = pd.Timestamp(start, tz="UTC").value, pd.Timestamp(end, tz="UTC").value
    frame = frame[(frame["ts_event"] >= lo) & (frame["ts_event"] < hi)].reset_index(drop=True)
    return frame, list(iter_news_bar_events(frame, symbol))


def earnings_reaction() -> StrategySample:
    # 2014: KO reported on Feb 18, Apr 15, Jul 22 and Oct 21.
    frame, events = news_stream("KO", "2014-01-01", "2015-01-01")
    return StrategySample(
        symbol="KO",
        config={"lookback": 20, "hold_bars": 10, "cooldown_bars": 20, "allow_short": True},
        events=events,
        frame=frame,
        bad_config={"lookback": 1},
        bad_message="lookback must be >= 2, was 1",
    )


def sentiment_analysis() -> StrategySample:
    frame, events = news_stream("KO", "2014-01-01", "2015-01-01")
    return StrategySample(
        symbol="KO",
        config={"span": 3, "entry": 0.05, "min_tweets": 1, "allow_short": True},
        events=events,
        frame=frame,
        bad_config={"entry": -0.1},
        bad_message="entry must be > 0, was -0.1",
    )


SAMPLES = {"earnings_reaction": earnings_reaction, "sentiment_analysis": sentiment_analysis}
