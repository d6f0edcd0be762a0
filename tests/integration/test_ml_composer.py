"""ML Composer on real daily equities: purged walk-forward, both model kinds, MLflow round trip."""

from __future__ import annotations

import json
import math
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from core.data.datasets import load_bars
from core.data.loaders import iter_bars
from core.engine.engine import TradingEngine
from core.errors import ConfigError
from core.ports import StrategyDeployment
from core.strategies.ml.direction import LinearPredictor, MLDirection, MLDirectionConfig
from pipelines.ml_composer import (
    ComposerConfig,
    ComposerReport,
    fold_logistic,
    purged_splits,
    run_ml_composer,
)
from registry import MlflowStore, MlflowStrategySource, StrategyRegistry
from registry.learned_direction import DIRECTION_MODEL_DIR, MODEL_FILES, load_direction_model
from registry.source import load_direction_strategy

pytestmark = pytest.mark.integration

CONFIG = ComposerConfig(
    symbols=("AAPL", "KO", "XOM"), n_folds=3, min_train_dates=400, purge=5, xgb_rounds=60
)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowStore]:
    yield MlflowStore(tmp_path_factory.mktemp("mlflow"))


@pytest.fixture(scope="module")
def report(store: MlflowStore) -> ComposerReport:
    return run_ml_composer(CONFIG, store=store)


def _min_gap(train: np.ndarray, test: np.ndarray) -> int:
    return int(np.abs(train[:, None] - test[None, :]).min())


@pytest.mark.parametrize("walk_forward", [True, False])
def test_no_training_date_is_within_the_purge_of_any_test_date(walk_forward):
    splits = purged_splits(
        1000, n_folds=4, min_train=400, purge=7, embargo=9, walk_forward=walk_forward
    )

    assert len(splits) == 4
    assert np.concatenate([s.test for s in splits]).tolist() == list(range(400, 1000))
    for split in splits:
        assert _min_gap(split.train, split.test) > 7
        if walk_forward:
            assert split.train.max() < split.test.min()
        else:
            after = split.train[split.train > split.test.max()]
            assert len(after) == 0 or after.min() - split.test.max() >= 9


def test_a_purge_shorter_than_the_label_is_refused():
    with pytest.raises(ConfigError, match=r"purge must be >= 2 .* was 1"):
        ComposerConfig(purge=1)


def test_the_walk_forward_rows_respect_the_purge_on_real_dates(report: ComposerReport):
    data = report.data
    for trained in report.models.values():
        for split in trained.evaluation.folds:
            train_ts = data.ts_event[np.isin(data.date, split.train)]
            test_ts = data.ts_event[np.isin(data.date, split.test)]
            dates = np.unique(data.ts_event)
            gap = np.searchsorted(dates, test_ts.min()) - np.searchsorted(dates, train_ts.max())
            assert gap > CONFIG.purge
    assert report.validation["success"] is True
    assert report.validation["lookahead_violations"] == {}
    assert report.validation["min_train_test_gap"] == CONFIG.purge + 1


def test_both_models_train_and_their_out_of_sample_metrics_are_finite(report: ComposerReport):
    assert set(report.models) == {"xgboost", "sklearn"}
    for trained in report.models.values():
        metrics = trained.evaluation.metrics
        assert all(math.isfinite(v) for v in metrics.values())
        assert 0.0 <= metrics["hit_rate"] <= 1.0
        assert -1.0 <= metrics["ic"] <= 1.0
        assert metrics["n_test_rows"] == trained.evaluation.tested.sum()
        # Each test date holds one row per symbol that traded that day.
        assert metrics["n_test_dates"] * len(CONFIG.symbols) >= metrics["n_test_rows"]
        probabilities = trained.evaluation.p_up[trained.evaluation.tested]
        assert np.all((probabilities > 0.0) & (probabilities < 1.0))


def test_each_registered_version_holds_metrics_data_hash_validation_and_its_model_file(
    report: ComposerReport, store: MlflowStore
):
    registry = StrategyRegistry(store)
    for kind, trained in report.models.items():
        assert trained.version is not None
        version = registry.model_version(trained.version.name, trained.version.version)
        run = registry.client.get_run(trained.version.run_id)

        assert version.tags["data_hash"] == report.data_hash
        assert version.tags["validation_success"] == "true"
        assert version.tags["model_kind"] == kind
        assert version.tags["symbols"] == "AAPL,KO,XOM"
        for key in ("hit_rate", "ic", "sharpe"):
            assert run.data.metrics[key] == pytest.approx(trained.evaluation.metrics[key])
        assert run.data.params["model"] == kind
        artifacts = {
            a.path for a in registry.client.list_artifacts(run.info.run_id, DIRECTION_MODEL_DIR)
        }
        assert artifacts == {f"{DIRECTION_MODEL_DIR}/{MODEL_FILES[kind]}"}


def test_the_xgboost_artifact_is_xgboosts_own_json_and_the_sklearn_one_a_skops_zip(
    report: ComposerReport, store: MlflowStore, tmp_path: Path
):
    import mlflow.artifacts

    paths = {}
    for kind, trained in report.models.items():
        assert trained.version is not None
        paths[kind] = Path(
            mlflow.artifacts.download_artifacts(
                run_id=trained.version.run_id,
                artifact_path=f"{DIRECTION_MODEL_DIR}/{MODEL_FILES[kind]}",
                dst_path=str(tmp_path / kind),
                tracking_uri=store.tracking_uri,
            )
        )

    assert "learner" in json.loads(paths["xgboost"].read_text())
    assert "schema.json" in zipfile.ZipFile(paths["sklearn"]).namelist()
    assert load_direction_model("sklearn", paths["sklearn"]).predict_proba_one(
        report.data.features[0]
    ) == pytest.approx(report.models["sklearn"].training_predictions[0], abs=0)


def test_the_loaded_predictor_reproduces_the_training_time_predictions_exactly(
    report: ComposerReport, store: MlflowStore
):
    for trained in report.models.values():
        assert trained.version is not None
        loaded = load_direction_strategy(trained.version.version, store=store)

        again = loaded.predictor.predict_proba(report.data.features)

        assert loaded.deployment.config["model"] == trained.kind
        np.testing.assert_array_equal(again, trained.training_predictions)


def test_a_loaded_xgboost_strategy_trades_bar_by_bar_as_its_vectorized_form(
    report: ComposerReport, store: MlflowStore
):
    trained = report.models["xgboost"]
    assert trained.version is not None
    loaded = load_direction_strategy(trained.version.version, store=store)
    frame = load_bars("equities_daily_stocknet88", ["WMT"])["WMT"].frame.iloc[:400]
    strategy = loaded.build("WMT")
    config = MLDirectionConfig.from_dict(loaded.deployment.config)

    signals = [s for bar in iter_bars(frame, "WMT") if (s := strategy.update(bar)) is not None]
    target = MLDirection.targets(config, frame, loaded.predictor).dropna()
    changes = target[target.ne(target.shift())]

    assert len(signals) > 3
    assert [(s.ts_event, s.target_position) for s in signals] == [
        (int(frame.loc[i, "ts_event"]), v) for i, v in changes.items()
    ]


def test_the_core_quarantines_a_learned_version_it_cannot_attach_a_model_to(
    report: ComposerReport,
):
    # A deployment built by hand, without the registry's predictor, cannot run its model.
    config = report.models["xgboost"].strategy_config
    deployment = StrategyDeployment(
        name="strategy.ml_direction", version="1", type_name="ml_direction", config=config
    )
    frame = load_bars("equities_daily_stocknet88", ["KO"])["KO"].frame.iloc[:10]

    summary = TradingEngine([deployment]).run(iter_bars(frame, "KO"))

    assert len(summary["strategy_errors"]) == 1
    assert "needs a fitted predictor attached" in summary["strategy_errors"][0]


def test_a_folded_logistic_model_runs_in_the_engine_with_the_vectorized_pnl(
    report: ComposerReport,
):
    pipeline = report.models["sklearn"].model
    coefficients, intercept = fold_logistic(pipeline)
    config = MLDirectionConfig(
        coefficients=coefficients, intercept=intercept, upper=0.5, lower=0.5, allow_short=True
    )
    np.testing.assert_allclose(
        LinearPredictor(coefficients, intercept).predict_proba(report.data.features),
        report.models["sklearn"].training_predictions,
        rtol=1e-9,
    )
    frame = load_bars("equities_daily_stocknet88", ["JNJ"])["JNJ"].frame
    deployment = StrategyDeployment(
        name="strategy.ml_direction", version="1", type_name="ml_direction",
        config=config.to_dict(),
    )  # fmt: skip

    engine_pnl = TradingEngine([deployment]).run(iter_bars(frame, "JNJ"))["pnl"]

    # Decide at close t, fill at open t+1, hold to open t+2; the last fill is marked at the close.
    target = MLDirection.vectorized(config, frame).fillna(0.0).to_numpy()
    opens, closes, n = frame["open"].to_numpy(), frame["close"].to_numpy(), len(frame)
    expected = float(np.sum(target[: n - 2] * (opens[2:] - opens[1:-1])))
    expected += target[n - 2] * (closes[n - 1] - opens[n - 1])
    assert engine_pnl == pytest.approx(expected, rel=1e-9)


def test_the_champion_xgboost_version_runs_in_the_engine_with_its_registered_model(
    report: ComposerReport, store: MlflowStore
):
    trained = report.models["xgboost"]
    assert trained.version is not None
    registry = StrategyRegistry(store)
    registry.set_alias(trained.version.name, "champion", trained.version.version)
    frame = load_bars("equities_daily_stocknet88", ["KO"])["KO"].frame.iloc[:400]  # trained on KO

    (deployment,) = [
        d for d in MlflowStrategySource(registry).load_active_set() if d.type_name == "ml_direction"
    ]
    engine = TradingEngine([deployment], keep_history=True)
    summary = engine.run(iter_bars(frame, "KO"))

    expected = load_direction_strategy(trained.version.version, store=store).build("KO")
    wanted = [s for bar in iter_bars(frame, "KO") if (s := expected.update(bar)) is not None]
    assert summary["strategy_errors"] == []
    assert [(s.ts_event, s.target_position) for s in engine.all_signals] == [
        (s.ts_event, s.target_position) for s in wanted
    ]
