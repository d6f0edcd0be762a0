"""The ``news`` context: sentiment per ticker and of the market, and recent earnings events.

Per ticker, the mean sentiment of its tweets over the last ``window_days`` days (each tweet
scored ``P(bullish) - P(bearish)`` by the registered classifier) with the daily means, a
tweet-weighted market sentiment, and the earnings events of the last ``event_days`` days found
by :mod:`core.strategies.news.earnings_reaction`'s own detection. Tweets count from their
``created_at_utc``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import msgspec
import numpy as np
import pandas as pd
from prefect import flow, task

from core.data.datasets import (
    data_root,
    get_dataset,
    ingested_state,
    load_bars,
    load_shipped_file,
)
from core.data.loaders import read_sentiment_frame, read_tweets_frame
from core.data.news import BARS_DATASET, TWEETS_DATASET, news_bar_frame
from core.errors import ConfigError, DataError
from core.messages import (
    CONTEXT_SCHEMA_VERSION,
    EarningsEvent,
    MarketSentiment,
    NewsContext,
    TickerSentiment,
)
from core.strategies.news.earnings_reaction import (
    EarningsReaction,
    EarningsReactionConfig,
    earnings_features,
)
from core.strategies.news.sentiment_model import (
    SentimentModelConfig,
    bullish_minus_bearish,
    train_sentiment_model,
)
from pipelines.strategic.common import (
    DAY_NS,
    day_end_ns,
    iso_day,
    namespace_or_default,
    parse_as_of,
    write_contexts,
)

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

NEWS_DATA_END = date(2015, 12, 31)
"""The last day of ``tweets_timestamped_stocknet``."""
SENTIMENT_DATASET = "sentiment_twitter_financial_news"


def tweets_up_to(tweets: pd.DataFrame, as_of: date) -> pd.DataFrame:
    """The tweets public by the end of ``as_of`` (``ts_event`` before the next day)."""
    kept = tweets[tweets["ts_event"].to_numpy(np.int64) < day_end_ns(as_of)]
    return kept.reset_index(drop=True)


def ticker_sentiment(
    tweets: pd.DataFrame,
    scores: np.ndarray,
    symbols: Sequence[str],
    as_of: date,
    window_days: int,
) -> dict[str, dict[str, Any]]:
    """Mean tweet score per ticker over the ``window_days`` UTC days ending on ``as_of``.

    Parameters
    ----------
    tweets
        A tweets frame (``ts_event``, ``symbols``), already cut at ``as_of``.
    scores
        One score per tweet row, in [-1, 1].
    symbols
        The tickers to report (a ticker with no tweet in the window gets ``sentiment`` None).
    as_of, window_days
        The window is ``[as_of - window_days + 1, as_of]``.

    Returns
    -------
    dict
        Per ticker: ``tweets`` (count), ``sentiment`` (mean score or None), ``daily`` (one
        ``{date, tweets, sentiment}`` per day that had tweets, oldest first) and ``last_tweet``
        (ISO date of its latest tweet up to ``as_of``, or None).
    """
    if window_days < 1:
        raise ConfigError(f"window_days must be >= 1, was {window_days}")
    if len(scores) != len(tweets):
        raise DataError(f"{len(tweets)} tweets but {len(scores)} scores")
    ts = tweets["ts_event"].to_numpy(np.int64)
    start = day_end_ns(as_of) - window_days * DAY_NS
    days = ts // DAY_NS
    result = {}
    for symbol in symbols:
        mine = tweets["symbols"].map(lambda tickers, s=symbol: s in tickers).to_numpy(bool)
        recent = mine & (ts >= start)
        daily = []
        for day in np.unique(days[recent]):
            on_day = recent & (days == day)
            daily.append(
                {
                    "date": iso_day(int(day) * DAY_NS),
                    "tweets": int(on_day.sum()),
                    "sentiment": float(np.mean(scores[on_day])),
                }
            )
        result[symbol] = {
            "tweets": int(recent.sum()),
            "sentiment": float(np.mean(scores[recent])) if recent.any() else None,
            "daily": daily,
            "last_tweet": iso_day(int(ts[mine].max())) if mine.any() else None,
        }
    return result


def market_sentiment(per_ticker: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Tweet-weighted mean of the tickers' window sentiment (None when no ticker had tweets)."""
    counted = [(t["tweets"], t["sentiment"]) for t in per_ticker.values() if t["tweets"] > 0]
    total = sum(n for n, _ in counted)
    mean = math.fsum(n * s for n, s in counted) / total if total else None
    return {"tweets": total, "sentiment": mean}


def earnings_events(
    frame: pd.DataFrame,
    symbol: str,
    as_of: date,
    event_days: int,
    config: EarningsReactionConfig | None = None,
) -> list[dict[str, Any]]:
    """Earnings events of one ticker's news frame in the ``event_days`` days up to ``as_of``.

    Detection is :class:`EarningsReaction`'s own: with ``hold_bars=1`` (and shorts allowed, so a
    negative reaction is kept) its target is non-zero exactly on event closes, after its
    cooldown; :func:`earnings_features` gives the evidence of each.

    Parameters
    ----------
    frame
        The standard news frame of ``symbol`` (:func:`core.data.news.news_bar_frame`); rows
        after ``as_of`` are dropped here, so the caller may pass the whole history.
    """
    cut = frame[frame["ts_event"].to_numpy(np.int64) < day_end_ns(as_of)]
    cut = cut.reset_index(drop=True)
    base = config or EarningsReactionConfig()
    detector = msgspec.structs.replace(base, hold_bars=1, allow_short=True)
    is_bar = cut["kind"].to_numpy() == "bar"
    if not is_bar.any():
        return []
    targets = EarningsReaction.vectorized(detector, cut).to_numpy()[is_bar]
    features = earnings_features(detector, cut)
    since = day_end_ns(as_of) - event_days * DAY_NS
    events = []
    for i in np.flatnonzero(np.nan_to_num(targets) != 0.0):
        row = features.iloc[int(i)]
        if int(row["ts_event"]) < since:
            continue
        events.append(
            {
                "symbol": symbol,
                "date": iso_day(int(row["ts_event"])),
                "direction": int(np.sign(targets[i])),
                "abnormal_return": float(row["abnormal_return"]),
                "gap_z": float(row["gap_z"]),
                "volume_ratio": float(row["volume_ratio"]),
                "keyword_tweets": int(row["keyword_tweets"]),
            }
        )
    return events


def news_document(
    as_of: date,
    tweets: pd.DataFrame,
    bars: Mapping[str, pd.DataFrame],
    score: Any,
    *,
    window_days: int = 5,
    event_days: int = 7,
    model: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Build the ``news`` context as of ``as_of`` (without ``computed_at``; see :func:`stamp`).

    Parameters
    ----------
    tweets
        A tweets frame (:func:`core.data.loaders.read_tweets_frame`); later tweets are dropped.
    bars
        Daily bars per ticker (00:00 UTC stamps, as the bar loader gives them).
    score
        ``texts -> scores`` in [-1, 1], e.g. ``lambda t: bullish_minus_bearish(model, t)``.
    window_days, event_days
        Days of tweets in the sentiment window; days back to look for earnings events.
    model
        What scored the tweets (name, version, how it was found), recorded in the context.
    """
    public = tweets_up_to(tweets, as_of)
    texts = public["text"].tolist()
    scores = np.asarray(score(texts) if texts else [], dtype=np.float64)
    per_ticker = ticker_sentiment(public, scores, list(bars), as_of, window_days)
    events = []
    for symbol, frame in bars.items():
        merged = news_bar_frame(public, frame, symbol)
        events.extend(earnings_events(merged, symbol, as_of, event_days))
    latest = int(public["ts_event"].max()) if len(public) else None
    document = NewsContext(
        schema_version=CONTEXT_SCHEMA_VERSION,
        as_of=as_of.isoformat(),
        model=dict(model or {}),
        window_days=window_days,
        event_days=event_days,
        tickers=msgspec.convert(per_ticker, dict[str, TickerSentiment]),
        market=msgspec.convert(market_sentiment(per_ticker), MarketSentiment),
        earnings_events=msgspec.convert(
            sorted(events, key=lambda e: (e["date"], e["symbol"])), list[EarningsEvent]
        ),
        last_tweet=None if latest is None else iso_day(latest),
    )
    return document.to_dict()


# --- loading shipped data and the registered model (I/O; cached where the data never changes)


def shipped_tweets() -> pd.DataFrame:
    """Every tweet of ``tweets_timestamped_stocknet``: the shipped file, then the rows ingested
    after it (``strategy-engine ingest``), as every other reader of the set sees them."""
    return _tweets_as_of(ingested_state(TWEETS_DATASET))


# Keyed by the ingested files' state: a flow process reads rows ingested since its last read.
@lru_cache(maxsize=1)
def _tweets_as_of(_state: tuple[tuple[str, int, int], ...]) -> pd.DataFrame:
    (path,) = get_dataset(TWEETS_DATASET).paths
    return load_shipped_file(TWEETS_DATASET, path, read_tweets_frame).frame


def shipped_ticker_bars() -> dict[str, pd.DataFrame]:
    """Daily bars of every ticker the tweets cover."""
    tickers = list(get_dataset(TWEETS_DATASET).tickers)
    return {s: r.frame for s, r in load_bars(BARS_DATASET, tickers).items()}


@dataclass(frozen=True)
class SentimentScorer:
    """The classifier that scores tweets and where it came from."""

    model: Pipeline
    info: dict[str, Any]

    def __call__(self, texts: list[str]) -> np.ndarray:
        return bullish_minus_bearish(self.model, texts)


def registered_sentiment_scorer() -> SentimentScorer:
    """Load the registered sentiment classifier: ``champion``, else the newest version.

    With no version registered at all, train one on the shipped train split (held-out metrics
    on the valid split), register it and use it; ``info["source"]`` says which happened. A
    version trained here is not promoted: ``champion`` decides what the core trades.
    """
    from registry.learned_models import SENTIMENT_TYPE, load_registered_sentiment_model
    from registry.strategy_registry import StrategyRegistry, model_name

    name = model_name(SENTIMENT_TYPE)
    registry = StrategyRegistry()
    champion = registry.get_alias(name, "champion")
    if champion is not None:
        model, _ = load_registered_sentiment_model("champion")
        return SentimentScorer(model, {"name": name, "version": champion, "source": "champion"})
    versions = registry.versions(name)
    if versions:
        newest = str(versions[-1].version)
        model, _ = load_registered_sentiment_model(newest)
        return SentimentScorer(model, {"name": name, "version": newest, "source": "newest"})
    return train_and_register_sentiment_model()


def train_and_register_sentiment_model() -> SentimentScorer:
    """Train the classifier on the shipped train split, register it, return it."""
    from registry.learned_models import log_sentiment_model, sentiment_evidence, text_data_hash

    folder = data_root() / SENTIMENT_DATASET
    train = read_sentiment_frame(folder / "sent_train.csv")
    valid = read_sentiment_frame(folder / "sent_valid.csv")
    config = SentimentModelConfig()
    model, metrics = train_sentiment_model(
        train.frame["text"],
        train.frame["label"],
        config,
        valid_texts=valid.frame["text"],
        valid_labels=valid.frame["label"],
    )
    blank = int((train.frame["text"].str.strip() == "").sum())
    validation = {
        "success": blank == 0,
        "suite": "sentiment_text",
        "rows": len(train.frame),
        "loader_rejections": len(train.rejected),
        "failed_expectations": ["text not blank"] if blank else [],
        **sentiment_evidence(
            metrics,
            train_texts=train.frame["text"],
            valid_texts=valid.frame["text"],
            valid_labels=valid.frame["label"],
        ),
    }
    version = log_sentiment_model(
        model,
        metrics,
        data_hash=text_data_hash(train.frame["text"], train.frame["label"]),
        validation=validation,
        model_config=config,
    )
    info = {
        "name": version.name,
        "version": version.version,
        "source": "trained",
        "run_id": version.run_id,
        "accuracy": metrics["accuracy"],
        "macro_f1": metrics["macro_f1"],
    }
    return SentimentScorer(model, info)


@task(name="score-news", retries=1, retry_delay_seconds=1)
def score_news(as_of: date, window_days: int, event_days: int) -> dict[str, Any]:
    # The model is loaded inside the task: a fitted pipeline never becomes a (persisted,
    # pickled) task result.
    scorer = registered_sentiment_scorer()
    return news_document(
        as_of,
        shipped_tweets(),
        shipped_ticker_bars(),
        scorer,
        window_days=window_days,
        event_days=event_days,
        model=scorer.info,
    )


@flow(name="news-context", log_prints=False)
def news_context(
    as_of: date | None = None,
    namespace: str | None = None,
    window_days: int = 5,
    event_days: int = 7,
) -> dict[str, Any]:
    """Score the tweets public by the end of ``as_of`` and write the ``news`` context.

    ``as_of`` is a replay date (the data are historical); None means the end of the shipped
    tweets, :data:`NEWS_DATA_END`. Redis is ``$REDIS_URL`` (else the embedded server); the
    namespace defaults to ``$STRATEGY_ENGINE_NAMESPACE`` or ``se``.
    """
    day = parse_as_of(as_of, NEWS_DATA_END)
    document = score_news(day, window_days, event_days)
    return write_contexts(namespace_or_default(namespace), {"news": document})["news"]
