"""The alert receiver as its senders use it: real HTTP through the ASGI app, real files, and a
real HTTP server standing in for a Slack incoming webhook.

Hostile input is normal input here too: whatever bytes arrive, the answer is a record or a
problem document with a stable code, never a 500, and what was recorded before stays intact.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI, Request
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from strategy_engine.alert_receiver import (
    MAX_BODY_BYTES,
    AlertLog,
    Forwarding,
    create_app,
)
from strategy_engine.api.server import config

TOKEN = "a-long-random-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _notification(status: str = "firing", **labels: str) -> dict[str, Any]:
    return {
        "version": "4",
        "status": status,
        "receiver": "strategy-engine",
        "groupKey": '{}:{alertname="CoreDown"}',
        "alerts": [
            {
                "status": status,
                "labels": {"alertname": "CoreDown", "severity": "critical", **labels},
                "annotations": {"summary": "core core-1 does not answer"},
                "startsAt": "2026-12-06T10:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "fingerprint": "abc",
            }
        ],
    }


@pytest.fixture
def alert_log(tmp_path: Path) -> Iterator[AlertLog]:
    log = AlertLog(tmp_path / "alerts.jsonl")
    yield log
    log.close()


@pytest.fixture
def client(alert_log: AlertLog) -> Iterator[TestClient]:
    with TestClient(create_app(alert_log, TOKEN)) as test_client:
        yield test_client


def test_alertmanager_notifications_are_recorded_firing_then_resolved(
    client: TestClient, alert_log: AlertLog
):
    assert client.post("/alertmanager", json=_notification(core="core-1"), headers=AUTH).json() == {
        "recorded": 1
    }
    resolved = _notification("resolved", core="core-1")
    assert client.post("/alertmanager", json=resolved, headers=AUTH).status_code == 200
    listed = client.get("/alerts", headers=AUTH).json()["alerts"]
    assert [(a["name"], a["status"], a["labels"]["core"]) for a in listed] == [
        ("CoreDown", "firing", "core-1"),
        ("CoreDown", "resolved", "core-1"),
    ]
    # The file holds the same, one JSON document per line, and a new receiver reads it back.
    lines = alert_log.path.read_text().splitlines()
    assert [json.loads(line)["status"] for line in lines] == ["firing", "resolved"]
    again = AlertLog(alert_log.path)
    assert [a.status for a in again.recent(10)] == ["firing", "resolved"]
    again.close()


def test_every_route_but_health_wants_the_token(client: TestClient):
    assert client.get("/healthz").status_code == 200
    for method, path in (("post", "/alertmanager"), ("post", "/prefect"), ("get", "/alerts")):
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
            answer = client.request(method, path, headers=headers, json=_notification())
            assert answer.status_code == 401, (path, headers)
            assert answer.headers["content-type"] == "application/problem+json"
            assert answer.json()["code"] == "unauthorized"


def test_a_body_over_the_bound_is_refused_before_it_is_read_whole(client: TestClient):
    huge = b"{" + b" " * MAX_BODY_BYTES + b"}"
    answer = client.post("/alertmanager", content=huge, headers=AUTH)
    assert answer.status_code == 413
    assert answer.json()["code"] == "body_too_large"


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    body=st.one_of(
        st.binary(max_size=2048),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
            lambda inner: (
                st.lists(inner, max_size=4)
                | st.dictionaries(st.text(max_size=10), inner, max_size=4)
            ),
            max_leaves=20,
        ).map(lambda v: json.dumps(v).encode()),
        st.builds(
            lambda status, labels: json.dumps(
                {"version": "4", "status": status, "alerts": [{"status": status, "labels": labels}]}
            ).encode(),
            st.text(max_size=10),
            st.dictionaries(st.text(max_size=10), st.text(max_size=10), max_size=5),
        ),
    ),
    path=st.sampled_from(["/alertmanager", "/prefect"]),
)
def test_any_body_is_a_record_or_a_problem_never_a_server_error(
    client: TestClient, alert_log: AlertLog, body: bytes, path: str
):
    before = alert_log.path.read_text() if alert_log.path.exists() else ""
    answer = client.post(path, content=body, headers={**AUTH, "Content-Type": "application/json"})
    assert answer.status_code in (200, 400, 413, 422), answer.text
    if answer.status_code != 200:
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.json()["code"] in ("malformed_json", "invalid_body", "body_too_large")
    after = alert_log.path.read_text() if alert_log.path.exists() else ""
    assert after.startswith(before)  # what was recorded is never rewritten
    for line in after.splitlines():
        json.loads(line)


@contextlib.contextmanager
def _slack_stand_in() -> Iterator[tuple[str, list[Any]]]:
    """An incoming-webhook stand-in: a FastAPI app under uvicorn that keeps what it is sent."""
    received: list[Any] = []
    hook = FastAPI()

    @hook.post("/hook")
    async def take(request: Request) -> dict[str, bool]:
        received.append(json.loads(await request.body()))
        return {"ok": True}

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(config(hook, "127.0.0.1", port))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the stand-in did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}/hook", received
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_notifications_are_forwarded_to_slack_and_failures_do_not_lose_the_record(
    alert_log: AlertLog,
):
    with _slack_stand_in() as (slack, received):
        forwarding = Forwarding(slack_urls=(slack,), webhook_urls=("http://127.0.0.1:9/nowhere",))
        app = create_app(alert_log, TOKEN, forwarding)
        with TestClient(app) as client:
            answer = client.post("/alertmanager", json=_notification(core="core-2"), headers=AUTH)
            assert answer.status_code == 200
        assert received == [{"text": "[CRITICAL] CoreDown: core core-1 does not answer"}]
        assert app.state.counters.forward_failures == 1  # the dead address, counted
        assert [a.name for a in alert_log.recent(5)] == ["CoreDown"]


def test_forward_addresses_come_from_the_environment_and_must_be_http():
    env = {"STRATEGY_ENGINE_ALERT_SLACK_URLS": "https://hooks.example/a, https://hooks.example/b"}
    assert Forwarding.from_environment(env).slack_urls == (
        "https://hooks.example/a",
        "https://hooks.example/b",
    )
    assert not Forwarding.from_environment({})
    with pytest.raises(ValueError, match="http"):
        Forwarding.from_environment({"STRATEGY_ENGINE_ALERT_WEBHOOK_URLS": "file:///etc/passwd"})
