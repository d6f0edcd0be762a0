"""Only holders of the control key steer a core: attacks on the control channel, on real Redis.

A running core gets, on its control channel: a raw unsigned PUBLISH, a message signed with
another key, a stale one, a valid one and then its exact replay, a weight change beyond the
step limit, a burst of reloads, and an operator's halt with flatten and resume through the
command line. Each attack is dead-lettered with its code and changes nothing; every message
is in the audit stream with its sender and outcome.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from core.adapters.control_key import control_key
from core.adapters.market_streams import FeedPublisher
from core.adapters.redis_server import RedisConnection
from core.adapters.redis_store import RedisStore
from core.data.feeds import replay_events
from core.model import Bar
from core.runtime.control_signing import sign_control
from core.runtime.service import CoreService, CoreSettings
from strategy_engine.core_process import LocalStrategies
from tests.core_runs import run_core_beside, wait_until
from tests.fixtures_processes import core_command, core_environment

pytestmark = pytest.mark.integration

FEED = "equities_daily_stocknet88"
MA, BREAKOUT = "strategy.ma_crossover", "strategy.breakout"


@pytest.fixture(scope="module")
def bars() -> list[Bar]:
    return replay_events(FEED, symbols=["AAPL", "KO", "XOM"])[:1500]


class _CountingSource:
    """The local strategies, counting how often the core asks for its set."""

    def __init__(self) -> None:
        self.inner = LocalStrategies(("ma_crossover", "breakout"))
        self.calls = 0

    def load_active_set(self, alias: str = "champion") -> Any:
        self.calls += 1
        return self.inner.load_active_set(alias)


def test_control_attacks_are_dead_lettered_and_audited_and_signed_control_works(
    redis_connection: RedisConnection, redis_namespace: str, bars: list[Bar], tmp_path: Path
) -> None:
    client = redis_connection.client
    store = RedisStore(client, redis_namespace)
    channel = store.key("control")
    publisher = FeedPublisher(client, redis_namespace)
    publisher.publish(FEED, bars[:900], end=False)
    source = _CountingSource()
    key = control_key()
    seen: dict[str, Any] = {}

    def audited(count: int) -> Callable[[], bool]:
        return lambda: len(store.read_control_audit()) >= count

    def drive(service: CoreService) -> None:
        wait_until(
            lambda: service.engine is not None and service.engine.tracker.events >= 900, "bars"
        )
        weights = {"action": "weights", "weights": {MA: 0.5}}
        client.publish(channel, json.dumps(weights))  # raw, unsigned
        client.publish(channel, sign_control(weights, bytes(32), sender="mallory"))
        stale = sign_control(weights, key, sender="ops", issued_ns=time.time_ns() - 600 * 10**9)
        client.publish(channel, stale)
        wait_until(audited(3), "three rejections")
        valid = sign_control(weights, key, sender="ops")
        client.publish(channel, valid)
        wait_until(audited(4), "the signed change")
        client.publish(channel, valid)  # replayed
        store.publish_control({"action": "weights", "weights": {BREAKOUT: 0.2}}, sender="ops")
        wait_until(audited(6), "the replay and the oversized step")
        seen["weights"] = dict(service.engine.composer.weights)  # type: ignore[union-attr]
        calls = source.calls
        for _ in range(20):
            store.publish_control({"action": "reload"}, sender="flow:retrain")
        wait_until(audited(26), "twenty reloads")
        time.sleep(0.5)  # a few tactical cycles
        seen["reload_calls"] = source.calls - calls
        env = core_environment(redis_connection.url, tmp_path / "var", tmp_path / "mlflow")
        env["STRATEGY_ENGINE_CONTROL_KEY"] = key.hex()
        halt = core_command("--namespace", redis_namespace, "--json")
        halt[halt.index("core")] = "halt"
        halt.insert(-1, "--flatten")
        done = subprocess.run(halt, env=env, capture_output=True, text=True, timeout=120)
        seen["halt"] = (done.returncode, done.stdout, done.stderr)
        wait_until(audited(27), "the halt")
        publisher.publish(FEED, bars[900:1200], end=False)  # the flatten orders fill here
        wait_until(lambda: service.engine.tracker.events >= 1200, "bars after the halt")  # type: ignore[union-attr]
        seen["positions_after_halt"] = dict(service.engine.portfolio.quantities)  # type: ignore[union-attr]
        seen["mode_after_halt"] = str(service.engine.risk.mode)  # type: ignore[union-attr]
        store.publish_control({"action": "resume"}, sender="ops")
        wait_until(audited(28), "the resume")
        publisher.publish(FEED, bars[1200:])

    settings = CoreSettings(
        feeds=(FEED,), until_end=True, tactical_cycle_s=0.2, registry_check_s=3600.0
    )
    summary = run_core_beside(redis_connection, settings, redis_namespace, source, drive)

    letters = [x for x in store.read_dead_letters() if x["source"] == "control"]
    assert [x["code"] for x in letters] == [
        "control_unsigned", "control_bad_signature", "control_stale", "control_replayed",
    ]  # fmt: skip
    audit = store.read_control_audit()
    assert [a["sender"] for a in audit[:6]] == ["", "mallory", "ops", "ops", "ops", "ops"]
    assert audit[3]["outcome"] == f"applied weights to 1 strategies: {MA} 1->0.5"
    assert "may move by at most 0.5" in audit[5]["outcome"]
    # The forged, stale, replayed and oversized messages changed nothing.
    assert seen["weights"] == {MA: 0.5, BREAKOUT: 1.0}
    assert seen["reload_calls"] == 1  # twenty reload requests, one reload
    code, out, err = seen["halt"]
    assert code == 0, err
    assert json.loads(out)["cores"] == 1
    assert audit[26]["action"] == "halt" and audit[26]["outcome"].startswith("halted and flattened")
    assert seen["mode_after_halt"] == "halted"
    assert all(q == 0.0 for q in seen["positions_after_halt"].values())
    assert audit[27]["outcome"] == "resumed trading"
    assert summary["risk"]["mode"] == "normal"
