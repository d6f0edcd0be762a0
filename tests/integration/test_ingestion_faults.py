"""No feed entry can stop a core, on a real Redis: each poison of the field report, run twice.

Each poison goes into the middle of a real replay. A core runs to the feed's end, and then a
second core is started with the same command (a restart): both end, the poison is in the
dead-letter stream exactly once with its code, nothing is left pending, and the valid part's
signals and fills are those of the same feed without the poison. Redis answering with errors
(OOM, WRONGTYPE) in the middle of reads loses and doubles nothing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis

from core import codec
from core.adapters.market_streams import FeedPublisher, feed_key
from core.adapters.redis_server import RedisConnection, fail_fast_client
from core.adapters.redis_store import RedisStore
from core.data.feeds import replay_events
from core.model import Bar
from core.runtime.ingest import RejectCode
from core.runtime.outbox import BufferedWriter
from core.runtime.service import CoreService, CoreSettings, state_key
from strategy_engine.core_process import TRANSIENT, LocalStrategies, feed_reader, run_core
from tests.fixtures_processes import redis_process

pytestmark = pytest.mark.integration

FEED = "equities_daily_stocknet88"
TYPES = ("ma_crossover", "breakout")
GROUP = "core:core-1"


@pytest.fixture(scope="module")
def bars() -> list[Bar]:
    return replay_events(FEED, symbols=["AAPL", "KO"])[:600]


def _bar_json(bar: Bar, **fields: Any) -> bytes:
    envelope = json.loads(codec.encode(bar))
    envelope["data"].update(fields)
    return json.dumps(envelope).encode()


def _poisons(bars: list[Bar]) -> dict[str, tuple[dict[bytes, bytes], RejectCode]]:
    """The entries of the field report, as a producer would have written them."""
    bar = bars[300]
    now = str(time.time_ns()).encode()
    deep = b'{"v":1,"kind":"bar","data":' + b"[" * 20_000 + b"]" * 20_000 + b"}"
    return {
        "msg not UTF-8": ({b"msg": _bar_json(bar).replace(b"AAPL", b"AA\xe9L"), b"t_pub": now},
                          RejectCode.NOT_UTF8),
        "t_pub not an integer": ({b"msg": _bar_json(bar), b"t_pub": b"soon"},
                                 RejectCode.BAD_T_PUB),
        "ts_event in [2^63, 2^64)": ({b"msg": _bar_json(bar, ts_event=2**63 + 7), b"t_pub": now},
                                     RejectCode.TIME_OUT_OF_RANGE),
        "price as a 30-digit integer": (
            {b"msg": _bar_json(bar, close=10**29, high=10**29), b"t_pub": now},
            RejectCode.VALUE_OUT_OF_RANGE,
        ),
        "20,000-deep JSON array": ({b"msg": deep, b"t_pub": now}, RejectCode.TOO_DEEP),
        "huge t_pub on a signalling event": (
            {b"msg": _bar_json(bar), b"t_pub": str(2**63 - 1).encode()},
            RejectCode.BAD_T_PUB,
        ),
        "finite close=1e308": (
            {b"msg": _bar_json(bar, close=1e308, high=1e308), b"t_pub": now},
            RejectCode.VALUE_OUT_OF_RANGE,
        ),
        "a fill on a market feed": (
            {b"msg": b'{"v":1,"kind":"fill","data":{"fill_id":"f","order_id":"o","symbol":"AAPL",'
                     b'"side":"buy","quantity":1e9,"price":1.0,"fee":0.0,"ts_event":1}}',
             b"t_pub": now},
            RejectCode.KIND_NOT_ALLOWED,
        ),
    }  # fmt: skip


def _publish(
    client: Any, namespace: str, bars: list[Bar], poison: dict[bytes, bytes] | None
) -> str:
    """The bars with ``poison`` after the 300th, then the end marker; returns its entry id."""
    publisher = FeedPublisher(client, namespace)
    publisher.publish(FEED, bars[:300], end=False)
    poison_id = ""
    if poison is not None:
        poison_id = client.xadd(feed_key(namespace, FEED), poison).decode()
    publisher.publish(FEED, bars[300:])
    return poison_id


def _records(client: Any, namespace: str) -> dict[str, list[bytes]]:
    return {
        name: [fields[b"msg"] for _, fields in client.xrange(f"{namespace}:{name}")]
        for name in ("signals", "orders", "fills")
    }


def _settings() -> CoreSettings:
    return CoreSettings(feeds=(FEED,), until_end=True, tactical_cycle_s=0.2, read_count=100)


@pytest.fixture(scope="module")
def clean_records(bars: list[Bar], redis_connection: RedisConnection) -> dict[str, list[bytes]]:
    namespace = "test-clean-ingest"
    client = redis_connection.client
    for key in client.scan_iter(match=f"{namespace}:*"):
        client.delete(key)
    _publish(client, namespace, bars, None)
    run_core(_settings(), redis_connection, namespace=namespace, source=LocalStrategies(TYPES))
    records = _records(client, namespace)
    for key in client.scan_iter(match=f"{namespace}:*"):
        client.delete(key)
    assert records["fills"], "the clean run trades"
    return records


POISONS = [
    "msg not UTF-8", "t_pub not an integer", "ts_event in [2^63, 2^64)",
    "price as a 30-digit integer", "20,000-deep JSON array", "huge t_pub on a signalling event",
    "finite close=1e308", "a fill on a market feed",
]  # fmt: skip


def test_every_poison_of_the_report_is_tried(bars: list[Bar]) -> None:
    assert list(_poisons(bars)) == POISONS


@pytest.mark.timeout(120)
@pytest.mark.parametrize("name", POISONS)
def test_a_poison_entry_run_twice_ends_both_times_and_is_dead_lettered_once(
    name: str,
    bars: list[Bar],
    clean_records: dict[str, list[bytes]],
    redis_connection: RedisConnection,
    redis_namespace: str,
) -> None:
    poison, code = _poisons(bars)[name]
    client = redis_connection.client
    poison_id = _publish(client, redis_namespace, bars, poison)
    source = LocalStrategies(TYPES)

    first = run_core(_settings(), redis_connection, namespace=redis_namespace, source=source)
    after_first = _records(client, redis_namespace)
    second = run_core(_settings(), redis_connection, namespace=redis_namespace, source=source)

    letters = RedisStore(client, redis_namespace).read_dead_letters()
    assert [(x["source"], x["code"]) for x in letters] == [
        (f"{feed_key(redis_namespace, FEED)}#{poison_id}", str(code))
    ]
    assert first["rejected_by_reason"] == {str(code): 1}
    assert first["events_in"] == len(bars)
    assert second["restored_from_checkpoint"] and second["events_in"] == len(bars)
    assert (second["orders"], second["fills"]) == (first["orders"], first["fills"])
    assert second["restore_problems"] == [] and second["strategy_errors"] == []
    assert client.xpending(feed_key(redis_namespace, FEED), GROUP)["pending"] == 0
    assert after_first == clean_records  # byte for byte
    assert _records(client, redis_namespace) == clean_records  # the restart added nothing


# -- Redis answering with errors in the middle of reads -----------------------------------------


def _wiring(url: str, namespace: str) -> tuple[CoreService, Any]:
    client = fail_fast_client(url)
    store = RedisStore(client, namespace)
    settings = _settings()
    service = CoreService(
        settings, source=LocalStrategies(TYPES), feed=feed_reader(client, store, settings),
        writer=BufferedWriter(store, transient=TRANSIENT), board=store, transient=TRANSIENT,
    )  # fmt: skip
    return service, client


def _run_out_of_memory(client: Any, namespace: str) -> Callable[[], None]:
    client.config_set("maxmemory-policy", "noeviction")
    client.config_set("maxmemory", "1")
    return lambda: client.config_set("maxmemory", "0")


def _run_wrong_type(client: Any, namespace: str) -> Callable[[], None]:
    # Someone wrote a string where the dead letters go: every rejection write fails.
    client.set(f"{namespace}:deadletter", "not a stream")
    return lambda: client.delete(f"{namespace}:deadletter")


@pytest.mark.timeout(120)
@pytest.mark.parametrize("fault", [_run_out_of_memory, _run_wrong_type], ids=["OOM", "WRONGTYPE"])
def test_redis_errors_during_reads_lose_and_double_nothing(
    fault: Callable[[Any, str], Callable[[], None]],
    bars: list[Bar],
    clean_records: dict[str, list[bytes]],
    tmp_path: Path,
) -> None:
    namespace = "faulty"
    with redis_process(tmp_path) as server:
        admin = redis.Redis.from_url(server.url)
        poisons = list(_poisons(bars).values())
        publisher = FeedPublisher(admin, namespace)
        # Poisons spread through the feed, so that reads meet them while Redis refuses writes.
        ids = []
        for k, (entry, _) in enumerate(poisons):
            chunk = bars[k * 60 : (k + 1) * 60]
            publisher.publish(FEED, chunk, end=False)
            ids.append(admin.xadd(feed_key(namespace, FEED), entry).decode())
        publisher.publish(FEED, bars[len(poisons) * 60 :])
        service, client = _wiring(server.url, namespace)
        service.start()
        heal = fault(admin, namespace)  # from the first read on
        for _ in range(12):
            service._fast_cycle()
            service._tactical_cycle()
        refused = service.read_errors
        heal()
        summary = service.run()
        client.close()

        letters = RedisStore(admin, namespace).read_dead_letters()
        pending = admin.xpending(feed_key(namespace, FEED), GROUP)["pending"]
        records = _records(admin, namespace)
        checkpoint = admin.hget(f"{namespace}:state", state_key("core-1", "engine"))
    assert refused > 0, "Redis refused the writes of some reads"
    assert sorted(x["source"].rpartition("#")[2] for x in letters) == sorted(ids)
    assert [x["code"] for x in letters] == [str(code) for _, code in poisons]
    assert summary["events_in"] == len(bars) and summary["events_rejected"] == len(poisons)
    assert pending == 0 and checkpoint is not None
    assert records == clean_records
