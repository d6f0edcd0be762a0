"""``dashboard``: serve the live dashboard of a core until stopped (loopback by default).

The dashboard is the API's page: this serves the same application as ``strategy-engine api``
(the page at ``/dashboard``, its data at ``/v1/dashboard``, the whole ``/v1`` API and
``/metrics``), so the page and the API come from one process, secured once. Its options are
the ones the former stand-alone dashboard server took, so scripts written for it keep working:
the API's tokens (``var/api/tokens.json``) are accepted, and so is the token of
``--token-file`` or ``STRATEGY_ENGINE_DASHBOARD_TOKEN``, as a reader. Listening on another
address than loopback still needs that token, and the ``Host`` header must name this server
(``--allow-host`` adds names), against DNS rebinding.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

TOKEN_ENV = "STRATEGY_ENGINE_DASHBOARD_TOKEN"
TOKEN_HINT = f"give --token-file PATH (mode 0600) or set {TOKEN_ENV}"
TOKEN_NAME = "dashboard-token"
"""The caller's name, in audits and rate limits, of a request made with that token."""
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1", "[::1]")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "dashboard",
        help="serve a live dashboard of a running core (loopback); the same app as `api`",
        description="Serve the live dashboard of a core. This is the API's application (the "
        "same as `strategy-engine api`): the page at /dashboard (and /), its data at "
        "/v1/dashboard, the /v1 API and /metrics, from one process. Data needs a bearer "
        "token with the reader role: an API token (strategy-engine api-token create), or the "
        f"token of --token-file / ${TOKEN_ENV}. Open the page as /dashboard#token=TOKEN.",
    )
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
        help=f"file (mode 0600) holding a bearer token accepted as a reader besides the API's "
        f"tokens; else ${TOKEN_ENV} if set",
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
    from strategy_engine.api import create_app
    from strategy_engine.api.app import HostAllowList
    from strategy_engine.api.server import serve
    from strategy_engine.commands.api import tokens_path
    from strategy_engine.core_process import redis_connection
    from strategy_engine.http_guard import HttpGuard

    token = _token(args.token_file)
    guard = HttpGuard(token=token, allow_hosts=tuple(args.allow_host))
    # Refuse an unsafe address before anything starts, Redis included.
    guard.check_bind(args.host, TOKEN_HINT)
    tokens = with_token(tokens_path(), token)
    with redis_connection() as connection:
        app: Any = create_app(connection.client, tokens, namespace=args.namespace, core=args.core)
        hosts = {*LOOPBACK_NAMES, args.host, *guard.allow_hosts}
        app.add_middleware(HostAllowList, names=sorted(hosts))
        url = f"http://{args.host}:{args.port}"
        print(
            f"dashboard: {url}/dashboard (core {args.core!r}, namespace {args.namespace!r}, "
            f"Redis {connection.location}); the API at {url}/v1 and metrics at {url}/metrics "
            f"from the same server; bearer token required for data (reader role)",
            flush=True,
        )
        # uvicorn stops on SIGTERM and SIGINT with status 0; the Redis connection then closes.
        serve(app, args.host, args.port)
    return 0


def with_token(path: Path, token: str | None) -> Any:
    """The API's token file at ``path``, also accepting ``token`` (if any) as a reader."""
    from strategy_engine.api.auth import Role, TokenFile, TokenRecord, digest

    if token is None:
        return TokenFile(path)
    extra = TokenRecord(TOKEN_NAME, Role.READER, digest(token), "")

    class _WithToken(TokenFile):
        def records(self) -> list[TokenRecord]:
            return [*super().records(), extra]

    return _WithToken(path)


def _token(path: Path | None) -> str | None:
    """The bearer token from ``path``, else from the environment, else None."""
    from strategy_engine.http_guard import check_token, read_token_file

    if path is not None:
        return read_token_file(path)
    value = os.environ.get(TOKEN_ENV, "").strip()
    return check_token(value, TOKEN_ENV) if value else None
