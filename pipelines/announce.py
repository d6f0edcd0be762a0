"""Tell running cores that the registry changed (a control message on their channel)."""

from __future__ import annotations

import os

from prefect import task


@task(name="notify-core", retries=2, retry_delay_seconds=1)
def notify_core(model: str, version: str, namespace: str | None = None) -> int:
    """Tell running cores the set changed; they also poll the registry, so this may reach none.

    ``namespace``: the cores' Redis namespace (default ``$STRATEGY_ENGINE_NAMESPACE`` or ``se``).
    """
    from core.adapters.redis_server import connect
    from core.adapters.redis_store import RedisStore

    namespace = namespace or os.environ.get("STRATEGY_ENGINE_NAMESPACE", "se")
    with connect() as connection:
        store = RedisStore(connection.client, namespace=namespace)
        return store.publish_control({"action": "reload", "model": model, "version": version})


__all__ = ["notify_core"]
