"""MLflow strategy registry: register, list, alias, promote, roll back and load strategies."""

import os

# Before anything here imports mlflow: no usage reporting from a trading box.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

from registry.source import MlflowStrategySource
from registry.store import MlflowStore
from registry.strategy_registry import RegisteredVersion, StrategyRegistry

__all__ = ["MlflowStore", "MlflowStrategySource", "RegisteredVersion", "StrategyRegistry"]
