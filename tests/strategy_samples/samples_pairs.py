"""Pair samples: both legs' real daily bars merged in time order, and the joined pair frame.

KO/PEP and XOM/CVX come from ``equities_daily_stocknet88``; GLD/GDX from ``etf_daily_pyalgotrade``
(Chan's classic gold / gold-miners pair, overlapping 2006-05-23 … 2012-12-31).
"""

from __future__ import annotations

from functools import cache

import pandas as pd

from core.data.loaders import iter_merged_bars, read_bars_frame
from core.model import Bar
from core.strategies.statarb.pairs_common import pair_frame, split_pair
from tests.strategy_samples import DATA, StrategySample

_FILES = {
    "equities_daily_stocknet88": "equities_daily_stocknet88/prices/{symbol}.csv",
    "etf_daily_pyalgotrade": "etf_daily_pyalgotrade/{symbol}.csv",
}


@cache
def leg_bars(dataset: str, symbol: str) -> pd.DataFrame:
    """Return one leg's whole bars frame from a shipped per-ticker data set."""
    return read_bars_frame(DATA / _FILES[dataset].format(symbol=symbol), symbol).frame


@cache
def pair_data(dataset: str, pair: str, rows: int | None = None) -> tuple[pd.DataFrame, list[Bar]]:
    """Return the pair frame and the merged events of both legs, cut to the first ``rows`` days.

    The cut is on the pair frame's timestamps, and the events are every bar of either leg up to
    the last kept pair bar, so both forms see the same pair bars.
    """
    leg_a, leg_b = split_pair(pair)
    bars = {leg_a: leg_bars(dataset, leg_a), leg_b: leg_bars(dataset, leg_b)}
    frame = pair_frame(bars[leg_a], bars[leg_b])
    if rows is not None:
        frame = frame.iloc[:rows].reset_index(drop=True)
    last = int(frame["ts_event"].iloc[-1])
    cut = {s: f[f["ts_event"] <= last].reset_index(drop=True) for s, f in bars.items()}
    return frame, list(iter_merged_bars(cut))


def cointegration() -> StrategySample:
    frame, events = pair_data("equities_daily_stocknet88", "KO/PEP", 700)
    return StrategySample(
        symbol="KO/PEP",
        config={"window": 120, "retest_every": 20, "max_p_value": 0.1, "z_entry": 1.5},
        events=events,
        frame=frame,
        bad_config={"z_entry": 0.5, "z_exit": 1.0},
        bad_message="z_entry must be > z_exit, was 0.5 <= 1.0",
    )


def pairs_trading() -> StrategySample:
    frame, events = pair_data("etf_daily_pyalgotrade", "GLD/GDX", 500)
    return StrategySample(
        symbol="GLD/GDX",
        config={"warmup_bars": 60, "delta": 1e-5, "z_entry": 1.5, "z_exit": 0.25},
        events=events,
        frame=frame,
        bad_config={"delta": 1.0},
        bad_message="delta must be in \\[0, 1\\), was 1.0",
    )


SAMPLES = {"cointegration": cointegration, "pairs_trading": pairs_trading}
