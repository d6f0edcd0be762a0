"""News-driven strategies on the real stocknet tweets and prices, 2014-2015.

The expected earnings dates are the companies' published report dates (press releases), not
outputs of this code; the reporting-season window and every baseline are computed here with
plain pandas / scikit-learn, independently of the strategies.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import pandas as pd
import pytest
from sklearn.dummy import DummyClassifier
from sklearn.metrics import f1_score

from core.data.loaders import read_sentiment_frame
from core.data.news import (
    DAILY_CLOSE_OFFSET_NS,
    iter_news_bar_events,
    load_news_bar_frame,
    news_bar_frame,
)
from core.errors import ConfigError, DataError
from core.strategies.catalogue import build
from core.strategies.news.earnings_reaction import EarningsReaction, EarningsReactionConfig
from core.strategies.news.sentiment_analysis import (
    SentimentAnalysis,
    SentimentAnalysisConfig,
    daily_sentiment,
    tweet_score,
)
from core.strategies.news.sentiment_model import (
    bullish_minus_bearish,
    lexicon_from_model,
    train_sentiment_model,
)
from tests.strategy_samples import DATA
from tests.strategy_samples.samples_news import news_stream

TICKERS = ("KO", "PEP", "XOM", "CVX", "JPM", "BAC")
SENTIMENT = DATA / "sentiment_twitter_financial_news"
DAY_NS = 86_400 * 10**9


def _stream(symbol: str) -> tuple[pd.DataFrame, list]:
    return news_stream(symbol, "2013-10-01", "2016-01-01")


def _signals(name: str, config: dict, symbol: str, events: list) -> list:
    strategy = build(name, config, symbol)
    return [s for s in map(strategy.update, events) if s is not None]


def _day(ts: int) -> str:
    return str(pd.Timestamp(ts, unit="ns").date())


def _event_days(symbol: str) -> list[tuple[str, float]]:
    _, events = _stream(symbol)
    signals = _signals("earnings_reaction", {}, symbol, events)
    return [(_day(s.ts_event), s.target_position) for s in signals if s.target_position != 0.0]


@cache
def _sentiment_splits() -> tuple[pd.DataFrame, pd.DataFrame]:
    train = read_sentiment_frame(SENTIMENT / "sent_train.csv").frame
    valid = read_sentiment_frame(SENTIMENT / "sent_valid.csv").frame
    return train, valid


@pytest.fixture(scope="module")
def trained() -> tuple:
    train, valid = _sentiment_splits()
    return train_sentiment_model(
        train["text"], train["label"], valid_texts=valid["text"], valid_labels=valid["label"]
    )


@pytest.fixture(scope="module")
def trained_config(trained: tuple) -> SentimentAnalysisConfig:
    return SentimentAnalysisConfig(lexicon=lexicon_from_model(trained[0], 200))


# -- the event stream ----------------------------------------------------------------------------


def test_a_daily_bar_is_available_only_at_21_utc_after_the_new_york_close():
    frame, _ = _stream("KO")
    bars = frame[frame["kind"] == "bar"]

    assert (bars["ts_event"] % DAY_NS == DAILY_CLOSE_OFFSET_NS).all()


def test_a_tweet_after_the_close_sorts_after_that_days_bar():
    frame, _ = _stream("KO")
    bar_days = frame["ts_event"].where(frame["kind"] == "bar").bfill() // DAY_NS
    news = frame["kind"] == "news"
    after_close = news & (frame["ts_event"] % DAY_NS > DAILY_CLOSE_OFFSET_NS)
    before_close = news & (frame["ts_event"] % DAY_NS <= DAILY_CLOSE_OFFSET_NS)
    tweet_days = frame["ts_event"] // DAY_NS

    assert after_close.sum() > 50 and before_close.sum() > 50
    assert (bar_days[after_close].dropna() > tweet_days[after_close].dropna()).all()
    assert (bar_days[before_close].dropna() >= tweet_days[before_close].dropna()).all()


def test_a_tweet_stamped_exactly_at_the_close_sorts_before_the_bar():
    close = pd.Timestamp("2014-10-21 21:00", tz="UTC").value
    news = pd.DataFrame(
        {"ts_event": [close], "text": ["$ ko misses"], "symbols": [("KO",)], "source": ["t"]}
    )
    bars = pd.DataFrame(
        {
            "ts_event": [close - DAILY_CLOSE_OFFSET_NS],
            "open": [1.0],
            "high": [1.0],
            "low": [1.0],
            "close": [1.0],
            "volume": [1.0],
        }
    )

    frame = news_bar_frame(news, bars, "KO")

    assert frame["kind"].tolist() == ["news", "bar"]


# -- earnings_reaction ---------------------------------------------------------------------------


def test_detected_earnings_events_fall_in_the_quarterly_reporting_seasons():
    days = [pd.Timestamp(day) for symbol in TICKERS for day, _ in _event_days(symbol)]
    quarter_end = [d.to_period("Q").start_time - pd.Timedelta(days=1) for d in days]
    after = np.array([(d - q).days for d, q in zip(days, quarter_end, strict=True)])

    # Large US companies report 2 to 7 weeks after a quarter ends.
    in_season = (after >= 10) & (after <= 50)
    assert len(days) >= 25
    assert in_season.mean() >= 0.8, list(zip(days, after, strict=True))


def test_coca_cola_and_jpmorgan_events_are_their_published_report_dates():
    ko = {day for day, _ in _event_days("KO")}
    jpm = {day for day, _ in _event_days("JPM")}

    ko_reports = {"2014-02-18", "2014-04-15", "2014-07-22", "2014-10-21", "2015-02-10"}
    jpm_reports = {"2014-01-14", "2014-04-11", "2014-07-15", "2014-10-14", "2015-01-14"}
    assert ko_reports <= ko
    assert jpm_reports <= jpm


def test_the_position_follows_the_event_days_abnormal_return_computed_with_pandas():
    prices = pd.read_csv(DATA / "equities_daily_stocknet88" / "prices" / "KO.csv")
    prices["ret"] = prices["Close"].pct_change()
    prices["abnormal"] = prices["ret"] - prices["ret"].rolling(20).mean().shift(1)
    by_day = prices.set_index("Date")

    events = dict(_event_days("KO"))

    # Oct 21 2014: revenue miss, KO fell ~6%; Feb 10 2015: beat, KO rose.
    assert events["2014-10-21"] == -1.0
    assert events["2015-02-10"] == 1.0
    for day, target in events.items():
        assert target == np.sign(by_day.loc[day, "abnormal"]), day


def test_the_reasons_match_volume_and_gap_statistics_computed_with_pandas():
    prices = pd.read_csv(DATA / "equities_daily_stocknet88" / "prices" / "KO.csv")
    volume_ratio = prices["Volume"] / prices["Volume"].rolling(20).mean().shift(1)
    ret = prices["Close"].pct_change()
    rms = np.sqrt((ret**2).rolling(20).mean().shift(1))
    gap_z = (prices["Open"] / prices["Close"].shift(1) - 1).abs() / rms
    by_day = pd.DataFrame({"vr": volume_ratio, "gz": gap_z}).set_index(prices["Date"])
    _, events = _stream("KO")

    signals = _signals("earnings_reaction", {}, "KO", events)

    checked = 0
    for signal in signals:
        day = _day(signal.ts_event)
        assert signal.reason["volume_ratio"] == pytest.approx(by_day.loc[day, "vr"], rel=1e-9)
        assert signal.reason["gap_z"] == pytest.approx(by_day.loc[day, "gz"], rel=1e-9)
        checked += 1
    assert checked > 5


def test_the_position_is_held_for_hold_bars_closes_then_flattened():
    frame, _ = _stream("JPM")
    config = EarningsReactionConfig(hold_bars=7)

    target = EarningsReaction.vectorized(config, frame)[frame["kind"] == "bar"].dropna()

    runs = (target != target.shift()).cumsum()
    held = target.groupby(runs).agg(["first", "size"])
    assert (held.loc[held["first"] != 0.0, "size"] == 7).all()
    assert (held["first"] != 0.0).sum() >= 6


def test_long_only_earnings_reaction_never_goes_short():
    _, events = _stream("KO")

    signals = _signals("earnings_reaction", {"allow_short": False}, "KO", events)

    assert {s.target_position for s in signals} == {0.0, 1.0}


def test_a_multi_word_keyword_is_rejected_naming_it():
    with pytest.raises(ConfigError, match="keyword must be one lower-case token, was 'beat by'"):
        EarningsReactionConfig.from_dict({"keywords": ["earnings", "beat by"]})


# -- no look-ahead -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["earnings_reaction", "sentiment_analysis"])
@pytest.mark.parametrize("cut", ["2014-04-15", "2014-10-21 15:00", "2015-07-01"])
def test_truncating_the_future_changes_no_signal_up_to_the_cut(name: str, cut: str):
    frame, events = _stream("KO")
    cls = EarningsReaction if name == "earnings_reaction" else SentimentAnalysis
    config = cls.config_type.from_dict({})
    stop = pd.Timestamp(cut, tz="UTC").value
    keep = int((frame["ts_event"] <= stop).sum())

    whole = cls.vectorized(config, frame).iloc[:keep]
    truncated = cls.vectorized(config, frame.iloc[:keep])
    whole_signals = [s for s in _signals(name, {}, "KO", events) if s.ts_event <= stop]

    pd.testing.assert_series_equal(truncated, whole)
    assert _signals(name, {}, "KO", events[:keep]) == whole_signals


def test_a_bullish_tweet_after_the_close_moves_the_next_close_not_this_one():
    frame, _ = _stream("KO")
    is_news = frame["kind"] == "news"
    news = frame.loc[is_news, ["ts_event", "text"]].assign(symbols=[("KO",)] * int(is_news.sum()))
    bars = frame.loc[~is_news, ["ts_event", "open", "high", "low", "close", "volume"]]
    bars = bars.assign(ts_event=bars["ts_event"] - DAILY_CLOSE_OFFSET_NS)
    late = pd.Timestamp("2014-06-10 22:30", tz="UTC").value  # Tuesday, after the close
    extra = pd.DataFrame({"ts_event": [late], "text": ["beats beats up"], "symbols": [("KO",)]})
    config = SentimentAnalysisConfig()

    before = daily_sentiment(config, news_bar_frame(news, bars, "KO")).set_index("ts_event")
    with_late = news_bar_frame(pd.concat([news, extra], ignore_index=True), bars, "KO")
    after = daily_sentiment(config, with_late).set_index("ts_event")

    changed = after.index[after["sentiment"] != before["sentiment"]]
    wednesday_close = pd.Timestamp("2014-06-11 21:00", tz="UTC").value
    assert changed.tolist() == [wednesday_close]
    assert after.loc[wednesday_close, "sentiment"] > before.loc[wednesday_close, "sentiment"]


# -- the sentiment classifier --------------------------------------------------------------------


def test_the_classifier_beats_the_majority_class_on_the_held_out_split(trained: tuple):
    model, metrics = trained
    train, valid = _sentiment_splits()
    majority = DummyClassifier(strategy="most_frequent").fit(train["text"], train["label"])
    baseline = majority.predict(valid["text"])
    predicted = model.predict(valid["text"].tolist())

    baseline_accuracy = float(np.mean(baseline == valid["label"].to_numpy()))
    baseline_f1 = f1_score(valid["label"], baseline, average="macro")
    print(f"accuracy {metrics['accuracy']:.4f} (majority {baseline_accuracy:.4f}), ")
    print(f"macro-F1 {metrics['macro_f1']:.4f} (majority {baseline_f1:.4f})")
    assert metrics["accuracy"] == pytest.approx(np.mean(predicted == valid["label"].to_numpy()))
    assert metrics["accuracy"] > baseline_accuracy + 0.1
    assert metrics["macro_f1"] > baseline_f1 + 0.3
    assert metrics["n_valid"] == len(valid)


def test_training_twice_gives_the_same_model():
    train, valid = _sentiment_splits()
    texts, labels = train["text"][:1500], train["label"][:1500]
    kwargs = {"valid_texts": valid["text"][:300], "valid_labels": valid["label"][:300]}

    first, _ = train_sentiment_model(texts, labels, **kwargs)
    second, _ = train_sentiment_model(texts, labels, **kwargs)

    np.testing.assert_array_equal(first.named_steps["clf"].coef_, second.named_steps["clf"].coef_)


def test_the_distilled_lexicon_agrees_with_the_full_model_on_polar_tweets(trained: tuple):
    model, _ = trained
    _, valid = _sentiment_splits()
    polar = valid[valid["label"] != 2]
    weights = dict(lexicon_from_model(model, 200))

    lexicon = np.array([tweet_score(text, weights) for text in polar["text"]])
    full = bullish_minus_bearish(model, polar["text"])

    assert np.corrcoef(lexicon, full)[0, 1] > 0.6
    assert np.mean((lexicon > 0) == (polar["label"].to_numpy() == 1)) > 0.7


def test_daily_sentiment_matches_an_independent_merge_asof_groupby(trained_config):
    frame, events = _stream("BAC")
    weights = dict(trained_config.lexicon)
    tweets = frame[frame["kind"] == "news"][["ts_event", "text"]]
    bars = frame[frame["kind"] == "bar"][["ts_event"]].rename(columns={"ts_event": "bar_ts"})
    tweets = tweets.assign(score=[tweet_score(t, weights) for t in tweets["text"]])
    # Each tweet counts towards the first close at or after it.
    joined = pd.merge_asof(
        tweets, bars, left_on="ts_event", right_on="bar_ts", direction="forward"
    ).dropna(subset=["bar_ts"])
    expected = joined.groupby("bar_ts")["score"].mean()

    got = daily_sentiment(trained_config, frame).set_index("ts_event")["sentiment"]
    incremental = {
        s.ts_event: s.reason["daily_sentiment"]
        for s in _signals("sentiment_analysis", trained_config.to_dict(), "BAC", events)
    }

    np.testing.assert_allclose(got.loc[expected.index.astype("int64")], expected, rtol=1e-9)
    assert (got.drop(expected.index.astype("int64")) == 0.0).all()
    for ts, value in incremental.items():
        assert value == pytest.approx(got.loc[ts], rel=1e-9, abs=1e-15)


def test_the_position_follows_the_pandas_ewm_of_daily_sentiment(trained_config):
    frame, events = _stream("JPM")
    daily = daily_sentiment(trained_config, frame).set_index("ts_event")["sentiment"]
    ewm = daily.ewm(span=trained_config.span, adjust=False).mean()

    signals = _signals("sentiment_analysis", trained_config.to_dict(), "JPM", events)

    assert len(signals) > 20
    assert {s.target_position for s in signals} == {-1.0, 0.0, 1.0}
    for s in signals:
        expected = np.sign(ewm[s.ts_event]) if abs(ewm[s.ts_event]) >= trained_config.entry else 0
        assert s.target_position == expected
        assert s.reason["sentiment_ewma"] == pytest.approx(ewm[s.ts_event], rel=1e-9)


def test_days_of_bearish_tweets_are_down_days(trained_config):
    days = []
    for symbol in TICKERS:
        frame, _ = _stream(symbol)
        daily = daily_sentiment(trained_config, frame)
        close = frame.loc[frame["kind"] == "bar", "close"].reset_index(drop=True)
        days.append(daily.assign(ret=close.pct_change())[daily["tweets"] >= 2])
    pooled = pd.concat(days).dropna()
    low, high = pooled["sentiment"].quantile([0.1, 0.9])

    bearish_days = pooled.loc[pooled["sentiment"] <= low, "ret"].mean()
    bullish_days = pooled.loc[pooled["sentiment"] >= high, "ret"].mean()

    assert len(pooled) > 1000
    assert bearish_days < 0.0
    assert bearish_days < bullish_days


def test_a_duplicate_lexicon_token_is_rejected_naming_it():
    with pytest.raises(ConfigError, match="lexicon token 'beat' appears twice"):
        SentimentAnalysisConfig.from_dict({"lexicon": [["beat", 1.0], ["beat", 2.0]]})


def test_events_of_the_stream_replay_the_frame_row_by_row():
    frame, events = _stream("PEP")

    rebuilt = list(iter_news_bar_events(frame, "PEP"))

    assert rebuilt == events
    assert [e.ts_event for e in events] == frame["ts_event"].tolist()


def test_the_shipped_loader_builds_the_same_stream_cut_to_inclusive_dates():
    frame, _ = news_stream("XOM", "2014-03-01", "2014-04-01")

    loaded = load_news_bar_frame("XOM", "2014-03-01", "2014-03-31")

    pd.testing.assert_frame_equal(loaded, frame)
    with pytest.raises(DataError, match="no tweets for symbol 'AAPL'"):
        load_news_bar_frame("AAPL")
