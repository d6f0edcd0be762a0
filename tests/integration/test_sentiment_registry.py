"""The sentiment classifier in a real SQLite MLflow store: skops artifact, metrics, registration."""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from core.data.loaders import SENTIMENT_LABELS, read_sentiment_frame
from core.errors import RegistryError
from core.strategies.catalogue import build
from core.strategies.news.sentiment_model import (
    SentimentModelConfig,
    lexicon_from_model,
    train_sentiment_model,
)
from registry import MlflowStore, MlflowStrategySource, StrategyRegistry
from registry.learned_models import (
    SENTIMENT_MODEL_DIR,
    SENTIMENT_MODEL_FILE,
    load_registered_sentiment_model,
    load_sentiment_model,
    log_sentiment_model,
    save_sentiment_model,
    sentiment_evidence,
    text_data_hash,
)
from tests.strategy_samples.samples_news import news_stream

pytestmark = pytest.mark.integration

SENTIMENT = Path(__file__).resolve().parents[2] / "data" / "sentiment_twitter_financial_news"
NAME = "strategy.sentiment_analysis"


@pytest.fixture(scope="module")
def splits() -> tuple[pd.DataFrame, pd.DataFrame]:
    train = read_sentiment_frame(SENTIMENT / "sent_train.csv")
    valid = read_sentiment_frame(SENTIMENT / "sent_valid.csv")
    return train.frame, valid.frame


@pytest.fixture(scope="module")
def trained(splits: tuple[pd.DataFrame, pd.DataFrame]) -> tuple:
    train, valid = splits
    return train_sentiment_model(
        train["text"],
        train["label"],
        SentimentModelConfig(),
        valid_texts=valid["text"],
        valid_labels=valid["label"],
    )


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[MlflowStore]:
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)  # a stray ./mlruns would show here
    yield MlflowStore(tmp_path / "mlflow")
    assert not (work / "mlruns").exists()


def _validation(train: pd.DataFrame) -> dict:
    """A gate summary from checks actually run on the training texts."""
    failed = []
    if (train["text"].str.strip() == "").any():
        failed.append("text not empty")
    if not train["label"].isin(list(SENTIMENT_LABELS)).all():
        failed.append("label in 0, 1, 2")
    return {"success": not failed, "suite": "sentiment_text", "failed_expectations": failed}


def test_logging_registers_a_version_with_metrics_params_and_a_skops_model(
    store: MlflowStore, trained: tuple, splits: tuple
) -> None:
    model, metrics = trained
    train, valid = splits

    registered = log_sentiment_model(
        model,
        metrics,
        data_hash=text_data_hash(train["text"], train["label"]),
        validation=_validation(train),
        strategy_config={"span": 5, "entry": 0.1},
        model_config=SentimentModelConfig(),
        symbols=("KO", "PEP"),
        store=store,
    )

    assert (registered.name, registered.version) == (NAME, "1")
    run = store.client.get_run(registered.run_id)
    assert run.data.metrics["accuracy"] == pytest.approx(metrics["accuracy"])
    assert run.data.metrics["macro_f1"] == pytest.approx(metrics["macro_f1"])
    assert run.data.params["model.C"] == "4.0"
    assert run.data.tags["validation_success"] == "true"
    assert run.data.tags["data_hash"].startswith("sha256:")
    artifacts = {a.path for a in store.client.list_artifacts(registered.run_id)}
    assert {"strategy.json", "validation.json", "model", SENTIMENT_MODEL_DIR} <= artifacts
    skops_files = store.client.list_artifacts(registered.run_id, SENTIMENT_MODEL_DIR)
    assert [a.path for a in skops_files] == [f"{SENTIMENT_MODEL_DIR}/{SENTIMENT_MODEL_FILE}"]

    loaded, config = load_registered_sentiment_model("1", store=store)
    texts = valid["text"].tolist()
    np.testing.assert_array_equal(loaded.predict(texts), model.predict(texts))
    assert [tuple(pair) for pair in config["lexicon"]] == list(lexicon_from_model(model, 200))


def test_the_core_rebuilds_the_registered_strategy_from_json_alone(
    store: MlflowStore, trained: tuple, splits: tuple
) -> None:
    model, metrics = trained
    train, _ = splits
    registry = StrategyRegistry(store)
    valid = splits[1]
    evidence = sentiment_evidence(
        metrics, train_texts=train["text"], valid_texts=valid["text"],
        valid_labels=valid["label"], store=store,
    )  # fmt: skip
    version = log_sentiment_model(
        model,
        metrics,
        data_hash=text_data_hash(train["text"], train["label"]),
        validation={**_validation(train), **evidence},
        store=store,
    ).version
    registry.promote(NAME, version)

    deployment = MlflowStrategySource(registry).load_version(NAME, "champion")
    _, events = news_stream("KO", "2014-01-01", "2015-01-01")
    live = build("sentiment_analysis", deployment.config, "KO")
    local = build("sentiment_analysis", {"lexicon": lexicon_from_model(model, 200)}, "KO")

    live_signals = [s for s in map(live.update, events) if s is not None]
    local_signals = [s for s in map(local.update, events) if s is not None]
    assert len(live_signals) > 5
    assert live_signals == local_signals


def test_the_model_file_is_a_skops_zip_and_untrusted_types_are_refused(
    tmp_path: Path, trained: tuple
) -> None:
    model, _ = trained
    good, bad = tmp_path / "good.skops", tmp_path / "bad.skops"
    save_sentiment_model(model, good)
    # A function reference is exactly what an attacker would smuggle in; skops does not trust it.
    save_sentiment_model(make_pipeline(FunctionTransformer(np.log1p)), bad)

    assert zipfile.is_zipfile(good)
    assert load_sentiment_model(good).predict(["$KO beats estimates"]).shape == (1,)
    with pytest.raises(RegistryError, match="refusing to load untrusted types"):
        load_sentiment_model(bad)


def test_registering_without_the_held_out_metrics_is_refused(
    store: MlflowStore, trained: tuple
) -> None:
    model, metrics = trained

    with pytest.raises(RegistryError, match="lack \\['macro_f1'\\]"):
        log_sentiment_model(
            model,
            {"accuracy": metrics["accuracy"]},
            data_hash="sha256:x",
            validation={"success": True},
            store=store,
        )


def test_an_unknown_alias_is_a_registry_error(store: MlflowStore, trained: tuple) -> None:
    with pytest.raises(RegistryError, match="has no alias 'champion'"):
        load_registered_sentiment_model("champion", store=store)
