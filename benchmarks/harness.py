"""What the benchmarks that run the real core process share."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def core_env(redis_url: str, work_dir: Path) -> dict[str, str]:
    """A core subprocess's environment: this Redis, its state and MLflow store in ``work_dir``."""
    env = dict(os.environ)
    env.update(
        REDIS_URL=redis_url,
        STRATEGY_ENGINE_VAR_DIR=str(work_dir / "var"),
        STRATEGY_ENGINE_MLFLOW_DIR=str(work_dir / "mlflow"),
        MLFLOW_DISABLE_TELEMETRY="true",
        PYTHONPATH=str(REPO),
    )
    env.pop("MLFLOW_TRACKING_URI", None)
    return env
