"""The dashboard's and the core's metrics HTTP servers under hostile clients, on real sockets.

Every test talks raw HTTP to a real server on a free loopback port (the dashboard reading a
real Redis, the metrics server rendering a summary), so what is checked is what a client
sees: status lines, headers, and when the connection is closed. The refusal to listen off
loopback without a token is checked on the real ``strategy-engine dashboard`` command.
"""

from __future__ import annotations

import functools
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from core.adapters.redis_server import RedisConnection
from core.adapters.redis_store import RedisStore
from core.errors import ConfigError
from strategy_engine.dashboard import DashboardReader, DashboardServer, start_dashboard
from strategy_engine.dashboard.server import PAGE_CSP
from strategy_engine.http_guard import (
    MAX_HANDLERS,
    MAX_HEAD,
    MAX_REQUEST_LINE,
    TIMEOUT_S,
    GuardedHTTPServer,
    HttpGuard,
)
from strategy_engine.metrics import serve_metrics

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SHORT_TIMEOUT_S = 1.5  # the deadline of the servers under test, so a test waits seconds
SLACK_S = 1.0  # scheduling slack on a loaded machine, on top of a deadline
CORE = "core-sec"


# --- raw HTTP ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """One answer as read off the socket until the server closed it."""

    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes
    seconds: float


def exchange(port: int, raw: bytes, timeout_s: float = 10.0, protocol: str = "HTTP/1.0") -> Reply:
    """Send ``raw`` to ``127.0.0.1:port`` and read until the server closes the connection."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
        sock.sendall(raw)
        data = _read_to_end(sock)
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    assert lines[0].startswith(protocol + " "), data[:200]
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return Reply(int(lines[0].split()[1]), headers, body, time.monotonic() - started)


def request(
    port: int,
    path: str = "/healthz",
    method: str = "GET",
    *,
    host: str | None = None,
    headers: tuple[tuple[str, str], ...] = (),
    body: bytes = b"",
    protocol: str = "HTTP/1.0",
) -> Reply:
    """One request with ``Host: 127.0.0.1:port`` unless ``host`` says otherwise; the answer
    is expected in ``protocol`` (the stdlib servers' HTTP/1.0; uvicorn's HTTP/1.1, asked to
    close the connection after it)."""
    shown = f"127.0.0.1:{port}" if host is None else host
    lines = [f"{method} {path} HTTP/1.1", f"Host: {shown}"]
    lines += [f"{name}: {value}" for name, value in headers]
    if protocol != "HTTP/1.0":
        lines.append("Connection: close")
    raw = ("\r\n".join(lines) + "\r\n\r\n").encode() + body
    return exchange(port, raw, protocol=protocol)


def _read_to_end(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def _free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


# --- the servers -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Served:
    """A running server and the path that answers 200 on it."""

    server: GuardedHTTPServer
    path: str

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])


@pytest.fixture
def store(redis_connection: RedisConnection, redis_namespace: str) -> RedisStore:
    """The test's namespace with a core's status, a context and a dead letter in it."""
    store = RedisStore(redis_connection.client, redis_namespace)
    store.save_report(
        f"status:{CORE}", {"heartbeat_ns": time.time_ns(), "events_in": 7, "signals_out": 2}
    )
    store.set_context("regime", {"label": "calm"})
    store.dead_letter("feed", "crossed book", b"{}", code="crossed_book")
    return store


@pytest.fixture(params=["dashboard", "metrics"])
def served(
    request: pytest.FixtureRequest, redis_connection: RedisConnection, store: RedisStore
) -> Iterator[Served]:
    """Each of the two servers with a short deadline and the default thread bound."""
    guard = HttpGuard(timeout_s=SHORT_TIMEOUT_S)
    server: GuardedHTTPServer
    if request.param == "dashboard":
        server = start_dashboard(
            redis_connection.client, namespace=store.namespace, core=CORE, port=0, guard=guard
        )
        path = "/api/state"
    else:
        server = serve_metrics(lambda: {"core": CORE, "events_in": 7}, "127.0.0.1", 0, guard)
        path = "/metrics"
    yield Served(server, path)
    server.stop()


# --- slow clients ------------------------------------------------------------------------------


def _slow_client(port: int, pieces: list[bytes], every_s: float) -> tuple[float, bytes]:
    """Send ``pieces`` ``every_s`` apart, then wait; return when the server closed, and what
    it sent. Sending stops early if the server has closed already."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        for piece in pieces:
            try:
                sock.sendall(piece)
            except OSError:
                break
            time.sleep(every_s)
        try:
            data = _read_to_end(sock)
        except ConnectionResetError:
            data = b""
    return time.monotonic() - started, data


def test_a_slow_client_is_dropped_at_the_deadline_while_others_are_served(served: Served):
    results: dict[str, tuple[float, bytes]] = {}
    # Half a request line, then silence; and one that trickles a byte every 0.2 s, which a
    # per-receive timeout alone would never drop.
    idle = threading.Thread(
        target=lambda: results.update(idle=_slow_client(served.port, [b"GET /met"], 0))
    )
    trickle_bytes = [bytes([b]) for b in f"GET {served.path} HTTP/1.1\r\nX-Slow: ".encode()]
    trickle_bytes += [b"a"] * 100
    trickle = threading.Thread(
        target=lambda: results.update(trickle=_slow_client(served.port, trickle_bytes, 0.2))
    )
    idle.start()
    trickle.start()
    normal = []
    deadline = time.monotonic() + SHORT_TIMEOUT_S
    while time.monotonic() < deadline:
        normal.append(request(served.port, served.path))
        time.sleep(0.1)
    idle.join(timeout=30)
    trickle.join(timeout=30)

    assert len(normal) >= 5
    assert all(r.status == 200 and r.seconds < 0.5 for r in normal), normal
    for name in ("idle", "trickle"):
        seconds, data = results[name]
        assert SHORT_TIMEOUT_S - 0.05 <= seconds <= SHORT_TIMEOUT_S + SLACK_S, (name, seconds)
        assert data == b"", (name, data)  # dropped without an answer
    assert served.server.active_handlers == 0


def test_by_default_a_silent_client_is_dropped_after_ten_seconds():
    server = serve_metrics(lambda: {"core": CORE, "events_in": 1}, "127.0.0.1", 0)
    port = int(server.server_address[1])
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            started = time.monotonic()
            sock.sendall(b"GET /metrics HTT")
            served = request(port, "/metrics")
            closed = _read_to_end(sock)
            seconds = time.monotonic() - started
    finally:
        server.stop()
    assert TIMEOUT_S == 10.0
    assert served.status == 200 and served.seconds < 0.5
    assert closed == b"" and TIMEOUT_S - 0.05 <= seconds <= TIMEOUT_S + SLACK_S, seconds


def test_past_the_thread_bound_a_connection_is_refused_at_once_and_served_after(served: Served):
    """The design: at most ``MAX_HANDLERS`` handler threads; a connection past them gets 503
    at once from the accepting thread (no thread of its own), and once slow clients are
    dropped at the deadline the server answers again."""
    slow = []
    started = time.monotonic()
    try:
        for _ in range(MAX_HANDLERS + 8):
            sock = socket.create_connection(("127.0.0.1", served.port), timeout=30)
            sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # and never the blank line
            slow.append(sock)
        _wait(lambda: served.server.active_handlers == MAX_HANDLERS, 5, "the bound to fill")
        busy = request(served.port, served.path)
        over_bound = [_read_to_end(sock) for sock in slow[MAX_HANDLERS:]]
        _wait(
            lambda: served.server.active_handlers == 0,
            SHORT_TIMEOUT_S + SLACK_S,
            "the slow clients to be dropped",
        )
        after = request(served.port, served.path)
        dropped_in = time.monotonic() - started
        held = [_read_to_end(sock) for sock in slow[:MAX_HANDLERS]]
    finally:
        for sock in slow:
            sock.close()

    assert busy.status == 503 and busy.seconds < 0.5, busy
    assert busy.headers["retry-after"] == "1"
    assert all(data.startswith(b"HTTP/1.0 503 ") for data in over_bound)
    assert served.server.peak_handlers == MAX_HANDLERS
    assert after.status == 200
    assert all(data == b"" for data in held)  # dropped at the deadline, unanswered
    assert dropped_in <= SHORT_TIMEOUT_S + SLACK_S + 1.0


# --- what a request may be ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "host",
    [
        "evil.example",
        "evil.example:{port}",  # a rebinding page's own name, with the right port
        "localhost",  # no port: port 80, not this server's
        "127.0.0.1:{other}",
        "127.0.0.1.evil.example:{port}",
        "localhost.:{port}",
        "0x7f000001:{port}",
        "",
    ],
)
def test_a_request_for_another_host_is_refused(served: Served, host: str):
    shown = host.format(port=served.port, other=served.port + 1)
    reply = request(served.port, served.path, host=shown)
    assert reply.status in (400, 421), (shown, reply)
    assert b"events_in" not in reply.body and b"core" not in reply.body


def test_a_request_without_a_host_or_with_two_is_refused(served: Served):
    none = exchange(served.port, f"GET {served.path} HTTP/1.0\r\n\r\n".encode())
    two = request(served.port, served.path, headers=(("Host", "evil.example"),))
    assert none.status == 400 and two.status == 400


@pytest.mark.parametrize("host", ["localhost:{port}", "127.0.0.1:{port}", "[::1]:{port}"])
def test_loopback_names_with_the_servers_port_are_answered(served: Served, host: str):
    assert request(served.port, served.path, host=host.format(port=served.port)).status == 200


def test_an_allowed_name_is_answered(redis_connection: RedisConnection, store: RedisStore):
    guard = HttpGuard(allow_hosts=("Dash.Internal",))
    server = start_dashboard(
        redis_connection.client, namespace=store.namespace, core=CORE, port=0, guard=guard
    )
    port = int(server.server_address[1])
    try:
        allowed = request(port, "/api/state", host=f"dash.internal:{port}")
        other = request(port, "/api/state", host=f"other.internal:{port}")
    finally:
        server.stop()
    assert allowed.status == 200 and other.status == 421


def test_a_guard_is_a_config_whose_names_are_normalised_and_whose_token_is_never_shown():
    token = secrets.token_urlsafe(24)
    guard = HttpGuard.from_dict({"token": token, "allow_hosts": ["Dash.Internal", "::1"]})
    assert guard.allow_hosts == ("dash.internal", "[::1]")
    assert guard.replace(timeout_s=1.0) == HttpGuard(
        timeout_s=1.0, token=token, allow_hosts=("dash.internal", "[::1]")
    )
    assert token not in repr(guard) and "allow_hosts=('dash.internal', '[::1]')" in repr(guard)
    with pytest.raises(ConfigError, match="give it without a port"):
        HttpGuard.from_dict({"allow_hosts": ["dash.internal:8050"]})
    with pytest.raises(ConfigError, match="max_handlers must be at least 1, was 0"):
        HttpGuard(max_handlers=0)
    with pytest.raises(ConfigError, match="unknown field `tokens`"):
        HttpGuard.from_dict({"tokens": token})


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE"])
def test_methods_other_than_get_and_head_get_405(served: Served, method: str):
    reply = request(served.port, served.path, method)
    assert reply.status == 405
    assert reply.headers["allow"] == "GET, HEAD"


def test_head_answers_the_headers_of_get_without_a_body(served: Served):
    get = request(served.port, served.path)
    head = request(served.port, served.path, "HEAD")
    assert head.status == get.status == 200
    assert head.body == b"" and int(head.headers["content-length"]) > 0
    assert head.headers["content-type"] == get.headers["content-type"]


def test_a_request_body_gets_413(served: Served):
    payload = b'{"order": "buy"}'
    with_length = request(
        served.port,
        served.path,
        headers=(("Content-Length", str(len(payload))),),
        body=payload,
    )
    chunked = request(
        served.port,
        served.path,
        headers=(("Transfer-Encoding", "chunked"),),
        body=b"5\r\nhello\r\n0\r\n\r\n",
    )
    post = request(
        served.port,
        served.path,
        "POST",
        headers=(("Content-Length", str(len(payload))),),
        body=payload,
    )
    large = request(
        served.port,
        served.path,
        headers=(("Content-Length", "1000000"),),
        body=b"x" * 200_000,  # more than the server reads while it closes
    )
    empty = request(served.port, served.path, headers=(("Content-Length", "0"),))
    assert with_length.status == chunked.status == large.status == 413
    assert post.status == 405
    assert empty.status == 200


def test_oversized_request_lines_and_heads_are_refused(served: Served):
    long_target = request(served.port, "/" + "a" * MAX_REQUEST_LINE)
    one_big_header = request(served.port, served.path, headers=(("X-Big", "a" * 20_000),))
    many_headers = tuple((f"X-H{i}", "a" * 90) for i in range(MAX_HEAD // 100 + 10))
    too_many = request(served.port, served.path, headers=many_headers)
    stdlib_sized = request(served.port, served.path, headers=(("X-Big", "a" * 60_000),))
    under_bound = request(served.port, served.path, headers=(("X-Big", "a" * 12_000),))
    assert long_target.status == 414
    assert one_big_header.status == too_many.status == stdlib_sized.status == 431
    assert under_bound.status == 200


def test_a_target_that_names_another_host_is_refused(served: Served):
    reply = request(served.port, f"http://evil.example{served.path}")
    assert reply.status == 400


# --- what an answer carries --------------------------------------------------------------------


def test_every_answer_carries_the_security_headers(served: Served):
    replies = [
        request(served.port, served.path),
        request(served.port, "/nowhere"),
        request(served.port, served.path, "POST"),
        request(served.port, served.path, host="evil.example"),
    ]
    for reply in replies:
        assert reply.headers["x-content-type-options"] == "nosniff", reply
        assert reply.headers["cache-control"] == "no-store", reply
        assert "frame-ancestors 'none'" in reply.headers["content-security-policy"], reply
        assert reply.headers["server"] == "strategy-engine"  # no Python version


def test_the_page_gets_a_policy_that_allows_only_its_own_script_style_and_fetch(
    redis_connection: RedisConnection, store: RedisStore
):
    server = start_dashboard(redis_connection.client, namespace=store.namespace, core=CORE, port=0)
    port = int(server.server_address[1])
    try:
        page = request(port, "/")
        state = request(port, "/api/state")
    finally:
        server.stop()
    policy = dict(
        part.strip().split(" ", 1) for part in page.headers["content-security-policy"].split(";")
    )
    assert page.headers["content-security-policy"] == PAGE_CSP
    assert policy["default-src"] == "'none'"
    # The page's inline script and style, each allowed by its hash; fetch to this server.
    assert policy["script-src"].startswith("'sha256-") and " " not in policy["script-src"]
    assert policy["style-src"].startswith("'sha256-") and " " not in policy["style-src"]
    assert policy["connect-src"] == "'self'"
    assert policy["frame-ancestors"] == "'none'"
    assert "unsafe" not in PAGE_CSP
    assert state.headers["content-type"] == "application/json"
    assert state.headers["content-security-policy"].startswith("default-src 'none'")
    assert json.loads(state.body)["status"]["events_in"] == 7


def test_no_get_of_the_dashboard_changes_what_redis_holds(
    redis_connection: RedisConnection, store: RedisStore
):
    client = redis_connection.client

    def snapshot() -> dict[bytes, bytes]:
        keys = sorted(client.scan_iter(match=f"{store.namespace}:*"))
        return {key: client.dump(key) for key in keys}

    server = start_dashboard(client, namespace=store.namespace, core=CORE, port=0)
    port = int(server.server_address[1])
    before = snapshot()
    try:
        paths = ["/", "/index.html", "/app.js", "/app.css", "/api/state", "/metrics", "/healthz"]
        replies = [request(port, path, method) for path in paths for method in ("GET", "HEAD")]
    finally:
        server.stop()
    assert all(reply.status == 200 for reply in replies)
    assert len(before) >= 3 and snapshot() == before  # status, context, dead letters


# --- binding and the bearer token --------------------------------------------------------------


def test_the_servers_refuse_a_non_loopback_address_without_a_token(
    redis_connection: RedisConnection,
):
    reader = DashboardReader(redis_connection.client)
    for host in ("0.0.0.0", "::", "", "example.com"):
        with pytest.raises(ConfigError, match="not a loopback address"):
            DashboardServer((host, 0), reader)
    with pytest.raises(ConfigError, match="not a loopback address"):
        serve_metrics(lambda: {}, "0.0.0.0", 0)


def _command(*args: str) -> list[str]:
    """The installed ``strategy-engine`` console script of this virtualenv."""
    script = Path(sys.executable).with_name("strategy-engine")
    assert script.exists(), f"{script} missing: install the project (pip install -e .)"
    return [str(script), *args]


def _environment(redis_connection: RedisConnection, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "STRATEGY_ENGINE_DASHBOARD_TOKEN"}
    env.update(REDIS_URL=redis_connection.url, PYTHONPATH=str(REPO), **extra)
    return env


def _refused(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=60)


def test_the_dashboard_command_refuses_0_0_0_0_without_a_token(
    redis_connection: RedisConnection, tmp_path: Path
):
    port = str(_free_port("0.0.0.0"))
    env = _environment(redis_connection)
    refused = _refused(_command("dashboard", "--host", "0.0.0.0", "--port", port), env)
    readable = tmp_path / "token"
    readable.write_text(secrets.token_urlsafe(32))
    readable.chmod(0o644)
    argv = _command("dashboard", "--host", "0.0.0.0", "--port", port, "--token-file", str(readable))
    world_readable = _refused(argv, env)
    short = _refused(
        _command("dashboard", "--host", "0.0.0.0", "--port", port),
        _environment(redis_connection, STRATEGY_ENGINE_DASHBOARD_TOKEN="short"),
    )

    assert refused.returncode == 2 and refused.stdout == ""
    assert refused.stderr.count("\n") == 1, refused.stderr
    assert refused.stderr.startswith(
        "strategy-engine dashboard: error: refusing to listen on 0.0.0.0: not a loopback "
        "address and no bearer token is set (give --token-file PATH (mode 0600) or set "
        "STRATEGY_ENGINE_DASHBOARD_TOKEN)"
    ), refused.stderr
    assert world_readable.returncode == 2 and world_readable.stderr.count("\n") == 1
    assert "chmod 600" in world_readable.stderr and "0644" in world_readable.stderr
    assert short.returncode == 2 and "at least 16 characters" in short.stderr


@pytest.mark.parametrize("source", ["file", "environment"])
def test_with_a_token_the_dashboard_on_0_0_0_0_answers_only_requests_that_carry_it(
    redis_connection: RedisConnection, store: RedisStore, tmp_path: Path, source: str
):
    token = secrets.token_urlsafe(32)
    port = _free_port("0.0.0.0")
    args = ["dashboard", "--host", "0.0.0.0", "--port", str(port)]
    args += ["--namespace", store.namespace, "--core", CORE, "--allow-host", "dash.internal"]
    extra = {}
    if source == "file":
        token_file = tmp_path / "token"
        token_file.touch(mode=0o600)
        token_file.write_text(token + "\n")
        args += ["--token-file", str(token_file)]
    else:
        extra["STRATEGY_ENGINE_DASHBOARD_TOKEN"] = token
    bearer = (("Authorization", f"Bearer {token}"),)
    process = subprocess.Popen(
        _command(*args),
        cwd=REPO,
        env=_environment(redis_connection, **extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait(
            lambda: process.poll() is not None or _answers(port, bearer),
            30,
            "the dashboard to answer",
        )
        assert process.poll() is None, process.communicate()
        # The command serves the API's app under uvicorn (HTTP/1.1).
        call = functools.partial(request, protocol="HTTP/1.1")
        anonymous = call(port, "/api/state")
        page = call(port, "/")
        wrong = call(port, "/api/state", headers=(("Authorization", f"Bearer {token}x"),))
        basic = call(port, "/api/state", headers=(("Authorization", f"Basic {token}"),))
        state = call(port, "/api/state", headers=bearer)
        metrics = call(port, "/metrics", headers=bearer)
        rebound = call(port, "/api/state", host=f"evil.example:{port}", headers=bearer)
        named = call(port, "/api/state", host=f"dash.internal:{port}", headers=bearer)
        post = call(port, "/api/state", "POST", headers=bearer)
        dashboard = call(port, "/v1/dashboard", headers=bearer)
        anonymous_v1 = call(port, "/v1/dashboard")
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)

    for refused in (anonymous, wrong, basic):
        assert refused.status == 401, refused
        assert refused.headers["www-authenticate"].startswith("Bearer")
        assert b"events_in" not in refused.body
    # The command serves the API's app: the page is open but holds no data (its script reads
    # /v1/dashboard with the token); the state is a reader's read, the token a reader's.
    assert page.status == 200 and b"events_in" in page.body  # the script's field names only
    assert b'"events_in": 7' not in page.body and b"/v1/dashboard" in page.body
    assert dashboard.status == 200 and json.loads(dashboard.body)["status"]["events_in"] == 7
    assert anonymous_v1.status == 401 and b"events_in" not in anonymous_v1.body
    assert state.status == 200 and json.loads(state.body)["status"]["events_in"] == 7
    assert metrics.status == 200 and b"strategy_engine_events_in_total" in metrics.body
    assert rebound.status == 421 and named.status == 200 and post.status == 405
    assert process.returncode == 0, err
    assert "bearer token required" in out and token not in out + err


def _answers(port: int, headers: tuple[tuple[str, str], ...]) -> bool:
    try:
        return request(port, "/healthz", headers=headers, protocol="HTTP/1.1").status == 200
    except OSError:
        return False


def _wait(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.02)
