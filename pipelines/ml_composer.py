"""ML Composer: train next-period direction models, evaluate them walk-forward, register them.

Rows are (date, symbol) pairs pooled across the chosen daily equities; features are those of
:mod:`core.features.direction`, the label is whether the return a decision at the close earns
(filled at the next open, held to the open after) is positive.

Evaluation is walk-forward over dates: the test blocks tile the dates after ``min_train_dates``;
each block's model is trained only on dates before ``test_start - purge`` (the label of date ``d``
reads prices up to ``d + 2``, so ``purge >= 2`` keeps every training label out of the test
window). With ``walk_forward=False`` the splits are purged k-fold instead, and ``embargo`` dates
after each test block are also kept out of training (test labels read into them).

Out-of-sample metrics over all test rows:

- ``hit_rate``: share of rows where ``P(up) > 0.5`` agrees with the sign of the next return;
- ``ic``: Spearman rank correlation of ``P(up)`` with the next return (pooled);
- ``sharpe``: annualised (sqrt 252) Sharpe of the daily long/short book: per symbol the
  strategy's target from ``P(up)`` (thresholds ``upper``/``lower``, hold in between) times the
  next return, averaged across symbols per date. This is the vectorized equivalent of the
  engine's fills (decide at the close of ``t``, fill at the open of ``t+1``); the integration
  tests check it against :class:`core.engine.engine.TradingEngine` bar for bar. ``cost_bps``
  charges each unit of position change (0 by default, as the engine's default fill model).

Threads are limited (XGBoost ``nthread=n_jobs``, scikit-learn under ``threadpool_limits``):
training shares a small machine.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any, Literal

import msgspec
import numpy as np
import pandas as pd
import xgboost as xgb
from scipy.stats import spearmanr
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from core.config import FrozenConfig, require
from core.engine.tracker import sharpe_ratio
from core.errors import ConfigError
from core.features.direction import (
    FeatureParams,
    direction_labels,
    feature_frame,
    lookahead_violations,
)
from core.strategies.catalogue import strategy_type
from core.strategies.ml.direction import Predictor, targets_from_probabilities
from pipelines import lifecycle
from pipelines.progress import progress
from registry.evidence import evaluation_evidence, lookahead_evidence, promotion_evidence
from registry.learned_direction import DIRECTION_TYPE, log_direction_model, predictor_for
from registry.source import MlflowStrategySource
from registry.store import MlflowStore
from registry.strategy_registry import CHAMPION, RegisteredVersion, StrategyRegistry, model_name

DATASET = "equities_daily_stocknet88"
LABEL_HORIZON = 2  # the label of date d reads the opens of d+1 and d+2
PERIODS_PER_YEAR = 252.0
DEFAULT_SYMBOLS = ("AAPL", "MSFT", "JPM", "XOM", "JNJ", "KO", "WMT", "GE")
ModelKind = Literal["xgboost", "sklearn"]
# The lead in out-of-sample Sharpe a direction model needs over the champion it is evaluated
# against (as a bar retrain's default margin).
PROMOTION_MARGIN = 0.05
FEATURES_METHOD = "features"


class ComposerConfig(FrozenConfig, frozen=True, kw_only=True):
    """Parameters of one ML Composer run (data, splits, models, backtest)."""

    symbols: tuple[str, ...] = DEFAULT_SYMBOLS
    features: FeatureParams = msgspec.field(default_factory=FeatureParams)
    n_folds: int = 4
    min_train_dates: int = 500
    purge: int = 5
    embargo: int = 5
    walk_forward: bool = True
    seed: int = 7
    n_jobs: int = 1
    xgb_rounds: int = 200
    xgb_max_depth: int = 3
    xgb_learning_rate: float = 0.05
    xgb_subsample: float = 0.8
    xgb_colsample: float = 0.8
    xgb_min_child_weight: float = 50.0
    logistic_c: float = 1.0
    upper: float = 0.5
    lower: float = 0.5
    allow_short: bool = True
    cost_bps: float = 0.0

    def __post_init__(self) -> None:
        require(bool(self.symbols), f"symbols must not be empty, was {list(self.symbols)}")
        require(self.n_folds >= 1, f"n_folds must be >= 1, was {self.n_folds}")
        require(
            self.min_train_dates >= 50, f"min_train_dates must be >= 50, was {self.min_train_dates}"
        )
        require(
            self.purge >= LABEL_HORIZON,
            f"purge must be >= {LABEL_HORIZON} (labels look {LABEL_HORIZON} bars ahead), "
            f"was {self.purge}",
        )
        require(
            self.purge < self.min_train_dates,
            f"purge must be < min_train_dates, was {self.purge} >= {self.min_train_dates}",
        )
        require(
            self.embargo >= LABEL_HORIZON,
            f"embargo must be >= {LABEL_HORIZON}, was {self.embargo}",
        )
        require(1 <= self.n_jobs <= 8, f"n_jobs must be in [1, 8], was {self.n_jobs}")
        require(
            1 <= self.xgb_rounds <= 5000, f"xgb_rounds must be in [1, 5000], was {self.xgb_rounds}"
        )
        require(
            0.0 < self.lower <= self.upper < 1.0,
            f"need 0 < lower <= upper < 1, was {self.lower}, {self.upper}",
        )
        require(self.cost_bps >= 0.0, f"cost_bps must be >= 0, was {self.cost_bps}")


# -- data ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PooledData:
    """Labelled feature rows of several symbols, sorted by date then symbol."""

    features: np.ndarray  # (rows, features) float64
    label: np.ndarray  # 1.0 up, 0.0 not up
    next_return: np.ndarray
    ts_event: np.ndarray  # int64 ns
    symbol: np.ndarray  # object
    date: np.ndarray  # position of ts_event among the sorted distinct dates
    names: tuple[str, ...]

    @property
    def n_dates(self) -> int:
        return int(self.date.max()) + 1 if len(self.date) else 0


def pool_features(frames: dict[str, pd.DataFrame], params: FeatureParams) -> PooledData:
    """Compute features and labels per symbol and pool the rows where both are defined."""
    parts = []
    for symbol in sorted(frames):
        frame = frames[symbol].reset_index(drop=True)
        part = pd.concat([feature_frame(frame, params), direction_labels(frame)], axis=1)
        part["ts_event"] = frame["ts_event"].to_numpy()
        part["symbol"] = symbol
        parts.append(part.dropna())
    rows = pd.concat(parts, ignore_index=True).sort_values(["ts_event", "symbol"], kind="stable")
    names = params.names
    dates = np.unique(rows["ts_event"].to_numpy())
    return PooledData(
        features=rows[list(names)].to_numpy(dtype="float64"),
        label=rows["label"].to_numpy(dtype="float64"),
        next_return=rows["next_return"].to_numpy(dtype="float64"),
        ts_event=rows["ts_event"].to_numpy(dtype="int64"),
        symbol=rows["symbol"].to_numpy(dtype=object),
        date=np.searchsorted(dates, rows["ts_event"].to_numpy()),
        names=names,
    )


# -- splits --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Split:
    """Date positions used for training and for testing in one fold."""

    train: np.ndarray
    test: np.ndarray


def purged_splits(
    n_dates: int,
    *,
    n_folds: int,
    min_train: int,
    purge: int,
    embargo: int,
    walk_forward: bool = True,
) -> list[Split]:
    """Split ``n_dates`` dates into test blocks after ``min_train`` with purged training sets.

    Walk-forward: train on dates ``< test_start - purge``. Otherwise (purged k-fold over the
    same blocks) also train on dates ``>= test_end + embargo``.

    Raises
    ------
    ConfigError
        If there are too few dates for ``min_train`` plus one date per fold.
    """
    if n_dates - min_train < n_folds:
        raise ConfigError(
            f"need more than min_train + n_folds dates, have {n_dates} for "
            f"min_train {min_train} and {n_folds} folds"
        )
    edges = np.linspace(min_train, n_dates, n_folds + 1).round().astype(int)
    dates = np.arange(n_dates)
    splits = []
    for start, end in itertools.pairwise(edges.tolist()):
        keep = dates < start - purge
        if not walk_forward:
            keep |= dates >= end + embargo
        splits.append(Split(train=dates[keep], test=dates[start:end]))
    return splits


def closest_train_to_test(split: Split) -> float:
    """Smallest distance in dates between a training date and a test date of ``split``."""
    if len(split.train) == 0 or len(split.test) == 0:
        return math.inf
    lo, hi = split.test.min(), split.test.max()
    before = split.train[split.train < lo]
    after = split.train[split.train > hi]
    gaps = [lo - before.max()] if len(before) else []
    gaps += [after.min() - hi] if len(after) else []
    inside = split.train[(split.train >= lo) & (split.train <= hi)]
    return 0.0 if len(inside) else float(min(gaps))


# -- models --------------------------------------------------------------------------------------


def train_xgboost(features: np.ndarray, label: np.ndarray, config: ComposerConfig) -> xgb.Booster:
    """Fit a binary:logistic booster with the config's hyper-parameters and seed."""
    data = xgb.DMatrix(features, label=label, nthread=config.n_jobs)
    return xgb.train(xgboost_params(config), data, num_boost_round=config.xgb_rounds)


def xgboost_params(config: ComposerConfig) -> dict[str, Any]:
    return {
        "objective": "binary:logistic",
        "tree_method": "hist",
        "max_depth": config.xgb_max_depth,
        "eta": config.xgb_learning_rate,
        "subsample": config.xgb_subsample,
        "colsample_bytree": config.xgb_colsample,
        "min_child_weight": config.xgb_min_child_weight,
        "nthread": config.n_jobs,
        "seed": config.seed,
    }


def train_logistic(features: np.ndarray, label: np.ndarray, config: ComposerConfig) -> Pipeline:
    """Fit standardisation + L2 logistic regression on one thread."""
    model = make_pipeline(StandardScaler(), LogisticRegression(C=config.logistic_c, max_iter=1000))
    with threadpool_limits(1):
        model.fit(features, label)
    return model


def train_model(
    kind: ModelKind, features: np.ndarray, label: np.ndarray, config: ComposerConfig
) -> Any:
    """Fit a model of ``kind`` (``xgboost`` or ``sklearn``)."""
    if kind == "xgboost":
        return train_xgboost(features, label, config)
    if kind == "sklearn":
        return train_logistic(features, label, config)
    raise ConfigError(f"model kind must be 'xgboost' or 'sklearn', was {kind!r}")


def model_params(kind: ModelKind, config: ComposerConfig) -> dict[str, float | int | str | bool]:
    """Hyper-parameters of ``kind`` as recorded in the strategy config."""
    if kind == "xgboost":
        params = {k: v for k, v in xgboost_params(config).items() if k != "nthread"}
        return {**params, "num_boost_round": config.xgb_rounds}
    return {"estimator": "StandardScaler+LogisticRegression", "C": config.logistic_c}


def _predict(predictor: Predictor, features: np.ndarray) -> np.ndarray:
    with threadpool_limits(1):
        return predictor.predict_proba(features)


def fold_logistic(model: Pipeline) -> tuple[tuple[float, ...], float]:
    """Fold a fitted StandardScaler + LogisticRegression into raw-feature coefficients.

    ``w' = w / scale`` and ``b' = b - sum(w * mean / scale)``: the ``ml_direction`` config's
    linear model then gives the same P(up) (to rounding) and runs from JSON alone.
    """
    scaler, logistic = model[0], model[-1]
    w = logistic.coef_[0] / scaler.scale_
    b = float(logistic.intercept_[0] - np.sum(logistic.coef_[0] * scaler.mean_ / scaler.scale_))
    return tuple(float(v) for v in w), b


# -- evaluation ----------------------------------------------------------------------------------


@dataclass
class WalkForwardResult:
    """Out-of-sample predictions of one model kind and their metrics."""

    kind: ModelKind
    p_up: np.ndarray  # NaN on rows never tested
    tested: np.ndarray  # bool per row
    metrics: dict[str, float]
    folds: list[Split] = field(default_factory=list)


def walk_forward(data: PooledData, kind: ModelKind, config: ComposerConfig) -> WalkForwardResult:
    """Train one model per fold on its purged training dates and predict its test dates."""
    splits = purged_splits(
        data.n_dates,
        n_folds=config.n_folds,
        min_train=config.min_train_dates,
        purge=config.purge,
        embargo=config.embargo,
        walk_forward=config.walk_forward,
    )
    p_up = np.full(len(data.label), np.nan)
    for split in splits:
        train = np.isin(data.date, split.train)
        test = np.isin(data.date, split.test)
        model = train_model(kind, data.features[train], data.label[train], config)
        p_up[test] = _predict(predictor_for(kind, model), data.features[test])
    tested = ~np.isnan(p_up)
    metrics = evaluate_predictions(data, p_up, tested, config)
    return WalkForwardResult(kind=kind, p_up=p_up, tested=tested, metrics=metrics, folds=splits)


def evaluate_predictions(
    data: PooledData, p_up: np.ndarray, tested: np.ndarray, config: ComposerConfig
) -> dict[str, float]:
    """Hit rate, IC and long/short Sharpe over the tested rows (see the module docstring)."""
    p, r = p_up[tested], data.next_return[tested]
    hit = float(np.mean((p > 0.5) == (r > 0.0)))
    ic = float(spearmanr(p, r).statistic) if np.ptp(p) > 0 else 0.0
    book = long_short_returns(data, p_up, tested, config)
    held = long_short_returns(data, np.ones_like(p_up), tested, config, buy_and_hold=True)
    return {
        "hit_rate": hit,
        "ic": ic,
        "sharpe": sharpe(book.to_numpy()),
        "mean_daily_return": float(book.mean()),
        "buy_hold_sharpe": sharpe(held.to_numpy()),
        "base_rate_up": float(np.mean(r > 0.0)),
        "n_test_rows": float(len(p)),
        "n_test_dates": float(book.size),
    }


def long_short_returns(
    data: PooledData,
    p_up: np.ndarray,
    tested: np.ndarray,
    config: ComposerConfig,
    *,
    buy_and_hold: bool = False,
) -> pd.Series:
    """Daily return of the equal-weight book over the tested dates, indexed by ``ts_event``."""
    rows = pd.DataFrame(
        {
            "ts_event": data.ts_event[tested],
            "symbol": data.symbol[tested],
            "p_up": p_up[tested],
            "next_return": data.next_return[tested],
        }
    )
    per_symbol = []
    for _, group in rows.groupby("symbol", sort=True):
        if buy_and_hold:
            target = pd.Series(1.0, index=group.index)
        else:
            target = targets_from_probabilities(
                group["p_up"], config.upper, config.lower, config.allow_short
            )
        cost = target.diff().fillna(target).abs() * config.cost_bps / 1e4
        per_symbol.append(target * group["next_return"] - cost)
    rows["pnl"] = pd.concat(per_symbol)
    return rows.groupby("ts_event", sort=True)["pnl"].mean()


def sharpe(returns: np.ndarray) -> float:
    """Annualised Sharpe (sqrt 252) of daily returns; 0 when flat or too short."""
    return sharpe_ratio(returns, PERIODS_PER_YEAR)


# -- checks, final models, registration ----------------------------------------------------------


def feature_cutoffs(n: int, warmup: int) -> list[int]:
    """Where the look-ahead check cuts a symbol's ``n`` bars: around the warm-up's end, at a
    third and a half, and just before the end."""
    points = {warmup - 2, warmup - 1, warmup, n // 3, n // 2, n - 3, n - 2}
    return sorted(c for c in points if 0 <= c < n)


def features_lookahead(
    frames: dict[str, pd.DataFrame], params: FeatureParams
) -> tuple[dict[str, list[int]], dict[str, Any]]:
    """Return, per symbol, the cutoffs where removing later bars changed earlier features, and
    the ``lookahead`` evidence (method ``features``) counting every cut checked."""
    found: dict[str, list[int]] = {}
    checked = 0
    for symbol, frame in frames.items():
        bars = frame.reset_index(drop=True)
        cutoffs = feature_cutoffs(len(bars), params.warmup)
        checked += len(cutoffs)
        bad = lookahead_violations(bars, params, cutoffs)
        if bad:
            found[symbol] = bad
    violations = sum(len(bad) for bad in found.values())
    return found, lookahead_evidence(FEATURES_METHOD, checked=checked, violations=violations)


def check_no_lookahead(
    frames: dict[str, pd.DataFrame], params: FeatureParams
) -> dict[str, list[int]]:
    """Return, per symbol, the cutoffs where removing later bars changed earlier features."""
    return features_lookahead(frames, params)[0]


def champion_score(
    store: MlflowStore | None, evaluations: dict[str, WalkForwardResult], config: ComposerConfig
) -> tuple[str | None, float | None]:
    """The current ``ml_direction`` champion's version and out-of-sample Sharpe on this run's
    walk-forward, or (None, None).

    A champion is scored when it is the recipe of a kind evaluated here (same features, model
    kind and hyper-parameters, thresholds): that kind's walk-forward is the champion's on the
    same folds. Another champion is not scored, and a version evaluated against none cannot be
    promoted over it (:meth:`~registry.strategy_registry.StrategyRegistry.promote`).
    """
    registry = StrategyRegistry(store)
    version = registry.get_alias(model_name(DIRECTION_TYPE), CHAMPION)
    if version is None:
        return None, None
    deployment = MlflowStrategySource(registry).load_version(model_name(DIRECTION_TYPE), version)
    canonical = strategy_type(DIRECTION_TYPE).config_type
    theirs = canonical.from_dict(deployment.config).to_dict()
    for evaluation in evaluations.values():
        recipe = strategy_config_for(evaluation.kind, config)
        if canonical.from_dict(recipe).to_dict() == theirs:
            return version, evaluation.metrics["sharpe"]
    return None, None


def training_validation(
    gate: dict[str, Any], lookahead: dict[str, list[int]], folds: list[Split], purge: int
) -> dict[str, Any]:
    """Merge the bars gate, the look-ahead check and the purge check into one report."""
    failed = list(gate.get("failed_expectations", []))
    if lookahead:
        failed.append(f"features use future data: {lookahead}")
    gaps = [closest_train_to_test(split) for split in folds]
    if gaps and min(gaps) <= purge:
        failed.append(f"a training date is within purge {purge} of a test date: gaps {gaps}")
    return {
        "success": bool(gate.get("success")) and not failed,
        "suite": "ml_direction_training",
        "failed_expectations": failed,
        "bars_gate": gate,
        "lookahead_violations": lookahead,
        "min_train_test_gap": min(gaps) if gaps else None,
    }


@dataclass
class TrainedDirection:
    """One model kind after evaluation: the final fit on every row, its metrics and version."""

    kind: ModelKind
    model: Any
    strategy_config: dict[str, Any]
    evaluation: WalkForwardResult
    training_predictions: np.ndarray
    version: RegisteredVersion | None = None


@dataclass
class ComposerReport:
    """What one ML Composer run produced."""

    data: PooledData
    data_hash: str
    validation: dict[str, Any]
    models: dict[str, TrainedDirection]


def strategy_config_for(kind: ModelKind, config: ComposerConfig) -> dict[str, Any]:
    """The ``ml_direction`` config a model of ``kind`` trained under ``config`` runs with."""
    return {
        **msgspec.to_builtins(config.features),
        "model": kind,
        "coefficients": [],
        "model_params": model_params(kind, config),
        "upper": config.upper,
        "lower": config.lower,
        "allow_short": config.allow_short,
    }


def run_ml_composer(
    config: ComposerConfig | None = None,
    *,
    kinds: tuple[ModelKind, ...] = ("xgboost", "sklearn"),
    register: bool = True,
    store: MlflowStore | None = None,
) -> ComposerReport:
    """Load and check the bars, evaluate each model kind walk-forward, fit and register it.

    Returns
    -------
    ComposerReport
        Pooled data, data hash, validation report and, per kind, the final model, its
        out-of-sample metrics and (when ``register``) its registered version.
    """
    config = config or ComposerConfig()
    admitted = lifecycle.admit_bars(DATASET, list(config.symbols))
    gate = lifecycle.gate_summary(lifecycle.gate_bars(admitted))
    data = pool_features(admitted.frames, config.features)
    lookahead, lookahead_section = features_lookahead(admitted.frames, config.features)
    digest = f"sha256:{lifecycle.data_hash(admitted)}"
    models: dict[str, TrainedDirection] = {}
    validation: dict[str, Any] = {}
    evaluations: dict[str, WalkForwardResult] = {
        kind: walk_forward(data, kind, config) for kind in kinds
    }
    against, theirs = champion_score(store, evaluations, config) if register else (None, None)
    for kind in progress(kinds, desc="training", total=len(kinds), unit="model"):
        evaluation = evaluations[kind]
        validation = {
            **training_validation(gate, lookahead, evaluation.folds, config.purge),
            **promotion_evidence(
                lookahead_section,
                evaluation_evidence(
                    "sharpe",
                    challenger=evaluation.metrics["sharpe"],
                    champion=theirs,
                    champion_version=against,
                    margin=PROMOTION_MARGIN,
                    window={"walk_forward": config.walk_forward, "folds": config.n_folds,
                            "test_dates": int(evaluation.metrics["n_test_dates"])},
                ),
            ),
        }  # fmt: skip
        model = train_model(kind, data.features, data.label, config)
        trained = TrainedDirection(
            kind=kind,
            model=model,
            strategy_config=strategy_config_for(kind, config),
            evaluation=evaluation,
            training_predictions=_predict(predictor_for(kind, model), data.features),
        )
        if register:
            trained.version = log_direction_model(
                trained.strategy_config,
                model,
                evaluation.metrics,
                data_hash=digest,
                validation=validation,
                symbols=tuple(config.symbols),
                store=store,
            )
        models[kind] = trained
    return ComposerReport(data=data, data_hash=digest, validation=validation, models=models)
