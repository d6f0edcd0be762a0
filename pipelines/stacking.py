"""A stacked model that weights the rule strategies' signals.

Each rule strategy's target at a bar's close (its vectorized form, which uses no later data)
is a feature; the label is whether the next open-to-open return is positive, i.e. the return a
position taken at that close actually earns (filled at the next open, held to the one after).
A logistic regression fitted on purged walk-forward training sets learns how much each
strategy's view is worth; its out-of-sample hit rate and information coefficient say whether
the weights mean anything, and the positive coefficients, normalised, become the composer's
weights for the set.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from core.config import FrozenConfig, require
from core.data.datasets import load_bars
from core.strategies.catalogue import strategy_type
from pipelines.ml_composer import purged_splits

DEFAULT_STRATEGIES = ("ma_crossover", "breakout", "momentum", "mean_reversion")
DEFAULT_SYMBOLS = ("AAPL", "MSFT", "JPM", "XOM", "KO", "PFE", "WMT", "GE", "CSCO", "INTC")


class StackingSettings(FrozenConfig, frozen=True, kw_only=True):
    strategies: tuple[str, ...] = DEFAULT_STRATEGIES
    symbols: tuple[str, ...] = DEFAULT_SYMBOLS
    dataset: str = "equities_daily_stocknet88"
    n_folds: int = 4
    min_train_dates: int = 500
    purge: int = 5
    regularization: float = 1.0

    def __post_init__(self) -> None:
        require(
            len(self.strategies) >= 2,
            f"stacking needs at least 2 strategies, got {len(self.strategies)}",
        )
        require(self.purge >= 2, f"purge must be >= 2 (the label spans 2 bars), was {self.purge}")


@dataclass(frozen=True)
class StackedData:
    """One row per (date, symbol): each strategy's target, the label and the return."""

    features: np.ndarray
    label: np.ndarray
    forward_return: np.ndarray
    date_index: np.ndarray
    n_dates: int


def stack_signals(frames: dict[str, pd.DataFrame], strategies: tuple[str, ...]) -> StackedData:
    """Build the stacked rows from each symbol's bars (no row uses data after its close)."""
    parts = []
    for symbol, frame in frames.items():
        targets = {name: _targets(name, frame).to_numpy(dtype=float) for name in strategies}
        opens = frame["open"].to_numpy(dtype=float)
        forward = np.full(len(frame), np.nan)
        forward[:-2] = opens[2:] / opens[1:-1] - 1.0  # held from open t+1 to open t+2
        part = pd.DataFrame(targets).assign(
            ts=frame["ts_event"].to_numpy(), forward=forward, symbol=symbol
        )
        parts.append(part.dropna())
    rows = pd.concat(parts, ignore_index=True).sort_values(["ts", "symbol"], kind="stable")
    dates, date_index = np.unique(rows["ts"].to_numpy(), return_inverse=True)
    return StackedData(
        features=rows[list(strategies)].to_numpy(),
        label=(rows["forward"].to_numpy() > 0).astype(int),
        forward_return=rows["forward"].to_numpy(),
        date_index=date_index,
        n_dates=len(dates),
    )


def fit_stack(settings: StackingSettings) -> dict[str, Any]:
    """Walk-forward out-of-sample evaluation, then a final fit on all rows for the weights."""
    loaded = load_bars(settings.dataset, list(settings.symbols))
    data = stack_signals({s: r.frame for s, r in loaded.items()}, settings.strategies)
    splits = purged_splits(
        data.n_dates,
        n_folds=settings.n_folds,
        min_train=settings.min_train_dates,
        purge=settings.purge,
        embargo=0,
    )
    probability = np.full(len(data.label), np.nan)
    for split in splits:
        train = np.isin(data.date_index, split.train)
        test = np.isin(data.date_index, split.test)
        model = _fit(data.features[train], data.label[train], settings.regularization)
        probability[test] = model.predict_proba(data.features[test])[:, 1]
    tested = ~np.isnan(probability)
    final = _fit(data.features, data.label, settings.regularization)
    coefficients = dict(zip(settings.strategies, final.coef_[0].tolist(), strict=True))
    return {
        "strategies": list(settings.strategies),
        "rows": len(data.label),
        "out_of_sample_rows": int(tested.sum()),
        "hit_rate": float(np.mean((probability[tested] > 0.5) == data.label[tested])),
        "base_rate": float(np.mean(data.label[tested])),
        "information_coefficient": float(
            spearmanr(probability[tested], data.forward_return[tested]).statistic
        ),
        "coefficients": coefficients,
        "weights": composer_weights(coefficients),
    }


def composer_weights(coefficients: dict[str, float]) -> dict[str, float]:
    """Positive coefficients normalised to sum to one (a negative view gets no weight)."""
    positive = {f"strategy.{name}": max(value, 0.0) for name, value in coefficients.items()}
    total = sum(positive.values())
    if total == 0.0:
        return {name: 1.0 / len(positive) for name in positive}
    return {name: value / total for name, value in positive.items()}


def _targets(name: str, frame: pd.DataFrame) -> pd.Series:
    cls = strategy_type(name)
    output = cls.vectorized(cls.config_type(), frame)
    return output if isinstance(output, pd.Series) else output["target_position"]


def _fit(features: np.ndarray, label: np.ndarray, regularization: float) -> Any:
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):  # small fits: threads cost more than they give on 2 cores
        return LogisticRegression(C=regularization, max_iter=1000).fit(features, label)
