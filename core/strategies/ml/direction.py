"""Learned next-period direction: a model's P(up) from bar features, turned into a position.

Frame: the standard bars frame, columns ``ts_event, open, high, low, close, volume``.

Per bar the strategy computes the features of :mod:`core.features.direction` in O(1), asks its
:class:`Predictor` for the probability that the next period's return is positive, and targets
+1 when ``P(up) > upper``, -1 (``allow_short``) or 0 when ``P(up) < lower``, and keeps its
current target in between.

Where the predictor comes from depends on ``model``:

- ``"linear"``: a logistic model held in the config itself (``coefficients`` over the
  features in order, plus ``intercept``), so the type runs from its JSON config alone. The
  default coefficients are a plain trend prior (20-bar return and distance from the 50-bar
  mean), not a fitted model.
- ``"xgboost"`` or ``"sklearn"``: a fitted model stored in its library's own format beside the
  config; the registry loader builds a predictor from it and attaches it with
  :meth:`MLDirection.attach_predictor`. Until then the strategy refuses to run
  (:class:`~core.errors.StrategyError`). ``model_params`` records the model's hyper-parameters.

This module imports neither xgboost nor scikit-learn: predictors are plain objects with
``predict_proba_one`` and ``predict_proba``.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Literal, Protocol

import msgspec
import numpy as np
import pandas as pd

from core.errors import StrategyError
from core.features.direction import DirectionFeatures, FeatureParams, feature_frame, feature_names
from core.model import Bar, Signal
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
from core.strategies.catalogue import register

ModelKind = Literal["linear", "xgboost", "sklearn"]


class Predictor(Protocol):
    """A fitted binary classifier seen as P(next return > 0) from a feature vector."""

    def predict_proba_one(self, features: np.ndarray) -> float:
        """P(up) for one feature vector (1-D, in :func:`feature_names` order)."""
        ...

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        """P(up) per row of a 2-D feature matrix; must equal ``predict_proba_one`` row by row."""
        ...


class LinearPredictor:
    """Logistic model ``P(up) = 1 / (1 + exp(-(intercept + coefficients . features)))``.

    Both forms add the terms in the same order, so they agree to the last few bits.
    """

    def __init__(self, coefficients: tuple[float, ...], intercept: float) -> None:
        self.coefficients = tuple(float(c) for c in coefficients)
        self.intercept = float(intercept)

    def predict_proba_one(self, features: np.ndarray) -> float:
        z = self.intercept
        for w, x in zip(self.coefficients, features.tolist(), strict=True):
            z += w * x
        return _sigmoid(z)

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        z = np.full(features.shape[0], self.intercept)
        for j, w in enumerate(self.coefficients):
            z = z + w * features[:, j]
        result: np.ndarray = 1.0 / (1.0 + np.exp(-z))
        return result


def _sigmoid(z: float) -> float:
    # Written as in the vectorized form; math.exp overflows where np.exp returns inf.
    return 1.0 / (1.0 + math.exp(-z)) if z > -700.0 else 0.0


def _default_coefficients() -> tuple[float, ...]:
    prior = {"ret_20": 10.0, "dist_ma_50": 10.0}
    return tuple(prior.get(name, 0.0) for name in feature_names(FeatureParams()))


class MLDirectionConfig(StrategyConfig, frozen=True, kw_only=True):
    aliases: ClassVar[dict[str, str]] = {"short": "allow_short"}

    return_horizons: tuple[int, ...] = (1, 5, 20)
    vol_span: int = 20
    ma_periods: tuple[int, ...] = (10, 50)
    rsi_period: int = 14
    volume_window: int = 20
    model: ModelKind = "linear"
    coefficients: tuple[float, ...] = _default_coefficients()
    intercept: float = 0.0
    model_params: dict[str, float | int | str | bool] = msgspec.field(default_factory=dict)
    upper: float = 0.55
    lower: float = 0.45
    allow_short: bool = False

    def __post_init__(self) -> None:
        params = self.feature_params()  # raises ConfigError naming a bad period
        require(0.0 < self.lower < 1.0, f"lower must be in (0, 1), was {self.lower}")
        require(0.0 < self.upper < 1.0, f"upper must be in (0, 1), was {self.upper}")
        require(
            self.lower <= self.upper,
            f"lower must be <= upper, was {self.lower} > {self.upper}",
        )
        n = len(params.names)
        if self.model == "linear" or self.coefficients:
            require(
                len(self.coefficients) == n,
                f"coefficients must hold {n} values (one per feature {list(params.names)}), "
                f"was {len(self.coefficients)}",
            )
        bad = [c for c in (*self.coefficients, self.intercept) if not math.isfinite(c)]
        require(not bad, f"coefficients and intercept must be finite, was {bad}")

    def feature_params(self) -> FeatureParams:
        return FeatureParams(
            return_horizons=self.return_horizons,
            vol_span=self.vol_span,
            ma_periods=self.ma_periods,
            rsi_period=self.rsi_period,
            volume_window=self.volume_window,
        )

    def linear_predictor(self) -> LinearPredictor | None:
        """The predictor the config itself holds (``model == "linear"``), else ``None``."""
        if self.model != "linear":
            return None
        return LinearPredictor(self.coefficients, self.intercept)


def _missing_predictor(config: MLDirectionConfig, symbol: str) -> StrategyError:
    return StrategyError(
        f"ml_direction on {symbol}: model {config.model!r} needs a fitted predictor attached "
        "(registry loader or attach_predictor); none was"
    )


class _MLDirectionState(StrategyState):
    features: dict[str, Any]  # the feature pipeline's own state


@register
class MLDirection(Strategy[MLDirectionConfig]):
    """Long when the model's P(up) > upper, short or flat when < lower, hold in between."""

    spec = StrategySpec(
        name="ml_direction",
        family=Family.TREND_FOLLOWING,
        tier=Tier.TACTICAL,
        data_kind=DataKind.BARS,
        summary=(
            "Learned next-period direction (XGBoost, scikit-learn or a linear model in the "
            "config) from lagged returns, volatility, moving-average distance, RSI and volume."
        ),
        dataset="equities_daily_stocknet88",
    )
    config_type = MLDirectionConfig

    def __init__(
        self,
        config: MLDirectionConfig,
        symbol: str,
        *,
        name: str | None = None,
        predictor: Predictor | None = None,
    ) -> None:
        super().__init__(config, symbol, name=name)
        self._features = DirectionFeatures(config.feature_params())
        self._predictor: Predictor | None = predictor or config.linear_predictor()

    def attach_predictor(self, predictor: Predictor) -> None:
        """Use ``predictor`` (a fitted model loaded by the registry) from the next bar on."""
        self._predictor = predictor

    @property
    def has_predictor(self) -> bool:
        return self._predictor is not None

    @property
    def warmup(self) -> int:
        return self._features.warmup

    def update(self, bar: Bar) -> Signal | None:
        predictor = self._predictor
        if predictor is None:
            raise _missing_predictor(self.config, self.symbol)
        features = self._features.update(bar.close, bar.volume)
        if features is None:
            return None
        p_up = float(predictor.predict_proba_one(features))
        if not 0.0 <= p_up <= 1.0:
            raise StrategyError(
                f"ml_direction on {self.symbol}: P(up) must be in [0, 1], was {p_up}"
            )
        target = self._decide(p_up, self._last_output[0])
        reason = {"p_up": p_up, "upper": self.config.upper, "lower": self.config.lower}
        return self._emit(bar.ts_event, target, abs(2.0 * p_up - 1.0), reason)

    def _decide(self, p_up: float, current: float) -> float:
        if p_up > self.config.upper:
            return 1.0
        if p_up < self.config.lower:
            return -1.0 if self.config.allow_short else 0.0
        return current

    def reset(self) -> None:
        # The predictor is a dependency, not state: a reset strategy keeps it.
        predictor = self._predictor
        super().reset()
        self._predictor = predictor

    def to_state(self) -> dict[str, Any]:
        saved = _MLDirectionState(features=self._features.to_state())
        return {**self._base_state(), **saved.to_dict()}

    def restore(self, state: dict[str, Any]) -> None:
        saved = _MLDirectionState.from_dict(state)
        self._restore_base(state)
        self._features.restore(saved.features)

    @classmethod
    def vectorized(cls, config: MLDirectionConfig, frame: pd.DataFrame) -> pd.Series:
        predictor = config.linear_predictor()
        if predictor is None:
            raise _missing_predictor(config, "a frame")
        return cls.targets(config, frame, predictor)

    @classmethod
    def probabilities(
        cls, config: MLDirectionConfig, frame: pd.DataFrame, predictor: Predictor
    ) -> pd.Series:
        """P(up) per bar of ``frame`` from ``predictor`` (NaN during warm-up)."""
        features = feature_frame(frame, config.feature_params())
        ready = features.notna().all(axis=1).to_numpy()
        p_up = np.full(len(frame), np.nan)
        if ready.any():
            p_up[ready] = predictor.predict_proba(features.to_numpy()[ready])
        return pd.Series(p_up, index=frame.index, name="p_up")

    @classmethod
    def targets(
        cls, config: MLDirectionConfig, frame: pd.DataFrame, predictor: Predictor
    ) -> pd.Series:
        """Target position per bar of ``frame`` with ``predictor`` (NaN during warm-up)."""
        p_up = cls.probabilities(config, frame, predictor)
        return targets_from_probabilities(p_up, config.upper, config.lower, config.allow_short)


def targets_from_probabilities(
    p_up: pd.Series, upper: float, lower: float, allow_short: bool
) -> pd.Series:
    """Turn P(up) into targets: +1 above ``upper``, -1 or 0 below ``lower``, else hold.

    Holding starts flat; rows where ``p_up`` is NaN (warm-up) stay NaN.
    """
    low = -1.0 if allow_short else 0.0
    decided = np.where(p_up > upper, 1.0, np.where(p_up < lower, low, np.nan))
    target = pd.Series(decided, index=p_up.index).where(p_up.notna())
    ready = p_up.notna()
    held = target[ready].ffill().fillna(0.0)
    return held.reindex(p_up.index).rename("target")
