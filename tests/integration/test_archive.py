"""Orders and fills past their retention move to Parquet, a file per day, each exactly once."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

from core import codec
from core.adapters.redis_server import RedisConnection
from core.adapters.redis_store import RedisStore
from core.model import Fill, Order, Side
from strategy_engine.archive import DAY_MS, _entries_before, _write_day, archive_ledger

NOW_MS = 1_800_000_000_000  # 2027-01-15


def _order(n: int) -> Order:
    return Order(order_id=f"AAPL-{n}-{n}", symbol="AAPL", side=Side.BUY, quantity=n,
                 ts_event=n)  # fmt: skip


def _fill(n: int) -> Fill:
    return Fill(fill_id=f"AAPL-{n}-{n}-1", order_id=f"AAPL-{n}-{n}", symbol="AAPL",
                side=Side.SELL, quantity=n, price=100.0 + n, fee=0.01, ts_event=n)  # fmt: skip


def test_entries_past_the_retention_go_to_one_parquet_file_per_day_and_leave_redis(
    redis_connection: RedisConnection, redis_namespace: str, tmp_path: Path
) -> None:
    store = RedisStore(redis_connection.client, redis_namespace, core="arch")
    client = redis_connection.client
    # Written 3 days, 2 days and an hour ago (entry ids carry the time they were written).
    written = {0: NOW_MS - 3 * DAY_MS, 1: NOW_MS - 2 * DAY_MS, 2: NOW_MS - 3_600_000}
    for n, at in written.items():
        client.xadd(store.ledger_key("orders"), {"msg": codec.encode(_order(n))}, id=f"{at}-0")
        client.xadd(store.ledger_key("fills"), {"msg": codec.encode(_fill(n))}, id=f"{at}-0")
    # A crash once left the oldest day written but not trimmed: it is merged, not doubled.
    day0 = written[0] - written[0] % DAY_MS
    entries = _entries_before(store, store.ledger_key("orders"), day0 + DAY_MS)
    _write_day(tmp_path / redis_namespace / "arch" / "orders", day0, entries)

    first = archive_ledger(store, tmp_path, retention_s=86_400, now_ms=NOW_MS, max_days=5)
    again = archive_ledger(store, tmp_path, retention_s=86_400, now_ms=NOW_MS, max_days=5)

    assert first == {"orders": 2, "fills": 2} and again == {"orders": 0, "fills": 0}
    assert [o.order_id for o in store.read_orders()] == ["AAPL-2-2"]  # within the retention
    files = sorted((tmp_path / redis_namespace / "arch" / "fills").glob("*.parquet"))
    assert len(files) == 2
    rows = [row for f in sorted((tmp_path / redis_namespace / "arch" / "orders").glob("*"))
            for row in pq.read_table(f).to_pylist()]  # fmt: skip
    assert [r["order_id"] for r in rows] == ["AAPL-0-0", "AAPL-1-1"]
    assert [r["quantity"] for r in pq.read_table(files[1]).to_pylist()] == [1.0]
