"""Service commands: start the local stack (``up``), stop it (``down``), show it (``services``),
and hand its credentials to a shell (``credentials``)."""

from __future__ import annotations

import argparse
import os
import shlex
from typing import Any

from strategy_engine.output import print_json

DEFAULT_DEPLOYMENT = "register-and-promote/ma-crossover"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "up", help="start Redis, the MLflow UI, the Prefect server, deployments and a worker"
    )
    p.add_argument("--redis-port", type=int, default=6379, help="default 6379")
    p.add_argument("--mlflow-port", type=int, default=5000, help="default 5000")
    p.add_argument("--prefect-port", type=int, default=4200, help="default 4200")
    p.add_argument("--dashboard-port", type=int, default=8050, help="default 8050")
    p.add_argument(
        "--redis-bind",
        default="127.0.0.1",
        help="the address Redis listens on (default 127.0.0.1; it always requires passwords)",
    )
    p.add_argument(
        "--redis-appendfsync",
        choices=("everysec", "always"),
        default=None,
        help="when Redis fsyncs its append-only file (default $STRATEGY_ENGINE_REDIS_APPENDFSYNC"
        " or everysec)",
    )
    p.add_argument("--no-deploy", action="store_true", help="skip the work pool and deploy")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(handler=_up)

    p = sub.add_parser("down", help="stop what `up` started (safe to run twice)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(handler=_down)

    p = sub.add_parser("services", help="show which services run and where")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=_status)

    p = sub.add_parser(
        "credentials", help="where the stack's credentials are; --env prints them for a shell"
    )
    p.add_argument(
        "--env",
        action="store_true",
        help='print export lines for the running stack (secrets!): eval "$(... --env)"',
    )
    p.set_defaults(handler=_credentials)


def _up(args: argparse.Namespace) -> int:
    from strategy_engine import services

    config = services.StackConfig(
        redis_port=args.redis_port,
        mlflow_port=args.mlflow_port,
        prefect_port=args.prefect_port,
        dashboard_port=args.dashboard_port,
        deploy=not args.no_deploy,
        redis_bind=args.redis_bind,
        redis_appendfsync=args.redis_appendfsync,
    )
    result = services.up(config, echo=_quiet if args.json else print)
    if args.json:
        print_json(result)
        return 0
    print(f"all services up in {result['total_seconds']:.1f} s\n")
    print(_instructions(result))
    return 0


def _short_path(path: str) -> str:
    relative = os.path.relpath(path)
    return path if relative.startswith("..") else relative


def _instructions(result: dict[str, Any]) -> str:
    urls, users = result["urls"], result["users"]
    secrets_file = _short_path(result["credentials"])
    return "\n".join(
        [
            f"  Dashboard:   {urls['dashboard']}",
            f"  MLflow UI:   {urls['mlflow_ui']}  (user {users['mlflow']}: mlflow.password)",
            f"  Prefect UI:  {urls['prefect_ui']}  (enter prefect.auth_string, "
            f"'{users['prefect']}:...')",
            f"  Redis:       {urls['redis']}  (users {', '.join(users['redis'])}; AOF "
            f"appendfsync {result['redis_appendfsync']})",
            f"  Credentials: {secrets_file}  (owner-only; the passwords are there)",
            "",
            "Trigger a deployment (from the repository root):",
            '  eval "$(.venv/bin/strategy-engine credentials --env)"',
            f"  .venv/bin/prefect deployment run '{DEFAULT_DEPLOYMENT}' -p 'symbols=[\"AAPL\"]'",
            "Stop everything: make down",
        ]
    )


def _down(args: argparse.Namespace) -> int:
    from strategy_engine import services

    outcomes = services.down(echo=_quiet if args.json else print)
    if args.json:
        print_json(outcomes)
    return 0


def _status(args: argparse.Namespace) -> int:
    from strategy_engine import services

    report = services.status()
    if args.json:
        print_json(report)
        return 0
    for item in report:
        state = "running" if item["running"] else "stopped"
        answering = " (answering)" if item["answering"] else ""
        pid = f" pid {item['pid']}" if item["pid"] else ""
        print(f"{item['name']:<10}{state}{answering}{pid} {item['url']}  log: {item['log']}")
    return 0


def _credentials(args: argparse.Namespace) -> int:
    from core.errors import ConfigError
    from strategy_engine import credentials, services

    layout = services.Layout()
    path = layout.credentials_file
    if not args.env:
        creds = credentials.load(path) if path.exists() else None
        if creds is None:
            print(f"{path}: none yet (strategy-engine up makes it)")
            return 0
        names = services.users(creds)
        print(f"{path} (mode 600, made {creds.created})")
        print(f"  redis users: {', '.join(names['redis'])} (the default user is disabled)")
        print(f"  mlflow user: {names['mlflow']}")
        print(f"  prefect:     auth string '{names['prefect']}:...'")
        return 0
    env = services.shell_environment(layout)
    if not env:
        raise ConfigError(f"no stack of `strategy-engine up` runs on {layout.var_dir}")
    for name, value in sorted(env.items()):
        print(f"export {name}={shlex.quote(value)}")
    return 0


def _quiet(_line: str) -> None:
    pass
