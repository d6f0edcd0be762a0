"""Regime shift: a Gaussian mixture on rolling return and volatility features, fitted on the past.

Features per bar (close-to-close): the ``return_window``-bar return ``close / close[-w] - 1`` and
the annualized EWMA volatility ``sqrt(252 * v)`` with ``v = alpha * r**2 + (1 - alpha) * v``,
``alpha = 2 / (vol_span + 1)``, seeded with the first squared return. A scikit-learn
``GaussianMixture`` (full covariances, fixed ``random_state``) is fitted on the last
``fit_window`` feature vectors once ``min_fit_samples`` exist, then refitted every
``refit_every`` bars; each bar is classified with the latest fit, which only ever saw features up
to that bar (no look-ahead). Components are ordered by their mean volatility, so regime 0 is the
calmest and ``n_components - 1`` the most turbulent whatever the fit's internal order: labels are
stable across refits. The target is ``regime_exposure[regime]``; ``reason`` publishes the regime,
its probability and the probability of the turbulent regime for the adaptation engine.

Events: :class:`Bar` of the traded symbol (close-only bars of the S&P 500 index work). Frame: a
bars frame (``ts_event, open, high, low, close, volume``); the vectorized form runs the feature
recursion as a tight loop and classifies with scikit-learn's ``predict_proba``.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from sklearn.mixture import GaussianMixture
from threadpoolctl import threadpool_limits

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
from core.strategies.macro._common import Ring

ANNUALIZATION = 252.0


class RegimeShiftConfig(StrategyConfig, frozen=True, kw_only=True):
    aliases: ClassVar[dict[str, str]] = {"k": "n_components"}

    return_window: int = 21
    vol_span: int = 21
    n_components: int = 3
    regime_exposure: tuple[float, ...] = (1.0, 0.5, 0.0)
    fit_window: int = 1260
    min_fit_samples: int = 504
    refit_every: int = 63
    random_state: int = 0
    max_iter: int = 200
    reg_covar: float = 1e-6

    def __post_init__(self) -> None:
        require(
            1 <= self.return_window <= 2520,
            f"return_window must be in 1..2520, was {self.return_window}",
        )
        require(1 <= self.vol_span <= 2520, f"vol_span must be in 1..2520, was {self.vol_span}")
        require(
            2 <= self.n_components <= 8, f"n_components must be in 2..8, was {self.n_components}"
        )
        require(
            len(self.regime_exposure) == self.n_components,
            f"regime_exposure needs n_components={self.n_components} values, "
            f"had {len(self.regime_exposure)}",
        )
        require(
            all(math.isfinite(x) and abs(x) <= 10.0 for x in self.regime_exposure),
            f"regime_exposure values must be within ±10, were {list(self.regime_exposure)}",
        )
        require(
            self.min_fit_samples >= 10 * self.n_components,
            f"min_fit_samples must be >= 10 * n_components, was {self.min_fit_samples}",
        )
        require(
            self.min_fit_samples <= self.fit_window <= 20_000,
            f"fit_window must be in min_fit_samples..20000, was {self.fit_window}",
        )
        require(self.refit_every >= 1, f"refit_every must be >= 1, was {self.refit_every}")
        require(self.max_iter >= 1, f"max_iter must be >= 1, was {self.max_iter}")
        require(0.0 < self.reg_covar < 1.0, f"reg_covar must be in (0, 1), was {self.reg_covar}")


def fit_regimes(features: np.ndarray, config: RegimeShiftConfig) -> dict[str, Any]:
    """Fit the mixture on ``features`` (rows oldest first); parameters ordered by volatility.

    Returns
    -------
    dict
        JSON-safe ``weights`` (K), ``means`` (K x 2), ``covariances`` (K x 2 x 2), component 0
        the calmest (lowest mean volatility).
    """
    model = GaussianMixture(
        n_components=config.n_components,
        covariance_type="full",
        random_state=config.random_state,
        max_iter=config.max_iter,
        reg_covar=config.reg_covar,
    )
    # BLAS/OpenMP thread start-up costs ~25x the fit itself on a few thousand 2-D points.
    with threadpool_limits(limits=1):
        model.fit(features)
    order = np.argsort(model.means_[:, 1], kind="stable")
    return {
        "weights": model.weights_[order].tolist(),
        "means": model.means_[order].tolist(),
        "covariances": model.covariances_[order].tolist(),
    }


class _Posterior:
    """Component probabilities of one feature vector under fitted parameters (pure numpy)."""

    def __init__(self, params: dict[str, Any]) -> None:
        self.log_weights = np.log(np.asarray(params["weights"], dtype=np.float64))
        self.means = np.asarray(params["means"], dtype=np.float64)
        covariances = np.asarray(params["covariances"], dtype=np.float64)
        self.precisions = np.linalg.inv(covariances)
        d = self.means.shape[1]
        self.log_norm = -0.5 * (d * math.log(2.0 * math.pi) + np.linalg.slogdet(covariances)[1])

    def __call__(self, x: np.ndarray) -> np.ndarray:
        diff = x - self.means
        mahalanobis = np.einsum("ki,kij,kj->k", diff, self.precisions, diff)
        log_p = self.log_weights + self.log_norm - 0.5 * mahalanobis
        log_p -= log_p.max()
        p = np.exp(log_p)
        result: np.ndarray = p / p.sum()
        return result


class _RegimeShiftState(StrategyState):
    closes: dict[str, Any]
    variance: float
    returns_seen: int
    features: list[list[float]]  # the fit window's (return, volatility) rows, oldest first
    n_features: int
    params: dict[str, Any] | None  # the fitted regimes, None before the first fit


@register
class RegimeShift(Strategy[RegimeShiftConfig]):
    """Exposure by market regime, from a mixture model refitted on past features only."""

    spec = StrategySpec(
        name="regime_shift",
        family=Family.HIGH_TIME_FRAME,
        tier=Tier.STRATEGIC,
        data_kind=DataKind.BARS,
        summary=(
            "GaussianMixture on rolling return and volatility features, fitted only on past "
            "data; publishes the regime and its probability."
        ),
        dataset="equities_adjclose_skfolio",
    )
    config_type = RegimeShiftConfig

    def __init__(self, config: RegimeShiftConfig, symbol: str, *, name: str | None = None) -> None:
        super().__init__(config, symbol, name=name)
        self._alpha = 2.0 / (config.vol_span + 1.0)
        self._keep = 1.0 - self._alpha
        self._closes = Ring(config.return_window + 1)
        self._variance = math.nan
        self._returns_seen = 0
        self._features = np.zeros((config.fit_window, 2), dtype=np.float64)
        self._n_features = 0
        self._params: dict[str, Any] | None = None
        self._posterior: _Posterior | None = None

    @property
    def warmup(self) -> int:
        first_feature = max(self.config.return_window, self.config.vol_span)
        return first_feature + self.config.min_fit_samples

    @property
    def params(self) -> dict[str, Any] | None:
        """The latest fitted parameters (JSON-safe), or None before the first fit."""
        return self._params

    def update(self, bar: Bar) -> Signal | None:
        if bar.symbol != self.symbol:
            return None
        previous = self._closes.newest
        self._closes.push(bar.close)
        if self._closes.count < 2:
            return None
        r = bar.close / previous - 1.0
        if self._returns_seen == 0:
            self._variance = r * r
        else:
            self._variance = self._alpha * (r * r) + self._keep * self._variance
        self._returns_seen += 1
        if not self._closes.full or self._returns_seen < self.config.vol_span:
            return None
        feature = (
            self._closes.newest / self._closes.oldest - 1.0,
            math.sqrt(ANNUALIZATION * self._variance),
        )
        self._add_feature(feature)
        if self._posterior is None:
            return None
        return self._classify(bar.ts_event, feature)

    def _add_feature(self, feature: tuple[float, float]) -> None:
        cfg = self.config
        self._features[self._n_features % cfg.fit_window] = feature
        self._n_features += 1
        due = self._n_features - cfg.min_fit_samples
        if due >= 0 and due % cfg.refit_every == 0:
            self._params = fit_regimes(self._window(), cfg)
            self._posterior = _Posterior(self._params)

    def _window(self) -> np.ndarray:
        """Stored features, oldest first."""
        n, size = self._n_features, self.config.fit_window
        if n <= size:
            return self._features[:n].copy()
        start = n % size
        return np.concatenate([self._features[start:], self._features[:start]])

    def _classify(self, ts_event: int, feature: tuple[float, float]) -> Signal | None:
        assert self._posterior is not None and self._params is not None
        probabilities = self._posterior(np.asarray(feature))
        regime = int(np.argmax(probabilities))
        reason = {
            "regime": float(regime),
            "probability": float(probabilities[regime]),
            "turbulent_probability": float(probabilities[-1]),
            "window_return": feature[0],
            "volatility": feature[1],
            "regime_volatility": float(self._params["means"][regime][1]),
        }
        target = float(self.config.regime_exposure[regime])
        return self._emit(ts_event, target, float(probabilities[regime]), reason)

    def to_state(self) -> dict[str, Any]:
        saved = _RegimeShiftState(
            closes=self._closes.to_state(),
            variance=self._variance,
            returns_seen=self._returns_seen,
            features=self._window().tolist(),
            n_features=self._n_features,
            params=self._params,
        )
        return {**self._base_state(), **saved.to_dict()}

    def restore(self, state: dict[str, Any]) -> None:
        saved = _RegimeShiftState.from_dict(state)
        self._restore_base(state)
        self._closes.restore(saved.closes)
        self._variance = saved.variance
        self._returns_seen = saved.returns_seen
        window = np.asarray(saved.features, dtype=np.float64).reshape(-1, 2)
        n, size = saved.n_features, self.config.fit_window
        if len(window) != min(n, size):
            raise ValueError(f"state has {len(window)} features for n_features={n}")
        self._features = np.zeros((size, 2), dtype=np.float64)
        # Put each stored feature back in the slot it occupied, so the ring continues exactly.
        slots = np.arange(n - len(window), n) % size
        self._features[slots] = window
        self._n_features = n
        self._params = saved.params
        self._posterior = None if self._params is None else _Posterior(self._params)

    @classmethod
    def vectorized(cls, config: RegimeShiftConfig, frame: pd.DataFrame) -> pd.Series:
        features, valid = _vector_features(config, frame["close"].to_numpy(np.float64))
        first = int(np.argmax(valid)) if valid.any() else len(valid)
        out = np.full(len(frame), np.nan)
        fit_at = range(first + config.min_fit_samples - 1, len(frame), config.refit_every)
        exposure = np.asarray(config.regime_exposure, dtype=np.float64)
        for end in fit_at:
            window = features[max(first, end + 1 - config.fit_window) : end + 1]
            params = fit_regimes(window, config)
            model = _sklearn_model(params)
            stop = min(end + config.refit_every, len(frame))
            regimes = model.predict_proba(features[end:stop]).argmax(axis=1)
            out[end:stop] = exposure[regimes]
        return pd.Series(out, index=frame.index)


def _vector_features(config: RegimeShiftConfig, close: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Window return and EWMA volatility per bar, by the same recursion as the live form."""
    n, w = len(close), config.return_window
    alpha = 2.0 / (config.vol_span + 1.0)
    keep = 1.0 - alpha
    variance = np.full(n, np.nan)
    v = math.nan
    for i in range(1, n):
        r = float(close[i]) / float(close[i - 1]) - 1.0
        v = r * r if i == 1 else alpha * (r * r) + keep * v
        variance[i] = v
    window_return = np.full(n, np.nan)
    window_return[w:] = close[w:] / close[:-w] - 1.0
    features = np.column_stack([window_return, np.sqrt(ANNUALIZATION * variance)])
    valid = np.arange(n) >= max(w, config.vol_span)
    return features, valid


def _sklearn_model(params: dict[str, Any]) -> GaussianMixture:
    """A fitted-looking GaussianMixture carrying ``params`` (for predict_proba)."""
    covariances = np.asarray(params["covariances"], dtype=np.float64)
    model = GaussianMixture(n_components=len(params["weights"]), covariance_type="full")
    model.weights_ = np.asarray(params["weights"], dtype=np.float64)
    model.means_ = np.asarray(params["means"], dtype=np.float64)
    model.covariances_ = covariances
    model.precisions_cholesky_ = np.linalg.cholesky(np.linalg.inv(covariances))
    return model
