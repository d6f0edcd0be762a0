"""Subcommands of ``strategy-engine``: each module here adds its parsers with ``register``.

A module defines ``register(sub: argparse._SubParsersAction) -> None`` and sets, on each of
its parsers, ``handler=<function(args) -> int>``. The CLI discovers the modules by name, so
adding a command never means editing the entry point.
"""
