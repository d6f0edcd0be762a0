"""Where things live, and the environment the services need before they are imported."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
# Run-time state (embedded Redis, Prefect's home) lives here; a test or operator may move it.
VAR_DIR = Path(os.environ.get("STRATEGY_ENGINE_VAR_DIR", REPO_ROOT / "var")).resolve()


def apply_environment_defaults() -> None:
    """Set the service settings a user has not set: local state under ``var/``, no telemetry.

    Called before Prefect or MLflow is imported, since both read their settings at import.
    """
    defaults = {
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "PREFECT_HOME": str(VAR_DIR / "prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
        "GIT_PYTHON_REFRESH": "quiet",
        "MLFLOW_LOGGING_LEVEL": "WARNING",
    }
    for name, value in defaults.items():
        os.environ.setdefault(name, value)
    # Prefect does not create its home's parents, and its SQLite store lives there.
    Path(os.environ["PREFECT_HOME"]).mkdir(parents=True, exist_ok=True)
