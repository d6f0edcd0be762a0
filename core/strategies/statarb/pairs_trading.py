"""Pairs trading with a dynamic hedge ratio from an online Kalman filter.

The hidden state is ``(hedge_ratio, intercept)`` in ``close_a = intercept + hedge_ratio *
close_b + noise``, following a random walk with covariance ``delta / (1 - delta) * I`` per pair
bar (``delta = 0`` makes the filter recursive least squares over all bars so far).

Warm-up without a guessed prior: the first ``warmup_bars`` pair bars feed running (Welford)
means and co-moments, O(1) each; their OLS fit gives the initial state, its parameter covariance
``obs_var * (X'X)^-1`` the initial state covariance, and its residual variance the observation
noise ``obs_var``, so nothing depends on the legs' price scale. From the next pair bar on, each
bar is first scored with the prior state: the innovation ``e = close_a - (hedge_ratio * close_b
+ intercept)`` over its predicted standard deviation ``sqrt(Q)`` is the normalized spread ``z``;
then the state is updated with the bar. The position follows ``z`` with the same entry/exit
hysteresis as the cointegration strategy: short the spread above ``z_entry``, long below
``-z_entry``, flat once back inside ``z_exit``.

Pair convention (symbol ``"A/B"``, merged bars of both legs, spread position with the hedge ratio
in ``reason``): :mod:`core.strategies.statarb.pairs_common`.

Vectorized frame: ``ts_event, close_a, close_b`` (:func:`~.pairs_common.pair_frame`); the filter
is a recursion, so the vectorized form runs it as a tight loop over the frame's arrays.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from core.model import Bar, Signal
from core.state import StrategyState
from core.strategies.base import (
    DataKind,
    Family,
    StrategyConfig,
    StrategySpec,
    Tier,
    require,
)
from core.strategies.catalogue import register
from core.strategies.statarb.pairs_common import (
    PairAligner,
    PairStrategy,
    finite_reason,
    next_spread_position,
)


class PairsTradingConfig(StrategyConfig, frozen=True, kw_only=True):
    aliases: ClassVar[dict[str, str]] = {"entry": "z_entry", "exit": "z_exit"}

    warmup_bars: int = 60
    delta: float = 1e-5
    z_entry: float = 1.5
    z_exit: float = 0.25

    def __post_init__(self) -> None:
        require(
            10 <= self.warmup_bars <= 10_000,
            f"warmup_bars must be in [10, 10000], was {self.warmup_bars}",
        )
        require(0.0 <= self.delta < 1.0, f"delta must be in [0, 1), was {self.delta}")
        require(self.z_exit >= 0.0, f"z_exit must be >= 0, was {self.z_exit}")
        require(
            self.z_entry > self.z_exit,
            f"z_entry must be > z_exit, was {self.z_entry} <= {self.z_exit}",
        )


class _Moments:
    """Running means and co-moments of (a, b) (Welford): the warm-up OLS in O(1) per bar."""

    __slots__ = ("c_ab", "m2_a", "m2_b", "mean_a", "mean_b", "n")

    def __init__(self) -> None:
        self.n = 0
        self.mean_a = self.mean_b = self.m2_a = self.m2_b = self.c_ab = 0.0

    def add(self, a: float, b: float) -> None:
        self.n += 1
        da = a - self.mean_a
        db = b - self.mean_b
        self.mean_a += da / self.n
        self.mean_b += db / self.n
        self.m2_a += da * (a - self.mean_a)
        self.m2_b += db * (b - self.mean_b)
        self.c_ab += da * (b - self.mean_b)

    def to_state(self) -> list[float]:
        return [self.n, self.mean_a, self.mean_b, self.m2_a, self.m2_b, self.c_ab]

    def restore(self, state: list[float]) -> None:
        self.n = int(state[0])
        self.mean_a, self.mean_b, self.m2_a, self.m2_b, self.c_ab = (float(v) for v in state[1:])


class _Kalman:
    """The filter over (hedge_ratio, intercept): a 2x2 covariance kept as three floats."""

    __slots__ = ("hedge", "intercept", "obs_var", "p00", "p01", "p11", "state_var")

    def __init__(self, values: list[float], state_var: float) -> None:
        self.hedge, self.intercept, self.obs_var, self.p00, self.p01, self.p11 = values
        self.state_var = state_var

    @classmethod
    def from_moments(cls, m: _Moments, state_var: float) -> _Kalman | None:
        """Start from the OLS fit of the warm-up bars; ``None`` if that fit is degenerate."""
        if m.m2_b <= 0.0:
            return None
        hedge = m.c_ab / m.m2_b
        ssr = m.m2_a - hedge * m.c_ab
        if ssr <= 0.0:
            return None
        obs_var = ssr / (m.n - 2)
        values = [
            hedge,
            m.mean_a - hedge * m.mean_b,
            obs_var,
            obs_var / m.m2_b,
            -obs_var * m.mean_b / m.m2_b,
            obs_var * (1.0 / m.n + m.mean_b * m.mean_b / m.m2_b),
        ]
        return cls(values, state_var)

    def step(self, a: float, b: float) -> float:
        """Return the bar's normalized innovation under the prior state, then absorb the bar."""
        p00 = self.p00 + self.state_var
        p01 = self.p01
        p11 = self.p11 + self.state_var
        error = a - (self.hedge * b + self.intercept)
        hr0 = b * p00 + p01
        hr1 = b * p01 + p11
        q = b * hr0 + hr1 + self.obs_var
        k0 = hr0 / q
        k1 = hr1 / q
        self.hedge += k0 * error
        self.intercept += k1 * error
        self.p00 = p00 - k0 * hr0
        self.p01 = p01 - k0 * hr1
        self.p11 = p11 - k1 * hr1
        return error / math.sqrt(q)

    def to_state(self) -> list[float]:
        return [self.hedge, self.intercept, self.obs_var, self.p00, self.p01, self.p11]


class _PairsTradingState(StrategyState):
    aligner: dict[str, Any]  # the pair aligner's own state
    moments: list[float]  # the warm-up moments (``_Moments.to_state``: the count first)
    filter: list[float] | None  # the Kalman filter's state, None until the warm-up ends
    position: float


@register
class PairsTrading(PairStrategy[PairsTradingConfig]):
    """Spread position (+1 long A / short hedge_ratio B) from the Kalman-normalized spread."""

    spec = StrategySpec(
        name="pairs_trading",
        family=Family.STATISTICAL_ARBITRAGE,
        tier=Tier.TACTICAL,
        data_kind=DataKind.PAIR_BARS,
        summary=(
            "Dynamic hedge ratio with an online Kalman filter; trade the spread normalized by "
            "its predicted standard deviation."
        ),
        dataset="etf_daily_pyalgotrade",
    )
    config_type = PairsTradingConfig

    def __init__(self, config: PairsTradingConfig, symbol: str, *, name: str | None = None) -> None:
        super().__init__(config, symbol, name=name)
        self._aligner = PairAligner(symbol)
        self._moments = _Moments()
        self._filter: _Kalman | None = None
        self._position = 0.0

    @property
    def _state_var(self) -> float:
        return self.config.delta / (1.0 - self.config.delta)

    @property
    def warmup(self) -> int:
        # Two bars per pair bar; the first pair bar after the warm-up fit can signal.
        return 2 * (self.config.warmup_bars + 1)

    def update(self, bar: Bar) -> Signal | None:
        pair = self._aligner.update(bar)
        if pair is None:
            return None
        ts_event, close_a, close_b = pair
        if self._filter is None:
            self._warm_up(close_a, close_b)
            return None
        hedge, intercept = self._filter.hedge, self._filter.intercept
        z = self._filter.step(close_a, close_b)
        cfg = self.config
        self._position = next_spread_position(self._position, z, cfg.z_entry, cfg.z_exit)
        reason = finite_reason(z_score=z, hedge_ratio=hedge, intercept=intercept)
        return self._emit(ts_event, self._position, abs(z), reason)

    def _warm_up(self, close_a: float, close_b: float) -> None:
        self._moments.add(close_a, close_b)
        if self._moments.n < self.config.warmup_bars:
            return
        self._filter = _Kalman.from_moments(self._moments, self._state_var)
        # A degenerate warm-up (a constant leg) starts over rather than trade a meaningless fit.
        self._moments = _Moments()

    def to_state(self) -> dict[str, Any]:
        saved = _PairsTradingState(
            aligner=self._aligner.to_state(),
            moments=self._moments.to_state(),
            filter=self._filter.to_state() if self._filter else None,
            position=self._position,
        )
        return {**self._base_state(), **saved.to_dict()}

    def restore(self, state: dict[str, Any]) -> None:
        saved = _PairsTradingState.from_dict(state)
        self._restore_base(state)
        self._aligner.restore(saved.aligner)
        self._moments.restore(saved.moments)
        values = saved.filter
        self._filter = None if values is None else _Kalman(values, self._state_var)
        self._position = saved.position

    @classmethod
    def vectorized(cls, config: PairsTradingConfig, frame: pd.DataFrame) -> pd.Series:
        close_a = frame["close_a"].to_numpy(np.float64)
        close_b = frame["close_b"].to_numpy(np.float64)
        z = kalman_spread(config, close_a, close_b)["z_score"]
        target = np.full(len(frame), np.nan)
        position = 0.0
        for i in np.flatnonzero(~np.isnan(z)).tolist():
            position = next_spread_position(position, z[i], config.z_entry, config.z_exit)
            target[i] = position
        return pd.Series(target, index=frame.index, name="target_position")


def kalman_spread(
    config: PairsTradingConfig, close_a: np.ndarray, close_b: np.ndarray
) -> dict[str, np.ndarray]:
    """Run the warm-up fit and the filter over whole arrays (a loop: the filter is a recursion).

    Returns
    -------
    dict of numpy.ndarray
        ``z_score``, ``hedge_ratio`` and ``intercept`` per pair bar, the prior state that scored
        it; NaN while warming up.
    """
    n = len(close_a)
    out = {key: np.full(n, np.nan) for key in ("z_score", "hedge_ratio", "intercept")}
    state_var = config.delta / (1.0 - config.delta)
    count, mean_a, mean_b, m2_a, m2_b, c_ab = 0, 0.0, 0.0, 0.0, 0.0, 0.0
    ready = False
    hedge = intercept = obs_var = p00 = p01 = p11 = 0.0
    for i in range(n):
        a, b = float(close_a[i]), float(close_b[i])
        if not ready:
            count += 1
            da, db = a - mean_a, b - mean_b
            mean_a += da / count
            mean_b += db / count
            m2_a += da * (a - mean_a)
            m2_b += db * (b - mean_b)
            c_ab += da * (b - mean_b)
            if count < config.warmup_bars:
                continue
            ssr = m2_a - (c_ab / m2_b) * c_ab if m2_b > 0.0 else 0.0
            if ssr > 0.0:
                hedge = c_ab / m2_b
                intercept = mean_a - hedge * mean_b
                obs_var = ssr / (count - 2)
                p00 = obs_var / m2_b
                p01 = -obs_var * mean_b / m2_b
                p11 = obs_var * (1.0 / count + mean_b * mean_b / m2_b)
                ready = True
            count, mean_a, mean_b, m2_a, m2_b, c_ab = 0, 0.0, 0.0, 0.0, 0.0, 0.0
            continue
        out["hedge_ratio"][i], out["intercept"][i] = hedge, intercept
        r00, r11 = p00 + state_var, p11 + state_var
        error = a - (hedge * b + intercept)
        h0 = b * r00 + p01
        h1 = b * p01 + r11
        q = b * h0 + h1 + obs_var
        out["z_score"][i] = error / math.sqrt(q)
        hedge += (h0 / q) * error
        intercept += (h1 / q) * error
        p00, p01, p11 = r00 - (h0 / q) * h0, p01 - (h0 / q) * h1, r11 - (h1 / q) * h1
    return out
