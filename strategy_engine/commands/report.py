"""The ``report`` command: backtest every catalogued strategy type on its own shipped data set."""

from __future__ import annotations

import argparse
from typing import Any

from pipelines.progress import progress
from strategy_engine.output import print_json

_COLUMNS = (
    "type",
    "family",
    "data",
    "trades",
    "total return",
    "Sharpe",
    "max drawdown",
    "turnover",
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="backtest every strategy type on its shipped data set")
    p.add_argument("--fast", action="store_true", help="small slices of each data set (tests)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=_report)


def strategy_report(fast: bool = False, *, quiet: bool = True) -> dict[str, Any]:
    """Backtest every catalogued type with its default config on its default data.

    A type that fails is reported with its error (one line) and the others still run.

    Returns
    -------
    dict
        ``rows`` (one per type: ``type, family, data, symbol, trades, total_return, sharpe,
        max_drawdown, turnover, fill_model`` or ``error``), ``fast`` and
        ``turnover_definition``.
    """
    from core.backtest.runner import TURNOVER_DEFINITION, backtest
    from core.errors import StrategyEngineError
    from core.strategies.catalogue import strategy_types

    rows: list[dict[str, Any]] = []
    types = strategy_types()
    for cls in progress(types, desc="backtests", quiet=quiet, total=len(types), unit="type"):
        spec = cls.spec
        row: dict[str, Any] = {"type": spec.name, "family": spec.family.value}
        try:
            result = backtest(spec.name, fast=fast)
        except (StrategyEngineError, OSError) as exc:
            rows.append({**row, "data": spec.dataset, "error": " ".join(str(exc).split())})
            continue
        rows.append(
            {
                **row,
                "data": result["dataset"],
                "symbol": result["symbol"],
                "events": result["bars"],
                "trades": result["trades"],
                "total_return": result["total_return"],
                "sharpe": result["sharpe"],
                "max_drawdown": result["max_drawdown"],
                "turnover": result["turnover"],
                "fill_model": result["fill_model"],
            }
        )
    return {"fast": fast, "turnover_definition": TURNOVER_DEFINITION, "rows": rows}


def format_table(report: dict[str, Any]) -> str:
    """The report as a Markdown table, with the turnover definition below it."""
    lines = ["| " + " | ".join(_COLUMNS) + " |", "|" + "---|" * len(_COLUMNS)]
    for row in report["rows"]:
        if "error" in row:
            cells = [row["type"], row["family"], row["data"], f"error: {row['error']}"]
            cells += [""] * (len(_COLUMNS) - len(cells))
        else:
            cells = [
                row["type"],
                row["family"],
                row["data"],
                str(row["trades"]),
                f"{row['total_return']:+.2%}",
                f"{row['sharpe']:.2f}",
                f"{row['max_drawdown']:.2%}",
                f"{row['turnover']:.1f}",
            ]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(f"{report['turnover_definition']}.")
    return "\n".join(lines)


def _report(args: argparse.Namespace) -> int:
    report = strategy_report(fast=args.fast, quiet=args.json)
    if args.json:
        print_json(report)
    else:
        print(format_table(report))
    return 1 if any("error" in row for row in report["rows"]) else 0
