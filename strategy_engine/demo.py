"""``make demo``: the whole lifecycle on real data with embedded services, then a report.

1. Validate the 88 stocknet tickers' daily bars with the Great Expectations bars gate,
   register ``ma_crossover`` in the MLflow registry and make it ``champion`` (a Prefect flow).
2. Start the core: it loads the champion set from the registry (never importing MLflow
   itself), replays the bars on a simulated clock, writes every signal, order and fill to
   Redis as JSON, paper-fills at the next open and tracks performance.
3. Print what ran and where everything is, including where the Redis data is once the demo
   has ended: the embedded server stops with it, its data saved under ``var/redis/``.

``python -m strategy_engine.demo [--json]`` shows what the last demo left in Redis afterwards:
the keys of its namespace, its stored report and its last signals and fills (it restarts the
embedded server on the saved data for the look, or reads ``REDIS_URL``'s server).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

from pipelines.progress import progress
from strategy_engine.environment import apply_environment_defaults
from strategy_engine.settings import REPO_ROOT, VAR_DIR

DATASET = "equities_daily_stocknet88"
STRATEGY = "ma_crossover"
CONFIG = {"fast_period": 20, "slow_period": 50, "ma_type": "sma", "allow_short": False}
FEE_BPS = 1.0
NOTIONAL_PER_SYMBOL = 10_000.0
NAMESPACE = "demo"
ALLOWED_REJECTED_ROWS = 3
"""The three all-null Yahoo rows of the shipped tickers (PTR, REX, SNP): the demo accepts that
the loader sets them aside (they go to the dead-letter stream); any more fail the gate."""
REDIS_DIR = VAR_DIR / "redis"  # the embedded server's folder: db file, AOF, socket, log


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
            strategy=STRATEGY,
            config=CONFIG,
            dataset=DATASET,
            symbols=symbols,
            max_rejected_rows=ALLOWED_REJECTED_ROWS,
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
    from core.engine.venue import Venue
    from pipelines.lifecycle import admit_bars
    from registry import MlflowStrategySource, StrategyRegistry

    deployments = MlflowStrategySource(StrategyRegistry()).load_active_set("champion")
    admitted = admit_bars(DATASET, symbols)
    with connect(data_dir=REDIS_DIR) as connection:
        store = RedisStore(connection.client, namespace=NAMESPACE)
        store.clear()
        for symbol, row in admitted.rejected:
            store.dead_letter(f"loader:{DATASET}/{symbol}", row.reason, row.raw, key=str(row.line))
        capital = NOTIONAL_PER_SYMBOL * len(admitted.frames)
        engine = TradingEngine(
            deployments,
            venue=Venue(bars=BarFillModel(fee_bps=FEE_BPS)),
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
        # Decided while connected, as connect() did: a REDIS_URL server outlives the demo.
        summary["redis"]["kept"] = _redis_kept(connection.location)
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
            # The server the demo wrote to; an embedded one (the default) is gone once it ends.
            "redis": core["redis"]["location"],
            "redis_keys": f"{NAMESPACE}:signals, {NAMESPACE}:fills, {NAMESPACE}:positions, ...",
            # Where the data is after the demo, and the command that shows it.
            "redis_after_demo": core["redis"]["kept"],
            "redis_inspect": inspect_command(),
            "prefect_home": os.environ.get("PREFECT_HOME", str(VAR_DIR / "prefect")),
        },
        "seconds": round(total, 2),
    }


def _redis_kept(location: str) -> str:
    """Where the demo's Redis data is once the demo has ended, in one line."""
    if os.environ.get("REDIS_URL"):
        return f"in the Redis server at {location} (namespace {NAMESPACE!r})"
    if "of another process" in location:  # connect() attached to a server it did not start
        return f"in the embedded server another process runs on {REDIS_DIR}, saved there"
    return (
        f"saved in {REDIS_DIR} (redis.db, appendonly.aof); the embedded server stopped with the"
        " demo"
    )


def inspect_command() -> str:
    """The command that shows the last demo's Redis data (this module's ``main``)."""
    python = Path(sys.executable)
    # Relative when the virtualenv is in the working folder (.venv/bin/python), else absolute.
    with contextlib.suppress(ValueError):
        python = python.relative_to(Path.cwd())
    return f"{python} -m strategy_engine.demo"


def inspect(*, count: int = 3) -> dict[str, Any]:
    """What the last demo left in Redis: its keys with type and size, its stored report, and its
    last ``count`` signals and fills."""
    import msgspec

    from core.adapters.redis_server import connect
    from core.adapters.redis_store import RedisStore

    sizes = {"stream": "xlen", "hash": "hlen", "set": "scard", "list": "llen", "zset": "zcard"}
    with connect(data_dir=REDIS_DIR) as connection:
        store = RedisStore(connection.client, namespace=NAMESPACE)
        keys: dict[str, dict[str, Any]] = {}
        for raw in sorted(connection.client.scan_iter(match=f"{NAMESPACE}:*", count=1000)):
            kind = connection.client.type(raw).decode()  # type: ignore[union-attr]
            size = getattr(connection.client, sizes[kind])(raw) if kind in sizes else None
            keys[raw.decode()] = {"type": kind, "size": size}
        return {
            "redis": connection.location,
            "namespace": NAMESPACE,
            "keys": keys,
            "report": store.load_report("demo"),
            "signals": msgspec.to_builtins(store.read_signals(count)),
            "fills": msgspec.to_builtins(store.read_fills()[-count:]),
        }


def _format_inspection(found: dict[str, Any]) -> str:
    from core.codec import dumps

    if not found["keys"]:
        return f"No {NAMESPACE}:* keys in {found['redis']}: run `make demo` first."
    source = found["redis"]
    if not os.environ.get("REDIS_URL"):
        source = f"the files in {REDIS_DIR}, through an embedded server run for this look only"
    lines = [f"The last demo's Redis data, read from {source}", ""]
    lines += [
        f"  {key:<28}{info['type']:<8}{'' if info['size'] is None else info['size']:>8}"
        for key, info in found["keys"].items()
    ]
    report = found["report"] or {}
    if report:
        lines += [
            "",
            f"Report ({NAMESPACE}:reports, field 'demo'): {report.get('events')} bars,"
            f" {report.get('signals')} signals, {report.get('fills')} fills,"
            f" pnl {report.get('pnl', 0.0):,.2f}",
        ]
    for name in ("signals", "fills"):
        lines += ["", f"Last {len(found[name])} {name}:"]
        lines += [f"  {dumps(item).decode()}" for item in found[name]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``python -m strategy_engine.demo [--json] [--count N]``: the last demo's Redis data."""
    parser = argparse.ArgumentParser(
        prog="python -m strategy_engine.demo",
        description="Show what the last `make demo` left in Redis (run `make demo` to run it).",
    )
    parser.add_argument("--count", type=int, default=3, help="how many signals and fills")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    apply_environment_defaults()  # the stack's REDIS_URL while it runs, as for the demo
    found = inspect(count=max(args.count, 0))
    if args.json:
        from core.codec import dumps

        sys.stdout.write(dumps(found).decode() + "\n")
    else:
        print(_format_inspection(found))
    return 0


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
        f"  Redis         {where['redis_after_demo']}",
        f"                keys {where['redis_keys']}",
        f"                look at them: {where['redis_inspect']}",
        f"  repository    {REPO_ROOT}",
        f"  took          {report['seconds']:.1f} s",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
