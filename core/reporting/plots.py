"""Equity curve and drawdown, the two panels a trader looks at first."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def equity_figure(ts_ns: np.ndarray, equity: np.ndarray, *, title: str) -> Figure:
    """Equity on top, drawdown from the running peak below, sharing the time axis."""
    from matplotlib.figure import Figure  # a Figure needs no display backend

    when = ts_ns.astype("datetime64[ns]")
    peak = np.maximum.accumulate(equity) if len(equity) else equity
    drawdown = np.where(peak > 0, equity / np.where(peak > 0, peak, 1.0) - 1.0, 0.0)
    figure = Figure(figsize=(9, 5.5), layout="constrained")
    top, bottom = figure.subplots(2, 1, sharex=True, height_ratios=(3, 1))
    top.plot(when, equity, color="#1f5fa8", linewidth=1.2)
    top.set_title(title)
    top.set_ylabel("equity")
    top.grid(alpha=0.3)
    bottom.fill_between(when, drawdown * 100.0, 0.0, color="#c0392b", alpha=0.5, linewidth=0)
    bottom.set_ylabel("drawdown %")
    bottom.grid(alpha=0.3)
    return figure


def latency_figure(latencies_us: np.ndarray, *, title: str) -> Figure:
    """Histogram of latencies (microseconds, log-spaced bins) with p50/p99 marked."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 4), layout="constrained")
    axes = figure.subplots()
    positive = latencies_us[latencies_us > 0]
    if len(positive):
        bins = np.logspace(np.log10(positive.min()), np.log10(positive.max() + 1e-9), 60)
        axes.hist(positive, bins=list(bins), color="#1f5fa8", alpha=0.8)
        axes.set_xscale("log")
        for q, style in ((50, "--"), (99, ":")):
            value = float(np.percentile(positive, q))
            axes.axvline(value, color="black", linestyle=style, label=f"p{q} {value:,.0f} µs")
        axes.legend()
    axes.set_title(title)
    axes.set_xlabel("microseconds")
    axes.set_ylabel("events")
    return figure
