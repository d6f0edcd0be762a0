"""The long-running core under faults, each against a real Redis server (and a real MLflow store).

Redis killed and restarted mid-run, the core killed with SIGKILL and restarted, MLflow
unreachable at a reload, hot reloads that carry state over or not, new versions that fail to
load or fail their first cycle, and a strategy that raises. The reference for "nothing lost,
nothing duplicated" is always an uninterrupted :class:`TradingEngine` run on the same bars.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse
from urllib.request import url2pathname

import pytest

from core.adapters.market_streams import FeedPublisher
from core.adapters.redis_server import RedisConnection, connect, fail_fast_client
from core.adapters.redis_store import RedisStore
from core.data.feeds import replay_events
from core.engine.engine import PositionSizing, TradingEngine
from core.engine.execution import BarFillModel
from core.engine.venue import Venue
from core.model import Bar, Signal
from core.ports import StrategyDeployment
from core.runtime.outbox import BufferedWriter
from core.runtime.service import CoreService, CoreSettings, state_key
from core.strategies.catalogue import build
from strategy_engine.core_process import (
    TRANSIENT,
    AliasSource,
    LocalStrategies,
    feed_reader,
    read_status,
    run_core,
)
from tests.core_runs import run_core_beside
from tests.evidence import direction_evidence, validated
from tests.fixtures_mlflow import FAILED, PASSED
from tests.fixtures_processes import core_command, core_environment, redis_process, started

pytestmark = pytest.mark.integration

FEED = "equities_daily_stocknet88"
SYMBOLS = ["AAPL", "KO", "XOM", "JPM"]
TYPES = ("ma_crossover", "breakout")
CORE_TIMEOUT_S = 30.0


@pytest.fixture(scope="module")
def bars() -> list[Bar]:
    return replay_events(FEED, symbols=SYMBOLS)


# -- helpers ------------------------------------------------------------------------------------


def _reference(
    bars: list[Bar], deployments: list[StrategyDeployment], store: RedisStore | None = None
) -> TradingEngine:
    """An uninterrupted run with the core's default fills, capital, sizing and risk."""
    engine = TradingEngine(
        deployments,
        venue=Venue(bars=BarFillModel(fee_bps=1.0)),
        initial_capital=1_000_000.0,
        sizing=PositionSizing(notional=10_000.0),
        sink=store,
        keep_history=True,
    )
    engine.run(bars)
    return engine


def _wait_for(condition: Callable[[], bool], timeout_s: float = 15.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.0005)


def _events(service: CoreService) -> int:
    return service.engine.tracker.events if service.engine is not None else 0


# -- 1. Redis killed and restarted mid-run --------------------------------------------------------


def test_a_core_survives_redis_being_killed_and_restarted_with_no_output_lost_or_duplicated(
    tmp_path_factory: pytest.TempPathFactory, bars: list[Bar]
) -> None:
    namespace = f"faults-{uuid.uuid4().hex[:8]}"
    seen: dict[str, Any] = {}

    def kill_then_restart(service: CoreService) -> None:
        # Redis is killed right after a read hands the core a batch of bars, before the core
        # works through it: that batch's signals are made with Redis away and must wait in the
        # buffer. Killing from inside the read makes that order certain, not a race.
        killed = threading.Event()
        read = service.feed.read

        def read_then_kill(count: int, block_ms: int) -> Any:
            delivery = read(count, block_ms)
            if delivery.events and _events(service) > 0 and not killed.is_set():
                server.kill()
                seen["signals_at_kill"] = service.engine.tracker.signals  # type: ignore[union-attr]
                killed.set()
            return delivery

        service.feed.read = read_then_kill  # type: ignore[method-assign]
        _wait_for(killed.is_set, what="a read to hand over a batch")
        _wait_for(lambda: service.read_errors >= 3, what="reads failing while Redis is away")
        seen["signals_while_away"] = service.engine.tracker.signals  # type: ignore[union-attr]
        seen["writer_while_away"] = service.writer.stats()
        server.start()

    with (
        redis_process(tmp_path_factory.mktemp("r")) as server,
        connect(server.url) as connection,
    ):
        FeedPublisher(connection.client, namespace).publish(FEED, bars)
        settings = CoreSettings(feeds=(FEED,), until_end=True, tactical_cycle_s=0.2, read_count=500)
        summary = run_core_beside(
            connection, settings, namespace, LocalStrategies(TYPES), kill_then_restart,
            CORE_TIMEOUT_S,
        )  # fmt: skip
        store = RedisStore(connection.client, namespace)
        signals, orders, fills = store.read_signals(), store.read_orders(), store.read_fills()
        reference_store = RedisStore(connection.client, f"{namespace}-ref")
        reference = _reference(bars, LocalStrategies(TYPES).load_active_set(), reference_store)
        reference_orders = reference_store.read_orders()

    away = seen["writer_while_away"]
    assert seen["signals_while_away"] > seen["signals_at_kill"], "no signal made while away"
    assert not away["connected"] and away["buffered"] > 0
    assert summary["read_errors"] >= 3
    assert summary["redis"]["reconnects"] >= 1
    assert summary["redis"]["dropped"] == 0 and summary["redis"]["buffered"] == 0
    assert summary["events_in"] == len(bars)
    assert signals == reference.all_signals
    assert fills == reference.all_fills
    assert orders == reference_orders


def test_the_write_buffer_keeps_every_batch_past_its_bound_and_writes_them_in_order_on_drain(
    tmp_path_factory: pytest.TempPathFactory, aapl_bars
) -> None:
    folder = tmp_path_factory.mktemp("r")
    strategy = build("ma_crossover", {"fast_period": 3, "slow_period": 8}, "AAPL")
    signals: list[Signal] = []
    for row in aapl_bars.head(400).itertuples():
        bar = Bar(symbol="AAPL", ts_event=int(row.ts_event), open=row.open, high=row.high,
                  low=row.low, close=row.close, volume=row.volume)  # fmt: skip
        if (signal := strategy.update(bar)) is not None:
            signals.append(signal)
    batches = [signals[i : i + 3] for i in range(0, 12, 3)]
    assert all(len(batch) == 3 for batch in batches)
    # Nothing listens on the socket yet: every write fails as it would with Redis down.
    client = fail_fast_client(f"unix://{folder / 'redis.sock'}")
    writer = BufferedWriter(RedisStore(client, "bound"), transient=TRANSIENT, max_items=7)

    for batch in batches:
        writer.publish_signals(batch)
    away = writer.stats()
    with redis_process(folder):
        drained = writer.drain(force=True)
        stored = RedisStore(client, "bound").read_signals()
    client.close()

    # Past the bound nothing is dropped: the writer says it is full (the core stops reading).
    assert away["buffered"] == 12 and away["saturated"] and not away["connected"]
    assert away["dropped"] == 0
    assert drained and writer.stats()["buffered"] == 0 and writer.stats()["reconnects"] == 1
    assert not writer.saturated
    assert stored == [s for batch in batches for s in batch]


# -- 2. the core killed with SIGKILL and restarted -----------------------------------------------


def test_a_core_killed_with_sigkill_resumes_from_its_checkpoint_without_a_duplicate_order(
    redis_connection: RedisConnection, redis_namespace: str, bars: list[Bar], tmp_path: Path
) -> None:
    env = core_environment(redis_connection.url, tmp_path / "var", tmp_path / "mlflow")
    argv = core_command(
        "--feed", FEED, "--strategies", ",".join(TYPES), "--tactical-cycle-s", "0.2",
        "--namespace", redis_namespace, "--json",
    )  # fmt: skip
    store = RedisStore(redis_connection.client, redis_namespace)
    span_s = (bars[-1].ts_event - bars[0].ts_event) / 1e9
    publisher = threading.Thread(
        # The whole feed over ~4 s of wall time, so the kill lands while bars still arrive.
        target=FeedPublisher(redis_connection.client, redis_namespace).publish,
        args=(FEED, bars),
        kwargs={"speed": span_s / 4.0},
        daemon=True,
    )

    with started(argv, env) as first:
        # Publish once the core is up (its first status), so it reads while bars arrive.
        _wait_for(lambda: store.load_report("status:core-1") is not None, what="the core's status")
        publisher.start()
        _wait_for(
            lambda: (
                (store.load_state(state_key("core-1", "engine")) or {}).get("events", 0) >= 1000
            ),
            timeout_s=20,
            what="a checkpoint covering 1000 events",
        )
        first.kill()  # SIGKILL: no last checkpoint, no acknowledgement
        first.wait(timeout=10)
        checkpointed = store.load_state(state_key("core-1", "engine"))
    publisher.join(timeout=30)
    assert not publisher.is_alive()
    assert checkpointed is not None and checkpointed["events"] < len(bars)

    with started([*argv, "--until-end"], env) as second:
        out, err = second.communicate(timeout=60)
    assert second.returncode == 0, err
    summary = json.loads(out)

    orders = store.read_orders()
    reference_store = RedisStore(redis_connection.client, f"{redis_namespace}:ref")
    reference = _reference(bars, LocalStrategies(TYPES).load_active_set(), reference_store)
    assert summary["restored_from_checkpoint"] is True
    assert summary["events_in"] == len(bars)
    assert store.read_fills() == reference.all_fills
    assert len({o.order_id for o in orders}) == len(orders)
    assert orders == reference_store.read_orders()


def _service(client: Any, namespace: str, settings: CoreSettings) -> CoreService:
    """A core wired as ``run_core`` wires it, to be driven cycle by cycle."""
    store = RedisStore(client, namespace)
    reader = feed_reader(client, store, settings)
    writer = BufferedWriter(store, transient=TRANSIENT)
    return CoreService(
        settings, source=LocalStrategies(TYPES), feed=reader, writer=writer, board=store,
        transient=TRANSIENT,
    )  # fmt: skip


def test_a_core_killed_between_its_checkpoint_and_its_acknowledgement_applies_nothing_twice(
    redis_connection: RedisConnection, redis_namespace: str, bars: list[Bar]
) -> None:
    FeedPublisher(redis_connection.client, redis_namespace).publish(FEED, bars)
    settings = CoreSettings(feeds=(FEED,), until_end=True, read_count=500)
    client = fail_fast_client(redis_connection.url)
    # The cycles are driven one by one to stop exactly where a kill can land.
    crashed = _service(client, redis_namespace, settings)
    crashed.start()
    while _events(crashed) < 1500:
        crashed._fast_cycle()
    crashed._tactical_cycle()  # checkpoint, then acknowledge the first 1500 entries
    while _events(crashed) < 3000:
        crashed._fast_cycle()
    crashed._engine().checkpoint()  # the next checkpoint is written...
    assert crashed.writer.drain(force=True)
    crashed._fast_cycle()  # ...and 500 more bars processed; then killed before any ack
    del crashed

    restarted = _service(client, redis_namespace, settings)
    summary = restarted.run()
    client.close()

    store = RedisStore(redis_connection.client, redis_namespace)
    reference_store = RedisStore(redis_connection.client, f"{redis_namespace}:ref")
    reference = _reference(bars, LocalStrategies(TYPES).load_active_set(), reference_store)
    assert summary["restored_from_checkpoint"] is True
    # Entries 1501-3000 come back but are in the checkpoint: skipped; 3001-3500 are redone once.
    assert summary["events_in"] == len(bars) and summary["events_rejected"] == 0
    assert store.read_fills() == reference.all_fills
    assert store.read_orders() == reference_store.read_orders()


# -- MLflow: a real SQLite store per test ---------------------------------------------------------

MA_NAME = "strategy.ma_crossover"
MA_CONFIG = {"fast_period": 10, "slow_period": 30}


def _register_ma(
    registry: Any, config: dict[str, Any], champion: tuple[str, dict[str, Any]] | None = None
) -> str:
    """Register an ma_crossover version with its evidence, evaluated against ``champion``."""
    registered = registry.register(
        "ma_crossover", config, data_hash="sha256:stocknet",
        validation=validated(config, champion=champion),
    )  # fmt: skip
    return str(registered.version)


def _settings(**overrides: Any) -> CoreSettings:
    # No periodic registry check: reloads here happen only when a control message asks.
    defaults: dict[str, Any] = {
        "feeds": (FEED,),
        "until_end": True,
        "tactical_cycle_s": 0.2,
        "registry_check_s": 3600.0,
    }
    return CoreSettings(**{**defaults, **overrides})


def _versions(service: CoreService) -> dict[str, str]:
    engine = service.engine
    return {} if engine is None else {d.name: d.version for d in engine.applicator.deployments}


def _decisions(signals: list[Signal]) -> list[tuple[str, str, int, float]]:
    """What each signal decided, whichever version decided it.

    Strength and reason are left out: a restored moving average rebuilds its running sum from
    its window (``math.fsum``), so they may differ from an uninterrupted run in the last bits.
    """
    return [(s.strategy, s.symbol, s.ts_event, s.target_position) for s in signals]


def _deployment(type_name: str, config: dict[str, Any], **extra: Any) -> StrategyDeployment:
    return StrategyDeployment(
        name=f"strategy.{type_name}", version="ref", type_name=type_name, config=config, **extra
    )


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# -- 3. MLflow unreachable at a reload ------------------------------------------------------------


def test_a_reload_while_mlflow_is_unreachable_keeps_the_running_set_and_says_why(
    redis_connection: RedisConnection,
    redis_namespace: str,
    registry: Any,
    bars: list[Bar],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    feed = bars[:2000]
    registry.promote(MA_NAME, _register_ma(registry, MA_CONFIG))
    publisher = FeedPublisher(redis_connection.client, redis_namespace)
    store = RedisStore(redis_connection.client, redis_namespace)
    publisher.publish(FEED, feed[:1000], end=False)
    unreachable = f"http://127.0.0.1:{_closed_port()}"

    def reload_with_mlflow_away(service: CoreService) -> None:
        _wait_for(lambda: _events(service) == 1000, what="the first half")
        monkeypatch.setenv("MLFLOW_TRACKING_URI", unreachable)
        monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # fail now, not in minutes
        assert store.publish_control({"action": "reload"}) == 1
        _wait_for(lambda: "reload skipped" in service.last_error, what="the skipped reload")
        publisher.publish(FEED, feed[1000:])

    summary = run_core_beside(
        redis_connection, _settings(), redis_namespace, AliasSource("champion"),
        reload_with_mlflow_away, CORE_TIMEOUT_S,
    )  # fmt: skip

    status = read_status(redis_connection, "core-1", redis_namespace)
    reference = _reference(feed, [_deployment("ma_crossover", MA_CONFIG)])
    assert summary["events_in"] == len(feed) and summary["reloads"] == 0
    assert summary["last_error"].startswith("reload skipped, kept the running set: ")
    assert unreachable in summary["last_error"]
    assert status is not None and status["last_error"] == summary["last_error"]
    assert [(s["name"], s["version"]) for s in status["active_set"]] == [(MA_NAME, "1")]
    signals = store.read_signals()
    assert {s.lineage.model_version for s in signals} == {"1"}
    assert _decisions(signals) == _decisions(reference.all_signals)


# -- 4. hot reload --------------------------------------------------------------------------------


def test_a_hot_reload_swaps_between_cycles_carrying_state_only_when_the_config_is_unchanged(
    redis_connection: RedisConnection, redis_namespace: str, registry: Any, bars: list[Bar]
) -> None:
    changed = {"fast_period": 5, "slow_period": 40}
    first_version = _register_ma(registry, MA_CONFIG)
    registry.promote(MA_NAME, first_version)
    same_config = _register_ma(registry, MA_CONFIG, champion=(first_version, MA_CONFIG))
    # Evaluated against the version it replaces (5/40 scores above 10/30 on the window).
    new_config = _register_ma(registry, changed, champion=(same_config, MA_CONFIG))
    first, second = bars[:1600], bars[1600:3200]
    third = bars[3200:]
    publisher = FeedPublisher(redis_connection.client, redis_namespace)
    store = RedisStore(redis_connection.client, redis_namespace)
    publisher.publish(FEED, first, end=False)

    def promote_twice(service: CoreService) -> None:
        _wait_for(lambda: _events(service) == len(first), what="the first part")
        registry.promote(MA_NAME, same_config)
        assert store.publish_control({"action": "reload"}) == 1
        publisher.publish(FEED, second[:800], end=False)  # bars keep coming during the reload
        _wait_for(lambda: _versions(service) == {MA_NAME: "2"}, what="version 2")
        publisher.publish(FEED, second[800:], end=False)
        _wait_for(
            lambda: (
                _versions(service) == {MA_NAME: "2"}
                and _events(service) == len(first) + len(second)
            ),
            what="version 2 through the second part",
        )
        registry.promote(MA_NAME, new_config)
        assert store.publish_control({"action": "reload"}) == 1
        _wait_for(lambda: _versions(service) == {MA_NAME: "3"}, what="version 3")
        publisher.publish(FEED, third)

    summary = run_core_beside(
        redis_connection, _settings(), redis_namespace, AliasSource("champion"), promote_twice,
        CORE_TIMEOUT_S,
    )  # fmt: skip

    signals = store.read_signals()
    versions = [s.lineage.model_version for s in signals]
    by_version = {v: [s for s in signals if s.lineage.model_version == v] for v in "123"}
    carried = _reference(first + second, [_deployment("ma_crossover", MA_CONFIG)])
    fresh = _reference(third, [_deployment("ma_crossover", changed)])
    assert summary["events_in"] == len(bars)
    assert summary["reloads"] == 2 and summary["strategy_errors"] == []
    # One switch per reload, never back: 1 ... 1 2 ... 2 3 ... 3.
    assert versions == sorted(versions) and all(by_version.values())
    assert by_version["1"][-1].ts_event <= by_version["2"][0].ts_event
    # Same type and config: no re-warm, the signals are those of one uninterrupted run.
    assert _decisions(by_version["1"] + by_version["2"]) == _decisions(carried.all_signals)
    # A changed config starts fresh: exactly a new strategy's signals from the swap on.
    assert _decisions(by_version["3"]) == _decisions(fresh.all_signals)


def test_a_new_version_that_fails_to_load_is_refused_and_the_running_version_stays(
    redis_connection: RedisConnection, redis_namespace: str, registry: Any, bars: list[Bar]
) -> None:
    feed = bars[:2000]
    running = _register_ma(registry, MA_CONFIG)
    registry.promote(MA_NAME, running)
    broken = _register_ma(registry, MA_CONFIG, champion=(running, MA_CONFIG))
    # A version written by newer code: its document names a type this installation lacks.
    source = registry.model_version(MA_NAME, broken).source
    document = Path(url2pathname(urlparse(f"{source}/data/strategy.json").path))
    content = json.loads(document.read_text())
    document.write_text(json.dumps({**content, "type": "ma_crossover_v9"}))
    publisher = FeedPublisher(redis_connection.client, redis_namespace)
    store = RedisStore(redis_connection.client, redis_namespace)
    publisher.publish(FEED, feed[:1000], end=False)

    def ask_for_the_broken_version(service: CoreService) -> None:
        _wait_for(lambda: _events(service) == 1000, what="the first half")
        registry.promote(MA_NAME, broken)
        assert store.publish_control({"action": "reload"}) == 1
        _wait_for(lambda: "reload skipped" in service.last_error, what="the refused reload")
        publisher.publish(FEED, feed[1000:])

    summary = run_core_beside(
        redis_connection, _settings(), redis_namespace, AliasSource("champion"),
        ask_for_the_broken_version, CORE_TIMEOUT_S,
    )  # fmt: skip

    assert summary["events_in"] == len(feed) and summary["reloads"] == 0
    assert "ma_crossover_v9" in summary["last_error"]
    assert f"{MA_NAME} version {broken}" in summary["last_error"]
    assert {s.lineage.model_version for s in store.read_signals()} == {"1"}


@pytest.mark.parametrize(
    ("validation", "said"),
    [
        # Its data gate failed.
        (FAILED, ("failed validation",)),
        # Its data gate passed, as a version registered before the promotion evidence existed.
        (PASSED, ("registered before look-ahead/evaluation evidence", "retrain it")),
    ],
    ids=["failed-validation", "no-lookahead-nor-evaluation"],
)
def test_a_champion_moved_by_hand_to_a_version_without_evidence_is_refused_and_said(
    redis_connection: RedisConnection,
    redis_namespace: str,
    registry: Any,
    bars: list[Bar],
    validation: dict[str, Any],
    said: tuple[str, ...],
) -> None:
    feed = bars[:2000]
    registry.promote(MA_NAME, _register_ma(registry, MA_CONFIG))
    unfounded = registry.register(
        "ma_crossover", {"fast_period": 5, "slow_period": 20},
        data_hash="sha256:stocknet", validation=validation,
    ).version  # fmt: skip
    publisher = FeedPublisher(redis_connection.client, redis_namespace)
    store = RedisStore(redis_connection.client, redis_namespace)
    publisher.publish(FEED, feed[:1000], end=False)

    def move_the_alias_by_hand(service: CoreService) -> None:
        _wait_for(lambda: _events(service) == 1000, what="the first half")
        # What someone with MLflow access can do in its UI: no promotion, no evidence check.
        registry.client.set_registered_model_alias(MA_NAME, "champion", str(unfounded))
        assert store.publish_control({"action": "reload"}) == 1
        _wait_for(lambda: "reload skipped" in service.last_error, what="the refused reload")
        publisher.publish(FEED, feed[1000:])

    summary = run_core_beside(
        redis_connection, _settings(), redis_namespace, AliasSource("champion"),
        move_the_alias_by_hand, CORE_TIMEOUT_S,
    )  # fmt: skip

    assert summary["events_in"] == len(feed) and summary["reloads"] == 0
    assert summary["reloads_refused"] >= 1
    assert f"refusing the champion: {MA_NAME} version {unfounded}" in summary["last_error"]
    for words in said:
        assert words in summary["last_error"]
    assert {s.lineage.model_version for s in store.read_signals()} == {"1"}


def _direction_version_with_a_model_of_other_features(registry: Any, aapl_bars: Any) -> str:
    """Register an ml_direction version whose XGBoost model was trained on fewer features than
    its config computes: it loads, and raises on its first prediction."""
    import xgboost as xgb

    from core.features.direction import FeatureParams, direction_labels, feature_frame
    from registry.learned_direction import log_direction_model

    trained_on = feature_frame(aapl_bars, FeatureParams(return_horizons=(1, 5)))
    frame = trained_on.join(direction_labels(aapl_bars)).dropna()
    features = frame[list(trained_on.columns)].to_numpy()
    booster = xgb.train(
        {"objective": "binary:logistic", "max_depth": 2},
        xgb.DMatrix(features, label=frame["label"].to_numpy()),
        num_boost_round=5,
    )
    metrics = {"hit_rate": 0.5, "ic": 0.0, "sharpe": 0.0}
    registered = log_direction_model(
        {"model": "xgboost", "model_params": {"max_depth": 2}},
        booster,
        metrics,
        data_hash="sha256:aapl",
        validation={**PASSED, **direction_evidence(aapl_bars, metrics)},
        store=registry.store,
    )
    return str(registered.version)


def test_a_new_set_that_fails_its_first_cycle_is_reverted_and_the_old_version_keeps_running(
    redis_connection: RedisConnection,
    redis_namespace: str,
    registry: Any,
    bars: list[Bar],
    aapl_bars: Any,
) -> None:
    feed = bars[:2400]
    registry.promote(MA_NAME, _register_ma(registry, MA_CONFIG))
    failing = _direction_version_with_a_model_of_other_features(registry, aapl_bars)
    publisher = FeedPublisher(redis_connection.client, redis_namespace)
    store = RedisStore(redis_connection.client, redis_namespace)
    publisher.publish(FEED, feed[:800], end=False)

    def promote_the_failing_version(service: CoreService) -> None:
        _wait_for(lambda: _events(service) == 800, what="the first part")
        registry.promote("strategy.ml_direction", failing)
        assert store.publish_control({"action": "reload"}) == 1
        _wait_for(lambda: service.reloads == 1, what="the swap")
        # 200 bars per symbol within the trial cycle: past ml_direction's warm-up.
        publisher.publish(FEED, feed[800:1600], end=False)
        _wait_for(lambda: "reload reverted" in service.last_error, what="the revert")
        publisher.publish(FEED, feed[1600:])

    summary = run_core_beside(
        redis_connection, _settings(tactical_cycle_s=1.0), redis_namespace,
        AliasSource("champion"), promote_the_failing_version, CORE_TIMEOUT_S,
    )  # fmt: skip

    status = read_status(redis_connection, "core-1", redis_namespace)
    signals = store.read_signals()
    reference = _reference(feed, [_deployment("ma_crossover", MA_CONFIG)])
    assert summary["events_in"] == len(feed) and summary["reloads"] == 0
    assert "strategy.ml_direction raised" in summary["last_error"]
    assert "Feature shape mismatch" in summary["last_error"]
    assert status is not None
    assert [(s["name"], s["version"]) for s in status["active_set"]] == [(MA_NAME, "1")]
    assert {s.strategy for s in signals} == {MA_NAME}
    # The old version saw every bar, those of the trial cycle included.
    assert _decisions(signals) == _decisions(reference.all_signals)


# -- 5. a strategy that raises -------------------------------------------------------------------


@dataclass(frozen=True)
class _FixedSet:
    """A strategy source holding a fixed set (what a registry would return)."""

    deployments: tuple[StrategyDeployment, ...]

    def load_active_set(self, alias: str = "champion") -> list[StrategyDeployment]:
        return list(self.deployments)


def test_a_strategy_that_raises_is_quarantined_and_the_others_keep_running(
    redis_connection: RedisConnection, redis_namespace: str, bars: list[Bar]
) -> None:
    feed = bars[:2000]
    crossover = _deployment("ma_crossover", MA_CONFIG)
    # A learned model whose fitted predictor was never attached: raises on its first bar.
    unfitted = _deployment("ml_direction", {"model": "xgboost"})
    FeedPublisher(redis_connection.client, redis_namespace).publish(FEED, feed)

    summary = run_core(
        _settings(), redis_connection, namespace=redis_namespace,
        source=_FixedSet((crossover, unfitted)),
    )  # fmt: skip

    signals = RedisStore(redis_connection.client, redis_namespace).read_signals()
    reference = _reference(feed, [crossover])
    assert summary["events_in"] == len(feed)
    # Quarantined per symbol: one error for each symbol it raised on, each naming it.
    symbols = sorted({bar.symbol for bar in feed})
    assert [e.split(":", 1)[0] for e in sorted(summary["strategy_errors"])] == [
        f"strategy.ml_direction raised on {symbol}" for symbol in symbols
    ]
    assert all("needs a fitted predictor" in e for e in summary["strategy_errors"])
    assert summary["signals_by_strategy"].get("strategy.ml_direction", 0) == 0
    assert {s.strategy for s in signals} == {"strategy.ma_crossover"}
    assert _decisions(signals) == _decisions(reference.all_signals)
