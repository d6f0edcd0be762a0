"""The core on real feeds through a real Redis: same results as the backtest, bad input survived."""

from __future__ import annotations

import pytest

from core import codec
from core.adapters.market_streams import FeedPublisher
from core.adapters.redis_server import RedisConnection
from core.adapters.redis_store import RedisStore
from core.data.feeds import replay_events
from core.engine.engine import PositionSizing, TradingEngine
from core.engine.execution import BarFillModel
from core.engine.venue import Venue
from core.model import Bar, Quote
from core.runtime.service import CoreSettings
from core.runtime.shard import SymbolShard
from strategy_engine.core_process import LocalStrategies, read_status, run_core

pytestmark = pytest.mark.integration
FEED = "equities_daily_stocknet88"
TYPES = ("ma_crossover", "breakout")


@pytest.fixture(scope="module")
def bars() -> list[Bar]:
    return replay_events(FEED, symbols=["AAPL", "KO", "XOM", "JPM"])


def _settings(**overrides) -> CoreSettings:
    return CoreSettings(
        feeds=(FEED,), until_end=True, tactical_cycle_s=0.2, batch_forms="always", **overrides
    )


def _backtest(events) -> TradingEngine:
    # One instance per symbol here, while the core runs ma_crossover's batch form: the two
    # must write the same signals and fills.
    engine = TradingEngine(
        LocalStrategies(TYPES).load_active_set(),
        venue=Venue(bars=BarFillModel(fee_bps=1.0)),
        initial_capital=1_000_000.0,
        sizing=PositionSizing(notional=10_000.0),
        keep_history=True,
        batch_forms="never",
    )
    engine.run(events)
    return engine


def test_a_core_run_on_a_feed_writes_the_backtests_signals_and_fills(
    redis_connection: RedisConnection, redis_namespace: str, bars
):
    FeedPublisher(redis_connection.client, redis_namespace).publish(FEED, bars)

    summary = run_core(
        _settings(), redis_connection, namespace=redis_namespace, source=LocalStrategies(TYPES)
    )

    store = RedisStore(redis_connection.client, redis_namespace)
    reference = _backtest(bars)
    assert summary["events_in"] == len(bars)
    assert summary["vectorized"] == ["strategy.ma_crossover"]
    assert store.read_signals() == reference.all_signals
    assert store.read_fills() == reference.all_fills
    assert summary["fast_cycle"]["count"] > 0 and summary["in_process"]["count"] > 0
    status = read_status(redis_connection, "core-1", redis_namespace)
    assert status is not None
    assert {s["name"] for s in status["active_set"]} == {f"strategy.{t}" for t in TYPES}


def test_two_cores_split_a_feed_by_symbol_and_together_do_one_cores_work(
    redis_connection: RedisConnection, redis_namespace: str, bars
):
    FeedPublisher(redis_connection.client, redis_namespace).publish(FEED, bars)

    summaries = [
        run_core(
            _settings(name=f"core-{k}", shard=SymbolShard(index=k, count=2)),
            redis_connection,
            namespace=redis_namespace,
            source=LocalStrategies(TYPES),
        )
        for k in range(2)
    ]

    store = RedisStore(redis_connection.client, redis_namespace)
    reference = _backtest(bars)
    taken = [s["events_in"] for s in summaries]
    assert all(taken) and sum(taken) == len(bars)
    assert [s["events_skipped"] for s in summaries] == taken[::-1]
    # Each core keeps its own ledger, with ids from its own sequence: the two ledgers hold
    # exactly the one core's fills between them, and each only its own symbols.
    ledgers = [
        RedisStore(redis_connection.client, redis_namespace, core=f"core-{k}").read_fills()
        for k in range(2)
    ]
    for k, fills in enumerate(ledgers):
        assert fills and all(SymbolShard(index=k, count=2).owns(f.symbol) for f in fills)
    together = sorted(_content(f) for fills in ledgers for f in fills)
    assert together == sorted(_content(f) for f in reference.all_fills)
    assert sorted(store.read_signals(), key=_signal_key) == sorted(
        reference.all_signals, key=_signal_key
    )


def test_a_checkpoint_under_the_older_bare_keys_is_read_by_the_default_core_only(
    redis_connection: RedisConnection, redis_namespace: str, bars
):
    client = redis_connection.client
    FeedPublisher(client, redis_namespace).publish(FEED, bars)
    run_core(
        _settings(), redis_connection, namespace=redis_namespace, source=LocalStrategies(TYPES)
    )
    # Move the checkpoint to the keys an older version wrote: without the core's name.
    states = RedisStore(client, redis_namespace).key("state")
    saved = client.hgetall(states)
    client.delete(states)
    client.hset(states, mapping={k.decode().removeprefix("core-1/"): v for k, v in saved.items()})
    FeedPublisher(client, redis_namespace).publish(FEED, [])  # a new end for the restarted core

    again = run_core(
        _settings(), redis_connection, namespace=redis_namespace, source=LocalStrategies(TYPES)
    )
    other = run_core(
        _settings(name="core-2"),
        redis_connection,
        namespace=redis_namespace,
        source=LocalStrategies(TYPES),
    )

    assert again["restored_from_checkpoint"] is True
    assert other["restored_from_checkpoint"] is False


def _content(fill) -> tuple:
    """A fill without its id (ids come from each core's own order sequence)."""
    return (fill.ts_event, fill.symbol, fill.strategy, fill.side, fill.quantity, fill.price)


def _signal_key(signal) -> tuple:
    return signal.ts_event, signal.strategy, signal.symbol


def test_malformed_and_implausible_entries_are_dead_lettered_and_the_core_carries_on(
    redis_connection: RedisConnection, redis_namespace: str, bars
):
    publisher = FeedPublisher(redis_connection.client, redis_namespace)
    good = bars[:300]
    crossed = Quote(
        symbol="BTCUSDT", ts_event=1, bid_price=101.0, bid_size=1, ask_price=100.0, ask_size=1
    )
    negative = Bar(
        symbol="KO", ts_event=good[-1].ts_event, open=-1, high=1, low=-2, close=1, volume=1
    )
    backwards = Bar(symbol="AAPL", ts_event=good[0].ts_event - 10 * 86_400 * 10**9, open=1, high=1,
                    low=1, close=1, volume=1)  # fmt: skip
    publisher.publish(FEED, good[:150], end=False)
    malformed = (
        b"{not json",
        b'{"v":99,"kind":"bar","data":{}}',
        b'{"v":1,"kind":"bar","data":{}}',
    )
    for raw in (*malformed, *(codec.encode(e) for e in (crossed, negative, backwards))):
        publisher.publish_raw(FEED, raw)
    publisher.publish(FEED, good[150:])

    summary = run_core(
        _settings(), redis_connection, namespace=redis_namespace, source=LocalStrategies(TYPES)
    )

    reasons = [
        d["reason"]
        for d in RedisStore(redis_connection.client, redis_namespace).read_dead_letters()
    ]
    assert summary["events_in"] == 300
    assert summary["events_rejected"] == 6
    assert any("malformed message envelope" in r for r in reasons)
    assert any("unknown schema version 99" in r for r in reasons)
    assert any("malformed bar message" in r for r in reasons)
    assert any("crossed book" in r for r in reasons)
    assert any("non-positive price" in r for r in reasons)
    assert any("goes back" in r for r in reasons)


def test_a_weights_control_message_reweights_the_running_set(
    redis_connection: RedisConnection, redis_namespace: str, bars
):
    store = RedisStore(redis_connection.client, redis_namespace)
    FeedPublisher(redis_connection.client, redis_namespace).publish(FEED, bars)
    message = {"action": "weights", "weights": {"strategy.breakout": 0.5}}

    run_core(
        _settings(),
        redis_connection,
        namespace=redis_namespace,
        source=LocalStrategies(TYPES),
        before_run=lambda service: store.publish_control(message),
    )

    status = read_status(redis_connection, "core-1", redis_namespace)
    assert status is not None
    assert status["last_control"] == "applied weights to 1 strategies: strategy.breakout 1->0.5"
    weights = {row["strategy"]: row["weight"] for row in status["per_strategy"]}
    assert weights == {"strategy.breakout": 0.5, "strategy.ma_crossover": 1.0}


def test_shadow_variants_run_beside_the_live_set_and_never_trade(
    redis_connection: RedisConnection, redis_namespace: str, bars
):
    FeedPublisher(redis_connection.client, redis_namespace).publish(FEED, bars)
    settings = _settings(shadow_of="strategy.ma_crossover", shadow_variants=4)

    summary = run_core(
        settings, redis_connection, namespace=redis_namespace, source=LocalStrategies(TYPES)
    )

    store = RedisStore(redis_connection.client, redis_namespace)
    status = read_status(redis_connection, "core-1", redis_namespace)
    assert status is not None and status["online"] is not None
    assert len(status["online"]["weights"]) == 4
    assert store.read_fills() == _backtest(bars).all_fills  # the shadow placed nothing
    assert summary["events_in"] == len(bars)


def test_a_finished_run_is_logged_to_mlflow_with_equity_and_latency_plots(
    redis_connection: RedisConnection, redis_namespace: str, bars, mlflow_dir
):
    FeedPublisher(redis_connection.client, redis_namespace).publish(FEED, bars)

    summary = run_core(
        _settings(),
        redis_connection,
        namespace=redis_namespace,
        source=LocalStrategies(TYPES),
        log_to_mlflow=True,
    )

    run_dir = next(mlflow_dir.rglob(summary["mlflow_run"]))
    plots = sorted(p.name for p in run_dir.rglob("*.png"))
    assert plots == ["equity.png", "latency_in_process.png", "latency_tick_to_signal.png"]


def test_latency_arbitrage_trades_the_stale_spot_quote_through_the_core(
    redis_connection: RedisConnection, redis_namespace: str
):
    feed = "crypto_l2_binance_hftbacktest"
    events = replay_events(feed, symbols=["BTCUSDT"])
    FeedPublisher(redis_connection.client, redis_namespace).publish(feed, events)
    settings = CoreSettings(feeds=(feed,), until_end=True, tactical_cycle_s=0.5)

    summary = run_core(
        settings, redis_connection, namespace=redis_namespace, source=LocalStrategies(("latency",))
    )

    fills = RedisStore(redis_connection.client, redis_namespace).read_fills()
    spot = [q for q in events if q.kind == "quote" and q.venue == "spot"]
    bids, asks = {q.bid_price for q in spot}, {q.ask_price for q in spot}
    assert summary["signals_out"] > 0 and fills
    assert {f.symbol for f in fills} == {"BTCUSDT:spot"}
    for fill in fills:  # every fill is at a real spot quote, on the taker's side
        assert fill.price in (asks if fill.side.value == "buy" else bids)
        assert fill.fee == pytest.approx(fill.quantity * fill.price * 10.0 / 1e4)


def test_market_makers_quote_and_get_filled_by_real_prints_in_the_core(
    redis_connection: RedisConnection, redis_namespace: str
):
    feed = "crypto_l2_binance_hftbacktest"
    events = replay_events(feed, symbols=["BTCUSDT"], fast=True)
    FeedPublisher(redis_connection.client, redis_namespace).publish(feed, events)
    settings = CoreSettings(feeds=(feed,), until_end=True, tactical_cycle_s=0.5)

    summary = run_core(
        settings,
        redis_connection,
        namespace=redis_namespace,
        source=LocalStrategies(("adaptive_quote", "spread_adjuster")),
    )

    fills = RedisStore(redis_connection.client, redis_namespace).read_fills()
    prints = {t.price for t in events if t.kind == "trade"}
    assert summary["signals_by_strategy"]["strategy.adaptive_quote"] > 0
    assert fills and {f.strategy for f in fills} <= {
        "strategy.adaptive_quote",
        "strategy.spread_adjuster",
    }
    for fill in fills:  # a resting bid fills only on a print at or below it, an ask at or above
        near = [
            p for p in prints if (p <= fill.price if fill.side.value == "buy" else p >= fill.price)
        ]
        assert near
    assert len({f.fill_id for f in fills}) == len(fills)
