"""``python -m core.messages [--write | --check] [FOLDER]``: the contracts' JSON Schemas.

``--write`` regenerates ``FOLDER/<name>.json`` (default ``docs/schemas``); ``--check`` exits 1
naming the files that differ from the code; with neither, the names are listed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from core.messages import SCHEMAS, stale_schemas, write_schemas

DEFAULT_FOLDER = Path("docs") / "schemas"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core.messages", description=__doc__)
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--write", action="store_true", help="regenerate the schema files")
    action.add_argument("--check", action="store_true", help="fail if a file is out of date")
    parser.add_argument("folder", nargs="?", type=Path, default=DEFAULT_FOLDER)
    args = parser.parse_args(argv)
    if args.write:
        for path in write_schemas(args.folder):
            print(path)
        return 0
    if args.check:
        stale = stale_schemas(args.folder)
        for name in stale:
            print(f"{args.folder / name}.json is out of date", file=sys.stderr)
        return 1 if stale else 0
    for name in SCHEMAS:
        print(name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
