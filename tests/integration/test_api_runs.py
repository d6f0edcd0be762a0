"""The API's run routes against a real Prefect server (with an auth string) and process worker.

One server, deploy and worker for the module (tens of seconds to start, as in
``test_deployment.py``); the app is the real one over real Redis, and its Prefect target is the
server's URL and auth string, as ``strategy-engine up`` passes them in the environment.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from core.adapters.redis_server import RedisConnection
from strategy_engine import credentials, services
from strategy_engine.api import create_app
from strategy_engine.api.auth import Role, TokenFile
from strategy_engine.api.routes_runs import PrefectTarget
from tests.fixtures_processes import free_port, prefect_with_worker

pytestmark = pytest.mark.integration

FLOW, DEPLOYMENT = "register-and-promote", "ma-crossover"
TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
RUN_TIMEOUT = 240.0
PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def prefect(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectTarget]:
    """A Prefect server with an auth string, the ma-crossover deployment and a worker whose
    runs write a temporary MLflow store."""
    layout = services.Layout(tmp_path_factory.mktemp("stack") / "var")
    auth = credentials.generate().prefect_auth_string
    monkeypatch = pytest.MonkeyPatch()
    # The worker inherits this environment: its runs register into a store of this module.
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("PREFECT_API_AUTH_STRING", raising=False)
    monkeypatch.setenv("STRATEGY_ENGINE_MLFLOW_DIR", str(tmp_path_factory.mktemp("mlflow")))
    monkeypatch.setenv("PWD", str(layout.var_dir.parent))
    try:
        with prefect_with_worker(layout, auth, (f"{FLOW}/{DEPLOYMENT}",)) as api_url:
            yield PrefectTarget(api_url, auth)
    finally:
        monkeypatch.undo()


class Api:
    def __init__(self, client: TestClient, tokens: dict[Role, str]) -> None:
        self.client, self.tokens = client, tokens

    def call(self, method: str, path: str, role: Role, body: Any = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.tokens[role]}"}
        return self.client.request(method, path, headers=headers, json=body)


def _api(tmp_path: Path, connection: RedisConnection, namespace: str, target: PrefectTarget) -> Api:
    tokens = TokenFile(tmp_path / "api" / "tokens.json")
    issued = {role: tokens.create(f"test-{role}", role) for role in Role}
    app = create_app(connection.client, tokens, namespace=namespace,
                     control_key=lambda: bytes(range(32)), prefect=target)  # fmt: skip
    return Api(TestClient(app), issued)


@pytest.fixture
def api(
    prefect: PrefectTarget, tmp_path: Path, redis_connection: RedisConnection,
    redis_namespace: str,
) -> Api:  # fmt: skip
    return _api(tmp_path, redis_connection, redis_namespace, prefect)


def _problem(answer: httpx.Response, status: int, code: str) -> None:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == PROBLEM
    assert answer.json()["code"] == code


def test_deployments_list_the_stacks_with_their_flow_and_parameter_schema(api: Api) -> None:
    answer = api.call("GET", "/v1/deployments", Role.OPERATOR)

    assert answer.status_code == 200, answer.text
    (found,) = [d for d in answer.json()["deployments"] if d["name"] == DEPLOYMENT]
    assert found["flow"] == FLOW
    assert "symbols" in found["parameter_schema"]["properties"]


def test_a_reader_may_not_list_start_or_follow_runs(api: Api) -> None:
    path = f"/v1/deployments/{FLOW}/{DEPLOYMENT}/runs"
    _problem(api.call("POST", path, Role.READER, {"parameters": {}}), 403, "forbidden")
    _problem(api.call("GET", "/v1/deployments", Role.READER), 403, "forbidden")
    run = "/v1/flow-runs/00000000-0000-0000-0000-000000000000"
    _problem(api.call("GET", run, Role.READER), 403, "forbidden")
    _problem(api.call("GET", "/v1/deployments", Role.PRODUCER), 403, "forbidden")


def test_unknown_deployments_and_runs_are_404_and_hostile_input_a_problem(api: Api) -> None:
    body = {"parameters": {}}
    unknown = api.call("POST", f"/v1/deployments/{FLOW}/no-such/runs", Role.OPERATOR, body)
    _problem(unknown, 404, "deployment_not_found")
    run = "/v1/flow-runs/00000000-0000-0000-0000-000000000000"
    _problem(api.call("GET", run, Role.OPERATOR), 404, "flow_run_not_found")
    _problem(api.call("GET", "/v1/flow-runs/not-a-uuid", Role.OPERATOR), 422, "invalid_request")
    path = f"/v1/deployments/{FLOW}/{DEPLOYMENT}/runs"
    deep: Any = 1
    for _ in range(40):
        deep = {"a": deep}
    for hostile in (
        {"parameters": deep},
        {"parameters": {"x": "y" * 70_000}},
        {"parameters": [1, 2]},
        {"parameters": {}, "job_variables": {"env": {"X": "1"}}},
        [],
    ):
        answer = api.call("POST", path, Role.OPERATOR, hostile)
        assert answer.status_code == 422, (hostile if len(str(hostile)) < 200 else "", answer.text)
        assert answer.headers["content-type"] == PROBLEM
    # Parameters of the wrong type are refused by Prefect's check against the flow's schema.
    odd = api.call("POST", path, Role.OPERATOR, {"parameters": {"symbols": "not-a-list" * 3}})
    _problem(odd, 422, "invalid_parameters")
    bad_name = api.call("POST", f"/v1/deployments/{FLOW}/a%2F..%2Fb/runs", Role.OPERATOR, body)
    assert bad_name.status_code in (404, 422), bad_name.text


def test_an_operator_starts_a_run_follows_it_to_a_final_state_and_is_audited(
    api: Api, prefect: PrefectTarget, redis_connection: RedisConnection, redis_namespace: str
) -> None:
    parameters = {"symbols": ["AAPL"], "config": {"fast_period": 10, "slow_period": 30}}
    path = f"/v1/deployments/{FLOW}/{DEPLOYMENT}/runs"

    started = api.call("POST", path, Role.OPERATOR, {"parameters": parameters})

    assert started.status_code == 201, started.text
    run = started.json()
    assert run["state_type"] in ("SCHEDULED", "PENDING", "RUNNING")
    # Prefect merges the deployment's defaults under what was sent.
    assert run["parameters"] | parameters == run["parameters"]
    audit = redis_connection.client.xrange(f"{redis_namespace}:api:audit")
    (entry,) = [fields for _, fields in audit]
    assert entry[b"caller"] == b"test-operator"
    assert entry[b"flow_run_id"] == run["id"].encode()
    assert entry[b"deployment"] == f"{FLOW}/{DEPLOYMENT}".encode()
    headers = prefect.headers()
    in_prefect = httpx.get(f"{prefect.url}/flow_runs/{run['id']}", headers=headers, timeout=10)
    assert "api:test-operator" in in_prefect.json()["tags"]
    deadline = time.monotonic() + RUN_TIMEOUT
    while True:
        followed = api.call("GET", f"/v1/flow-runs/{run['id']}", Role.OPERATOR)
        assert followed.status_code == 200, followed.text
        if followed.json()["state_type"] in TERMINAL or time.monotonic() > deadline:
            break
        time.sleep(1.0)
    final = followed.json()
    assert (final["state_type"], final["state_name"]) == ("COMPLETED", "Completed")
    assert final["start_time"] and final["end_time"]
    assert final["parameters"] == run["parameters"]


def test_an_unreachable_or_unset_prefect_is_a_quick_503(
    tmp_path: Path, redis_connection: RedisConnection, redis_namespace: str
) -> None:
    # A port nobody listens on, and one that accepts but never answers: both bounded.
    silent = socket.socket()
    silent.bind((services.HOST, 0))
    silent.listen(1)
    try:
        for url in (
            f"http://{services.HOST}:{free_port()}/api",
            f"http://{services.HOST}:{silent.getsockname()[1]}/api",
            None,
        ):
            api = _api(tmp_path / str(hash(url)), redis_connection, redis_namespace,
                       PrefectTarget(url, "u:p"))  # fmt: skip
            began = time.monotonic()
            _problem(api.call("GET", "/v1/deployments", Role.ADMIN), 503, "prefect_unavailable")
            body = {"parameters": {}}
            start = api.call("POST", f"/v1/deployments/{FLOW}/{DEPLOYMENT}/runs", Role.ADMIN, body)
            _problem(start, 503, "prefect_unavailable")
            assert time.monotonic() - began < 15.0
    finally:
        silent.close()
