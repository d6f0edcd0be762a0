"""Keep orders and fills in Redis for a retention, and older ones as Parquet files, per day.

A core's ledger streams (``orders`` and ``fills``, see
:class:`core.adapters.redis_store.RedisStore`) would grow forever. :func:`archive_ledger`
moves what is older than the retention (by the stream entry's time, i.e. when it was
written) into ``<dir>/<namespace>/<core>/<stream>/<YYYY-MM-DD>.parquet``, one file per UTC
day, and only then trims it from Redis: a file is written whole (to a temporary name,
flushed, renamed) before a single entry goes, and a day already archived is merged with what
is new by entry id, so running it twice, or after a crash between writing and trimming,
archives each entry exactly once.

Each row is the stream entry id and the message's fields (the JSON envelope's ``data``), so the
files read back with pandas or any Parquet reader. A restart never needs them: the core
continues from its checkpoint.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import pyarrow as pa
import pyarrow.parquet as pq

from core import codec
from core.adapters.redis_store import RedisStore
from core.errors import MessageError

DAY_MS = 86_400_000
STREAMS = ("orders", "fills")
BATCH = 10_000


def archive_ledger(
    store: RedisStore,
    folder: Path,
    retention_s: float,
    *,
    now_ms: int | None = None,
    max_days: int = 1,
) -> dict[str, int]:
    """Archive then trim up to ``max_days`` whole days older than the retention, per stream.

    Returns how many entries each stream moved to Parquet.
    """
    now = int(datetime.now(tz=UTC).timestamp() * 1000) if now_ms is None else now_ms
    horizon = now - int(retention_s * 1000)
    moved = dict.fromkeys(STREAMS, 0)
    for stream in STREAMS:
        key = store.ledger_key(stream)
        for _ in range(max_days):
            first = cast(list[Any], store.client.xrange(key, count=1))
            if not first:
                break
            first_ms = int(first[0][0].split(b"-")[0])
            day_start = first_ms - first_ms % DAY_MS
            day_end = day_start + DAY_MS
            if day_end > horizon:  # that day is not wholly past the retention yet
                break
            entries = _entries_before(store, key, day_end)
            _write_day(folder / store.namespace / store.core / stream, day_start, entries)
            store.client.xtrim(key, minid=f"{day_end}-0", approximate=False)
            moved[stream] += len(entries)
    return moved


def _entries_before(store: RedisStore, key: str, end_ms: int) -> list[tuple[bytes, bytes]]:
    entries: list[tuple[bytes, bytes]] = []
    start = b"-"
    while True:
        batch = cast(
            list[Any], store.client.xrange(key, min=start, max=f"({end_ms}-0", count=BATCH)
        )
        entries += [(entry_id, fields.get(b"msg", b"")) for entry_id, fields in batch]
        if len(batch) < BATCH:
            return entries
        start = b"(" + batch[-1][0]


def _write_day(folder: Path, day_start_ms: int, entries: list[tuple[bytes, bytes]]) -> None:
    day = datetime.fromtimestamp(day_start_ms / 1000, tz=UTC).strftime("%Y-%m-%d")
    path = folder / f"{day}.parquet"
    rows = {entry_id.decode(): _row(payload) for entry_id, payload in entries}
    if path.exists():  # archived before (a crash between writing and trimming): merge by id
        for old in pq.read_table(path).to_pylist():
            rows.setdefault(old["entry_id"], {k: v for k, v in old.items() if k != "entry_id"})
    table = pa.Table.from_pylist([{"entry_id": k, **v} for k, v in sorted(rows.items())])
    folder.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".parquet.partial")
    pq.write_table(table, partial)
    with partial.open("rb") as handle:
        os.fsync(handle.fileno())
    partial.replace(path)


def _row(payload: bytes) -> dict[str, Any]:
    """The message's fields; an entry that does not decode is kept as its raw text."""
    try:
        envelope = codec.loads(payload)
        data = envelope.get("data") if isinstance(envelope, dict) else None
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if not isinstance(v, dict | list)}
    except MessageError:  # a damaged entry is still archived, as its text
        pass
    return {"raw": payload.decode("utf-8", errors="replace")}
