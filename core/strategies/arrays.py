"""Array pieces the vectorized forms share: each row's view of the latest row of a kind."""

from __future__ import annotations

from typing import Any

import numpy as np


def last_row(mask: np.ndarray) -> np.ndarray:
    """For each row, the position of the latest row at or before it where ``mask`` holds (-1)."""
    positions = np.where(mask, np.arange(len(mask)), -1)
    return np.maximum.accumulate(positions) if len(mask) else positions


def carried(mask: np.ndarray, values: np.ndarray, missing: Any = np.nan) -> np.ndarray:
    """Each row takes ``values`` at the latest row of ``mask`` up to and including itself
    (``missing`` before the first)."""
    last = last_row(mask)
    return np.where(last >= 0, values[np.maximum(last, 0)], missing)
