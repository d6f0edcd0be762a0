"""Measure the engine's throughput on the shipped data, and compare it with backtrader.

Run: ``.venv/bin/python benchmarks/bench_engine.py [--quick] [--no-compare]`` (prints JSON), or
``strategy-engine bench [--json] [--quick] [--no-compare]``.

What is timed (data is loaded and events are built once, before any clock starts; each number is
the best of ``repeats`` runs; the loop is single-threaded, so every rate is per core):

* **bar strategies**: :class:`TradingEngine` (routing, strategy update, fills at the next open,
  marking, risk, composer, equity tracking) over all 88 ``equities_daily_stocknet88`` tickers
  merged in time order, once per catalogued type whose data kind is ``bars``, with that type's
  default config, one instance per ticker, 1 unit per +1 target; then every bar type together in
  one engine (each bar then updates one instance of every type). A *bar-update* is one strategy
  instance consuming one bar.
* **fast tier**: strategy updates only (one instance, ``update`` per event), and the
  applicator + composer (routing, quarantine guard, ``Routed``/legs for each signal, composer
  netting), over the Binance BTCUSDT tape: the three market makers on the spot quotes and trades,
  latency on the spot and USD-M quotes. No fill model runs in this loop (the engine's venue
  does that, measured with the engine), so the market makers' inventory stays flat.
* **risk checks**: :func:`bench_risk.measure_risk_checks`.
* **comparison**: ma_crossover (SMA 10/30, long only, 1 unit, signal at close t, fill at open
  t+1, no fees) in the project engine and in backtrader (own venv under ``var/bench-venv``) on
  the same bars in the same run, with the per-ticker PnLs compared.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pandas as pd

from core.backtest.runner import resolve_config
from core.backtest.streams import bars_stream, stream_for
from core.data.datasets import get_dataset, load_bars
from core.engine.applicator import StrategyApplicator
from core.engine.composer import StrategyComposer
from core.engine.engine import PositionSizing, TradingEngine
from core.engine.execution import BarFillModel
from core.engine.venue import Venue
from core.ports import StrategyDeployment
from core.strategies.base import DataKind
from core.strategies.batch import BatchMode
from core.strategies.catalogue import build, strategy_types

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BAR_DATASET = "equities_daily_stocknet88"
MARKET_MAKERS = ("adaptive_quote", "spread_adjuster", "volatility_responsive")
BACKTRADER_REQUIREMENT = "backtrader==1.9.78.123"
VENV_DIR = ROOT / "var" / "bench-venv"
CROSSOVER = {"fast_period": 10, "slow_period": 30, "ma_type": "sma", "allow_short": False}
PNL_RTOL = 1e-6
QUICK_SYMBOLS, QUICK_ROWS = 3, 500
BATCH = 1024  # events per engine batch (the core's default stream read)

TARGETS = {
    "bar_updates_per_second_per_core": 1_000_000.0,
    "speedup_vs_backtrader": 50.0,
}
REFERENCES = {
    "fastest_published_event_driven_events_per_second": 540_000.0,
    "backtrader_published_bars_per_second": 15_000.0,
}


# ---------------------------------------------------------------------------------------------
# Timing helpers
# ---------------------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    """Where the numbers were taken: cores, load average now, Python and platform."""
    load = os.getloadavg()
    return {
        "cpus": os.cpu_count(),
        "load_average_1_5_15": [round(x, 2) for x in load],
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def best_of(
    run: Callable[[], float], repeats: int, budget_s: float = math.inf
) -> tuple[float, int, float]:
    """Call ``run`` (which returns the wall seconds it timed) up to ``repeats`` times.

    Returns the best wall time, the number of runs made (it stops early once ``budget_s``
    seconds have been spent, so a very slow case still finishes) and the process CPU time of
    the best run (around the whole call, so it includes the run's small set-up): a wall time
    well above it means other processes were sharing the core.
    """
    best, cpu, spent, done = math.inf, math.nan, 0.0, 0
    while done < repeats:
        cpu_start = time.process_time()
        seconds = run()
        if seconds < best:
            best, cpu = seconds, time.process_time() - cpu_start
        spent, done = spent + seconds, done + 1
        if spent >= budget_s:
            break
    return best, done, cpu


def _load_sibling(name: str) -> ModuleType:
    """Import ``benchmarks/<name>.py`` by path (``benchmarks`` is not an installed package)."""
    module_name = f"_bench_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, HERE / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------------------------------------
# Bar strategies through the trading engine
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BarData:
    """The stocknet bars: per-symbol frames and all symbols' bars merged in time order."""

    frames: dict[str, pd.DataFrame]
    events: list[Any]
    instances: tuple[str, ...]
    capital: float


def load_bar_data(quick: bool = False) -> BarData:
    """Load the 88 stocknet tickers (``quick``: the first 3, first 500 rows each)."""
    tickers = list(get_dataset(BAR_DATASET).tickers)
    if quick:
        tickers = tickers[:QUICK_SYMBOLS]
    frames = {s: r.frame for s, r in load_bars(BAR_DATASET, tickers).items()}
    if quick:
        frames = {s: f.iloc[:QUICK_ROWS].reset_index(drop=True) for s, f in frames.items()}
    stream = bars_stream("ma_crossover", BAR_DATASET, frames)
    return BarData(frames, stream.events, stream.instances, stream.capital)


def bar_types() -> list[str]:
    """Every catalogued strategy type whose data kind is single-instrument bars."""
    return [c.spec.name for c in strategy_types() if c.spec.data_kind is DataKind.BARS]


def _deployment(type_name: str, instances: Sequence[str], config: dict[str, Any] | None = None):
    return StrategyDeployment(
        name=type_name,
        version="bench",
        type_name=type_name,
        config=resolve_config(type_name, config),
        symbols=tuple(instances),
    )


def time_engine(
    deployments: list[StrategyDeployment],
    data: BarData,
    repeats: int,
    budget_s: float,
    batch_forms: BatchMode = "auto",
) -> dict[str, Any]:
    """Best wall time of a fresh engine's ``on_batch`` loop plus ``finish`` over the bars.

    The events go in batches of :data:`BATCH` (as a core reads them from its streams);
    ``batch_forms`` as in :class:`TradingEngine` ("auto", the default, runs one instance per
    symbol on 88 tickers; "always" updates all the symbols of a batch at once where a type has
    a batch form).
    """
    counts: dict[str, int] = {}
    batches = [data.events[i : i + BATCH] for i in range(0, len(data.events), BATCH)]

    def once() -> float:
        engine = TradingEngine(deployments, initial_capital=data.capital, batch_forms=batch_forms)
        on_batch = engine.on_batch
        start = time.perf_counter()
        for batch in batches:
            on_batch(batch)
        engine.finish()
        seconds = time.perf_counter() - start
        counts.update(
            signals=engine.tracker.signals,
            fills=engine.tracker.fills,
            strategy_errors=len(engine.applicator.errors),
        )
        return seconds

    seconds, runs, cpu = best_of(once, repeats, budget_s)
    events = len(data.events)
    updates = events * len(deployments)
    return {
        "events": events,
        "bar_updates": updates,
        "seconds": seconds,
        "cpu_seconds": cpu,
        "events_per_second": events / seconds,
        "bar_updates_per_second": updates / seconds,
        "us_per_event": seconds / events * 1e6,
        "runs": runs,
        **counts,
    }


def bench_bar_strategies(data: BarData, repeats: int = 3, budget_s: float = 20.0) -> dict[str, Any]:
    """Each bar type alone over every ticker, then all bar types together in one engine."""
    per_type = {
        name: time_engine([_deployment(name, data.instances)], data, repeats, budget_s)
        for name in bar_types()
    }
    for name in batch_types():  # the same type in its batch form, for comparison
        per_type[name]["batch_form"] = time_engine(
            [_deployment(name, data.instances)], data, repeats, budget_s, batch_forms="always"
        )
    together = time_engine(
        [_deployment(name, data.instances) for name in bar_types()], data, repeats, budget_s
    )
    return {
        "dataset": BAR_DATASET,
        "symbols": len(data.instances),
        "batch": BATCH,
        "batch_forms": batch_types(),
        "per_type": per_type,
        "all_types_one_engine": {"types": bar_types(), **together},
    }


def batch_types() -> list[str]:
    """The bar types with a batch form (every symbol of a batch in one numpy update)."""
    return [c.spec.name for c in strategy_types() if c.batch_type is not None]


def bench_wide_universe(
    data: BarData, copies: int = 10, repeats: int = 3, budget_s: float = 30.0
) -> dict[str, Any]:
    """The batch forms on a wider universe: each ticker's real bars under ``copies`` names.

    A batch form's cost per batch is mostly fixed (a few dozen numpy calls), so its gain
    grows with the number of symbols a batch holds; 88 tickers is a small universe.
    """
    frames = {
        f"{symbol}.{k}": frame for symbol, frame in data.frames.items() for k in range(copies)
    }
    stream = bars_stream("ma_crossover", BAR_DATASET, frames)
    wide = BarData(frames, stream.events, stream.instances, stream.capital)
    out: dict[str, Any] = {"symbols": len(wide.instances), "copies": copies}
    for name in batch_types():
        deployment = [_deployment(name, wide.instances)]
        batched = time_engine(deployment, wide, repeats, budget_s, batch_forms="always")
        single = time_engine(deployment, wide, repeats, budget_s, batch_forms="never")
        out[name] = {
            "batch_form": batched,
            "per_instance": single,
            "speedup": single["seconds"] / batched["seconds"],
        }
    return out


# ---------------------------------------------------------------------------------------------
# Fast tier: market makers and latency on the Binance tape
# ---------------------------------------------------------------------------------------------


def load_fast_tier(quick: bool = False) -> dict[str, list[Any]]:
    """The BTCUSDT tape: spot quotes and trades (market makers), spot and USD-M quotes (latency).

    ``quick``: the small slices the tests use.
    """
    spot = stream_for(MARKET_MAKERS[0], fast=quick).events
    quotes = stream_for("latency", fast=quick).events
    return {"spot_quotes_trades": spot, "usdm_spot_quotes": quotes}


def _strategy_loop(type_name: str, symbol: str, events: list[Any]) -> Callable[[], float]:
    def once() -> float:
        update = build(type_name, resolve_config(type_name, None), symbol).update
        start = time.perf_counter()
        for event in events:
            update(event)
        return time.perf_counter() - start

    return once


def _applicator_loop(
    deployments: list[StrategyDeployment], events: list[Any]
) -> Callable[[], float]:
    def once() -> float:
        applicator = StrategyApplicator(deployments)
        composer = StrategyComposer({d.name: d.weight for d in deployments})
        on_event, on_legs = applicator.on_event, composer.on_legs
        start = time.perf_counter()
        for event in events:
            for routed in on_event(event):
                on_legs(routed.signal.strategy, routed.instance_key, routed.legs)
        return time.perf_counter() - start

    return once


def _rate(events: int, seconds: float, runs: int, cpu: float, **extra: Any) -> dict[str, Any]:
    return {
        "events": events,
        "seconds": seconds,
        "cpu_seconds": cpu,
        "events_per_second": events / seconds,
        "us_per_event": seconds / events * 1e6,
        "runs": runs,
        **extra,
    }


def bench_fast_tier(tape: dict[str, list[Any]], repeats: int = 3) -> dict[str, Any]:
    """Events per second of the quoting and latency strategies, alone and via the applicator."""
    spot, quotes = tape["spot_quotes_trades"], tape["usdm_spot_quotes"]
    cases = {name: (spot, "BTCUSDT") for name in MARKET_MAKERS}
    cases["latency"] = (quotes, "BTCUSDT:usdm/spot")
    update_only = {}
    for name, (events, symbol) in cases.items():
        update_only[name] = _rate(
            len(events), *best_of(_strategy_loop(name, symbol, events), repeats)
        )
    makers = [_deployment(n, ("BTCUSDT",)) for n in MARKET_MAKERS]
    mm_s, mm_runs, mm_cpu = best_of(_applicator_loop(makers, spot), repeats)
    lat_s, lat_runs, lat_cpu = best_of(
        _applicator_loop([_deployment("latency", ("BTCUSDT:usdm/spot",))], quotes), repeats
    )
    total_events = len(spot) + len(quotes)
    return {
        "timed": (
            "update_only: one strategy instance's update() per event; "
            "applicator_composer: StrategyApplicator.on_event (routing, quarantine guard, "
            "Routed and legs per signal) + StrategyComposer.on_legs per signal; "
            "no fill model, sizing, orders or risk in either loop"
        ),
        "update_only": update_only,
        "applicator_composer": {
            "market_makers_on_spot_tape": _rate(
                len(spot),
                mm_s,
                mm_runs,
                mm_cpu,
                instances=3,
                instance_updates_per_second=3 * len(spot) / mm_s,
            ),
            "latency_on_quotes": _rate(len(quotes), lat_s, lat_runs, lat_cpu, instances=1),
            "fast_tier_total": _rate(
                total_events, mm_s + lat_s, min(mm_runs, lat_runs), mm_cpu + lat_cpu
            ),
        },
    }


# ---------------------------------------------------------------------------------------------
# Risk checks
# ---------------------------------------------------------------------------------------------


def bench_risk_checks(n: int = 1_000_000, repeats: int = 3) -> dict[str, Any]:
    """Best of ``repeats`` runs of ``bench_risk.measure_risk_checks(n)``."""
    measure = _load_sibling("bench_risk").measure_risk_checks
    runs = [measure(n) for _ in range(repeats)]
    return {**min(runs, key=lambda r: r["seconds"]), "runs": repeats}


# ---------------------------------------------------------------------------------------------
# The same crossover in backtrader
# ---------------------------------------------------------------------------------------------


def project_crossover(data: BarData, repeats: int = 3) -> dict[str, Any]:
    """ma_crossover 10/30 SMA long-only, 1 unit, fee 0 in the engine; per-ticker PnL."""
    deployment = _deployment("ma_crossover", data.instances, CROSSOVER)
    timing: dict[str, Any] = {}
    pnl: dict[str, float] = {}

    def once() -> float:
        engine = TradingEngine(
            [deployment],
            venue=Venue(bars=BarFillModel(fee_bps=0.0)),
            initial_capital=data.capital,
            sizing=PositionSizing(units=1.0),
        )
        start = time.perf_counter()
        engine.run(data.events)
        seconds = time.perf_counter() - start
        traded = {row["symbol"]: float(row["pnl"]) for row in engine.portfolio.per_symbol()}
        pnl.update({s: traded.get(s, 0.0) for s in data.instances})
        return seconds

    seconds, timing["runs"], timing["cpu_seconds"] = best_of(once, repeats)
    bars = len(data.events)
    return {
        "bars": bars,
        "seconds": seconds,
        "bars_per_second": bars / seconds,
        **timing,
        "pnl": pnl,
    }


def backtrader_python(venv: Path = VENV_DIR) -> Path:
    """The benchmark venv's python with backtrader installed, creating the venv on first use."""
    python = venv / "bin" / "python"
    check = [str(python), "-c", "import backtrader"]
    if python.exists() and subprocess.run(check, capture_output=True, check=False).returncode == 0:
        return python
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", BACKTRADER_REQUIREMENT], check=True
    )
    return python


def run_backtrader(data: BarData, repeats: int = 3) -> dict[str, Any]:
    """Run ``compare_backtrader.py`` in the benchmark venv on the same bars; its JSON output."""
    bars = {
        symbol: {c: frame[c].tolist() for c in ("open", "high", "low", "close", "volume")}
        | {"ts": frame["ts_event"].astype("int64").tolist()}
        for symbol, frame in data.frames.items()
    }
    spec = {"fast": CROSSOVER["fast_period"], "slow": CROSSOVER["slow_period"], "bars": bars}
    python = backtrader_python()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bars.json"
        path.write_text(json.dumps(spec), encoding="utf-8")
        done = subprocess.run(
            [str(python), str(HERE / "compare_backtrader.py"), str(path), str(repeats)],
            capture_output=True,
            text=True,
            check=False,
        )
    if done.returncode != 0:
        raise RuntimeError(f"compare_backtrader.py failed: {done.stderr.strip()[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def compare_pnl(ours: dict[str, float], theirs: dict[str, float]) -> dict[str, Any]:
    """Per-ticker agreement to :data:`PNL_RTOL` (relative), the worst mismatch, the disagreeing."""
    agree, worst_rel, worst, mismatches = 0, -1.0, None, []
    for symbol in sorted(ours):
        a, b = ours[symbol], theirs.get(symbol, math.nan)  # a missing ticker is a mismatch
        diff = abs(a - b)
        scale = max(abs(a), abs(b))
        # Relative to the larger PnL; an absolute 1e-9 for PnLs that are both about zero.
        ok = diff <= PNL_RTOL * scale or diff <= 1e-9
        agree += ok
        rel = diff / scale if scale else 0.0
        row = {"symbol": symbol, "project": a, "backtrader": b, "rel_diff": rel}
        if not ok:
            mismatches.append(row)
        if not rel <= worst_rel:  # NaN (missing) counts as the worst
            worst_rel, worst = (math.inf if math.isnan(rel) else rel), row
    return {
        "tickers": len(ours),
        "agree": agree,
        "rtol": PNL_RTOL,
        "worst": worst,
        "mismatches": mismatches,
    }


def compare_with_backtrader(data: BarData, repeats: int = 3) -> dict[str, Any]:
    """Both engines on the same bars: throughput ratio and per-ticker PnL agreement."""
    ours = project_crossover(data, repeats)
    theirs = run_backtrader(data, repeats)
    speedup = ours["bars_per_second"] / theirs["bars_per_second"]
    return {
        "strategy": "ma_crossover SMA 10/30, long only, 1 unit, close t -> open t+1, no fees",
        "project": {k: v for k, v in ours.items() if k != "pnl"},
        "backtrader": {k: v for k, v in theirs.items() if k not in ("pnl", "fills")},
        "speedup": speedup,
        "speedup_target": TARGETS["speedup_vs_backtrader"],
        "pnl_agreement": compare_pnl(ours["pnl"], theirs["pnl"]),
    }


# ---------------------------------------------------------------------------------------------
# Everything
# ---------------------------------------------------------------------------------------------


def run_benchmarks(quick: bool = False, compare: bool = True) -> dict[str, Any]:
    """Load the data once, run every benchmark, return one JSON-safe report."""
    repeats = 1 if quick else 3
    start = time.perf_counter()
    bars = load_bar_data(quick)
    tape = load_fast_tier(quick)
    load_s = time.perf_counter() - start
    report: dict[str, Any] = {
        "quick": quick,
        "repeats": repeats,
        "machine_before": machine(),
        "load_seconds": load_s,
        "targets": TARGETS,
        "references": REFERENCES,
    }
    report["bar_strategies"] = bench_bar_strategies(bars, repeats, 2.0 if quick else 20.0)
    if not quick:
        report["wide_universe"] = bench_wide_universe(bars, repeats=repeats)
    report["fast_tier"] = bench_fast_tier(tape, repeats)
    report["risk"] = bench_risk_checks(20_000 if quick else 1_000_000, repeats)
    if compare:
        report["comparison"] = compare_with_backtrader(bars, repeats)
    report["machine_after"] = machine()
    report["summary"] = summarize(report)
    return report


def summarize(report: dict[str, Any]) -> dict[str, Any]:
    """The headline numbers beside their targets."""
    per_type = report["bar_strategies"]["per_type"]
    rates = {name: r["bar_updates_per_second"] for name, r in per_type.items()}
    together = report["bar_strategies"]["all_types_one_engine"]
    fast = report["fast_tier"]["applicator_composer"]["fast_tier_total"]
    summary: dict[str, Any] = {
        "bar_updates_per_second_per_core": {
            "best_type": max(rates, key=rates.__getitem__),
            "best": max(rates.values()),
            "all_types_one_engine": together["bar_updates_per_second"],
            "target": TARGETS["bar_updates_per_second_per_core"],
        },
        "fast_tier_events_per_second": fast["events_per_second"],
        "risk_checks_per_second": report["risk"]["checks_per_second"],
    }
    if "comparison" in report:
        cmp = report["comparison"]
        summary["speedup_vs_backtrader"] = {
            "value": cmp["speedup"],
            "target": TARGETS["speedup_vs_backtrader"],
            "pnl_agree": f"{cmp['pnl_agreement']['agree']}/{cmp['pnl_agreement']['tickers']}",
        }
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="small slices, one run each")
    parser.add_argument("--no-compare", action="store_true", help="skip backtrader")
    args = parser.parse_args(argv)
    report = run_benchmarks(quick=args.quick, compare=not args.no_compare)
    sys.stdout.write(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
