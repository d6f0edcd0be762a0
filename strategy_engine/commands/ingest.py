"""Data commands: ingest the drop folder once (``ingest``)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from strategy_engine.output import print_json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "ingest",
        help="gate the new bar files of the drop folder and add the rows that pass to the store",
    )
    p.add_argument(
        "--inbox",
        type=Path,
        default=None,
        metavar="DIR",
        help="the drop folder, one sub-folder per data set (default $STRATEGY_ENGINE_INBOX, "
        "else var/inbox)",
    )
    p.add_argument(
        "--dataset",
        action="append",
        default=[],
        metavar="NAME",
        help="only this data set's folder (repeatable; default: every folder of the inbox)",
    )
    p.add_argument(
        "--max-file-bytes",
        type=int,
        default=None,
        metavar="N",
        help="refuse larger files unread (default 64 MiB)",
    )
    p.add_argument("--json", action="store_true", help="print the outcome as JSON")
    p.set_defaults(handler=_ingest)


def _ingest(args: argparse.Namespace) -> int:
    """Exit 0 when every file was accepted (or there was none), 1 when one was rejected."""
    from strategy_engine.environment import apply_environment_defaults

    apply_environment_defaults()  # before Prefect is imported; the stack's Redis for counts
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    from pipelines.ingest import MAX_FILE_BYTES, ingest_inbox

    limit = MAX_FILE_BYTES if args.max_file_bytes is None else args.max_file_bytes
    outcome = ingest_inbox(args.inbox, args.dataset or None, max_file_bytes=limit)
    if args.json:
        print_json(outcome)
    else:
        print(f"inbox: {outcome['inbox']}  store: {outcome['store']}")
        for item in outcome["files"]:
            verdict = "accepted" if item["accepted"] else "REJECTED"
            print(f"{verdict}  {item['dataset']}/{item['file']}: {item['reason']}")
            if item["report_file"]:
                print(f"          report: {item['report_file']}")
        print(
            f"{outcome['accepted']} accepted, {outcome['rejected']} rejected, "
            f"{outcome['new_rows']} new rows"
        )
    return 1 if outcome["rejected"] else 0
