"""``strategy-engine``: one console script, one subcommand per job."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from core.codec import dumps
from core.errors import StrategyEngineError

Handler = Callable[[argparse.Namespace], int]


def main(argv: Sequence[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except (StrategyEngineError, OSError) as exc:
        # Operators get one line naming the problem, never a traceback.
        print(f"strategy-engine {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, FileNotFoundError) and exc.filename:
        return f"no such file: {exc.filename}"
    return " ".join(str(exc).split()) or type(exc).__name__


def _print_json(payload: Any) -> None:
    sys.stdout.write(dumps(payload).decode() + "\n")


def _cmd_strategies(args: argparse.Namespace) -> int:
    from core.strategies.catalogue import describe, strategy_types

    described = [describe(cls) for cls in strategy_types()]
    if args.json:
        _print_json(described)
        return 0
    print(f"{'type':<24}{'family':<24}{'tier':<10}{'data':<14}defaults")
    for d in described:
        defaults = ", ".join(f"{k}={v}" for k, v in d["defaults"].items())
        print(f"{d['name']:<24}{d['family']:<24}{d['tier']:<10}{d['data_kind']:<14}{defaults}")
    return 0


def _cmd_backtest(args: argparse.Namespace) -> int:
    from strategy_engine.backtest import backtest_csv, parse_params

    result = backtest_csv(
        args.strategy,
        Path(args.csv),
        params=parse_params(args.param),
        fee_bps=args.fee_bps,
        allow_short=args.allow_short,
        skip_bad_rows=args.skip_bad_rows,
    )
    if args.json:
        _print_json(result)
        return 0
    for key, value in result.items():
        print(f"{key:>16}: {value}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from strategy_engine.demo import run_demo

    return run_demo(symbols_limit=args.symbols, as_json=args.json)


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="strategy-engine",
        description="Run, retrain and govern trading strategies.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("strategies", help="list the strategy types")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=_cmd_strategies)

    p = sub.add_parser("backtest", help="backtest one strategy on a CSV of bars")
    p.add_argument("--strategy", required=True, help="strategy type, e.g. ma_crossover")
    p.add_argument("--csv", required=True, help="CSV with Date, Open, High, Low, Close, Volume")
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE")
    p.add_argument("--fee-bps", type=float, default=0.0, help="fee in bps of traded notional")
    p.add_argument("--allow-short", action="store_true", help="go short instead of flat")
    p.add_argument("--skip-bad-rows", action="store_true", help="drop unparsable rows")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=_cmd_backtest)

    p = sub.add_parser("demo", help="run the whole lifecycle on the shipped data")
    p.add_argument("--symbols", type=int, default=None, help="only the first N tickers")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(handler=_cmd_demo)
    return parser


if __name__ == "__main__":
    sys.exit(main())
