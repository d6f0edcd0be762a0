"""Single-asset mean reversion on the Bollinger z-score of the close.

Rule on each bar: ``z = (close - mean) / std`` over the last ``window`` closes (this bar
included; population std, ``ddof=0``, as Bollinger bands use), then

- enter long (+1) when ``z < -z_entry``, short (-1, or flat without ``allow_short``) when
  ``z > z_entry``;
- exit a long once ``z >= -z_exit`` and a short once ``z <= z_exit`` (back inside the
  ``±z_exit`` band, or past it);
- otherwise hold. A window with zero spread gives ``z = 0``.

:func:`ou_half_life` estimates the Ornstein-Uhlenbeck half-life of a price history (OLS of the
change on the previous level) and :func:`window_from_half_life` turns it into a ``window``, so a
research step can set the window from the data it was fitted on.

Frame for :meth:`MeanReversion.vectorized`: the standard bars frame, columns ``ts_event`` (int64
ns UTC), ``open, high, low, close, volume`` (float64), one row per bar in time order.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from core.indicator_banks import Bank, FloatArray, IntArray
from core.indicators import saved_ring
from core.model import Bar, Lineage, Signal
from core.state import StrategyState
from core.strategies.base import (
    DataKind,
    Family,
    Strategy,
    StrategyConfig,
    StrategySpec,
    Tier,
    require,
)
from core.strategies.batch import BatchStrategy, batch_form
from core.strategies.catalogue import register


class MeanReversionConfig(StrategyConfig, frozen=True, kw_only=True):
    window: int = 20
    z_entry: float = 2.0
    z_exit: float = 0.5
    allow_short: bool = True

    def __post_init__(self) -> None:
        require(2 <= self.window <= 10_000, f"window must be in [2, 10000], was {self.window}")
        require(
            math.isfinite(self.z_entry) and self.z_entry > 0.0,
            f"z_entry must be a finite number > 0, was {self.z_entry}",
        )
        require(
            math.isfinite(self.z_exit) and self.z_exit >= 0.0,
            f"z_exit must be a finite number >= 0, was {self.z_exit}",
        )
        require(
            self.z_entry > self.z_exit,
            f"z_entry must be > z_exit, was {self.z_entry} <= {self.z_exit}",
        )


# A spread this small next to the price level is a flat window: z is taken as 0, not noise.
_FLAT = 1e-12


def _zscore(close: float, mean: float, std: float) -> float:
    return 0.0 if std <= _FLAT * abs(mean) else (close - mean) / std


def _step(position: float, z: float, config: MeanReversionConfig) -> float:
    """The new position from the z-score, with entry/exit hysteresis."""
    if z > config.z_entry:
        return -1.0 if config.allow_short else 0.0
    if z < -config.z_entry:
        return 1.0
    if (position > 0.0 and z >= -config.z_exit) or (position < 0.0 and z <= config.z_exit):
        return 0.0
    return position


def _rebased(filled: list[float]) -> tuple[float, float, float]:
    """Anchor (the exact mean) and the exact sums of deviations and squared deviations."""
    anchor = math.fsum(filled) / len(filled)
    return (
        anchor,
        math.fsum(v - anchor for v in filled),
        math.fsum((v - anchor) ** 2 for v in filled),
    )


class _MomentsState(StrategyState):
    """The state of :class:`_RollingMoments` and of a row of its bank, the same JSON."""

    buffer: list[float]
    index: int
    count: int
    anchor: float  # NaN before the first value
    sum: float
    sq: float


class _RollingMoments:
    """Mean and population std of the last ``period`` values in O(1) per update.

    Running sums are kept of the values minus an anchor near the window's mean, and the anchor
    and sums are rebuilt exactly from the ring once per turn: the sum of squares then never
    suffers the cancellation of raw prices, and rounding drift cannot build up.
    """

    __slots__ = ("_anchor", "_buffer", "_count", "_index", "_sq", "_sum", "period")

    def __init__(self, period: int) -> None:
        self.period = period
        self._buffer = [0.0] * period
        self._index = 0
        self._count = 0
        self._anchor = math.nan
        self._sum = 0.0
        self._sq = 0.0

    def update(self, x: float) -> tuple[float, float]:
        """Add ``x``; return (mean, std), NaN until ``period`` values were seen."""
        if math.isnan(self._anchor):
            self._anchor = x
        old = self._buffer[self._index] - self._anchor if self._count >= self.period else 0.0
        new = x - self._anchor
        self._sum += new - old
        self._sq += new * new - old * old
        self._buffer[self._index] = x
        self._index = (self._index + 1) % self.period
        self._count = min(self._count + 1, self.period)
        if self._index == 0:
            self._rebase()
        if self._count < self.period:
            return math.nan, math.nan
        n = float(self.period)
        shift = self._sum / n
        variance = max(self._sq / n - shift * shift, 0.0)
        return self._anchor + shift, math.sqrt(variance)

    def _rebase(self) -> None:
        self._anchor, self._sum, self._sq = _rebased(self._buffer[: self._count])

    def to_state(self) -> dict[str, Any]:
        # The sums are saved as they are (JSON floats round-trip exactly), so a restored
        # instance continues with bit-identical means and deviations.
        saved = _MomentsState(
            buffer=list(self._buffer),
            index=self._index,
            count=self._count,
            anchor=self._anchor,
            sum=self._sum,
            sq=self._sq,
        )
        return saved.to_dict()

    def restore(self, state: dict[str, Any]) -> None:
        buffer = saved_ring(state, self.period, "window")
        saved = _MomentsState.from_dict(state)
        self._buffer = buffer
        self._index = saved.index
        self._count = saved.count
        self._anchor = saved.anchor
        self._sum = saved.sum
        self._sq = saved.sq


@register
class MeanReversion(Strategy[MeanReversionConfig]):
    """Fade moves beyond ``z_entry`` rolling standard deviations; exit near the mean."""

    spec = StrategySpec(
        name="mean_reversion",
        family=Family.STATISTICAL_ARBITRAGE,
        tier=Tier.TACTICAL,
        data_kind=DataKind.BARS,
        summary=(
            "Single-asset z-score of price against its rolling mean (Bollinger); enter beyond "
            "±k, exit inside ±k0; optional Ornstein-Uhlenbeck half-life to set the window."
        ),
        dataset="equities_daily_stocknet88",
    )
    config_type = MeanReversionConfig

    def __init__(
        self, config: MeanReversionConfig, symbol: str, *, name: str | None = None
    ) -> None:
        super().__init__(config, symbol, name=name)
        self._moments = _RollingMoments(config.window)
        self._position = 0.0

    @property
    def warmup(self) -> int:
        return self.config.window

    def update(self, bar: Bar) -> Signal | None:
        mean, std = self._moments.update(bar.close)
        if math.isnan(mean):
            return None
        z = _zscore(bar.close, mean, std)
        self._position = _step(self._position, z, self.config)
        reason = {"z": z, "mean": mean, "std": std}
        return self._emit(bar.ts_event, self._position, abs(z), reason)

    def to_state(self) -> dict[str, Any]:
        return {
            **self._base_state(),
            "moments": self._moments.to_state(),
            "position": self._position,
        }

    def restore(self, state: dict[str, Any]) -> None:
        self._restore_base(state)
        self._moments.restore(state["moments"])
        self._position = float(state["position"])

    @classmethod
    def vectorized(cls, config: MeanReversionConfig, frame: pd.DataFrame) -> pd.Series:
        close = frame["close"].astype("float64")
        rolling = close.rolling(config.window)
        mean = rolling.mean().to_numpy()
        std = rolling.std(ddof=0).to_numpy()
        with np.errstate(divide="ignore", invalid="ignore"):
            z = np.where(std <= _FLAT * np.abs(mean), 0.0, (close.to_numpy() - mean) / std)
        target = np.full(len(frame), np.nan)
        position = 0.0
        # Entry/exit hysteresis is path dependent: a tight loop over the z-scores.
        for i in range(config.window - 1, len(frame)):
            position = _step(position, float(z[i]), config)
            target[i] = position
        return pd.Series(target, index=frame.index)


class _RollingMomentsBank(Bank):
    """:class:`_RollingMoments` for many rows, with the same operations in the same order."""

    _fields = ("_buffer", "_index", "_count", "_anchor", "_sum", "_sq")

    def __init__(self, period: int, capacity: int = 16) -> None:
        super().__init__(capacity)
        self.period = period
        self._buffer = np.zeros((self._capacity, period))
        self._index = np.zeros(self._capacity, dtype=np.int64)
        self._count = np.zeros(self._capacity, dtype=np.int64)
        self._anchor = np.full(self._capacity, math.nan)
        self._sum = np.zeros(self._capacity)
        self._sq = np.zeros(self._capacity)

    def _reset_row(self, row: int) -> None:
        self._buffer[row] = 0.0
        self._index[row] = self._count[row] = 0
        self._anchor[row] = math.nan
        self._sum[row] = self._sq[row] = 0.0

    def update(self, rows: IntArray, x: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Add ``x[k]`` to row ``rows[k]`` (rows distinct); (mean, std), NaN while warming up."""
        period = self.period
        anchor = self._anchor[rows]
        fresh = np.isnan(anchor)
        if fresh.any():
            anchor[fresh] = x[fresh]
        index, count = self._index[rows], self._count[rows]
        old = np.where(count >= period, self._buffer[rows, index] - anchor, 0.0)
        new = x - anchor
        total = self._sum[rows] + (new - old)
        square = self._sq[rows] + (new * new - old * old)
        self._buffer[rows, index] = x
        index = (index + 1) % period
        count = np.minimum(count + 1, period)
        for k in np.flatnonzero(index == 0).tolist():  # once per turn: rebuilt exactly
            filled = self._buffer[rows[k], : count[k]].tolist()
            anchor[k], total[k], square[k] = _rebased(filled)
        self._index[rows], self._count[rows] = index, count
        self._anchor[rows], self._sum[rows], self._sq[rows] = anchor, total, square
        n = float(period)
        shift = total / n
        deviation = np.sqrt(np.maximum(square / n - shift * shift, 0.0))
        warming = count < period
        mean = anchor + shift
        mean[warming] = deviation[warming] = math.nan
        return mean, deviation

    def row_state(self, row: int) -> dict[str, Any]:
        saved = _MomentsState(
            buffer=self._buffer[row].tolist(),
            index=int(self._index[row]),
            count=int(self._count[row]),
            anchor=float(self._anchor[row]),
            sum=float(self._sum[row]),
            sq=float(self._sq[row]),
        )
        return saved.to_dict()

    def restore_row(self, row: int, state: dict[str, Any]) -> None:
        buffer = saved_ring(state, self.period, "window")
        saved = _MomentsState.from_dict(state)
        self._buffer[row] = buffer
        self._index[row] = saved.index
        self._count[row] = saved.count
        self._anchor[row] = saved.anchor
        self._sum[row] = saved.sum
        self._sq[row] = saved.sq


@batch_form(MeanReversion)
class MeanReversionBatch(BatchStrategy[MeanReversionConfig]):
    """:class:`MeanReversion` over many symbols: the moments as a bank, positions as a row."""

    reason_names = ("z", "mean", "std")

    def __init__(
        self, config: MeanReversionConfig, name: str, lineage: Lineage, capacity: int = 16
    ) -> None:
        super().__init__(config, name, lineage, capacity)
        self._moments = _RollingMomentsBank(config.window, capacity)
        self._position = np.zeros(self._moments.rows or capacity)
        self._short = -1.0 if config.allow_short else 0.0
        self._moments_seen: tuple[FloatArray, ...] = ()

    def _add_rows(self) -> int:
        row = self._moments.add_row()
        if row == self._position.size:
            self._position = np.concatenate([self._position, np.zeros(self._position.size)])
        self._position[row] = 0.0
        return row

    def _step(self, rows: IntArray, close: FloatArray) -> FloatArray:
        mean, std = self._moments.update(rows, close)
        with np.errstate(divide="ignore", invalid="ignore"):
            z = np.where(std <= _FLAT * np.abs(mean), 0.0, (close - mean) / std)
        ready = ~np.isnan(mean)
        z[~ready] = math.nan
        position = self._position[rows]
        config = self.config
        # _step's rules in reverse order of precedence: later assignments win.
        step = position.copy()
        step[
            ((position > 0.0) & (z >= -config.z_exit)) | ((position < 0.0) & (z <= config.z_exit))
        ] = 0.0
        step[z < -config.z_entry] = 1.0
        step[z > config.z_entry] = self._short
        position = np.where(ready, step, position)
        self._position[rows] = position
        self._moments_seen = z, mean, std
        return np.where(ready, position, math.nan)

    def _explain(self, picked: np.ndarray) -> tuple[list[float], Iterable[tuple[float, ...]]]:
        z, mean, std = (a[picked].tolist() for a in self._moments_seen)
        return [abs(v) for v in z], zip(z, mean, std, strict=True)

    def _row_state(self, row: int) -> dict[str, Any]:
        return {"moments": self._moments.row_state(row), "position": float(self._position[row])}

    def _restore_row(self, row: int, state: dict[str, Any]) -> None:
        self._moments.restore_row(row, state["moments"])
        self._position[row] = float(state["position"])


def ou_half_life(prices: np.ndarray | pd.Series) -> float:
    """Estimate the Ornstein-Uhlenbeck half-life of a price history, in bars.

    Parameters
    ----------
    prices
        Levels in time order (at least 3, no NaN).

    Returns
    -------
    float
        ``-ln 2 / ln(1 + b)`` where ``b`` is the OLS slope of ``p[t] - p[t-1]`` on ``p[t-1]``
        (with an intercept); ``inf`` when the series does not revert (``b >= 0``).
    """
    levels = np.asarray(prices, dtype="float64")
    if levels.ndim != 1 or len(levels) < 3 or not np.isfinite(levels).all():
        raise ValueError(f"need at least 3 finite prices in one dimension, got {levels.shape}")
    previous, change = levels[:-1], np.diff(levels)
    centred = previous - previous.mean()
    slope = float(np.dot(centred, change - change.mean()) / np.dot(centred, centred))
    if slope >= 0.0:
        return math.inf
    if slope <= -1.0:
        return 0.0  # overshoots the mean within a bar: reverts "instantly"
    return -math.log(2.0) / math.log1p(slope)


def window_from_half_life(
    prices: np.ndarray | pd.Series,
    *,
    multiple: float = 1.0,
    min_window: int = 5,
    max_window: int = 250,
) -> int:
    """Choose a z-score window of ``multiple`` half-lives, clipped to [min_window, max_window].

    A non-reverting history (infinite half-life) gets ``max_window``.
    """
    if not 2 <= min_window <= max_window:
        raise ValueError(f"need 2 <= min_window <= max_window, was {min_window}, {max_window}")
    half_life = ou_half_life(prices)
    if math.isinf(half_life):
        return max_window
    return int(min(max(round(multiple * half_life), min_window), max_window))
