"""What every route shares: the app's context, refusals as problem documents, the role check."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

import anyio
import redis
from fastapi import Request, Security
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from core.errors import ConfigError
from strategy_engine.api.auth import RateLimiter, Role, TokenFile, TokenRecord, allows
from strategy_engine.api.models import Problem

log = logging.getLogger(__name__)

PROBLEM_TYPE = "application/problem+json"
CORE_NAME = r"^[A-Za-z0-9._-]{1,64}$"
"""A core's name as the API takes it (a subset of what cores accept: no ':' or globs)."""
_STREAM_ID = re.compile(r"([0-9]{1,20})-([0-9]{1,20})")
UINT64_MAX = 2**64 - 1


def is_stream_id(text: str) -> bool:
    """Whether ``text`` is a Redis stream id (two unsigned 64-bit parts), which Redis takes."""
    found = _STREAM_ID.fullmatch(text)
    return bool(found) and all(int(part) <= UINT64_MAX for part in found.groups())  # type: ignore[union-attr]


class Refused(Exception):
    """A request the API answers with a problem document (never a 500)."""

    def __init__(
        self, status: int, code: str, detail: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail, self.headers = status, code, detail, headers


def problem(
    status: int, code: str, detail: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    body = Problem(
        type=f"about:blank#{code}", title=code.replace("_", " "), status=status,
        detail=detail[:500], code=code,
    )  # fmt: skip
    return JSONResponse(
        body.model_dump(), status_code=status, media_type=PROBLEM_TYPE, headers=headers
    )


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI entries of the problem documents a route may answer."""
    return {
        status: {
            "model": Problem,
            "description": "a problem document (RFC 9457)",
            "content": {PROBLEM_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for status in statuses
    }


COMMON = (400, 401, 403, 413, 422, 429, 500, 503)
"""What any authenticated route may answer besides its own result."""


@dataclass
class ApiContext:
    """Everything the routes read: Redis, the namespace and default core, tokens, limits."""

    client: redis.Redis
    namespace: str
    core: str
    tokens: TokenFile
    limiter: RateLimiter
    control_key: Callable[[], bytes]
    registry_listing: Callable[[], list[dict[str, Any]]]
    max_streams: int = 32
    stream_queue: int = 1000
    stream_block_ms: int = 1000
    keepalive_s: float = 15.0
    stream_stall_s: float = 10.0
    streams_open: int = 0
    stream_limiter: anyio.CapacityLimiter | None = field(default=None, repr=False)

    def key(self, name: str) -> str:
        return f"{self.namespace}:{name}"


_SCHEME = HTTPBearer(auto_error=False, description="an API token (strategy-engine api-token)")
Bearer = Annotated[HTTPAuthorizationCredentials | None, Security(_SCHEME)]
"""The bearer token, also declared in the OpenAPI document (its security scheme)."""


def require(ctx: ApiContext, role: Role) -> Callable[..., TokenRecord]:
    """A dependency: the caller's token record if it may act as ``role``, else a refusal."""

    def check(request: Request, credentials: Bearer) -> TokenRecord:
        try:
            record = ctx.tokens.find(credentials.credentials if credentials else "")
        except ConfigError as exc:
            # The token file became unsafe or unreadable (its mode, its owner, its JSON):
            # nobody is let in until it is fixed, and the operators are told why.
            log.error(str(exc)[:300], extra={"event": "api_tokens_unavailable"})
            raise Refused(503, "tokens_unavailable", "the API's token file is unusable") from None
        if record is None:
            raise Refused(
                401, "unauthorized", "a valid bearer token is required",
                {"WWW-Authenticate": "Bearer"},
            )  # fmt: skip
        if not allows(record.role, role):
            detail = f"this needs the {role} role; the token is {record.role}"
            raise Refused(403, "forbidden", detail)
        wait = ctx.limiter.take(record.name)
        if wait > 0:
            raise Refused(
                429, "rate_limited", "too many requests for this token",
                {"Retry-After": str(max(1, round(wait)))},
            )  # fmt: skip
        request.state.caller = record.name
        return record

    return check
