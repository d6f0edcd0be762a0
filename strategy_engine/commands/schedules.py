"""Schedule commands: list, pause and resume the Prefect deployments' schedules."""

from __future__ import annotations

import argparse

from strategy_engine.output import print_json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "schedules",
        help="list, pause or resume the schedules of the stack's Prefect deployments",
        description="Pausing is Prefect's deployment pause: no scheduled runs until resumed "
        "(a run started by hand still runs); `up` keeps a pause across redeploys.",
    )
    p.add_argument("action", nargs="?", choices=("list", "pause", "resume"), default="list")
    p.add_argument(
        "--deployment",
        action="append",
        default=[],
        metavar="NAME",
        help="flow/deployment, or a deployment name alone (repeatable)",
    )
    p.add_argument("--all", action="store_true", help="every deployment that has a schedule")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_schedules)


def _schedules(args: argparse.Namespace) -> int:
    from strategy_engine.environment import apply_environment_defaults

    apply_environment_defaults()  # before Prefect is imported: the stack's home and auth
    from strategy_engine import schedules

    api_url, auth = schedules.stack_api()
    if args.action == "list":
        rows = schedules.list_schedules(api_url, auth)
        if args.json:
            print_json({"deployments": rows})
            return 0
        for row in rows:
            state = "PAUSED" if row["paused"] else ("runs" if row["runs_on_schedule"] else "manual")
            plans = ", ".join(
                f"{s['schedule']}{'' if s['active'] else ' (inactive)'}" for s in row["schedules"]
            )
            print(f"{state:7} {row['deployment']}: {plans or 'no schedule'}")
        return 0
    paused = args.action == "pause"
    results = schedules.set_paused(api_url, auth, paused, args.deployment, every=args.all)
    if args.json:
        print_json({"action": args.action, "deployments": results})
        return 0
    for item in results:
        word = ("paused" if paused else "resumed") if item["changed"] else "unchanged"
        print(f"{word}: {item['deployment']}")
    return 0
