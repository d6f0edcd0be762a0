"""Count learning-tier events in Redis for alerting: gate failures, failed retrains,
promotions and rollbacks, per strategy (``<ns>:learning:counts``, field ``kind|strategy``).

Best effort: the count is for the operators' alerts, so a Redis that is away or refuses is
logged (``learning_count_failed``) and never fails the retrain, promotion or rollback it
counts. The Redis is the flows' (``REDIS_URL``, else the embedded server, as
:func:`pipelines.announce.notify_core` uses) in namespace ``STRATEGY_ENGINE_NAMESPACE``.
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)

NAMESPACE_ENV = "STRATEGY_ENGINE_NAMESPACE"
TIMEOUT_S = 2.0
"""How long a count may wait on an unreachable Redis before it gives up."""


def count_learning_event(kind: str, strategy: str) -> bool:
    """Add one to ``kind|strategy``; True if counted. Never raises (see the module)."""
    from core.adapters.redis_server import connect, fail_fast_client
    from core.adapters.redis_store import RedisStore

    namespace = os.environ.get(NAMESPACE_ENV, "se")
    try:
        url = os.environ.get("REDIS_URL")
        if url:
            # Short timeouts: a count must not hold a flow up behind an unreachable server.
            client = fail_fast_client(url, timeout_s=TIMEOUT_S)
            try:
                RedisStore(client, namespace=namespace).count_learning_event(kind, strategy)
            finally:
                client.close()
        else:
            with connect() as connection:
                store = RedisStore(connection.client, namespace=namespace)
                store.count_learning_event(kind, strategy)
    except Exception as exc:
        log.warning(
            f"learning event {kind} of {strategy} not counted: {type(exc).__name__}: {exc}"[:400],
            extra={"event": "learning_count_failed", "kind": kind, "strategy": strategy,
                   "namespace": namespace, "error": f"{type(exc).__name__}: {exc}"[:400]},
        )  # fmt: skip
        return False
    return True
