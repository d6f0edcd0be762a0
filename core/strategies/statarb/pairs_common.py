"""What every pair strategy shares: the pair convention, leg alignment and the Engle–Granger test.

The pair convention
-------------------
- A pair strategy instance's ``symbol`` is ``"A/B"`` (e.g. ``"KO/PEP"``): leg A is the dependent
  leg, leg B the hedge leg, in the regression ``close_a = intercept + hedge_ratio * close_b``.
- ``update`` receives the Bar events of BOTH legs merged in time order (as
  :func:`core.data.loaders.iter_merged_bars` yields them; ties in any order). The strategy keeps
  only the last bar of each leg (O(1)) and acts once both legs have a bar with the same
  ``ts_event``: a *pair bar*. A timestamp at which only one leg traded is never acted on; a bar
  stamped at or before that leg's previous bar (a redelivered or stale bar) is ignored, so the
  first bar of a timestamp stands. A bar of a third symbol is rejected with
  :class:`core.errors.DataError`.
- ``target_position`` is the position in the spread: +1 means long one unit of A and short
  ``hedge_ratio`` units of B, -1 the opposite, 0 flat. The hedge ratio in force is in
  ``reason["hedge_ratio"]`` (with the spread z-score and, where tested, the p-value).
- The vectorized frame (:func:`pair_frame`) has columns ``ts_event, close_a, close_b``: the
  inner join of the two legs' bars on ``ts_event``, ascending. It holds exactly the pair bars
  the incremental form acts on, in the same order.

Cost of the cointegration test
------------------------------
An augmented Dickey–Fuller regression over a rolling window has no O(1) update, so the
Engle–Granger test (:func:`engle_granger`) is re-estimated every ``retest_every`` pair bars over
the window held in a preallocated ring buffer (:class:`PairWindow`): O(window) work every k
bars, amortized O(window / k) per bar, and no allocation that grows. Between retests the fitted
hedge ratio, intercept and spread standard deviation stay fixed, so scoring a bar is O(1).
The p-value is MacKinnon's (1994) approximation for an Engle–Granger test with a constant and
two I(1) series (:func:`mackinnon_p_value`, the same polynomial and tables as
``statsmodels.tsa.adfvalues.mackinnonp(stat, "c", N=2)``), computed here so that the live core
need not import statsmodels and scipy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from core.errors import ConfigError, DataError
from core.model import Bar, Signal
from core.state import decode_floats, encode_floats
from core.strategies.base import C, Strategy

# MacKinnon (1994) response-surface coefficients for regression "c" and N = 2 series, as in
# statsmodels.tsa.adfvalues (tau_c_smallp[1] * (1, 1, 1e-2), tau_c_largep[1] * (1, .1, .1, .01)).
_TAU_MAX = 0.92
_TAU_MIN = -18.86
_TAU_STAR = -2.62
_SMALL_P = (2.92, 1.5012, 3.9796e-2)
_LARGE_P = (2.1945, 0.64695, -0.29198, -0.042377)


def split_pair(symbol: str) -> tuple[str, str]:
    """Return the legs ``(A, B)`` of a pair symbol ``"A/B"``.

    Raises
    ------
    ConfigError
        If ``symbol`` is not two distinct non-empty names separated by one ``/``.
    """
    legs = symbol.split("/")
    if len(legs) != 2 or not all(leg.strip() for leg in legs) or legs[0] == legs[1]:
        raise ConfigError(
            f"pair symbol must look like 'A/B' with two distinct legs, was {symbol!r}"
        )
    return legs[0], legs[1]


def pair_frame(bars_a: pd.DataFrame, bars_b: pd.DataFrame) -> pd.DataFrame:
    """Join two legs' bars frames into the standard pair frame.

    Parameters
    ----------
    bars_a, bars_b
        Bars frames (``ts_event`` and ``close`` columns at least) of leg A and leg B.

    Returns
    -------
    pandas.DataFrame
        Columns ``ts_event`` (int64 ns), ``close_a``, ``close_b`` (float64): the inner join on
        ``ts_event``, ascending, keeping each leg's first bar of a repeated timestamp (the
        incremental form ignores a bar stamped at an already paired time).
    """

    def leg(frame: pd.DataFrame, name: str) -> pd.DataFrame:
        one = frame[["ts_event", "close"]].drop_duplicates("ts_event", keep="first")
        return one.rename(columns={"close": name})

    joined = leg(bars_a, "close_a").merge(leg(bars_b, "close_b"), on="ts_event", how="inner")
    joined = joined.sort_values("ts_event", kind="stable").reset_index(drop=True)
    return joined.astype({"ts_event": "int64", "close_a": "float64", "close_b": "float64"})


class PairAligner:
    """Turns the merged bars of two legs into pair bars, keeping only the last bar of each leg."""

    __slots__ = ("_last_a", "_last_b", "leg_a", "leg_b")

    def __init__(self, symbol: str) -> None:
        self.leg_a, self.leg_b = split_pair(symbol)
        self._last_a: tuple[int, float] | None = None
        self._last_b: tuple[int, float] | None = None

    def update(self, bar: Bar) -> tuple[int, float, float] | None:
        """Record ``bar``; return ``(ts_event, close_a, close_b)`` when it completes a pair bar."""
        if bar.symbol not in (self.leg_a, self.leg_b):
            raise DataError(
                f"bar symbol {bar.symbol!r} is not a leg of pair '{self.leg_a}/{self.leg_b}'"
            )
        last = self._last_a if bar.symbol == self.leg_a else self._last_b
        # A repeated or older stamp of the same leg is a redelivery: the first bar stands.
        if last is not None and bar.ts_event <= last[0]:
            return None
        if bar.symbol == self.leg_a:
            self._last_a = (bar.ts_event, bar.close)
        else:
            self._last_b = (bar.ts_event, bar.close)
        if self._last_a is None or self._last_b is None or self._last_a[0] != self._last_b[0]:
            return None
        return bar.ts_event, self._last_a[1], self._last_b[1]

    def to_state(self) -> dict[str, Any]:
        return {
            "last_a": list(self._last_a) if self._last_a else None,
            "last_b": list(self._last_b) if self._last_b else None,
        }

    def restore(self, state: dict[str, Any]) -> None:
        self._last_a = _stamped(state["last_a"])
        self._last_b = _stamped(state["last_b"])


def _stamped(value: list[Any] | None) -> tuple[int, float] | None:
    return None if value is None else (int(value[0]), float(value[1]))


class PairWindow:
    """The last ``size`` pair closes in preallocated ring buffers."""

    __slots__ = ("_a", "_b", "_index", "count", "size")

    def __init__(self, size: int) -> None:
        self.size = size
        self._a = np.zeros(size)
        self._b = np.zeros(size)
        self._index = 0
        self.count = 0  # values held, at most ``size``

    @property
    def full(self) -> bool:
        return self.count == self.size

    def push(self, a: float, b: float) -> None:
        self._a[self._index] = a
        self._b[self._index] = b
        self._index = (self._index + 1) % self.size
        self.count = min(self.count + 1, self.size)

    def ordered(self) -> tuple[np.ndarray, np.ndarray]:
        """Return both legs' held closes, oldest first (O(size): call only on a retest)."""
        if not self.full:
            return self._a[: self.count].copy(), self._b[: self.count].copy()
        i = self._index
        return np.concatenate((self._a[i:], self._a[:i])), np.concatenate(
            (self._b[i:], self._b[:i])
        )

    def to_state(self) -> dict[str, Any]:
        a, b = self.ordered()
        return {"a": a.tolist(), "b": b.tolist()}

    def restore(self, state: dict[str, Any]) -> None:
        a, b = state["a"], state["b"]
        if len(a) != len(b) or len(a) > self.size:
            raise ValueError(f"state window holds {len(a)}/{len(b)} values, size is {self.size}")
        self.__init__(self.size)  # type: ignore[misc]
        for x, y in zip(a, b, strict=True):
            self.push(float(x), float(y))


@dataclass(frozen=True)
class EngleGranger:
    """One Engle–Granger fit: ``close_a = intercept + hedge_ratio * close_b + residual``.

    ``spread_std`` is the residual's sample standard deviation (ddof=1); ``adf_stat`` the ADF
    t-statistic of the residual (no constant, fixed lags) and ``p_value`` MacKinnon's p-value.
    """

    hedge_ratio: float
    intercept: float
    spread_std: float
    adf_stat: float
    p_value: float

    def z_score(self, close_a: float, close_b: float) -> float:
        """Return the spread's distance from its fitted mean in fitted standard deviations."""
        return (close_a - self.hedge_ratio * close_b - self.intercept) / self.spread_std

    def to_state(self) -> list[float | None]:
        values = (self.hedge_ratio, self.intercept, self.spread_std, self.adf_stat, self.p_value)
        return encode_floats(values)

    @classmethod
    def from_state(cls, state: list[float | None]) -> EngleGranger:
        return cls(*decode_floats(state))


NO_FIT = EngleGranger(math.nan, math.nan, math.nan, math.nan, 1.0)


def engle_granger(a: np.ndarray, b: np.ndarray, lags: int) -> EngleGranger:
    """Fit ``a`` on ``b`` by OLS with a constant and ADF-test the residual.

    Parameters
    ----------
    a, b
        Closes of leg A and leg B over the window, oldest first.
    lags
        Lagged differences in the ADF regression (statsmodels ``maxlag=lags, autolag=None``).

    Returns
    -------
    EngleGranger
        The fit; :data:`NO_FIT` (p-value 1) when leg B is constant or the residual vanishes,
        so a degenerate window is never traded.
    """
    bc = b - b.mean()
    ac = a - a.mean()
    sbb = float(bc @ bc)
    if sbb <= 0.0:
        return NO_FIT
    hedge = float(bc @ ac) / sbb
    residual = ac - hedge * bc
    ssr = float(residual @ residual)
    if ssr <= 0.0:
        return NO_FIT
    stat = adf_statistic(residual, lags)
    return EngleGranger(
        hedge_ratio=hedge,
        intercept=float(a.mean()) - hedge * float(b.mean()),
        spread_std=math.sqrt(ssr / (len(a) - 1)),
        adf_stat=stat,
        p_value=mackinnon_p_value(stat),
    )


def adf_statistic(x: np.ndarray, lags: int) -> float:
    """Return the ADF t-statistic of ``x`` with no constant and ``lags`` lagged differences.

    Regresses ``dx[t]`` on ``x[t-1], dx[t-1], ..., dx[t-lags]`` over the ``len(x) - 1 - lags``
    rows where all exist, as ``statsmodels.tsa.stattools.adfuller(x, maxlag=lags,
    autolag=None, regression="n")`` does.
    """
    dx = np.diff(x)
    rows = len(dx) - lags
    columns = [x[lags : lags + rows]] + [dx[lags - j : lags - j + rows] for j in range(1, lags + 1)]
    design = np.column_stack(columns)
    target = dx[lags:]
    gram_inverse = np.linalg.pinv(design.T @ design)
    coef = gram_inverse @ (design.T @ target)
    residual = target - design @ coef
    variance = float(residual @ residual) / (rows - design.shape[1])
    if variance <= 0.0:
        return -math.inf  # an exact fit: as stationary as it gets (statsmodels' coint agrees)
    return float(coef[0]) / math.sqrt(variance * float(gram_inverse[0, 0]))


def mackinnon_p_value(stat: float) -> float:
    """Return MacKinnon's approximate p-value of an Engle–Granger statistic (constant, 2 series)."""
    if stat > _TAU_MAX:
        return 1.0
    if stat < _TAU_MIN:
        return 0.0
    coef = _SMALL_P if stat <= _TAU_STAR else _LARGE_P
    # Horner's rule, highest power first, as numpy.polyval evaluates it.
    value = 0.0
    for c in reversed(coef):
        value = value * stat + c
    return 0.5 * math.erfc(-value / math.sqrt(2.0))


def next_spread_position(position: float, z: float, z_entry: float, z_exit: float) -> float:
    """Apply the entry/exit hysteresis to the spread z-score.

    Flat: short the spread above ``z_entry``, long it below ``-z_entry``. Long: stay until the
    spread has come back to ``-z_exit`` (flip short beyond ``z_entry``); short symmetrically.
    """
    if z > z_entry:
        return -1.0
    if z < -z_entry:
        return 1.0
    if position > 0.0 and z >= -z_exit:
        return 0.0
    if position < 0.0 and z <= z_exit:
        return 0.0
    return position


def finite_reason(**values: float) -> dict[str, float]:
    """Keep the finite numbers only: a signal's reason must survive a JSON round trip."""
    return {key: float(v) for key, v in values.items() if math.isfinite(v)}


class PairStrategy(Strategy[C]):
    """A strategy on the spread ``"A/B"``: it reads both legs and trades them as one position."""

    def subscriptions(self) -> tuple[str, ...]:
        return split_pair(self.symbol)

    def legs(self, signal: Signal) -> dict[str, float]:
        """+1 spread is +1 unit of A and -hedge_ratio of B, the ratio the signal's reason holds."""
        a, b = split_pair(self.symbol)
        target = signal.target_position
        return {a: target, b: -target * signal.reason.get("hedge_ratio", 0.0)}
