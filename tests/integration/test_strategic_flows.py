"""The strategic tier on real data: news, regime and macro contexts as of a replay date, in Redis;
and the adaptation flow reading them, recording its changes and sending weights to a core."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import msgspec
import numpy as np
import pandas as pd
import pytest

from core.adapters.market_streams import FeedPublisher
from core.adapters.redis_store import RedisStore
from core.data.feeds import replay_events
from core.data.loaders import read_sentiment_frame
from core.engine.engine import TradingEngine
from core.ports import StrategyDeployment
from core.runtime.control import apply_control, current_weights
from core.runtime.service import CoreSettings
from core.strategies.news.sentiment_model import bullish_minus_bearish, train_sentiment_model
from pipelines import strategic
from pipelines.adaptation import ADAPTATION_EXPERIMENT, adapt, performance_from_status
from pipelines.strategic import (
    day_end_ns,
    high_time_frame_context,
    macro_document,
    news_context,
    news_document,
    regime_document,
)
from registry import MlflowStore
from strategy_engine.core_process import LocalStrategies, run_core

pytestmark = pytest.mark.integration

SENTIMENT = Path(__file__).resolve().parents[2] / "data" / "sentiment_twitter_financial_news"
KO_REPORT = date(2014, 10, 22)  # the day after Coca-Cola's Q3 2014 report (Oct 21, before the open)


@pytest.fixture(scope="module")
def model():
    train = read_sentiment_frame(SENTIMENT / "sent_train.csv").frame
    valid = read_sentiment_frame(SENTIMENT / "sent_valid.csv").frame
    fitted, _ = train_sentiment_model(
        train["text"], train["label"], valid_texts=valid["text"], valid_labels=valid["label"]
    )
    return fitted


@pytest.fixture(scope="module")
def tweets() -> pd.DataFrame:
    return strategic.shipped_tweets()


@pytest.fixture(scope="module")
def ticker_bars() -> dict[str, pd.DataFrame]:
    return strategic.shipped_ticker_bars()


@pytest.fixture(scope="module")
def index_bars():
    return strategic.shipped_index_bars()


@pytest.fixture(scope="module")
def macro_events():
    return strategic.shipped_macro_events()


@pytest.fixture
def redis_env(redis_connection, monkeypatch):
    """Point the flows (which connect through ``REDIS_URL``) at the session's Redis."""
    monkeypatch.setenv("REDIS_URL", redis_connection.url)


def _cut_frames(frames: dict[str, pd.DataFrame], as_of: date) -> dict[str, pd.DataFrame]:
    # Daily bars are stamped 00:00 of their date and public at its close.
    return {
        s: f[f["ts_event"] < day_end_ns(as_of)].reset_index(drop=True) for s, f in frames.items()
    }


# --- news -----------------------------------------------------------------------------------


def test_news_on_the_day_after_kos_report_shows_the_event_and_the_sentiment_of_past_tweets(
    model, tweets, ticker_bars
):
    def score(texts):
        return bullish_minus_bearish(model, texts)

    document = news_document(KO_REPORT, tweets, ticker_bars, score, window_days=5)

    ko_events = [e for e in document["earnings_events"] if e["symbol"] == "KO"]
    # KO reported on 2014-10-21 before the open and fell about 6% that day.
    assert [(e["date"], e["direction"]) for e in ko_events] == [("2014-10-21", -1)]
    assert ko_events[0]["abnormal_return"] < -0.04
    # The window's KO tweets, counted independently from the raw frame.
    ts = tweets["ts_event"].to_numpy(np.int64)
    window = (ts >= day_end_ns(KO_REPORT) - 5 * 86_400 * 10**9) & (ts < day_end_ns(KO_REPORT))
    ko = tweets["symbols"].map(lambda symbols: "KO" in symbols).to_numpy(bool)
    texts = tweets.loc[window & ko, "text"].tolist()
    assert document["tickers"]["KO"]["tweets"] == len(texts) > 10
    assert document["tickers"]["KO"]["sentiment"] == pytest.approx(np.mean(score(texts)))
    assert max(d["date"] for d in document["tickers"]["KO"]["daily"]) <= KO_REPORT.isoformat()


def test_truncating_the_future_leaves_the_news_context_unchanged(model, tweets, ticker_bars):
    def score(texts):
        return bullish_minus_bearish(model, texts)

    past_tweets = tweets[tweets["ts_event"] < day_end_ns(KO_REPORT)]

    full = news_document(KO_REPORT, tweets, ticker_bars, score)
    past = news_document(KO_REPORT, past_tweets, _cut_frames(ticker_bars, KO_REPORT), score)

    assert len(past_tweets) < len(tweets)  # there is a future to leave out
    assert full == past


def test_the_news_flow_registers_a_model_when_none_exists_then_reuses_it(
    prefect_harness, mlflow_dir, redis_env, redis_store, redis_namespace
):
    first = news_context(as_of=KO_REPORT, namespace=redis_namespace)
    second = news_context(as_of="2014-10-22", namespace=redis_namespace)

    assert first["model"]["source"] == "trained" and first["model"]["version"] == "1"
    assert first["model"]["macro_f1"] > 0.6
    assert second["model"] == {
        "name": "strategy.sentiment_analysis",
        "version": "1",
        "source": "newest",
    }
    stored = redis_store.get_context("news")
    assert stored == second
    assert stored["schema_version"] == 1 and stored["as_of"] == "2014-10-22"
    assert stored["computed_at"].endswith("+00:00")
    assert any(e["symbol"] == "KO" for e in stored["earnings_events"])


# --- regime and macro -----------------------------------------------------------------------


def test_the_regime_is_turbulent_in_october_2008_and_not_in_june_2017(index_bars):
    crisis = regime_document(index_bars, date(2008, 10, 15))
    calm = regime_document(index_bars, date(2017, 6, 30))

    assert (crisis["label"], crisis["turbulent"]) == ("turbulent", True)
    assert crisis["turbulent_probability"] > 0.9
    assert calm["turbulent"] is False and calm["turbulent_probability"] < 0.1
    # Realized volatility: about 60-90 % annualized in the 2008 crash, near 10 % in mid-2017.
    assert crisis["volatility"] > 0.5 > 0.15 > calm["volatility"]
    assert crisis["decided_at"] == "2008-10-15"


def test_the_regime_is_fitted_on_past_bars_only(index_bars):
    as_of = date(2008, 10, 15)
    past = [b for b in index_bars if b.ts_event < day_end_ns(as_of)]

    assert len(past) < len(index_bars)
    assert regime_document(index_bars, as_of) == regime_document(past, as_of)


def test_the_macro_stance_in_the_2005_hiking_cycle_is_risk_off(macro_events):
    document = macro_document(date(2005, 6, 30), macro_events)

    assert document["stance"] == "risk_off"
    fed = document["fed_policy"]
    # The Fed raised its rate at every meeting from mid-2004: over six published months (Nov
    # 2004 to May 2005, about 1.9 % to 3.0 %) the funds rate rose by about a point.
    assert 0.8 < fed["reason"]["rate_change"] < 1.3
    assert fed["reason"]["risk_off"] == 1.0 and fed["stale"] is False
    for name in strategic.MACRO_TYPES:
        assert document[name]["decided_at"] <= "2005-06-30"


def test_macro_decisions_use_nothing_published_after_as_of(macro_events):
    as_of = date(2005, 6, 30)
    past = {
        name: [e for e in events if e.ts_event < day_end_ns(as_of)]
        for name, events in macro_events.items()
    }

    assert macro_document(as_of, past) == macro_document(as_of, macro_events)


def test_a_decision_whose_data_stopped_is_marked_stale_and_left_out_of_the_stance(macro_events):
    document = macro_document(date(2019, 6, 28), macro_events)  # the Treasury file ends 2017-03

    assert document["fed_policy"]["stale"] is True
    assert document["fed_policy"]["age_days"] > 700
    assert document["global_liquidity"]["stale"] is False
    assert document["why"] != "fed policy is tightening"


def test_the_high_time_frame_flow_writes_regime_and_macro_contexts(
    prefect_harness, redis_env, redis_store, redis_namespace
):
    written = high_time_frame_context(as_of=date(2008, 10, 15), namespace=redis_namespace)

    regime, macro = redis_store.get_context("regime"), redis_store.get_context("macro")
    assert regime == written["regime"] and macro == written["macro"]
    assert regime["label"] == "turbulent" and regime["as_of"] == "2008-10-15"
    assert macro["schema_version"] == regime["schema_version"] == 1
    assert {"fed_policy", "global_liquidity", "macro_trend", "stance"} <= set(macro)


# --- adaptation -----------------------------------------------------------------------------

TREND, REVERSION = "strategy.breakout", "strategy.mean_reversion"
FEED = "equities_daily_stocknet88"


def _run_core_with_operator_weights(redis_connection, namespace: str) -> None:
    """A real core replays real bars with breakout and mean reversion; an operator sets
    breakout's weight to 0.8 through the control channel before it starts."""
    bars = replay_events(FEED, symbols=["AAPL", "KO", "XOM", "JPM"])
    store = RedisStore(redis_connection.client, namespace)
    FeedPublisher(redis_connection.client, namespace).publish(FEED, bars)
    run_core(
        CoreSettings(feeds=(FEED,), until_end=True, tactical_cycle_s=0.2),
        redis_connection,
        namespace=namespace,
        source=LocalStrategies(("breakout", "mean_reversion")),
        before_run=lambda _: store.publish_control({"action": "weights", "weights": {TREND: 0.8}}),
    )


def test_the_adapt_flow_starts_from_the_weights_a_real_core_publishes_and_the_core_applies_it(
    prefect_harness, mlflow_dir, redis_env, redis_connection, redis_store, redis_namespace,
    tmp_path,
):  # fmt: skip
    _run_core_with_operator_weights(redis_connection, redis_namespace)
    high_time_frame_context(as_of=date(2008, 10, 15), namespace=redis_namespace)
    status = redis_store.read_status("core-1")
    assert status is not None and status.weights() == {TREND: 0.8, REVERSION: 1.0}
    performance = performance_from_status(status)

    record = adapt(namespace=redis_namespace, core="core-1")

    changes = {c["strategy"]: c for c in record["changes"]}
    # Mid-October 2008 the Fed was cutting: the macro stance is not risk-off, the regime is
    # turbulent. Breakout (trend) starts from the operator's 0.8 and wants 1.0 x 0.5: it moves
    # by the default step of at most 0.25, to 0.55.
    assert record["context"]["macro_stance"] == "risk_on"
    assert (changes[TREND]["old"], changes[TREND]["new"]) == (0.8, pytest.approx(0.55))
    assert "turbulent regime" in changes[TREND]["why"]
    # Both are judged on the Sharpe the core measured over the replay: neither is losing, so
    # mean reversion only gets the turbulent boost, 1.0 x 1.5, by at most a step.
    assert record["performance"] == {k: msgspec.to_builtins(v) for k, v in performance.items()}
    assert record["performance_missing"] == []
    assert all(p.sharpe > 0 and p.periods > 1000 for p in performance.values())
    assert (changes[REVERSION]["old"], changes[REVERSION]["new"]) == (1.0, 1.25)
    (message,) = [m for m in redis_store.read_control_log() if "changes" in m]
    assert message["action"] == "weights" and message["weights"] == record["weights"]
    assert redis_store.get_context("adaptation")["changes"] == record["changes"]
    store = MlflowStore()
    run = store.client.get_run(record["run_id"])
    assert run.info.experiment_id == store.experiment_id(ADAPTATION_EXPERIMENT)
    path = store.client.download_artifacts(record["run_id"], "changes.json", str(tmp_path))
    assert json.loads(Path(path).read_text())["changes"] == record["changes"]

    engine = TradingEngine(
        [
            StrategyDeployment(name=TREND, version="1", type_name="breakout", config={}),
            StrategyDeployment(name=REVERSION, version="2", type_name="mean_reversion", config={}),
        ]
    )
    engine.set_weights(status.weights())  # where the core stood
    outcome = apply_control(engine, message)

    assert outcome.startswith("applied weights to 2 strategies")
    assert current_weights(engine) == record["weights"]
