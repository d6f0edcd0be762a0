"""``api``: serve the HTTP API (loopback by default); ``api-token``: make, list, revoke tokens.

Tokens are shown once, when made; only their SHA-256 digests are kept, in the owner-only file
``var/api/tokens.json``. ``api --write-openapi PATH`` writes the OpenAPI document instead of
serving (``docs/openapi.json`` is the committed contract).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from core.errors import ConfigError
from strategy_engine.output import print_json

ROLES = ("reader", "operator", "producer", "admin")


def tokens_path() -> Path:
    from strategy_engine.settings import VAR_DIR

    return VAR_DIR / "api" / "tokens.json"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("api", help="serve the HTTP API (REST and Server-Sent Events; loopback)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8060, help="default 8060")
    p.add_argument("--namespace", default="se", help="Redis key prefix the cores write under")
    p.add_argument("--core", default="core-1", help="core whose ledger is read by default")
    p.add_argument("--rate", type=float, default=50.0, help="requests per second per token")
    p.add_argument("--burst", type=int, default=200, help="requests at once per token")
    p.add_argument(
        "--write-openapi",
        type=Path,
        metavar="PATH",
        help="write the OpenAPI document to PATH and exit (e.g. docs/openapi.json)",
    )
    p.set_defaults(handler=_api)

    p = sub.add_parser("api-token", help="make, list or revoke API tokens")
    actions = p.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="make a token and print it (shown only once)")
    create.add_argument("--role", required=True, choices=ROLES)
    create.add_argument("--name", required=True, help="who holds it (the caller in audits)")
    create.add_argument("--json", action="store_true", help="print JSON")
    create.set_defaults(handler=_token_create)
    listing = actions.add_parser("list", help="list tokens (names, roles; never the tokens)")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(handler=_token_list)
    revoke = actions.add_parser("revoke", help="revoke a token by name")
    revoke.add_argument("--name", required=True)
    revoke.add_argument("--json", action="store_true", help="print JSON")
    revoke.set_defaults(handler=_token_revoke)


def openapi_text() -> str:
    """The OpenAPI document of the app, as committed in ``docs/openapi.json``."""
    from unittest.mock import MagicMock

    from strategy_engine.api import create_app

    # The document depends on the routes only: no Redis or token file is touched.
    app = create_app(MagicMock(), Path("tokens.json"), control_key=lambda: b"")
    return json.dumps(app.openapi(), indent=2, sort_keys=True) + "\n"


def _api(args: argparse.Namespace) -> int:
    if args.write_openapi is not None:
        args.write_openapi.write_text(openapi_text())
        print(f"wrote {args.write_openapi}")
        return 0
    from strategy_engine.api import create_app
    from strategy_engine.api.auth import TokenFile
    from strategy_engine.api.server import serve
    from strategy_engine.core_process import redis_connection
    from strategy_engine.http_guard import is_loopback

    # An unsafe or malformed token file is refused now, in one line, not on each request.
    if not TokenFile(tokens_path()).records():
        print(
            "api: no API token yet; make one with "
            "strategy-engine api-token create --role reader --name NAME",
            file=sys.stderr,
        )
    if not is_loopback(args.host):
        # Tokens guard every route, but plain HTTP carries them in clear: say so.
        print(f"api: listening on {args.host}; put TLS in front of it", file=sys.stderr)
    with redis_connection() as connection:
        app = create_app(
            connection.client, tokens_path(), namespace=args.namespace, core=args.core,
            rate=args.rate, burst=args.burst,
        )  # fmt: skip
        url = f"http://{args.host}:{args.port}"
        print(
            f"api: {url}/v1 (namespace {args.namespace!r}, Redis {connection.location}); "
            f"OpenAPI at {url}/openapi.json, docs at {url}/docs; tokens in {tokens_path()}",
            flush=True,
        )
        # uvicorn stops on SIGTERM and SIGINT itself; the Redis connection then closes.
        serve(app, args.host, args.port)
    return 0


def _token_create(args: argparse.Namespace) -> int:
    from strategy_engine.api.auth import TokenFile

    token = TokenFile(tokens_path()).create(args.name, args.role)
    if args.json:
        print_json({"name": args.name, "role": args.role, "token": token})
    else:
        print(f"token {args.name!r} ({args.role}); it is shown only now, keep it safe:")
        print(token)
    return 0


def _token_list(args: argparse.Namespace) -> int:
    from strategy_engine.api.auth import TokenFile

    records = [
        {"name": r.name, "role": str(r.role), "created": r.created}
        for r in TokenFile(tokens_path()).records()
    ]
    if args.json:
        print_json(records)
    elif not records:
        print("no API tokens (strategy-engine api-token create --role reader --name NAME)")
    for record in [] if args.json else records:
        print(f"{record['name']:<32}{record['role']:<10}{record['created']}")
    return 0


def _token_revoke(args: argparse.Namespace) -> int:
    from strategy_engine.api.auth import TokenFile

    revoked = TokenFile(tokens_path()).revoke(args.name)
    if args.json:
        print_json({"name": args.name, "revoked": revoked})
    elif revoked:
        print(f"revoked {args.name!r}")
    else:
        raise ConfigError(f"no API token named {args.name!r}")
    return 0 if revoked else 1
