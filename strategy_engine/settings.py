"""Where things live: the repository and the run-time state folder."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
# Run-time state (embedded Redis, Prefect's home) lives here; a test or operator may move it.
VAR_DIR = Path(os.environ.get("STRATEGY_ENGINE_VAR_DIR", REPO_ROOT / "var")).resolve()
