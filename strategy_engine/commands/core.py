"""The long-running core: ``core``, ``replay`` into the feeds, and ``status``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from core.codec import dumps
from core.errors import ConfigError
from strategy_engine.output import print_json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("core", help="run the core on live feeds (until stopped) or a replay")
    p.add_argument("--name", default="core-1", help="core name: its consumer group and state")
    p.add_argument("--feed", action="append", default=[], help="feed (data set) to consume")
    p.add_argument("--replay", metavar="DATASET", help="publish DATASET into its feed first")
    p.add_argument("--until-end", action="store_true", help="stop when every feed has ended")
    p.add_argument("--fast", action="store_true", help="replay a small slice (for tests)")
    p.add_argument("--set", dest="alias", default="champion", help="registry alias to run")
    p.add_argument(
        "--strategies",
        help="comma-separated types to run with default configs instead of the registry set",
    )
    p.add_argument("--shadow", default="", help="model to run parameter variants of, in shadow")
    p.add_argument("--variants", type=int, default=8, help="how many shadow variants (2-16)")
    p.add_argument(
        "--symbols", default="", help="only these symbols (A,B,...): cores can split a universe"
    )
    p.add_argument("--shard", default="", help="only hash partition K of N of the symbols (K/N)")
    p.add_argument(
        "--batch-forms",
        choices=("auto", "always", "never"),
        default="auto",
        help="update many symbols per numpy call where a type has a batch form (same results)",
    )
    p.add_argument("--fast-cycle-ms", type=float, default=100.0)
    p.add_argument("--tactical-cycle-s", type=float, default=1.0)
    p.add_argument(
        "--namespace",
        default=None,
        help="Redis key prefix (default 'se'; 'replay' with --replay, apart from live cores)",
    )
    p.add_argument(
        "--reset",
        action="store_true",
        help="with --replay: reset the namespace even while a core there is running",
    )
    p.add_argument(
        "--resume-from",
        default="",
        metavar="start|end|ID",
        help="a core whose checkpoint is gone: read its feeds from the start, only new "
        "entries, or from a stream entry id (without it such a core refuses to start)",
    )
    p.add_argument(
        "--feed-retention-s",
        type=float,
        default=3600.0,
        help="trim feed entries every core has acknowledged once older than this (0: never)",
    )
    p.add_argument(
        "--ledger-retention-days",
        type=float,
        default=30.0,
        help="orders and fills older than this move to Parquet files, a file per day (0: keep)",
    )
    p.add_argument("--archive-dir", default=None, help="where (default var/archive)")
    p.add_argument(
        "--allow-volatile-redis",
        action="store_true",
        help="run on a Redis that persists nothing (a throwaway test server)",
    )
    p.add_argument(
        "--metrics-port", type=int, default=None, help="serve Prometheus /metrics on 127.0.0.1:PORT"
    )
    p.add_argument("--no-mlflow", action="store_true", help="do not log a finished run to MLflow")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument(
        "--progress-interval",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="log a core_progress record this often, in wall seconds (0: never)",
    )
    _ingest_options(p)
    _risk_options(p)
    _venue_options(p)
    p.set_defaults(handler=_core)

    p = sub.add_parser("replay", help="publish a shipped data set into its feed stream")
    p.add_argument("--dataset", required=True)
    p.add_argument("--speed", type=float, default=None, help="X times real speed (default: max)")
    p.add_argument("--fast", action="store_true", help="a small slice (for tests)")
    p.add_argument("--namespace", default="se")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_replay)

    p = sub.add_parser("halt", help="stop the cores of a namespace from opening risk (signed)")
    p.add_argument("--flatten", action="store_true", help="also close every position now")
    p.add_argument("--reason", default="operator halt", help="recorded with the halt")
    p.add_argument("--namespace", default="se")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_halt)

    p = sub.add_parser("resume", help="let the cores of a namespace trade again (signed)")
    p.add_argument("--namespace", default="se")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_resume)

    p = sub.add_parser("status", help="the running core's heartbeat, set, timing, positions")
    p.add_argument("--name", default="core-1")
    p.add_argument("--namespace", default="se")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_status)


# Risk flags: (option, RiskLimits field, type, help). Unset flags keep the risk file's value,
# or the conservative default for the core's capital and notional.
_RISK_FLAGS: tuple[tuple[str, str, type, str], ...] = (
    ("--max-position", "max_position", float, "largest |position| per symbol, in units"),
    ("--max-order-quantity", "max_order_quantity", float, "largest quantity of one order"),
    ("--max-order-notional", "max_order_notional", float, "largest quantity x price of one order"),
    ("--max-gross-exposure", "max_gross_exposure", float, "largest sum of |position| x price"),
    ("--max-net-exposure", "max_net_exposure", float, "largest |sum of position x price|"),
    ("--max-orders-per-second", "max_orders_per_second", int, "accepted orders per event second"),
    ("--max-drawdown", "max_drawdown", float, "halt and flatten past this fall from the peak"),
    ("--max-daily-loss", "max_daily_loss", float, "halt and flatten past this loss in a day"),
    ("--price-band", "price_band", float, "fill only within this fraction of the decision price"),
)
MAX_RISK_FILE_BYTES = 64 * 1024


def _risk_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group(
        "risk (always on: conservative limits scaled to --capital and --notional by default)"
    )
    g.add_argument("--capital", type=float, default=1_000_000.0, help="account capital")
    g.add_argument(
        "--notional", type=float, default=10_000.0, help="money per +1 of a strategy's target"
    )
    g.add_argument("--fee-bps", type=float, default=1.0, help="fee per fill, bps of notional")
    g.add_argument(
        "--risk-file",
        help="JSON object of risk limits (core.risk.RiskLimits fields; null turns one off)",
    )
    for option, _, kind, help_text in _RISK_FLAGS:
        g.add_argument(option, type=kind, default=None, help=help_text)


def _venue_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("paper venue (how orders fill; --fee-bps above prices bar fills)")
    g.add_argument(
        "--units",
        type=float,
        default=0.0,
        help="units of the instrument per +1 of a target, whatever its price (a backtest's "
        "one-unit contract); 0 (default): --notional of money per +1",
    )
    g.add_argument(
        "--taker-latency-ms",
        type=float,
        default=5.0,
        help="decision to arrival of a taker order at the venue (latency arbitrage)",
    )
    g.add_argument(
        "--carry-fee-bps",
        type=float,
        default=5.0,
        help="fee per fill of a funding-carry leg, bps of its notional",
    )
    g.add_argument(
        "--cycle-fee-bps",
        type=float,
        default=0.0,
        help="fee per pair traded in a currency cycle, bps of its notional",
    )


def risk_limits(args: argparse.Namespace) -> Any:
    """The core's limits: conservative defaults, then the risk file, then the flags."""
    from pathlib import Path

    from core.codec import loads
    from core.errors import MessageError
    from core.risk import RiskLimits

    for name in ("capital", "notional"):
        value = getattr(args, name)
        if not (value > 0 and value < float("inf")):
            raise ConfigError(f"--{name} must be a positive number, was {value}")
    limits = RiskLimits.conservative(capital=args.capital, notional=args.notional).to_dict()
    if args.risk_file:
        path = Path(args.risk_file)
        raw = _read_option_file("--risk-file", path, MAX_RISK_FILE_BYTES)
        try:
            overrides = loads(raw)
        except MessageError as exc:
            raise ConfigError(f"--risk-file {path}: {exc}") from None
        if not isinstance(overrides, dict):
            raise ConfigError(f"--risk-file {path}: expected a JSON object of limits")
        limits.update(overrides)
    for _, name, _, _ in _RISK_FLAGS:
        value = getattr(args, name)
        if value is not None:
            limits[name] = value
    return RiskLimits.from_dict(limits)


def _ingest_options(p: argparse.ArgumentParser) -> None:
    """The ingestion boundary's bounds (core.runtime.ingest.IngestLimits), defaults shown."""
    from core.runtime.ingest import DAY_NS, SECOND_NS, IngestLimits

    d = IngestLimits()
    g = p.add_argument_group("ingestion boundary (what a feed entry may be)")
    g.add_argument(
        "--live",
        action="store_true",
        help="live feeds: also refuse events older than --max-staleness-s against the clock",
    )
    g.add_argument("--max-staleness-s", type=float, default=d.max_staleness_ns / SECOND_NS)
    g.add_argument(
        "--max-clock-skew-s",
        type=float,
        default=d.max_clock_skew_ns / SECOND_NS,
        help="how far ahead of this machine's clock an event time or t_pub may be",
    )
    g.add_argument(
        "--max-time-jump-days",
        type=float,
        default=d.max_time_jump_ns / DAY_NS,
        help="how far past the feed's newest time an event may jump",
    )
    g.add_argument(
        "--max-price-jump",
        type=float,
        default=d.max_price_jump,
        help="refuse a price beyond this multiple (or its inverse) of the last good one",
    )
    g.add_argument("--max-price", type=float, default=d.max_price, help="largest price taken")
    g.add_argument("--max-size", type=float, default=d.max_size, help="largest size/volume taken")
    g.add_argument(
        "--universe",
        default="",
        help="the symbols this core trades (A,B,... or @FILE, one per line); others refused",
    )
    g.add_argument(
        "--max-symbols",
        type=int,
        default=d.max_symbols,
        help="without --universe: distinct symbols taken at most (new ones past it refused)",
    )


def _ingest_limits(args: argparse.Namespace) -> Any:
    from core.runtime.ingest import DAY_NS, INT64_MAX, SECOND_NS, IngestLimits

    def ns(option: str, value: float, unit: int) -> int:
        if not 0 <= value * unit <= INT64_MAX:  # also refuses nan
            raise ConfigError(f"--{option} must be a non-negative duration, was {value}")
        return int(value * unit)

    return IngestLimits(
        live=args.live,
        max_staleness_ns=ns("max-staleness-s", args.max_staleness_s, SECOND_NS),
        max_clock_skew_ns=ns("max-clock-skew-s", args.max_clock_skew_s, SECOND_NS),
        max_time_jump_ns=ns("max-time-jump-days", args.max_time_jump_days, DAY_NS),
        max_price_jump=args.max_price_jump,
        max_price=args.max_price,
        max_size=args.max_size,
        universe=_universe(args.universe),
        max_symbols=args.max_symbols,
    )


MAX_UNIVERSE_FILE_BYTES = 4 * 1024 * 1024


def _read_option_file(option: str, path: Path, max_bytes: int) -> bytes:
    """A file named by an option: a regular file, read with a bound on its size."""
    if not path.is_file():
        raise ConfigError(f"{option} {path}: not a regular file")
    with path.open("rb") as handle:
        raw = handle.read(max_bytes + 1)
    if len(raw) > max_bytes:
        raise ConfigError(f"{option} {path}: larger than {max_bytes} bytes")
    return raw


def _universe(spec: str) -> frozenset[str]:
    """``A,B,...`` or ``@FILE`` (one symbol per line, ``#`` comments) as a set of symbols."""
    from pathlib import Path

    if not spec.startswith("@"):
        return frozenset(s.strip() for s in spec.split(",") if s.strip())
    path = Path(spec[1:])
    raw = _read_option_file("--universe", path, MAX_UNIVERSE_FILE_BYTES)
    lines = raw.decode("utf-8", errors="replace").splitlines()
    return frozenset(s for line in lines if (s := line.split("#", 1)[0].strip()))


def _core(args: argparse.Namespace) -> int:
    from core.adapters.redis_store import RedisStore
    from core.runtime.service import CoreSettings
    from core.runtime.shard import SymbolShard
    from strategy_engine.core_process import (
        AliasSource,
        LocalStrategies,
        checkpoint_marker,
        forget,
        publish_replay,
        redis_connection,
        run_core,
    )

    feeds = tuple(args.feed) + ((args.replay,) if args.replay else ())
    if not feeds:
        raise ConfigError("core needs a --feed to read or a --replay DATASET")
    source = (
        LocalStrategies(tuple(t.strip() for t in args.strategies.split(",") if t.strip()))
        if args.strategies
        else AliasSource(args.alias)
    )
    settings = CoreSettings(
        name=args.name,
        feeds=feeds,
        fast_cycle_s=args.fast_cycle_ms / 1000.0,
        tactical_cycle_s=args.tactical_cycle_s,
        until_end=args.until_end,
        shadow_of=args.shadow,
        shadow_variants=args.variants if args.shadow else 0,
        batch_forms=args.batch_forms,
        shard=SymbolShard.parse(args.symbols, args.shard),
        ingest=_ingest_limits(args),
        capital=args.capital,
        notional=args.notional,
        fee_bps=args.fee_bps,
        units=args.units,
        taker_latency_ms=args.taker_latency_ms,
        carry_fee_bps=args.carry_fee_bps,
        cycle_fee_bps=args.cycle_fee_bps,
        risk=risk_limits(args),
        resume_from=args.resume_from,
        feed_retention_s=args.feed_retention_s,
        allow_volatile_redis=args.allow_volatile_redis,
        progress_every_s=_interval("progress-interval", args.progress_interval),
    )
    namespace = args.namespace or ("replay" if args.replay else "se")
    marker = checkpoint_marker(namespace, settings.name)
    settings = settings.replace(checkpoint_marker=marker)
    with redis_connection() as connection:
        if args.replay:
            store = RedisStore(connection.client, namespace, core=settings.name)
            # Refuses beside a running core.
            forget(store, feeds, reset_live=args.reset, marker=marker)
            connection.client.delete(f"{namespace}:md:{args.replay}")
            publish_replay(
                connection, args.replay, namespace=namespace, fast=args.fast, quiet=args.json
            )
        summary = run_core(
            settings,
            connection,
            namespace=namespace,
            source=source,
            # A replay's reset was done above, before its feed was published again.
            metrics_port=args.metrics_port,
            log_to_mlflow=args.until_end and not args.no_mlflow,
            ledger_retention_days=args.ledger_retention_days or None,
            archive_dir=Path(args.archive_dir) if args.archive_dir else None,
        )
    if args.json:
        print_json(summary)
    else:
        print_fields(summary, width=24)
    return 0


def print_fields(result: dict[str, Any], *, width: int) -> None:
    """One ``key: value`` line per field for people; a nested value as JSON (a Python repr
    of a dict is neither JSON nor friendly to read)."""
    for key, value in result.items():
        shown = dumps(value).decode() if isinstance(value, dict | list | tuple) else value
        print(f"{key:>{width}}: {shown}")


def _interval(option: str, value: float) -> float:
    if not 0 <= value < float("inf"):  # also refuses nan
        raise ConfigError(f"--{option} must be a non-negative number of seconds, was {value}")
    return value


def _replay(args: argparse.Namespace) -> int:
    from strategy_engine.core_process import publish_replay, redis_connection

    with redis_connection() as connection:
        count = publish_replay(
            connection,
            args.dataset,
            namespace=args.namespace,
            speed=args.speed,
            fast=args.fast,
            quiet=args.json,
        )
    result = {
        "dataset": args.dataset,
        "events": count,
        "feed": f"{args.namespace}:md:{args.dataset}",
    }
    if args.json:
        print_json(result)
    else:
        print(f"published {count} events of {args.dataset} to {result['feed']}")
    return 0


def _halt(args: argparse.Namespace) -> int:
    return _send(args, {"action": "halt", "flatten": args.flatten, "reason": args.reason})


def _resume(args: argparse.Namespace) -> int:
    return _send(args, {"action": "resume"})


def _send(args: argparse.Namespace, message: dict[str, Any]) -> int:
    """Publish a signed control message; the cores apply it and record it in their audit."""
    from core.adapters.redis_store import RedisStore
    from strategy_engine.core_process import redis_connection

    with redis_connection() as connection:
        received = RedisStore(connection.client, args.namespace).publish_control(message)
    result = {"action": message["action"], "namespace": args.namespace, "cores": received}
    if args.json:
        print_json(result)
    else:
        print(f"{message['action']} sent to {received} core(s) of namespace {args.namespace}")
    return 0 if received else 1


def _status(args: argparse.Namespace) -> int:
    from strategy_engine.core_process import read_status, redis_connection

    with redis_connection() as connection:
        status = read_status(connection, args.name, args.namespace)
    if status is None:
        raise ConfigError(f"no status from core '{args.name}' in namespace '{args.namespace}'")
    if args.json:
        print_json(status)
    else:
        print_fields(status, width=18)
    return 0
