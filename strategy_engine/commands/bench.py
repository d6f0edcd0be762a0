"""The ``bench`` command: engine, fast-tier and risk throughput, and backtrader on the same data.

The measurements live in ``benchmarks/bench_engine.py`` (loaded by path: ``benchmarks`` is a
folder of scripts, not an installed package); this command runs them and prints the numbers
beside their targets.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from core.errors import ConfigError
from strategy_engine.output import print_json

BENCH_SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_engine.py"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="measure engine, fast-tier and risk throughput")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--quick", action="store_true", help="small slices, one run each (smoke)")
    p.add_argument(
        "--no-compare", action="store_true", help="skip the backtrader comparison (no venv)"
    )
    p.set_defaults(handler=_bench)


def load_bench_module(path: Path = BENCH_SCRIPT) -> ModuleType:
    """Import ``benchmarks/bench_engine.py`` from the repository checkout."""
    name = "_strategy_engine_bench_engine"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None or not path.is_file():
        raise ConfigError(f"benchmark script not found at {path} (run from a repository checkout)")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there while it executes
    spec.loader.exec_module(module)
    return module


def format_report(report: dict[str, Any]) -> str:
    """The headline numbers as a Markdown table, targets beside them."""
    bars = report["bar_strategies"]
    target = report["targets"]["bar_updates_per_second_per_core"]
    lines = [
        f"machine: {report['machine_before']['cpus']} cpus, load average "
        f"{report['machine_before']['load_average_1_5_15']} (before) / "
        f"{report['machine_after']['load_average_1_5_15']} (after); best of "
        f"{report['repeats']}, single-threaded (per core)",
        "",
        "| measurement | events | seconds | per second | target |",
        "|---|---|---|---|---|",
    ]

    def row(name: str, events: int, seconds: float, rate: float, goal: str = "") -> None:
        lines.append(f"| {name} | {events:,} | {seconds:.3f} | {rate:,.0f} | {goal} |")

    for name, r in bars["per_type"].items():
        row(f"engine: {name} (bar-updates/s)", r["events"], r["seconds"], r["events_per_second"],
            f"{target:,.0f}")  # fmt: skip
        if "batch_form" in r:
            form = r["batch_form"]
            row(f"engine: {name} batch form (bar-updates/s)", form["events"], form["seconds"],
                form["events_per_second"])  # fmt: skip
    together = bars["all_types_one_engine"]
    row(
        f"engine: {len(together['types'])} bar types in one engine (bar-updates/s)",
        together["bar_updates"],
        together["seconds"],
        together["bar_updates_per_second"],
        f"{target:,.0f}",
    )
    wide = report.get("wide_universe", {})
    for name, case in wide.items():
        if not isinstance(case, dict):
            continue
        for form in ("batch_form", "per_instance"):
            r = case[form]
            row(f"engine: {name} {form.replace('_', ' ')}, {wide['symbols']} symbols "
                f"(bar-updates/s)", r["events"], r["seconds"], r["events_per_second"])  # fmt: skip
    fast = report["fast_tier"]
    for name, r in fast["update_only"].items():
        row(f"fast tier: {name} update only (events/s)", r["events"], r["seconds"],
            r["events_per_second"])  # fmt: skip
    for name, r in fast["applicator_composer"].items():
        row(f"fast tier: {name}, applicator+composer (events/s)", r["events"], r["seconds"],
            r["events_per_second"])  # fmt: skip
    risk = report["risk"]
    row("risk checks (checks/s)", risk["checks"], risk["seconds"], risk["checks_per_second"])
    if "comparison" in report:
        cmp = report["comparison"]
        row("ma_crossover 10/30 in the project engine (bars/s)", cmp["project"]["bars"],
            cmp["project"]["seconds"], cmp["project"]["bars_per_second"])  # fmt: skip
        bt = cmp["backtrader"]
        row(f"ma_crossover 10/30 in backtrader {bt['version']} (bars/s)", bt["bars"],
            bt["seconds"], bt["bars_per_second"])  # fmt: skip
        agreement = cmp["pnl_agreement"]
        worst = agreement["worst"] or {}
        lines += [
            "",
            f"speedup over backtrader: {cmp['speedup']:.1f}x (target "
            f"{cmp['speedup_target']:.0f}x); PnL agrees on {agreement['agree']}/"
            f"{agreement['tickers']} tickers to {agreement['rtol']:g} relative (worst: "
            f"{worst.get('symbol', '-')}, {worst.get('rel_diff', 0.0):.2e})",
        ]
    return "\n".join(lines)


def _bench(args: argparse.Namespace) -> int:
    bench = load_bench_module()
    report = bench.run_benchmarks(quick=args.quick, compare=not args.no_compare)
    if args.json:
        print_json(report)
    else:
        print(format_report(report))
    return 0
