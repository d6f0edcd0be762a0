"""``make demo``: the whole lifecycle on real data with embedded services, then a report.

1. Validate the 88 stocknet tickers' daily bars with the Great Expectations bars gate,
   register ``ma_crossover`` in the MLflow registry and make it ``champion`` (a Prefect flow).
2. Start the core: it loads the champion set from the registry (never importing MLflow
   itself), replays the bars on a simulated clock, writes every signal, order and fill to
   Redis as JSON, paper-fills at the next open and tracks performance.
3. Print what ran and where everything is.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import Any

from pipelines.progress import progress
from strategy_engine.settings import REPO_ROOT, VAR_DIR, apply_environment_defaults

DATASET = "equities_daily_stocknet88"
STRATEGY = "ma_crossover"
CONFIG = {"fast_period": 20, "slow_period": 50, "ma_type": "sma", "allow_short": False}
FEE_BPS = 1.0
NOTIONAL_PER_SYMBOL = 10_000.0
NAMESPACE = "demo"


def run_demo(*, symbols_limit: int | None = None, as_json: bool = False) -> int:
    apply_environment_defaults()
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    started = time.perf_counter()

    from core.data.datasets import get_dataset
    from core.errors import ValidationGateFailed
    from pipelines.flows import register_and_promote

    symbols = list(get_dataset(DATASET).symbols())[:symbols_limit]
    _say(as_json, f"1/3 lifecycle flow: validate {len(symbols)} tickers, register, promote")
    try:
        lifecycle = register_and_promote(
            strategy=STRATEGY, config=CONFIG, dataset=DATASET, symbols=symbols
        )
    except ValidationGateFailed as exc:
        print(f"data gate failed, nothing registered: {exc}", file=sys.stderr)
        return 1
    flow_seconds = time.perf_counter() - started

    _say(as_json, "2/3 core: load the champion set, replay the bars, write to Redis")
    core = _run_core(symbols, quiet=as_json)
    report = _report(lifecycle, core, flow_seconds, time.perf_counter() - started)
    if as_json:
        from core.codec import dumps

        sys.stdout.write(dumps(report).decode() + "\n")
    else:
        _say(False, "3/3 report")
        print(_format(report))
    return 0


def _run_core(symbols: list[str], *, quiet: bool) -> dict[str, Any]:
    from core.adapters.redis_server import connect
    from core.adapters.redis_store import RedisStore
    from core.data.loaders import merge_bars
    from core.engine.engine import PositionSizing, TradingEngine
    from core.engine.execution import BarFillModel
    from pipelines.lifecycle import admit_bars
    from registry import MlflowStrategySource, StrategyRegistry

    deployments = MlflowStrategySource(StrategyRegistry()).load_active_set("champion")
    admitted = admit_bars(DATASET, symbols)
    with connect(data_dir=VAR_DIR / "redis") as connection:
        store = RedisStore(connection.client, namespace=NAMESPACE)
        store.clear()
        for symbol, row in admitted.rejected:
            store.dead_letter(f"loader:{DATASET}/{symbol}", row.reason, row.raw, key=str(row.line))
        capital = NOTIONAL_PER_SYMBOL * len(admitted.frames)
        engine = TradingEngine(
            deployments,
            fill_model=BarFillModel(fee_bps=FEE_BPS),
            initial_capital=capital,
            sizing=PositionSizing(notional=NOTIONAL_PER_SYMBOL),
            sink=store,
            state_store=store,
        )
        began = time.perf_counter()
        bars = merge_bars(admitted.frames)
        shown = progress(bars, desc="core replay", quiet=quiet, total=len(bars), unit="bar")
        summary = engine.run(shown)
        summary["replay_seconds"] = time.perf_counter() - began
        summary["capital"] = capital
        summary["deployments"] = [
            {"name": d.name, "version": d.version, "alias": d.alias} for d in deployments
        ]
        summary["redis"] = {
            "location": connection.location,
            "namespace": NAMESPACE,
            "streams": store.stream_lengths(),
        }
        store.save_report("demo", {k: v for k, v in summary.items() if k != "per_symbol"})
    summary["mlflow_run"] = _log_run(deployments, summary, engine)
    return summary


def _log_run(deployments: list[Any], summary: dict[str, Any], engine: Any) -> str:
    """Log the replay as an MLflow run with its equity/drawdown plot, tagged with its model."""
    from registry.runs import log_backtest
    from registry.store import MlflowStore

    ts, equity = engine.tracker.equity_curve()
    champion = deployments[0]
    return log_backtest(
        MlflowStore(),
        f"demo replay {champion.name} v{champion.version}",
        params={
            "dataset": DATASET,
            "fee_bps": FEE_BPS,
            "notional": NOTIONAL_PER_SYMBOL,
            **champion.config,
        },
        summary=summary,
        ts_ns=ts,
        equity=equity,
        tags={"model_name": champion.name, "model_version": champion.version},
    )


def _report(
    lifecycle: dict[str, Any], core: dict[str, Any], flow_seconds: float, total: float
) -> dict[str, Any]:
    from registry.store import MlflowStore

    store = MlflowStore()
    return {
        "lifecycle": {
            "model": lifecycle["model"],
            "version": lifecycle["version"],
            "aliases": lifecycle["aliases"],
            "data_hash": lifecycle["data_hash"],
            "gate": {
                "suite": lifecycle["gate"]["suite"],
                "success": lifecycle["gate"]["success"],
                "rows": lifecycle["gate"]["rows"],
                "expectations": len(lifecycle["gate"]["results"]),
            },
            "loader_rejections": lifecycle["loader_rejections"],
            "seconds": round(flow_seconds, 2),
        },
        "core": core,
        "where": {
            "mlflow_tracking_uri": store.tracking_uri,
            "mlflow_ui": store.ui_command(),
            "redis": core["redis"]["location"],
            "redis_keys": f"{NAMESPACE}:signals, {NAMESPACE}:fills, {NAMESPACE}:positions, ...",
            "prefect_home": os.environ.get("PREFECT_HOME", str(VAR_DIR / "prefect")),
        },
        "seconds": round(total, 2),
    }


def _say(quiet: bool, line: str) -> None:
    if not quiet:
        print(f"==> {line}", flush=True)


def _format(report: dict[str, Any]) -> str:
    life, core, where = report["lifecycle"], report["core"], report["where"]
    gate = life["gate"]
    lines = [
        "",
        "What ran",
        f"  data gate   {gate['suite']}: {gate['rows']} rows, {gate['expectations']} expectations,"
        f" {'passed' if gate['success'] else 'FAILED'}",
        f"  rejected    {len(life['loader_rejections'])} unparsable rows set aside by the loader"
        " (in the dead-letter stream)",
        f"  registered  {life['model']} version {life['version']} (data {life['data_hash'][:12]})",
        f"  aliases     {life['aliases']}",
        "  core ran    "
        + ", ".join(f"{d['name']} v{d['version']} @{d['alias']}" for d in core["deployments"]),
        f"  events      {core['events']} bars replayed in {core['replay_seconds']:.2f} s"
        f" ({core['events'] / max(core['replay_seconds'], 1e-9):,.0f} bars/s)",
        f"  signals     {core['signals']} written to Redis; {core['fills']} paper fills",
        "",
        f"Per symbol (${NOTIONAL_PER_SYMBOL:,.0f} per +1 target, signal at close, "
        f"fill at next open, {FEE_BPS:g} bp fee)",
        f"  {'symbol':<8}{'trades':>7}{'position':>11}{'pnl':>12}{'return':>9}",
    ]
    for row in core["per_symbol"]:
        share = row["pnl"] / NOTIONAL_PER_SYMBOL
        lines.append(
            f"  {row['symbol']:<8}{row['trades']:>7}{row['position']:>11.2f}"
            f"{row['pnl']:>12.2f}{share:>9.1%}"
        )
    lines += [
        "",
        "Portfolio",
        f"  capital       {core['capital']:,.2f} ({NOTIONAL_PER_SYMBOL:,.0f} per symbol)",
        f"  pnl           {core['pnl']:,.2f}",
        f"  total return  {core['total_return']:.2%}",
        f"  sharpe        {core['sharpe']:.2f}",
        f"  max drawdown  {core['max_drawdown']:.2%}",
        "",
        "Where things are",
        f"  MLflow store  {where['mlflow_tracking_uri']}",
        f"  replay run    {core['mlflow_run']} (experiment 'backtests', equity.png)",
        f"  MLflow UI     {where['mlflow_ui']}",
        "                then open http://127.0.0.1:5000",
        f"  Redis         {where['redis']} (keys {where['redis_keys']})",
        f"  repository    {REPO_ROOT}",
        f"  took          {report['seconds']:.1f} s",
    ]
    return "\n".join(lines)
