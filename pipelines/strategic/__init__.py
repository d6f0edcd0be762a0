"""The strategic tier: news and high-time-frame context, computed as of a date, written to Redis.

The shipped data sets are historical, so "now" is a **replay date** ``as_of``: every figure in a
context is computed only from what was public by the end of that day (UTC), by the same
publication-time rules the strategies follow (:mod:`core.data.news`, :mod:`core.data.macro`):
tweets at their ``created_at_utc``, daily equity bars at 21:00 UTC of their date, FRED figures at
their assumed publication day, Treasury yields the day after their curve date. With no ``as_of``
a flow uses the end of its shipped data (:data:`NEWS_DATA_END`, :data:`HIGH_TIME_FRAME_DATA_END`).

Contexts (``RedisStore.set_context``), each with ``schema_version``, ``as_of`` (ISO date),
``computed_at`` (ISO UTC wall time of the computation) and the numbers:

* ``news``: per ticker, the mean sentiment of its tweets over the last ``window_days`` days
  (each tweet scored ``P(bullish) - P(bearish)`` by the registered classifier) with the daily
  means, a tweet-weighted market sentiment, and the earnings events of the last ``event_days``
  days found by :mod:`core.strategies.news.earnings_reaction`'s own detection;
* ``regime``: the regime of the S&P 500 index on ``as_of``: :mod:`regime_shift`'s mixture fitted
  once, at ``as_of``, on the ``fit_window`` feature vectors up to it (no later bar exists for it);
* ``macro``: the decisions of ``fed_policy``, ``global_liquidity`` and ``macro_trend`` at the
  last bar on or before ``as_of`` (each with the date it was taken), and the overall stance.

One module per context (:mod:`.news`, :mod:`.regime`, :mod:`.macro`), each with its pure step
functions and the Prefect task that loads, calls and returns; :mod:`.high_time_frame` holds the
flow writing ``regime`` and ``macro``, :mod:`.common` the dates and the writing. Every context is
built as its message (:mod:`core.messages.context`) and checked against it before it is written.
"""

from core.messages import CONTEXT_SCHEMA_VERSION
from pipelines.strategic.common import (
    DAY_NS,
    NAMESPACE_ENV,
    day_end_ns,
    iso_day,
    namespace_or_default,
    parse_as_of,
    stamp,
    write_context,
    write_contexts,
)
from pipelines.strategic.high_time_frame import HIGH_TIME_FRAME_DATA_END, high_time_frame_context
from pipelines.strategic.macro import (
    DECISION_REWIND_BARS,
    MACRO_TYPES,
    MAX_DECISION_AGE_DAYS,
    decide_macro_stance,
    decision_as_of,
    macro_document,
    macro_stance,
    shipped_macro_events,
)
from pipelines.strategic.news import (
    NEWS_DATA_END,
    SENTIMENT_DATASET,
    SentimentScorer,
    earnings_events,
    market_sentiment,
    news_context,
    news_document,
    registered_sentiment_scorer,
    score_news,
    shipped_ticker_bars,
    shipped_tweets,
    ticker_sentiment,
    train_and_register_sentiment_model,
    tweets_up_to,
)
from pipelines.strategic.regime import (
    fit_regime,
    regime_document,
    regime_label,
    shipped_index_bars,
)

__all__ = [
    "CONTEXT_SCHEMA_VERSION",
    "DAY_NS",
    "DECISION_REWIND_BARS",
    "HIGH_TIME_FRAME_DATA_END",
    "MACRO_TYPES",
    "MAX_DECISION_AGE_DAYS",
    "NAMESPACE_ENV",
    "NEWS_DATA_END",
    "SENTIMENT_DATASET",
    "SentimentScorer",
    "day_end_ns",
    "decide_macro_stance",
    "decision_as_of",
    "earnings_events",
    "fit_regime",
    "high_time_frame_context",
    "iso_day",
    "macro_document",
    "macro_stance",
    "market_sentiment",
    "namespace_or_default",
    "news_context",
    "news_document",
    "parse_as_of",
    "regime_document",
    "regime_label",
    "registered_sentiment_scorer",
    "score_news",
    "shipped_index_bars",
    "shipped_macro_events",
    "shipped_ticker_bars",
    "shipped_tweets",
    "stamp",
    "ticker_sentiment",
    "train_and_register_sentiment_model",
    "tweets_up_to",
    "write_context",
    "write_contexts",
]
