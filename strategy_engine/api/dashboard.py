"""The dashboard served by the API: its page (``/`` and ``/dashboard``) and its data
(``/v1/dashboard``), so one server, secured once, serves both.

The page holds no data and is served without a token; its script reads ``/v1/dashboard``
with the caller's bearer token, which needs the reader role like every other read.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import HTMLResponse, PlainTextResponse

from strategy_engine.api.auth import Role
from strategy_engine.api.common import COMMON, ApiContext, problem_responses, require
from strategy_engine.api.models import DashboardState
from strategy_engine.api.routes_read import Core
from strategy_engine.dashboard.page import PAGE, PAGE_CSP
from strategy_engine.dashboard.state import DashboardReader

MAX_READERS = 64
"""Cores whose reader (and its incremental dead-letter tally) is kept between requests."""
_PAGE_BYTES = PAGE.encode()
_PAGE_HEADERS = {"Content-Security-Policy": PAGE_CSP}


class Readers:
    """One :class:`DashboardReader` per core, the least recently used dropped past a bound:
    a reader's dead-letter tally reads only what arrived since its last request, so keeping
    it makes a poll cost what changed, not the whole stream."""

    def __init__(self, ctx: ApiContext, limit: int = MAX_READERS) -> None:
        self.ctx, self.limit = ctx, limit
        self._readers: OrderedDict[str, DashboardReader] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, core: str) -> DashboardReader:
        with self._lock:
            reader = self._readers.pop(core, None)
            if reader is None:
                reader = DashboardReader(self.ctx.client, self.ctx.namespace, core)
            self._readers[core] = reader
            while len(self._readers) > self.limit:
                self._readers.popitem(last=False)
            return reader


def _rows(value: Any) -> list[dict[str, Any]]:
    """The objects of a list read from a core's status; anything else there reads as none."""
    return [row for row in value if isinstance(row, dict)] if isinstance(value, list) else []


def state(reader: DashboardReader) -> DashboardState:
    """The reader's state as the typed answer; the parts copied from a core's status (which
    anyone able to write Redis could shape) are checked, so an odd status never fails it."""
    raw = reader.state()
    raw["active_set"] = _rows(raw.get("active_set"))
    raw["per_strategy"] = _rows(raw.get("per_strategy"))
    return DashboardState.model_validate(raw)


def router(ctx: ApiContext) -> APIRouter:
    readers = Readers(ctx)
    api = APIRouter()
    reader_role = Depends(require(ctx, Role.READER))

    def page() -> HTMLResponse:
        return HTMLResponse(_PAGE_BYTES, headers=_PAGE_HEADERS)

    html: dict[int | str, dict[str, Any]] = {
        200: {
            "content": {"text/html": {"schema": {"type": "string"}}},
            "description": "the dashboard page (no data; its script reads /v1/dashboard)",
        }
    }
    api.add_api_route("/", page, methods=["GET"], response_class=HTMLResponse, tags=["dashboard"],
                      summary="The dashboard page", responses=html)  # fmt: skip
    api.add_api_route("/dashboard", page, methods=["GET"], response_class=HTMLResponse,
                      tags=["dashboard"], summary="The dashboard page", responses=html)  # fmt: skip

    @api.get("/v1/dashboard", response_model=DashboardState, tags=["dashboard"],
             dependencies=[reader_role], responses=problem_responses(*COMMON))  # fmt: skip
    def dashboard(core: Core = None) -> DashboardState:
        """Everything the dashboard page shows of one core: its status, active set, timing,
        positions, targets, recent signals, fills and rejected input, and the context
        records. The top level is fixed; the records inside are the core's own JSON."""
        return state(readers.get(core or ctx.core))

    # What the former stand-alone dashboard server answered, for scripts written against it:
    # its health check (open) and its state (now a read like any other: the reader role).
    @api.get("/healthz", include_in_schema=False, response_class=PlainTextResponse)
    def healthz() -> str:
        return "ok\n"

    @api.get("/api/state", include_in_schema=False, dependencies=[reader_role])
    def legacy_state() -> DashboardState:
        return state(readers.get(ctx.core))

    return api
