"""Tampered model artifacts in a real MLflow store: each is refused quickly, as one RegistryError.

Every test registers a version as the project does, then changes its files on disk the way
someone with write access to the artifact store could, and loads it as the core loads its
champion set (or, for the sentiment classifier, as its registry loader does). Each load runs in
a thread joined with a timeout, so a read that would hang fails the test instead of stalling it.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import threading
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
import xgboost as xgb
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from core.adapters.redis_server import RedisConnection
from core.data.loaders import read_sentiment_frame
from core.errors import RegistryError
from core.features.direction import FeatureParams, direction_labels, feature_frame
from core.strategies.news.sentiment_model import SentimentModelConfig, train_sentiment_model
from registry import MlflowStrategySource, StrategyRegistry
from registry.artifacts import local_folder
from registry.learned_direction import DIRECTION_MODEL_DIR, MODEL_FILES, log_direction_model
from registry.learned_models import (
    SENTIMENT_MODEL_DIR,
    SENTIMENT_MODEL_FILE,
    load_registered_sentiment_model,
    log_sentiment_model,
    sentiment_evidence,
    text_data_hash,
)
from tests.evidence import direction_evidence, validated
from tests.fixtures_mlflow import PASSED
from tests.fixtures_processes import core_command, core_environment

pytestmark = pytest.mark.integration

SENTIMENT = Path(__file__).resolve().parents[2] / "data" / "sentiment_twitter_financial_news"
MA_NAME = "strategy.ma_crossover"
DIRECTION_NAME = "strategy.ml_direction"
SENTIMENT_NAME = "strategy.sentiment_analysis"
# A refusal is a few file reads and checks; a hang or a full inflate would take far longer.
QUICK_S = 5.0
MiB = 1 << 20


# -- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def direction_training(aapl_bars: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """Features of the default ``ml_direction`` config on real AAPL bars, their labels, and the
    bars (for the features' look-ahead check)."""
    features = feature_frame(aapl_bars, FeatureParams())
    frame = features.join(direction_labels(aapl_bars)).dropna()
    return frame[list(features.columns)].to_numpy(), frame["label"].to_numpy(), aapl_bars


@pytest.fixture(scope="module")
def sentiment_model() -> tuple[Any, dict[str, float], str, dict[str, Any]]:
    """A TF-IDF classifier fitted on a slice of the shipped tweets, its metrics, data hash and
    splits (for its promotion evidence)."""
    train = read_sentiment_frame(SENTIMENT / "sent_train.csv").frame.iloc[:3000]
    valid = read_sentiment_frame(SENTIMENT / "sent_valid.csv").frame.iloc[:1000]
    model, metrics = train_sentiment_model(
        train["text"],
        train["label"],
        SentimentModelConfig(),
        valid_texts=valid["text"],
        valid_labels=valid["label"],
    )
    splits = {
        "train_texts": train["text"],
        "valid_texts": valid["text"],
        "valid_labels": valid["label"],
    }
    return model, metrics, text_data_hash(train["text"], train["label"]), splits


def _rule_champion(registry: StrategyRegistry) -> Path:
    """Promote an ma_crossover version; return the ``strategy.json`` the core reads."""
    registered = registry.register(
        "ma_crossover",
        {"fast_period": 10, "slow_period": 30},
        data_hash="sha256:aapl",
        validation=validated({"fast_period": 10, "slow_period": 30}),
    )
    registry.promote(registered.name, registered.version)
    source = registry.model_version(registered.name, registered.version).source
    folder = local_folder(str(source))
    assert folder is not None
    return folder / "data" / "strategy.json"


def _direction_champion(
    registry: StrategyRegistry, kind: str, training: tuple[np.ndarray, np.ndarray, pd.DataFrame]
) -> Path:
    """Promote an ml_direction version with a fitted ``kind`` model; return its model file."""
    features, labels, bars = training
    if kind == "xgboost":
        model: Any = xgb.train(
            {"objective": "binary:logistic", "max_depth": 2},
            xgb.DMatrix(features, label=labels),
            num_boost_round=5,
        )
    else:
        model = make_pipeline(StandardScaler(), LogisticRegression()).fit(features, labels)
    metrics = {"hit_rate": 0.5, "ic": 0.0, "sharpe": 0.0}
    registered = log_direction_model(
        {"model": kind, "model_params": {}},
        model,
        metrics,
        data_hash="sha256:aapl",
        validation={**PASSED, **direction_evidence(bars, metrics)},
        store=registry.store,
    )
    registry.promote(registered.name, registered.version)
    return _run_folder(registry, registered.run_id) / DIRECTION_MODEL_DIR / MODEL_FILES[kind]


def _sentiment_champion(registry: StrategyRegistry, trained: tuple[Any, dict, str, dict]) -> Path:
    """Promote a sentiment version; return its skops file."""
    model, metrics, digest, splits = trained
    evidence = sentiment_evidence(metrics, **splits, store=registry.store)
    registered = log_sentiment_model(
        model,
        metrics,
        data_hash=digest,
        validation={
            "success": True,
            "suite": "sentiment_text",
            "failed_expectations": [],
            **evidence,
        },
        store=registry.store,
    )
    registry.promote(registered.name, registered.version)
    return _run_folder(registry, registered.run_id) / SENTIMENT_MODEL_DIR / SENTIMENT_MODEL_FILE


def _run_folder(registry: StrategyRegistry, run_id: str) -> Path:
    folder = local_folder(registry.client.get_run(run_id).info.artifact_uri)
    assert folder is not None
    return folder


def _load_set(registry: StrategyRegistry) -> Callable[[], Any]:
    """The core's load: every champion, with learned models attached."""
    return lambda: MlflowStrategySource(registry).load_active_set()


def _load_sentiment(registry: StrategyRegistry) -> Callable[[], Any]:
    return lambda: load_registered_sentiment_model("champion", store=registry.store)


def _refused_quickly(load: Callable[[], Any]) -> tuple[BaseException, float]:
    """Run ``load`` in a thread; return what it raised and how long it took.

    The join timeout is the hang check: a daemon thread still blocked after it is left behind
    and the test fails.
    """
    outcome: dict[str, Any] = {}

    def attempt() -> None:
        started = time.perf_counter()
        try:
            outcome["result"] = load()
        except BaseException as exc:  # the test inspects whatever escaped, RecursionError too
            outcome["error"] = exc
        outcome["seconds"] = time.perf_counter() - started

    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(timeout=QUICK_S * 4)
    assert not worker.is_alive(), f"the load still runs after {QUICK_S * 4:.0f} s: it hangs"
    assert "error" in outcome, f"the tampered version loaded: {outcome.get('result')!r:.200}"
    assert outcome["seconds"] < QUICK_S, f"refusing took {outcome['seconds']:.1f} s"
    return outcome["error"], outcome["seconds"]


def _assert_registry_error(error: BaseException, *fragments: str) -> str:
    assert isinstance(error, RegistryError), f"{type(error).__name__}: {error!s:.300}"
    message = str(error)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, message
    return message


def _rewrite_zip(path: Path, keep: Callable[[str], bool], extra: Callable[[zipfile.ZipFile], None]):
    """Rewrite the skops zip at ``path`` keeping the members ``keep`` accepts, then ``extra``."""
    original = zipfile.ZipFile(io.BytesIO(path.read_bytes()))
    with zipfile.ZipFile(path, "w") as rewritten:
        for member in original.infolist():
            if keep(member.filename):
                rewritten.writestr(member, original.read(member))
        extra(rewritten)


def _zip_bomb_schema(size: int) -> Callable[[zipfile.ZipFile], None]:
    """A ``schema.json`` member of ``size`` bytes of JSON whitespace, deflated ~1000:1."""

    def add(archive: zipfile.ZipFile) -> None:
        info = zipfile.ZipInfo("schema.json")
        info.compress_type = zipfile.ZIP_DEFLATED
        blank = b" " * MiB
        with archive.open(info, "w", force_zip64=False) as member:
            for _ in range(size // MiB):
                member.write(blank)

    return add


# -- the seven tamperings ------------------------------------------------------------------------


def test_a_deeply_nested_strategy_json_is_refused_without_recursing(
    registry: StrategyRegistry,
) -> None:
    document = _rule_champion(registry)
    depth = 200_000
    document.write_bytes(
        b'{"type": "ma_crossover", "schema_version": 1, "config": '
        + b"[" * depth
        + b"]" * depth
        + b"}"
    )

    error, _ = _refused_quickly(_load_set(registry))

    _assert_registry_error(
        error,
        f"{MA_NAME} version 1",
        "strategy.json nests at least 200001 levels deep, over the bound 32",
    )


def test_a_strategy_json_linked_to_dev_zero_is_refused_without_reading_it(
    registry: StrategyRegistry,
) -> None:
    document = _rule_champion(registry)
    document.unlink()
    document.symlink_to("/dev/zero")

    error, _ = _refused_quickly(_load_set(registry))

    _assert_registry_error(
        error, f"{MA_NAME} version 1", "data/strategy.json is a symbolic link, not a regular file"
    )


def test_a_strategy_json_that_is_a_fifo_is_refused_without_hanging(
    registry: StrategyRegistry,
) -> None:
    document = _rule_champion(registry)
    document.unlink()
    os.mkfifo(document)

    error, _ = _refused_quickly(_load_set(registry))

    _assert_registry_error(
        error, f"{MA_NAME} version 1", "data/strategy.json is a FIFO, not a regular file"
    )


def test_a_skops_model_that_is_not_a_zip_is_refused(
    registry: StrategyRegistry, direction_training: tuple[np.ndarray, np.ndarray, pd.DataFrame]
) -> None:
    model_file = _direction_champion(registry, "sklearn", direction_training)
    model_file.write_bytes(b"this is not a zip archive\n" * 100)

    error, _ = _refused_quickly(_load_set(registry))

    _assert_registry_error(
        error,
        f"{DIRECTION_NAME} version 1",
        "direction_model/model.skops is not a zip archive (no end-of-central-directory record)",
    )


def test_a_skops_zip_without_its_schema_is_refused(
    registry: StrategyRegistry, direction_training: tuple[np.ndarray, np.ndarray, pd.DataFrame]
) -> None:
    model_file = _direction_champion(registry, "sklearn", direction_training)
    _rewrite_zip(model_file, keep=lambda name: name != "schema.json", extra=lambda _: None)

    error, _ = _refused_quickly(_load_set(registry))

    _assert_registry_error(
        error,
        f"{DIRECTION_NAME} version 1",
        "direction_model/model.skops is not a skops file (no schema.json)",
    )


def test_a_zip_bomb_in_a_direction_model_is_refused_before_it_inflates(
    registry: StrategyRegistry, direction_training: tuple[np.ndarray, np.ndarray, pd.DataFrame]
) -> None:
    model_file = _direction_champion(registry, "sklearn", direction_training)
    # Under the total bound, so the compression ratio is what refuses it.
    _rewrite_zip(
        model_file, keep=lambda name: name != "schema.json", extra=_zip_bomb_schema(64 * MiB)
    )
    assert model_file.stat().st_size < MiB

    error, _ = _refused_quickly(_load_set(registry))

    message = _assert_registry_error(
        error, f"{DIRECTION_NAME} version 1", "member 'schema.json' compresses"
    )
    assert "over the bound 100:1" in message


def test_a_zip_bomb_in_a_sentiment_model_is_refused_before_it_inflates(
    registry: StrategyRegistry, sentiment_model: tuple[Any, dict, str, dict]
) -> None:
    model_file = _sentiment_champion(registry, sentiment_model)
    # Past the total bound as well as the ratio: the total is checked first.
    size = 256 * MiB
    _rewrite_zip(model_file, keep=lambda name: name != "schema.json", extra=_zip_bomb_schema(size))
    assert model_file.stat().st_size < 2 * MiB

    error, _ = _refused_quickly(_load_sentiment(registry))

    message = _assert_registry_error(
        error, f"{SENTIMENT_NAME} version 1", "sentiment_model/model.skops inflates to"
    )
    assert "over the bound 200000000" in message


# -- more of the same boundary -------------------------------------------------------------------


def test_a_skops_pipeline_calling_os_system_is_still_refused(
    registry: StrategyRegistry, direction_training: tuple[np.ndarray, np.ndarray, pd.DataFrame]
) -> None:
    model_file = _direction_champion(registry, "sklearn", direction_training)
    sio.dump(make_pipeline(FunctionTransformer(os.system)), model_file)

    error, _ = _refused_quickly(_load_set(registry))

    message = _assert_registry_error(
        error, f"{DIRECTION_NAME} version 1", "refusing to load untrusted types"
    )
    assert f"{os.system.__module__}.system" in message


def test_a_deeply_nested_xgboost_model_is_refused_before_xgboost_parses_it(
    registry: StrategyRegistry, direction_training: tuple[np.ndarray, np.ndarray, pd.DataFrame]
) -> None:
    # XGBoost's own JSON parser has no depth limit: this file kills the process with SIGSEGV.
    model_file = _direction_champion(registry, "xgboost", direction_training)
    depth = 100_000
    model_file.write_bytes(b'{"learner":' * depth + b"1" + b"}" * depth)

    error, _ = _refused_quickly(_load_set(registry))

    _assert_registry_error(
        error,
        f"{DIRECTION_NAME} version 1",
        # The scan stops at the first megabyte past the bound, so "at least" that deep.
        "direction_model/model.json nests at least ",
        "levels deep, over the bound 64",
    )


def test_a_model_folder_replaced_by_a_link_is_refused(
    registry: StrategyRegistry,
    direction_training: tuple[np.ndarray, np.ndarray, pd.DataFrame],
    tmp_path: Path,
) -> None:
    model_file = _direction_champion(registry, "xgboost", direction_training)
    elsewhere = tmp_path / "elsewhere"
    shutil.move(model_file.parent, elsewhere)
    model_file.parent.symlink_to(elsewhere, target_is_directory=True)

    error, _ = _refused_quickly(_load_set(registry))

    _assert_registry_error(
        error, f"{DIRECTION_NAME} version 1", "direction_model is a symbolic link, not a directory"
    )


def test_untampered_champions_still_load(
    registry: StrategyRegistry,
    direction_training: tuple[np.ndarray, np.ndarray, pd.DataFrame],
    sentiment_model: tuple[Any, dict, str, dict],
) -> None:
    _rule_champion(registry)
    _direction_champion(registry, "sklearn", direction_training)
    _sentiment_champion(registry, sentiment_model)

    deployments = MlflowStrategySource(registry).load_active_set()
    model, config = load_registered_sentiment_model("champion", store=registry.store)

    assert [(d.name, d.version) for d in deployments] == [
        (MA_NAME, "1"),
        (DIRECTION_NAME, "1"),
        (SENTIMENT_NAME, "1"),
    ]
    direction = next(d for d in deployments if d.name == DIRECTION_NAME)
    assert direction.predictor is not None
    assert model.predict(["$KO beats estimates"]).shape == (1,)
    assert config["lexicon"]


def test_a_core_started_on_a_tampered_champion_exits_with_one_line(
    registry: StrategyRegistry,
    mlflow_dir: Path,
    redis_connection: RedisConnection,
    redis_namespace: str,
    tmp_path: Path,
) -> None:
    document = _rule_champion(registry)
    document.unlink()
    os.mkfifo(document)
    env = core_environment(redis_connection.url, tmp_path / "var", mlflow_dir)

    done = subprocess.run(
        core_command(
            "--feed", "equities_daily_stocknet88", "--until-end", "--no-mlflow",
            "--namespace", redis_namespace,
        ),
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip

    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert "data/strategy.json is a FIFO, not a regular file" in done.stderr
