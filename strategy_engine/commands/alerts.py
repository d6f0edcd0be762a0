"""Alert commands: serve the alert receiver (``alert-receiver``), list what it recorded
(``alerts``)."""

from __future__ import annotations

import argparse
import json
import os
import urllib.error
import urllib.request
from pathlib import Path

from core.errors import ConfigError
from strategy_engine.output import print_json

TOKEN_ENV = "STRATEGY_ENGINE_ALERT_TOKEN"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "alert-receiver",
        help="receive Alertmanager and Prefect notifications: record them, forward them",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default loopback)")
    p.add_argument("--port", type=int, default=9095, help="default 9095")
    p.add_argument(
        "--alerts-dir", type=Path, default=None, help="where alerts.jsonl is kept (var/alerts)"
    )
    p.set_defaults(handler=_serve)

    p = sub.add_parser("alerts", help="list the alerts the stack's receiver recorded")
    p.add_argument("--limit", type=int, default=20, help="how many, newest last (default 20)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=_list)


def _token() -> str:
    """The receiver's token: $STRATEGY_ENGINE_ALERT_TOKEN, else the stack's credentials."""
    token = os.environ.get(TOKEN_ENV, "")
    if token:
        return token
    from strategy_engine import credentials, services

    path = services.Layout().credentials_file
    if path.exists():
        token = credentials.load(path).alerts_token
    if not token:
        raise ConfigError(f"no alert token: set {TOKEN_ENV} or run strategy-engine up once")
    return token


def _serve(args: argparse.Namespace) -> int:
    from strategy_engine import services
    from strategy_engine.alert_receiver import AlertLog, Forwarding, create_app
    from strategy_engine.api.server import serve  # the project's one uvicorn set-up

    folder = args.alerts_dir or services.Layout().alerts_dir
    try:
        forwarding = Forwarding.from_environment()
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    alert_log = AlertLog(folder / "alerts.jsonl")
    try:
        serve(create_app(alert_log, _token(), forwarding), args.host, args.port)
    finally:
        alert_log.close()
    return 0


def _list(args: argparse.Namespace) -> int:
    from strategy_engine import services

    state = services.status()
    receiver = next((s for s in state if s["name"] == services.RECEIVER), None)
    if receiver is None or not receiver["running"]:
        raise ConfigError("the stack's alert receiver does not run (strategy-engine up)")
    request = urllib.request.Request(
        f"{receiver['url']}/alerts?limit={args.limit}",
        headers={"Authorization": f"Bearer {_token()}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            alerts = json.loads(response.read())["alerts"]
    except urllib.error.HTTPError as exc:
        raise ConfigError(f"the receiver refused: HTTP {exc.code}") from None
    if args.json:
        print_json(alerts)
        return 0
    for alert in alerts:
        print(
            f"{alert['received_at']}  {alert['status']:<8} {alert['severity']:<8} "
            f"{alert['name']}: {alert['summary']}"
        )
    if not alerts:
        print("no alerts recorded")
    return 0
