"""``strategy-engine``: one console script, one subcommand per job."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import pkgutil
import sys
from collections.abc import Callable, Sequence

from core.errors import StrategyEngineError
from pipelines.progress import QUIET_ENV
from strategy_engine import commands
from strategy_engine.logs import FORMATS, LEVELS, logging_configured, resolve
from strategy_engine.output import json_stdout

Handler = Callable[[argparse.Namespace], int]

LONG_RUNNING = frozenset({"core", "dashboard"})
"""Commands that run until stopped: their logs are JSON lines by default, for collectors."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    quiet = getattr(args, "json", False)
    before = os.environ.get(QUIET_ENV)
    if quiet:
        os.environ[QUIET_ENV] = "1"  # machines read stdout; no progress bars on stderr either
    try:
        logs = resolve(
            args.log_level,
            args.log_file,
            args.log_format,
            default_fmt="json" if args.command in LONG_RUNNING else "text",
        )
        with (
            logging_configured(logs.level, logs.destination, logs.fmt),
            # One JSON document on stdout, whatever else runs: the rest goes to stderr.
            json_stdout() if quiet else contextlib.nullcontext(),
        ):
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
    _log_options(parser, None)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda i: i.name):
        importlib.import_module(f"{commands.__name__}.{info.name}").register(sub)
    # Also after the command (`strategy-engine core --log-level DEBUG`); suppressed defaults
    # there, so an option given before the command is not overwritten by the command's default.
    for command in sub.choices.values():
        _log_options(command, argparse.SUPPRESS)
    return parser


def _log_options(parser: argparse.ArgumentParser, default: object) -> None:
    g = parser.add_argument_group("logs (stderr by default; see README 'Logs')")
    g.add_argument(
        "--log-level",
        type=str.upper,
        choices=LEVELS,
        default=default,
        help="least severe level logged (default $STRATEGY_ENGINE_LOG_LEVEL or INFO)",
    )
    g.add_argument(
        "--log-file",
        metavar="PATH",
        default=default,
        help="append logs to this file instead of stderr (default $STRATEGY_ENGINE_LOG_FILE)",
    )
    g.add_argument(
        "--log-format",
        choices=FORMATS,
        default=default,
        help="json lines or text (default $STRATEGY_ENGINE_LOG_FORMAT, else json for "
        "long-running commands (core, dashboard), text for the others)",
    )


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, FileNotFoundError) and exc.filename:
        return f"no such file: {exc.filename}"
    return " ".join(str(exc).split()) or type(exc).__name__


if __name__ == "__main__":
    sys.exit(main())
