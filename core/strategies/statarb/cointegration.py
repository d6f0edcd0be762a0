"""Engle–Granger cointegration on a rolling window: trade the spread only while it tests stationary.

Every ``retest_every`` pair bars, once ``window`` pair bars are held, the strategy regresses
``close_a`` on ``close_b`` (OLS with a constant) over the last ``window`` pair bars and runs an
augmented Dickey–Fuller test (``adf_lags`` lagged differences, no constant) on the residual; the
p-value is MacKinnon's. The fit's hedge ratio, intercept and residual standard deviation then
score each pair bar until the next retest: ``z = (close_a - hedge_ratio * close_b - intercept) /
spread_std``. While the last test's p-value is at most ``max_p_value`` the strategy shorts the
spread above ``z_entry``, goes long below ``-z_entry`` and closes once ``|z|`` is back inside
``z_exit``; a retest that no longer finds cointegration closes the position at once.

Pair convention, the ring buffer and the amortized O(window / retest_every) cost of the test are
described in :mod:`core.strategies.statarb.pairs_common`.

Vectorized frame: ``ts_event, close_a, close_b`` (:func:`~.pairs_common.pair_frame`).
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
    NO_FIT,
    EngleGranger,
    PairAligner,
    PairStrategy,
    PairWindow,
    engle_granger,
    finite_reason,
    next_spread_position,
)


class CointegrationConfig(StrategyConfig, frozen=True, kw_only=True):
    aliases: ClassVar[dict[str, str]] = {
        "entry": "z_entry",
        "exit": "z_exit",
        "p": "max_p_value",
        "lags": "adf_lags",
    }

    window: int = 120
    retest_every: int = 20
    adf_lags: int = 1
    max_p_value: float = 0.05
    z_entry: float = 2.0
    z_exit: float = 0.5

    def __post_init__(self) -> None:
        require(30 <= self.window <= 10_000, f"window must be in [30, 10000], was {self.window}")
        require(
            1 <= self.retest_every <= self.window,
            f"retest_every must be in [1, window={self.window}], was {self.retest_every}",
        )
        require(
            0 <= self.adf_lags <= self.window // 4,
            f"adf_lags must be in [0, window // 4 = {self.window // 4}], was {self.adf_lags}",
        )
        require(
            0.0 < self.max_p_value < 1.0,
            f"max_p_value must be in (0, 1), was {self.max_p_value}",
        )
        require(self.z_exit >= 0.0, f"z_exit must be >= 0, was {self.z_exit}")
        require(
            self.z_entry > self.z_exit,
            f"z_entry must be > z_exit, was {self.z_entry} <= {self.z_exit}",
        )


class _CointegrationState(StrategyState):
    aligner: dict[str, Any]  # the pair aligner's and window's own states
    window: dict[str, Any]
    pairs: int
    fit: list[float | None]  # ``EngleGranger.to_state``: null (NaN) before the first fit
    position: float


@register
class Cointegration(PairStrategy[CointegrationConfig]):
    """Spread position (+1 long A / short hedge_ratio B) while the pair tests as cointegrated."""

    spec = StrategySpec(
        name="cointegration",
        family=Family.STATISTICAL_ARBITRAGE,
        tier=Tier.TACTICAL,
        data_kind=DataKind.PAIR_BARS,
        summary=(
            "Engle–Granger on a rolling window: OLS hedge ratio, ADF test on the residual; trade "
            "the spread z-score only while the pair is cointegrated at the chosen p-value."
        ),
        dataset="equities_daily_stocknet88",
    )
    config_type = CointegrationConfig

    def __init__(
        self, config: CointegrationConfig, symbol: str, *, name: str | None = None
    ) -> None:
        super().__init__(config, symbol, name=name)
        self._aligner = PairAligner(symbol)
        self._window = PairWindow(config.window)
        self._pairs = 0  # pair bars seen: schedules the retests
        self._fit: EngleGranger = NO_FIT
        self._position = 0.0

    @property
    def warmup(self) -> int:
        # Two bars (one per leg) per pair bar; the window's last pair bar can signal.
        return 2 * self.config.window

    def update(self, bar: Bar) -> Signal | None:
        pair = self._aligner.update(bar)
        if pair is None:
            return None
        ts_event, close_a, close_b = pair
        cfg = self.config
        self._window.push(close_a, close_b)
        self._pairs += 1
        if self._pairs < cfg.window:
            return None
        if (self._pairs - cfg.window) % cfg.retest_every == 0:
            self._fit = engle_granger(*self._window.ordered(), cfg.adf_lags)
        fit = self._fit
        z = fit.z_score(close_a, close_b) if math.isfinite(fit.spread_std) else math.nan
        if fit.p_value <= cfg.max_p_value and math.isfinite(z):
            self._position = next_spread_position(self._position, z, cfg.z_entry, cfg.z_exit)
        else:
            self._position = 0.0
        reason = finite_reason(
            z_score=z,
            hedge_ratio=fit.hedge_ratio,
            intercept=fit.intercept,
            spread_std=fit.spread_std,
            adf_stat=fit.adf_stat,
            p_value=fit.p_value,
        )
        strength = abs(z) if math.isfinite(z) else 0.0
        return self._emit(ts_event, self._position, strength, reason)

    def to_state(self) -> dict[str, Any]:
        saved = _CointegrationState(
            aligner=self._aligner.to_state(),
            window=self._window.to_state(),
            pairs=self._pairs,
            fit=self._fit.to_state(),
            position=self._position,
        )
        return {**self._base_state(), **saved.to_dict()}

    def restore(self, state: dict[str, Any]) -> None:
        saved = _CointegrationState.from_dict(state)
        self._restore_base(state)
        self._aligner.restore(saved.aligner)
        self._window.restore(saved.window)
        self._pairs = saved.pairs
        self._fit = EngleGranger.from_state(saved.fit)
        self._position = saved.position

    @classmethod
    def vectorized(cls, config: CointegrationConfig, frame: pd.DataFrame) -> pd.Series:
        close_a = frame["close_a"].to_numpy(np.float64)
        close_b = frame["close_b"].to_numpy(np.float64)
        z, p_value = _scores(config, close_a, close_b)
        target = np.full(len(frame), np.nan)
        position = 0.0
        # The entry/exit hysteresis is a recursion: a tight loop over the precomputed scores.
        for i in range(config.window - 1, len(frame)):
            if p_value[i] <= config.max_p_value and math.isfinite(z[i]):
                position = next_spread_position(position, z[i], config.z_entry, config.z_exit)
            else:
                position = 0.0
            target[i] = position
        return pd.Series(target, index=frame.index, name="target_position")


def _scores(
    config: CointegrationConfig, close_a: np.ndarray, close_b: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Return each pair bar's z-score and p-value under the fit of the latest retest."""
    n, window = len(close_a), config.window
    hedge, intercept, std, p_value = (np.full(n, np.nan) for _ in range(4))
    for end in range(window, n + 1, config.retest_every):
        fit = engle_granger(
            close_a[end - window : end], close_b[end - window : end], config.adf_lags
        )
        rows = slice(end - 1, min(end - 1 + config.retest_every, n))
        hedge[rows], intercept[rows], std[rows] = fit.hedge_ratio, fit.intercept, fit.spread_std
        p_value[rows] = fit.p_value
    z = (close_a - hedge * close_b - intercept) / std
    return z, p_value
