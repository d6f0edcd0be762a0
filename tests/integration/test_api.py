"""The HTTP API as its clients use it: the real app over real Redis (and a real MLflow store),
through Starlette's test client, and a real uvicorn for the event streams.

Hostile input is normal input: every route answers its model or a problem document with a
stable code, never a 500; every write route refuses a reader token (the routes are read from
the app, so a new one is covered without editing this file).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from core import codec
from core.adapters.redis_server import RedisConnection
from core.adapters.redis_store import RedisStore
from core.model import Bar, Fill, Lineage, Order, Position, Side, Signal
from core.runtime.control_signing import ControlMessage, ControlVerifier
from core.runtime.ingest import RejectCode
from strategy_engine.api import create_app
from strategy_engine.api.auth import Role, TokenFile
from strategy_engine.commands.api import openapi_text
from tests.evidence import validated
from tests.fixtures_processes import core_command, core_environment, started

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
KEY = bytes(range(32))
PROBLEM = "application/problem+json"
NOW = time.time_ns()


class Api:
    """The app under test, its Redis namespace, and one token per role."""

    def __init__(self, app: Any, store: RedisStore, tokens: dict[Role, str]) -> None:
        self.app, self.store, self.tokens = app, store, tokens
        self.client = TestClient(app)

    def auth(self, role: Role) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    def get(self, path: str, role: Role = Role.READER, **kwargs: Any) -> httpx.Response:
        return self.client.get(path, headers=self.auth(role), **kwargs)

    def post(self, path: str, role: Role, body: Any) -> httpx.Response:
        return self.client.post(path, headers=self.auth(role), json=body)


def _tokens(path: Path) -> tuple[TokenFile, dict[Role, str]]:
    tokens = TokenFile(path)
    return tokens, {role: tokens.create(f"test-{role}", role) for role in Role}


@pytest.fixture
def api(
    tmp_path: Path, redis_connection: RedisConnection, redis_namespace: str, mlflow_dir: Path
) -> Api:
    tokens, issued = _tokens(tmp_path / "api" / "tokens.json")
    app = create_app(
        redis_connection.client, tokens, namespace=redis_namespace, control_key=lambda: KEY
    )
    return Api(app, RedisStore(redis_connection.client, redis_namespace), issued)


def _routes(app: Any) -> list[tuple[str, str]]:
    """Every route of the app, from its own OpenAPI document (so a new one is included)."""
    found = []
    for path, operations in app.openapi()["paths"].items():
        found += [(m.upper(), path.replace("{feed}", "feed-1")) for m in sorted(operations)]
    return found


def _is_problem(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["status"] == status and body["code"] == code, body


# --- authentication, roles, limits, problems ---------------------------------------------------


OPEN = ("/v1/health", "/", "/dashboard")
"""The routes without a token: the health check and the dashboard's page (HTML, no data)."""


def test_health_is_open_and_every_other_route_wants_a_token(api: Api) -> None:
    assert api.client.get("/v1/health").json() == {"status": "ok", "version": "1"}
    routes = [r for r in _routes(api.app) if r[1] not in OPEN]
    assert len(routes) >= 19
    for method, path in routes:
        for headers in ({}, {"Authorization": "Bearer not-a-token"}, {"Authorization": "Basic x"}):
            response = api.client.request(method, path, headers=headers, json={})
            _is_problem(response, 401, "unauthorized")
            assert response.headers["www-authenticate"] == "Bearer"


def test_every_write_route_refuses_a_reader_token_and_writes_nothing(api: Api) -> None:
    writes = [(m, p) for m, p in _routes(api.app) if m not in ("GET", "HEAD")]
    assert {p for _, p in writes} >= {"/v1/control/halt", "/v1/feeds/feed-1/events"}
    for method, path in writes:
        response = api.client.request(method, path, headers=api.auth(Role.READER), json={})
        _is_problem(response, 403, "forbidden")
    assert api.store.read_control_log() == []
    assert list(api.store.client.scan_iter(match=f"{api.store.namespace}:*")) == []


def test_operators_steer_producers_ingest_and_neither_does_the_other(api: Api) -> None:
    _is_problem(api.post("/v1/control/resume", Role.PRODUCER, {}), 403, "forbidden")
    _is_problem(api.post("/v1/feeds/f/events", Role.OPERATOR, {"events": []}), 403, "forbidden")
    assert api.post("/v1/control/resume", Role.OPERATOR, {}).status_code == 200
    assert api.post("/v1/feeds/f/events", Role.PRODUCER, {"events": []}).status_code == 200
    assert api.post("/v1/control/resume", Role.ADMIN, {}).status_code == 200


def test_a_revoked_token_stops_working_without_a_restart(api: Api, tmp_path: Path) -> None:
    assert api.get("/v1/cores").status_code == 200
    assert TokenFile(tmp_path / "api" / "tokens.json").revoke(f"test-{Role.READER}")
    _is_problem(api.get("/v1/cores"), 401, "unauthorized")


def test_the_token_file_holds_digests_only_and_is_owner_only(api: Api, tmp_path: Path) -> None:
    path = tmp_path / "api" / "tokens.json"
    text = path.read_text()
    assert all(token not in text for token in api.tokens.values())
    assert path.stat().st_mode & 0o077 == 0


def test_each_token_is_rate_limited_on_its_own(
    tmp_path: Path, redis_connection: RedisConnection, redis_namespace: str
) -> None:
    tokens, issued = _tokens(tmp_path / "tokens.json")
    app = create_app(redis_connection.client, tokens, namespace=redis_namespace, rate=0.01,
                     burst=3, control_key=lambda: KEY)  # fmt: skip
    client = TestClient(app)
    reader = {"Authorization": f"Bearer {issued[Role.READER]}"}
    assert [client.get("/v1/cores", headers=reader).status_code for _ in range(3)] == [200] * 3
    limited = client.get("/v1/cores", headers=reader)
    _is_problem(limited, 429, "rate_limited")
    assert int(limited.headers["retry-after"]) >= 1
    admin = {"Authorization": f"Bearer {issued[Role.ADMIN]}"}
    assert client.get("/v1/cores", headers=admin).status_code == 200


def test_errors_are_problem_documents_with_stable_codes(api: Api) -> None:
    _is_problem(api.get("/v1/nothing-here"), 404, "not_found")
    _is_problem(api.client.delete("/v1/signals", headers=api.auth(Role.ADMIN)), 405,
                "method_not_allowed")  # fmt: skip
    _is_problem(api.get("/v1/signals", params={"limit": 1001}), 422, "invalid_request")
    _is_problem(api.get("/v1/signals", params={"cursor": "x"}), 422, "invalid_request")
    # Found by Schemathesis: an id past 64 bits reached Redis, which answered an error.
    too_far = {"cursor": "99999999999999999999-0"}
    _is_problem(api.get("/v1/signals", params=too_far), 422, "invalid_cursor")
    _is_problem(api.get("/v1/streams/fills", params=too_far), 422, "invalid_cursor")
    for hostile in ("x", "1-2-3", "-1-0", "9" * 40):
        header = {**api.auth(Role.READER), "Last-Event-ID": hostile}
        stream = api.client.get("/v1/streams/signals", headers=header)
        assert stream.status_code == 422 and stream.headers["content-type"] == PROBLEM
    last = f"{2**64 - 1}-{2**64 - 1}"
    assert api.get("/v1/fills", params={"cursor": last}).json() == {
        "items": [],
        "next_cursor": None,
    }
    _is_problem(api.get("/v1/orders", params={"core": "a:b*"}), 422, "invalid_request")
    _is_problem(api.post("/v1/control/halt", Role.ADMIN, {"flatten": "x", "evil": 1}), 422,
                "invalid_request")  # fmt: skip
    bad_json = api.client.post("/v1/control/halt", headers=api.auth(Role.ADMIN),
                               content=b"{", )  # fmt: skip
    assert bad_json.status_code == 422 and bad_json.headers["content-type"] == PROBLEM
    deep = b"[" * 100_000 + b"]" * 100_000
    response = api.client.post("/v1/feeds/f/events", headers={
        **api.auth(Role.ADMIN), "content-type": "application/json"}, content=deep)  # fmt: skip
    assert response.status_code in (400, 422) and response.headers["content-type"] == PROBLEM


def test_a_body_over_one_mebibyte_is_refused_declared_or_streamed(api: Api) -> None:
    headers = {**api.auth(Role.ADMIN), "content-type": "application/json"}
    big = b'{"events": ["' + b"x" * (1 << 20) + b'"]}'
    _is_problem(api.client.post("/v1/feeds/f/events", headers=headers, content=big), 413,
                "body_too_large")  # fmt: skip

    def chunks() -> Iterator[bytes]:
        yield big[: 1 << 19]
        yield big[1 << 19 :]

    response = api.client.post("/v1/feeds/f/events", headers=headers, content=chunks())
    _is_problem(response, 413, "body_too_large")
    assert api.store.client.xlen(f"{api.store.namespace}:md:f") == 0


def test_no_cors_header_is_ever_sent(api: Api) -> None:
    origin = {"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"}
    preflight = api.client.options("/v1/signals", headers=origin)
    assert preflight.status_code in (401, 405)
    answer = api.client.get("/v1/signals", headers={**origin, **api.auth(Role.READER)})
    assert answer.status_code == 200
    assert not any(h.startswith("access-control-") for h in (*preflight.headers, *answer.headers))


# --- reads -----------------------------------------------------------------------------------


def _signal(i: int, strategy: str = "s.a", symbol: str = "AAPL") -> Signal:
    return Signal(strategy=strategy, symbol=symbol, ts_event=1_000 + i, target_position=i / 10,
                  lineage=Lineage(model_name=strategy, model_version="3"))  # fmt: skip


def test_signals_page_with_a_cursor_and_filter_by_strategy_symbol_and_time(api: Api) -> None:
    signals = [_signal(i, f"s.{'ab'[i % 2]}", ("AAPL", "MSFT", "GOOG")[i % 3]) for i in range(60)]
    api.store.publish_signals(signals)
    ids = [e[0].decode() for e in api.store.client.xrange(f"{api.store.namespace}:signals")]
    seen, cursor = [], None
    while True:
        page = api.get("/v1/signals", params={"limit": 7, **({"cursor": cursor} if cursor else {})})
        body = page.json()
        seen += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert [s["id"] for s in seen] == ids
    assert [s["ts_event"] for s in seen] == [s.ts_event for s in signals]
    assert seen[0]["lineage"] == {"model_name": "s.a", "model_version": "3", "validation_run": ""}

    filtered = api.get("/v1/signals", params={"strategy": "s.b", "symbol": "MSFT",
                                              "since": 1_010, "until": 1_040}).json()  # fmt: skip
    expected = [s.ts_event for s in signals if s.strategy == "s.b" and s.symbol == "MSFT"
                and 1_010 <= s.ts_event <= 1_040]  # fmt: skip
    assert [s["ts_event"] for s in filtered["items"]] == expected and expected
    assert filtered["next_cursor"] is None


def test_orders_fills_and_positions_of_a_core(api: Api) -> None:
    store = api.store
    orders = [Order(order_id=f"o{i}", symbol="AAPL", side=Side.BUY, quantity=1 + i, ts_event=i,
                    strategy="s.a") for i in range(5)]  # fmt: skip
    fills = [Fill(fill_id=f"f{i}", order_id=f"o{i}", symbol="AAPL", side=Side.BUY,
                  quantity=1 + i, price=100.0, fee=0.1, ts_event=i, strategy="s.a")
             for i in range(5)]  # fmt: skip
    store.record_orders(orders)
    store.record_fills(fills)
    store.save_positions([Position(symbol="AAPL", quantity=15, avg_price=100.0,
                                   realized_pnl=0.0, ts_event=4)])  # fmt: skip
    got = api.get("/v1/orders", params={"limit": 3}).json()
    assert [o["order_id"] for o in got["items"]] == ["o0", "o1", "o2"] and got["next_cursor"]
    rest = api.get("/v1/orders", params={"cursor": got["next_cursor"]}).json()
    assert [o["order_id"] for o in rest["items"]] == ["o3", "o4"]
    assert [f["fill_id"] for f in api.get("/v1/fills").json()["items"]] == [
        f.fill_id for f in fills
    ]
    assert api.get("/v1/fills", params={"core": "core-2"}).json()["items"] == []
    positions = api.get("/v1/positions").json()
    assert positions["positions"] == [{"symbol": "AAPL", "quantity": 15, "avg_price": 100.0,
                                       "realized_pnl": 0.0, "ts_event": 4}]  # fmt: skip


def test_undecodable_entries_are_skipped_not_a_server_error(api: Api) -> None:
    key = f"{api.store.namespace}:signals"
    api.store.client.xadd(key, {"msg": b"\xff not json"})
    api.store.client.xadd(key, {"other": b"x"})
    api.store.publish_signals([_signal(1)])
    api.store.client.hset(f"{api.store.namespace}:reports", "status:bad", b"[1, 2")
    api.store.client.hset(f"{api.store.namespace}:reports", "status:list", b"[1]")
    body = api.get("/v1/signals").json()
    assert [s["ts_event"] for s in body["items"]] == [1_001]
    assert api.get("/v1/cores").json() == []


def test_cores_risk_deadletters_and_contexts(api: Api) -> None:
    store = api.store
    status = {"core": "core-1", "heartbeat_ns": NOW, "state": "running",
              "active_set": [{"name": "strategy.ma_crossover", "version": "2",
                              "alias": "champion"}],
              "risk_mode": "normal", "halt_reason": None, "drawdown": 0.01, "equity": 1e6,
              "risk_limits": {"max_drawdown": 0.2}}  # fmt: skip
    store.save_report("status:core-1", status)
    store.save_report("summary", {"not": "a status"})
    cores = api.get("/v1/cores").json()
    assert [c["core"] for c in cores] == ["core-1"]
    assert cores[0]["active_set"][0]["alias"] == "champion" and cores[0]["state"] == "running"
    assert cores[0]["status"] == status
    risk = api.get("/v1/risk").json()["cores"][0]
    assert risk == {"core": "core-1", "risk_mode": "normal", "halt_reason": None,
                    "drawdown": 0.01, "equity": 1e6, "risk_limits": {"max_drawdown": 0.2},
                    "heartbeat_ns": NOW}  # fmt: skip

    store.dead_letter("md:x#1-0", "bad bar", b"raw", code="high_below_low")
    store.dead_letter("md:x#2-0", "bad bar", b"raw", code="high_below_low")
    store.dead_letter("md:x#3-0", "stale", b"raw", code="stale")
    letters = api.get("/v1/deadletters", params={"limit": 2}).json()
    assert letters["by_code"] == {"high_below_low": 2, "stale": 1}
    assert [d["code"] for d in letters["latest"]] == ["stale", "high_below_low"]
    assert "raw" not in letters["latest"][0]

    store.set_context("regime", {"label": "bull", "p": 0.7})
    store.set_context("macro", {"stance": "tight"})
    assert api.get("/v1/contexts").json() == {
        "contexts": {"regime": {"label": "bull", "p": 0.7}, "macro": {"stance": "tight"}}
    }


def test_strategies_list_the_catalogue(api: Api) -> None:
    from core.strategies.catalogue import describe, strategy_types

    expected = json.loads(codec.dumps([describe(cls) for cls in strategy_types()]))
    assert api.get("/v1/strategies").json() == expected


def test_registry_lists_registered_strategies_with_aliases_and_lineage(api: Api) -> None:
    from registry.strategy_registry import StrategyRegistry

    registry = StrategyRegistry()
    config = {"fast_period": 5, "slow_period": 20, "ma_type": "sma"}
    version = registry.register("ma_crossover", config, data_hash="sha256:aapl", symbols=("AAPL",),
                                validation=validated(config),
                                metrics={"sharpe": 0.8, "max_drawdown": -0.1}).version  # fmt: skip
    registry.promote("strategy.ma_crossover", version)
    listing = api.get("/v1/registry").json()
    assert listing == json.loads(codec.dumps(registry.list_strategies()))
    assert listing[0]["aliases"] == {"champion": version}
    assert listing[0]["versions"][0]["tags"]["data_hash"] == "sha256:aapl"


def test_metrics_and_readiness(api: Api) -> None:
    api.store.save_report("status:core-1", {"core": "core-1", "heartbeat_ns": NOW})
    metrics = api.get("/metrics")
    assert metrics.status_code == 200 and "strategy_engine_orders_stored" in metrics.text
    assert api.get("/v1/ready").json() == {"ready": True, "redis": "ok"}


# --- the dashboard ---------------------------------------------------------------------------


def test_the_dashboard_page_is_open_holds_no_data_and_runs_only_its_own_script(api: Api) -> None:
    from strategy_engine.dashboard.page import PAGE_CSP

    api.store.save_report("status:core-1", {"core": "core-1", "heartbeat_ns": NOW,
                                            "equity": 123456.5})  # fmt: skip
    for path in ("/", "/dashboard"):
        page = api.client.get(path)
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert page.headers["content-security-policy"] == PAGE_CSP
        assert "123456" not in page.text and "core-1" not in page.text  # the page holds no data
        assert "/v1/dashboard" in page.text and "sessionStorage" in page.text
    # The inline script and style are allowed by their hashes only: nothing else runs.
    assert "'unsafe-inline'" not in PAGE_CSP and "'unsafe-eval'" not in PAGE_CSP
    assert PAGE_CSP.count("'sha256-") == 2 and "connect-src 'self'" in PAGE_CSP
    assert "default-src 'none'" in PAGE_CSP and "frame-ancestors 'none'" in PAGE_CSP
    # Every other answer keeps the API's strict policy.
    assert api.get("/v1/dashboard").headers["content-security-policy"] == (
        "default-src 'none'; frame-ancestors 'none'"
    )


def test_the_dashboard_state_needs_a_reader_token_and_shows_the_core(api: Api) -> None:
    store = api.store
    status = {"core": "core-1", "heartbeat_ns": NOW, "equity": 1e6, "risk_mode": "normal",
              "active_set": [{"name": "strategy.ma_crossover", "version": "2",
                              "alias": "champion"}]}  # fmt: skip
    store.save_report("status:core-1", status)
    store.save_report("status:core-2", {"core": "core-2", "heartbeat_ns": NOW,
                                        "active_set": "not a list"})  # fmt: skip
    store.publish_signals([_signal(1)])
    store.dead_letter("md:x#1-0", "bad bar", b"raw", code="high_below_low")
    store.set_context("regime", {"label": "bull"})

    for headers in ({}, {"Authorization": "Bearer not-a-token"}):
        _is_problem(api.client.get("/v1/dashboard", headers=headers), 401, "unauthorized")
    for role in Role:  # every role reads
        assert api.get("/v1/dashboard", role).status_code == 200
    state = api.get("/v1/dashboard").json()
    assert state["core"] == "core-1" and state["namespace"] == store.namespace
    assert state["status"]["equity"] == 1e6 and state["status"]["heartbeat_age_s"] >= 0
    assert state["active_set"] == status["active_set"]
    assert state["streams"]["signals"] == 1 and state["streams"]["deadletter"] == 1
    assert state["signals"][0]["strategy"] == "s.a" and state["targets"][0]["symbol"] == "AAPL"
    assert state["rejected_by_reason"] == {"high_below_low": 1}
    assert state["context"] == {"regime": {"label": "bull"}}
    # Another core by name; an odd status there reads as an empty active set, not a 500.
    other = api.get("/v1/dashboard", params={"core": "core-2"}).json()
    assert other["core"] == "core-2" and other["active_set"] == []
    missing = api.get("/v1/dashboard", params={"core": "core-9"}).json()
    assert missing["status"] is None and missing["positions"] == []
    _is_problem(api.get("/v1/dashboard", params={"core": "a:b"}), 422, "invalid_request")


# --- act -------------------------------------------------------------------------------------


def test_control_sends_a_signed_message_a_core_verifier_accepts_naming_the_caller(
    api: Api,
) -> None:
    pubsub = api.store.client.pubsub()
    pubsub.subscribe(f"{api.store.namespace}:control")
    assert pubsub.get_message(timeout=2)["type"] == "subscribe"
    sent = [
        ("halt", {"flatten": True, "reason": "drill"}),
        ("resume", {}),
        ("weights", {"weights": {"strategy.ma_crossover": 0.5}}),
        ("reload", {}),
    ]
    verifier = ControlVerifier(KEY)
    for action, body in sent:
        answer = api.post(f"/v1/control/{action}", Role.OPERATOR, body)
        assert answer.json() == {
            "action": action,
            "namespace": api.store.namespace,
            "cores_received": 1,
            "sender": f"api:test-{Role.OPERATOR}",
        }
        message = pubsub.get_message(timeout=2)
        verified = verifier.verify(message["data"])
        assert isinstance(verified, ControlMessage), verified
        assert verified.sender == f"api:test-{Role.OPERATOR}"
        assert verified.body == {"action": action, **body, "caller": f"test-{Role.OPERATOR}"}
        # A replay of the same bytes is refused: the nonce is single-use.
        assert not isinstance(verifier.verify(message["data"]), ControlMessage)
    pubsub.close()
    assert [m["action"] for m in api.store.read_control_log()] == [a for a, _ in sent]
    assert {m["caller"] for m in api.store.read_control_log()} == {f"test-{Role.OPERATOR}"}


def test_weights_that_are_not_finite_or_named_oddly_are_refused(api: Api) -> None:
    headers = {**api.auth(Role.ADMIN), "content-type": "application/json"}
    for text in (b'{"weights": {"s": NaN}}', b'{"weights": {"s": 1e400}}',
                 b'{"weights": {"s": -Infinity}}'):  # fmt: skip
        bad = api.client.post("/v1/control/weights", headers=headers, content=text)
        assert bad.status_code == 422 and bad.headers["content-type"] == PROBLEM, bad.text
    _is_problem(api.post("/v1/control/weights", Role.ADMIN, {"weights": {"a b": 1.0}}), 422,
                "invalid_weights")  # fmt: skip
    assert api.store.read_control_log() == []


# --- ingest ----------------------------------------------------------------------------------


def _bar(i: int, **changes: Any) -> dict[str, Any]:
    data = {"symbol": "AAPL", "ts_event": NOW - 10**12 + i * 60 * 10**9, "open": 100.0,
            "high": 101.0, "low": 99.0, "close": 100.5, "volume": 1000.0, **changes}  # fmt: skip
    return {"v": 1, "kind": "bar", "data": data}


def test_ingest_writes_valid_events_and_refuses_hostile_ones_with_the_boundary_codes(
    api: Api,
) -> None:
    signal = json.loads(codec.encode(_signal(1)))
    events: list[Any] = [
        _bar(0),
        _bar(1, high=98.0),  # high below low
        _bar(2, close=-1.0),  # non-positive price
        signal,  # not market data
        {"v": 2, "kind": "bar", "data": _bar(3)["data"]},  # unknown schema version
        {"v": 1, "kind": "evil", "data": {}},
        {"v": 1, "kind": "bar", "data": {**_bar(4)["data"], "extra": 1}},
        _bar(5, ts_event=NOW + 10 * 86_400 * 10**9),  # far in the future
        _bar(6, symbol="AA PL"),
        _bar(1),  # back in time after bar 6 was refused: bar 0 is the last accepted
        "a string",
        {
            "v": 1,
            "kind": "quote",
            "data": {
                "symbol": "AAPL",
                "ts_event": NOW - 10**9,
                "bid_price": 101.0,
                "bid_size": 1.0,
                "ask_price": 100.0,
                "ask_size": 1.0,
            },
        },  # crossed
        {
            "v": 1,
            "kind": "news",
            "data": {"ts_event": NOW - 10**9, "text": "hello", "symbols": ["AAPL"]},
        },
        _bar(7),
    ]
    answer = api.post("/v1/feeds/ext-1/events", Role.PRODUCER, {"events": events})
    assert answer.status_code == 200, answer.text
    result = answer.json()
    codes = [item["code"] for item in result["items"]]
    assert codes == [
        None, RejectCode.HIGH_BELOW_LOW, RejectCode.NON_POSITIVE_PRICE,
        RejectCode.KIND_NOT_ALLOWED, RejectCode.UNKNOWN_SCHEMA_VERSION, RejectCode.UNKNOWN_KIND,
        RejectCode.MALFORMED_MESSAGE, RejectCode.FUTURE_TIME, RejectCode.BAD_NAME, None,
        RejectCode.MALFORMED_ENVELOPE, RejectCode.CROSSED_BOOK, None, None,
    ]  # fmt: skip
    assert result["accepted"] == 4 and result["rejected"] == 10
    key = f"{api.store.namespace}:md:ext-1"
    assert result["stream"] == key
    stored = api.store.client.xrange(key)
    assert [e[0].decode() for e in stored] == [i["id"] for i in result["items"] if i["accepted"]]
    written = [codec.decode(fields[b"msg"]) for _, fields in stored]
    assert [type(m).__name__ for m in written] == ["Bar", "Bar", "NewsItem", "Bar"]
    assert written[0] == Bar(**_bar(0)["data"])
    assert all(int(fields[b"t_pub"]) > 0 and set(fields) == {b"msg", b"t_pub"}
               for _, fields in stored)  # fmt: skip


def test_ingest_bounds_the_batch_and_the_feed_name(api: Api) -> None:
    _is_problem(api.post("/v1/feeds/f/events", Role.PRODUCER, {"events": [_bar(0)] * 1001}),
                422, "invalid_request")  # fmt: skip
    _is_problem(api.post("/v1/feeds/bad%20name/events", Role.PRODUCER, {"events": []}), 422,
                "invalid_request")  # fmt: skip
    _is_problem(api.post("/v1/feeds/f/events", Role.PRODUCER, [_bar(0)]), 422, "invalid_request")


# --- the OpenAPI contract ------------------------------------------------------------------------


def test_the_committed_openapi_document_is_the_apps() -> None:
    committed = (REPO / "docs" / "openapi.json").read_text()
    assert committed == openapi_text(), (
        "docs/openapi.json differs from the app's; regenerate it with "
        "`strategy-engine api --write-openapi docs/openapi.json` and review the diff"
    )


# --- streams ---------------------------------------------------------------------------------


class Served:
    """The app under a real uvicorn on a free loopback port, in a thread."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        from strategy_engine.api.server import config

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.server = uvicorn.Server(config(app, "127.0.0.1", self.port))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "uvicorn did not start"
            time.sleep(0.02)
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)


@pytest.fixture
def served(api: Api) -> Iterator[Served]:
    server = Served(api.app)
    yield server
    server.stop()


def _read_events(lines: Iterator[str], want: int, deadline_s: float = 20.0) -> list[dict[str, Any]]:
    """Up to ``want`` events (id, event, data) from an open event stream's lines."""
    events: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    deadline = time.monotonic() + deadline_s
    for line in lines:
        assert time.monotonic() < deadline, f"only {len(events)} events in {deadline_s} s"
        if not line:
            if "data" in current:
                events.append(current)
                if len(events) == want or current.get("event") in ("overflow", "error"):
                    return events
            current = {}
        elif line.startswith(("id:", "event:", "data:")):
            name, _, value = line.partition(":")
            current[name] = value.strip()
    return events


def test_a_signal_stream_resumes_after_a_reconnect_and_loses_nothing(
    api: Api, served: Served
) -> None:
    store = api.store
    store.publish_signals([_signal(i) for i in range(40)])
    headers = api.auth(Role.READER)
    received: list[dict[str, Any]] = []
    written_during: list[Signal] = []

    def write_more() -> None:
        # Written while the client is connected, then while it is away, then after.
        for i in range(40, 100):
            batch = [_signal(i, symbol=("AAPL", "MSFT")[i % 2])]
            store.publish_signals(batch)
            written_during.extend(batch)
            time.sleep(0.005)

    writer = threading.Thread(target=write_more)
    with httpx.Client(base_url=served.url, timeout=20) as client:
        params = {"cursor": "0-0"}
        with client.stream("GET", "/v1/streams/signals", headers=headers, params=params) as r:
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/event-stream")
            lines = r.iter_lines()
            received += _read_events(lines, 25)
            writer.start()
            received += _read_events(lines, 20)
        # Disconnected; the writer goes on. Reconnect from the last id seen.
        time.sleep(0.2)
        last = {"Last-Event-ID": received[-1]["id"], **headers}
        writer.join()
        total = store.client.xlen(f"{store.namespace}:signals")
        assert total == 100
        with client.stream("GET", "/v1/streams/signals", headers=last) as r:
            received += _read_events(r.iter_lines(), total - len(received))
    ids = [e[0].decode() for e in store.client.xrange(f"{store.namespace}:signals")]
    assert [e["id"] for e in received] == ids
    assert all(e["event"] == "signal" for e in received)
    assert [json.loads(e["data"])["ts_event"] for e in received] == [1_000 + i for i in range(100)]


def test_a_client_subscribed_during_a_core_replay_gets_exactly_its_signals_across_a_reconnect(
    api: Api, served: Served, redis_connection: RedisConnection, tmp_path: Path, mlflow_dir: Path
) -> None:
    # The issue's own test: a real core replays the shipped bars into this namespace while a
    # client follows the stream, drops, and comes back with Last-Event-ID.
    namespace = api.store.namespace
    key = f"{namespace}:signals"
    argv = core_command(
        "--replay", "equities_daily_stocknet88", "--fast", "--until-end",
        "--strategies", "ma_crossover,breakout", "--namespace", namespace, "--no-mlflow",
    )  # fmt: skip
    env = core_environment(redis_connection.url, tmp_path / "var", mlflow_dir)
    headers = api.auth(Role.READER)
    received: list[dict[str, Any]] = []
    with httpx.Client(base_url=served.url, timeout=60) as client, started(argv, env) as core:
        with client.stream(
            "GET", "/v1/streams/signals", headers=headers, params={"cursor": "0-0"}
        ) as first:
            received += _read_events(first.iter_lines(), 50, deadline_s=120)
        assert core.poll() is None, "the replay ended before the client dropped"
        assert core.wait(timeout=300) == 0, core.stderr.read() if core.stderr else ""
        total = api.store.client.xlen(key)
        assert total > len(received) > 0
        resume = {"Last-Event-ID": received[-1]["id"], **headers}
        with client.stream("GET", "/v1/streams/signals", headers=resume) as again:
            received += _read_events(again.iter_lines(), total - len(received), deadline_s=60)
    ids = [entry[0].decode() for entry in api.store.client.xrange(key)]
    assert [event["id"] for event in received] == ids
    assert all(event["event"] == "signal" for event in received)


def test_a_stream_without_a_cursor_starts_now_and_filters(api: Api, served: Served) -> None:
    store = api.store
    store.publish_signals([_signal(i) for i in range(5)])  # before: not sent
    params = {"symbol": "MSFT"}
    with (
        httpx.Client(base_url=served.url, timeout=20) as client,
        client.stream(
            "GET", "/v1/streams/signals", headers=api.auth(Role.READER), params=params
        ) as r,
    ):
        time.sleep(0.3)
        store.publish_signals([_signal(i, symbol=("AAPL", "MSFT")[i % 2]) for i in range(5, 15)])
        events = _read_events(r.iter_lines(), 5)
    assert [json.loads(e["data"])["ts_event"] for e in events] == [1_005, 1_007, 1_009, 1_011,
                                                                   1_013]  # fmt: skip


def test_the_fill_stream_follows_a_cores_fills(api: Api, served: Served) -> None:
    fills = [Fill(fill_id=f"f{i}", order_id=f"o{i}", symbol="AAPL", side=Side.SELL, quantity=1,
                  price=10.0, fee=0.0, ts_event=i) for i in range(3)]  # fmt: skip
    api.store.record_fills(fills)
    with (
        httpx.Client(base_url=served.url, timeout=20) as client,
        client.stream(
            "GET", "/v1/streams/fills", headers=api.auth(Role.READER), params={"cursor": "0-0"}
        ) as r,
    ):
        events = _read_events(r.iter_lines(), 3)
    assert [json.loads(e["data"])["fill_id"] for e in events] == ["f0", "f1", "f2"]
    assert {e["event"] for e in events} == {"fill"}


def test_a_client_that_stops_reading_is_dropped_and_resumes_where_it_stopped(
    redis_connection: RedisConnection, redis_namespace: str, tmp_path: Path
) -> None:
    """The stream's own loop, driven by hand: a client that stops reading leaves the queue
    full; after the stall bound the stream ends with ``overflow``, and everything it was sent
    is a prefix of the stream, so a reconnect from its last id loses nothing."""
    import asyncio

    from strategy_engine.api.streams import _events

    store = RedisStore(redis_connection.client, redis_namespace)
    store.publish_signals([_signal(i) for i in range(50)])
    tokens, _ = _tokens(tmp_path / "tokens.json")
    app = create_app(redis_connection.client, tokens, namespace=redis_namespace,
                     stream_queue=5, stream_stall_s=0.3, control_key=lambda: KEY)  # fmt: skip
    ctx = app.state.context

    async def slow_client() -> list[bytes]:
        stream = _events(ctx, store.key("signals"), "signal", Signal, None, None, "0-0")
        got = [await anext(stream), await anext(stream)]  # retry hint, first event
        await asyncio.sleep(1.0)  # stops reading: the queue fills and stays full
        got += [chunk async for chunk in stream]
        return got

    chunks = asyncio.run(slow_client())
    assert chunks[-1].startswith(b"event: overflow")
    sent = [c.split(b"\n")[0][4:].decode() for c in chunks if c.startswith(b"id: ")]
    ids = [e[0].decode() for e in store.client.xrange(store.key("signals"))]
    assert 1 <= len(sent) < 50 and sent == ids[: len(sent)]
    assert ctx.streams_open == 0


def test_a_cores_control_inbox_applies_the_apis_halt_and_audits_the_caller(api: Api) -> None:
    from core.engine.engine import TradingEngine
    from core.runtime.control import ControlInbox

    pubsub = api.store.client.pubsub()
    pubsub.subscribe(f"{api.store.namespace}:control")
    assert pubsub.get_message(timeout=2)["type"] == "subscribe"
    engine = TradingEngine([])
    inbox = ControlInbox(ControlVerifier(KEY), api.store, core="core-1")
    api.post("/v1/control/halt", Role.OPERATOR, {"reason": "drill"})
    inbox.handle(engine, [pubsub.get_message(timeout=2)["data"]])
    assert engine.risk.halt_reason and "drill" in engine.risk.halt_reason
    api.post("/v1/control/resume", Role.OPERATOR, {})
    inbox.handle(engine, [pubsub.get_message(timeout=2)["data"]])
    assert not engine.risk.halt_reason
    pubsub.close()
    audit = api.store.read_control_audit()
    assert [(a["action"], a["sender"]) for a in audit] == [
        ("halt", f"api:test-{Role.OPERATOR}"),
        ("resume", f"api:test-{Role.OPERATOR}"),
    ]


# --- promote and roll back -------------------------------------------------------------------


def test_promote_and_rollback_go_through_the_gate_count_and_ask_the_cores_to_reload(
    api: Api,
) -> None:
    from registry.strategy_registry import StrategyRegistry

    registry = StrategyRegistry()
    passed = {"success": True, "suite": "bars_daily", "failed_expectations": []}
    failed = {**passed, "success": False, "failed_expectations": ["expect_x"]}

    def register(fast: int, validation: dict[str, Any]) -> str:
        config = {"fast_period": fast, "slow_period": 20, "ma_type": "sma"}
        return registry.register("ma_crossover", config, data_hash="sha256:aapl",
                                 validation=validation, symbols=("AAPL",),
                                 metrics={"sharpe": 0.8, "max_drawdown": -0.1}).version  # fmt: skip

    first = register(8, validated({"fast_period": 8, "slow_period": 20}))
    # Fast 5 beats fast 8 on the held-out window: its evaluation met the first version.
    second = register(
        5,
        validated(
            {"fast_period": 5, "slow_period": 20},
            champion=(first, {"fast_period": 8, "slow_period": 20}),
        ),
    )
    bad = register(9, failed)
    # A passed gate but no look-ahead check nor evaluation (as registered before they existed).
    older = register(7, passed)
    pubsub = api.store.client.pubsub()
    pubsub.subscribe(f"{api.store.namespace}:control")
    assert pubsub.get_message(timeout=2)["type"] == "subscribe"
    operator = f"test-{Role.OPERATOR}"

    _is_problem(api.post("/v1/registry/ma_crossover/promote", Role.READER, {"version": first}),
                403, "forbidden")  # fmt: skip
    done = api.post("/v1/registry/ma_crossover/promote", Role.OPERATOR, {"version": first})
    assert done.json() == {
        "name": "strategy.ma_crossover",
        "champion_before": None,
        "champion_after": first,
        "previous_before": None,
        "previous_after": None,
        "reload_sent_to": 1,
        "caller": operator,
    }
    verified = ControlVerifier(KEY).verify(pubsub.get_message(timeout=2)["data"])
    assert isinstance(verified, ControlMessage) and verified.sender == f"api:{operator}"
    assert verified.body == {"action": "reload", "model": "strategy.ma_crossover",
                             "version": first, "caller": operator}  # fmt: skip

    api.post("/v1/registry/strategy.ma_crossover/promote", Role.OPERATOR, {"version": second})
    refused = api.post("/v1/registry/ma_crossover/promote", Role.OPERATOR, {"version": bad})
    _is_problem(refused, 409, "validation_gate_failed")
    unproven = api.post("/v1/registry/ma_crossover/promote", Role.OPERATOR, {"version": older})
    _is_problem(unproven, 409, "validation_gate_failed")
    assert "registered before look-ahead/evaluation evidence" in unproven.json()["detail"]
    assert registry.get_alias("strategy.ma_crossover", "champion") == second
    _is_problem(api.post("/v1/registry/ma_crossover/promote", Role.OPERATOR, {"version": "99"}),
                409, "registry_refused")  # fmt: skip
    _is_problem(api.post("/v1/registry/nope/rollback", Role.OPERATOR, {}), 404,
                "unknown_strategy")  # fmt: skip

    back = api.post("/v1/registry/ma_crossover/rollback", Role.OPERATOR, {"reason": "drill"})
    assert (back.json()["champion_before"], back.json()["champion_after"]) == (second, first)
    _is_problem(api.post("/v1/registry/ma_crossover/rollback", Role.OPERATOR, {}), 409,
                "registry_refused")  # fmt: skip
    counts = api.store.client.hgetall(f"{api.store.namespace}:learning:counts")
    assert counts == {b"promoted|strategy.ma_crossover": b"2",
                      b"rolled_back|strategy.ma_crossover": b"1"}  # fmt: skip
    pubsub.close()


def test_a_token_file_others_can_read_lets_nobody_in(api: Api, tmp_path: Path) -> None:
    path = tmp_path / "api" / "tokens.json"
    path.chmod(0o644)
    try:
        _is_problem(api.get("/v1/cores"), 503, "tokens_unavailable")
    finally:
        path.chmod(0o600)
    assert api.get("/v1/cores").status_code == 200


def _status(core: str, **changes: Any) -> dict[str, Any]:
    base = {"core": core, "heartbeat_ns": NOW, "state": "running", "risk_mode": "normal",
            "halt_reason": None, "restarts": 0, "events_in": 1,
            "active_set": [{"name": "s.a", "version": "1", "alias": "champion"}]}  # fmt: skip
    return {**base, **changes}


def test_the_status_stream_sends_each_cores_status_then_only_what_an_operator_acts_on(
    api: Api, served: Served
) -> None:
    store = api.store
    store.save_report("status:core-1", _status("core-1"))
    store.save_report("status:core-2", _status("core-2"))
    headers = api.auth(Role.READER)
    with httpx.Client(base_url=served.url, timeout=20) as client:
        with client.stream("GET", "/v1/streams/status", headers=headers) as r:
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/event-stream")
            lines = r.iter_lines()
            first = [json.loads(e["data"]) for e in _read_events(lines, 2)]
            assert sorted(e["core"] for e in first) == ["core-1", "core-2"]
            assert {e["risk_mode"] for e in first} == {"normal"}
            # A heartbeat and counters change on every write: no event for them.
            store.save_report("status:core-1", _status("core-1", heartbeat_ns=NOW + 1,
                                                         events_in=99))  # fmt: skip
            time.sleep(2.5)  # more than two polls
            store.save_report("status:core-2", _status("core-2", risk_mode="halted",
                                                         halt_reason="drawdown"))  # fmt: skip
            (changed,) = _read_events(lines, 1)
            store.save_report("status:core-1", _status("core-1", restarts=1))
            (restarted,) = _read_events(lines, 1)
        assert changed["event"] == "status"
        data = json.loads(changed["data"])
        assert (data["core"], data["risk_mode"], data["halt_reason"]) == (
            "core-2", "halted", "drawdown")  # fmt: skip
        again = json.loads(restarted["data"])
        assert (again["core"], again["restarts"]) == ("core-1", 1)
        # One core only, and a hostile core name is a problem document.
        with client.stream("GET", "/v1/streams/status", headers=headers,
                           params={"core": "core-1"}) as r:  # fmt: skip
            only = [json.loads(e["data"])["core"] for e in _read_events(r.iter_lines(), 1)]
        assert only == ["core-1"]
        bad = client.get("/v1/streams/status", headers=headers, params={"core": "a:*"})
        _is_problem(bad, 422, "invalid_request")


def test_a_status_client_that_stops_reading_is_dropped(
    redis_connection: RedisConnection, redis_namespace: str, tmp_path: Path
) -> None:
    import asyncio

    from strategy_engine.api.streams import _status_events

    store = RedisStore(redis_connection.client, redis_namespace)
    for i in range(5):
        store.save_report(f"status:core-{i}", _status(f"core-{i}"))
    tokens, _ = _tokens(tmp_path / "tokens.json")
    app = create_app(redis_connection.client, tokens, namespace=redis_namespace,
                     stream_queue=1, stream_stall_s=0.3, control_key=lambda: KEY)  # fmt: skip
    ctx = app.state.context

    async def slow_client() -> list[bytes]:
        stream = _status_events(ctx, None)
        got = [await anext(stream)]  # the retry hint
        await asyncio.sleep(1.0)  # stops reading: five cores do not fit a queue of one
        got += [chunk async for chunk in stream]
        return got

    chunks = asyncio.run(slow_client())
    assert chunks[-1].startswith(b"event: overflow")
    assert ctx.streams_open == 0


def test_a_status_stream_over_a_reports_key_of_another_type_ends_with_an_error_event(
    api: Api, served: Served
) -> None:
    api.store.client.set(api.store.key("reports"), b"not a hash")
    with (
        httpx.Client(base_url=served.url, timeout=20) as client,
        client.stream("GET", "/v1/streams/status", headers=api.auth(Role.READER)) as r,
    ):
        (event,) = _read_events(r.iter_lines(), 1)
    assert event["event"] == "error"


def test_streams_are_bounded_in_number(
    tmp_path: Path, redis_connection: RedisConnection, redis_namespace: str
) -> None:
    tokens, issued = _tokens(tmp_path / "tokens.json")
    app = create_app(redis_connection.client, tokens, namespace=redis_namespace,
                     max_streams=1, control_key=lambda: KEY)  # fmt: skip
    server = Served(app)
    headers = {"Authorization": f"Bearer {issued[Role.READER]}"}
    try:
        with httpx.Client(base_url=server.url, timeout=20) as client:
            with client.stream("GET", "/v1/streams/signals", headers=headers) as first:
                lines = first.iter_lines()  # held: dropping it would close the stream
                assert next(lines) == "retry: 1000"
                with client.stream("GET", "/v1/streams/fills", headers=headers) as second:
                    second.read()
                    _is_problem(second, 503, "too_many_streams")
            deadline = time.monotonic() + 10
            while app.state.context.streams_open:  # the first one's slot is given back
                assert time.monotonic() < deadline
                time.sleep(0.05)
            with client.stream("GET", "/v1/streams/fills", headers=headers) as third:
                assert third.status_code == 200
    finally:
        server.stop()
