"""``make demo``: the real loop, as an operator runs it, with embedded services, then a report.

1. **Champion**: the demo's tickers' daily bars pass the Great Expectations bars gate;
   ``ma_crossover`` is registered in the MLflow registry and made ``champion`` (the
   ``register-and-promote`` Prefect flow).
2. **Core**: the long-running core (the service ``strategy-engine core`` runs, on a thread)
   loads the champion set from the registry and consumes the first part of a replay of those
   bars published into its Redis Stream feed, writing signals, orders, fills and positions to
   Redis and its status every half second.
3. **Retrain**: the ``retrain`` flow (what ``strategy-engine retrain --strategy ma_crossover``
   runs) gates the data, trains a challenger, scores it and the champion on one held-out
   window, and promotes it or records the refusal; a promotion is a signed reload on the core's
   control channel, and the demo waits until the core's status shows the new version.
4. **Rest of the replay**: the core consumes it with whatever set it runs now, stops at the
   feed's end marker and logs its run with its equity plot to MLflow; the demo reports each
   step's numbers and where everything is, including the Redis data once the embedded server
   has stopped (saved under ``var/redis/``).

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
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from core.ports import DEFAULT_CORE
from strategy_engine.environment import apply_environment_defaults
from strategy_engine.settings import REPO_ROOT, VAR_DIR

DATASET = "equities_daily_stocknet88"
STRATEGY = "ma_crossover"
CONFIG = {"fast_period": 20, "slow_period": 50, "ma_type": "sma", "allow_short": False}
FEE_BPS = 1.0
NOTIONAL_PER_SYMBOL = 10_000.0
NAMESPACE = "demo"
CORE = DEFAULT_CORE
"""The default core's ledger keys carry no core name: ``demo:orders``, ``demo:fills``, ..."""
ALLOWED_REJECTED_ROWS = 3
"""The three all-null Yahoo rows of the shipped tickers (PTR, REX, SNP): the demo accepts that
the loader sets them aside (they go to the dead-letter stream); any more fail the gate."""
FIRST_PART = 0.7
"""The share of the replay's trading days the core consumes before the retrain runs."""
TACTICAL_CYCLE_S = 0.5
"""The core's tactical cycle: how soon it publishes its status and applies a reload."""
WAIT_S = 90.0
"""The longest the demo waits for the core to reach a step before it gives up."""
REDIS_DIR = VAR_DIR / "redis"  # the embedded server's folder: db file, AOF, socket, log
CORE_LOG = VAR_DIR / "log" / "demo-core.log"
TICKERS = 8
"""The first tickers of the data set the demo runs on unless told (``--symbols N``)."""


def run_demo(*, symbols_limit: int | None = None, as_json: bool = False) -> int:
    apply_environment_defaults()
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    started = time.perf_counter()
    # The flows' temporary Prefect server starts in its own process while this one imports
    # Great Expectations and MLflow: on 2 cores that halves the wait for the first flow.
    prefect_server = threading.Thread(target=_start_prefect_server, daemon=True)
    prefect_server.start()

    from core.adapters.redis_server import connect
    from core.adapters.redis_store import RedisStore
    from core.data.datasets import get_dataset
    from core.errors import ValidationGateFailed
    from pipelines.flows import register_and_promote

    symbols = list(get_dataset(DATASET).symbols())[: symbols_limit or TICKERS]
    prefect_server.join()
    _say(as_json, f"1/4 champion: gate {len(symbols)} tickers' bars, register, promote")
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
    lifecycle["seconds"] = time.perf_counter() - started

    with connect(data_dir=REDIS_DIR) as connection:
        # Decided before the flows are pointed at it: a REDIS_URL server outlives the demo.
        kept = _redis_kept(connection.location)
        with _flows_use(connection.url), _core_logs_to(CORE_LOG):
            loop = _run_loop(connection, symbols, quiet=as_json)
        loop["core"]["redis"] = {
            "location": connection.location,
            "namespace": NAMESPACE,
            "streams": loop.pop("streams"),
            "kept": kept,
        }
        report = _report(lifecycle, loop, time.perf_counter() - started)
        RedisStore(connection.client, namespace=NAMESPACE).save_report("demo", _stored(report))
    if as_json:
        from core.codec import dumps

        sys.stdout.write(dumps(report).decode() + "\n")
    else:
        _say(False, "report")
        print(_format(report))
    return 0


def _start_prefect_server() -> None:
    """Start the temporary Prefect server the first flow would start (none if the flows have a
    server: ``PREFECT_API_URL``). A failure here is left to that first flow to report."""
    if os.environ.get("PREFECT_API_URL"):
        return
    with contextlib.suppress(Exception):
        from prefect.server.api.server import SubprocessASGIServer
        from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_EPHEMERAL_ENABLED

        if not PREFECT_API_URL.value() and PREFECT_SERVER_EPHEMERAL_ENABLED.value():
            SubprocessASGIServer().start()


@contextlib.contextmanager
def _flows_use(url: str) -> Iterator[None]:
    """Point the flows at the demo's Redis and namespace, as the stack's environment does: the
    retrain's reload notice (``notify_core``) then reaches the demo's core."""
    wanted = {
        "REDIS_URL": os.environ.get("REDIS_URL") or url,
        "STRATEGY_ENGINE_NAMESPACE": NAMESPACE,
    }
    before = {name: os.environ.get(name) for name in wanted}
    os.environ.update(wanted)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _run_loop(connection: Any, symbols: list[str], *, quiet: bool) -> dict[str, Any]:
    """Steps 2-4: the core on the first part of the replay, the retrain, the rest."""
    from core.adapters.market_streams import FeedPublisher
    from core.adapters.redis_store import RedisStore
    from core.data.feeds import replay_events
    from core.errors import ConfigError
    from pipelines.lifecycle import admit_bars
    from strategy_engine.core_process import checkpoint_marker, live_cores

    store = RedisStore(connection.client, namespace=NAMESPACE)
    alive = live_cores(store)
    if alive:
        raise ConfigError(
            f"a core of namespace '{NAMESPACE}' is running ({', '.join(alive)}): another demo? "
            "Wait for it to end; this one would reset what it reads and writes"
        )
    store.clear()
    checkpoint_marker(NAMESPACE, CORE).unlink(missing_ok=True)  # the last demo's core's
    for symbol, row in admit_bars(DATASET, symbols).rejected:
        store.dead_letter(f"loader:{DATASET}/{symbol}", row.reason, row.raw, key=str(row.line))

    events = replay_events(DATASET, symbols)
    days = sorted({e.ts_event for e in events})
    split_ns = days[int(len(days) * FIRST_PART)]
    first = [e for e in events if e.ts_event < split_ns]
    rest = [e for e in events if e.ts_event >= split_ns]
    capital = NOTIONAL_PER_SYMBOL * len(symbols)
    publisher = FeedPublisher(connection.client, NAMESPACE)
    steps: dict[str, float] = {}

    _say(quiet, f"2/4 core: start it, publish {len(first)} bars into {NAMESPACE}:md:{DATASET}")
    began = time.perf_counter()
    core = CoreThread(connection, capital)
    try:
        # Running before the first bar is published: tick-to-signal is a live core's.
        core.wait_for(lambda s: s["state"] == "running", "its first status")
        publisher.publish(DATASET, first, end=False)
        at_start = core.wait_for(lambda s: _consumed(s) >= len(first), f"{len(first)} bars")
        steps["core_first_part"] = time.perf_counter() - began

        _say(quiet, "3/4 retrain: gate, challenger, evaluation against the champion, decision")
        began = time.perf_counter()
        retrain = _retrain(symbols)
        steps["retrain"] = time.perf_counter() - began
        reload = _await_reload(core, retrain, at_start)
        steps["reload"] = reload["seconds"]

        _say(quiet, f"4/4 core: publish the other {len(rest)} bars and the feed's end")
        began = time.perf_counter()
        publisher.publish(DATASET, rest, end=True)
        summary = core.finish()
        steps["core_rest"] = time.perf_counter() - began
        final = core.status()
    finally:
        core.stop()
    outputs = _outputs(store, split_ns)
    return {
        "replay": {
            "dataset": DATASET,
            "symbols": symbols,
            "feed": f"{NAMESPACE}:md:{DATASET}",
            "events": len(events),
            "first_part": len(first),
            "rest": len(rest),
            "split_ns": split_ns,
        },
        "core": _core_report(summary, at_start, final, capital, outputs),
        "retrain": retrain,
        "reload": reload,
        "steps": steps,
        "streams": store.stream_lengths(),
    }


class CoreThread:
    """The long-running core on a thread of the demo: the service ``strategy-engine core`` runs
    (:func:`strategy_engine.core_process.run_core`), on the demo's feed, reading the registry's
    champion set, until the feed's end marker. Its logs go to ``CORE_LOG``."""

    def __init__(self, connection: Any, capital: float) -> None:
        from core.runtime.service import CoreService, CoreSettings
        from strategy_engine.core_process import AliasSource, checkpoint_marker, run_core

        self.connection = connection
        settings = CoreSettings(
            name=CORE,
            feeds=(DATASET,),
            until_end=True,
            tactical_cycle_s=TACTICAL_CYCLE_S,
            capital=capital,
            notional=NOTIONAL_PER_SYMBOL,
            fee_bps=FEE_BPS,
            checkpoint_marker=checkpoint_marker(NAMESPACE, CORE),
        )
        self.service: CoreService | None = None
        self.summary: dict[str, Any] | None = None
        self.error: BaseException | None = None

        def attach(service: CoreService) -> None:
            self.service = service

        def run() -> None:
            try:
                self.summary = run_core(
                    settings,
                    connection,
                    namespace=NAMESPACE,
                    source=AliasSource("champion"),
                    before_run=attach,
                    log_to_mlflow=True,  # as `strategy-engine core --until-end` does
                )
            except BaseException as exc:  # raised by the demo's thread, in wait_for or finish
                self.error = exc

        self.thread = threading.Thread(target=run, name=f"core {CORE}", daemon=True)
        self.thread.start()

    def status(self) -> dict[str, Any] | None:
        """The core's last published status (``strategy-engine status --namespace demo``)."""
        from strategy_engine.core_process import read_status

        return read_status(self.connection, CORE, NAMESPACE)

    def wait_for(self, condition: Callable[[dict[str, Any]], bool], what: str) -> dict[str, Any]:
        """The core's first published status that satisfies ``condition``."""
        deadline = time.monotonic() + WAIT_S
        while True:
            status = self.status()
            if status is not None and condition(status):
                return status
            if not self.thread.is_alive():
                raise RuntimeError(
                    f"the core stopped before {what}: {self.error!r} (log {CORE_LOG})"
                )
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"the core did not reach {what} in {WAIT_S:.0f} s (log {CORE_LOG})"
                )
            time.sleep(0.05)

    def finish(self) -> dict[str, Any]:
        """The core's summary, once it stopped at the feed's end."""
        self.thread.join(WAIT_S)
        if self.thread.is_alive():
            raise RuntimeError(f"the core did not end in {WAIT_S:.0f} s (log {CORE_LOG})")
        if self.error is not None or self.summary is None:
            raise RuntimeError(f"the core failed: {self.error!r} (log {CORE_LOG})")
        return self.summary

    def stop(self) -> None:
        """Stop the core if it still runs: it finishes its cycle, checkpoints and returns."""
        if self.thread.is_alive() and self.service is not None:
            self.service.request_stop()
        self.thread.join(15)


@contextlib.contextmanager
def _core_logs_to(path: Path) -> Iterator[None]:
    """The core's log records as JSON lines in ``path`` (as ``strategy-engine core`` writes
    them), not among the demo's lines."""
    from strategy_engine.logs import EventJsonFormatter

    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, mode="w", encoding="utf-8")
    handler.setFormatter(EventJsonFormatter())
    loggers = [logging.getLogger(name) for name in ("core", "strategy_engine.core_process")]
    saved = [(lg, list(lg.handlers), lg.level, lg.propagate) for lg in loggers]
    for logger in loggers:
        logger.handlers = [handler]
        logger.setLevel(logging.INFO)
        logger.propagate = False
    try:
        yield
    finally:
        for logger, handlers, level, propagate in saved:
            logger.handlers = handlers
            logger.setLevel(level)
            logger.propagate = propagate
        handler.close()


def _consumed(status: dict[str, Any]) -> int:
    """Feed entries the core has taken: as events, refused at its boundary, or not its own."""
    return int(status["events_in"] + status["events_rejected"] + status["events_skipped"])


def _active(status: dict[str, Any]) -> list[dict[str, Any]]:
    return [{k: d[k] for k in ("name", "version", "alias")} for d in status["active_set"]]


def _retrain(symbols: list[str]) -> dict[str, Any]:
    """What ``strategy-engine retrain --strategy ma_crossover --symbol ... --json`` runs."""
    from pipelines.flows import retrain

    began = time.perf_counter()
    outcome = retrain(strategy=STRATEGY, symbols=symbols, max_rejected_rows=ALLOWED_REJECTED_ROWS)
    shown = {k: v for k, v in outcome.items() if k != "candidates"}
    shown["candidates"] = len(outcome.get("candidates") or [])
    shown["seconds"] = time.perf_counter() - began
    return shown


def _await_reload(
    core: CoreThread, retrain: dict[str, Any], before: dict[str, Any]
) -> dict[str, Any]:
    """After a promotion, wait until the core's status shows the new version running."""
    model = retrain["model"]
    versions = {d["name"]: d["version"] for d in before["active_set"]}
    promoted = bool(retrain["decision"]["promoted"])
    result: dict[str, Any] = {
        "promoted": promoted,
        "model": model,
        "from_version": versions.get(model),
        "to_version": None,
        "seen_in_status": False,
        "seconds": 0.0,
    }
    if not promoted:
        return result
    wanted = retrain["challenger"]["version"]
    began = time.perf_counter()
    status = core.wait_for(
        lambda s: any(d["name"] == model and d["version"] == wanted for d in s["active_set"]),
        f"version {wanted} of {model} in its status",
    )
    result.update(
        to_version=wanted,
        seen_in_status=True,
        seconds=time.perf_counter() - began,
        active_set=_active(status),
        status_reloads=status["reloads"],
        last_control=status["last_control"],
    )
    return result


def _outputs(store: Any, split_ns: int) -> dict[str, Any]:
    """What the core wrote to Redis, counted: by model version, before and after the retrain."""
    signals = store.read_signals()
    fills = store.read_fills()
    positions = store.load_positions()
    trades = Counter(f.symbol for f in fills)
    return {
        "signals": len(signals),
        "orders": len(store.read_orders()),
        "fills": len(fills),
        "signals_by_version": dict(
            sorted(Counter(s.lineage.model_version for s in signals).items())
        ),
        "fills_before_retrain": sum(f.ts_event < split_ns for f in fills),
        "fills_after_retrain": sum(f.ts_event >= split_ns for f in fills),
        "per_symbol": [
            {
                "symbol": symbol,
                "trades": trades.get(symbol, 0),
                "position": positions[symbol].quantity if symbol in positions else 0.0,
            }
            for symbol in sorted(trades.keys() | positions.keys())
        ],
    }


def _core_report(
    summary: dict[str, Any],
    at_start: dict[str, Any],
    final: dict[str, Any] | None,
    capital: float,
    outputs: dict[str, Any],
) -> dict[str, Any]:
    final = final or {}
    return {
        "name": CORE,
        "deployments": _active(at_start),
        "active_set": _active(final) if final else [],
        "events": summary["events_in"],
        "events_rejected": summary["events_rejected"],
        **outputs,
        "reloads": summary["reloads"],
        "capital": capital,
        "pnl": summary["pnl"],
        "total_return": summary["pnl"] / capital,
        "drawdown": final.get("drawdown"),
        "tick_to_signal": summary["tick_to_signal"],
        "mlflow_run": summary.get("mlflow_run"),
        "log": str(CORE_LOG),
    }


def _stored(report: dict[str, Any]) -> dict[str, Any]:
    """The report as stored in Redis for ``python -m strategy_engine.demo``: the core's counts."""
    core = report["core"]
    return {
        "events": core["events"],
        "signals": core["signals"],
        "fills": core["fills"],
        "pnl": core["pnl"],
        "total_return": core["total_return"],
        "deployments": core["deployments"],
        "active_set": core["active_set"],
        "decision": report["retrain"]["decision"],
    }


def _report(lifecycle: dict[str, Any], loop: dict[str, Any], total: float) -> dict[str, Any]:
    from registry.store import MlflowStore

    store = MlflowStore()
    core = loop["core"]
    return {
        "lifecycle": {
            "model": lifecycle["model"],
            "version": lifecycle["version"],
            "aliases": lifecycle["aliases"],
            "decision": lifecycle.get("decision"),
            "data_hash": lifecycle["data_hash"],
            "gate": {
                "suite": lifecycle["gate"]["suite"],
                "success": lifecycle["gate"]["success"],
                "rows": lifecycle["gate"]["rows"],
                "expectations": len(lifecycle["gate"]["results"]),
            },
            "loader_rejections": lifecycle["loader_rejections"],
            "seconds": round(lifecycle["seconds"], 2),
        },
        "replay": loop["replay"],
        "core": core,
        "retrain": loop["retrain"],
        "reload": loop["reload"],
        "steps": {k: round(v, 2) for k, v in loop["steps"].items()},
        "where": {
            "mlflow_tracking_uri": store.tracking_uri,
            "mlflow_ui": store.ui_command(),
            # The server the demo wrote to; an embedded one (the default) is gone once it ends.
            "redis": core["redis"]["location"],
            "redis_keys": f"{NAMESPACE}:signals, {NAMESPACE}:fills, {NAMESPACE}:positions, ...",
            # Where the data is after the demo, and the command that shows it.
            "redis_after_demo": core["redis"]["kept"],
            "redis_inspect": inspect_command(),
            "core_log": str(CORE_LOG),
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
    width = max(len(key) for key in found["keys"]) + 2
    lines += [
        f"  {key:<{width}}{info['type']:<8}{'' if info['size'] is None else info['size']:>8}"
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
    life, replay, core = report["lifecycle"], report["replay"], report["core"]
    retrain, reload, where = report["retrain"], report["reload"], report["where"]
    gate, steps = life["gate"], report["steps"]
    challenger, champion = retrain["challenger"] or {}, retrain["champion"] or {}
    decision = retrain["decision"]
    first = life.get("decision") or {"promoted": True, "reason": "promoted"}
    lines = [
        "",
        f"1. Champion ({life['seconds']:.1f} s)",
        f"  data gate   {gate['suite']}: {gate['rows']} rows, {gate['expectations']} expectations,"
        f" {'passed' if gate['success'] else 'FAILED'}",
        f"  rejected    {len(life['loader_rejections'])} unparsable rows set aside by the loader"
        " (in the dead-letter stream)",
        f"  registered  {life['model']} version {life['version']} (data {life['data_hash'][:12]})",
        f"  decision    {'promoted' if first['promoted'] else 'not promoted'}: {first['reason']}",
        f"  aliases     {life['aliases']}",
        "",
        f"2. Core {core['name']} (the `strategy-engine core` service) on feed {replay['feed']}"
        f" ({steps['core_first_part']:.1f} s)",
        "  running     " + _deployments(core["deployments"]),
        f"  consumed    {replay['first_part']} of {replay['events']} bars"
        f" ({len(replay['symbols'])} tickers) before the retrain",
        "",
        f"3. Retrain ({steps['retrain']:.1f} s): {retrain['candidates']} candidates trained,"
        " challenger and champion scored on one held-out window",
        f"  challenger  v{challenger.get('version')} {_config(challenger.get('config'))}:"
        f" {_scores(challenger.get('test'))}",
        f"  champion    v{champion.get('version')} {_config(champion.get('config'))}:"
        f" {_scores(champion.get('test'))}",
        f"  decision    {'PROMOTED' if decision['promoted'] else 'refused'}: {decision['reason']}",
        f"  recorded    MLflow run {retrain.get('decision_run')} (experiment 'learning',"
        " decision.json)",
    ]
    if reload["seen_in_status"]:
        lines.append(
            f"  reload      the core's status shows v{reload['to_version']} running"
            f" {reload['seconds']:.1f} s after the decision (was v{reload['from_version']};"
            f" {reload['last_control'] or 'registry check'})"
        )
    else:
        lines.append(f"  reload      none: the core keeps v{reload['from_version']}")
    lines += [
        "",
        f"4. Core on the other {replay['rest']} bars, until the feed's end"
        f" ({steps['core_rest']:.1f} s)",
        "  running     " + _deployments(core["active_set"]),
        f"  events      {core['events']} bars in, {core['events_rejected']} refused at the"
        f" boundary; {core['reloads']} reload(s)",
        f"  wrote       {core['signals']} signals "
        f"({', '.join(f'v{v}: {n}' for v, n in core['signals_by_version'].items())}),"
        f" {core['orders']} orders, {core['fills']} fills ({core['fills_before_retrain']} before"
        f" the retrain, {core['fills_after_retrain']} after)",
        f"  latency     tick-to-signal p50 {_ms(core['tick_to_signal'], 'p50')},"
        f" p99 {_ms(core['tick_to_signal'], 'p99')}",
        "",
        f"Per symbol (${NOTIONAL_PER_SYMBOL:,.0f} per +1 target, signal at close, "
        f"fill at next open, {FEE_BPS:g} bp fee)",
        f"  {'symbol':<8}{'trades':>7}{'position':>11}",
    ]
    lines += [
        f"  {row['symbol']:<8}{row['trades']:>7}{row['position']:>11.2f}"
        for row in core["per_symbol"]
    ]
    lines += [
        "",
        "Portfolio",
        f"  capital       {core['capital']:,.2f} ({NOTIONAL_PER_SYMBOL:,.0f} per symbol)",
        f"  pnl           {core['pnl']:,.2f}",
        f"  total return  {core['total_return']:.2%}",
        "",
        "Where things are",
        f"  MLflow store  {where['mlflow_tracking_uri']}",
        f"  core run      {core['mlflow_run']} (experiment 'core-runs', equity.png)",
        f"  MLflow UI     {where['mlflow_ui']}",
        "                then open http://127.0.0.1:5000",
        f"  Redis         {where['redis_after_demo']}",
        f"                keys {where['redis_keys']}",
        f"                look at them: {where['redis_inspect']}",
        f"  core log      {where['core_log']}",
        f"  repository    {REPO_ROOT}",
        f"  took          {report['seconds']:.1f} s",
    ]
    return "\n".join(lines)


def _deployments(deployments: list[dict[str, Any]]) -> str:
    return ", ".join(f"{d['name']} v{d['version']} @{d['alias']}" for d in deployments)


def _config(config: dict[str, Any] | None) -> str:
    if not config:
        return ""
    return "(" + ", ".join(f"{k} {v}" for k, v in config.items()) + ")"


def _scores(test: dict[str, Any] | None) -> str:
    if not test:
        return "-"
    return (
        f"Sharpe {test.get('sharpe', float('nan')):.3f}, return {test.get('total_return', 0.0):.2%}"
    )


def _ms(summary: dict[str, Any], key: str) -> str:
    value = summary.get(f"{key}_us")
    return "-" if value is None else f"{value / 1000:.1f} ms"


if __name__ == "__main__":
    sys.exit(main())
