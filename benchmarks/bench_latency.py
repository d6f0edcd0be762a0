"""Tick-to-signal latency of the core through Redis Streams, on the real Binance feed.

Run: ``.venv/bin/python benchmarks/bench_latency.py --speed 1 --seconds 60`` (prints JSON).

A publisher **subprocess** (so it does not share the core's GIL) replays the Binance quotes and
trades (``crypto_l2_binance_hftbacktest``) into the feed stream at ``speed`` times real time,
each entry stamped ``t_pub`` (wall-clock ns, taken just before its XADD). The core
(:func:`strategy_engine.core_process.run_core`) runs every fast quote/trade strategy with its
default config and stops at the feed's end. The numbers are the core's own recorders:

- ``tick_to_signal``: from an event's ``t_pub`` to the moment the signals it caused have been
  written to Redis (after the flush returned), per signalling event;
- ``in_process``: the engine's ``on_event`` for a signalling event (applicator, composer,
  risk, execution), no I/O;
- ``fast_cycle``: one fast cycle's processing and flush (the blocking read excluded).

``seconds`` is the wall time of the replay: the feed's first ``seconds * speed`` seconds are
published. ``REDIS_URL`` selects a server; otherwise an embedded one runs in a temp dir.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.adapters.market_streams import FeedPublisher
from core.adapters.redis_server import RedisConnection, connect
from core.data.feeds import BINANCE, replay_events
from core.runtime.service import CoreService, CoreSettings
from strategy_engine.core_process import LocalStrategies, run_core

# Every fast-tier type that trades quotes and trades (funding_rate reads another feed).
FAST_TYPES = ("adaptive_quote", "spread_adjuster", "volatility_responsive", "latency")


def feed_slice(seconds: float, speed: float) -> list[Any]:
    """The Binance events of the feed's first ``seconds * speed`` seconds of receive time."""
    events = replay_events(BINANCE)
    horizon = events[0].ts_recv + int(seconds * speed * 1e9)
    return [e for e in events if e.ts_recv <= horizon]


def publish_paced(url: str, namespace: str, seconds: float, speed: float) -> int:
    """Publish the slice into the feed at ``speed`` x real time, then its end; return the count."""
    connection = connect(url)
    try:
        return FeedPublisher(connection.client, namespace).publish(
            BINANCE, feed_slice(seconds, speed), speed=speed
        )
    finally:
        connection.close()


def measure_core_latency(
    speed: float = 1.0,
    seconds: float = 60.0,
    fast_cycle_ms: float = 100.0,
    tactical_cycle_s: float = 1.0,
    types: tuple[str, ...] = FAST_TYPES,
) -> dict[str, Any]:
    """Replay the Binance feed through Redis into a core and return its latency figures.

    Parameters
    ----------
    speed : float
        Replay speed, in multiples of real time.
    seconds : float
        Wall-clock length of the replay (the feed's first ``seconds * speed`` seconds).
    fast_cycle_ms, tactical_cycle_s : float
        The core's cycles (the fast cycle bounds how long a read blocks).
    types : tuple of str
        Strategy types to run, each with its default config.

    Returns
    -------
    dict
        ``tick_to_signal``, ``in_process``, ``fast_cycle`` and ``tactical_cycle`` (count,
        p50/p99/p99.9/max in microseconds), event and signal counts, and the settings.
    """
    if speed <= 0 or seconds <= 0:
        raise ValueError(f"speed and seconds must be positive, were {speed} and {seconds}")
    namespace = f"bench-{uuid.uuid4().hex[:10]}"
    with tempfile.TemporaryDirectory(prefix="se-bench-") as tmp:
        connection = connect(data_dir=Path(tmp))
        try:
            return _run(
                connection, namespace, speed, seconds, fast_cycle_ms, tactical_cycle_s, types
            )
        finally:
            _delete_namespace(connection, namespace)
            connection.close()


def _run(
    connection: RedisConnection,
    namespace: str,
    speed: float,
    seconds: float,
    fast_cycle_ms: float,
    tactical_cycle_s: float,
    types: tuple[str, ...],
) -> dict[str, Any]:
    settings = CoreSettings(
        name="bench-core",
        feeds=(BINANCE,),
        fast_cycle_s=fast_cycle_ms / 1000.0,
        tactical_cycle_s=tactical_cycle_s,
        until_end=True,
    )
    publisher: list[subprocess.Popen[str]] = []

    def start_publisher(_: CoreService) -> None:
        # Started once the core has joined the feed's group, so no entry waits for its start.
        publisher.append(_spawn_publisher(connection.url, namespace, seconds, speed))

    started = time.perf_counter()
    summary = run_core(
        settings,
        connection,
        namespace=namespace,
        source=LocalStrategies(types),
        fresh=True,
        before_run=start_publisher,
    )
    wall = time.perf_counter() - started
    published = _published_count(publisher[0])
    return {
        "dataset": BINANCE,
        "speed": speed,
        "seconds": seconds,
        "wall_s": round(wall, 3),
        "fast_cycle_ms": fast_cycle_ms,
        "tactical_cycle_s": tactical_cycle_s,
        "strategies": list(types),
        "redis": "REDIS_URL" if os.environ.get("REDIS_URL") else "embedded",
        "events_published": published,
        "events_in": summary["events_in"],
        "events_rejected": summary["events_rejected"],
        "signals_out": summary["signals_out"],
        "signals_by_strategy": summary["signals_by_strategy"],
        "orders": summary["orders"],
        "fills": summary["fills"],
        "strategy_errors": summary["strategy_errors"],
        "tick_to_signal": summary["tick_to_signal"],
        "in_process": summary["in_process"],
        "fast_cycle": summary["fast_cycle"],
        "tactical_cycle": summary["tactical_cycle"],
    }


def _spawn_publisher(
    url: str, namespace: str, seconds: float, speed: float
) -> subprocess.Popen[str]:
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--publish-to",
        namespace,
        "--seconds",
        str(seconds),
        "--speed",
        str(speed),
    ]
    # The URL (it may hold a password) goes through the environment, not the command line.
    env = {**os.environ, "REDIS_URL": url}
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)


def _published_count(process: subprocess.Popen[str]) -> int:
    out, _ = process.communicate(timeout=60)
    if process.returncode != 0:
        raise RuntimeError(f"the publisher exited with code {process.returncode}")
    return int(json.loads(out)["published"])


def _delete_namespace(connection: RedisConnection, namespace: str) -> None:
    keys = list(connection.client.scan_iter(match=f"{namespace}:*", count=1000))
    if keys:
        connection.client.delete(*keys)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--speed", type=float, default=1.0, help="x real time")
    parser.add_argument("--seconds", type=float, default=60.0, help="wall time of the replay")
    parser.add_argument("--fast-cycle-ms", type=float, default=100.0)
    parser.add_argument("--tactical-cycle-s", type=float, default=1.0)
    parser.add_argument("--publish-to", metavar="NAMESPACE", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.publish_to:  # the publisher subprocess
        url = os.environ["REDIS_URL"]
        count = publish_paced(url, args.publish_to, args.seconds, args.speed)
        print(json.dumps({"published": count}))
        return 0
    result = measure_core_latency(
        args.speed, args.seconds, args.fast_cycle_ms, args.tactical_cycle_s
    )
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
