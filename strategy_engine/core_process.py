"""Wire the long-running core: Redis, feeds, the registry, signals, status."""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import redis

from core.adapters.control_key import control_key
from core.adapters.market_streams import FeedPublisher, FeedReader, feed_key
from core.adapters.redis_server import RedisConnection, connect, fail_fast_client
from core.adapters.redis_store import RedisStore
from core.data.feeds import replay_events
from core.errors import ConfigError
from core.ports import DEFAULT_CORE, StrategyDeployment, StrategySource
from core.runtime.control import MAX_MESSAGES_PER_CYCLE, ControlInbox, WeightLimits
from core.runtime.control_signing import ControlVerifier
from core.runtime.ingest import IngestionBoundary
from core.runtime.outbox import BufferedWriter
from core.runtime.service import CoreService, CoreSettings
from core.strategies.catalogue import strategy_type
from pipelines.progress import progress
from strategy_engine.environment import apply_environment_defaults
from strategy_engine.settings import VAR_DIR

# Redis failing to do what was asked: away (connection, timeout), or answering with an error
# (OOM, READONLY, WRONGTYPE, NOSCRIPT, BUSY, ...). Either way the core backs off, retries and
# counts, holds its outputs, and acknowledges nothing whose effects were not stored.
TRANSIENT = (
    redis.ConnectionError,
    redis.TimeoutError,
    redis.ResponseError,
    ConnectionError,
    OSError,
)
DEFAULT_NAMESPACE = "se"

log = logging.getLogger(__name__)


@contextmanager
def redis_connection() -> Iterator[RedisConnection]:
    """``REDIS_URL`` if set, else the embedded server under ``var/redis``."""
    apply_environment_defaults()
    with connect(data_dir=VAR_DIR / "redis") as connection:
        yield connection


def publish_replay(
    connection: RedisConnection,
    dataset: str,
    *,
    namespace: str = DEFAULT_NAMESPACE,
    speed: float | None = None,
    fast: bool = False,
    quiet: bool = True,
) -> int:
    """Publish a shipped data set into its feed stream; returns the number of events."""
    publisher = FeedPublisher(connection.client, namespace)
    events = replay_events(dataset, fast=fast)
    shown = progress(events, desc=f"replay {dataset}", quiet=quiet, total=len(events), unit="ev")
    return publisher.publish(dataset, shown, speed=speed)


@dataclass(frozen=True)
class LocalStrategies:
    """Named strategy types with default configs, for replays and benchmarks without a registry."""

    types: tuple[str, ...]

    def load_active_set(self, alias: str = "champion") -> list[StrategyDeployment]:
        return [
            StrategyDeployment(
                name=f"strategy.{t}",
                version="local",
                type_name=t,
                config=strategy_type(t).config_type().to_dict(),
                alias="local",
            )
            for t in self.types
        ]


@dataclass(frozen=True)
class AliasSource:
    """The registry's set under one alias (``champion`` or a named set)."""

    alias: str

    def load_active_set(self, alias: str = "champion") -> list[StrategyDeployment]:
        from registry import MlflowStrategySource, StrategyRegistry

        return MlflowStrategySource(StrategyRegistry()).load_active_set(self.alias)


def run_core(
    settings: CoreSettings,
    connection: RedisConnection,
    *,
    namespace: str = DEFAULT_NAMESPACE,
    source: StrategySource,
    fresh: bool = False,
    reset_live: bool = False,
    before_run: Callable[[CoreService], None] | None = None,
    metrics_port: int | None = None,
    log_to_mlflow: bool = False,
    ledger_retention_days: float | None = None,
    archive_dir: Path | None = None,
) -> dict[str, Any]:
    """Run one core until SIGTERM/SIGINT (or the end of its feeds); return its summary.

    With ``ledger_retention_days``, orders and fills older than that move from Redis to
    Parquet files under ``archive_dir`` (default ``var/archive``), a day at a time.

    ``fresh`` forgets this core's checkpoint, ledger and consumer group and the namespace's
    signals first (a replay from scratch); it refuses while a core of the namespace is alive,
    unless ``reset_live``.
    """
    client = fail_fast_client(connection.url)
    store = RedisStore(client, namespace=namespace, core=settings.name)
    persistence = check_persistence(client, allow_volatile=settings.allow_volatile_redis)
    if fresh:
        forget(store, settings.feeds, reset_live=reset_live, marker=settings.checkpoint_marker)
    reader = feed_reader(client, store, settings)
    control = client.pubsub(ignore_subscribe_messages=True)
    control.subscribe(store.key("control"))
    service = CoreService(
        settings,
        source=source,
        feed=reader,
        writer=BufferedWriter(store, transient=TRANSIENT),
        board=store,
        transient=TRANSIENT,
    )
    inbox = ControlInbox(
        ControlVerifier(control_key()), store, core=settings.name, limits=WeightLimits()
    )
    service.attach_control(lambda: _handle_control(control, inbox, service))
    if ledger_retention_days is not None:
        from strategy_engine.archive import archive_ledger

        folder = archive_dir or VAR_DIR / "archive"
        retention_s = ledger_retention_days * 86_400
        service.attach_housekeeping(
            lambda: archive_ledger(store, folder, retention_s), every_s=ARCHIVE_EVERY_S
        )
    service.start()
    service.restarts = store.record_start(settings.name)
    metrics = None
    if metrics_port is not None:
        from strategy_engine.metrics import CoreMetrics, serve_metrics

        metrics = serve_metrics(CoreMetrics(service), "127.0.0.1", metrics_port)
    if before_run is not None:
        before_run(service)
    if persistence != "aof":
        service.last_error = f"Redis persistence: {persistence} ({PERSISTENCE_RISK[persistence]})"
    _log_started(service, namespace, persistence, metrics_port)
    try:
        with _stop_on_signals(service):
            summary = service.run()
        with contextlib.suppress(*TRANSIENT):  # unrecorded, the next start counts a restart
            store.record_clean_stop(settings.name)
    except BaseException as exc:
        log.error(
            f"core {settings.name} failed: {type(exc).__name__}: {exc}"[:400],
            extra={"event": "core_failed", "core": settings.name, "namespace": namespace,
                   "error": f"{type(exc).__name__}: {exc}"[:400]},
        )  # fmt: skip
        raise
    finally:
        if metrics is not None:
            metrics.stop()
        control.close()
    summary["redis_persistence"] = persistence
    if log_to_mlflow:
        summary["mlflow_run"] = _log_run(service, summary)
    log.info(
        f"core {settings.name} stopped after {summary['events_in']} events",
        extra={"event": "core_stopped", "namespace": namespace, **_loggable(summary)},
    )
    return summary


def _log_started(
    service: CoreService, namespace: str, persistence: str, metrics_port: int | None
) -> None:
    settings = service.settings
    assert service.engine is not None
    engine = service.engine
    log.info(
        f"core {settings.name} started on {', '.join(settings.feeds)} in namespace {namespace}",
        extra={
            "event": "core_started",
            "core": settings.name,
            "namespace": namespace,
            "feeds": list(settings.feeds),
            "active_set": [
                {"model": d.name, "version": d.version, "alias": d.alias}
                for d in engine.applicator.deployments
            ],
            "shard": settings.shard.describe(),
            "restored_from_checkpoint": service.restored,
            "risk_mode": str(engine.risk.mode),
            "halt_reason": engine.risk.halt_reason,
            "redis_persistence": persistence,
            "metrics_port": metrics_port,
            "restore_problems": len(engine.applicator.restore_problems),
        },
    )


# A log record refuses an ``extra`` field named like one of its own attributes.
_RECORD_ATTRS = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


def _loggable(summary: dict[str, Any]) -> dict[str, Any]:
    return {(f"summary_{k}" if k in _RECORD_ATTRS else k): v for k, v in summary.items()}


PERSISTENCE_RISK = {
    "aof": "append-only file: at most about a second of writes lost if the machine fails",
    "rdb": "snapshots only: minutes of orders and fills lost if Redis stops; turn on appendonly",
    "none": "nothing persisted: everything lost if Redis stops",
    "unknown": "CONFIG is not allowed here; make sure the server runs with appendonly yes",
}


def check_persistence(client: redis.Redis, *, allow_volatile: bool = False) -> str:
    """How the Redis at ``client`` persists: ``aof``, ``rdb``, ``none`` or ``unknown``.

    A server that persists nothing is refused unless ``allow_volatile`` (a throwaway test
    server): a crash of it would lose every order and fill.
    """
    try:
        appendonly = client.config_get("appendonly").get("appendonly", "no")
        save = client.config_get("save").get("save", "")
    except redis.ResponseError:  # CONFIG disabled or not allowed for this user
        return "unknown"
    if str(appendonly) == "yes":
        return "aof"
    if save:
        return "rdb"
    if not allow_volatile:
        raise ConfigError(
            "this Redis persists nothing (appendonly no, no save points): a crash of it loses "
            "every order and fill. Start it with --appendonly yes, or pass "
            "--allow-volatile-redis for a throwaway test server"
        )
    return "none"


def _log_run(service: CoreService, summary: dict[str, Any]) -> str:
    """Record a finished run in MLflow with its equity and latency plots."""
    from registry.runs import log_core_run
    from registry.store import MlflowStore

    assert service.engine is not None
    ts, equity = service.engine.tracker.equity_curve()
    return log_core_run(
        MlflowStore(),
        f"core {service.settings.name} on {', '.join(service.settings.feeds)}",
        summary=summary,
        ts_ns=ts,
        equity=equity,
        tick_to_signal_ns=service.tick_to_signal.samples(),
        in_process_ns=service.in_process.samples(),
        tags={"core": service.settings.name, "feeds": ",".join(service.settings.feeds)},
    )


def feed_reader(client: redis.Redis, store: RedisStore, settings: CoreSettings) -> FeedReader:
    """The core's reader of its feeds: its consumer group, its shard, its ingestion boundary."""
    return FeedReader(
        client,
        store.namespace,
        settings.feeds,
        group=f"core:{settings.name}",
        consumer=settings.name,
        dead_letters=store,
        boundary=IngestionBoundary(settings.ingest),
        shard=settings.shard,
    )


def read_status(connection: RedisConnection, name: str, namespace: str) -> dict[str, Any] | None:
    """The last status a core published, with the age of its heartbeat in seconds."""
    status = RedisStore(connection.client, namespace=namespace).load_report(f"status:{name}")
    if status is None:
        return None
    status["heartbeat_age_s"] = round((time.time_ns() - status["heartbeat_ns"]) / 1e9, 3)
    return status


def _handle_control(pubsub: Any, inbox: ControlInbox, service: CoreService) -> bool:
    """Take at most a cycle's share of control messages through the inbox; True: reload."""
    payloads: list[bytes] = []
    while len(payloads) < MAX_MESSAGES_PER_CYCLE:
        message = pubsub.get_message(timeout=0)
        if message is None:
            break
        if message.get("type") == "message" and isinstance(message.get("data"), bytes):
            payloads.append(message["data"])
    if not payloads or service.engine is None:
        return False
    reload, notes = inbox.handle(service.engine, payloads)
    service.note(notes[-1])
    return reload


ARCHIVE_EVERY_S = 60.0
"""How often a core looks for a day of its ledger to archive."""
LIVE_HEARTBEAT_S = 15.0
"""A core whose last status is younger than this, and not stopped, is alive."""


def live_cores(store: RedisStore) -> list[str]:
    """The cores of ``store``'s namespace that are running now (by their heartbeat)."""
    now = time.time_ns()
    alive = []
    fields = store.client.hkeys(store.key("reports"))
    for field in cast(list[bytes], fields):
        name = field.decode(errors="replace")
        if not name.startswith("status:"):
            continue
        status = store.load_report(name) or {}
        heartbeat = status.get("heartbeat_ns")
        fresh = isinstance(heartbeat, int) and now - heartbeat < LIVE_HEARTBEAT_S * 1e9
        if fresh and status.get("state") != "stopped":
            alive.append(name.removeprefix("status:"))
    return sorted(alive)


def forget(
    store: RedisStore,
    feeds: tuple[str, ...],
    *,
    reset_live: bool = False,
    marker: Path | None = None,
) -> None:
    """Reset what a replay from scratch rewrites: this core's consumer groups, checkpoint and
    ledger, and the namespace's signals. Never another core's ledger or checkpoint; and not at
    all while a core of the namespace runs, unless ``reset_live``."""
    alive = live_cores(store)
    if alive and not reset_live:
        raise ConfigError(
            f"namespace '{store.namespace}' has running core(s) {', '.join(alive)}: a replay "
            "there would reset what they read and write; use another --namespace (replays use "
            "'replay' by default), stop them, or pass --reset"
        )
    client, core = store.client, store.core
    for feed in feeds:
        with contextlib.suppress(redis.ResponseError):  # no such stream or group yet
            client.xgroup_destroy(feed_key(store.namespace, feed), f"core:{core}")
    mine = [
        field
        for field in cast(list[bytes], client.hkeys(store.key("state")))
        if field.startswith(f"{core}/".encode())
        or (core == DEFAULT_CORE and b"/" not in field)  # the default core's older bare keys
    ]
    if mine:
        client.hdel(store.key("state"), *mine)
    shared = ("signals", "signals:ids", "signals:ids:previous", "signals:latest")
    client.delete(*store.ledger_keys(), *(store.key(k) for k in shared))
    if marker is not None:
        marker.unlink(missing_ok=True)


def checkpoint_marker(namespace: str, core: str) -> Path:
    """Where a core started from the command line marks that it has checkpointed."""
    return VAR_DIR / "cores" / namespace / f"{core}.json"


@contextmanager
def _stop_on_signals(service: CoreService) -> Iterator[None]:
    """SIGTERM and SIGINT finish the cycle, checkpoint and return (exit 0).

    Handlers can only be installed from the main thread; a core run from another thread (an
    embedding application) is stopped with ``request_stop`` instead.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    for s in previous:
        signal.signal(s, lambda *_: service.request_stop())
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
