"""``strategy-engine api-token`` and ``strategy-engine api`` as a user runs them."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from strategy_engine.commands.api import openapi_text

pytestmark = pytest.mark.e2e


def _cli(var: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "STRATEGY_ENGINE_VAR_DIR": str(var)}
    env.pop("REDIS_URL", None)
    command = [sys.executable, "-m", "strategy_engine.cli", *args]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=120, env=env, check=False
    )


def test_tokens_are_made_once_listed_without_secrets_and_revoked(tmp_path: Path) -> None:
    made = _cli(tmp_path, "api-token", "create", "--role", "reader", "--name", "grafana", "--json")
    assert made.returncode == 0, made.stderr
    token = json.loads(made.stdout)["token"]
    assert len(token) >= 43
    path = tmp_path / "api" / "tokens.json"
    assert path.stat().st_mode & 0o777 == 0o600 and token not in path.read_text()
    again = _cli(tmp_path, "api-token", "create", "--role", "admin", "--name", "grafana")
    assert again.returncode != 0 and "exists" in again.stderr
    bad = _cli(tmp_path, "api-token", "create", "--role", "root", "--name", "x")
    assert bad.returncode != 0
    listed = _cli(tmp_path, "api-token", "list", "--json")
    assert [(t["name"], t["role"]) for t in json.loads(listed.stdout)] == [("grafana", "reader")]
    assert token not in listed.stdout
    assert _cli(tmp_path, "api-token", "revoke", "--name", "grafana").returncode == 0
    assert json.loads(_cli(tmp_path, "api-token", "list", "--json").stdout) == []
    assert _cli(tmp_path, "api-token", "revoke", "--name", "grafana").returncode != 0


def test_write_openapi_writes_the_committed_document(tmp_path: Path) -> None:
    out = tmp_path / "openapi.json"
    done = _cli(tmp_path, "api", "--write-openapi", str(out))
    assert done.returncode == 0, done.stderr
    assert out.read_text() == openapi_text()


def test_the_api_command_serves_health_catalogue_openapi_and_docs(tmp_path: Path) -> None:
    token = json.loads(_cli(tmp_path, "api-token", "create", "--role", "reader", "--name", "r",
                            "--json").stdout)["token"]  # fmt: skip
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "STRATEGY_ENGINE_VAR_DIR": str(tmp_path)}
    env.pop("REDIS_URL", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "strategy_engine.cli", "api", "--port", str(port)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/v1/health", timeout=2) as answer:
                    assert json.load(answer) == {"status": "ok", "version": "1"}
                    break
            except (urllib.error.URLError, ConnectionError):
                assert process.poll() is None, process.communicate()
                assert time.monotonic() < deadline, "the API did not start"
                time.sleep(0.2)
        request = urllib.request.Request(
            f"{url}/v1/strategies", headers={"Authorization": f"Bearer {token}"}
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert {"ma_crossover"} <= {s["name"] for s in json.load(answer)}
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{url}/v1/strategies", timeout=10)
        assert refused.value.code == 401
        with urllib.request.urlopen(f"{url}/openapi.json", timeout=10) as answer:
            assert "/v1/registry" in json.load(answer)["paths"]
        with urllib.request.urlopen(f"{url}/docs", timeout=10) as answer:
            assert answer.status == 200
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    assert process.returncode == 0
