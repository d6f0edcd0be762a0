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

Pure step functions do the work; the Prefect tasks and flows at the end only load, call and
write.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import cache
from typing import TYPE_CHECKING, Any

import msgspec
import numpy as np
import pandas as pd
from prefect import flow, task

from core.backtest.streams import stream_for
from core.data.datasets import data_root, get_dataset, load_bars
from core.data.loaders import read_sentiment_frame, read_tweets_frame
from core.data.news import BARS_DATASET, TWEETS_DATASET, news_bar_frame
from core.errors import ConfigError, DataError
from core.model import Bar, Signal
from core.strategies.base import Strategy
from core.strategies.catalogue import build
from core.strategies.macro.regime_shift import RegimeShift, RegimeShiftConfig
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

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

    from core.adapters.redis_store import RedisStore

CONTEXT_SCHEMA_VERSION = 1
DAY_NS = 86_400 * 1_000_000_000
NEWS_DATA_END = date(2015, 12, 31)
"""The last day of ``tweets_timestamped_stocknet``."""
HIGH_TIME_FRAME_DATA_END = date(2021, 3, 31)
"""The last SPY bar of ``etf_daily_lean``, which the macro strategies trade (the index goes on to
2022-12-28, the Treasury curve stops at 2017-03-29: a decision after that says so by its date)."""
SENTIMENT_DATASET = "sentiment_twitter_financial_news"
MACRO_TYPES = ("fed_policy", "global_liquidity", "macro_trend")
# A macro strategy decides at a bar, macro_trend only at the first bar of a month: re-emitting
# over the last two months of bars always finds the latest decision.
DECISION_REWIND_BARS = 45
MAX_DECISION_AGE_DAYS = 45
"""A macro decision older than this on ``as_of`` (its data stopped) is reported, marked
``stale``, and left out of the stance."""
NAMESPACE_ENV = "STRATEGY_ENGINE_NAMESPACE"


# ---------------------------------------------------------------------------------------------
# Dates
# ---------------------------------------------------------------------------------------------


def parse_as_of(as_of: date | str | None, default: date) -> date:
    """Return ``as_of`` as a date (ISO string accepted), or ``default`` when it is None.

    Raises
    ------
    ConfigError
        If the string is not an ISO date.
    """
    if as_of is None:
        return default
    if isinstance(as_of, datetime):
        return as_of.date()
    if isinstance(as_of, date):
        return as_of
    try:
        return date.fromisoformat(as_of)
    except ValueError:
        raise ConfigError(f"as_of must be an ISO date (YYYY-MM-DD), was {as_of!r}") from None


def day_end_ns(as_of: date) -> int:
    """The first nanosecond after ``as_of`` (UTC): everything stamped before it is public."""
    return int(pd.Timestamp(as_of, tz="UTC").value) + DAY_NS


def iso_day(ts_ns: int) -> str:
    """The UTC date of a nanosecond stamp, ISO formatted."""
    return pd.Timestamp(int(ts_ns), tz="UTC").strftime("%Y-%m-%d")


def stamp(document: dict[str, Any], now: datetime | None = None) -> dict[str, Any]:
    """Return ``document`` with ``computed_at`` set to ``now`` (UTC wall time by default)."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    return {**document, "computed_at": moment.isoformat(timespec="seconds")}


def _number(x: float) -> float | None:
    """A JSON number, or None for NaN (JSON has no NaN)."""
    return None if math.isnan(x) else float(x)


def _header(kind: str, as_of: date) -> dict[str, Any]:
    return {"schema_version": CONTEXT_SCHEMA_VERSION, "kind": kind, "as_of": as_of.isoformat()}


# ---------------------------------------------------------------------------------------------
# News: sentiment per ticker and earnings events
# ---------------------------------------------------------------------------------------------


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
    return {
        **_header("news", as_of),
        "model": dict(model or {}),
        "window_days": window_days,
        "event_days": event_days,
        "tickers": per_ticker,
        "market": market_sentiment(per_ticker),
        "earnings_events": sorted(events, key=lambda e: (e["date"], e["symbol"])),
        "last_tweet": None if latest is None else iso_day(latest),
    }


# ---------------------------------------------------------------------------------------------
# High time frame: regime and macro stance
# ---------------------------------------------------------------------------------------------


def regime_label(regime: int, n_components: int) -> str:
    """``calm`` for the lowest-volatility component, ``turbulent`` for the highest."""
    if regime == 0:
        return "calm"
    if regime == n_components - 1:
        return "turbulent"
    return "normal" if n_components == 3 else f"intermediate_{regime}"


def regime_document(
    bars: Iterable[Bar], as_of: date, config: RegimeShiftConfig | None = None
) -> dict[str, Any]:
    """Build the ``regime`` context: :class:`RegimeShift`'s mixture fitted once, at ``as_of``.

    The strategy is run over exactly the bars its first fit needs, the last one being the last
    bar on or before ``as_of``, with ``min_fit_samples = fit_window``: it fits on the
    ``fit_window`` feature vectors up to ``as_of`` and classifies that bar.

    Raises
    ------
    DataError
        If fewer bars than the fit needs precede ``as_of``.
    """
    base = config or RegimeShiftConfig()
    fit_now = msgspec.structs.replace(base, min_fit_samples=base.fit_window)
    end = day_end_ns(as_of)
    public = [b for b in bars if b.ts_event < end]
    if not public:
        raise DataError(f"no index bars on or before {as_of}")
    strategy = RegimeShift(fit_now, public[-1].symbol)
    needed = strategy.warmup
    if len(public) < needed:
        raise DataError(f"regime needs {needed} bars up to {as_of}, the data has {len(public)}")
    signal = None
    for bar in public[-needed:]:
        signal = strategy.update(bar)
    if signal is None:
        raise DataError(f"regime model produced no decision at {iso_day(public[-1].ts_event)}")
    reason = signal.reason
    regime = int(reason["regime"])
    return {
        **_header("regime", as_of),
        "symbol": signal.symbol,
        "decided_at": iso_day(signal.ts_event),
        "regime": regime,
        "label": regime_label(regime, base.n_components),
        "turbulent": regime == base.n_components - 1,
        "probability": reason["probability"],
        "turbulent_probability": reason["turbulent_probability"],
        "volatility": reason["volatility"],
        "window_return": reason["window_return"],
        "regime_volatility": reason["regime_volatility"],
        "exposure": signal.target_position,
        "fit_window": base.fit_window,
        "component_volatility": [m[1] for m in (strategy.params or {}).get("means", [])],
    }


def decision_as_of(
    strategy: Strategy[Any], events: Iterable[Any], as_of: date, rewind_bars: int
) -> Signal | None:
    """The strategy's latest decision from the events public by the end of ``as_of``.

    A strategy signals only when its target changes; to read its current reasoning, its
    "already emitted" flag is cleared (through ``to_state``/``restore``) before each of the last
    ``rewind_bars`` bars of its symbol, so the latest decision among them is emitted.
    """
    end = day_end_ns(as_of)
    public = [e for e in events if e.ts_event < end]
    mine = [i for i, e in enumerate(public) if isinstance(e, Bar) and e.symbol == strategy.symbol]
    rewind = set(mine[-rewind_bars:])
    latest = None
    for i, event in enumerate(public):
        if i in rewind:
            state = strategy.to_state()
            strategy.restore({**state, "emitted": False})
        signal = strategy.update(event)
        if signal is not None:
            latest = signal
    return latest


def _decision(signal: Signal | None, as_of: date) -> dict[str, Any]:
    if signal is None:
        return {"decided_at": None, "exposure": None, "stale": True, "reason": {}}
    decided = pd.Timestamp(signal.ts_event, tz="UTC").date()
    return {
        "decided_at": decided.isoformat(),
        "age_days": (as_of - decided).days,
        "stale": (as_of - decided).days > MAX_DECISION_AGE_DAYS,
        "exposure": signal.target_position,
        "reason": {k: _number(v) for k, v in signal.reason.items()},
    }


def macro_stance(components: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Combine the macro decisions into one stance.

    Rule, over the components with a fresh decision (not ``stale``): the Fed tightening
    (``fed_policy`` risk-off) makes the stance ``risk_off`` by itself; otherwise it is
    ``risk_off`` when their mean equity exposure is below one half, ``risk_on`` at or above.
    No fresh decision at all: ``unknown``.
    """
    fresh = {k: c for k, c in components.items() if not c.get("stale", True)}
    exposures = [c["exposure"] for c in fresh.values()]
    if not exposures:
        return {"stance": "unknown", "equity_exposure": None, "why": "no fresh macro decision"}
    mean = math.fsum(exposures) / len(exposures)
    tightening = fresh.get("fed_policy", {}).get("reason", {}).get("risk_off") == 1.0
    if tightening:
        return {"stance": "risk_off", "equity_exposure": mean, "why": "fed policy is tightening"}
    stance = "risk_off" if mean < 0.5 else "risk_on"
    return {"stance": stance, "equity_exposure": mean, "why": f"mean equity exposure {mean:.2f}"}


def macro_document(
    as_of: date,
    events: Mapping[str, Sequence[Any]],
    symbol: str = "SPY",
    configs: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """Build the ``macro`` context from each macro strategy's event stream (see module doc).

    Parameters
    ----------
    events
        Per strategy type in :data:`MACRO_TYPES`: its macro points and ``symbol``'s bars in
        stream order (:func:`core.backtest.streams.stream_for`); events after ``as_of`` are dropped.
    configs
        Strategy parameters per type (defaults: each type's defaults).
    """
    components = {}
    for type_name in MACRO_TYPES:
        strategy = build(type_name, dict((configs or {}).get(type_name, {})), symbol)
        found = decision_as_of(strategy, events[type_name], as_of, DECISION_REWIND_BARS)
        components[type_name] = _decision(found, as_of)
    return {**_header("macro", as_of), "symbol": symbol, **components, **macro_stance(components)}


# ---------------------------------------------------------------------------------------------
# Loading shipped data and the registered model (I/O; cached where the data never changes)
# ---------------------------------------------------------------------------------------------


@cache
def shipped_tweets() -> pd.DataFrame:
    """Every shipped tweet (``tweets_timestamped_stocknet``)."""
    return read_tweets_frame(get_dataset(TWEETS_DATASET).files()[0]).frame


def shipped_ticker_bars() -> dict[str, pd.DataFrame]:
    """Daily bars of every ticker the tweets cover."""
    tickers = list(get_dataset(TWEETS_DATASET).tickers)
    return {s: r.frame for s, r in load_bars(BARS_DATASET, tickers).items()}


def shipped_macro_events() -> dict[str, list[Any]]:
    """Each macro strategy's shipped event stream (macro points at publication, SPY bars)."""
    return {t: stream_for(t).events for t in MACRO_TYPES}


def shipped_index_bars() -> list[Bar]:
    """The S&P 500 index bars that ``regime_shift`` runs on."""
    return list(stream_for("regime_shift").events)


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
    from registry.learned_models import log_sentiment_model, text_data_hash

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


def namespace_or_default(namespace: str | None) -> str:
    """The Redis namespace: the one given, else ``$STRATEGY_ENGINE_NAMESPACE``, else ``se``."""
    return namespace or os.environ.get(NAMESPACE_ENV) or "se"


def write_context(store: RedisStore, name: str, document: dict[str, Any]) -> dict[str, Any]:
    """Stamp ``document`` with ``computed_at``, store it as context ``name``, return it."""
    stamped = stamp(document)
    store.set_context(name, stamped)
    return stamped


# ---------------------------------------------------------------------------------------------
# Prefect tasks and flows
# ---------------------------------------------------------------------------------------------


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


@task(name="fit-regime")
def fit_regime(as_of: date) -> dict[str, Any]:
    return regime_document(shipped_index_bars(), as_of)


@task(name="decide-macro-stance")
def decide_macro_stance(as_of: date) -> dict[str, Any]:
    return macro_document(as_of, shipped_macro_events())


@task(name="write-contexts", retries=2, retry_delay_seconds=1)
def write_contexts(namespace: str, documents: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Write each document as a context in one connection (``REDIS_URL`` or embedded Redis)."""
    from core.adapters.redis_server import connect
    from core.adapters.redis_store import RedisStore

    with connect() as connection:
        store = RedisStore(connection.client, namespace=namespace)
        return {name: write_context(store, name, doc) for name, doc in documents.items()}


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


@flow(name="high-time-frame-context", log_prints=False)
def high_time_frame_context(
    as_of: date | None = None, namespace: str | None = None
) -> dict[str, Any]:
    """Fit the regime and decide the macro stance as of ``as_of``; write ``regime`` and ``macro``.

    ``as_of`` is a replay date; None means :data:`HIGH_TIME_FRAME_DATA_END`.
    """
    day = parse_as_of(as_of, HIGH_TIME_FRAME_DATA_END)
    documents = {"regime": fit_regime(day), "macro": decide_macro_stance(day)}
    return write_contexts(namespace_or_default(namespace), documents)


__all__ = [
    "CONTEXT_SCHEMA_VERSION",
    "HIGH_TIME_FRAME_DATA_END",
    "MACRO_TYPES",
    "NEWS_DATA_END",
    "SentimentScorer",
    "day_end_ns",
    "decision_as_of",
    "earnings_events",
    "high_time_frame_context",
    "macro_document",
    "macro_stance",
    "market_sentiment",
    "namespace_or_default",
    "news_context",
    "news_document",
    "parse_as_of",
    "regime_document",
    "registered_sentiment_scorer",
    "stamp",
    "ticker_sentiment",
    "train_and_register_sentiment_model",
    "tweets_up_to",
    "write_context",
]
