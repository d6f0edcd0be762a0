"""Service commands: start the local stack (``up``), stop it (``down``), show it (``services``)."""

from __future__ import annotations

import argparse
import os
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
    p.add_argument("--no-deploy", action="store_true", help="skip the work pool and deploy")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(handler=_up)

    p = sub.add_parser("down", help="stop what `up` started (safe to run twice)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(handler=_down)

    p = sub.add_parser("services", help="show which services run and where")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=_status)


def _up(args: argparse.Namespace) -> int:
    from strategy_engine import services

    config = services.StackConfig(
        redis_port=args.redis_port,
        mlflow_port=args.mlflow_port,
        prefect_port=args.prefect_port,
        dashboard_port=args.dashboard_port,
        deploy=not args.no_deploy,
    )
    result = services.up(config, echo=_quiet if args.json else print)
    if args.json:
        print_json(result)
        return 0
    print(f"all services up in {result['total_seconds']:.1f} s\n")
    print(_instructions(result["urls"], _short_path(result["prefect_home"])))
    return 0


def _short_path(path: str) -> str:
    relative = os.path.relpath(path)
    return path if relative.startswith("..") else relative


def _instructions(urls: dict[str, Any], prefect_home: str) -> str:
    api = urls["prefect_api"]
    return "\n".join(
        [
            f"  Dashboard:   {urls['dashboard']}",
            f"  MLflow UI:   {urls['mlflow_ui']}",
            f"  Prefect UI:  {urls['prefect_ui']}",
            f"  REDIS_URL:   {urls['redis']}",
            "",
            "Trigger a deployment (from the repository root):",
            f"  PREFECT_API_URL={api} PREFECT_HOME={prefect_home} .venv/bin/prefect "
            f"deployment run '{DEFAULT_DEPLOYMENT}' -p 'symbols=[\"AAPL\"]'",
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
        print(f"{item['name']:<8}{state}{answering}{pid} {item['url']}  log: {item['log']}")
    return 0


def _quiet(_line: str) -> None:
    pass
