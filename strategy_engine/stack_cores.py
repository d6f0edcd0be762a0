"""Which cores the stack of ``strategy-engine up`` runs: one by default, or those of a file.

A cores file is TOML, one ``[[core]]`` table per core::

    # cores.toml: two cores splitting the symbols, both on the champion set
    [[core]]
    name = "core-1"
    args = ["--shard", "0/2"]

    [[core]]
    name = "core-2"
    args = ["--shard", "1/2", "--max-drawdown", "0.05"]

``args`` are options of ``strategy-engine core``, checked against its parser before anything
starts. Without a file the stack runs ``core-1`` on the ``equities_daily_stocknet88`` feed
(fill it with ``strategy-engine replay --dataset equities_daily_stocknet88``). The stack sets
``--name`` and ``--metrics-port`` itself, and a supervised core runs until it is stopped, so
the options that make a core end or start from scratch (``--replay``, ``--until-end``,
``--fast``, ``--reset``, ``--json``) are refused.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from core.config import FrozenConfig, require
from core.errors import ConfigError

DEFAULT_CORE = "core-1"
DEFAULT_FEED = "equities_daily_stocknet88"
MAX_CORES = 32
MAX_CORES_FILE_BYTES = 64 * 1024
SET_BY_THE_STACK = ("--name", "--metrics-port")
NOT_SUPERVISABLE = ("--replay", "--until-end", "--fast", "--reset", "--json")


class CoreSpec(FrozenConfig, frozen=True, kw_only=True):
    """One supervised core: its name (consumer group, state keys) and its ``core`` options."""

    name: str = DEFAULT_CORE
    args: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        require(0 < len(self.name) <= 64, f"a core's name is 1 to 64 characters, was {self.name!r}")
        require(
            all(c.isalnum() or c in "-_" for c in self.name),
            f"a core's name is letters, digits, - and _: {self.name!r}",
        )
        for arg in self.args:
            option = arg.split("=", 1)[0]
            require(
                option not in SET_BY_THE_STACK,
                f"core {self.name}: {option} is set by the stack, not the file",
            )
            require(
                option not in NOT_SUPERVISABLE,
                f"core {self.name}: {option} makes a core end or start over; a supervised "
                "core runs until stopped",
            )
        _check_options(self.name, self.args)


def default_cores() -> tuple[CoreSpec, ...]:
    """Without a cores file: one core on the equities feed, running the champion set."""
    return (CoreSpec(name=DEFAULT_CORE, args=("--feed", DEFAULT_FEED)),)


def load_cores(path: Path) -> tuple[CoreSpec, ...]:
    """Read a cores file; every problem is a :class:`ConfigError` naming the file.

    Raises
    ------
    ConfigError
        If the file is too large, not TOML, has no ``[[core]]``, repeats a name, or a core's
        options are not ``strategy-engine core`` options.
    """
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cores file {path}: {exc.strerror or exc}") from None
    if len(raw) > MAX_CORES_FILE_BYTES:
        raise ConfigError(f"cores file {path} is larger than {MAX_CORES_FILE_BYTES} bytes")
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cores file {path} is not TOML: {exc}") from None
    tables = data.get("core")
    if not isinstance(tables, list) or not tables:
        raise ConfigError(f"cores file {path} has no [[core]] table")
    if len(tables) > MAX_CORES:
        raise ConfigError(f"cores file {path}: at most {MAX_CORES} cores")
    cores = tuple(_spec(table, path) for table in tables)
    names = [c.name for c in cores]
    if len(set(names)) != len(names):
        raise ConfigError(f"cores file {path}: each core needs a name of its own ({names})")
    return cores


def _spec(table: Any, path: Path) -> CoreSpec:
    if not isinstance(table, dict):
        raise ConfigError(f"cores file {path}: each [[core]] is a table")
    unknown = set(table) - {"name", "args"}
    if unknown:
        raise ConfigError(f"cores file {path}: unknown key(s) {sorted(unknown)} in [[core]]")
    name = table.get("name", DEFAULT_CORE)
    args = table.get("args", [])
    if not isinstance(name, str):
        raise ConfigError(f"cores file {path}: a core's name is a string")
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        raise ConfigError(f"cores file {path}: core {name}'s args are a list of strings")
    return CoreSpec(name=name, args=tuple(args))


def _check_options(name: str, args: tuple[str, ...]) -> None:
    """Parse ``args`` with the ``core`` command's own parser, so a typo fails now."""
    import argparse
    import contextlib
    import io

    from strategy_engine.cli import build_parser

    parser = build_parser()
    errors = io.StringIO()
    try:
        with contextlib.redirect_stderr(errors), contextlib.redirect_stdout(errors):
            parser.parse_args(["core", *args])
    except SystemExit:
        reason = errors.getvalue().strip().splitlines()[-1:] or ["invalid options"]
        raise ConfigError(f"core {name}: {reason[0]}") from None
    except argparse.ArgumentError as exc:
        raise ConfigError(f"core {name}: {exc}") from None
