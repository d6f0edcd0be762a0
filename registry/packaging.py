"""A rule strategy packaged as an MLflow pyfunc model, with nothing pickled.

The model folder holds ``strategy.json`` (``{"type", "config", "schema_version"}``) and an
``MLmodel`` naming this module as its ``loader_module``: loading imports the installed
``registry.packaging`` and rebuilds the strategy from the installed catalogue. No cloudpickle, no
code copied into the artifact, so a registry artifact is only ever read as JSON.

The model scores bars as people have them: a shipped CSV read as is (``Date, Open, High, Low,
Close, Adj Close, Volume``, integer volume) or the lower-case ``open, high, low, close, volume``
frame, and its targets serialise as strict JSON (``null`` during warm-up, never ``NaN``), so
``mlflow models predict`` and the scoring server work on it unchanged.
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
from mlflow.types.schema import AnyType

from core.errors import ConfigError, RegistryError
from core.strategies.catalogue import strategy_type
from registry.artifacts import STRATEGY_DOCUMENT, load_json, read_file

STRATEGY_FILE = "strategy.json"
SCHEMA_VERSION = 1
BAR_COLUMNS = ("open", "high", "low", "close", "volume")
# The installed project provides the catalogue the model is rebuilt from.
PIP_REQUIREMENTS = ["strategy-engine"]
# MLflow matches signature names case-sensitively and keeps only declared columns, so both
# spellings are declared, every one optional; predict checks that each bar column is present once.
# Volume is Any because the shipped CSVs hold it as integers (int64, which MLflow will not cast
# to double) or, with a missing row, as floats (which it will not cast to long); predict casts it.
CSV_COLUMNS = (
    ColSpec("string", "Date", required=False),
    *(ColSpec("double", name, required=False) for name in ("Open", "High", "Low", "Close")),
    ColSpec("double", "Adj Close", required=False),
    ColSpec(AnyType(), "Volume", required=False),
)
LOWER_CASE_COLUMNS = (
    *(ColSpec("double", name, required=False) for name in BAR_COLUMNS[:-1]),
    ColSpec(AnyType(), "volume", required=False),
)
SIGNATURE = ModelSignature(
    inputs=Schema([*CSV_COLUMNS, *LOWER_CASE_COLUMNS]),
    # Optional: a warm-up bar has no target (None, written as JSON null).
    outputs=Schema([ColSpec("double", "target", required=False)]),
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


def bar_frame(model_input: pd.DataFrame, where: str) -> pd.DataFrame:
    """Return ``model_input``'s bar columns as a float frame named ``open`` ... ``volume``.

    Column names match case-insensitively and ignoring surrounding spaces; other columns
    (``Date``, ``Adj Close``) are left out. The index is kept. Through MLflow only the
    signature's spellings arrive here (it drops undeclared columns): ``Open`` or ``open``.

    Raises
    ------
    RegistryError
        If a bar column is missing, given twice (``Close`` and ``close``), or not numeric.
    """
    found: dict[str, list[Any]] = {}
    for column in model_input.columns:
        found.setdefault(str(column).strip().lower(), []).append(column)
    missing = [name for name in BAR_COLUMNS if name not in found]
    if missing:
        raise RegistryError(
            f"{where}: input lacks bar columns {missing} (needs {', '.join(BAR_COLUMNS)} in any "
            f"case; got {[str(c) for c in model_input.columns]})"
        )
    twice = {name: found[name] for name in BAR_COLUMNS if len(found[name]) > 1}
    if twice:
        raise RegistryError(f"{where}: input gives a bar column more than once: {twice}")
    bars = {}
    for name in BAR_COLUMNS:
        source = found[name][0]
        try:
            bars[name] = pd.to_numeric(model_input[source], errors="raise").astype("float64")
        except (TypeError, ValueError) as exc:
            raise RegistryError(f"{where}: column {source!r} is not numeric: {exc}") from None
    return pd.DataFrame(bars, index=model_input.index)


def _json_safe(result: pd.Series | pd.DataFrame) -> pd.Series | pd.DataFrame:
    """``result`` as objects with None where it is NaN, which JSON writers emit as ``null``."""
    return result.astype(object).where(result.notna(), None)


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
    ) -> pd.Series | pd.DataFrame:
        """Return the target position per bar, on ``model_input``'s index.

        A Series named ``target`` of object dtype: floats, and None during warm-up, so that
        MLflow's JSON writers emit ``null`` rather than a bare ``NaN``; ``.astype(float)`` gives
        the strategy's own vectorized series. A strategy whose vectorized form is a frame (the
        market makers' quotes) returns that frame, with None in the same way.

        Raises
        ------
        RegistryError
            If the input lacks a bar column, has one twice, or has a non-numeric one.
        """
        bars = bar_frame(model_input, self.type_name)
        target = self.strategy_cls.vectorized(self.config, bars)
        if isinstance(target, pd.Series):
            target = target.rename("target")
        return _json_safe(target)


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
