"""Pure text and frame helpers shared by the news strategies and the sentiment model.

The tokenizer is scikit-learn's default ``TfidfVectorizer`` one (lower-cased, words of two or
more word characters), so a token the trained model knows is spelled the same way here.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

TOKEN_PATTERN = r"(?u)\b\w\w+\b"
_TOKEN = re.compile(TOKEN_PATTERN)


def tokenize(text: str) -> list[str]:
    """Split ``text`` into lower-case tokens exactly as ``TfidfVectorizer`` does by default."""
    return _TOKEN.findall(text.lower())


def bar_slots(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Locate bars in a news frame and the bar each news row is counted towards.

    Returns
    -------
    tuple of numpy.ndarray
        ``is_bar`` (bool per row) and ``slot`` (per row: the index, among bars, of the first bar
        at or after the row; a news row between bars k-1 and k belongs to bar k).
    """
    is_bar = frame["kind"].to_numpy() == "bar"
    slot = np.cumsum(is_bar) - is_bar
    return is_bar, slot


def per_bar_sum(values: np.ndarray, slot: np.ndarray, is_bar: np.ndarray) -> np.ndarray:
    """Sum news-row ``values`` into the bar each one precedes (one total per bar)."""
    n_bars = int(is_bar.sum())
    news = ~is_bar & (slot < n_bars)  # news after the last bar belongs to no bar yet
    return np.bincount(slot[news], weights=values[news], minlength=n_bars)[:n_bars]


def spread_to_rows(per_bar: np.ndarray, is_bar: np.ndarray, index: pd.Index) -> pd.Series:
    """Place one value per bar on the bar rows and carry it forward over the news rows."""
    out = np.full(len(is_bar), np.nan)
    out[is_bar] = per_bar
    return pd.Series(out, index=index).ffill()
