"""Performance Tracker: the equity curve and the numbers a trader reads off it."""

from __future__ import annotations

import math
from array import array
from typing import Any

import numpy as np

NS_PER_YEAR = 365.25 * 86_400 * 1_000_000_000


class PerformanceTracker:
    """Sample portfolio equity once per distinct timestamp and summarise it.

    The sample for a timestamp is taken when time moves past it, so all symbols' bars of one
    day are marked before that day's equity is recorded.

    ``max_points`` bounds what a long-running core keeps: the last ``max_points`` to twice
    that many samples (the oldest half is dropped at once, so each sample costs O(1)), and
    Sharpe, Sortino and drawdown are measured over them, from the equity just before them;
    PnL and total return stay measured from the initial capital. None keeps every sample
    (backtests).
    """

    def __init__(self, initial_capital: float, max_points: int | None = None) -> None:
        if max_points is not None and max_points < 2:
            raise ValueError(f"max_points must be >= 2, was {max_points}")
        self.initial_capital = initial_capital
        self.max_points = max_points
        self._base_equity = initial_capital  # the equity just before the kept samples
        self._ts = array("q")
        self._equity = array("d")
        self._gross = array("d")
        self._pending_ts: int | None = None
        # Two floats, not a tuple: on_equity runs on every event and should allocate nothing.
        self._pending_equity = initial_capital
        self._pending_gross = 0.0
        self.events = 0
        self.signals = 0
        self.fills = 0

    def count_event(self) -> None:
        self.events += 1

    def count_signal(self) -> None:
        self.signals += 1

    def count_fills(self, fills: int = 1) -> None:
        self.fills += fills

    def restore_counts(self, events: int, signals: int, fills: int) -> None:
        """The counts a checkpoint saved."""
        self.events, self.signals, self.fills = int(events), int(signals), int(fills)

    def on_equity(self, ts_event: int, equity: float, gross_exposure: float = 0.0) -> None:
        if self._pending_ts is not None and ts_event != self._pending_ts:
            self._append()
        self._pending_ts = ts_event
        self._pending_equity = equity
        self._pending_gross = gross_exposure

    def close(self) -> None:
        if self._pending_ts is not None:
            self._append()
            self._pending_ts = None

    def _append(self) -> None:
        assert self._pending_ts is not None
        self._ts.append(self._pending_ts)
        self._equity.append(self._pending_equity)
        self._gross.append(self._pending_gross)
        limit = self.max_points
        if limit is not None and len(self._ts) >= 2 * limit:
            drop = len(self._ts) - limit
            self._base_equity = self._equity[drop - 1]
            del self._ts[:drop], self._equity[:drop], self._gross[:drop]

    def equity_curve(self) -> tuple[np.ndarray, np.ndarray]:
        return np.frombuffer(self._ts, dtype=np.int64), np.frombuffer(
            self._equity, dtype=np.float64
        )

    def gross_exposure(self) -> np.ndarray:
        return np.frombuffer(self._gross, dtype=np.float64)

    def metrics(self, traded_notional: float = 0.0) -> dict[str, Any]:
        ts, equity = self.equity_curve()
        out = performance_metrics(ts, equity, self.initial_capital, base=self._base_equity)
        gross = self.gross_exposure()
        if len(gross):
            safe = np.where(equity > 0, equity, np.nan)
            out["exposure"] = float(np.nanmean(gross / safe))
            out["time_in_market"] = float(np.mean(gross > 0))
            out["turnover"] = (
                float(traded_notional / np.mean(equity)) if np.mean(equity) > 0 else 0.0
            )
        else:
            out.update(exposure=0.0, time_in_market=0.0, turnover=0.0)
        return out


def performance_metrics(
    ts: np.ndarray, equity: np.ndarray, initial_capital: float, *, base: float | None = None
) -> dict[str, Any]:
    """Total return, annualised Sharpe and max drawdown of an equity curve.

    Returns are period over period; the annualisation factor is the observed number of periods
    per year (about 252 for daily equity bars), so no calendar is assumed. ``base`` is the
    equity before the curve's first sample (the initial capital unless the curve is a window).
    """
    if len(equity) == 0 or initial_capital <= 0:
        return {
            "pnl": 0.0, "total_return": 0.0, "sharpe": 0.0, "sortino": 0.0,
            "max_drawdown": 0.0, "periods": 0,
        }  # fmt: skip
    curve = np.concatenate(([initial_capital if base is None else base], equity))
    returns = np.diff(curve) / curve[:-1]
    per_year = _periods_per_year(ts)
    return {
        "pnl": float(equity[-1] - initial_capital),
        "total_return": float(equity[-1] / initial_capital - 1.0),
        "sharpe": sharpe_ratio(returns, per_year),
        "sortino": _sortino(returns, per_year),
        "max_drawdown": _max_drawdown(curve),
        "periods": len(equity),
    }


def _periods_per_year(ts: np.ndarray) -> float:
    if len(ts) < 2 or ts[-1] <= ts[0]:
        return 252.0
    return (len(ts) - 1) / ((ts[-1] - ts[0]) / NS_PER_YEAR)


def sharpe_ratio(returns: np.ndarray, periods_per_year: float) -> float:
    """Annualised Sharpe of per-period returns; 0 when flat or too short."""
    if len(returns) < 2:
        return 0.0
    std = float(np.std(returns, ddof=1))
    if std == 0.0 or not math.isfinite(std):
        return 0.0
    return float(np.mean(returns) / std * math.sqrt(periods_per_year))


def _sortino(returns: np.ndarray, periods_per_year: float) -> float:
    """Mean return over the downside deviation (root mean square of the negative returns)."""
    if len(returns) < 2:
        return 0.0
    downside = math.sqrt(float(np.mean(np.minimum(returns, 0.0) ** 2)))
    if downside == 0.0 or not math.isfinite(downside):
        return 0.0
    return float(np.mean(returns) / downside * math.sqrt(periods_per_year))


def _max_drawdown(curve: np.ndarray) -> float:
    peaks = np.maximum.accumulate(curve)
    drawdowns = np.where(peaks > 0, (peaks - curve) / peaks, 0.0)
    return float(drawdowns.max())
