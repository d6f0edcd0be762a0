"""The chaos benchmark's short runs: the real core SIGKILLed at random during a paced replay,
and its Redis (AOF, ``appendfsync everysec``) SIGKILLed and started again, against an
uninterrupted run; nothing may be lost or duplicated. The comparison itself is checked first,
on records made up to hold each kind of difference.
"""

from __future__ import annotations

from typing import Any

import pytest

from core.model import Fill, Order, Side
from tests.fixtures_processes import load_benchmark

pytestmark = pytest.mark.integration
TS = 1_346_716_800_000_000_000


chaos = load_benchmark("chaos")


def _order(symbol: str, number: int, quantity: float = 10.0, ts: int = TS) -> Order:
    return Order(
        order_id=f"{symbol}-{ts}-{number}", symbol=symbol, side=Side.BUY, quantity=quantity,
        ts_event=ts, strategy="strategy.ma_crossover",
    )  # fmt: skip


def _fill(order: Order, price: float = 100.0) -> Fill:
    return Fill(
        fill_id=f"{order.order_id}-1", order_id=order.order_id, symbol=order.symbol,
        side=order.side, quantity=order.quantity, price=price, fee=0.1, ts_event=order.ts_event,
        strategy=order.strategy,
    )  # fmt: skip


def _by_id(records: list[Any]) -> list[tuple[str, Any]]:
    return [(r.order_id if isinstance(r, Order) else r.fill_id, r) for r in records]


def test_the_comparison_tells_lost_duplicated_extra_and_changed_records_apart():
    a, b, c = _order("AAPL", 1), _order("KO", 2), _order("XOM", 3)
    same_as_b = _order("KO", 9)  # the same decision again, under another id
    other = _order("JPM", 4)
    bigger_c = _order("XOM", 3, quantity=11.0)

    result = chaos.compare_records(
        _by_id([a, b, c]), _by_id([b, b, same_as_b, bigger_c, other]), chaos._order_content
    )

    assert result["lost"] == 1 and result["keys"]["lost"] == [a.order_id]
    assert result["duplicated_ids"] == 1 and result["keys"]["duplicated_id"] == [b.order_id]
    assert result["duplicated_content"] == 1
    assert result["keys"]["duplicated_content"] == [same_as_b.order_id]
    assert result["duplicated"] == 2
    assert result["extra"] == 1 and result["keys"]["extra"] == [other.order_id]
    assert result["changed"] == 1 and result["keys"]["changed"] == [c.order_id]


def test_identical_contents_the_reference_has_too_are_not_duplicates():
    # Two strategies can trade the same quantity of a symbol on one bar: two real orders.
    first, second = _order("AAPL", 1), _order("AAPL", 2)
    records = _by_id([first, second])

    result = chaos.compare_records(records, records, chaos._order_content)

    assert result["lost"] == result["duplicated"] == result["extra"] == result["changed"] == 0


def test_decision_keys_match_orders_numbered_by_different_cores():
    # A single core numbered these 7 and 8; a shard numbered them 2 and 5.
    single = [_order("AAPL", 7), _order("AAPL", 8, quantity=5.0)]
    shard = [_order("AAPL", 2), _order("AAPL", 5, quantity=5.0)]
    keys = []
    for orders in (single, shard):
        outputs = chaos.Outputs(orders, [_fill(o) for o in orders], {})
        order_keys, fill_keys = chaos.decision_keys(outputs)
        keys.append((sorted(order_keys.values()), sorted(fill_keys.values())))

    assert keys[0] == keys[1]
    assert keys[0][0] == [f"AAPL@{TS}#0", f"AAPL@{TS}#1"]
    assert keys[0][1] == [f"AAPL@{TS}#0/1", f"AAPL@{TS}#1/1"]


def _assert_nothing_lost_or_duplicated(result: dict[str, Any]) -> None:
    for kind in ("orders", "fills"):
        figures = result[kind]
        assert figures["reference"] > 0, f"the reference made no {kind}"
        assert figures["lost"] == 0, (kind, figures["examples"]["lost"], result["faults"])
        assert figures["duplicated"] == 0, (kind, figures["examples"], result["faults"])
        assert figures["extra"] == figures["changed"] == 0, (kind, figures["examples"])
    assert result["positions"]["differing"] == 0, result["positions"]
    assert result["ok"], result["failures"]


def test_a_core_killed_five_times_and_redis_restarted_once_loses_and_duplicates_nothing(
    tmp_path_factory: pytest.TempPathFactory,
):
    result = chaos.run_chaos(
        kills=5, redis_restarts=1, symbols=4, seed=7,
        work_dir=tmp_path_factory.mktemp("chaos"), timeout_s=300.0,
    )  # fmt: skip

    assert result["kills"] == 5 and result["redis_restarts"] == 1
    assert result["kills_by_core"] == {"core-1": 5}
    assert result["redis"]["appendfsync"] == "everysec"
    assert result["feed_intact"] and result["core_crashes"] == []
    assert result["matched_on"] == "id"
    _assert_nothing_lost_or_duplicated(result)
    for kind in ("orders", "fills"):
        assert result["by_decision"][kind]["lost"] == result["by_decision"][kind]["extra"] == 0


def test_two_sharded_cores_killed_twice_each_together_do_one_uninterrupted_cores_work(
    tmp_path_factory: pytest.TempPathFactory,
):
    result = chaos.run_chaos(
        kills=4, redis_restarts=0, symbols=4, seed=8, sharded=True,
        work_dir=tmp_path_factory.mktemp("chaos"), timeout_s=300.0,
    )  # fmt: skip

    assert result["kills_by_core"] == {"shard-0": 2, "shard-1": 2}
    assert result["feed_intact"] and result["core_crashes"] == []
    assert result["matched_on"] == "decision"
    taken = [core["last_run"]["events_in"] for core in result["cores"].values()]
    assert all(taken) and sum(taken) == result["events"]
    _assert_nothing_lost_or_duplicated(result)
