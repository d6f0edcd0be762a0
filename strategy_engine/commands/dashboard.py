"""``dashboard``: serve the live dashboard of a core on loopback until stopped."""

from __future__ import annotations

import argparse
import signal
import sys
from types import FrameType


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("dashboard", help="serve a live dashboard of a running core (loopback)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (loopback)")
    p.add_argument("--port", type=int, default=8050, help="default 8050")
    p.add_argument("--namespace", default="se", help="Redis key prefix the core writes under")
    p.add_argument("--core", default="core-1", help="name of the core to show")
    p.set_defaults(handler=_dashboard)


def _dashboard(args: argparse.Namespace) -> int:
    from strategy_engine.core_process import redis_connection
    from strategy_engine.dashboard import DashboardReader, DashboardServer

    with redis_connection() as connection:
        reader = DashboardReader(connection.client, args.namespace, args.core)
        server = DashboardServer((args.host, args.port), reader)
        print(
            f"dashboard: {server.url} (core {args.core!r}, namespace {args.namespace!r}, "
            f"Redis {connection.location}); metrics at {server.url}/metrics",
            flush=True,
        )
        # SIGTERM (from `make down`) leaves like Ctrl-C: the Redis connection closes cleanly.
        signal.signal(signal.SIGTERM, _exit)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()
    return 0


def _exit(signum: int, frame: FrameType | None) -> None:
    sys.exit(0)
