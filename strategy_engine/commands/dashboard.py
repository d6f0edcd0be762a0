"""``dashboard``: serve the live dashboard of a core until stopped (loopback by default).

Listening on another address needs a bearer token (``--token-file`` or
``STRATEGY_ENGINE_DASHBOARD_TOKEN``), which every request must then carry; the limits and
checks every request passes are :mod:`strategy_engine.http_guard`'s.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path
from types import FrameType

TOKEN_ENV = "STRATEGY_ENGINE_DASHBOARD_TOKEN"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("dashboard", help="serve a live dashboard of a running core (loopback)")
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1); any non-loopback one needs a token",
    )
    p.add_argument("--port", type=int, default=8050, help="default 8050")
    p.add_argument("--namespace", default="se", help="Redis key prefix the core writes under")
    p.add_argument("--core", default="core-1", help="name of the core to show")
    p.add_argument(
        "--token-file",
        type=Path,
        default=None,
        metavar="PATH",
        help=f"file (mode 0600) holding a bearer token every request must carry; "
        f"else ${TOKEN_ENV} if set",
    )
    p.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="NAME",
        help="a further name the Host header may carry (repeatable); loopback names and the "
        "listening address are always allowed",
    )
    p.set_defaults(handler=_dashboard)


def _dashboard(args: argparse.Namespace) -> int:
    from strategy_engine.core_process import redis_connection
    from strategy_engine.dashboard import DashboardReader, DashboardServer
    from strategy_engine.dashboard.server import TOKEN_HINT
    from strategy_engine.http_guard import HttpGuard

    guard = HttpGuard(token=_token(args.token_file), allow_hosts=tuple(args.allow_host))
    # Refuse an unsafe address before anything starts, Redis included.
    guard.check_bind(args.host, TOKEN_HINT)
    with redis_connection() as connection:
        reader = DashboardReader(connection.client, args.namespace, args.core)
        server = DashboardServer((args.host, args.port), reader, guard)
        auth = "; bearer token required" if guard.token is not None else ""
        print(
            f"dashboard: {server.url} (core {args.core!r}, namespace {args.namespace!r}, "
            f"Redis {connection.location}); metrics at {server.url}/metrics{auth}",
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


def _token(path: Path | None) -> str | None:
    """The bearer token from ``path``, else from the environment, else None."""
    from strategy_engine.http_guard import check_token, read_token_file

    if path is not None:
        return read_token_file(path)
    value = os.environ.get(TOKEN_ENV, "").strip()
    return check_token(value, TOKEN_ENV) if value else None


def _exit(signum: int, frame: FrameType | None) -> None:
    sys.exit(0)
