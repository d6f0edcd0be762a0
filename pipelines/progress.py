"""Progress bars for long commands, on stderr, and silent when the output is JSON."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


QUIET_ENV = "STRATEGY_ENGINE_QUIET"


def progress(
    items: Iterable[T],
    *,
    desc: str,
    quiet: bool = False,
    total: int | None = None,
    unit: str = "it",
) -> Iterator[T]:
    """Wrap ``items`` in a tqdm bar on stderr unless quiet or not a terminal.

    Quiet when asked, or when ``STRATEGY_ENGINE_QUIET`` is set: the command line sets it for
    ``--json``, so work that runs inside a flow stays silent too.
    """
    if quiet or os.environ.get(QUIET_ENV) or not sys.stderr.isatty():
        yield from items
        return
    from tqdm import tqdm

    yield from tqdm(items, desc=desc, total=total, unit=unit, file=sys.stderr, leave=False)
