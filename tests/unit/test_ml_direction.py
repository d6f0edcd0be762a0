"""The ml_direction strategy: predictor wiring, thresholds with hold, config checks, real data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from core.data.datasets import load_bars
from core.data.loaders import iter_bars
from core.errors import ConfigError, StrategyError
from core.features.direction import FeatureParams, direction_labels, feature_frame
from core.strategies.catalogue import build, describe, strategy_type
from core.strategies.ml.direction import (
    LinearPredictor,
    MLDirection,
    MLDirectionConfig,
    targets_from_probabilities,
)

NAMES = FeatureParams().names


def _frame(symbol: str, rows: int | None = None) -> pd.DataFrame:
    frame = load_bars("equities_daily_stocknet88", [symbol])[symbol].frame
    return frame if rows is None else frame.iloc[:rows].reset_index(drop=True)


class LogisticOnFeatures:
    """A real scikit-learn classifier seen through the predictor interface."""

    def __init__(self, model: Pipeline) -> None:
        self.model = model

    def predict_proba_one(self, features: np.ndarray) -> float:
        return float(self.model.predict_proba(features.reshape(1, -1))[0, 1])

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        return self.model.predict_proba(features)[:, 1]


@pytest.fixture(scope="module")
def fitted_on_ko() -> LogisticOnFeatures:
    frame = _frame("KO")
    rows = pd.concat([feature_frame(frame, FeatureParams()), direction_labels(frame)], axis=1)
    rows = rows.dropna()
    model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=1000))
    model.fit(rows[list(NAMES)].to_numpy(), rows["label"].to_numpy())
    return LogisticOnFeatures(model)


def _signals(strategy: MLDirection, frame: pd.DataFrame, symbol: str) -> list[tuple[int, float]]:
    out = []
    for bar in iter_bars(frame, symbol):
        signal = strategy.update(bar)
        if signal is not None:
            out.append((signal.ts_event, signal.target_position))
    return out


def _change_points(frame: pd.DataFrame, target: pd.Series) -> list[tuple[int, float]]:
    defined = target.dropna()
    changed = defined[defined.ne(defined.shift())]
    return [(int(frame.loc[i, "ts_event"]), float(v)) for i, v in changed.items()]


def test_a_model_kind_without_a_predictor_refuses_to_run_naming_the_model():
    strategy = build("ml_direction", {"model": "xgboost", "coefficients": []}, "AAPL")
    bar = next(iter_bars(_frame("AAPL", 1), "AAPL"))

    with pytest.raises(StrategyError, match="model 'xgboost' needs a fitted predictor attached"):
        strategy.update(bar)
    with pytest.raises(StrategyError, match="model 'sklearn' needs a fitted predictor"):
        MLDirection.vectorized(MLDirectionConfig(model="sklearn", coefficients=()), _frame("KO"))


def test_an_attached_scikit_learn_model_trades_the_same_bar_by_bar_as_over_the_frame(fitted_on_ko):
    config = MLDirectionConfig(
        model="sklearn", coefficients=(), upper=0.52, lower=0.48, allow_short=True
    )
    strategy = MLDirection(config, "PEP")
    strategy.attach_predictor(fitted_on_ko)
    frame = _frame("PEP", 600)

    incremental = _signals(strategy, frame, "PEP")
    vectorized = _change_points(frame, MLDirection.targets(config, frame, fitted_on_ko))

    assert len(incremental) > 3
    assert incremental == vectorized


def test_reset_keeps_the_attached_predictor(fitted_on_ko):
    strategy = MLDirection(MLDirectionConfig(model="sklearn", coefficients=()), "KO")
    strategy.attach_predictor(fitted_on_ko)

    strategy.reset()

    assert strategy.has_predictor


def test_between_the_thresholds_the_strategy_holds_its_position():
    p_up = pd.Series([np.nan, 0.5, 0.6, 0.5, 0.4, 0.5, 0.56])

    short = targets_from_probabilities(p_up, upper=0.55, lower=0.45, allow_short=True)
    flat = targets_from_probabilities(p_up, upper=0.55, lower=0.45, allow_short=False)

    assert short.tolist()[1:] == [0.0, 1.0, 1.0, -1.0, -1.0, 1.0]
    assert flat.tolist()[1:] == [0.0, 1.0, 1.0, 0.0, 0.0, 1.0]
    assert np.isnan(short.iloc[0])


def test_the_default_trend_prior_is_the_logistic_of_the_20_day_return_and_50_day_distance():
    frame = _frame("AAPL")
    config = MLDirectionConfig()
    close = frame["close"]

    # Independent of the feature code: straight from the closes.
    z = 10.0 * np.log(close / close.shift(20)) + 10.0 * (close / close.rolling(50).mean() - 1)
    expected = 1.0 / (1.0 + np.exp(-z))
    got = MLDirection.probabilities(config, frame, LinearPredictor(config.coefficients, 0.0))

    np.testing.assert_allclose(got.iloc[49:], expected.iloc[49:], rtol=1e-12)
    assert got.iloc[:49].isna().all()


def test_the_linear_model_is_flat_during_apples_2013_slide_and_long_in_its_2014_rally():
    frame = _frame("AAPL")
    dates = pd.to_datetime(frame["ts_event"])
    target = MLDirection.vectorized(MLDirectionConfig(), frame)

    # AAPL fell from ~$75 (Jan 2013, split-adjusted) to ~$56 in April 2013, then rose ~40%
    # from May to September 2014.
    assert target[dates.between("2013-04-01", "2013-04-30")].eq(0.0).mean() > 0.8
    assert target[dates.between("2014-06-01", "2014-08-31")].eq(1.0).mean() > 0.8


def test_probability_outside_zero_one_is_a_strategy_error():
    class Broken:
        def predict_proba_one(self, features: np.ndarray) -> float:
            return 1.5

        def predict_proba(self, features: np.ndarray) -> np.ndarray:
            return np.full(len(features), 1.5)

    strategy = MLDirection(MLDirectionConfig(), "KO", predictor=Broken())

    with pytest.raises(StrategyError, match=r"P\(up\) must be in \[0, 1\], was 1\.5"):
        for bar in iter_bars(_frame("KO", 60), "KO"):
            strategy.update(bar)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"coefficients": [1.0, 2.0]}, "coefficients must hold 8 values .* was 2"),
        ({"upper": 1.0}, "upper must be in \\(0, 1\\), was 1.0"),
        ({"lower": 0.6, "upper": 0.5}, "lower must be <= upper, was 0.6 > 0.5"),
        ({"ma_periods": [0]}, "ma_periods must be in \\[1, 10000\\], was 0"),
        ({"intercept": float("nan")}, "must be finite"),
        ({"model": "torch"}, "Invalid enum value 'torch'"),
    ],
)
def test_bad_configs_are_refused_naming_the_value(bad, message):
    with pytest.raises(ConfigError, match=message):
        MLDirectionConfig.from_dict(bad)


def test_other_look_backs_need_their_own_coefficients():
    with pytest.raises(ConfigError, match="coefficients must hold 5 values"):
        MLDirectionConfig.from_dict({"return_horizons": [1], "ma_periods": [20]})

    config = MLDirectionConfig.from_dict(
        {"return_horizons": [1], "ma_periods": [20], "coefficients": [1, 0, 1, 0, 0]}
    )
    assert config.feature_params().names == ("ret_1", "vol_ewma", "dist_ma_20", "rsi", "volume_z")


def test_the_catalogue_describes_the_type_as_tactical_trend_following_on_daily_equities():
    described = describe(strategy_type("ml_direction"))

    assert (described["family"], described["tier"], described["data_kind"]) == (
        "trend_following",
        "tactical",
        "bars",
    )
    assert described["dataset"] == "equities_daily_stocknet88"
    assert described["defaults"]["model"] == "linear"
