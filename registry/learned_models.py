"""Learned strategy models in MLflow: the tweet sentiment classifier, stored with skops.

A ``strategy.sentiment_analysis`` version is a normal strategy version (``strategy.json`` whose
config carries the lexicon distilled from the classifier, so the core rebuilds the strategy from
JSON alone, as for any rule strategy) plus the fitted scikit-learn pipeline itself as
``sentiment_model/model.skops`` in the same run, for re-scoring, audit and retraining. The
classifier's held-out ``accuracy`` and ``macro_f1`` are the version's metrics; its
hyper-parameters are logged as ``model.*`` params.

Nothing is pickled: skops writes a zip of JSON and arrays, and :func:`load_sentiment_model`
refuses any file that holds a type outside :data:`SENTIMENT_TRUSTED_TYPES`, after
:mod:`registry.artifacts` has checked the file and the archive against their bounds.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import skops.io as sio
from sklearn.pipeline import Pipeline

from core.errors import RegistryError
from core.strategies.news.sentiment_model import SentimentModelConfig, lexicon_from_model
from registry.artifacts import (
    SKOPS_MODEL,
    STRATEGY_DOCUMENT,
    load_skops,
    read_artifact,
    read_file,
)
from registry.evidence import evaluation_evidence, lookahead_evidence, promotion_evidence
from registry.packaging import (
    STRATEGY_FILE,
    parse_strategy_document,
    strategy_document,
)
from registry.store import MlflowStore
from registry.strategy_registry import (
    CHAMPION,
    RegisteredVersion,
    StrategyRegistry,
    lineage_tags,
    model_name,
    package_versions,
    require_metrics,
)

SENTIMENT_TYPE = "sentiment_analysis"
SENTIMENT_MODEL_DIR = "sentiment_model"
SENTIMENT_MODEL_FILE = "model.skops"
# Every type a fitted TF-IDF + logistic-regression pipeline serialises to; nothing else loads.
SENTIMENT_TRUSTED_TYPES = (
    "builtins.dict",
    "builtins.list",
    "builtins.str",
    "builtins.tuple",
    "numpy.float64",
    "numpy.ndarray",
    "sklearn.feature_extraction.text.TfidfTransformer",
    "sklearn.feature_extraction.text.TfidfVectorizer",
    "sklearn.linear_model._logistic.LogisticRegression",
    "sklearn.pipeline.Pipeline",
)
METRIC_KEYS = ("accuracy", "macro_f1")
# A classifier has no event time: what would be look-ahead is a held-out text seen in training.
HELD_OUT_METHOD = "held-out texts unseen in training"
# The lead in held-out macro F1 a classifier needs over the champion.
SENTIMENT_MARGIN = 0.01


def save_sentiment_model(model: Pipeline, path: Path) -> None:
    """Write the fitted pipeline to ``path`` in skops format (never pickle)."""
    sio.dump(model, path)


def load_sentiment_model(path: Path, *, where: str | None = None) -> Pipeline:
    """Load a skops file written by :func:`save_sentiment_model`.

    The file is read through :mod:`registry.artifacts`: a regular file within
    :data:`~registry.artifacts.SKOPS_MODEL`'s size, a zip within its member, size and ratio
    bounds, with a schema.

    Parameters
    ----------
    path
        The skops file.
    where
        What the file belongs to (``strategy.x version 3``), named in every error; defaults to
        the file's folder.

    Raises
    ------
    RegistryError
        If the file is not a bounded regular skops zip, holds a type outside
        :data:`SENTIMENT_TRUSTED_TYPES`, or is no pipeline.
    """
    where = where or str(path.parent)
    raw = read_file(path, SKOPS_MODEL, where=where)
    return _sentiment_pipeline(raw, path.name, where)


def _sentiment_pipeline(raw: bytes, name: str, where: str) -> Pipeline:
    model = load_skops(raw, SENTIMENT_TRUSTED_TYPES, name=name, where=where)
    if not isinstance(model, Pipeline):
        raise RegistryError(
            f"{where}: {name}: expected a sklearn Pipeline, was {type(model).__name__}"
        )
    return model


def text_data_hash(texts: Sequence[str], labels: Sequence[int]) -> str:
    """Return ``sha256:<hex>`` of labelled texts, order-sensitive, for the version's lineage."""
    digest = hashlib.sha256()
    for text, label in zip(texts, labels, strict=True):
        digest.update(f"{int(label)}\t{text}\n".encode())
    return f"sha256:{digest.hexdigest()}"


def sentiment_evidence(
    metrics: dict[str, float],
    *,
    train_texts: Sequence[str],
    valid_texts: Sequence[str],
    valid_labels: Sequence[int],
    store: MlflowStore | None = None,
    margin: float = SENTIMENT_MARGIN,
) -> dict[str, Any]:
    """The promotion evidence of a sentiment classifier, from what its training checks.

    ``lookahead``: no held-out text was seen in training (method
    :data:`HELD_OUT_METHOD`; each held-out text is one comparison). ``evaluation``: the
    classifier's held-out ``macro_f1`` (``metrics``) against the current champion's, scored
    here on the same held-out texts, with ``margin``.
    """
    from sklearn.metrics import f1_score
    from threadpoolctl import threadpool_limits

    seen = set(train_texts)
    leaked = sum(text in seen for text in valid_texts)
    registry = StrategyRegistry(store)
    champion = registry.get_alias(model_name(SENTIMENT_TYPE), CHAMPION)
    theirs = None
    if champion is not None:
        model, _ = load_registered_sentiment_model(champion, store=store)
        with threadpool_limits(1):
            predicted = model.predict(list(valid_texts))
        theirs = float(f1_score(list(valid_labels), predicted, average="macro"))
    return promotion_evidence(
        lookahead_evidence(HELD_OUT_METHOD, checked=len(valid_texts), violations=leaked),
        evaluation_evidence(
            "macro_f1",
            challenger=metrics["macro_f1"],
            champion=theirs,
            champion_version=champion,
            margin=margin,
            window={"held_out_texts": len(valid_texts)},
        ),
    )


def log_sentiment_model(
    model: Pipeline,
    metrics: dict[str, float],
    *,
    data_hash: str,
    validation: dict[str, Any],
    strategy_config: dict[str, Any] | None = None,
    model_config: SentimentModelConfig | None = None,
    lexicon_size: int = 200,
    symbols: tuple[str, ...] = (),
    store: MlflowStore | None = None,
) -> RegisteredVersion:
    """Log the classifier and its strategy in one run; register ``strategy.sentiment_analysis``.

    Parameters
    ----------
    model, metrics
        The fitted pipeline and its held-out metrics (must include ``accuracy``, ``macro_f1``).
    data_hash, validation
        Lineage of the training data (see :meth:`StrategyRegistry.register`).
    strategy_config
        Strategy parameters other than the lexicon (span, entry, ...).
    model_config
        The classifier's hyper-parameters, logged as ``model.*`` params.
    lexicon_size
        Number of tokens distilled into the strategy's lexicon.
    symbols
        Tickers the version trades (empty: all of its data set).
    store
        MLflow store; defaults to the project's.

    Returns
    -------
    RegisteredVersion
        Name, version and run id of the new version.
    """
    require_metrics("sentiment model", metrics, METRIC_KEYS)
    config = {**(strategy_config or {}), "lexicon": lexicon_from_model(model, lexicon_size)}
    document = strategy_document(SENTIMENT_TYPE, config)
    registry = StrategyRegistry(store)
    tags = {
        **lineage_tags(SENTIMENT_TYPE, data_hash, validation, symbols, None),
        **package_versions("scikit-learn", "skops"),
    }

    def add_model(folder: Path) -> None:
        (folder / SENTIMENT_MODEL_DIR).mkdir()
        save_sentiment_model(model, folder / SENTIMENT_MODEL_DIR / SENTIMENT_MODEL_FILE)

    extra = (
        {f"model.{k}": str(v) for k, v in model_config.to_dict().items()} if model_config else {}
    )
    return registry.register_document(
        document,
        tags,
        validation=validation,
        metrics=metrics,
        extra_params=extra,
        add_files=add_model,
    )


def load_registered_sentiment_model(
    version_or_alias: str, *, store: MlflowStore | None = None
) -> tuple[Pipeline, dict[str, Any]]:
    """Load a registered sentiment classifier and its strategy config, by version or alias.

    Raises
    ------
    RegistryError
        If the version or alias does not exist, or its artifacts are missing or untrusted.
    """
    registry = StrategyRegistry(store)
    name = model_name(SENTIMENT_TYPE)
    if str(version_or_alias).isdigit():
        version = registry.model_version(name, str(version_or_alias))
    else:
        found = registry.version_by_alias(name, version_or_alias)
        if found is None:
            raise RegistryError(f"{name} has no alias {version_or_alias!r}")
        version = found
    where = f"{name} version {version.version}"
    folder = registry.run_artifact_uri(version.run_id, where)
    tracking_uri = registry.store.tracking_uri
    model_file = f"{SENTIMENT_MODEL_DIR}/{SENTIMENT_MODEL_FILE}"
    raw_model = read_artifact(
        folder, model_file, SKOPS_MODEL, where=where, tracking_uri=tracking_uri
    )
    model = _sentiment_pipeline(raw_model, model_file, where)
    document = read_artifact(
        folder, STRATEGY_FILE, STRATEGY_DOCUMENT, where=where, tracking_uri=tracking_uri
    )
    _, config = parse_strategy_document(document, where)
    return model, config
