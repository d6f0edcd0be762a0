"""Lifecycle commands: the end-to-end demo."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the whole lifecycle on the shipped data")
    p.add_argument("--symbols", type=int, default=None, help="only the first N tickers")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(handler=_demo)


def _demo(args: argparse.Namespace) -> int:
    from strategy_engine.demo import run_demo

    return run_demo(symbols_limit=args.symbols, as_json=args.json)
