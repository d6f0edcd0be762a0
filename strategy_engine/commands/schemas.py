"""``schemas``: the JSON Schemas of the contracts between processes and tiers
(:mod:`core.messages`)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "schemas",
        help="write or check the JSON Schemas of the messages between processes (docs/schemas)",
    )
    action = p.add_mutually_exclusive_group()
    action.add_argument("--write", action="store_true", help="regenerate the schema files")
    action.add_argument(
        "--check", action="store_true", help="exit 1 naming each file that is out of date"
    )
    p.add_argument(
        "folder", nargs="?", type=Path, default=Path("docs") / "schemas",
        help="where the files are (default docs/schemas)",
    )  # fmt: skip
    p.set_defaults(handler=_schemas)


def _schemas(args: argparse.Namespace) -> int:
    from core.messages.__main__ import main

    flags = ["--write"] if args.write else ["--check"] if args.check else []
    return main([*flags, str(args.folder)])
