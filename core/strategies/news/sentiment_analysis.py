"""Daily tweet sentiment per ticker drives the position.

Scoring: a tweet's score is ``sum(w_t for each token t) / sqrt(number of tokens)`` over the
config's ``lexicon`` (tokens absent from it weigh 0; tokenized as scikit-learn's TF-IDF does).
The lexicon is distilled from the trained TF-IDF + logistic-regression classifier
(:func:`core.strategies.news.sentiment_model.lexicon_from_model`); it lives in the config, so the
strategy is rebuilt from JSON alone, ``to_state()`` is plain numbers and both forms score
identically. The default lexicon is a small hand-written stand-in for tests and demos; a
registered version carries the trained one (:mod:`registry.learned_models`).

Rule, at each daily close: the day's sentiment is the mean score of the ticker's tweets received
since the previous close (0, i.e. neutral, when fewer than ``min_tweets`` arrived); its EWMA over
``span`` closes (seeded with the first day, as ``pandas.ewm(adjust=False)``) gives the target:
+1 at or above ``entry``, -1 at or below ``-entry`` (0 when long-only), else flat.

Data: the news stream of :mod:`core.data.news` (tweets at ``created_at_utc``, daily bars at
21:00 UTC, after the New York close). Vectorized form: the standard news frame, columns
``ts_event, kind, text, open, high, low, close, volume``; the output is the target on every row
from the first decision on (news rows carry the last close's target), NaN before.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from core.indicators import ExponentialMean
from core.model import Bar, NewsItem, Signal
from core.state import StrategyState
from core.strategies.base import (
    DataKind,
    Family,
    Strategy,
    StrategyConfig,
    StrategySpec,
    Tier,
    require,
)
from core.strategies.catalogue import register
from core.strategies.news.text import bar_slots, per_bar_sum, spread_to_rows, tokenize

SEED_LEXICON: tuple[tuple[str, float], ...] = (
    ("beat", 1.0), ("beats", 1.0), ("bullish", 1.0), ("buy", 1.0), ("gains", 1.0),
    ("higher", 1.0), ("raises", 1.0), ("rises", 1.0), ("up", 1.0), ("upgrade", 1.0),
    ("bearish", -1.0), ("cuts", -1.0), ("down", -1.0), ("downgrade", -1.0), ("falls", -1.0),
    ("loss", -1.0), ("lower", -1.0), ("miss", -1.0), ("misses", -1.0), ("sell", -1.0),
)  # fmt: skip


class SentimentAnalysisConfig(StrategyConfig, frozen=True, kw_only=True):
    aliases: ClassVar[dict[str, str]] = {"threshold": "entry"}

    lexicon: tuple[tuple[str, float], ...] = SEED_LEXICON
    span: int = 5
    entry: float = 0.1
    min_tweets: int = 1
    allow_short: bool = True

    def __post_init__(self) -> None:
        require(self.span >= 1, f"span must be >= 1, was {self.span}")
        require(self.span <= 1_000, f"span must be <= 1000, was {self.span}")
        require(self.entry > 0.0, f"entry must be > 0, was {self.entry}")
        require(self.min_tweets >= 1, f"min_tweets must be >= 1, was {self.min_tweets}")
        require(len(self.lexicon) > 0, "lexicon must not be empty")
        seen: set[str] = set()
        for token, weight in self.lexicon:
            require(tokenize(token) == [token], f"lexicon token must be one token, was {token!r}")
            require(token not in seen, f"lexicon token {token!r} appears twice")
            require(math.isfinite(weight), f"lexicon weight of {token!r} must be finite: {weight}")
            seen.add(token)


def tweet_score(text: str, weights: dict[str, float]) -> float:
    """Score one tweet: the sum of its tokens' lexicon weights over sqrt(token count)."""
    tokens = tokenize(text)
    if not tokens:
        return 0.0
    return math.fsum(weights.get(token, 0.0) for token in tokens) / math.sqrt(len(tokens))


def _target(ewma: float, config: SentimentAnalysisConfig) -> float:
    if ewma >= config.entry:
        return 1.0
    if ewma <= -config.entry and config.allow_short:
        return -1.0
    return 0.0


class _SentimentState(StrategyState):
    ewma: dict[str, Any]
    day_sum: float
    day_count: int


@register
class SentimentAnalysis(Strategy[SentimentAnalysisConfig]):
    """Long on persistently bullish tweets, short on bearish ones, flat in between."""

    spec = StrategySpec(
        name="sentiment_analysis",
        family=Family.NEWS_DRIVEN,
        tier=Tier.STRATEGIC,
        data_kind=DataKind.NEWS,
        summary=(
            "Daily per-ticker tweet sentiment (lexicon distilled from a TF-IDF + logistic "
            "regression classifier) smoothed by an EWMA sets the position."
        ),
        dataset="tweets_timestamped_stocknet",
    )
    config_type = SentimentAnalysisConfig

    def __init__(
        self, config: SentimentAnalysisConfig, symbol: str, *, name: str | None = None
    ) -> None:
        super().__init__(config, symbol, name=name)
        self._weights = dict(config.lexicon)
        self._ewma = ExponentialMean(config.span)
        self._day_sum = 0.0
        self._day_count = 0

    @property
    def warmup(self) -> int:
        return self.config.span

    def update(self, event: NewsItem | Bar) -> Signal | None:
        if isinstance(event, NewsItem):
            if not event.symbols or self.symbol in event.symbols:
                self._day_sum += tweet_score(event.text, self._weights)
                self._day_count += 1
            return None
        return self._on_bar(event)

    def _on_bar(self, bar: Bar) -> Signal | None:
        count = self._day_count
        daily = self._day_sum / count if count >= self.config.min_tweets else 0.0
        self._day_sum, self._day_count = 0.0, 0
        ewma = self._ewma.update(daily)
        if math.isnan(ewma):
            return None
        reason = {"daily_sentiment": daily, "sentiment_ewma": ewma, "tweets": float(count)}
        return self._emit(bar.ts_event, _target(ewma, self.config), abs(ewma), reason)

    def to_state(self) -> dict[str, Any]:
        saved = _SentimentState(
            ewma=self._ewma.to_state(), day_sum=self._day_sum, day_count=self._day_count
        )
        return {**self._base_state(), **saved.to_dict()}

    def restore(self, state: dict[str, Any]) -> None:
        saved = _SentimentState.from_dict(state)
        self._restore_base(state)
        self._ewma.restore(saved.ewma)
        self._day_sum = saved.day_sum
        self._day_count = saved.day_count

    @classmethod
    def vectorized(cls, config: SentimentAnalysisConfig, frame: pd.DataFrame) -> pd.Series:
        daily = daily_sentiment(config, frame)
        ewma = daily["sentiment"].ewm(span=config.span, adjust=False, min_periods=config.span)
        smoothed = ewma.mean().to_numpy()
        targets = np.array([math.nan if math.isnan(v) else _target(v, config) for v in smoothed])
        is_bar, _ = bar_slots(frame)
        return spread_to_rows(targets, is_bar, frame.index)


def daily_sentiment(config: SentimentAnalysisConfig, frame: pd.DataFrame) -> pd.DataFrame:
    """Per-bar tweet count and mean tweet score of a news frame (0 below ``min_tweets``).

    Returns
    -------
    pandas.DataFrame
        One row per bar: ``ts_event``, ``tweets``, ``sentiment``.
    """
    is_bar, slot = bar_slots(frame)
    weights = dict(config.lexicon)
    text = frame["text"].to_numpy()
    scores = np.array(
        [0.0 if b else tweet_score(t, weights) for t, b in zip(text, is_bar, strict=True)]
    )
    total = per_bar_sum(scores, slot, is_bar)
    count = per_bar_sum((~is_bar).astype("float64"), slot, is_bar)
    enough = count >= config.min_tweets
    mean = np.divide(total, count, out=np.zeros_like(total), where=enough)
    ts = frame["ts_event"].to_numpy()[is_bar]
    return pd.DataFrame({"ts_event": ts, "tweets": count, "sentiment": mean})
