"""Lifecycle commands: the end-to-end demo."""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
from pathlib import Path

from strategy_engine.output import print_json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the whole lifecycle on the shipped data")
    p.add_argument(
        "--symbols", type=int, default=None, help="only the first N tickers (default 8; 88: all)"
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(handler=_demo)

    p = sub.add_parser("retrain", help="validate, train a challenger, evaluate, maybe promote")
    p.add_argument(
        "--strategy", required=True, help="any catalogued type (strategies --json), e.g. latency"
    )
    p.add_argument(
        "--csv", help="single-asset bar types: train and evaluate on this CSV of bars instead"
    )
    p.add_argument(
        "--dataset", help="a shipped data set (default: stocknet88 for bars, else the type's own)"
    )
    p.add_argument(
        "--symbol",
        action="append",
        default=[],
        help="instruments of the data set to use (tickers, KO/PEP, BTCUSDT, ...); "
        "with --csv, exactly one: the CSV's instrument",
    )
    add_retrain_options(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_retrain)


def add_retrain_options(p: argparse.ArgumentParser) -> None:
    """The options of one retrain, shared by ``retrain`` and ``retrain-all``."""
    p.add_argument(
        "--margin",
        type=float,
        default=None,
        help="the lead the challenger must show in its family's objective (default: 0.05 "
        "Sharpe; 0.0005 of return for market makers and arbitrage)",
    )
    p.add_argument("--fast", action="store_true", help="the small slices of the data sets")
    p.add_argument(
        "--max-rejected-rows",
        type=int,
        default=0,
        metavar="N",
        help="rows the loader may reject before the data gate fails (default 0)",
    )
    p.add_argument("--no-notify", action="store_true", help="do not tell running cores")


def _demo(args: argparse.Namespace) -> int:
    from strategy_engine.demo import run_demo

    if not args.json:
        return run_demo(symbols_limit=args.symbols, as_json=False)
    # The demo writes its report on sys.stdout itself, last; under --json the command line
    # sends sys.stdout to stderr, so the report is taken from what the demo wrote and printed
    # as the command's one document, and the rest goes to stderr where it was headed.
    written = io.StringIO()
    with contextlib.redirect_stdout(written):
        code = run_demo(symbols_limit=args.symbols, as_json=True)
    lines = written.getvalue().splitlines()
    report = _json_object(lines[-1]) if lines else None
    chatter = lines[:-1] if report is not None else lines
    if chatter:
        sys.stderr.write("\n".join(chatter) + "\n")
    if report is not None:
        print_json(report)
    return code


def _json_object(line: str) -> dict[str, object] | None:
    from core.codec import loads
    from core.errors import MessageError

    try:
        value = loads(line.encode())
    except MessageError:
        return None
    return value if isinstance(value, dict) else None


def _retrain(args: argparse.Namespace) -> int:
    """Run the retrain flow; a failed data gate exits 1 with one line naming the gate."""
    from core.errors import ConfigError
    from strategy_engine.environment import apply_environment_defaults

    if args.csv and len(args.symbol) != 1:
        # A file name says nothing reliable about the instrument the version will trade.
        raise ConfigError(
            f"--csv needs exactly one --symbol naming the CSV's instrument, got {len(args.symbol)}"
        )
    if args.max_rejected_rows < 0:
        raise ConfigError(f"--max-rejected-rows must be >= 0, was {args.max_rejected_rows}")
    apply_environment_defaults()
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    from pipelines.flows import retrain

    outcome = retrain(
        strategy=args.strategy,
        csv=str(Path(args.csv).resolve()) if args.csv else None,
        symbols=args.symbol or None,
        dataset=args.dataset,
        margin=args.margin,
        notify=not args.no_notify,
        max_rejected_rows=args.max_rejected_rows,
        fast=args.fast,
    )
    decision = outcome["decision"]
    refused = not outcome["gate"]["success"]
    if refused:
        print(f"strategy-engine retrain: {decision['reason']}", file=sys.stderr)
    if args.json:
        print_json({k: v for k, v in outcome.items() if k != "candidates"})
        return 1 if refused else 0
    challenger = outcome["challenger"] or {}
    print(f"gate: {'passed' if outcome['gate']['success'] else 'FAILED'}")
    print(f"challenger: {outcome['model']} v{challenger.get('version')} {challenger.get('test')}")
    print(f"champion:   {outcome['champion']}")
    verdict = "promoted" if decision["promoted"] else "not promoted"
    print(f"decision:   {verdict}: {decision['reason']}")
    return 1 if refused else 0
