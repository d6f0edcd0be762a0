"""Shared fixtures: real data slices, and the real services used by integration tests."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

pytest_plugins = ["tests.fixtures_redis", "tests.fixtures_mlflow", "tests.fixtures_ingest"]

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data"
STOCKNET = DATA / "equities_daily_stocknet88" / "prices"

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
if os.environ.get("PREFECT_HOME"):  # `make test` points it under var/, which a clone lacks
    Path(os.environ["PREFECT_HOME"]).mkdir(parents=True, exist_ok=True)


@pytest.fixture(scope="session", autouse=True)
def _shipped_data_only(tmp_path_factory: pytest.TempPathFactory):
    """Every test reads the shipped data alone: rows an operator ingested into ``var/`` (which
    every load appends to the shipped ones) would move the numbers the tests pin."""
    from core.data.datasets import INGESTED_ENV_VAR

    before = os.environ.get(INGESTED_ENV_VAR)
    os.environ[INGESTED_ENV_VAR] = str(tmp_path_factory.mktemp("ingested"))
    yield
    if before is None:
        os.environ.pop(INGESTED_ENV_VAR, None)
    else:
        os.environ[INGESTED_ENV_VAR] = before


@pytest.fixture(scope="session")
def aapl_csv() -> Path:
    return STOCKNET / "AAPL.csv"


@pytest.fixture(scope="session")
def aapl_bars(aapl_csv: Path) -> pd.DataFrame:
    """The real AAPL daily bars, 2012-09-04 to 2017-09-01, as the loader parses them."""
    from core.data.loaders import read_bars_frame

    loaded = read_bars_frame(aapl_csv)
    assert not loaded.rejected
    return loaded.frame


@pytest.fixture(scope="session")
def prefect_harness(tmp_path_factory: pytest.TempPathFactory):
    """One temporary Prefect server for the whole session, with the flow heartbeat off."""
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    with (
        prefect_test_harness(server_startup_timeout=120),
        temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}),
    ):
        yield


@pytest.fixture
def mlflow_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh MLflow store for one test, used by everything that opens the registry."""
    root = tmp_path / "mlflow"
    root.mkdir()
    monkeypatch.setenv("STRATEGY_ENGINE_MLFLOW_DIR", str(root))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return root
