"""Progress bars for long commands, on stderr, and silent when the output is JSON."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def progress(
    items: Iterable[T], *, desc: str, quiet: bool, total: int | None = None, unit: str = "it"
) -> Iterator[T]:
    """Wrap ``items`` in a tqdm bar on stderr unless ``quiet`` (``--json``) or not a terminal."""
    if quiet or not sys.stderr.isatty():
        yield from items
        return
    from tqdm import tqdm

    yield from tqdm(items, desc=desc, total=total, unit=unit, file=sys.stderr, leave=False)
