"""``strategy-engine``: one console script, one subcommand per job."""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
from collections.abc import Callable, Sequence

from core.errors import StrategyEngineError
from pipelines.progress import QUIET_ENV
from strategy_engine import commands

Handler = Callable[[argparse.Namespace], int]


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    quiet = getattr(args, "json", False)
    before = os.environ.get(QUIET_ENV)
    if quiet:
        os.environ[QUIET_ENV] = "1"  # machines read stdout; no progress bars on stderr either
    try:
        return handler(args)
    except (StrategyEngineError, OSError) as exc:
        # Operators get one line naming the problem, never a traceback.
        print(f"strategy-engine {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    finally:
        if quiet and before is None:
            os.environ.pop(QUIET_ENV, None)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="strategy-engine",
        description="Run, retrain and govern trading strategies.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda i: i.name):
        importlib.import_module(f"{commands.__name__}.{info.name}").register(sub)
    return parser


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, FileNotFoundError) and exc.filename:
        return f"no such file: {exc.filename}"
    return " ".join(str(exc).split()) or type(exc).__name__


if __name__ == "__main__":
    sys.exit(main())
