"""Memory of a core fed millions of events: its resident set size must stay flat.

Run: ``.venv/bin/python benchmarks/memory_core.py [--events 10000000] [--every 1000000]
[--json]`` (exit status 1 if the RSS grew by more than ``--max-growth`` between the first and
the last report).

The real daily bars of the 88 stocknet tickers are published again and again into one feed, on
a remapped clock (each day's bars one minute after the previous day's, the loops one after the
other) so that time only moves forward; prices are the real ones, so every strategy trades.
``strategy-engine core`` runs as a subprocess with ``ma_crossover`` and ``breakout`` on it; it
trims the feed entries it has acknowledged (``--feed-retention-s``), so the feed stays small
while the publisher keeps at most ``--backlog`` entries ahead of it. Every ``--every`` events
the benchmark reads the core's RSS (``psutil``) and Redis' memory. What the core keeps is
bounded by construction: one instance per symbol, rings of fixed size, an equity window, a
bounded ingestion state; this measures that it is so.

``REDIS_URL`` selects a server; otherwise an embedded one runs in a temp dir.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import msgspec
import psutil

from benchmarks.harness import core_env
from core import codec
from core.adapters.market_streams import END_FIELD, feed_key
from core.adapters.redis_server import connect
from core.data.feeds import replay_events
from core.model import Bar

DATASET = "equities_daily_stocknet88"
FEED = "memory"
NAMESPACE = "memory-bench"
REPO = Path(__file__).resolve().parents[1]
T0 = 1_700_000_000 * 10**9  # November 2023: 10M events end well before today
STEP_NS = 60 * 10**9


def remapped_bars() -> tuple[list[Bar], int]:
    """The real bars with each distinct day one minute apart; and the number of days."""
    bars = replay_events(DATASET)
    days = {ts: i for i, ts in enumerate(sorted({b.ts_event for b in bars}))}
    remapped = [msgspec.structs.replace(b, ts_event=T0 + days[b.ts_event] * STEP_NS) for b in bars]
    return remapped, len(days)


def publish(url: str, events: int, backlog: int) -> None:
    """Publish ``events`` bars (looping over the data set), at most ``backlog`` unread ahead."""
    bars, days = remapped_bars()
    connection = connect(url)
    client, key = connection.client, feed_key(NAMESPACE, FEED)
    sent, loop = 0, 0
    while sent < events:
        shift = loop * days * STEP_NS
        for start in range(0, len(bars), 2000):
            while client.xlen(key) > backlog:  # the core trims what it has acknowledged
                time.sleep(0.05)
            chunk = bars[start : start + min(2000, events - sent)]
            with client.pipeline(transaction=False) as pipe:
                now = str(time.time_ns()).encode()
                for bar in chunk:
                    moved = msgspec.structs.replace(bar, ts_event=bar.ts_event + shift)
                    pipe.xadd(key, {b"msg": codec.encode(moved), b"t_pub": now})
                pipe.execute()
            sent += len(chunk)
            if sent >= events:
                break
        loop += 1
    client.xadd(key, {END_FIELD: b"1", b"t_pub": str(time.time_ns()).encode()})
    connection.close()


def run(events: int, every: int, backlog: int, url: str, work: Path) -> dict[str, Any]:
    env = core_env(url, work)
    argv = [
        sys.executable, "-m", "strategy_engine.cli", "core", "--feed", FEED, "--until-end",
        "--strategies", "ma_crossover,breakout", "--namespace", NAMESPACE, "--no-mlflow",
        "--json", "--feed-retention-s", "1", "--max-time-jump-days", "1",
    ]  # fmt: skip
    connection = connect(url)
    client = connection.client
    for k in client.scan_iter(match=f"{NAMESPACE}:*"):
        client.delete(k)
    publisher = subprocess.Popen(
        [sys.executable, __file__, "--publish-only", "--events", str(events),
         "--backlog", str(backlog)],
        env=env, cwd=REPO,
    )  # fmt: skip
    started = time.monotonic()
    core = subprocess.Popen(argv, env=env, cwd=REPO, stdout=subprocess.PIPE, text=True)
    process = psutil.Process(core.pid)
    reports: list[dict[str, Any]] = []
    next_report = every
    while core.poll() is None:
        status = _status(client)
        taken = int(status.get("events_in", 0))
        if taken >= next_report:
            reports.append({
                "events": taken,
                "core_rss_mb": round(process.memory_info().rss / 2**20, 1),
                "redis_used_mb": round(int(client.info("memory")["used_memory"]) / 2**20, 1),
                "feed_length": int(client.xlen(feed_key(NAMESPACE, FEED))),
                "elapsed_s": round(time.monotonic() - started, 1),
            })  # fmt: skip
            print(json.dumps(reports[-1]), file=sys.stderr, flush=True)
            next_report = (taken // every + 1) * every
        time.sleep(0.5)
    out, _ = core.communicate()
    publisher.wait(timeout=60)
    summary = json.loads(out) if out.strip() else {}
    connection.close()
    first, last = (reports[0], reports[-1]) if reports else ({}, {})
    return {
        "events": events,
        "reports": reports,
        "core_exit": core.returncode,
        "events_in": summary.get("events_in"),
        "fills": summary.get("fills"),
        "events_rejected": summary.get("events_rejected"),
        "rss_growth_mb": round(last.get("core_rss_mb", 0) - first.get("core_rss_mb", 0), 1),
        "seconds": round(time.monotonic() - started, 1),
    }


def _status(client: Any) -> dict[str, Any]:
    raw = client.hget(f"{NAMESPACE}:reports", "status:core-1")
    return codec.loads(raw) if raw else {}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--every", type=int, default=1_000_000)
    parser.add_argument("--backlog", type=int, default=200_000)
    parser.add_argument("--max-growth", type=float, default=50.0, help="MB, first to last report")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--publish-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    url = os.environ.get("REDIS_URL", "")
    if args.publish_only:
        publish(url, args.events, args.backlog)
        return 0
    with tempfile.TemporaryDirectory(prefix="se-mem-") as tmp:
        work = Path(tmp)
        if url:
            result = run(args.events, args.every, args.backlog, url, work)
        else:
            with connect(data_dir=work / "redis") as embedded:
                os.environ["REDIS_URL"] = embedded.url
                result = run(args.events, args.every, args.backlog, embedded.url, work)
    ok = result["core_exit"] == 0 and result["rss_growth_mb"] <= args.max_growth
    result["ok"] = ok
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{'events':>12} {'core RSS MB':>12} {'Redis MB':>10} {'feed':>8} {'s':>8}")
        for r in result["reports"]:
            print(f"{r['events']:>12,} {r['core_rss_mb']:>12} {r['redis_used_mb']:>10} "
                  f"{r['feed_length']:>8} {r['elapsed_s']:>8}")  # fmt: skip
        print(
            f"RSS growth {result['rss_growth_mb']} MB over {result['events']:,} events; "
            f"core exit {result['core_exit']}; {result['seconds']} s"
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
