"""Where things live, and the environment the services need before they are imported."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
# Run-time state (embedded Redis, Prefect's home) lives here; a test or operator may move it.
VAR_DIR = Path(os.environ.get("STRATEGY_ENGINE_VAR_DIR", REPO_ROOT / "var")).resolve()


def apply_environment_defaults() -> None:
    """Set the service settings a user has not set: local state under ``var/``, no telemetry.

    While the stack of ``strategy-engine up`` runs on this ``var/`` folder, also what its
    clients need from ``var/credentials.json``: ``REDIS_URL`` (as the ``core`` user),
    ``MLFLOW_TRACKING_USERNAME``/``MLFLOW_TRACKING_PASSWORD`` and ``PREFECT_API_AUTH_STRING``.
    A variable the user set is never replaced.

    Called before Prefect or MLflow is imported, since both read their settings at import.

    Raises
    ------
    ConfigError
        If the stack runs and its credentials file may be read by others or is malformed.
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
    # Imported here: the services module imports this one.
    from strategy_engine.services import Layout, stack_client_environment

    for name, value in stack_client_environment(Layout(VAR_DIR)).items():
        os.environ.setdefault(name, value)
    # Prefect does not create its home's parents, and its SQLite store lives there.
    Path(os.environ["PREFECT_HOME"]).mkdir(parents=True, exist_ok=True)
