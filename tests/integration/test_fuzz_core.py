"""The fuzzing benchmark's short run: hostile entries in the real replay, through the real core.

Every category of hostile entry is first checked against the ingestion boundary in process
(each must get its code, each clean event must pass unchanged); then a small poisoned replay
runs through ``strategy-engine core`` as a subprocess against the test Redis, next to a clean
one, and every check of the benchmark must hold.
"""

from __future__ import annotations

import dataclasses
import random
import time
from pathlib import Path
from typing import Any

import pytest

from core.adapters.redis_server import RedisConnection
from core.data.feeds import replay_events
from core.runtime.ingest import RejectCode
from tests.fixtures_processes import load_benchmark

pytestmark = pytest.mark.integration
SYMBOLS = ["AAPL", "BRK-A", "XOM"]  # BRK-A: the largest prices, near the price-jump ceiling


fuzz = load_benchmark("fuzz_core")


@pytest.fixture(scope="module")
def events() -> list[Any]:
    """The first 400 real bars of three tickers (the stateful categories need history)."""
    return replay_events(fuzz.DATASET, symbols=SYMBOLS)[:400]


@pytest.mark.parametrize("category", fuzz.CATEGORIES)
def test_each_category_gets_its_expected_code_from_the_boundary(category: str, events):
    variants = [v for v in fuzz.VARIANTS if v.category == category]
    hostile = fuzz.hostile_entries(
        events, random.Random(category), 4 * len(variants), time.time_ns(), categories=[category]
    )

    assert {e.variant for _, e in hostile} == {v.name for v in variants}
    assert {e.code for _, e in hostile} == {v.code for v in variants}
    assert fuzz.check_against_boundary(fuzz.poisoned_feed(events, hostile)) == []


def test_the_boundary_check_reports_a_wrong_expectation(events):
    hostile = fuzz.hostile_entries(events, random.Random(3), len(fuzz.VARIANTS), time.time_ns())
    position, entry = hostile[0]
    wrong = RejectCode.STALE if entry.code != RejectCode.STALE else RejectCode.BAD_NAME
    hostile[0] = (position, dataclasses.replace(entry, code=wrong))

    problems = fuzz.check_against_boundary(fuzz.poisoned_feed(events, hostile))

    assert len(problems) == 1 and f"expected {wrong}, got {entry.code}" in problems[0]


def test_price_jumps_never_poison_a_symbol_twice_without_a_clean_bar_between(events):
    hostile = fuzz.hostile_entries(
        events, random.Random(5), 60, time.time_ns(), categories=["price_jump"]
    )
    feed = fuzz.poisoned_feed(events, hostile)

    poisoned: set[str] = set()
    for entry in feed:
        data = fuzz.codec.loads(entry.fields[b"msg"])["data"]
        if entry.hostile:
            assert data["symbol"] not in poisoned
            poisoned.add(data["symbol"])
        else:
            poisoned.discard(data["symbol"])
    assert len(hostile) == 60
    assert fuzz.check_against_boundary(feed) == []


def test_a_poisoned_replay_leaves_the_core_as_a_clean_one_and_dead_letters_each_entry_once(
    redis_connection: RedisConnection, redis_namespace: str, tmp_path: Path
):
    result = fuzz.run_fuzz(
        redis_connection.url,
        redis_namespace,
        entries=1500,
        symbols=6,
        seed=11,
        work_dir=tmp_path,
        timeout_s=300.0,
    )

    assert result["failures"] == []
    failed = [name for name, ok in result["checks"].items() if not ok]
    assert failed == []
    assert result["ok"]
    assert result["hostile_entries"] == 1500
    assert result["categories"] == len(fuzz.CATEGORIES) >= 20
    assert result["variants"] == len(fuzz.VARIANTS)
    assert result["dead_lettered"] == result["dead_lettered_hostile"] == 1500
    assert result["pending"] == 0
    assert result["identical"] == {"signals": True, "orders": True, "fills": True}
    assert result["outputs"]["signals"] > 0 and result["outputs"]["fills"] > 0
    runs = result["runs"]
    assert [runs[name]["exit"] for name in ("clean", "fuzz", "restart")] == [0, 0, 0]
    assert runs["fuzz"]["events_in"] == runs["clean"]["events_in"] == result["clean_events"]
    assert runs["fuzz"]["events_rejected"] == 1500
    assert runs["fuzz"]["rejected_by_reason"] == result["expected_by_code"]
    assert runs["clean"]["events_rejected"] == runs["restart"]["events_rejected"] == 0
    assert runs["restart"]["restored_from_checkpoint"]
    assert runs["restart"]["seconds"] < fuzz.RESTART_LIMIT_S
