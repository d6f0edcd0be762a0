"""Pytest fixtures for a real MLflow registry: a migrated SQLite file copied into each test's store.

Load from ``tests/conftest.py`` with ``pytest_plugins``. Creating the tables of an MLflow
SQLite store runs its migrations (about 2 s), so they run once per session into a template
file, and each test's store starts from a copy of it.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from registry import StrategyRegistry

# Validation results as the data gates report them, for registering versions in tests.
PASSED: dict[str, Any] = {"success": True, "suite": "bars_daily", "failed_expectations": []}
FAILED: dict[str, Any] = {
    "success": False,
    "suite": "bars_daily",
    "failed_expectations": ["expect_column_values_to_be_between(close)"],
}


@pytest.fixture(scope="session")
def empty_mlflow_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An MLflow SQLite file with its tables created, to copy and never to write."""
    from registry import MlflowStore  # imported lazily: MLflow is slow to import

    store = MlflowStore(tmp_path_factory.mktemp("mlflow-template"))
    store.client.search_experiments()
    return store.root / "mlflow.db"


@pytest.fixture
def registry(mlflow_dir: Path, empty_mlflow_db: Path) -> StrategyRegistry:
    """A registry on this test's own store (``STRATEGY_ENGINE_MLFLOW_DIR``)."""
    from registry import MlflowStore, StrategyRegistry

    shutil.copy(empty_mlflow_db, mlflow_dir / "mlflow.db")
    return StrategyRegistry(MlflowStore(mlflow_dir))
