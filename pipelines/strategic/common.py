"""What every context of the strategic tier shares: replay dates, the stamp, writing to Redis."""

from __future__ import annotations

import math
import os
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

import pandas as pd
from prefect import task

from core.errors import ConfigError
from core.messages import CONTEXT_TYPES, read_as

if TYPE_CHECKING:
    from core.adapters.redis_store import RedisStore

DAY_NS = 86_400 * 1_000_000_000
NAMESPACE_ENV = "STRATEGY_ENGINE_NAMESPACE"


def parse_as_of(as_of: date | str | None, default: date) -> date:
    """Return ``as_of`` as a date (ISO string accepted), or ``default`` when it is None.

    Raises
    ------
    ConfigError
        If the string is not an ISO date.
    """
    if as_of is None:
        return default
    if isinstance(as_of, datetime):
        return as_of.date()
    if isinstance(as_of, date):
        return as_of
    try:
        return date.fromisoformat(as_of)
    except ValueError:
        raise ConfigError(f"as_of must be an ISO date (YYYY-MM-DD), was {as_of!r}") from None


def day_end_ns(as_of: date) -> int:
    """The first nanosecond after ``as_of`` (UTC): everything stamped before it is public."""
    return int(pd.Timestamp(as_of, tz="UTC").value) + DAY_NS


def iso_day(ts_ns: int) -> str:
    """The UTC date of a nanosecond stamp, ISO formatted."""
    return pd.Timestamp(int(ts_ns), tz="UTC").strftime("%Y-%m-%d")


def stamp(document: dict[str, Any], now: datetime | None = None) -> dict[str, Any]:
    """Return ``document`` with ``computed_at`` set to ``now`` (UTC wall time by default)."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    return {**document, "computed_at": moment.isoformat(timespec="seconds")}


def number(x: float) -> float | None:
    """A JSON number, or None for NaN (JSON has no NaN)."""
    return None if math.isnan(x) else float(x)


def namespace_or_default(namespace: str | None) -> str:
    """The Redis namespace: the one given, else ``$STRATEGY_ENGINE_NAMESPACE``, else ``se``."""
    return namespace or os.environ.get(NAMESPACE_ENV) or "se"


def write_context(store: RedisStore, name: str, document: dict[str, Any]) -> dict[str, Any]:
    """Stamp ``document`` with ``computed_at``, store it as context ``name``, return it.

    A context with a contract (:data:`core.messages.CONTEXT_TYPES`) is checked against it
    first, so a document its readers could not decode is never written.

    Raises
    ------
    MessageError
        If the document does not match its contract (nothing is written).
    """
    stamped = stamp(document)
    kind = CONTEXT_TYPES.get(name)
    store.set_context(name, read_as(kind, stamped, f"context {name!r}") if kind else stamped)
    return stamped


@task(name="write-contexts", retries=2, retry_delay_seconds=1)
def write_contexts(namespace: str, documents: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Write each document as a context in one connection (``REDIS_URL`` or embedded Redis)."""
    from core.adapters.redis_server import connect
    from core.adapters.redis_store import RedisStore

    with connect() as connection:
        store = RedisStore(connection.client, namespace=namespace)
        return {name: write_context(store, name, doc) for name, doc in documents.items()}
