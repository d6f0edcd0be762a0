"""Pytest fixtures for the drop folder's tests: a private ingested store, and the learning events
ingest counts recorded in a list instead of Redis.

Load from ``tests/conftest.py`` with ``pytest_plugins = ["tests.fixtures_ingest"]``.
"""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The folder ingested rows go to, private to one test (``$STRATEGY_ENGINE_INGESTED``)."""
    from core.data.datasets import INGESTED_ENV_VAR

    root = tmp_path / "ingested"
    monkeypatch.setenv(INGESTED_ENV_VAR, str(root))
    return root


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """The learning events ingest counts (recorded here instead of in Redis)."""
    from pipelines import ingest

    calls: list[tuple[str, str]] = []
    monkeypatch.setattr(ingest, "count_learning_event", lambda *a: calls.append(a) or True)
    return calls
