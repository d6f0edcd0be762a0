"""Research commands: list strategy types, backtest one of them."""

from __future__ import annotations

import argparse
from pathlib import Path

from strategy_engine.output import print_json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("strategies", help="list the strategy types")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=_strategies)

    p = sub.add_parser("backtest", help="backtest one strategy on bar CSVs or a shipped data set")
    p.add_argument("--strategy", required=True, help="strategy type, e.g. ma_crossover")
    p.add_argument(
        "--csv",
        action="append",
        default=[],
        metavar="PATH",
        help="CSV with Date, Open, High, Low, Close, Volume; twice for a pair (legs A, B)",
    )
    p.add_argument("--csv-b", metavar="PATH", help="leg B of a pair type (with one --csv)")
    p.add_argument("--dataset", help="a shipped data set (default symbols unless --symbol)")
    p.add_argument(
        "--symbol", action="append", default=[], help="with --dataset: a symbol or pair A/B"
    )
    p.add_argument("--fast", action="store_true", help="with --dataset: a small slice")
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE")
    p.add_argument("--fee-bps", type=float, default=0.0, help="fee in bps of traded notional")
    p.add_argument("--allow-short", action="store_true", help="go short instead of flat")
    p.add_argument("--skip-bad-rows", action="store_true", help="drop unparsable rows")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=_backtest)


def _strategies(args: argparse.Namespace) -> int:
    from core.strategies.catalogue import describe, strategy_types

    described = [describe(cls) for cls in strategy_types()]
    if args.json:
        print_json(described)
        return 0
    print(f"{'type':<24}{'family':<24}{'tier':<10}{'data':<15}dataset")
    for d in described:
        print(f"{d['name']:<24}{d['family']:<24}{d['tier']:<10}{d['data_kind']:<15}{d['dataset']}")
    return 0


def _backtest(args: argparse.Namespace) -> int:
    from core.errors import ConfigError
    from strategy_engine.backtest import backtest_csv, backtest_dataset, parse_params

    csvs = [Path(p) for p in args.csv] + ([Path(args.csv_b)] if args.csv_b else [])
    if args.dataset and csvs:
        raise ConfigError("give --csv or --dataset, not both")
    if not args.dataset and not csvs:
        raise ConfigError("give --csv PATH (bar and pair types) or --dataset NAME")
    if args.symbol and not args.dataset:
        raise ConfigError("--symbol goes with --dataset (a CSV's symbol is its file name)")
    params = parse_params(args.param)
    if args.dataset:
        result = backtest_dataset(
            args.strategy,
            args.dataset,
            symbols=args.symbol,
            params=params,
            fee_bps=args.fee_bps,
            allow_short=args.allow_short,
            fast=args.fast,
            quiet=args.json,
        )
    else:
        result = backtest_csv(
            args.strategy,
            csvs,
            params=params,
            fee_bps=args.fee_bps,
            allow_short=args.allow_short,
            skip_bad_rows=args.skip_bad_rows,
        )
    if args.json:
        print_json(result)
        return 0
    for key, value in result.items():
        print(f"{key:>16}: {value}")
    return 0
