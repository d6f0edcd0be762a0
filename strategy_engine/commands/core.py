"""The long-running core: ``core``, ``replay`` into the feeds, and ``status``."""

from __future__ import annotations

import argparse

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
