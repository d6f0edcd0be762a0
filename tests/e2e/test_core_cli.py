"""The core's command-line contracts, run as a user runs them: replay, summary, status, shards."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from core.adapters.redis_server import RedisConnection
from core.adapters.redis_store import RedisStore
from tests.fixtures_processes import core_command, core_environment

pytestmark = pytest.mark.integration

DATASET = "equities_daily_stocknet88"
STRATEGIES = "ma_crossover,breakout"
SUMMARY_KEYS = {
    "events_in", "events_rejected", "events_skipped", "signals_out", "signals_by_strategy",
    "orders", "fills", "fast_cycle", "tactical_cycle", "tick_to_signal", "reloads", "redis",
    "shard", "vectorized",
}  # fmt: skip


def _run(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300, check=False)


def _core(namespace: str, *extra: str) -> list[str]:
    return core_command(
        "--replay", DATASET, "--fast", "--until-end", "--strategies", STRATEGIES,
        "--namespace", namespace, "--no-mlflow", "--json", *extra,
    )  # fmt: skip


def test_a_replay_run_prints_one_summary_and_leaves_a_status(
    redis_connection: RedisConnection, redis_namespace: str, tmp_path: Path
):
    env = core_environment(redis_connection.url, tmp_path / "var", tmp_path / "mlflow")

    done = _run(_core(redis_namespace), env)

    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert set(summary) >= SUMMARY_KEYS
    assert summary["events_in"] > 0 and summary["events_rejected"] == 0
    assert summary["signals_out"] == sum(summary["signals_by_strategy"].values()) > 0
    assert summary["fills"] > 0
    assert summary["redis"]["dropped"] == summary["redis"]["reconnects"] == 0
    assert summary["redis"]["buffered"] == 0  # everything written by the end
    assert summary["fast_cycle"]["p99_us"] >= summary["fast_cycle"]["p50_us"] > 0
    status = _run([*core_command()[:-1], "status", "--namespace", redis_namespace, "--json"], env)
    assert status.returncode == 0, status.stderr
    active = {row["name"] for row in json.loads(status.stdout)["active_set"]}
    assert active == {"strategy.ma_crossover", "strategy.breakout"}


def test_two_cores_split_a_replay_by_hash_shard(
    redis_connection: RedisConnection, redis_namespace: str, tmp_path: Path
):
    env = core_environment(redis_connection.url, tmp_path / "var", tmp_path / "mlflow")
    whole = json.loads(_run(_core(redis_namespace, "--name", "whole"), env).stdout)

    # The same feed again, split between two cores (the replay publishes it afresh).
    halves = []
    for k in range(2):
        done = _run(_core(redis_namespace, "--name", f"half-{k}", "--shard", f"{k}/2"), env)
        assert done.returncode == 0, done.stderr
        halves.append(json.loads(done.stdout))

    assert [h["shard"] for h in halves] == ["0/2", "1/2"]
    assert halves[0]["events_in"] + halves[1]["events_in"] == whole["events_in"]
    assert halves[0]["events_skipped"] == halves[1]["events_in"] > 0
    assert halves[0]["fills"] + halves[1]["fills"] == whole["fills"]


def test_a_bad_shard_is_a_one_line_error(redis_connection: RedisConnection, tmp_path: Path):
    env = core_environment(redis_connection.url, tmp_path / "var", tmp_path / "mlflow")

    done = _run(_core("bad-shard", "--shard", "2/2"), env)

    assert done.returncode != 0
    assert done.stderr.strip().count("\n") == 0 and "0 <= K < N" in done.stderr


def test_venue_options_size_in_units_and_price_funding_carry_fills(
    redis_connection: RedisConnection, redis_namespace: str, tmp_path: Path
):
    env = core_environment(redis_connection.url, tmp_path / "var", tmp_path / "mlflow")
    argv = core_command(
        "--replay", "funding_rates_btc_eth_supervik", "--fast", "--until-end",
        "--strategies", "funding_rate", "--namespace", redis_namespace, "--no-mlflow", "--json",
        "--units", "1", "--carry-fee-bps", "7.5",
    )  # fmt: skip

    done = _run(argv, env)

    assert done.returncode == 0, done.stderr
    fills = RedisStore(redis_connection.client, redis_namespace).read_fills()
    assert fills, "the carry strategy trades on the funding feed"
    for fill in fills:  # legs in units of notional, filled at the decision
        assert fill.price == 1.0 and fill.quantity == 1.0
        assert fill.fee == pytest.approx(7.5 / 1e4)
        assert fill.symbol.endswith((":binance", ":spot"))
