"""A rule strategy packaged as an MLflow pyfunc model, with nothing pickled.

The model folder holds ``strategy.json`` (``{"type", "config", "schema_version"}``) and an
``MLmodel`` naming this module as its ``loader_module``: loading imports the installed
``registry.packaging`` and rebuilds the strategy from the installed catalogue. No cloudpickle, no
code copied into the artifact, so a registry artifact is only ever read as JSON.
"""

from __future__ import annotations

import json
import tempfile
import warnings
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.pyfunc import PythonModel
from mlflow.types import ColSpec, Schema

from core.errors import ConfigError, RegistryError
from core.strategies.catalogue import strategy_type
from registry.artifacts import STRATEGY_DOCUMENT, load_json, read_file

STRATEGY_FILE = "strategy.json"
SCHEMA_VERSION = 1
BAR_COLUMNS = ("open", "high", "low", "close", "volume")
# The installed project provides the catalogue the model is rebuilt from.
PIP_REQUIREMENTS = ["strategy-engine"]
SIGNATURE = ModelSignature(
    inputs=Schema([ColSpec("double", column) for column in BAR_COLUMNS]),
    outputs=Schema([ColSpec("double", "target")]),
)


def strategy_document(type_name: str, config: dict[str, Any]) -> dict[str, Any]:
    """Validate ``config`` against the catalogue type and return the ``strategy.json`` document.

    Raises
    ------
    ConfigError
        If the type is unknown or the config is invalid.
    """
    cls = strategy_type(type_name)
    validated = cls.config_type.from_dict(config)
    return {"type": type_name, "config": validated.to_dict(), "schema_version": SCHEMA_VERSION}


def parse_strategy_document(raw: bytes | str, where: str) -> tuple[str, dict[str, Any]]:
    """Check a ``strategy.json`` document against the installed catalogue.

    Parameters
    ----------
    raw
        The file's content.
    where
        What the document belongs to (``strategy.x version 3``), named in every error.

    Returns
    -------
    tuple
        The type name and the validated config as plain data.

    Raises
    ------
    RegistryError
        If the document is not JSON, nests deeper than :data:`registry.artifacts.STRATEGY_DOCUMENT`
        allows, has another schema version, or names a type or config the installed code does
        not know.
    """
    text = raw.encode() if isinstance(raw, str) else raw
    document = load_json(text, STRATEGY_DOCUMENT, name=STRATEGY_FILE, where=where)
    if not isinstance(document, dict):
        raise RegistryError(f"{where}: {STRATEGY_FILE} must hold an object, was {document!r:.80}")
    version = document.get("schema_version")
    if version != SCHEMA_VERSION:
        raise RegistryError(
            f"{where}: {STRATEGY_FILE} schema_version must be {SCHEMA_VERSION}, was {version!r}"
        )
    type_name, config = document.get("type"), document.get("config")
    if not isinstance(type_name, str) or not isinstance(config, dict):
        raise RegistryError(
            f"{where}: {STRATEGY_FILE} needs a string 'type' and an object 'config'"
        )
    try:
        checked = strategy_document(type_name, config)
    except ConfigError as exc:
        raise RegistryError(f"{where}: {exc}") from None
    return type_name, checked["config"]


class RuleStrategyModel(PythonModel):
    """Pyfunc face of a rule strategy: bars in, the vectorized target series out.

    ``predict`` takes no ``context`` so the same object serves both as a ``PythonModel`` and as
    what ``loader_module`` returns.
    """

    def __init__(self, type_name: str, config: dict[str, Any]) -> None:
        self.type_name = type_name
        self.strategy_cls = strategy_type(type_name)
        self.config = self.strategy_cls.config_type.from_dict(config)

    # MLflow accepts a context-less predict; loader_module calls predict(data, params=...).
    def predict(  # type: ignore[override]
        self, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.Series:
        """Return the target position per bar (NaN during warm-up)."""
        missing = [column for column in BAR_COLUMNS if column not in model_input.columns]
        if missing:
            raise RegistryError(f"{self.type_name}: input frame lacks columns {missing}")
        target = self.strategy_cls.vectorized(self.config, model_input)
        return target.rename("target")


def _load_pyfunc(data_path: str) -> RuleStrategyModel:
    """Entry point MLflow calls for ``loader_module``: rebuild the model from ``strategy.json``."""
    path = Path(data_path)
    if path.is_dir():
        path = path / STRATEGY_FILE
    raw = read_file(path, STRATEGY_DOCUMENT, where=str(path.parent))
    type_name, config = parse_strategy_document(raw, str(path.parent))
    return RuleStrategyModel(type_name, config)


def save_strategy_model(path: Path, document: dict[str, Any]) -> None:
    """Write the pyfunc model folder for one strategy document at ``path`` (must not exist)."""
    with tempfile.TemporaryDirectory(prefix="strategy-doc-") as tmp:
        doc_path = Path(tmp) / STRATEGY_FILE
        doc_path.write_text(json.dumps(document, indent=2, sort_keys=True))
        with warnings.catch_warnings():
            # The signature is explicit; an input example would add files and a load at log time.
            warnings.filterwarnings("ignore", message=".*input example was not provided")
            mlflow.pyfunc.save_model(
                path=str(path),
                loader_module=__name__,
                data_path=str(doc_path),
                pip_requirements=PIP_REQUIREMENTS,
                signature=SIGNATURE,
            )
