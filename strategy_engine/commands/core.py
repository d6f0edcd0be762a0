"""The long-running core: ``core``, ``replay`` into the feeds, and ``status``."""

from __future__ import annotations

import argparse
from typing import Any

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
    p.add_argument("--namespace", default="se", help="Redis key prefix")
    p.add_argument(
        "--metrics-port", type=int, default=None, help="serve Prometheus /metrics on 127.0.0.1:PORT"
    )
    p.add_argument("--no-mlflow", action="store_true", help="do not log a finished run to MLflow")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    _ingest_options(p)
    p.set_defaults(handler=_core)

    p = sub.add_parser("replay", help="publish a shipped data set into its feed stream")
    p.add_argument("--dataset", required=True)
    p.add_argument("--speed", type=float, default=None, help="X times real speed (default: max)")
    p.add_argument("--fast", action="store_true", help="a small slice (for tests)")
    p.add_argument("--namespace", default="se")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_replay)

    p = sub.add_parser("status", help="the running core's heartbeat, set, timing, positions")
    p.add_argument("--name", default="core-1")
    p.add_argument("--namespace", default="se")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_status)


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
    )


def _core(args: argparse.Namespace) -> int:
    from core.runtime.service import CoreSettings
    from core.runtime.shard import SymbolShard
    from strategy_engine.core_process import (
        AliasSource,
        LocalStrategies,
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
    )
    with redis_connection() as connection:
        if args.replay:
            connection.client.delete(f"{args.namespace}:md:{args.replay}")
            publish_replay(
                connection, args.replay, namespace=args.namespace, fast=args.fast, quiet=args.json
            )
        summary = run_core(
            settings,
            connection,
            namespace=args.namespace,
            source=source,
            fresh=bool(args.replay),
            metrics_port=args.metrics_port,
            log_to_mlflow=args.until_end and not args.no_mlflow,
        )
    if args.json:
        print_json(summary)
    else:
        for key, value in summary.items():
            print(f"{key:>24}: {value}")
    return 0


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


def _status(args: argparse.Namespace) -> int:
    from strategy_engine.core_process import read_status, redis_connection

    with redis_connection() as connection:
        status = read_status(connection, args.name, args.namespace)
    if status is None:
        raise ConfigError(f"no status from core '{args.name}' in namespace '{args.namespace}'")
    if args.json:
        print_json(status)
    else:
        for key, value in status.items():
            print(f"{key:>18}: {value}")
    return 0
