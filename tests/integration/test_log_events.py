"""The log events come from the real code paths, once each, and dead letters in aggregate; the
learning tier's counts reach Redis; a ``--json`` command's stdout is one JSON document even
with MLflow's "View run" lines printed to an HTTP tracking server."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from core.adapters.market_streams import FeedPublisher
from core.adapters.redis_server import RedisConnection
from core.adapters.redis_store import RedisStore
from core.data.feeds import replay_events
from core.model import Bar
from core.ports import StrategyDeployment
from core.risk import RiskLimits, RiskManager
from core.runtime.outbox import BufferedWriter
from core.runtime.service import CoreService, CoreSettings
from core.strategies.catalogue import strategy_type
from strategy_engine.core_process import LocalStrategies, run_core
from tests.core_runs import run_core_beside, wait_until
from tests.fixtures_processes import REPO, core_command, core_environment

FEED = "equities_daily_stocknet88"
MA, BREAKOUT = "strategy.ma_crossover", "strategy.breakout"


@pytest.fixture(scope="module")
def bars() -> list[Bar]:
    return replay_events(FEED, symbols=["AAPL", "KO", "XOM"])[:1500]


@pytest.fixture
def events(caplog: pytest.LogCaptureFixture) -> Callable[[str], list[logging.LogRecord]]:
    caplog.set_level(logging.DEBUG)
    return lambda name: [r for r in caplog.records if getattr(r, "event", None) == name]


def _settings(**overrides: Any) -> CoreSettings:
    return CoreSettings(
        feeds=(FEED,), until_end=True, tactical_cycle_s=0.2, registry_check_s=3600.0, **overrides
    )


# --- the core ----------------------------------------------------------------------------------


@pytest.mark.integration
def test_a_strategy_that_raises_is_logged_once_with_model_and_symbol(
    redis_connection: RedisConnection, redis_namespace: str, bars: list[Bar], events, monkeypatch
):
    breakout = strategy_type("breakout")
    real = breakout.update

    def update(self: Any, event: Any) -> Any:
        if self.symbol == "KO":
            raise ZeroDivisionError("broken on KO")
        return real(self, event)

    monkeypatch.setattr(breakout, "update", update)
    FeedPublisher(redis_connection.client, redis_namespace).publish(FEED, bars)

    summary = run_core(
        _settings(batch_forms="never"), redis_connection, namespace=redis_namespace,
        source=LocalStrategies(("ma_crossover", "breakout")),
    )  # fmt: skip

    quarantined = events("strategy_quarantined")
    assert len(quarantined) == 1  # KO has hundreds of bars: one record, not one per bar
    record: Any = quarantined[0]
    assert (record.model, record.symbol, record.levelname) == (BREAKOUT, "KO", "ERROR")
    assert "ZeroDivisionError: broken on KO" in record.reason
    started, stopped = events("core_started"), events("core_stopped")
    assert len(started) == 1 and len(stopped) == 1
    assert {m["model"] for m in started[0].active_set} == {MA, BREAKOUT}  # type: ignore[attr-defined]
    assert stopped[0].events_in == summary["events_in"] == len(bars)  # type: ignore[attr-defined]
    assert events("dead_letters") == []


@pytest.mark.integration
def test_a_thousand_rejected_entries_are_a_few_aggregated_dead_letters_records(
    redis_connection: RedisConnection, redis_namespace: str, bars: list[Bar], events
):
    publisher = FeedPublisher(redis_connection.client, redis_namespace)
    for n in range(1000):
        publisher.publish_raw(FEED, b"not json" if n % 2 else b'{"v":1,"kind":"nope","data":{}}')
    publisher.publish(FEED, bars[:300])

    summary = run_core(
        _settings(progress_every_s=0.2), redis_connection, namespace=redis_namespace,
        source=LocalStrategies(("ma_crossover",)),
    )  # fmt: skip

    assert summary["events_rejected"] == 1000
    records: list[Any] = events("dead_letters")
    assert 1 <= len(records) <= 5  # paced every 10 s, and once at the end
    total: dict[str, int] = {}
    for record in records:
        for code, count in record.counts.items():
            total[code] = total.get(code, 0) + count
    assert total == summary["rejected_by_reason"]
    assert records[-1].rejected_total == 1000


@pytest.mark.integration
def test_halt_resume_and_rejected_control_messages_are_logged(
    redis_connection: RedisConnection, redis_namespace: str, bars: list[Bar], events
):
    client = redis_connection.client
    store = RedisStore(client, redis_namespace)
    publisher = FeedPublisher(client, redis_namespace)
    publisher.publish(FEED, bars[:600], end=False)

    def audited(count: int) -> Callable[[], bool]:
        return lambda: len(store.read_control_audit()) >= count

    def drive(service: CoreService) -> None:
        wait_until(
            lambda: service.engine is not None and service.engine.tracker.events >= 600, "bars"
        )
        store.publish_control({"action": "halt", "reason": "test halt"}, sender="ops")
        wait_until(audited(1), "the halt")
        for _ in range(10):
            client.publish(store.key("control"), b'{"action": "resume"}')  # unsigned
        wait_until(audited(11), "the unsigned messages")
        store.publish_control({"action": "resume"}, sender="ops")
        wait_until(audited(12), "the resume")
        publisher.publish(FEED, bars[600:])

    run_core_beside(
        redis_connection, _settings(), redis_namespace, LocalStrategies(("ma_crossover",)), drive
    )

    halted: list[Any] = events("risk_halted")
    assert len(halted) == 1 and "test halt (by ops)" in halted[0].reason
    assert halted[0].previous_mode == "normal"
    resumed: list[Any] = events("risk_resumed")
    assert len(resumed) == 1 and resumed[0].previous_mode == "halted"
    applied = [(r.action, r.sender) for r in events("control_applied")]  # type: ignore[attr-defined]
    assert applied == [("halt", "ops"), ("resume", "ops")]
    rejected: list[Any] = events("control_rejected")
    assert sum(r.rejected for r in rejected) == 10 and len(rejected) < 10
    assert {code for r in rejected for code in r.counts} == {"control_unsigned"}


class _FlakySource:
    """Version 1 of ma_crossover; on the first reload, also version 2 of breakout (which
    raises on its first bar); then version 1 again."""

    def __init__(self) -> None:
        self.calls = 0

    def load_active_set(self, alias: str = "champion") -> list[StrategyDeployment]:
        self.calls += 1
        ma = LocalStrategies(("ma_crossover",)).load_active_set()[0]
        ma = StrategyDeployment(ma.name, "1", ma.type_name, ma.config, alias="champion")
        if self.calls != 2:
            return [ma]
        bad = LocalStrategies(("breakout",)).load_active_set()[0]
        return [ma, StrategyDeployment(bad.name, "2", bad.type_name, bad.config)]


@pytest.mark.integration
def test_a_reload_whose_new_set_fails_is_logged_as_applied_then_reverted(
    redis_connection: RedisConnection, redis_namespace: str, bars: list[Bar], events, monkeypatch
):
    def update(self: Any, event: Any) -> Any:
        raise RuntimeError("version 2 is broken")

    monkeypatch.setattr(strategy_type("breakout"), "update", update)
    publisher = FeedPublisher(redis_connection.client, redis_namespace)
    publisher.publish(FEED, bars[:600], end=False)
    source = _FlakySource()
    store = RedisStore(redis_connection.client, redis_namespace)

    def drive(service: CoreService) -> None:
        wait_until(
            lambda: service.engine is not None and service.engine.tracker.events >= 600, "bars"
        )
        store.publish_control({"action": "reload"}, sender="flow:retrain")
        wait_until(lambda: source.calls >= 2, "the reload")
        publisher.publish(FEED, bars[600:900], end=False)
        wait_until(lambda: service.last_error.startswith("reload reverted"), "the revert")
        publisher.publish(FEED, bars[900:])

    run_core_beside(
        redis_connection, _settings(batch_forms="never"), redis_namespace, source, drive
    )

    applied: list[Any] = events("reload_applied")
    assert len(applied) == 1
    assert applied[0].models == [{"model": BREAKOUT, "version": "2", "from_version": None}]
    reverted: list[Any] = events("reload_reverted")
    assert len(reverted) == 1
    assert (reverted[0].model, reverted[0].version) == (BREAKOUT, "2")
    assert "version 2 is broken" in reverted[0].reason
    assert events("reload_kept") == []


# --- the kill switch, the writer ---------------------------------------------------------------


def test_the_kill_switch_trips_once_with_its_limit(events):
    risk = RiskManager(RiskLimits(max_drawdown=0.1))
    for equity in (100.0, 120.0, 100.0, 90.0, 80.0, 70.0):  # past 10% below 120 from 100 on
        risk.on_equity(equity, 1, {})
    tripped: list[Any] = events("kill_switch_tripped")
    assert len(tripped) == 1
    assert (tripped[0].limit, tripped[0].threshold, tripped[0].levelname) == (
        "max_drawdown", 0.1, "ERROR",
    )  # fmt: skip
    assert round(tripped[0].value, 3) == 0.167
    risk.set_reduce_only()
    assert [r.previous_mode for r in events("risk_reduce_only")] == ["halted"]  # type: ignore[attr-defined]


class _FlakyStore:
    """A store whose writes fail while ``down``."""

    def __init__(self) -> None:
        self.down = False
        self.written: list[Any] = []

    def publish_signals(self, items: Any) -> None:
        if self.down:
            raise ConnectionError("Redis is away")
        self.written.extend(items)


def test_the_writer_logs_an_outage_and_a_full_buffer_once_each_way(events):
    store = _FlakyStore()
    clock = [0.0]
    writer = BufferedWriter(
        store, transient=(ConnectionError,), max_items=5, monotonic=lambda: clock[0]
    )
    store.down = True
    for n in range(20):  # twenty failed attempts: one outage, one full buffer
        writer.publish_signals([n])
        clock[0] += 1.0
    assert writer.saturated
    store.down = False
    assert writer.drain(force=True)

    assert len(events("redis_connection_lost")) == 1
    assert len(events("redis_reconnected")) == 1
    assert len(events("backpressure_started")) == 1
    ended: list[Any] = events("backpressure_ended")
    assert len(ended) == 1 and ended[0].duration_s > 0
    assert store.written == list(range(20))


# --- the learning tier's counts ----------------------------------------------------------------


@pytest.mark.integration
def test_learning_events_are_counted_in_redis_and_a_failure_to_count_is_only_logged(
    redis_connection: RedisConnection, redis_namespace: str, events, monkeypatch
):
    from pipelines import lifecycle
    from pipelines.learning_counts import count_learning_event
    from pipelines.validation import GateReport

    monkeypatch.setenv("REDIS_URL", redis_connection.url)
    monkeypatch.setenv("STRATEGY_ENGINE_NAMESPACE", redis_namespace)

    class Registry:  # what the lifecycle steps call, without MLflow
        def promote(self, name: str, version: str, **_: Any) -> bool:
            return version == "2"  # version 1 is the champion already

        def get_alias(self, name: str, alias: str) -> str:
            return "2"

        def rollback(self, name: str, *, reason: str = "") -> str:
            return "1"

    registry: Any = Registry()
    failed = GateReport(suite="bars:test", success=False, rows=0)
    with pytest.raises(Exception, match="gate 'bars:test'"):
        lifecycle.register_strategy(registry, "ma_crossover", {}, data_hash="x", report=failed)
    lifecycle.promote_champion(registry, MA, "2")
    lifecycle.promote_champion(registry, MA, "1")  # not moved: not counted
    assert lifecycle.rollback_champion(registry, MA) == "1"
    assert count_learning_event("retrain_failed", MA)

    store = RedisStore(redis_connection.client, redis_namespace)
    assert store.learning_event_counts() == {
        f"gate_failed|{MA}": 1, f"promoted|{MA}": 1, f"retrain_failed|{MA}": 1,
        f"rolled_back|{MA}": 1,
    }  # fmt: skip
    assert store.count_learning_event("promoted", MA) == 2

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("REDIS_URL", f"redis://127.0.0.1:{port}/0")
    assert count_learning_event("rolled_back", MA) is False
    failed_counts: list[Any] = events("learning_count_failed")
    assert len(failed_counts) == 1 and failed_counts[0].kind == "rolled_back"


# --- one JSON document on stdout ---------------------------------------------------------------


@pytest.fixture
def mlflow_server(tmp_path: Path) -> Iterator[str]:
    """A real MLflow tracking server over HTTP: the only kind whose runs MLflow announces with
    "View run" lines on stdout (its REST store)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    folder = tmp_path / "mlflow-server"
    folder.mkdir()
    log = (folder / "server.log").open("w")
    server = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "mlflow"), "server",
            "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}",
            "--artifacts-destination", str(folder / "artifacts"),
            "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        ],
        cwd=folder, stdout=log, stderr=subprocess.STDOUT,
        env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"},
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"mlflow server did not start: {(folder / 'server.log').read_text()}"
                    ) from None
                time.sleep(0.25)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


@pytest.mark.integration
@pytest.mark.e2e
def test_core_json_stdout_is_one_document_with_mlflow_over_http(
    mlflow_server: str, redis_connection: RedisConnection, redis_namespace: str, tmp_path: Path
):
    env = core_environment(redis_connection.url, tmp_path / "var", tmp_path / "mlflow")
    env["MLFLOW_TRACKING_URI"] = mlflow_server
    argv = core_command(
        "--replay", FEED, "--fast", "--until-end", "--strategies", "ma_crossover",
        "--namespace", redis_namespace, "--allow-volatile-redis", "--json",
        "--progress-interval", "0.5",
    )  # fmt: skip

    done = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)

    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)  # the whole of stdout: one document and nothing else
    assert done.stdout.count("\n") == 1
    assert summary["mlflow_run"]
    assert "View run" in done.stderr  # MLflow announced the run: on stderr
    logged = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    names = [record["event"] for record in logged]
    assert names[0] == "core_started" and names[-1] == "core_stopped"
    assert all({"time", "level", "logger", "event"} <= record.keys() for record in logged)
