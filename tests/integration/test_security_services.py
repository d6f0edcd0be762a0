"""The stack of ``strategy-engine up`` requires credentials and listens on loopback only.

One stack per module (Redis, MLflow, Prefect, worker, API: 15-30 s to start), in a
temporary ``var`` and MLflow folder on free ports, started and stopped exactly as ``up`` and
``down`` do. Every process is stopped in a ``finally``.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest
import redis
from mlflow.exceptions import MlflowException
from redis.backoff import NoBackoff
from redis.retry import Retry

from core.errors import ConfigError
from registry.store import MlflowStore
from strategy_engine import credentials, monitoring, services
from strategy_engine.credentials import Credentials
from strategy_engine.dashboard.state import DashboardReader
from tests.fixtures_processes import (
    STACK_CLIENT_VARIABLES,
    core_command,
    free_port,
    running_stack,
)

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration

CLIENT_VARIABLES = STACK_CLIENT_VARIABLES  # unset for clients that must not reach a stack


@dataclass(frozen=True)
class Stack:
    layout: services.Layout
    result: dict[str, Any]
    lines: list[str]
    creds: Credentials

    def url(self, name: str) -> str:
        return str(self.result["urls"][name])

    @property
    def redis_port(self) -> int:
        return int(self.url("redis").rsplit(":", 1)[1].split("/")[0])

    def redis(self, user: str, **options: Any) -> redis.Redis:
        return redis.Redis.from_url(
            self.creds.redis_url(user, services.HOST, self.redis_port), **options
        )


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("secured")
    # The deploy is covered by the `make up` test; the worker still logs in to Prefect.
    with running_stack(root) as (layout, result, lines):
        yield Stack(layout, result, lines, credentials.load(layout.credentials_file))
    leftover = [n for n in services.SERVICES if services.read_pid(n, layout) is not None]
    assert not leftover, f"still running after down: {leftover}"


def _http(
    method: str, url: str, body: Any = None, headers: Mapping[str, str] | None = None
) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url,
        data=data,
        method=method,
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            text = response.read()
            return response.status, json.loads(text) if text else None
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


# --- the credentials file ----------------------------------------------------------------------


def test_up_generates_an_owner_only_credentials_file_of_distinct_random_secrets(stack: Stack):
    path = stack.layout.credentials_file
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert f"credentials: generated {path} (mode 600)" in stack.lines
    assert stack.result["credentials"] == str(path)
    creds = stack.creds
    secrets = [*creds.redis.values(), creds.mlflow_password, creds.mlflow_secret_key]
    secrets.append(creds.prefect_auth_string.split(":", 1)[1])
    assert len(set(secrets)) == len(secrets) == 7
    assert all(len(secret) >= 43 for secret in secrets)  # 32 random bytes each
    # The files made from it are owner-only too, and hold no password in plain text.
    for derived in (stack.layout.redis_aclfile, stack.layout.mlflow_auth_config):
        assert stat.S_IMODE(derived.stat().st_mode) == 0o600
        text = derived.read_text()
        assert not any(secret in text for secret in secrets)
    assert stat.S_IMODE(stack.layout.mlflow_auth_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE(stack.layout.redis_dir.stat().st_mode) == 0o700
    # `up` names users, never passwords.
    assert not any(secret in line for line in stack.lines for secret in secrets)
    assert not any(secret in json.dumps(stack.result) for secret in secrets)


def test_a_credentials_file_others_can_read_is_refused_naming_the_fix(tmp_path: Path):
    layout = services.Layout(tmp_path / "var")
    path = layout.credentials_file
    assert credentials.ensure(path)[1] is True
    path.chmod(0o644)

    with pytest.raises(ConfigError, match=r"mode 0644\): refusing to use it; run: chmod 600 "):
        credentials.load(path)
    with pytest.raises(ConfigError, match="chmod 600"):
        services.up(services.StackConfig(layout=layout), echo=lambda _line: None)
    assert list(layout.run_dir.glob("*.pid")) == []  # refused before anything started

    path.chmod(0o600)
    assert credentials.ensure(path)[1] is False  # the same file, now accepted
    link = tmp_path / "link.json"
    link.symlink_to(path)
    with pytest.raises(ConfigError, match="must be a regular file"):
        credentials.load(link)


def test_a_malformed_credentials_file_is_refused_naming_the_field(tmp_path: Path):
    path = tmp_path / credentials.FILE_NAME
    data = credentials.generate().to_dict()
    data["redis"]["readonly"] = ""
    credentials.write_private(path, json.dumps(data))

    with pytest.raises(ConfigError, match=r"redis\.readonly is missing or empty"):
        credentials.load(path)


# --- Redis -------------------------------------------------------------------------------------


def test_redis_refuses_a_client_that_has_not_logged_in(stack: Stack):
    assert _raw(stack.redis_port, "PING").startswith(b"-NOAUTH")
    # No retries: redis-py counts a refused login as a connection error and would back off.
    anonymous = redis.Redis(port=stack.redis_port, protocol=2, retry=Retry(NoBackoff(), 0))
    with pytest.raises(redis.AuthenticationError, match="Authentication required"):  # NOAUTH
        anonymous.set("se:probe", "1")
    anonymous.close()
    # The default user is off whatever password is tried, and a wrong password is refused.
    for user, password in (("default", stack.creds.redis["admin"]), ("core", "wrong")):
        attempt = redis.Redis(
            port=stack.redis_port, username=user, password=password, retry=Retry(NoBackoff(), 0)
        )
        with pytest.raises(redis.AuthenticationError, match="invalid username-password pair"):
            attempt.ping()
        attempt.close()


def _raw(port: int, *words: str) -> bytes:
    """Send ``AUTH user password`` (if first) and one command; return the last reply line."""
    commands = [list(words[:3]), list(words[3:])] if words[0] == "AUTH" else [list(words)]
    payload = b"".join(
        b"*%d\r\n" % len(c) + b"".join(b"$%d\r\n%s\r\n" % (len(w), w.encode()) for w in c)
        for c in commands
        if c
    )
    with socket.create_connection((services.HOST, port), timeout=5) as conn:
        conn.sendall(payload)
        replies = b""
        while replies.count(b"\r\n") < len([c for c in commands if c]):
            chunk = conn.recv(4096)
            if not chunk:
                break
            replies += chunk
    return replies.split(b"\r\n")[-2]


def test_the_readonly_user_reads_what_the_dashboard_reads_and_cannot_write(stack: Stack):
    core = stack.redis("core")
    core.xadd("se:signals", {"msg": b"{}"})
    core.hset("se:positions", "AAPL", b"{}")
    reader = stack.redis("readonly")

    assert reader.ping()
    assert reader.xrevrange("se:signals", count=1)
    assert reader.xrange("se:signals", count=1)
    assert reader.hgetall("se:positions") == {b"AAPL": b"{}"}
    assert reader.hget("se:positions", "AAPL") == b"{}"
    assert reader.hkeys("se:positions") == [b"AAPL"]
    assert reader.exists("se:signals") == 1
    assert reader.xinfo_stream("se:signals")["length"] >= 1
    assert b"se:signals" in set(reader.scan_iter(match="se:*"))
    for write in (
        lambda: reader.set("se:probe", "1"),
        lambda: reader.xadd("se:signals", {"msg": b"{}"}),
        lambda: reader.hset("se:positions", "AAPL", b"forged"),
        lambda: reader.delete("se:signals"),
        lambda: reader.publish("se:control", b"{}"),
        lambda: reader.flushall(),
        lambda: reader.config_get("*"),
    ):
        with pytest.raises(redis.exceptions.NoPermissionError, match="no permissions"):
            write()
    # On the wire, as any client sees it: NOPERM.
    assert _raw(stack.redis_port, "AUTH", "readonly", stack.creds.redis["readonly"]) == b"+OK"
    password = stack.creds.redis["readonly"]
    assert _raw(stack.redis_port, "AUTH", "readonly", password, "SET", "se:probe", "1").startswith(
        b"-NOPERM"
    )
    assert core.hget("se:positions", "AAPL") == b"{}"
    core.delete("se:signals", "se:positions")
    core.close()
    reader.close()


def test_the_core_and_flows_users_write_but_cannot_reconfigure_or_wipe_the_server(stack: Stack):
    for user in ("core", "flows"):
        client = stack.redis(user)
        assert client.set(f"se:probe:{user}", "1")
        assert client.delete(f"se:probe:{user}") == 1
        for admin_command in (
            client.flushall,
            lambda c=client: c.config_set("appendonly", "no"),
            lambda c=client: c.keys("*"),
            lambda c=client: c.execute_command("SHUTDOWN"),
            lambda c=client: c.execute_command("ACL", "LIST"),
        ):
            with pytest.raises(redis.exceptions.NoPermissionError):
                admin_command()
        client.close()


def test_the_stack_redis_persists_with_an_append_only_file_and_snapshots(stack: Stack):
    admin = stack.redis("admin")
    assert admin.config_get("appendonly") == {"appendonly": "yes"}
    assert admin.config_get("appendfsync") == {"appendfsync": "everysec"}
    assert admin.config_get("save") == {"save": "3600 1 300 100 60 10000"}
    assert admin.config_get("bind") == {"bind": "127.0.0.1"}
    assert (stack.layout.redis_dir / "appendonly.aof").is_file()
    assert stack.result["redis_appendfsync"] == "everysec"
    # Nobody refused on a plain connection: redis-py's connect handshake is allowed.
    admin.execute_command("ACL", "LOG", "RESET")
    stack.redis("readonly").ping()
    stack.redis("core").ping()
    assert admin.acl_log() == []
    admin.close()


def test_redis_may_listen_off_loopback_only_with_passwords(tmp_path: Path):
    layout = services.Layout(tmp_path / "var")
    with pytest.raises(ConfigError, match="only with passwords"):
        services.redis_arguments("0.0.0.0", 6379, layout)
    arguments = services.redis_arguments("0.0.0.0", 6379, layout, aclfile=layout.redis_aclfile)
    assert arguments[arguments.index("--aclfile") + 1] == str(layout.redis_aclfile)
    with pytest.raises(ConfigError, match="appendfsync must be one of"):
        services.StackConfig(redis_appendfsync="no")
    config = services.StackConfig(redis_appendfsync="always")
    assert config.appendfsync == "always"


def test_up_keeps_the_data_of_a_redis_folder_that_has_only_a_snapshot(tmp_path: Path):
    layout = services.Layout(tmp_path / "var")
    layout.create()
    port = free_port()
    # A folder written before the append-only file was on: data in dump.rdb alone.
    old = subprocess.Popen(
        [str(services.redis_server_binary()), "--port", str(port), "--bind", services.HOST,
         "--dir", str(layout.redis_dir), "--dbfilename", "dump.rdb", "--appendonly", "no",
         "--save", ""],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        client = redis.Redis(port=port)
        _wait_for(lambda: _pings(client))
        client.hset("se:positions", "AAPL", b'{"qty": 10}')
        client.save()
        client.close()
    finally:
        old.terminate()
        old.wait(timeout=10)
    creds, _ = credentials.ensure(layout.credentials_file)
    config = services.StackConfig(redis_port=free_port(), layout=layout)
    lines: list[str] = []
    try:
        started = services._ensure_redis(config, {}, [], lines.append, creds)
        host, port = services._redis_address(started.url)
        admin = redis.Redis.from_url(creds.redis_url("admin", host, port))
        assert admin.hget("se:positions", "AAPL") == b'{"qty": 10}'
        assert admin.config_get("appendonly") == {"appendonly": "yes"}
        admin.close()
    finally:
        services.down(layout, echo=lambda _line: None)  # Redis, and the supervisor it started
    assert not layout.supervisor.running()
    assert (layout.redis_dir / "appendonly.aof").stat().st_size > 0
    assert any("append-only file written from the existing snapshot" in line for line in lines)


def test_a_second_up_reuses_the_running_servers_that_require_the_credentials(stack: Stack):
    again = services.up(
        services.StackConfig(deploy=False, layout=stack.layout), echo=lambda _line: None
    )
    names = [s["name"] for s in again["services"]]
    assert names == [s["name"] for s in stack.result["services"]]
    optional = {services.ALERTMANAGER, services.PROMETHEUS}  # where Debian's packages are
    assert {*services.SERVICES, "core-1"} - set(names) <= optional
    assert all(s["reused"] for s in again["services"])
    assert again["urls"] == stack.result["urls"]


def test_up_refuses_to_reuse_a_redis_left_open_by_an_earlier_version(tmp_path: Path):
    layout = services.Layout(tmp_path / "var")
    layout.create()
    port = free_port()
    open_server = subprocess.Popen(
        [str(services.redis_server_binary()), "--port", str(port), "--bind", services.HOST,
         "--dir", str(layout.redis_dir), "--save", ""],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        _wait_for(lambda: _pings(redis.Redis(port=port)))
        creds = credentials.generate()
        url = f"redis://{services.HOST}:{port}/0"
        left = services.Started(services.REDIS, open_server.pid, url=url, reused=True)
        with pytest.raises(ConfigError, match="answers clients that send no credentials"):
            services._check_reused(left, layout, creds)
    finally:
        open_server.terminate()
        open_server.wait(timeout=10)


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


def _wait_for(condition: Any, timeout_s: float = 10.0) -> None:
    import time

    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


# --- MLflow ------------------------------------------------------------------------------------


def test_mlflow_refuses_an_anonymous_alias_change_and_accepts_the_admin(stack: Stack):
    api = f"{stack.url('mlflow_ui')}/api/2.0/mlflow"
    admin = {"Authorization": stack.creds.mlflow_authorization()}
    wrong = {"Authorization": credentials.basic_authorization("admin:not-the-password")}
    assert _http("POST", f"{api}/registered-models/create", {"name": "sec"}, admin)[0] == 200
    status, experiment = _http("POST", f"{api}/experiments/create", {"name": "sec"}, admin)
    assert status == 200
    status, run = _http("POST", f"{api}/runs/create", experiment, admin)
    run_id = run["run"]["info"]["run_id"]
    version = {"name": "sec", "source": f"runs:/{run_id}/model", "run_id": run_id}
    assert _http("POST", f"{api}/model-versions/create", version, admin)[0] == 200
    alias = {"name": "sec", "alias": "champion", "version": "1"}

    assert _http("POST", f"{api}/registered-models/alias", alias)[0] == 401
    assert _http("POST", f"{api}/registered-models/alias", alias, wrong)[0] == 401
    assert _http("GET", f"{api}/registered-models/get?name=sec")[0] == 401
    assert _http("GET", stack.url("mlflow_ui"))[0] == 401  # the UI asks for the password too
    assert _http("POST", f"{api}/registered-models/alias", alias, admin)[0] == 200
    status, found = _http(
        "GET", f"{api}/registered-models/alias?name=sec&alias=champion", None, admin
    )
    assert (status, found["model_version"]["version"]) == (200, "1")
    # Anyone may sign up? No: creating a user needs a login as well.
    user = {"username": "mallory", "password": "a-long-enough-password"}
    assert _http("POST", f"{api}/users/create", user)[0] == 401


def test_the_project_mlflow_client_logs_in_with_the_stack_environment(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
):
    server = MlflowStore(tracking_uri=stack.url("mlflow_ui"))
    with pytest.raises(MlflowException, match="401"):
        server.client.search_registered_models()

    for name, value in services.stack_client_environment(stack.layout, environ={}).items():
        monkeypatch.setenv(name, value)
    names = [
        m.name
        for m in MlflowStore(tracking_uri=stack.url("mlflow_ui")).client.search_registered_models()
    ]
    assert isinstance(names, list)


# --- Prefect -----------------------------------------------------------------------------------


def test_prefect_refuses_an_anonymous_api_call_and_accepts_the_auth_string(stack: Stack):
    api = stack.url("prefect_api")
    right = {"Authorization": stack.creds.prefect_authorization()}
    wrong = {"Authorization": credentials.basic_authorization("admin:not-the-auth-string")}

    assert _http("GET", f"{api}/admin/version")[0] == 401
    assert _http("GET", f"{api}/admin/version", None, wrong)[0] == 401
    assert _http("POST", f"{api}/flows/filter", {})[0] == 401
    assert _http("POST", f"{api}/work_pools/", {"name": "rogue", "type": "process"})[0] == 401
    assert _http("GET", f"{api}/admin/version", None, right)[0] == 200
    status, pools = _http("POST", f"{api}/work_pools/filter", {}, right)
    assert status == 200 and services.POOL in [pool["name"] for pool in pools]
    # Only the liveness probe is open, and it tells nothing.
    assert _http("GET", f"{api}/health") == (200, True)


# --- all of them -------------------------------------------------------------------------------


def test_every_service_listens_on_127_0_0_1_only(stack: Stack):
    listening: dict[str, set[tuple[str, int]]] = {}
    for name in services.SERVICES:
        pgid = services.read_pid(name, stack.layout)
        assert pgid is not None, name
        listening[name] = {
            (conn.laddr.ip, conn.laddr.port)
            for process in _group(pgid)
            for conn in _connections(process)
            if conn.status == psutil.CONN_LISTEN
        }
    for name in (services.REDIS, services.API, services.MLFLOW, services.PREFECT):
        assert listening[name], f"{name} listens nowhere"
    addresses = {ip for found in listening.values() for ip, _port in found}
    assert addresses == {"127.0.0.1"}, listening


def _group(pgid: int) -> list[psutil.Process]:
    members = []
    for process in psutil.process_iter():
        try:
            if os.getpgid(process.pid) == pgid:
                members.append(process)
        except (OSError, psutil.Error):
            continue
    return members


def _connections(process: psutil.Process) -> list[Any]:
    try:
        return list(process.net_connections(kind="inet"))
    except psutil.Error:
        return []


def test_services_reports_every_service_answering_an_authenticated_check(stack: Stack):
    report = services.status(stack.layout)
    # Prometheus and Alertmanager run where Debian's packages are installed (make test installs
    # them as root, as in CI).
    alerting = bool(monitoring.prometheus_binary() and monitoring.alertmanager_binary())
    optional = {services.ALERTMANAGER, services.PROMETHEUS}
    assert [(s["name"], s["running"], s["answering"]) for s in report] == [
        (name, alerting or name not in optional, alerting or name not in optional)
        for name in (*services.SERVICES, "core-1")
    ]


def test_clients_get_the_stack_credentials_without_losing_what_the_user_set(stack: Stack):
    env = services.stack_client_environment(stack.layout, environ={})
    assert set(env) == {
        "REDIS_URL", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD",
        "PREFECT_API_AUTH_STRING",
    }  # fmt: skip
    assert env["REDIS_URL"].startswith("redis://core:")
    core = redis.Redis.from_url(env["REDIS_URL"])
    assert core.set("se:probe", "1") and core.delete("se:probe") == 1
    core.close()
    assert env["PREFECT_API_AUTH_STRING"] == stack.creds.prefect_auth_string

    mine = {"REDIS_URL": "redis://elsewhere:6379/0", "MLFLOW_TRACKING_USERNAME": "me"}
    kept = services.stack_client_environment(stack.layout, environ=mine)
    assert set(kept) == {"PREFECT_API_AUTH_STRING"}  # never half of an MLflow pair either


def test_a_core_started_by_hand_runs_as_the_core_user_and_the_dashboard_reads_it(
    stack: Stack, tmp_path: Path
):
    # Only the var folder is given: the core finds the stack's Redis and its `core` login
    # through apply_environment_defaults, as `strategy-engine core` run by an operator does.
    env = {k: v for k, v in os.environ.items() if k not in CLIENT_VARIABLES}
    env.update(
        STRATEGY_ENGINE_VAR_DIR=str(stack.layout.var_dir),
        STRATEGY_ENGINE_MLFLOW_DIR=str(tmp_path / "mlflow"),
        PYTHONPATH=str(REPO),
    )
    admin = stack.redis("admin")
    admin.execute_command("ACL", "LOG", "RESET")
    argv = core_command(
        "--replay", "equities_daily_stocknet88", "--fast", "--until-end",
        "--strategies", "ma_crossover", "--namespace", "sec", "--no-mlflow", "--json",
    )  # fmt: skip
    done = subprocess.run(
        argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False
    )

    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(done.stdout)
    assert summary["fills"] > 0
    assert summary["redis"]["dropped"] == summary["redis"]["reconnects"] == 0
    assert summary.get("redis_persistence", "aof") == "aof"  # it may check, and sees AOF
    assert admin.acl_log() == []  # the core user was refused nothing
    shown = DashboardReader(stack.redis("readonly"), "sec", "core-1").state()
    assert shown["status"]["events_in"] == summary["events_in"]
    assert shown["signals"] and shown["positions"]
    assert admin.acl_log() == []  # nor was the dashboard's readonly user
    admin.close()


def test_every_command_sees_the_running_stack_through_apply_environment_defaults(stack: Stack):
    script = (
        "import os\n"
        "from strategy_engine.environment import apply_environment_defaults\n"
        "apply_environment_defaults()\n"
        "print(os.environ.get('REDIS_URL', ''))\n"
        "print(os.environ.get('PREFECT_API_AUTH_STRING', ''))\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in CLIENT_VARIABLES}
    env["STRATEGY_ENGINE_VAR_DIR"] = str(stack.layout.var_dir)
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True,
        timeout=60, check=True,
    )  # fmt: skip
    redis_url, auth = done.stdout.splitlines()
    assert redis_url == stack.creds.redis_url("core", services.HOST, stack.redis_port)
    assert auth == stack.creds.prefect_auth_string

    env["REDIS_URL"] = "redis://mine:6379/0"
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True,
        timeout=60, check=True,
    )  # fmt: skip
    assert done.stdout.splitlines()[0] == "redis://mine:6379/0"


def test_the_credentials_command_names_users_and_exports_secrets_only_when_asked(stack: Stack):
    env = {k: v for k, v in os.environ.items() if k not in CLIENT_VARIABLES}
    env["STRATEGY_ENGINE_VAR_DIR"] = str(stack.layout.var_dir)

    def cli(*args: str) -> str:
        argv = [sys.executable, "-m", "strategy_engine.cli", "credentials", *args]
        done = subprocess.run(
            argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=60, check=False
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    summary = cli()
    assert str(stack.layout.credentials_file) in summary and "readonly" in summary
    assert stack.creds.mlflow_password not in summary
    exports = dict(line.removeprefix("export ").split("=", 1) for line in cli("--env").splitlines())
    assert exports["REDIS_URL"] == stack.creds.redis_url("core", services.HOST, stack.redis_port)
    assert exports["PREFECT_API_URL"] == stack.url("prefect_api")
    assert exports["PREFECT_API_AUTH_STRING"] == stack.creds.prefect_auth_string
    assert exports["MLFLOW_TRACKING_PASSWORD"] == stack.creds.mlflow_password
