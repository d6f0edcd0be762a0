"""Learned direction models in MLflow: XGBoost as its own JSON, scikit-learn with skops.

A ``strategy.ml_direction`` version is a normal strategy version (``strategy.json`` with the
config: features, thresholds, ``model`` kind and ``model_params``; the pyfunc folder; the
validation report; params, metrics and lineage tags) plus the fitted model in its library's own
format in ``direction_model/``: ``model.json`` written by ``Booster.save_model`` for XGBoost,
``model.skops`` for a scikit-learn pipeline. A ``model: linear`` version needs no file: its
coefficients are in the config.

:func:`load_direction_predictor` builds a deployment's predictor from the artifact, read through
:mod:`registry.artifacts` (a regular file within its kind's bounds);
:func:`registry.source.load_direction_strategy` loads a version with it. Nothing is unpickled:
XGBoost parses its JSON once its nesting is checked, and a skops file is refused if its archive
exceeds the zip bounds or it holds any type outside :data:`DIRECTION_SKLEARN_TRUSTED_TYPES`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import skops.io as sio
import xgboost as xgb
from sklearn.pipeline import Pipeline

from core.errors import RegistryError
from core.ports import StrategyDeployment
from core.strategies.ml.direction import MLDirection, MLDirectionConfig, Predictor
from registry.artifacts import (
    SKOPS_MODEL,
    XGBOOST_MODEL,
    load_json,
    load_skops,
    read_artifact,
    read_file,
)
from registry.packaging import strategy_document
from registry.store import MlflowStore
from registry.strategy_registry import (
    RegisteredVersion,
    StrategyRegistry,
    lineage_tags,
    package_versions,
    require_metrics,
)

DIRECTION_TYPE = "ml_direction"
DIRECTION_MODEL_DIR = "direction_model"
MODEL_FILES = {"xgboost": "model.json", "sklearn": "model.skops"}
_BOUNDS = {"xgboost": XGBOOST_MODEL, "sklearn": SKOPS_MODEL}
# Every type a fitted StandardScaler + LogisticRegression pipeline serialises to; nothing else.
DIRECTION_SKLEARN_TRUSTED_TYPES = (
    "builtins.dict",
    "builtins.list",
    "builtins.str",
    "builtins.tuple",
    "numpy.float64",
    "numpy.ndarray",
    "sklearn.linear_model._logistic.LogisticRegression",
    "sklearn.pipeline.Pipeline",
    "sklearn.preprocessing._data.StandardScaler",
)
METRIC_KEYS = ("hit_rate", "ic", "sharpe")


# -- predictors ----------------------------------------------------------------------------------


class XGBoostPredictor:
    """P(up) from a binary:logistic XGBoost booster (float32 inside, float64 out)."""

    def __init__(self, booster: xgb.Booster) -> None:
        # One row per bar: threads cost more than they give, and cores are the core's to share.
        booster.set_param({"nthread": 1})
        self.booster = booster

    def predict_proba_one(self, features: np.ndarray) -> float:
        return float(self.booster.inplace_predict(features.reshape(1, -1))[0])

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        return np.asarray(self.booster.inplace_predict(features), dtype="float64")


class SklearnPredictor:
    """P(up) from a fitted scikit-learn classifier: the probability of class 1."""

    def __init__(self, model: Pipeline) -> None:
        self.model = model
        classes = list(model.classes_)
        if 1.0 not in classes:
            raise RegistryError(f"classifier must know class 1 (up), has classes {classes}")
        self._column = classes.index(1.0)

    def predict_proba_one(self, features: np.ndarray) -> float:
        return float(self.model.predict_proba(features.reshape(1, -1))[0, self._column])

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        return np.asarray(self.model.predict_proba(features)[:, self._column], dtype="float64")


def predictor_for(kind: str, model: Any) -> Predictor:
    """Wrap a fitted model of ``kind`` (``xgboost`` or ``sklearn``) as a :class:`Predictor`."""
    if kind == "xgboost" and isinstance(model, xgb.Booster):
        return XGBoostPredictor(model)
    if kind == "sklearn" and isinstance(model, Pipeline):
        return SklearnPredictor(model)
    raise RegistryError(f"model kind {kind!r} does not match a {type(model).__name__}")


# -- files ---------------------------------------------------------------------------------------


def save_direction_model(kind: str, model: Any, folder: Path) -> Path:
    """Write the fitted model into ``folder`` in its library's own format; return the file."""
    predictor_for(kind, model)  # checks that kind and model agree
    path = folder / MODEL_FILES[kind]
    if kind == "xgboost":
        model.save_model(str(path))
    else:
        sio.dump(model, path)
    return path


def load_direction_model(kind: str, path: Path, *, where: str | None = None) -> Predictor:
    """Build a predictor from a file written by :func:`save_direction_model`.

    Parameters
    ----------
    kind
        ``xgboost`` or ``sklearn``.
    path
        The model file.
    where
        What the file belongs to (``strategy.x version 3``), named in every error; defaults to
        the file's folder.

    Raises
    ------
    RegistryError
        If the file is not a regular file within its kind's bounds (size; JSON nesting for
        XGBoost; zip members, inflated size and ratio for skops), or (skops) holds an untrusted
        type.
    """
    where = where or str(path.parent)
    if kind not in MODEL_FILES:
        raise RegistryError(f"model kind must be one of {sorted(MODEL_FILES)}, was {kind!r}")
    raw = read_file(path, _BOUNDS[kind], where=where)
    return direction_predictor(kind, raw, name=path.name, where=where)


def direction_predictor(kind: str, raw: bytes, *, name: str, where: str) -> Predictor:
    """Build a predictor from a model file's bytes (read through :mod:`registry.artifacts`).

    XGBoost gets its JSON only after the nesting check: its own parser has no depth limit and
    a deeply nested file crashes the process. Its binary UBJ form is refused, since nothing here
    writes it and its nesting cannot be checked the same way.

    Raises
    ------
    RegistryError
        As :func:`load_direction_model`.
    """
    if kind == "xgboost":
        document = load_json(raw, XGBOOST_MODEL, name=name, where=where)
        if not isinstance(document, dict) or "learner" not in document:
            raise RegistryError(f"{where}: {name} is not an XGBoost JSON model (no 'learner')")
        booster = xgb.Booster()
        try:
            booster.load_model(bytearray(raw))
        except xgb.core.XGBoostError as exc:
            first = str(exc).splitlines()[0] if str(exc) else "no detail"
            raise RegistryError(f"{where}: {name} is not an XGBoost model ({first})") from None
        return XGBoostPredictor(booster)
    if kind == "sklearn":
        model = load_skops(raw, DIRECTION_SKLEARN_TRUSTED_TYPES, name=name, where=where)
        if not isinstance(model, Pipeline):
            what = type(model).__name__
            raise RegistryError(f"{where}: {name}: expected a sklearn Pipeline, was {what}")
        return SklearnPredictor(model)
    raise RegistryError(f"model kind must be one of {sorted(MODEL_FILES)}, was {kind!r}")


# -- registration --------------------------------------------------------------------------------


# The libraries each model kind needs to load (a linear model is plain numbers in the config).
_LIBRARIES = {"xgboost": ("xgboost-cpu",), "sklearn": ("scikit-learn", "skops")}


def log_direction_model(
    strategy_config: dict[str, Any],
    model: Any,
    metrics: dict[str, float],
    *,
    data_hash: str,
    validation: dict[str, Any],
    symbols: tuple[str, ...] = (),
    store: MlflowStore | None = None,
) -> RegisteredVersion:
    """Log a direction model and its strategy in one run; register ``strategy.ml_direction``.

    Parameters
    ----------
    strategy_config
        The ``ml_direction`` config; its ``model`` says which kind ``model`` is.
    model
        Fitted ``xgboost.Booster`` or scikit-learn ``Pipeline``; ``None`` for ``linear``.
    metrics
        Out-of-sample metrics; must include ``hit_rate``, ``ic`` and ``sharpe``.
    data_hash, validation, symbols
        Lineage (see :meth:`StrategyRegistry.register`).
    store
        MLflow store; defaults to the project's.

    Returns
    -------
    RegisteredVersion
        Name, version and run id of the new version.
    """
    require_metrics("direction model", metrics, METRIC_KEYS)
    document = strategy_document(DIRECTION_TYPE, strategy_config)
    kind = document["config"]["model"]
    if (kind == "linear") != (model is None):
        raise RegistryError(f"model {kind!r} needs {'no' if kind == 'linear' else 'a'} model file")
    registry = StrategyRegistry(store)
    tags = {
        **lineage_tags(DIRECTION_TYPE, data_hash, validation, symbols, None),
        **package_versions(*_LIBRARIES.get(kind, ())),
        "model_kind": kind,
    }

    def add_model(folder: Path) -> None:
        if model is not None:  # a linear model lives in the config itself
            (folder / DIRECTION_MODEL_DIR).mkdir()
            save_direction_model(kind, model, folder / DIRECTION_MODEL_DIR)

    return registry.register_document(
        document, tags, validation=validation, metrics=metrics, add_files=add_model
    )


# -- loading -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadedDirection:
    """A registered direction version: its deployment and the predictor its model gives."""

    deployment: StrategyDeployment
    predictor: Predictor

    def build(self, symbol: str) -> MLDirection:
        """Return a strategy for ``symbol`` with the predictor attached, ready to run."""
        config = MLDirectionConfig.from_dict(self.deployment.config)
        return MLDirection(config, symbol, name=self.deployment.name, predictor=self.predictor)


def load_direction_predictor(
    deployment: StrategyDeployment, registry: StrategyRegistry
) -> Predictor:
    """The predictor of a registered ``ml_direction`` deployment: its linear coefficients, or
    the fitted model its validation run holds, read under its kind's bounds.

    Raises
    ------
    RegistryError
        If the model file is missing, too large or untrusted.
    """
    config = MLDirectionConfig.from_dict(deployment.config)
    linear = config.linear_predictor()
    if linear is not None:
        return linear
    where = f"{deployment.name} version {deployment.version}"
    artifact = f"{DIRECTION_MODEL_DIR}/{MODEL_FILES[config.model]}"
    raw = read_artifact(
        registry.run_artifact_uri(deployment.validation_run, where),
        artifact,
        _BOUNDS[config.model],
        where=where,
        tracking_uri=registry.store.tracking_uri,
    )
    return direction_predictor(config.model, raw, name=artifact, where=where)
