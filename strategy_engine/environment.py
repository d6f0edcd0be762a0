"""The environment every command needs before Prefect or MLflow is imported.

Both read their settings when they are imported, so a command calls
:func:`apply_environment_defaults` first. Kept apart from :mod:`strategy_engine.settings` (which
only says where things live) because it reads the running stack's state through
:mod:`strategy_engine.services`, which itself builds on the settings.
"""

from __future__ import annotations

import os
from pathlib import Path

from strategy_engine.services import Layout, stack_client_environment
from strategy_engine.settings import VAR_DIR


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
    for name, value in stack_client_environment(Layout(VAR_DIR)).items():
        os.environ.setdefault(name, value)
    # Prefect does not create its home's parents, and its SQLite store lives there.
    Path(os.environ["PREFECT_HOME"]).mkdir(parents=True, exist_ok=True)
