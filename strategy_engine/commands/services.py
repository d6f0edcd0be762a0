"""Service commands: start the local stack (``up``), stop it (``down``), show it (``services``),
and hand its credentials to a shell (``credentials``)."""

from __future__ import annotations

import argparse
import os
import shlex
from pathlib import Path
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
    p.add_argument(
        "--dashboard-port",
        type=int,
        default=None,
        help="deprecated: the API serves the dashboard now, so this sets --api-port when that "
        "is not given",
    )
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
    p.add_argument(
        "--cores",
        type=Path,
        default=None,
        metavar="FILE",
        help="TOML file of the supervised cores and their options (default: one core, core-1)",
    )
    p.add_argument("--core-metrics-port", type=int, default=9108, help="first core's; 9108")
    p.add_argument("--receiver-port", type=int, default=9095, help="alert receiver; 9095")
    p.add_argument("--alertmanager-port", type=int, default=9093, help="default 9093")
    p.add_argument("--prometheus-port", type=int, default=9090, help="default 9090")
    p.add_argument(
        "--api-port",
        type=int,
        default=None,
        help="the HTTP API and the dashboard page; default 8060",
    )
    p.add_argument(
        "--no-monitoring", action="store_true", help="do not start Prometheus and Alertmanager"
    )
    p.add_argument(
        "--scrape-interval",
        type=float,
        default=15.0,
        metavar="SECONDS",
        help="Prometheus's scrape and rule interval (default 15)",
    )
    p.add_argument(
        "--alert-group-wait",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="how long Alertmanager gathers alerts before the first notice (default 10)",
    )
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
    from strategy_engine.monitoring import AlertTiming
    from strategy_engine.stack_cores import default_cores, load_cores

    cores = load_cores(args.cores) if args.cores is not None else default_cores()
    timing = AlertTiming(
        scrape_interval_s=args.scrape_interval,
        evaluation_interval_s=args.scrape_interval,
        group_wait_s=args.alert_group_wait,
        group_interval_s=max(args.alert_group_wait, 1.0),
    )
    config = services.StackConfig(
        redis_port=args.redis_port,
        mlflow_port=args.mlflow_port,
        prefect_port=args.prefect_port,
        deploy=not args.no_deploy,
        redis_bind=args.redis_bind,
        redis_appendfsync=args.redis_appendfsync,
        cores=cores,
        core_metrics_port=args.core_metrics_port,
        receiver_port=args.receiver_port,
        alertmanager_port=args.alertmanager_port,
        prometheus_port=args.prometheus_port,
        # The old dashboard option still says where the dashboard is served: by the API.
        api_port=args.api_port or args.dashboard_port or 8060,
        monitoring=not args.no_monitoring,
        alert_timing=timing,
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
            f"  Dashboard:    {urls['dashboard']}  (open it as ...#token=<reader token>; the "
            f"stack's is in {_short_path(result['api']['reader_token_file'])})",
            f"  MLflow UI:    {urls['mlflow_ui']}  (user {users['mlflow']}: mlflow.password)",
            f"  Prefect UI:   {urls['prefect_ui']}  (enter prefect.auth_string, "
            f"'{users['prefect']}:...')",
            f"  Redis:        {urls['redis']}  (users {', '.join(users['redis'])}; AOF "
            f"appendfsync {result['redis_appendfsync']})",
            f"  Credentials:  {secrets_file}  (owner-only; the passwords are there)",
            *(
                f"  {label:<14}{urls[key]}"
                for key, label in (
                    ("prometheus", "Prometheus:"),
                    ("alertmanager", "Alertmanager:"),
                    ("alert_receiver", "Alerts:"),
                    ("api", "API:"),
                )
                if key in urls
            ),
            *(
                f"  Core {c['name']}: metrics {urls.get(c['name'] + '_metrics', '')}"
                for c in result["cores"]
            ),
            f"  Supervisor:  logs in {_short_path(result['supervisor']['log_dir'])}; "
            "`strategy-engine services` shows each process and its restarts",
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
    width = max(len(item["name"]) for item in report) + 2
    for item in report:
        state = item["state"].lower()
        answering = " (answering)" if item["answering"] else ""
        pid = f" pid {item['pid']}" if item["pid"] else ""
        restarts = f" restarts {item['restarts']}" if item.get("restarts") is not None else ""
        log = _short_path(item["log"])
        print(f"{item['name']:<{width}}{state}{answering}{pid}{restarts} {item['url']}  log: {log}")
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
