"""Schemathesis over the whole OpenAPI document, against the real app on real Redis with an
admin token: no answer is a server error, and every answer matches the document (its status
code, its content type, its schema).

The event streams are left out here: they never end by design, so a generated request to
them would not return; ``test_api.py`` covers them over a real server. The run routes talk to
a real Prefect server (with an auth string and one deployment, but no worker: the runs started
stay scheduled), so their answers are Prefect's, not a 503 for a Prefect that is absent.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from core.adapters.redis_server import RedisConnection
from core.adapters.redis_store import RedisStore
from core.model import Fill, Lineage, Order, Side, Signal
from strategy_engine import credentials, services
from strategy_engine.api import create_app
from strategy_engine.api.auth import Role, TokenFile
from strategy_engine.api.routes_runs import PrefectTarget

pytestmark = pytest.mark.integration

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
TOKEN: dict[str, str] = {}
EXAMPLES = 300
"""Requests per generation mode, over all operations (the run takes well under a minute)."""


@pytest.fixture(scope="module")
def prefect(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectTarget]:
    """A Prefect server with an auth string and the ma-crossover deployment."""
    layout = services.Layout(tmp_path_factory.mktemp("stack") / "var")
    auth = credentials.generate().prefect_auth_string
    with socket.socket() as probe:
        probe.bind((services.HOST, 0))
        port = int(probe.getsockname()[1])
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.delenv("PREFECT_API_AUTH_STRING", raising=False)
    monkeypatch.setenv("PWD", str(layout.var_dir.parent))
    try:
        launch = services.start_prefect_server(services.HOST, port, layout, auth_string=auth)
        api_url = f"{services.wait_for_prefect(launch, layout, auth_string=auth).url}/api"
        services.ensure_work_pool(api_url, services.POOL, layout, auth_string=auth)
        names = ("register-and-promote/ma-crossover",)
        services.deploy_all(api_url, layout, names=names, auth_string=auth)
        yield PrefectTarget(api_url, auth)
    finally:
        services.down(layout, echo=lambda _line: None)
        monkeypatch.undo()


@pytest.fixture
def api_schema(
    tmp_path: Path, redis_connection: RedisConnection, redis_namespace: str, mlflow_dir: Path,
    prefect: PrefectTarget,
) -> Any:  # fmt: skip
    tokens = TokenFile(tmp_path / "tokens.json")
    TOKEN["admin"] = tokens.create("schemathesis", Role.ADMIN)
    store = RedisStore(redis_connection.client, redis_namespace)
    # Something to read: signals, orders, fills, a status, a dead letter, a context.
    store.publish_signals([
        Signal(strategy="s.a", symbol="AAPL", ts_event=i, target_position=1.0,
               lineage=Lineage(model_name="s.a"))
        for i in range(30)
    ])  # fmt: skip
    store.record_orders([Order(order_id="o1", symbol="AAPL", side=Side.BUY, quantity=1,
                               ts_event=1)])  # fmt: skip
    store.record_fills([Fill(fill_id="f1", order_id="o1", symbol="AAPL", side=Side.BUY,
                             quantity=1, price=1.0, fee=0.0, ts_event=1)])  # fmt: skip
    store.save_report("status:core-1", {"core": "core-1", "heartbeat_ns": 1, "state": "running",
                                        "risk_mode": "normal", "risk_limits": {}})  # fmt: skip
    store.dead_letter("md:x#1", "bad", b"x", code="stale")
    store.set_context("regime", {"label": "calm"})
    app = create_app(redis_connection.client, tokens, namespace=redis_namespace,
                     control_key=lambda: bytes(range(32)), rate=1e6, burst=1_000_000,
                     prefect=prefect)  # fmt: skip
    return schemathesis.openapi.from_asgi("/openapi.json", app).exclude(path_regex="^/v1/streams/")


# The pytest plugin's lazy loader (schemathesis.pytest.from_fixture) does not run under this
# pytest (it reads a node attribute pytest 9 removed), so the whole document's strategy is
# driven by Hypothesis directly: one test per generation mode, every operation in each.
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_every_operation_answers_its_documented_schema(api_schema: Any, mode: Any) -> None:
    headers = {"Authorization": f"Bearer {TOKEN['admin']}"}
    seen: set[str] = set()

    @given(case=api_schema.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck),
              database=None)  # fmt: skip
    def run(case: Any) -> None:
        seen.add(f"{case.method} {case.path}")
        case.call_and_validate(headers=headers, checks=CHECKS)

    run()
    assert len(seen) >= 10, seen
