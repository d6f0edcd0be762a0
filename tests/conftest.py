"""Shared fixtures: real data slices, and the real services used by integration tests."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

pytest_plugins = ["tests.fixtures_redis"]

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data"
STOCKNET = DATA / "equities_daily_stocknet88" / "prices"

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


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
