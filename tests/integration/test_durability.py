"""Nothing lost, nothing doubled: backpressure, each core's own ledger, safe replays, persistence.

On a real Redis: a full write buffer stops the core reading instead of dropping fills; cores
that split a universe each rebuild exactly their own ledger; a replay never resets a namespace
where a core runs, nor another core's ledger or checkpoint; a Redis that persists nothing is
refused; a core whose checkpoint is gone does not read its feeds again from the start.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import redis

from core.adapters.market_streams import FeedPublisher, feed_key
from core.adapters.redis_server import RedisConnection, fail_fast_client
from core.adapters.redis_store import RedisStore
from core.data.feeds import replay_events
from core.errors import ConfigError
from core.model import Bar
from core.runtime.outbox import BufferedWriter
from core.runtime.service import CoreService, CoreSettings, state_key
from core.runtime.shard import SymbolShard
from strategy_engine.core_process import (
    TRANSIENT,
    LocalStrategies,
    check_persistence,
    feed_reader,
    run_core,
)
from tests.fixtures_processes import core_command, core_environment, redis_process

pytestmark = pytest.mark.integration

FEED = "equities_daily_stocknet88"
TYPES = ("ma_crossover", "breakout")


@pytest.fixture(scope="module")
def bars() -> list[Bar]:
    return replay_events(FEED, symbols=["AAPL", "KO", "XOM", "JPM"])[:2000]


def _settings(**overrides: Any) -> CoreSettings:
    return CoreSettings(feeds=(FEED,), until_end=True, tactical_cycle_s=0.2, **overrides)


def _msgs(client: Any, key: str) -> list[bytes]:
    return [fields[b"msg"] for _, fields in client.xrange(key)]


def test_a_full_write_buffer_stops_the_core_reading_and_loses_nothing(
    redis_connection: RedisConnection, redis_namespace: str, bars: list[Bar]
) -> None:
    client = redis_connection.client
    reference_ns = f"{redis_namespace}-ref"
    FeedPublisher(client, reference_ns).publish(FEED, bars)
    run_core(_settings(), redis_connection, namespace=reference_ns, source=LocalStrategies(TYPES))
    FeedPublisher(client, redis_namespace).publish(FEED, bars)
    # Someone wrote a string where the signals go: every write of the core fails.
    client.set(f"{redis_namespace}:signals", "not a stream")
    store = RedisStore(fail_fast_client(redis_connection.url), redis_namespace)
    settings = _settings(read_count=100)
    service = CoreService(
        settings, source=LocalStrategies(TYPES), feed=feed_reader(store.client, store, settings),
        writer=BufferedWriter(store, transient=TRANSIENT, max_items=40), board=store,
        transient=TRANSIENT,
    )  # fmt: skip
    service.start()
    for _ in range(40):
        service._fast_cycle()
        service._tactical_cycle()
    stalled = service.summary()
    pending = client.xpending(feed_key(redis_namespace, FEED), "core:core-1")["pending"]
    client.delete(f"{redis_namespace}:signals")
    summary = service.run()

    assert stalled["backpressure_cycles"] > 0 and stalled["redis"]["saturated"]
    assert stalled["events_in"] < len(bars)  # it stopped reading...
    assert pending == stalled["events_in"]  # ...and acknowledged nothing it could not store
    assert summary["events_in"] == len(bars)
    assert summary["redis"]["dropped"] == summary["redis"]["duplicates"] == 0
    for stream in ("signals", "orders", "fills"):
        assert _msgs(client, f"{redis_namespace}:{stream}") == _msgs(
            client, f"{reference_ns}:{stream}"
        ), stream
    for key in client.scan_iter(match=f"{reference_ns}:*"):
        client.delete(key)


def test_each_shard_keeps_and_rebuilds_its_own_ledger(
    redis_connection: RedisConnection, redis_namespace: str, bars: list[Bar]
) -> None:
    FeedPublisher(redis_connection.client, redis_namespace).publish(FEED, bars)
    source = LocalStrategies(TYPES)

    def run(k: int) -> dict[str, Any]:
        settings = _settings(name=f"shard-{k}", shard=SymbolShard(index=k, count=2))
        return run_core(settings, redis_connection, namespace=redis_namespace, source=source)

    first = [run(k) for k in range(2)]
    fills = {
        k: RedisStore(redis_connection.client, redis_namespace, core=f"shard-{k}").read_fills()
        for k in range(2)
    }
    # The fills history is exported and trimmed away: a restart needs only its checkpoint.
    for k in range(2):
        key = RedisStore(redis_connection.client, redis_namespace, core=f"shard-{k}")
        redis_connection.client.xtrim(key.ledger_key("fills"), maxlen=0)
    again = [run(k) for k in range(2)]  # restarted: from the checkpoint alone

    for k in range(2):
        ledger = RedisStore(redis_connection.client, redis_namespace, core=f"shard-{k}")
        owned = SymbolShard(index=k, count=2)
        assert again[k]["restored_from_checkpoint"]
        assert again[k]["positions"] == first[k]["positions"]
        assert again[k]["pnl"] == first[k]["pnl"] != 0.0  # from the checkpointed ledger
        assert first[k]["positions"] and all(owned.owns(s) for s in first[k]["positions"])
        assert {p.symbol for p in ledger.load_positions().values()} <= set(first[k]["positions"])
        assert fills[k] and all(owned.owns(f.symbol) for f in fills[k])
        assert ledger.read_fills() == []  # nothing was written again
        assert first[k]["redis"]["duplicates"] == again[k]["redis"]["duplicates"] == 0


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    argv = core_command(*args)
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)


def test_a_replay_never_resets_a_running_cores_namespace_nor_another_cores_records(
    redis_connection: RedisConnection, redis_namespace: str, bars: list[Bar], tmp_path: Path
) -> None:
    client = redis_connection.client
    env = core_environment(redis_connection.url, tmp_path / "var", tmp_path / "mlflow")
    live = RedisStore(client, redis_namespace)  # core-1, running: its status is fresh
    FeedPublisher(client, redis_namespace).publish(FEED, bars[:400])
    run_core(
        _settings(), redis_connection, namespace=redis_namespace, source=LocalStrategies(TYPES)
    )
    state_before = client.hgetall(live.key("state"))
    fills_before = _msgs(client, live.ledger_key("fills"))
    status = live.load_report("status:core-1") or {}
    live.save_report(
        "status:core-1", {**status, "state": "running", "heartbeat_ns": time.time_ns()}
    )
    replay = (
        "--replay", FEED, "--fast", "--until-end", "--strategies", "ma_crossover",
        "--namespace", redis_namespace, "--no-mlflow", "--json", "--name", "probe",
    )  # fmt: skip

    refused = _cli(env, *replay)
    forced = _cli(env, *replay, "--reset")

    assert refused.returncode == 2 and "has running core(s) core-1" in refused.stderr
    assert forced.returncode == 0, forced.stderr
    assert json.loads(forced.stdout)["fills"] > 0
    probe_fields = [f for f in client.hkeys(live.key("state")) if f.startswith(b"probe/")]
    assert probe_fields  # the probe checkpointed under its own name...
    after = client.hgetall(live.key("state"))
    assert {f: v for f, v in after.items() if not f.startswith(b"probe/")} == state_before
    assert _msgs(client, live.ledger_key("fills")) == fills_before  # ...and core-1's are intact


def test_a_redis_that_persists_nothing_is_refused_unless_allowed(tmp_path: Path) -> None:
    with redis_process(tmp_path) as server:
        client = redis.Redis.from_url(server.url)
        assert check_persistence(client) == "aof"
        client.config_set("appendonly", "no")
        assert check_persistence(client) == "rdb"
        client.config_set("save", "")
        with pytest.raises(ConfigError, match="persists nothing"):
            check_persistence(client)
        assert check_persistence(client, allow_volatile=True) == "none"
        client.close()


def test_a_core_whose_checkpoint_is_gone_refuses_to_read_its_feeds_again(
    redis_connection: RedisConnection, redis_namespace: str, bars: list[Bar], tmp_path: Path
) -> None:
    client = redis_connection.client
    env = core_environment(redis_connection.url, tmp_path / "var", tmp_path / "mlflow")
    FeedPublisher(client, redis_namespace).publish(FEED, bars)
    run = ("--feed", FEED, "--until-end", "--strategies", "ma_crossover,breakout",
           "--namespace", redis_namespace, "--no-mlflow", "--json")  # fmt: skip
    first = _cli(env, *run)
    assert first.returncode == 0, first.stderr
    fills = _msgs(client, f"{redis_namespace}:fills")

    # The consumer group is lost (as when Redis comes back without it): the checkpoint says
    # where to go on from, so nothing is read twice.
    client.xgroup_destroy(feed_key(redis_namespace, FEED), "core:core-1")
    regrouped = _cli(env, *run)
    # The checkpoint is lost: the core refuses to read the feed again from the start...
    client.hdel(f"{redis_namespace}:state", *client.hkeys(f"{redis_namespace}:state"))
    refused = _cli(env, *run)
    # ...unless the operator says where to go on from.
    resumed = _cli(env, *run, "--resume-from", "end")

    assert regrouped.returncode == 0, regrouped.stderr
    summary = json.loads(regrouped.stdout)
    assert summary["restored_from_checkpoint"] and summary["events_in"] == len(bars)
    assert refused.returncode == 2 and "the checkpoint is gone" in refused.stderr
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["events_in"] == 0
    assert _msgs(client, f"{redis_namespace}:fills") == fills  # nothing written twice
    assert client.hget(f"{redis_namespace}:state", state_key("core-1", "engine")) is not None


def test_feed_entries_are_trimmed_once_every_group_acknowledged_them(
    redis_connection: RedisConnection, redis_namespace: str, bars: list[Bar]
) -> None:
    client = redis_connection.client
    key = feed_key(redis_namespace, FEED)
    FeedPublisher(client, redis_namespace).publish(FEED, bars[:500])
    settings = _settings(feed_retention_s=0.001, trim_every_s=0.0)
    lagging = RedisStore(client, redis_namespace, core="lagging")
    lagging_reader = feed_reader(client, lagging, _settings(name="lagging"))
    lagging_reader.ensure_groups()  # a second core that has read nothing yet

    held = run_core(settings, redis_connection, namespace=redis_namespace,
                    source=LocalStrategies(TYPES))  # fmt: skip
    length_while_lagging = client.xlen(key)
    lagging_reader.read(1000, 10)  # its own pending entries first: none
    while lagging_reader.read(1000, 10).refs:
        pass  # the lagging core catches up...
    lagging_reader.ack([(key, entry_id) for entry_id, _ in client.xrange(key)])  # ...and acks
    again = run_core(settings, redis_connection, namespace=redis_namespace,
                     source=LocalStrategies(TYPES))  # fmt: skip

    assert held["feed_entries_trimmed"] == 0 and length_while_lagging == 501
    assert again["feed_entries_trimmed"] == 500  # all but the end marker, which stays
    assert client.xlen(key) == 1 and again["restored_from_checkpoint"]
