"""Run routes (operator role): list the stack's Prefect deployments, start one, follow a run.

The API talks to Prefect's REST API with httpx, with the server's URL and auth string taken
from the API process's environment (``PREFECT_API_URL``, ``PREFECT_API_AUTH_STRING``, as
``strategy-engine up`` sets them). Every call has a bounded timeout, so a Prefect that is down
or stuck answers ``503 prefect_unavailable`` within seconds instead of holding the request.
Every run start is audited with the caller's token name: a log event and an entry of the
``<ns>:api:audit`` stream.
"""

# Annotations are evaluated at definition (no `from __future__ import annotations`): the
# routes' caller dependency is a local of router(), which FastAPI could not resolve later.

import json
import logging
import os
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

import httpx
import redis
from fastapi import APIRouter, Depends, Path

from strategy_engine import credentials
from strategy_engine.api.auth import Role, TokenRecord
from strategy_engine.api.common import COMMON, ApiContext, Refused, problem_responses, require
from strategy_engine.api.models import (
    DeploymentItem,
    Deployments,
    FlowRun,
    RunRequest,
)

log = logging.getLogger(__name__)

MAX_PARAMETER_BYTES = 64 * 1024
MAX_PARAMETER_DEPTH = 16
MAX_DEPLOYMENTS = 200
AUDIT_MAXLEN = 10_000
# Short enough that a caller is answered well before its own timeout; long enough for a busy
# Prefect whose SQLite store is locked for a moment.
TIMEOUT = httpx.Timeout(5.0, connect=2.0)
PREFECT_NAME = r"^[A-Za-z0-9._-]{1,100}$"


@dataclass(frozen=True)
class PrefectTarget:
    """Where Prefect's REST API is (``.../api``) and the auth string it wants, if any."""

    url: str | None
    auth_string: str | None = None

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> "PrefectTarget":
        env = os.environ if environ is None else environ
        return cls(env.get("PREFECT_API_URL") or None, env.get("PREFECT_API_AUTH_STRING") or None)

    def headers(self) -> dict[str, str]:
        if not self.auth_string:
            return {}
        return {"Authorization": credentials.basic_authorization(self.auth_string)}


def router(ctx: ApiContext, target: PrefectTarget) -> APIRouter:
    operator = require(ctx, Role.OPERATOR)
    api = APIRouter(prefix="/v1", tags=["runs"], responses=problem_responses(*COMMON))
    Caller = Annotated[TokenRecord, Depends(operator)]
    Name = Annotated[str, Path(pattern=PREFECT_NAME)]

    async def call(method: str, path: str, body: Any = None) -> httpx.Response:
        if not target.url:
            raise Refused(503, "prefect_unavailable", "no Prefect API is configured")
        try:
            async with httpx.AsyncClient(timeout=TIMEOUT, headers=target.headers()) as client:
                answer = await client.request(method, f"{target.url.rstrip('/')}{path}", json=body)
        except httpx.HTTPError as exc:
            raise Refused(503, "prefect_unavailable", f"Prefect: {type(exc).__name__}") from None
        if answer.status_code >= 500 or answer.status_code in (401, 403, 429):
            # Prefect's own trouble (or a wrong auth string) is not the caller's fault.
            raise Refused(503, "prefect_unavailable", f"Prefect answered {answer.status_code}")
        return answer

    def body_of(answer: httpx.Response) -> Any:
        try:
            return answer.json()
        except ValueError:
            raise Refused(503, "prefect_unavailable", "Prefect answered no JSON") from None

    @api.get("/deployments", response_model=Deployments, responses=problem_responses(503))
    async def deployments(_caller: Caller) -> Deployments:
        """The Prefect deployments of the stack, with their flow and parameters' schema."""
        found = body_of(await call("POST", "/deployments/filter", {"limit": MAX_DEPLOYMENTS}))
        flows = body_of(await call("POST", "/flows/filter", {"limit": MAX_DEPLOYMENTS}))
        flow_names = {f.get("id"): f.get("name") for f in flows if isinstance(f, dict)}
        items = [_deployment(d, flow_names) for d in found if isinstance(d, dict)]
        return Deployments(deployments=sorted(items, key=lambda i: (i.flow, i.name)))

    @api.post(
        "/deployments/{flow}/{deployment}/runs", response_model=FlowRun, status_code=201,
        responses=problem_responses(404, 503),
    )  # fmt: skip
    async def start(flow: Name, deployment: Name, caller: Caller,
                    body: RunRequest | None = None) -> FlowRun:  # fmt: skip
        """Start a run of a deployment with ``parameters``; the run's id and first state."""
        parameters = body.parameters if body is not None else {}
        _check_parameters(parameters)
        answer = await call("GET", f"/deployments/name/{flow}/{deployment}")
        if answer.status_code == 404:
            raise Refused(404, "deployment_not_found", f"no deployment {flow}/{deployment}")
        if answer.status_code >= 400:
            raise Refused(503, "prefect_unavailable", f"Prefect answered {answer.status_code}")
        found = body_of(answer)
        request = {"parameters": parameters, "tags": [f"api:{caller.name}"]}
        created = await call("POST", f"/deployments/{found['id']}/create_flow_run", request)
        if created.status_code >= 400:
            # Prefect checks the parameters against the deployment's schema (409 / 422).
            detail = _detail(created)
            raise Refused(422, "invalid_parameters", f"Prefect refused the run: {detail}")
        run = _flow_run(body_of(created))
        _audit(ctx, caller.name, f"{flow}/{deployment}", run)
        return run

    @api.get("/flow-runs/{run_id}", response_model=FlowRun, responses=problem_responses(404, 503))
    async def flow_run(run_id: uuid.UUID, _caller: Caller) -> FlowRun:
        """A flow run's state, start and end times and parameters."""
        answer = await call("GET", f"/flow_runs/{run_id}")
        if answer.status_code == 404:
            raise Refused(404, "flow_run_not_found", f"no flow run {run_id}")
        if answer.status_code >= 400:
            raise Refused(503, "prefect_unavailable", f"Prefect answered {answer.status_code}")
        return _flow_run(body_of(answer))

    return api


def _check_parameters(parameters: dict[str, Any]) -> None:
    """Bound what is passed on to Prefect: its encoded size and how deep it nests."""
    try:
        encoded = json.dumps(parameters, allow_nan=False)
    except (ValueError, TypeError):
        raise Refused(422, "invalid_parameters", "parameters must be finite JSON") from None
    if len(encoded.encode()) > MAX_PARAMETER_BYTES:
        raise Refused(422, "invalid_parameters", f"parameters exceed {MAX_PARAMETER_BYTES} bytes")
    stack: list[tuple[Any, int]] = [(parameters, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_PARAMETER_DEPTH:
            detail = f"parameters nest deeper than {MAX_PARAMETER_DEPTH} levels"
            raise Refused(422, "invalid_parameters", detail)
        if isinstance(value, dict):
            stack += [(child, depth + 1) for child in value.values()]
        elif isinstance(value, list):
            stack += [(child, depth + 1) for child in value]


def _detail(answer: httpx.Response) -> str:
    try:
        found = answer.json()
    except ValueError:
        return str(answer.status_code)
    detail = found.get("detail") if isinstance(found, dict) else found
    return str(detail)[:300]


def _flow_run(found: Any) -> FlowRun:
    if not isinstance(found, dict) or "id" not in found:
        raise Refused(503, "prefect_unavailable", "Prefect answered an unexpected flow run")
    state = found.get("state") or {}
    return FlowRun(
        id=str(found["id"]), name=str(found.get("name") or ""),
        deployment_id=_text(found.get("deployment_id")),
        state_type=_text(state.get("type")), state_name=_text(state.get("name")),
        start_time=_text(found.get("start_time")), end_time=_text(found.get("end_time")),
        parameters=found.get("parameters") or {},
    )  # fmt: skip


def _deployment(found: dict[str, Any], flow_names: dict[Any, Any]) -> DeploymentItem:
    return DeploymentItem(
        id=str(found["id"]), name=str(found["name"]),
        flow=str(flow_names.get(found.get("flow_id"), "")),
        parameters=found.get("parameters") or {},
        parameter_schema=found.get("parameter_openapi_schema") or None,
    )  # fmt: skip


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _audit(ctx: ApiContext, caller: str, deployment: str, run: FlowRun) -> None:
    """Who started which run: a log event always, and the audit stream when Redis answers
    (the run has started either way; a lost audit entry must not look like a failed start)."""
    fields: dict[Any, Any] = {
        "event": "api_flow_run_started",
        "caller": caller,
        "deployment": deployment,
        "flow_run_id": run.id,
    }
    log.info("%s started %s: flow run %s", caller, deployment, run.id, extra=fields)
    try:
        entry = {**fields, "ts_ns": str(time.time_ns())}
        ctx.client.xadd(ctx.key("api:audit"), entry, maxlen=AUDIT_MAXLEN, approximate=True)
    except (redis.RedisError, OSError) as exc:  # the run started: say the audit was lost
        log.error("audit entry not written: %s", type(exc).__name__,
                  extra={"event": "api_audit_failed", "caller": caller})  # fmt: skip
