"""Real-data samples for the strategy contract suite, one module per family.

Each ``samples_<family>.py`` module defines ``SAMPLES: dict[str, Callable[[], StrategySample]]``
keyed by strategy type name; ``all_samples()`` collects them so the contract suite can check
that every catalogued type has one.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pandas as pd

from core.data.loaders import iter_bars, read_bars_frame
from core.model import Bar

DATA = Path(__file__).resolve().parents[2] / "data"


@dataclass(frozen=True)
class StrategySample:
    """Events to replay through ``update`` and the same data as the frame for ``vectorized``.

    ``bad_config`` is an out-of-range config and ``bad_message`` a fragment of the error it
    must raise (naming the offending value).
    """

    symbol: str
    config: dict[str, Any]
    events: list[Any]
    frame: pd.DataFrame
    bad_config: dict[str, Any]
    bad_message: str
    extra: dict[str, Any] = field(default_factory=dict)


@cache
def stocknet_bars(symbol: str, rows: int) -> tuple[pd.DataFrame, list[Bar]]:
    """The first ``rows`` daily bars of ``symbol`` in stocknet88, as a frame and as events."""
    frame = read_bars_frame(DATA / "equities_daily_stocknet88" / "prices" / f"{symbol}.csv").frame
    frame = frame.iloc[:rows].reset_index(drop=True)
    return frame, list(iter_bars(frame, symbol))


def all_samples() -> dict[str, Callable[[], StrategySample]]:
    found: dict[str, Callable[[], StrategySample]] = {}
    for info in pkgutil.iter_modules(__path__, prefix=f"{__name__}."):
        if info.name.rsplit(".", 1)[-1].startswith("samples_"):
            found.update(importlib.import_module(info.name).SAMPLES)
    return found
