"""Start and stop the local stack: Redis, MLflow, Prefect and a worker, the HTTP API (which
serves the dashboard too), the cores, and the alerting chain (alert receiver, Alertmanager,
Prometheus).

Every process is a program of the stack's supervisord (:mod:`strategy_engine.supervision`),
which restarts it when it exits, with a growing back-off, and keeps its log under
``var/log/``. :func:`up` starts the supervisor, then each program in order on loopback, waiting
until it answers; it creates the process work pool, deploys ``prefect.yaml``, installs the
Prefect automation that reports failed flow runs, and starts the cores last. :func:`down` asks
the supervisor to stop everything and exits it, so it is safe to run twice.

Every server requires credentials, generated on the first ``up`` into ``var/credentials.json``
(mode 0600, see :mod:`strategy_engine.credentials`): Redis ACL users (the ``default`` user is
off), MLflow's basic-auth app, Prefect's API auth string. Each process the stack starts gets
only what it needs: the worker and the API Redis's ``flows`` user, the cores its ``core``
user, and the worker and the API the Prefect auth string; Prometheus reads the API's
``/metrics`` with the stack's reader token (``var/api/reader.token``, owner-only). Redis
writes an append-only file (``everysec`` unless ``always`` is asked for) as well as RDB
snapshots.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shlex
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

import msgspec

from core.adapters.redis_server import (
    AOF_FILE,
    aof_needs_migration,
    appendfsync_policy,
    redis_server_binary,
)
from core.config import FrozenConfig, require
from core.errors import AdapterError, ConfigError
from strategy_engine import credentials, monitoring
from strategy_engine.credentials import Credentials
from strategy_engine.monitoring import AlertTiming
from strategy_engine.settings import REPO_ROOT, VAR_DIR
from strategy_engine.stack_cores import CoreSpec, default_cores
from strategy_engine.supervision import FAILED_STATES, Program, Supervisor

HOST = "127.0.0.1"
POOL = "strategy-engine-pool"  # must match work_pool.name in prefect.yaml
WORKER_NAME = "strategy-engine-worker"
REDIS, MLFLOW, PREFECT, WORKER = "redis", "mlflow", "prefect", "worker"
DASHBOARD = "dashboard"  # the key of the dashboard's URL; the API serves the page
RECEIVER, ALERTMANAGER, PROMETHEUS = "alert-receiver", "alertmanager", "prometheus"
API = "api"
# Start order; `down` stops in reverse. The cores (named in the cores file) start last.
# The API starts before the alerting chain: Prometheus scrapes its /metrics (job "dashboard").
SERVICES = (REDIS, MLFLOW, PREFECT, WORKER, RECEIVER, API, ALERTMANAGER, PROMETHEUS)
RETIRED = (DASHBOARD,)
"""Programs an earlier version's ``up`` started and this one does not: the stand-alone
dashboard server (the API serves the dashboard now). ``up`` and ``down`` stop them."""
START_TIMEOUT = {
    REDIS: 15.0, MLFLOW: 120.0, PREFECT: 180.0, WORKER: 90.0,
    RECEIVER: 30.0, ALERTMANAGER: 30.0, PROMETHEUS: 30.0, API: 60.0,
}  # fmt: skip
API_READER = "stack-reader"  # the reader token `up` makes once, kept in var/api/reader.token
PORT_FIELDS = (
    "redis_port", "mlflow_port", "prefect_port", "dashboard_port", "core_metrics_port",
    "receiver_port", "alertmanager_port", "prometheus_port", "api_port",
)  # fmt: skip
CORE_START_TIMEOUT = 120.0
CORE_PRIORITY = 900
PORT_TRIES = 20
DEPLOY_TIMEOUT = 300.0
LOOPBACK = ("127.0.0.1", "::1", "localhost")
WILDCARD = ("0.0.0.0", "::", "*")
REDIS_RDB = "dump.rdb"

Echo = Callable[[str], None]


class Layout(FrozenConfig, frozen=True):
    """Where the stack keeps its run-time files: everything lives under one ``var`` folder.

    Unlike other configs its one field may be given by position: a layout is named by its
    folder, ``Layout(var_dir)``.
    """

    # A factory, not a default: the JSON schema cannot show a Path default.
    var_dir: Path = msgspec.field(default_factory=lambda: VAR_DIR)

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

    @property
    def credentials_file(self) -> Path:
        return credentials.path_in(self.var_dir)

    @property
    def redis_aclfile(self) -> Path:
        return self.redis_dir / "users.acl"

    @property
    def mlflow_auth_dir(self) -> Path:
        return self.var_dir / "mlflow-auth"

    @property
    def mlflow_auth_config(self) -> Path:
        return self.mlflow_auth_dir / "basic_auth.ini"

    @property
    def mlflow_auth_db(self) -> Path:
        return self.mlflow_auth_dir / "basic_auth.db"

    @property
    def alerts_dir(self) -> Path:
        return self.var_dir / "alerts"

    @property
    def monitoring_dir(self) -> Path:
        """Prometheus's and Alertmanager's configurations and data."""
        return self.var_dir / "monitoring"

    @property
    def supervisor(self) -> Supervisor:
        return Supervisor(self.var_dir, REPO_ROOT)

    def log_file(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def create(self) -> None:
        folders = (self.run_dir, self.log_dir, self.prefect_home, self.redis_dir, self.alerts_dir)
        for folder in folders:
            folder.mkdir(parents=True, exist_ok=True)
        self.monitoring_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Redis's snapshot and append-only file hold every order, fill and position.
        self.redis_dir.chmod(0o700)
        # MLflow's auth database holds the password hashes: owner-only, like the credentials.
        self.mlflow_auth_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.mlflow_auth_dir.chmod(0o700)


class StackConfig(FrozenConfig, frozen=True, kw_only=True):
    """Ports (each moves to the next free one if taken), the work pool and the state folder.

    ``cores`` are the supervised cores (``core_metrics_port`` is the first one's metrics
    port, the next cores take the next free ports); ``monitoring`` starts Prometheus and
    Alertmanager when they are installed; ``alert_timing`` sets how fast alerts move.

    ``redis_bind`` is the one address Redis listens on (loopback unless asked; Redis always
    requires its ACL passwords, so it never listens off loopback without them);
    ``redis_appendfsync`` is ``everysec`` or ``always`` (default: ``$STRATEGY_ENGINE_REDIS_
    APPENDFSYNC``, else ``everysec``).
    """

    host: str = HOST
    redis_port: int = 6379
    mlflow_port: int = 5000
    prefect_port: int = 4200
    dashboard_port: int = 8050  # no longer used (the API serves the dashboard); kept for callers
    pool: str = POOL
    deploy: bool = True
    layout: Layout = msgspec.field(default_factory=Layout)
    redis_bind: str = HOST
    redis_appendfsync: str | None = None
    cores: tuple[CoreSpec, ...] = msgspec.field(default_factory=default_cores)
    core_metrics_port: int = 9108
    namespace: str = "se"
    receiver_port: int = 9095
    alertmanager_port: int = 9093
    prometheus_port: int = 9090
    api_port: int = 8060
    monitoring: bool = True
    alert_timing: AlertTiming = msgspec.field(default_factory=AlertTiming)

    def __post_init__(self) -> None:
        for name in PORT_FIELDS:
            port = getattr(self, name)
            # Built in code nothing checks the types: a bool or a string port is refused here.
            require(
                not isinstance(port, bool) and isinstance(port, int) and 0 < port < 65536,
                f"{name} must be an integer in 1..65535, was {port!r}",
            )
        require(
            bool(self.redis_bind) and not any(c.isspace() for c in self.redis_bind),
            f"redis_bind must be one address, was {self.redis_bind!r}",
        )
        appendfsync_policy(self.redis_appendfsync)  # refuses an unknown policy now, not later

    @property
    def appendfsync(self) -> str:
        return appendfsync_policy(self.redis_appendfsync)

    @property
    def redis_host(self) -> str:
        """Where clients reach Redis: loopback when it listens on every address."""
        return HOST if self.redis_bind in WILDCARD else self.redis_bind


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
    """Start Redis, the MLflow UI, the Prefect server, the pool, a worker, the API (and its
    dashboard), the alerting chain and the cores.

    A service whose pid file names a live process is left running. If a start fails, the
    services this call started are stopped again and the error names the service and its log.

    Returns
    -------
    dict
        ``services`` (name, pid, url, start-up seconds), ``urls``, ``credentials`` (the file),
        ``users`` (user names per service, no secrets), ``prefect_home`` and ``total_seconds``.

    Raises
    ------
    ConfigError
        If the credentials file may be read by others, is malformed, or is missing while
        services of an earlier ``up`` still run.
    AdapterError
        If a service does not answer in time, exits during start-up, refuses the credentials,
        or the deploy fails.
    """
    config = config or StackConfig()
    layout = config.layout
    layout.create()
    began = time.monotonic()
    state = _read_state(layout)
    creds = _credentials_for_up(layout, echo)
    auth = creds.prefect_auth_string
    if read_pid(MLFLOW, layout) is None:
        _require_mlflow_auth_app()
    started: list[str] = []
    services: dict[str, Started] = {}
    supervisor_started = layout.supervisor.ensure_running(_base_env(layout))
    _retire(layout, echo)
    try:
        redis_service = _check_reused(
            _ensure_redis(config, state, started, echo, creds), layout, creds
        )
        services[REDIS] = _announce(redis_service, echo)
        # A REDIS_URL the caller set wins; otherwise each process gets the stack's Redis as
        # the least-privileged user that does its job.
        chosen = os.environ.get("REDIS_URL")
        # The two slow servers start together and are then awaited one by one.
        mlflow = _launch_mlflow(config, state, started, echo, creds)
        prefect = _launch_prefect(config, state, started, echo, auth)
        mlflow = _check_reused(wait_for_mlflow(mlflow, layout, creds), layout, creds)
        services[MLFLOW] = _announce(mlflow, echo)
        prefect = wait_for_prefect(prefect, layout, auth_string=auth)
        services[PREFECT] = _announce(_check_reused(prefect, layout, creds), echo)
        _write_state(layout, services)
        api_url = f"{services[PREFECT].url}/api"
        if config.deploy:
            t0 = time.monotonic()
            ensure_work_pool(api_url, config.pool, layout, auth_string=auth)
            kept = deploy_keeping_pauses(api_url, layout, auth_string=auth)
            echo(
                f"deploy: work pool {config.pool!r} and prefect.yaml deployments ready in "
                f"{time.monotonic() - t0:.1f} s; their schedules run (pause them with "
                "`strategy-engine schedules pause --all`)"
            )
            if kept:
                echo(f"deploy: still paused, as before: {', '.join(kept)}")
        # Flows that use Redis find the stack's (as its `flows` user), unless the caller chose
        # a server; flows that use the MLflow server authenticate as its admin.
        worker_env = {
            "REDIS_URL": chosen or _stack_redis_url(creds, "flows", redis_service.url),
            **_mlflow_client_env(creds),
        }
        worker = _ensure_worker(config, api_url, state, started, worker_env, auth)
        services[WORKER] = _announce(worker, echo)
        _write_state(layout, services)
        receiver = _ensure_receiver(config, state, started, echo, creds)
        services[RECEIVER] = _announce(receiver, echo)
        notice = monitoring.install_flow_failure_notice(
            api_url, receiver.url, creds.alerts_token, auth
        )
        echo(f"prefect: failed and crashed flow runs notify the alert receiver ({notice})")
        # The API publishes signed control and writes feeds: the `flows` user's rights; it
        # starts and follows the deployments' runs on the stack's Prefect server. It serves
        # the dashboard too, and Prometheus scrapes its /metrics with the reader token.
        api_env = {
            "REDIS_URL": chosen or _stack_redis_url(creds, "flows", redis_service.url),
            "PREFECT_API_URL": api_url,
            **({"PREFECT_API_AUTH_STRING": auth} if auth else {}),
        }
        services[API] = _announce(_ensure_api(config, state, started, echo, api_env), echo)
        reader_token = _api_reader_token(layout, echo)
        _write_state(layout, services)
        # Each core's metrics port is chosen before Prometheus starts, so it scrapes them all.
        core_ports = {spec.name: _core_port(config, spec, state, echo) for spec in config.cores}
        alerting = _ensure_alerting(
            config, state, started, echo, services, core_ports, creds, reader_token
        )
        core_env = {
            "REDIS_URL": chosen or _stack_redis_url(creds, "core", redis_service.url),
            **_mlflow_client_env(creds),
        }
        for spec in config.cores:
            core = _ensure_core(config, spec, core_ports[spec.name], state, started, core_env)
            services[spec.name] = _announce(core, echo)
            _write_state(layout, services)
        _write_state(layout, services)
    except BaseException:
        for name in reversed(started):
            stop_service(name, layout)
        if supervisor_started:
            layout.supervisor.shutdown()
        raise
    return {
        "services": [s.to_dict() for s in services.values()],
        "urls": urls(services),
        "credentials": str(layout.credentials_file),
        "users": users(creds),
        "redis_appendfsync": config.appendfsync,
        "prefect_home": str(layout.prefect_home),
        "cores": [{"name": spec.name, "args": list(spec.args)} for spec in config.cores],
        "alerting": alerting,
        "api": {"url": services[API].url, "reader_token_file": str(reader_token)},
        "supervisor": {"config": str(layout.supervisor.conf_file), "log_dir": str(layout.log_dir)},
        "total_seconds": round(time.monotonic() - began, 2),
    }


# --- the cores and the alerting chain ----------------------------------------------------------


def _core_port(config: StackConfig, spec: CoreSpec, state: dict[str, Any], echo: Echo) -> int:
    if read_pid(spec.name, config.layout) is not None:
        url = str(state.get(spec.name, {}).get("url", ""))
        with contextlib.suppress(ValueError):
            return int(url.rsplit(":", 1)[1])
    index = config.cores.index(spec)
    return pick_port(config.host, config.core_metrics_port + index, spec.name, echo)


def _ensure_core(
    config: StackConfig,
    spec: CoreSpec,
    port: int,
    state: dict[str, Any],
    started: list[str],
    env: Mapping[str, str],
) -> Started:
    reused = _running(spec.name, config.layout, state)
    if reused is not None:
        return reused
    argv = [sys.executable, "-m", "strategy_engine.cli", "core", "--name", spec.name,
            "--namespace", config.namespace, "--metrics-port", str(port), *spec.args]  # fmt: skip
    # A core counts as started once it has run 5 s (it loads the registry set first); one
    # that crashes later is restarted whatever the count.
    launch = _launch(
        spec.name, argv, env, config.layout, started, start_seconds=5.0, start_retries=10
    )
    launch.url = f"http://{config.host}:{port}"
    return _await(spec.name, launch, config.layout, _http_ok(f"{launch.url}/metrics"))


def _ensure_api(
    config: StackConfig,
    state: dict[str, Any],
    started: list[str],
    echo: Echo,
    env: Mapping[str, str],
) -> Started:
    reused = _running(API, config.layout, state)
    if reused is not None:
        return reused
    port = pick_port(config.host, config.api_port, API, echo)
    argv = [sys.executable, "-m", "strategy_engine.cli", "api", "--host", config.host,
            "--port", str(port), "--namespace", config.namespace]  # fmt: skip
    launch = _launch(API, argv, env, config.layout, started)
    launch.url = f"http://{config.host}:{port}"
    return _await(API, launch, config.layout, _http_ok(f"{launch.url}/v1/health"))


def _api_reader_token(layout: Layout, echo: Echo) -> Path:
    """Make the stack's reader token once (its digest in the API's token file, the token itself
    in an owner-only file beside it); return that file."""
    from strategy_engine.api.auth import Role, TokenFile

    folder = layout.var_dir / "api"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    kept = folder / "reader.token"
    tokens = TokenFile(folder / "tokens.json")
    if kept.exists() and any(r.name == API_READER for r in tokens.records()):
        return kept
    tokens.revoke(API_READER)  # a digest without its kept token: replace both
    credentials.write_private(kept, tokens.create(API_READER, Role.READER) + "\n")
    echo(f"api: reader token made, in {kept} (mode 600)")
    return kept


def _ensure_receiver(
    config: StackConfig, state: dict[str, Any], started: list[str], echo: Echo, creds: Credentials
) -> Started:
    reused = _running(RECEIVER, config.layout, state)
    if reused is not None:
        return reused
    layout = config.layout
    port = pick_port(config.host, config.receiver_port, RECEIVER, echo)
    argv = [sys.executable, "-m", "strategy_engine.cli", "alert-receiver", "--host", config.host,
            "--port", str(port), "--alerts-dir", str(layout.alerts_dir)]  # fmt: skip
    env = {"STRATEGY_ENGINE_ALERT_TOKEN": creds.alerts_token}
    launch = _launch(RECEIVER, argv, env, layout, started)
    launch.url = f"http://{config.host}:{port}"
    return _await(RECEIVER, launch, layout, _http_ok(f"{launch.url}/healthz"))


def _ensure_alerting(
    config: StackConfig,
    state: dict[str, Any],
    started: list[str],
    echo: Echo,
    services: dict[str, Started],
    core_ports: Mapping[str, int],
    creds: Credentials,
    reader_token: Path,
) -> dict[str, Any]:
    """Start Alertmanager and Prometheus when installed; say what runs, or why not.

    Prometheus scrapes the API's ``/metrics`` (as job ``dashboard``, the job the rules read)
    with the reader token in ``reader_token``."""
    prometheus = monitoring.prometheus_binary()
    alertmanager = monitoring.alertmanager_binary()
    if not config.monitoring:
        return {"enabled": False, "reason": "turned off (--no-monitoring)"}
    if prometheus is None or alertmanager is None:
        reason = (
            "Prometheus or Alertmanager is not installed (Debian: apt-get install prometheus "
            "prometheus-alertmanager); alerts are off, the receiver still takes Prefect's"
        )
        echo(f"alerting: {reason}")
        return {"enabled": False, "reason": reason}
    layout = config.layout
    folder = layout.monitoring_dir
    timing = config.alert_timing
    manager = _running(ALERTMANAGER, layout, state)
    if manager is None:
        port = pick_port(config.host, config.alertmanager_port, ALERTMANAGER, echo)
        token_file = folder / "receiver.token"
        credentials.write_private(token_file, creds.alerts_token)
        settings = monitoring.alertmanager_config(
            receiver_url=services[RECEIVER].url, token_file=token_file, timing=timing
        )
        path = monitoring.write_config(folder / "alertmanager.yml", settings)
        argv = monitoring.alertmanager_argv(
            alertmanager, path, folder / "alertmanager-data", config.host, port
        )
        manager = _launch(ALERTMANAGER, argv, {}, layout, started)
        manager.url = f"http://{config.host}:{port}"
        manager = _await(ALERTMANAGER, manager, layout, _http_ok(f"{manager.url}/-/ready"))
    services[ALERTMANAGER] = _announce(manager, echo)
    scraper = _running(PROMETHEUS, layout, state)
    if scraper is None:
        port = pick_port(config.host, config.prometheus_port, PROMETHEUS, echo)
        settings = monitoring.prometheus_config(
            core_targets=core_ports,
            dashboard_port=int(services[API].url.rsplit(":", 1)[1]),
            dashboard_token_file=reader_token,
            alertmanager_port=int(manager.url.rsplit(":", 1)[1]),
            timing=timing,
            host=config.host,
        )
        path = monitoring.write_config(folder / "prometheus.yml", settings)
        argv = monitoring.prometheus_argv(
            prometheus, path, folder / "prometheus-data", config.host, port
        )
        scraper = _launch(PROMETHEUS, argv, {}, layout, started)
        scraper.url = f"http://{config.host}:{port}"
        scraper = _await(PROMETHEUS, scraper, layout, _http_ok(f"{scraper.url}/-/ready"))
    services[PROMETHEUS] = _announce(scraper, echo)
    return {
        "enabled": True,
        "prometheus": services[PROMETHEUS].url,
        "alertmanager": services[ALERTMANAGER].url,
        "rules": str(monitoring.RULES_FILE),
    }


def users(creds: Credentials) -> dict[str, Any]:
    """Return the user names of each service (the passwords stay in the credentials file)."""
    return {
        "redis": list(credentials.REDIS_USERS),
        "mlflow": creds.mlflow_username,
        "prefect": creds.prefect_auth_string.split(":", 1)[0],
    }


def _credentials_for_up(layout: Layout, echo: Echo) -> Credentials:
    path = layout.credentials_file
    if not path.exists():
        running = [name for name in SERVICES if read_pid(name, layout) is not None]
        if running:
            # New secrets would not match what those servers were started with.
            raise ConfigError(
                f"{path} is missing while {', '.join(running)} of an earlier `up` still run; "
                "run strategy-engine down, then up again"
            )
    creds, created = credentials.ensure(path)
    if created:
        echo(f"credentials: generated {path} (mode 600)")
        if layout.mlflow_auth_db.exists():
            # MLflow keeps the admin password of its first start in this database; with new
            # credentials that one is unknown, so the database is set aside, not reused.
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
            aside = layout.mlflow_auth_db.with_name(f"basic_auth.db.replaced-{stamp}")
            layout.mlflow_auth_db.rename(aside)
            echo(f"mlflow: auth database of earlier credentials moved to {aside}")
    return creds


def _require_mlflow_auth_app() -> None:
    # Checked before anything starts: the server would otherwise die at import, after Redis
    # was already up, with the reason only in its log.
    if importlib.util.find_spec("flask_wtf") is None:
        raise ConfigError(
            "MLflow's basic-auth app needs Flask-WTF, which is not installed: "
            "pip install 'mlflow[auth]==3.17.2'"
        )


def _check_reused(item: Started, layout: Layout, creds: Credentials) -> Started:
    """Refuse a server an earlier ``up`` left running unless it requires these credentials.

    One started before the credentials existed would stay open to anyone; one started with
    other credentials would refuse every client of this stack.

    Raises
    ------
    ConfigError
        Naming the server and the fix (stop the stack, start it again).
    """
    if not item.reused or item.name not in (REDIS, MLFLOW, PREFECT):
        return item
    open_to_anyone, refuses = _access(item.name, item.url, creds)
    if open_to_anyone or refuses:
        problem = (
            "answers clients that send no credentials"
            if open_to_anyone
            else f"refuses the credentials of {layout.credentials_file}"
        )
        raise ConfigError(
            f"{item.name} (pid {item.pid}) left running by an earlier `up` {problem}; "
            "run strategy-engine down, then up"
        )
    return item


def _access(name: str, url: str, creds: Credentials) -> tuple[bool, bool]:
    """Return whether ``name`` at ``url`` answers anonymous clients, and whether it refuses
    the stack's credentials (False for both when it cannot tell, e.g. the server is busy)."""
    if name == REDIS:
        host, port = _redis_address(url)
        refused = _redis_refuses(host, port, "readonly", creds.redis["readonly"])
        return _redis_answers_anyone(host, port), refused
    if name == MLFLOW:
        probe, headers = _mlflow_probe(url, creds)
    else:
        probe, headers = f"{url}/api/admin/version", _prefect_headers(creds.prefect_auth_string)
    return _http_status(probe) == 200, _http_status(probe, headers) in (401, 403)


def _stack_redis_url(creds: Credentials, user: str, url: str) -> str:
    host, port = _redis_address(url)
    return creds.redis_url(user, host, port)


def _redis_address(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("redis://").split("/")[0].rsplit(":", 1)
    return host.strip("[]"), int(port)


def _mlflow_client_env(creds: Credentials) -> dict[str, str]:
    # A user name and password the caller chose win, as a pair: never half of each.
    if os.environ.get("MLFLOW_TRACKING_USERNAME") or os.environ.get("MLFLOW_TRACKING_PASSWORD"):
        return {}
    return {
        "MLFLOW_TRACKING_USERNAME": creds.mlflow_username,
        "MLFLOW_TRACKING_PASSWORD": creds.mlflow_password,
    }


def _announce(item: Started, echo: Echo) -> Started:
    verb = "already running" if item.reused else f"up in {item.seconds:.1f} s"
    echo(f"{item.name}: {verb} (pid {item.pid}) {item.url}")
    return item


def urls(services: Mapping[str, Started]) -> dict[str, str]:
    """Return the addresses a user needs: the UIs, the Prefect API, ``REDIS_URL``, the alert
    receiver, Prometheus and Alertmanager (when they run) and each core's metrics."""
    return {
        # The dashboard is the API's page (the key is kept for whoever reads it).
        "dashboard": f"{services[API].url}/dashboard",
        "mlflow_ui": services[MLFLOW].url,
        "prefect_ui": services[PREFECT].url,
        "prefect_api": f"{services[PREFECT].url}/api",
        "redis": services[REDIS].url,
        **{
            key: services[name].url
            for key, name in (
                ("alert_receiver", RECEIVER),
                ("alertmanager", ALERTMANAGER),
                ("prometheus", PROMETHEUS),
                ("api", API),
            )
            if name in services
        },
        **{
            f"{name}_metrics": f"{item.url}/metrics"
            for name, item in services.items()
            if name not in SERVICES
        },
    }


def _ensure_redis(
    config: StackConfig, state: dict[str, Any], started: list[str], echo: Echo, creds: Credentials
) -> Started:
    reused = _running(REDIS, config.layout, state)
    if reused is not None:
        return reused
    layout = config.layout
    port = pick_port(config.redis_bind, config.redis_port, REDIS, echo)
    # Rewritten on every start, so the ACL always matches the credentials file.
    credentials.write_private(layout.redis_aclfile, creds.redis_acl())
    migrate = aof_needs_migration(layout.redis_dir, REDIS_RDB)
    arguments = redis_arguments(
        config.redis_bind, port, layout, aclfile=layout.redis_aclfile,
        appendonly=not migrate, appendfsync=config.appendfsync,
    )  # fmt: skip
    argv = [str(redis_server_binary()), *arguments]
    launch = _launch(REDIS, argv, _base_env(layout), layout, started)
    launch.url = f"redis://{config.redis_host}:{port}/0"
    ready = _redis_ok(config.redis_host, port, "readonly", creds.redis["readonly"])
    launch = _await(REDIS, launch, layout, ready)
    if migrate:
        _enable_aof(config.redis_host, port, creds)
        echo(f"redis: append-only file written from the existing snapshot ({AOF_FILE})")
    return launch


def redis_arguments(
    host: str,
    port: int,
    layout: Layout,
    *,
    aclfile: Path | None = None,
    appendonly: bool = True,
    appendfsync: str = "everysec",
) -> list[str]:
    """Return redis-server arguments: no daemon, data and log under ``var/``, AOF and RDB.

    Parameters
    ----------
    host : str
        The address to listen on.
    aclfile : Path, optional
        The ACL file (users and hashed passwords). Required unless ``host`` is loopback.
    appendonly : bool
        Start with the append-only file on; off only to load a snapshot of a folder that has
        no AOF yet (see :func:`core.adapters.redis_server.aof_needs_migration`).
    appendfsync : str
        ``everysec`` or ``always``.

    Raises
    ------
    ConfigError
        If ``host`` is not loopback and there is no ACL file, or ``appendfsync`` is unknown.
    """
    if aclfile is None and host not in LOOPBACK:
        raise ConfigError(f"Redis may listen on {host} only with passwords (an ACL file)")
    arguments = [
        "--bind", host,
        "--port", str(port),
        "--daemonize", "no",
        "--dir", str(layout.redis_dir),
        "--dbfilename", REDIS_RDB,
        # Snapshots on the usual save points, so state survives a `make down` / `make up`...
        # (one --save per pair: Redis 6.2 silently ignores several pairs in one argument)
        "--save", "3600", "1", "--save", "300", "100", "--save", "60", "10000",
        # ...and the append-only file, so a crash loses at most the fsync window.
        "--appendonly", "yes" if appendonly else "no",
        "--appendfilename", AOF_FILE,
        "--appendfsync", appendfsync_policy(appendfsync),
        "--logfile", "",  # log to stdout, which goes to var/log/redis.log
        "--protected-mode", "yes",
    ]  # fmt: skip
    if aclfile is not None:
        arguments += ["--aclfile", str(aclfile)]
    return arguments


def _enable_aof(host: str, port: int, creds: Credentials) -> None:
    import redis

    from core.adapters.redis_server import enable_aof

    admin = redis.Redis(host=host, port=port, username="admin", password=creds.redis["admin"])
    try:
        enable_aof(admin)
    finally:
        admin.close()


def _retire(layout: Layout, echo: Echo) -> None:
    """Stop the programs of :data:`RETIRED` an earlier ``up`` left running."""
    known = {str(info.get("name")) for info in layout.supervisor.programs()}
    for name in RETIRED:
        if name in known:
            echo(f"{name}: {stop_service(name, layout)}; the API serves the dashboard now")


def _launch_mlflow(
    config: StackConfig, state: dict[str, Any], started: list[str], echo: Echo, creds: Credentials
) -> Started:
    reused = _running(MLFLOW, config.layout, state)
    if reused is not None:
        return reused
    from registry.store import MlflowStore

    layout = config.layout
    port = pick_port(config.host, config.mlflow_port, MLFLOW, echo)
    env_pairs, argv = split_command(MlflowStore().ui_command(host=config.host, port=port))
    if argv[:1] != ["mlflow"]:
        raise ConfigError(f"unexpected MLflow UI command: {shlex.join(argv)}")
    # The virtualenv's mlflow, not PATH's, serving its basic-auth app: every page and API call
    # asks for a user and password.
    argv = [sys.executable, "-m", "mlflow", *argv[1:], "--app-name", "basic-auth"]
    env = {**_base_env(layout), **env_pairs, **mlflow_auth_env(layout, creds)}
    launch = _launch(MLFLOW, argv, env, layout, started)
    launch.url = f"http://{config.host}:{port}"
    return launch


def mlflow_auth_env(layout: Layout, creds: Credentials) -> dict[str, str]:
    """Write MLflow's auth configuration under ``var/`` and return the server's environment.

    The configuration names the auth database and the admin user; the admin password (used
    only to create that user on the first start) and the form secret come from the credentials
    through the environment, so no file but the credentials file holds them in plain text.
    """
    database = f"sqlite:///{layout.mlflow_auth_db}".replace("%", "%%")  # configparser syntax
    credentials.write_private(
        layout.mlflow_auth_config,
        "[mlflow]\n"
        # An authenticated user who is not admin sees nothing until granted it.
        "default_permission = NO_PERMISSIONS\n"
        f"database_uri = {database}\n"
        f"admin_username = {creds.mlflow_username}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        "grant_default_workspace_access = false\n",
    )
    return {
        "MLFLOW_AUTH_CONFIG_PATH": str(layout.mlflow_auth_config),
        "MLFLOW_AUTH_ADMIN_USERNAME": creds.mlflow_username,
        "MLFLOW_AUTH_ADMIN_PASSWORD": creds.mlflow_password,
        "MLFLOW_FLASK_SERVER_SECRET_KEY": creds.mlflow_secret_key,
    }


def wait_for_mlflow(launch: Started, layout: Layout, creds: Credentials) -> Started:
    """Wait until the MLflow server of ``launch`` answers an authenticated request as admin.

    Raises
    ------
    AdapterError
        If it refuses the admin password (an auth database made with other credentials).
    """
    check = _authenticated(MLFLOW, _mlflow_probe(launch.url, creds), layout)
    return _await(MLFLOW, launch, layout, check)


def _mlflow_probe(url: str, creds: Credentials) -> tuple[str, dict[str, str]]:
    # /health is open to anyone; this call is not, so a 200 proves the password works.
    probe = f"{url}/api/2.0/mlflow/users/get?username={creds.mlflow_username}"
    return probe, {"Authorization": creds.mlflow_authorization()}


def split_command(command: str) -> tuple[dict[str, str], list[str]]:
    """Split ``NAME=value ... prog args`` into the environment pairs and the argument list."""
    words = shlex.split(command)
    env: dict[str, str] = {}
    while words and "=" in words[0] and not words[0].startswith("-"):
        name, value = words.pop(0).split("=", 1)
        env[name] = value
    return env, words


def _launch_prefect(
    config: StackConfig, state: dict[str, Any], started: list[str], echo: Echo, auth: str
) -> Started:
    reused = _running(PREFECT, config.layout, state)
    if reused is not None:
        return reused
    port = pick_port(config.host, config.prefect_port, PREFECT, echo)
    return start_prefect_server(config.host, port, config.layout, started, auth_string=auth)


def start_prefect_server(
    host: str,
    port: int,
    layout: Layout,
    started: list[str] | None = None,
    *,
    auth_string: str | None = None,
) -> Started:
    """Start ``prefect server start`` on ``host:port`` with its home under ``layout``.

    With ``auth_string`` (``user:password``) the API refuses every request but its health
    check without it, and the UI asks for it. Does not wait: pass the result to
    :func:`wait_for_prefect`.
    """
    layout.create()
    url = f"http://{host}:{port}"
    env = {**_base_env(layout), **_prefect_env(layout, f"{url}/api", auth_string)}
    env["PREFECT_UI_API_URL"] = f"{url}/api"
    if auth_string:
        env["PREFECT_SERVER_API_AUTH_STRING"] = auth_string
    argv = [sys.executable, "-m", "prefect", "server", "start",
            "--host", host, "--port", str(port), "--analytics-off"]  # fmt: skip
    launch = _launch(PREFECT, argv, env, layout, started if started is not None else [])
    launch.url = url
    return launch


def wait_for_prefect(launch: Started, layout: Layout, *, auth_string: str | None = None) -> Started:
    """Wait (bounded) until the Prefect server of ``launch`` answers.

    With ``auth_string`` the probe is an authenticated API call, not the open health check.

    Raises
    ------
    AdapterError
        If the server does not answer in time, or refuses ``auth_string``.
    """
    if not auth_string:
        return _await(PREFECT, launch, layout, _http_ok(f"{launch.url}/api/health"))
    probe = (f"{launch.url}/api/admin/version", _prefect_headers(auth_string))
    return _await(PREFECT, launch, layout, _authenticated(PREFECT, probe, layout))


def ensure_work_pool(
    api_url: str, pool: str, layout: Layout, *, auth_string: str | None = None
) -> None:
    """Create the process work pool ``pool`` unless it exists (its template is then kept)."""
    status = _http_status(f"{api_url}/work_pools/{pool}", _prefect_headers(auth_string))
    if status == 200:
        return
    args = ["work-pool", "create", pool, "--type", "process"]
    _prefect_cli(args, api_url, layout, auth_string)


def deploy_all(
    api_url: str, layout: Layout, names: tuple[str, ...] = (), *, auth_string: str | None = None
) -> None:
    """Run ``prefect deploy`` on the repository's ``prefect.yaml``: every deployment, or ``names``.

    Raises
    ------
    AdapterError
        If the deploy fails; the message names the deploy log.
    """
    selection = [arg for name in names for arg in ("--name", name)] or ["--all"]
    _prefect_cli(["deploy", *selection], api_url, layout, auth_string)


def deploy_keeping_pauses(
    api_url: str, layout: Layout, names: tuple[str, ...] = (), *, auth_string: str | None = None
) -> list[str]:
    """Deploy as :func:`deploy_all`, keeping paused the deployments that were paused.

    ``prefect deploy`` sends every deployment un-paused with the schedules of ``prefect.yaml``,
    so without this a second ``up`` would quietly resume what an operator paused
    (``strategy-engine schedules pause``). Returns the deployments paused again.
    """
    # The client is Prefect's own, imported here: it must find the stack's home, not ~/.prefect.
    os.environ.setdefault("PREFECT_HOME", str(layout.prefect_home))
    from strategy_engine import schedules

    paused = schedules.paused_deployments(api_url, auth_string)
    deploy_all(api_url, layout, names, auth_string=auth_string)
    if paused:
        schedules.set_paused(api_url, auth_string, True, paused)
    return paused


def _prefect_cli(args: list[str], api_url: str, layout: Layout, auth_string: str | None) -> None:
    log = layout.log_file("prefect-cli")
    env = {**_base_env(layout), **_prefect_env(layout, api_url, auth_string)}
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
    auth: str,
) -> Started:
    reused = _running(WORKER, config.layout, state)
    if reused is not None:
        return reused
    layout = config.layout
    launch = start_worker(api_url, config.pool, layout, started, extra_env=env, auth_string=auth)
    return wait_for_worker(launch, api_url, config.pool, layout, auth_string=auth)


def start_worker(
    api_url: str,
    pool: str,
    layout: Layout,
    started: list[str] | None = None,
    *,
    extra_env: Mapping[str, str] | None = None,
    auth_string: str | None = None,
) -> Started:
    """Start a process worker on ``pool``, in the repository folder.

    Its flow runs inherit its environment, ``auth_string`` included, so they can report to
    a server that requires it.
    """
    env = {
        **_base_env(layout),
        **_prefect_env(layout, api_url, auth_string),
        **(extra_env or {}),
    }
    env["PREFECT_RESULTS_PERSIST_BY_DEFAULT"] = "true"
    argv = [sys.executable, "-m", "prefect", "worker", "start",
            "--pool", pool, "--name", WORKER_NAME, "--type", "process"]  # fmt: skip
    launch = _launch(WORKER, argv, env, layout, started if started is not None else [])
    launch.url = f"pool {pool}"
    return launch


def wait_for_worker(
    launch: Started, api_url: str, pool: str, layout: Layout, *, auth_string: str | None = None
) -> Started:
    """Wait until the worker of ``launch`` has sent the server a heartbeat."""
    since = datetime.now(UTC)
    headers = _prefect_headers(auth_string)
    return _await(WORKER, launch, layout, lambda: _worker_online(api_url, pool, since, headers))


def _worker_online(
    api_url: str, pool: str, since: datetime, headers: Mapping[str, str] | None = None
) -> bool:
    try:
        url = f"{api_url}/work_pools/{pool}/workers/filter"
        workers = _http_json("POST", url, {}, headers)
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
        # The stack's processes keep their state (control key, checkpoint markers, archive)
        # in the stack's folder, wherever it is.
        STRATEGY_ENGINE_VAR_DIR=str(layout.var_dir),
        GIT_PYTHON_REFRESH="quiet",
        PYTHONUNBUFFERED="1",  # logs appear as they are written
    )
    return env


def _prefect_env(layout: Layout, api_url: str, auth_string: str | None = None) -> dict[str, str]:
    # The stack's own server, whatever profile or URL the caller's environment points at.
    env = {"PREFECT_HOME": str(layout.prefect_home), "PREFECT_API_URL": api_url}
    if auth_string:
        env["PREFECT_API_AUTH_STRING"] = auth_string
    return env


def _prefect_headers(auth_string: str | None) -> dict[str, str]:
    return {"Authorization": credentials.basic_authorization(auth_string)} if auth_string else {}


def _launch(
    name: str,
    argv: list[str],
    env: Mapping[str, str],
    layout: Layout,
    started: list[str],
    **program: Any,
) -> Started:
    """Start ``name`` under the stack's supervisor (starting the supervisor first if needed).

    ``env`` is what the program needs on top of the supervisor's environment (which is
    :func:`_base_env` of the first ``up``); ``program`` are :class:`Program` settings.
    """
    supervisor = layout.supervisor
    supervisor.ensure_running(_base_env(layout))
    base = _base_env(layout)
    extra = {key: value for key, value in env.items() if base.get(key) != value}
    priority = (SERVICES.index(name) + 1) * 100 if name in SERVICES else CORE_PRIORITY
    log = layout.log_file(name)
    with log.open("a") as out:
        out.write(f"\n--- {datetime.now(UTC).isoformat(timespec='seconds')} "
                  f"{shlex.join(argv)}\n")  # fmt: skip
    pid = supervisor.launch(Program(name=name, argv=argv, env=extra, priority=priority, **program))
    started.append(name)
    return Started(name=name, pid=pid)


def _await(name: str, launch: Started, layout: Layout, ready: Callable[[], bool]) -> Started:
    if launch.reused:
        return launch
    timeout = START_TIMEOUT.get(name, CORE_START_TIMEOUT)
    log = layout.log_file(name)
    supervisor = layout.supervisor
    while True:
        info = supervisor.info(name) or {}
        state = info.get("statename", "UNKNOWN")
        # Up means answering, and past the start time after which the supervisor counts a
        # start as good (and would restart a crash rather than retry a failed start).
        if state == "RUNNING" and ready():
            break
        # BACKOFF: it exited before its start time and the supervisor is about to try again;
        # during `up` that is a failed start, reported now rather than after every retry.
        if state in FAILED_STATES or state == "BACKOFF":
            supervisor.stop(name)
            raise AdapterError(f"{name} exited during start-up: {_last_line(log)}; see {log}")
        if time.monotonic() - launch.launched > timeout:
            raise AdapterError(
                f"{name} did not answer at {launch.url} within {timeout:.0f} s; see {log}"
            )
        time.sleep(0.2)
    launch.pid = supervisor.pid(name) or launch.pid
    launch.seconds = time.monotonic() - launch.launched
    return launch


def _running(name: str, layout: Layout, state: dict[str, Any]) -> Started | None:
    pid = read_pid(name, layout)
    if pid is None:
        return None
    url = str(state.get(name, {}).get("url", ""))
    return Started(name=name, pid=pid, url=url, reused=True)


def running_programs(layout: Layout) -> list[str]:
    """The programs of the stack's supervisor that run now (the cores included)."""
    return [
        str(info.get("name"))
        for info in layout.supervisor.programs()
        if info.get("statename") in ("STARTING", "RUNNING", "BACKOFF")
    ]


def read_pid(name: str, layout: Layout) -> int | None:
    """Return the pid of ``name`` while the stack's supervisor keeps it running, else None."""
    return layout.supervisor.pid(name)


# --- shut-down ---------------------------------------------------------------------------------


def down(layout: Layout | None = None, *, echo: Echo = print) -> list[dict[str, Any]]:
    """Stop every program of the stack (cores first, Redis last) and the supervisor.

    A second call finds nothing to stop.

    Returns
    -------
    list of dict
        ``name`` and ``outcome`` (``stopped (pid N)`` or ``not running``) per program.
    """
    layout = layout or Layout()
    supervisor = layout.supervisor
    known = {str(info.get("name")) for info in supervisor.programs()}
    names = [*sorted(known - set(SERVICES)), *(n for n in reversed(SERVICES))]
    outcomes = []
    for name in names:
        outcome = supervisor.stop(name) if name in known else "not running"
        outcomes.append({"name": name, "outcome": outcome})
        echo(f"{name}: {outcome}")
    if supervisor.shutdown():
        echo("supervisor: stopped")
    layout.state_file.unlink(missing_ok=True)
    return outcomes


def stop_service(name: str, layout: Layout) -> str:
    """Stop ``name`` (SIGTERM to its process group, SIGKILL after its stop time); the
    supervisor then leaves it stopped until the next ``up``."""
    return layout.supervisor.stop(name)


# --- status ------------------------------------------------------------------------------------


def status(layout: Layout | None = None) -> list[dict[str, Any]]:
    """Describe each program: its supervisor state, pid, address, and whether it answers now.

    "Answering" means an authenticated request with the stack's credentials succeeded (the
    alert receiver: its health check; a core: its metrics), so a server
    that runs but refuses the credentials file's secrets is reported as not answering. A core
    also reports ``restarts``: how many times it started again after not stopping cleanly
    (from its status in Redis).

    Raises
    ------
    ConfigError
        If a service runs and the credentials file may be read by others or is malformed.
    """
    layout = layout or Layout()
    state = _read_state(layout)
    infos = {str(i.get("name")): i for i in layout.supervisor.programs()}
    cores = sorted(set(infos) - set(SERVICES) - set(RETIRED))
    creds = _stack_credentials(layout) if infos else None
    report = []
    for name in [*SERVICES, *cores]:
        info = infos.get(name, {})
        running = info.get("statename") in ("STARTING", "RUNNING")
        pid = int(info.get("pid") or 0) if running else None
        url = str(state.get(name, {}).get("url", ""))
        item: dict[str, Any] = {
            "name": name,
            "running": running,
            "pid": pid or None,
            "url": url,
            "answering": running and _answers(name, url, state, creds),
            "log": str(layout.log_file(name)),
            "state": str(info.get("statename", "STOPPED")),
            "since": str(info.get("description", "")),
        }
        if name in cores:
            item["restarts"] = _core_restarts(name, state, creds)
        report.append(item)
    return report


def _core_restarts(name: str, state: dict[str, Any], creds: Credentials | None) -> int | None:
    """The ``restarts`` a core last published (None when Redis or its status is not there)."""
    redis_url = str(state.get(REDIS, {}).get("url", ""))
    namespace = str(state.get(name, {}).get("namespace", "se"))
    if creds is None or not redis_url:
        return None
    import redis

    from core.adapters.redis_store import RedisStore

    host, port = _redis_address(redis_url)
    client = _redis_probe_client(host, port, "readonly", creds.redis["readonly"])
    try:
        report = RedisStore(client, namespace=namespace).load_report(f"status:{name}")
    except (redis.RedisError, OSError):
        return None
    finally:
        client.close()
    restarts = (report or {}).get("restarts")
    return restarts if isinstance(restarts, int) else None


def _stack_credentials(layout: Layout) -> Credentials | None:
    try:
        return credentials.load(layout.credentials_file)
    except FileNotFoundError:
        return None


def _answers(name: str, url: str, state: dict[str, Any], creds: Credentials | None) -> bool:
    if not url:
        return False
    if name == RECEIVER:
        return _http_ok(f"{url}/healthz")()
    if name in (ALERTMANAGER, PROMETHEUS):
        return _http_ok(f"{url}/-/ready")()
    if name == API:
        return _http_ok(f"{url}/v1/health")()
    if name not in SERVICES:  # a core: its metrics
        return _http_ok(f"{url}/metrics")()
    if creds is None:
        return False
    if name == REDIS:
        host, port = _redis_address(url)
        return _redis_ok(host, port, "readonly", creds.redis["readonly"])()
    if name == MLFLOW:
        probe, headers = _mlflow_probe(url, creds)
        return _http_status(probe, headers) == 200
    headers = _prefect_headers(creds.prefect_auth_string)
    if name == PREFECT:
        return _http_status(f"{url}/api/admin/version", headers) == 200
    prefect_url = str(state.get(PREFECT, {}).get("url", ""))
    pool = url.removeprefix("pool ")
    probe = f"{prefect_url}/api/work_pools/{pool}"
    return bool(prefect_url) and _http_status(probe, headers) == 200


def stack_client_environment(
    layout: Layout | None = None, environ: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Return what a client of the running stack needs and ``environ`` does not set yet.

    For each server of ``up`` that runs now (its pid file names a live process and the state
    file its address): ``REDIS_URL`` as the ``core`` user; ``MLFLOW_TRACKING_USERNAME`` and
    ``MLFLOW_TRACKING_PASSWORD`` (only if neither is set, so a user's pair is never mixed with
    the stack's); ``PREFECT_API_AUTH_STRING``. Nothing when no stack runs or it has no
    credentials file.

    Raises
    ------
    ConfigError
        If the stack runs and its credentials file may be read by others or is malformed.
    """
    layout = layout or Layout()
    environ = os.environ if environ is None else environ
    state = _read_state(layout)
    if not state:
        return {}
    running = {name for name in (REDIS, MLFLOW, PREFECT) if read_pid(name, layout) is not None}
    if not running:
        return {}
    creds = _stack_credentials(layout)
    if creds is None:
        return {}
    env: dict[str, str] = {}
    redis_url = str(state.get(REDIS, {}).get("url", ""))
    if REDIS in running and redis_url and not environ.get("REDIS_URL"):
        env["REDIS_URL"] = _stack_redis_url(creds, "core", redis_url)
    user_set = environ.get("MLFLOW_TRACKING_USERNAME") or environ.get("MLFLOW_TRACKING_PASSWORD")
    if MLFLOW in running and not user_set:
        env["MLFLOW_TRACKING_USERNAME"] = creds.mlflow_username
        env["MLFLOW_TRACKING_PASSWORD"] = creds.mlflow_password
    if PREFECT in running and not environ.get("PREFECT_API_AUTH_STRING"):
        env["PREFECT_API_AUTH_STRING"] = creds.prefect_auth_string
    return env


def shell_environment(layout: Layout | None = None) -> dict[str, str]:
    """Return every variable a shell needs to use the running stack (holds secrets).

    :func:`stack_client_environment` as if nothing were set, plus ``PREFECT_API_URL`` and
    ``PREFECT_HOME`` of the stack's Prefect server, so the ``prefect`` command line reaches it.
    """
    layout = layout or Layout()
    env = stack_client_environment(layout, environ={})
    prefect_url = str(_read_state(layout).get(PREFECT, {}).get("url", ""))
    if prefect_url and "PREFECT_API_AUTH_STRING" in env:
        env["PREFECT_API_URL"] = f"{prefect_url}/api"
        env["PREFECT_HOME"] = str(layout.prefect_home)
    return env


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


def _redis_ok(host: str, port: int, user: str, password: str) -> Callable[[], bool]:
    """A probe that logs in as ``user`` and PINGs (the server refuses anonymous clients)."""

    def check() -> bool:
        import redis

        client = _redis_probe_client(host, port, user, password)
        try:
            return bool(client.ping())
        except (redis.RedisError, OSError):
            return False
        finally:
            client.close()

    return check


def _redis_refuses(host: str, port: int, user: str, password: str) -> bool:
    import redis

    client = _redis_probe_client(host, port, user, password)
    try:
        client.ping()
    except redis.AuthenticationError:
        return True
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()
    return False


def _redis_probe_client(host: str, port: int, user: str, password: str) -> Any:
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    # No retries: redis-py treats a refused login as a connection error and backs off.
    return redis.Redis(
        host=host, port=port, username=user, password=password,
        socket_timeout=1.0, socket_connect_timeout=1.0, retry=Retry(NoBackoff(), 0),
    )  # fmt: skip


def _redis_answers_anyone(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _http_ok(url: str) -> Callable[[], bool]:
    return lambda: _http_status(url) == 200


def _authenticated(
    name: str, probe: tuple[str, Mapping[str, str]], layout: Layout
) -> Callable[[], bool]:
    """A probe that is true on 200 and raises at once when the server refuses the secret."""
    url, headers = probe

    def check() -> bool:
        status = _http_status(url, headers)
        if status in (401, 403):
            raise AdapterError(
                f"{name} refused the credentials of {layout.credentials_file} (HTTP {status}); "
                f"it was set up with others: see {layout.log_file(name)}"
            )
        return status == 200

    return check


def _http_status(url: str, headers: Mapping[str, str] | None = None) -> int | None:
    try:
        request = urllib.request.Request(url, headers=dict(headers or {}))
        with urllib.request.urlopen(request, timeout=2.0) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except (OSError, ValueError):
        return None


def _http_json(method: str, url: str, body: Any, headers: Mapping[str, str] | None = None) -> Any:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method=method,
        headers={"Content-Type": "application/json", **(headers or {})},
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
