"""The Strategy Engine API: one ASGI application (FastAPI) over the cores, registry and feeds.

``/v1/health`` and the dashboard's page (``/``, ``/dashboard``: HTML without data) are open;
every other ``/v1`` route (the page's data, ``/v1/dashboard``, too) and ``/metrics`` want a
bearer token whose role allows them (:mod:`strategy_engine.api.auth`). Bodies are bounded
(1 MiB) before they are parsed, every answer is a typed model or an RFC 9457 problem document
with a stable ``code``, requests are rate limited per token, and no CORS header is ever sent,
so a browser page of another origin cannot read an answer. The OpenAPI document
(``/openapi.json``) is the contract; ``docs/openapi.json`` holds the committed copy.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import anyio
import redis
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from strategy_engine.api import (
    dashboard,
    routes_act,
    routes_ingest,
    routes_lifecycle,
    routes_read,
    routes_runs,
    streams,
)
from strategy_engine.api.auth import RateLimiter, Role, TokenFile
from strategy_engine.api.common import (
    COMMON,
    ApiContext,
    Refused,
    problem,
    problem_responses,
    require,
)
from strategy_engine.api.models import Health, Ready
from strategy_engine.api.routes_runs import PrefectTarget
from strategy_engine.dashboard.state import DashboardReader
from strategy_engine.metrics import exposition

log = logging.getLogger(__name__)

API_VERSION = "1"
MAX_BODY_BYTES = 1 << 20
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
}
DOCS_PAGES = frozenset({"/docs", "/redoc", "/docs/oauth2-redirect"})
_CODES = {400: "malformed_body", 401: "unauthorized", 403: "forbidden", 404: "not_found",
          405: "method_not_allowed", 413: "body_too_large", 415: "unsupported_media_type",
          422: "invalid_request", 429: "rate_limited"}  # fmt: skip


def create_app(
    client: redis.Redis,
    tokens: TokenFile | Path,
    *,
    namespace: str = "se",
    core: str = "core-1",
    control_key: Callable[[], bytes] | None = None,
    registry_listing: Callable[[], list[dict[str, Any]]] | None = None,
    registry: Callable[[], Any] | None = None,
    rate: float = 50.0,
    burst: int = 200,
    max_streams: int = 32,
    stream_queue: int = 1000,
    stream_block_ms: int = 1000,
    keepalive_s: float = 15.0,
    stream_stall_s: float = 10.0,
    prefect: PrefectTarget | None = None,
) -> FastAPI:
    """Build the API over ``client``'s Redis (``decode_responses=False``).

    Parameters
    ----------
    tokens : TokenFile or Path
        The stored API tokens (``var/api/tokens.json``).
    namespace, core : str
        The key prefix of the cores, and the core whose ledger is read when none is named.
    control_key : callable, optional
        Returns the key that signs control messages (default: the stack's control key).
    registry_listing : callable, optional
        Returns the registry's listing (default: MLflow's, as ``strategy-engine registry``).
    registry : callable, optional
        Returns the registry promotions and rollbacks go through (default: MLflow's).
    rate, burst : float, int
        Requests per second per token, and how many at once.
    max_streams, stream_queue : int
        Open event streams at most, and events queued per stream.
    stream_stall_s : float
        How long a stream's queue may stay full (its client not reading) before the client is
        dropped.
    prefect : PrefectTarget, optional
        The Prefect API runs are started through (default: ``PREFECT_API_URL`` and
        ``PREFECT_API_AUTH_STRING`` of this process's environment).
    """
    if control_key is None:
        from core.adapters.control_key import control_key as stack_key

        control_key = stack_key
    ctx = ApiContext(
        client=client, namespace=namespace, core=core,
        tokens=tokens if isinstance(tokens, TokenFile) else TokenFile(tokens),
        limiter=RateLimiter(rate, burst), control_key=control_key,
        registry_listing=registry_listing or _mlflow_listing, max_streams=max_streams,
        stream_queue=stream_queue, stream_block_ms=stream_block_ms, keepalive_s=keepalive_s,
        stream_stall_s=stream_stall_s,
        stream_limiter=anyio.CapacityLimiter(max_streams),
    )  # fmt: skip
    app = FastAPI(
        title="Strategy Engine API",
        version=API_VERSION,
        description=(
            "Read the cores, the registry and the strategy catalogue; steer the cores through "
            "signed control messages; post market data through the ingestion boundary; follow "
            "signals and fills as Server-Sent Events. Every route but /v1/health needs "
            "`Authorization: Bearer <token>` (strategy-engine api-token create). Errors are "
            "RFC 9457 problem documents with a stable `code`."
        ),
    )
    app.state.context = ctx
    _handlers(app)

    @app.get("/v1/health", response_model=Health, tags=["health"],
             responses=problem_responses(429, 500))  # fmt: skip
    def health() -> Health:
        """Open: the process answers."""
        return Health(status="ok", version=API_VERSION)

    reader = Depends(require(ctx, Role.READER))

    @app.get("/v1/ready", response_model=Ready, tags=["health"], dependencies=[reader],
             responses=problem_responses(*COMMON))  # fmt: skip
    def ready() -> Ready:
        """Ready when Redis answers."""
        ctx.client.ping()
        return Ready(ready=True, redis="ok")

    @app.get(
        "/metrics", tags=["health"], dependencies=[reader], response_class=Response,
        responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}},
                         "description": "Prometheus text format"}, **problem_responses(*COMMON)},
    )  # fmt: skip
    def metrics() -> Response:
        """The default core's metrics, as the dashboard's ``/metrics`` has them."""
        summary = DashboardReader(ctx.client, ctx.namespace, ctx.core).metrics_summary()
        return Response(exposition(summary), media_type=CONTENT_TYPE_LATEST)

    app.include_router(dashboard.router(ctx))
    app.include_router(routes_read.router(ctx))
    app.include_router(streams.router(ctx))
    app.include_router(routes_act.router(ctx))
    app.include_router(routes_ingest.router(ctx))
    app.include_router(routes_lifecycle.router(ctx, registry or _mlflow_registry))
    app.include_router(routes_runs.router(ctx, prefect or PrefectTarget.from_environment()))
    app.add_middleware(SecurityHeaders)
    # Bodies are bounded before any route or parser reads them.
    app.add_middleware(BoundedBodies, limit=MAX_BODY_BYTES)
    return app


def _mlflow_registry() -> Any:
    from registry.strategy_registry import StrategyRegistry

    return StrategyRegistry()


def _mlflow_listing() -> list[dict[str, Any]]:
    return list(_mlflow_registry().list_strategies())


def _handlers(app: FastAPI) -> None:
    @app.exception_handler(Refused)
    async def _refused(_request: Request, exc: Refused) -> JSONResponse:
        return problem(exc.status, exc.code, exc.detail, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return problem(422, "invalid_request", f"{where}: {first.get('msg', 'invalid')}"[:300])

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _CODES.get(exc.status_code, "http_error")
        return problem(exc.status_code, code, str(exc.detail), dict(exc.headers or {}))

    @app.exception_handler(redis.RedisError)
    async def _redis(_request: Request, exc: redis.RedisError) -> JSONResponse:
        # An error reply (a key of another type where a stream belongs) is not the server
        # being away, and is told apart for whoever reads the logs and alerts.
        code = "redis_error" if isinstance(exc, redis.ResponseError) else "redis_unavailable"
        return problem(503, code, f"Redis: {type(exc).__name__}")

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        log.error("api error on %s: %s", request.url.path, type(exc).__name__, exc_info=exc,
                  extra={"event": "api_error", "path": request.url.path})  # fmt: skip
        return problem(500, "internal_error", "an internal error; it was logged")


class SecurityHeaders:
    """ASGI middleware: the security headers on every answer (plain ASGI, so streamed answers
    pass through untouched)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # The interactive docs page loads Swagger UI's script from its CDN.
        skip = b"content-security-policy" if scope["path"] in DOCS_PAGES else b""

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [
                    (name.lower().encode(), value.encode())
                    for name, value in SECURITY_HEADERS.items()
                    if name.lower().encode() not in present and name.lower().encode() != skip
                ]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, with_headers)


class HostAllowList:
    """ASGI middleware: a request whose ``Host`` names none of ``names`` (any port) gets a 421
    problem document, so a page of another site whose name was made to resolve here (DNS
    rebinding) cannot talk to the server as if it were its own origin."""

    def __init__(self, app: ASGIApp, names: Iterable[str]) -> None:
        self.app = app
        self.names = frozenset(name.lower().strip("[]") for name in names)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        host = dict(scope.get("headers") or []).get(b"host", b"").decode("latin-1").lower()
        # "name:port", "[v6]:port" or a bare name: the name is what is checked.
        name = host[1:].partition("]")[0] if host.startswith("[") else host.partition(":")[0]
        if name not in self.names:
            response = problem(421, "misdirected_request", "this server does not serve that host")
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


class BoundedBodies:
    """ASGI middleware: a request body past ``limit`` bytes gets a 413 problem document,
    whether it declares its length or streams it (chunked); nothing past it is buffered."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await _too_large(self.limit, scope, receive, send)
            return
        seen = 0

        async def bounded_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    # Raised inside the route's body read: the app's handler answers it.
                    # (FastAPI passes an HTTPException from its body read through as is).
                    raise HTTPException(413, f"a request body is at most {self.limit} bytes")
            return message

        await self.app(scope, bounded_receive, send)


async def _too_large(limit: int, scope: Scope, receive: Receive, send: Send) -> None:
    response = problem(413, "body_too_large", f"a request body is at most {limit} bytes")
    response.headers["Connection"] = "close"
    await response(scope, receive, send)
