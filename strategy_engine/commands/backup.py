"""Durability commands: ``backup`` Redis, the MLflow store and Prefect's database together, and
``restore`` them (see :mod:`strategy_engine.backup`)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from strategy_engine.output import print_json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "backup",
        help="copy Redis, the MLflow store and Prefect's database into DIR, with a manifest",
    )
    p.add_argument("dir", metavar="DIR", help="a new or empty folder")
    p.add_argument(
        "--redis-dump-keys",
        action="store_true",
        help="copy Redis key by key (DUMP) even when its snapshot file is readable here",
    )
    p.add_argument("--json", action="store_true", help="print the manifest as JSON")
    p.set_defaults(handler=_backup)

    p = sub.add_parser(
        "restore",
        help="verify a backup's checksums, then put Redis, MLflow and Prefect back",
    )
    p.add_argument("dir", metavar="DIR", help="a folder written by `strategy-engine backup`")
    p.add_argument(
        "--force",
        action="store_true",
        help="restore even while services of `up` run, the embedded Redis is in use or a "
        "core's heartbeat is fresh",
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(handler=_restore)


def _backup(args: argparse.Namespace) -> int:
    from strategy_engine.backup import backup

    echo = _quiet if args.json else print
    result = backup(Path(args.dir), redis_keys=args.redis_dump_keys, echo=echo)
    if args.json:
        print_json(result)
        return 0
    megabytes = result["total_bytes"] / 1e6
    print(
        f"backup in {result['backup']}: {len(result['files'])} files, {megabytes:.1f} MB, "
        f"{result['seconds']:.1f} s"
    )
    return 0


def _restore(args: argparse.Namespace) -> int:
    from strategy_engine.backup import restore

    echo = _quiet if args.json else print
    result = restore(Path(args.dir), force=args.force, echo=echo)
    if args.json:
        print_json(result)
        return 0
    print(
        f"restored the backup of {result['backup_created']} in {result['seconds']:.1f} s"
        f"{' (forced: ' + '; '.join(result['overridden']) + ')' if result['forced'] else ''}"
    )
    _lines("set aside", result["set_aside"])
    _lines("warning", result["warnings"])
    return 0


def _lines(label: str, items: list[Any]) -> None:
    for item in items:
        print(f"  {label}: {item}")


def _quiet(_line: str) -> None:
    pass
