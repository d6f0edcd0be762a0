"""Features for next-period direction models, in two forms that agree to 1e-9.

Per bar ``t`` (using bars ``0..t`` only), in the order of :func:`feature_names`:

- ``ret_<h>``: log return over ``h`` bars, ``log(close_t / close_{t-h})``, per horizon;
- ``vol_ewma``: square root of the EWMA of squared one-bar log returns
  (``alpha = 2 / (vol_span + 1)``, seeded with the first squared return);
- ``dist_ma_<p>``: ``close_t / SMA_p(close) - 1``, per moving-average period;
- ``rsi``: Wilder-style ratio ``avg_gain / (avg_gain + avg_loss) - 0.5`` in [-0.5, 0.5], gains
  and losses of one-bar log returns averaged by EWMA with ``alpha = 1 / rsi_period``
  (0 when both averages are 0);
- ``volume_z``: z-score of ``log1p(volume_t)`` against the last ``volume_window`` values
  (population variance; 0 when the window is flat).

:func:`feature_frame` computes them over a bars frame (columns ``ts_event, open, high, low,
close, volume``) with pandas, for training; :class:`DirectionFeatures` computes them bar by bar
in O(1) time and fixed memory, for live trading. A row is defined from the ``warmup``-th bar on
(all features at once) and NaN before.

The label lives only in the vectorized path (:func:`direction_labels`): the return a decision at
the close of ``t`` earns under the engine's fill convention (filled at the open of ``t+1``, held
to the open of ``t+2``), and whether it was positive.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from core.config import FrozenConfig, require
from core.indicators import saved_ring
from core.state import decode_float, decode_floats, encode_float, encode_floats

# A window whose log-volume variance is below this is treated as flat (z-score 0).
FLAT_VARIANCE = 1e-12
MAX_PERIOD = 10_000


class FeatureParams(FrozenConfig, frozen=True, kw_only=True):
    """Look-back lengths of the direction features, in bars."""

    return_horizons: tuple[int, ...] = (1, 5, 20)
    vol_span: int = 20
    ma_periods: tuple[int, ...] = (10, 50)
    rsi_period: int = 14
    volume_window: int = 20

    def __post_init__(self) -> None:
        for field in ("return_horizons", "ma_periods"):
            values = getattr(self, field)
            require(bool(values), f"{field} must hold at least one period, was {list(values)}")
            require(
                len(set(values)) == len(values),
                f"{field} must not repeat a period, was {list(values)}",
            )
            for value in values:
                _check_period(field, value)
        _check_period("vol_span", self.vol_span)
        _check_period("rsi_period", self.rsi_period)
        _check_period("volume_window", self.volume_window)
        require(self.volume_window >= 2, f"volume_window must be >= 2, was {self.volume_window}")

    @property
    def names(self) -> tuple[str, ...]:
        return feature_names(self)

    @property
    def warmup(self) -> int:
        """Bars consumed up to and including the first bar with every feature defined."""
        return max(
            max(self.return_horizons) + 1,
            self.vol_span + 1,
            max(self.ma_periods),
            self.rsi_period + 1,
            self.volume_window,
        )


def _check_period(field: str, value: int) -> None:
    require(1 <= value <= MAX_PERIOD, f"{field} must be in [1, {MAX_PERIOD}], was {value}")


def feature_names(params: FeatureParams) -> tuple[str, ...]:
    """Return the feature column names in model order."""
    return (
        *(f"ret_{h}" for h in params.return_horizons),
        "vol_ewma",
        *(f"dist_ma_{p}" for p in params.ma_periods),
        "rsi",
        "volume_z",
    )


# -- vectorized form (training, research) --------------------------------------------------------


def feature_frame(frame: pd.DataFrame, params: FeatureParams) -> pd.DataFrame:
    """Compute every feature over a bars frame; rows before the warm-up are NaN.

    Parameters
    ----------
    frame
        Bars of one symbol in time order, with ``close`` and ``volume`` columns.
    params
        Look-back lengths.

    Returns
    -------
    pd.DataFrame
        One column per :func:`feature_names`, on ``frame``'s index.
    """
    close = frame["close"].astype("float64").reset_index(drop=True)
    log_close = np.log(close)
    returns = log_close.diff()
    n_returns = pd.Series(np.arange(len(close)), dtype="float64")  # returns seen up to each row
    columns: dict[str, pd.Series] = {}
    for h in params.return_horizons:
        columns[f"ret_{h}"] = log_close - log_close.shift(h)
    variance = _ewm(returns * returns, 2.0 / (params.vol_span + 1.0))
    columns["vol_ewma"] = np.sqrt(variance).where(n_returns >= params.vol_span)
    for p in params.ma_periods:
        columns[f"dist_ma_{p}"] = close / close.rolling(p, min_periods=p).mean() - 1.0
    columns["rsi"] = _rsi(returns, params.rsi_period).where(n_returns >= params.rsi_period)
    columns["volume_z"] = _volume_z(frame["volume"].astype("float64"), params.volume_window)
    features = pd.DataFrame(columns)
    features.loc[: params.warmup - 2] = np.nan  # every feature appears at once, as live
    features.index = frame.index
    return features


def _ewm(values: pd.Series, alpha: float) -> pd.Series:
    # adjust=False is the recursion y = alpha x + (1 - alpha) y, seeded with the first value.
    return values.ewm(alpha=alpha, adjust=False).mean()


def _rsi(returns: pd.Series, period: int) -> pd.Series:
    alpha = 1.0 / period
    gain = _ewm(np.maximum(returns, 0.0), alpha)
    loss = _ewm(np.maximum(-returns, 0.0), alpha)
    total = gain + loss
    ratio = (gain / total.where(total > 0.0) - 0.5).where(total > 0.0, 0.0)
    return ratio.where(returns.notna().cumsum() > 0)


def _volume_z(volume: pd.Series, window: int) -> pd.Series:
    x = np.log1p(volume.reset_index(drop=True))
    d = x - x.iloc[0]  # deviations from the first value, as the live form keeps them
    mean = d.rolling(window, min_periods=window).mean()
    mean_sq = (d * d).rolling(window, min_periods=window).mean()
    variance = mean_sq - mean * mean
    z = ((d - mean) / np.sqrt(variance.where(variance > FLAT_VARIANCE))).fillna(0.0)
    return z.where(mean.notna())


def direction_labels(frame: pd.DataFrame) -> pd.DataFrame:
    """Return ``next_return`` and ``label`` per bar: the return a decision at this close earns.

    Under the engine's convention a target decided at the close of ``t`` fills at the open of
    ``t+1`` and is held until the next decision fills at the open of ``t+2``, so
    ``next_return_t = open_{t+2} / open_{t+1} - 1`` and ``label_t = 1`` when it is positive
    (else 0). The last two rows have no label (NaN). Training code only: never computed live.
    """
    open_ = frame["open"].astype("float64")
    next_return = open_.shift(-2) / open_.shift(-1) - 1.0
    label = (next_return > 0.0).astype("float64").where(next_return.notna())
    return pd.DataFrame({"next_return": next_return, "label": label}, index=frame.index)


def lookahead_violations(
    frame: pd.DataFrame, params: FeatureParams, cutoffs: list[int] | None = None
) -> list[int]:
    """Return the cutoffs at which features up to the cutoff change when later bars are removed.

    An empty list means no feature uses future data: for each cutoff ``c`` the features computed
    from ``frame.iloc[: c + 1]`` equal exactly (NaN included) the first ``c + 1`` rows computed
    from the whole frame.
    """
    full = feature_frame(frame, params).to_numpy()
    chosen = cutoffs if cutoffs is not None else _default_cutoffs(len(frame), params.warmup)
    bad = []
    for c in chosen:
        truncated = feature_frame(frame.iloc[: c + 1], params).to_numpy()
        if not np.array_equal(truncated, full[: c + 1], equal_nan=True):
            bad.append(int(c))
    return bad


def _default_cutoffs(n: int, warmup: int) -> list[int]:
    points = {warmup - 2, warmup - 1, warmup, n // 3, n // 2, n - 3, n - 2}
    return sorted(c for c in points if 0 <= c < n)


# -- incremental form (live) ---------------------------------------------------------------------


class _RollingMoments:
    """Running mean and population variance over the last ``window`` values, O(1) per value.

    With ``centred``, values are taken relative to the first value ever seen (kept in the
    state), so ``E[d^2] - E[d]^2`` does not cancel catastrophically for values far from zero
    (log volumes near 17); :meth:`update` returns the mean and variance of those deviations.
    Sums are rebuilt with ``math.fsum`` once per turn of the ring so drift cannot accumulate.
    """

    __slots__ = ("_buffer", "_count", "_index", "_sum", "_sum_sq", "centred", "shift", "window")

    def __init__(self, window: int, *, centred: bool = False) -> None:
        self.window = window
        self.centred = centred
        self.shift = math.nan if centred else 0.0
        self._buffer = [0.0] * window
        self._index = 0
        self._count = 0
        self._sum = 0.0
        self._sum_sq = 0.0

    def update(self, x: float) -> tuple[float, float, float]:
        """Add ``x``; return ``(x - shift, mean, variance)`` (NaN mean and variance until full)."""
        if math.isnan(self.shift):
            self.shift = x
        d = x - self.shift
        i = self._index
        old = self._buffer[i]
        self._sum += d - old
        self._sum_sq += d * d - old * old
        self._buffer[i] = d
        self._index = i + 1 if i + 1 < self.window else 0
        if self._count < self.window:
            self._count += 1
        if self._index == 0:
            self._sum = math.fsum(self._buffer)
            self._sum_sq = math.fsum(v * v for v in self._buffer)
        if self._count < self.window:
            return d, math.nan, math.nan
        mean = self._sum / self.window
        return d, mean, self._sum_sq / self.window - mean * mean

    def to_state(self) -> dict[str, Any]:
        return {
            "buffer": list(self._buffer),
            "index": self._index,
            "count": self._count,
            "sum": self._sum,
            "sum_sq": self._sum_sq,
            "shift": encode_float(self.shift),
        }

    def restore(self, state: dict[str, Any]) -> None:
        buffer = saved_ring(state, self.window, "window")
        self._buffer = buffer
        self._index = int(state["index"])
        self._count = int(state["count"])
        self._sum = float(state["sum"])
        self._sum_sq = float(state["sum_sq"])
        self.shift = decode_float(state["shift"])


class DirectionFeatures:
    """The direction features of one symbol, updated bar by bar in O(1).

    :meth:`update` returns the feature vector (a preallocated array, overwritten by the next
    update: copy it to keep it) once every feature is defined, else ``None``.
    """

    def __init__(self, params: FeatureParams) -> None:
        self.params = params
        self.names = feature_names(params)
        self._log_close = [math.nan] * (max(params.return_horizons) + 1)
        self._index = 0  # slot of the next log close in the ring
        self._bars = 0
        self._vol_alpha = 2.0 / (params.vol_span + 1.0)
        self._rsi_alpha = 1.0 / params.rsi_period
        self._variance = math.nan
        self._gain = math.nan
        self._loss = math.nan
        self._means = [_RollingMoments(p) for p in params.ma_periods]
        self._volume = _RollingMoments(params.volume_window, centred=True)
        self._out = np.full(len(self.names), np.nan)

    @property
    def warmup(self) -> int:
        return self.params.warmup

    @property
    def ready(self) -> bool:
        return self._bars >= self.params.warmup

    def update(self, close: float, volume: float) -> np.ndarray | None:
        """Consume one bar's close and volume; return the features once all are defined."""
        size = len(self._log_close)
        log_close = math.log(close)
        previous = self._log_close[self._index - 1]  # index - 1 wraps to the newest slot
        self._log_close[self._index] = log_close
        self._index = self._index + 1 if self._index + 1 < size else 0
        self._bars += 1
        if self._bars > 1:
            self._update_return(log_close - previous)
        means = [m.update(close)[1] for m in self._means]
        deviation, mean, variance = self._volume.update(math.log1p(volume))
        if not self.ready:
            return None
        self._fill(log_close, close, means, deviation, mean, variance)
        return self._out

    def _update_return(self, r: float) -> None:
        gain, loss = max(r, 0.0), max(-r, 0.0)
        if math.isnan(self._variance):
            self._variance, self._gain, self._loss = r * r, gain, loss
            return
        self._variance = self._vol_alpha * (r * r) + (1.0 - self._vol_alpha) * self._variance
        self._gain = self._rsi_alpha * gain + (1.0 - self._rsi_alpha) * self._gain
        self._loss = self._rsi_alpha * loss + (1.0 - self._rsi_alpha) * self._loss

    def _fill(
        self,
        log_close: float,
        close: float,
        means: list[float],
        deviation: float,
        mean: float,
        variance: float,
    ) -> None:
        out, size, k = self._out, len(self._log_close), 0
        newest = self._index - 1
        for h in self.params.return_horizons:
            out[k] = log_close - self._log_close[(newest - h) % size]
            k += 1
        out[k] = math.sqrt(self._variance)
        k += 1
        for sma in means:
            out[k] = close / sma - 1.0
            k += 1
        total = self._gain + self._loss
        out[k] = self._gain / total - 0.5 if total > 0.0 else 0.0
        out[k + 1] = (deviation - mean) / math.sqrt(variance) if variance > FLAT_VARIANCE else 0.0

    def to_state(self) -> dict[str, Any]:
        return {
            "log_close": encode_floats(self._log_close),
            "index": self._index,
            "bars": self._bars,
            "variance": encode_float(self._variance),
            "gain": encode_float(self._gain),
            "loss": encode_float(self._loss),
            "means": [m.to_state() for m in self._means],
            "volume": self._volume.to_state(),
        }

    def restore(self, state: dict[str, Any]) -> None:
        log_close = decode_floats(state["log_close"])
        if len(log_close) != len(self._log_close):
            raise ValueError(f"state has {len(log_close)} closes, expected {len(self._log_close)}")
        self._log_close = log_close
        self._index = int(state["index"])
        self._bars = int(state["bars"])
        self._variance = decode_float(state["variance"])
        self._gain = decode_float(state["gain"])
        self._loss = decode_float(state["loss"])
        for mean, saved in zip(self._means, state["means"], strict=True):
            mean.restore(saved)
        self._volume.restore(state["volume"])
