"""``retrain-all``: retrain every strategy in parallel on a Dask cluster."""

from __future__ import annotations

import argparse
import os
import sys

from strategy_engine.commands.lifecycle import add_retrain_options
from strategy_engine.output import print_json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "retrain-all",
        help="retrain every registered strategy in parallel on a Dask cluster",
        description="Retrain each strategy as `retrain` does, one Dask task each. Exit 0 when "
        "every strategy was promoted or kept its champion; 1 when any failed, or was blocked "
        "by its data gate (as `retrain` exits 1 on a failed gate); 2 on a usage error.",
    )
    p.add_argument(
        "--strategy",
        action="append",
        default=[],
        metavar="NAME",
        help="a catalogued type to retrain (repeatable; `all`: every type); default: every "
        "strategy registered in MLflow, or every type when none is",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=2,
        metavar="N",
        help="processes of the local Dask cluster (default 2); unused with --scheduler",
    )
    p.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        default=None,
        help="an existing Dask scheduler, e.g. tcp://10.0.0.5:8786 (default "
        "$STRATEGY_ENGINE_DASK_SCHEDULER, else a local cluster for this run)",
    )
    p.add_argument(
        "--sequential", action="store_true", help="one after another in this process, no Dask"
    )
    p.add_argument(
        "--dataset", help="a shipped data set for every strategy (default: each type's own)"
    )
    add_retrain_options(p)
    p.add_argument("--json", action="store_true", help="print the report as one JSON document")
    p.set_defaults(handler=_retrain_all)


def _retrain_all(args: argparse.Namespace) -> int:
    from core.errors import ConfigError
    from strategy_engine.environment import apply_environment_defaults

    if args.workers < 1:
        raise ConfigError(f"--workers must be >= 1, was {args.workers}")
    if args.max_rejected_rows < 0:
        raise ConfigError(f"--max-rejected-rows must be >= 0, was {args.max_rejected_rows}")
    apply_environment_defaults()
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    from pipelines.fanout import retrain_all

    report = retrain_all(
        strategies=args.strategy or None,
        dataset=args.dataset,
        margin=args.margin,
        notify=not args.no_notify,
        max_rejected_rows=args.max_rejected_rows,
        fast=args.fast,
        workers=args.workers,
        scheduler_address=args.scheduler,
        sequential=args.sequential,
    )
    totals = report["totals"]
    for line in report["strategies"]:
        if line["status"] == "failed":
            print(
                f"strategy-engine retrain-all: {line['strategy']}: {line['error']}", file=sys.stderr
            )
        elif line["status"] == "blocked":
            print(
                f"strategy-engine retrain-all: {line['strategy']}: {line['decision']['reason']}",
                file=sys.stderr,
            )
    code = 1 if totals["failed"] or totals["blocked"] else 0
    if args.json:
        print_json(report)
        return code
    for line in report["strategies"]:
        version = line["challenger_version"]
        print(
            f"{line['strategy']:<24} {line['status']:<9} "
            f"{'v' + version if version else '-':<6} {line['seconds'] or 0:7.1f} s"
        )
    runner = report["runner"]
    where = (
        "sequentially"
        if runner["kind"] == "sequential"
        else f"on {runner['scheduler']}"
        if runner["scheduler"]
        else f"on {runner['workers']} local Dask workers"
    )
    print(
        f"retrain-all: {totals['strategies']} strategies {where} in {totals['wall_seconds']:.1f} s"
        f" (sum of their own times {totals['task_seconds']:.1f} s): {totals['promoted']} "
        f"promoted, {totals['kept']} kept, {totals['blocked']} blocked, {totals['failed']} failed"
    )
    return code
