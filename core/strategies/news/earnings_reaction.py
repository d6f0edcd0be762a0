"""Post-earnings drift: detect an earnings event from tweets and the tape, then ride its direction.

Rule, evaluated at each daily close (bar ``i``; ``N`` = ``lookback``):

* news: ``k_i`` = tweets containing an earnings keyword received since the previous close,
  summed over the last ``news_window`` bars;
* tape, against the ``N`` bars before ``i`` (bar ``i`` itself is never in its own baseline):
  close-to-close return ``r_i = c_i / c_{i-1} - 1``, abnormal return ``a_i = r_i - mean(r)``,
  overnight gap z-score ``|o_i / c_{i-1} - 1| / rms(r)`` and volume ratio ``v_i / mean(v)``;
* an **event** is ``k_i >= min_keyword_tweets`` confirmed by ``gap_z >= gap_z`` or
  ``volume_ratio >= volume_ratio``, at least ``cooldown_bars`` after the previous event (the
  day after a report is still full of earnings tweets and heavy volume: one report, one trade);
* on an event the target becomes ``sign(a_i)`` (long only: ``max(sign, 0)``) and is held for
  ``hold_bars`` closes, then flat.

The "abnormal" return is relative to the stock's own trailing mean: the stream carries one
ticker, with no market index to adjust against.

Data: the news stream of :mod:`core.data.news` (tweets at their ``created_at_utc``, daily bars at
21:00 UTC, after the New York close). Vectorized form: the standard news frame, columns
``ts_event, kind, text, open, high, low, close, volume`` (one row per event, stream order); the
output is the target on every row from the first decision on (news rows carry the last close's
target), NaN before. The hold/cooldown recursion runs as a numpy loop over the bars.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from core.indicators import RollingMean
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

EARNINGS_KEYWORDS = (
    "earnings", "eps", "quarter", "quarterly", "q1", "q2", "q3", "q4", "results",
    "revenue", "revenues", "profit", "profits", "beats", "misses", "guidance",
)  # fmt: skip


class EarningsReactionConfig(StrategyConfig, frozen=True, kw_only=True):
    aliases: ClassVar[dict[str, str]] = {"hold": "hold_bars", "window": "lookback"}

    lookback: int = 20
    news_window: int = 1
    min_keyword_tweets: int = 2
    volume_ratio: float = 1.5
    gap_z: float = 1.5
    hold_bars: int = 10
    cooldown_bars: int = 20
    allow_short: bool = True
    keywords: tuple[str, ...] = EARNINGS_KEYWORDS

    def __post_init__(self) -> None:
        require(self.lookback >= 2, f"lookback must be >= 2, was {self.lookback}")
        require(self.lookback <= 1_000, f"lookback must be <= 1000, was {self.lookback}")
        require(
            1 <= self.news_window <= self.lookback,
            f"news_window must be in [1, lookback={self.lookback}], was {self.news_window}",
        )
        require(
            self.min_keyword_tweets >= 1,
            f"min_keyword_tweets must be >= 1, was {self.min_keyword_tweets}",
        )
        require(self.volume_ratio > 1.0, f"volume_ratio must be > 1, was {self.volume_ratio}")
        require(self.gap_z > 0.0, f"gap_z must be > 0, was {self.gap_z}")
        require(self.hold_bars >= 1, f"hold_bars must be >= 1, was {self.hold_bars}")
        require(self.cooldown_bars >= 1, f"cooldown_bars must be >= 1, was {self.cooldown_bars}")
        require(len(self.keywords) > 0, "keywords must not be empty")
        for word in self.keywords:
            require(tokenize(word) == [word], f"keyword must be one lower-case token, was {word!r}")


def _has_keyword(text: str, keywords: frozenset[str]) -> bool:
    return any(token in keywords for token in tokenize(text))


class _EarningsReactionState(StrategyState):
    returns: dict[str, Any]  # the rolling means' own states
    squares: dict[str, Any]
    volumes: dict[str, Any]
    news: list[int]  # keyword tweets per close, ring buffer
    news_index: int
    pending: int
    prev_close: float
    bars: int
    direction: float
    hold_left: int
    since_event: int
    event_strength: float


@register
class EarningsReaction(Strategy[EarningsReactionConfig]):
    """Hold in the direction of an earnings day's abnormal return for ``hold_bars`` closes."""

    spec = StrategySpec(
        name="earnings_reaction",
        family=Family.NEWS_DRIVEN,
        tier=Tier.STRATEGIC,
        data_kind=DataKind.NEWS,
        summary=(
            "Post-earnings drift: earnings keywords in the ticker's tweets confirmed by an "
            "abnormal gap or volume; hold in the direction of the event-day abnormal return."
        ),
        dataset="tweets_timestamped_stocknet",
    )
    config_type = EarningsReactionConfig

    def __init__(
        self, config: EarningsReactionConfig, symbol: str, *, name: str | None = None
    ) -> None:
        super().__init__(config, symbol, name=name)
        self._keywords = frozenset(config.keywords)
        self._returns = RollingMean(config.lookback)
        self._squares = RollingMean(config.lookback)
        self._volumes = RollingMean(config.lookback)
        self._news = [0] * config.news_window  # keyword tweets per close, ring buffer
        self._news_index = 0
        self._pending = 0  # keyword tweets since the last close
        self._prev_close = math.nan
        self._bars = 0
        self._direction = 0.0
        self._hold_left = 0
        self._since_event = config.cooldown_bars
        self._event_strength = 0.0

    @property
    def warmup(self) -> int:
        # N returns need N + 1 bars; the first decision is on the bar after them.
        return self.config.lookback + 2

    def update(self, event: NewsItem | Bar) -> Signal | None:
        if isinstance(event, NewsItem):
            mine = not event.symbols or self.symbol in event.symbols
            if mine and _has_keyword(event.text, self._keywords):
                self._pending += 1
            return None
        return self._on_bar(event)

    def _on_bar(self, bar: Bar) -> Signal | None:
        cfg = self.config
        self._news[self._news_index] = self._pending
        self._news_index = (self._news_index + 1) % cfg.news_window
        self._pending = 0
        prev_close, self._prev_close = self._prev_close, bar.close
        ready = self._bars >= cfg.lookback + 1
        mean_return, rms = self._returns.value, math.sqrt(self._squares.value)
        mean_volume = self._volumes.value
        self._bars += 1
        self._volumes.update(bar.volume)
        if math.isnan(prev_close):
            return None
        ret = bar.close / prev_close - 1.0
        self._returns.update(ret)
        self._squares.update(ret * ret)
        if not ready:
            return None
        abnormal = ret - mean_return
        gap_z = abs(bar.open / prev_close - 1.0) / rms if rms > 0.0 else 0.0
        volume_ratio = bar.volume / mean_volume if mean_volume > 0.0 else 0.0
        keyword_tweets = sum(self._news)
        event = (
            self._since_event >= cfg.cooldown_bars
            and keyword_tweets >= cfg.min_keyword_tweets
            and (gap_z >= cfg.gap_z or volume_ratio >= cfg.volume_ratio)
            and abnormal != 0.0
        )
        if event:
            sign = 1.0 if abnormal > 0.0 else -1.0
            self._direction = sign if cfg.allow_short else max(sign, 0.0)
            self._hold_left = cfg.hold_bars
            self._since_event = 0
            self._event_strength = abs(abnormal) / rms if rms > 0.0 else 0.0
        else:
            self._since_event += 1
            self._hold_left = max(self._hold_left - 1, 0)
        target = self._direction if self._hold_left > 0 else 0.0
        reason = {
            "keyword_tweets": float(keyword_tweets),
            "volume_ratio": volume_ratio,
            "gap_z": gap_z,
            "abnormal_return": abnormal,
            "bars_left": float(self._hold_left),
        }
        strength = self._event_strength if target != 0.0 else 0.0
        return self._emit(bar.ts_event, target, strength, reason)

    def to_state(self) -> dict[str, Any]:
        saved = _EarningsReactionState(
            returns=self._returns.to_state(),
            squares=self._squares.to_state(),
            volumes=self._volumes.to_state(),
            news=list(self._news),
            news_index=self._news_index,
            pending=self._pending,
            prev_close=self._prev_close,
            bars=self._bars,
            direction=self._direction,
            hold_left=self._hold_left,
            since_event=self._since_event,
            event_strength=self._event_strength,
        )
        return {**self._base_state(), **saved.to_dict()}

    def restore(self, state: dict[str, Any]) -> None:
        saved = _EarningsReactionState.from_dict(state)
        if len(saved.news) != self.config.news_window:
            raise ValueError(
                f"state has {len(saved.news)} news counts, news_window is {len(self._news)}"
            )
        self._restore_base(state)
        self._returns.restore(saved.returns)
        self._squares.restore(saved.squares)
        self._volumes.restore(saved.volumes)
        self._news = saved.news
        self._news_index = saved.news_index
        self._pending = saved.pending
        self._prev_close = saved.prev_close
        self._bars = saved.bars
        self._direction = saved.direction
        self._hold_left = saved.hold_left
        self._since_event = saved.since_event
        self._event_strength = saved.event_strength

    @classmethod
    def vectorized(cls, config: EarningsReactionConfig, frame: pd.DataFrame) -> pd.Series:
        features = earnings_features(config, frame)
        is_bar, _ = bar_slots(frame)
        targets = _hold_targets(config, features)
        return spread_to_rows(targets, is_bar, frame.index)


def earnings_features(config: EarningsReactionConfig, frame: pd.DataFrame) -> pd.DataFrame:
    """Per-bar detection inputs of a news frame (NaN where the baseline is not ready).

    Returns
    -------
    pandas.DataFrame
        One row per bar: ``ts_event``, ``keyword_tweets``, ``volume_ratio``, ``gap_z``,
        ``abnormal_return`` and ``candidate`` (event conditions met, ignoring the cooldown).
    """
    is_bar, slot = bar_slots(frame)
    keywords = frozenset(config.keywords)
    text = frame["text"].to_numpy()
    hits = np.array(
        [not b and _has_keyword(t, keywords) for t, b in zip(text, is_bar, strict=True)]
    )
    per_bar = per_bar_sum(hits.astype("float64"), slot, is_bar)
    keyword_tweets = pd.Series(per_bar).rolling(config.news_window, min_periods=1).sum()
    bars = frame.loc[is_bar].reset_index(drop=True)
    close, volume = bars["close"], bars["volume"]
    ret = close / close.shift(1) - 1.0
    baseline = config.lookback
    mean_return = ret.rolling(baseline, min_periods=baseline).mean().shift(1)
    rms = np.sqrt((ret * ret).rolling(baseline, min_periods=baseline).mean().shift(1))
    mean_volume = volume.rolling(baseline, min_periods=baseline).mean().shift(1)
    gap = (bars["open"] / close.shift(1) - 1.0).abs()
    gap_z = gap.div(rms).where(rms > 0.0, 0.0).where(rms.notna())
    volume_ratio = volume.div(mean_volume).where(mean_volume > 0.0, 0.0).where(mean_volume.notna())
    abnormal = ret - mean_return
    candidate = (
        (keyword_tweets >= config.min_keyword_tweets)
        & ((gap_z >= config.gap_z) | (volume_ratio >= config.volume_ratio))
        & (abnormal != 0.0)
        & abnormal.notna()
    )
    return pd.DataFrame(
        {
            "ts_event": bars["ts_event"],
            "keyword_tweets": keyword_tweets,
            "volume_ratio": volume_ratio,
            "gap_z": gap_z,
            "abnormal_return": abnormal,
            "candidate": candidate,
        }
    )


def _hold_targets(config: EarningsReactionConfig, features: pd.DataFrame) -> np.ndarray:
    """Run the event / hold / cooldown recursion over the bars (NaN before the first decision)."""
    candidate = features["candidate"].to_numpy(bool)
    abnormal = features["abnormal_return"].to_numpy(float)
    first = config.lookback + 1
    targets = np.full(len(candidate), np.nan)
    direction, hold_left, since = 0.0, 0, config.cooldown_bars
    for i in range(first, len(candidate)):
        if candidate[i] and since >= config.cooldown_bars:
            sign = 1.0 if abnormal[i] > 0.0 else -1.0
            direction = sign if config.allow_short else max(sign, 0.0)
            hold_left, since = config.hold_bars, 0
        else:
            since += 1
            hold_left = max(hold_left - 1, 0)
        targets[i] = direction if hold_left > 0 else 0.0
    return targets
