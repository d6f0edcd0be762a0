"""The alert receiver: where Alertmanager and Prefect send their notifications.

An ASGI application (FastAPI, served by uvicorn) with four routes:

- ``POST /alertmanager``: Alertmanager's webhook payload (version 4); each alert in it is
  recorded, firing or resolved;
- ``POST /prefect``: a Prefect notification (``subject`` and ``body``), sent by the automation
  ``strategy-engine up`` creates for failed and crashed flow runs;
- ``GET /alerts``: the latest records, newest last (for ``strategy-engine alerts`` and tests);
- ``GET /healthz``: open, for the supervisor's and Prometheus's checks.

Every route but the health check wants ``Authorization: Bearer <token>`` (the stack's alert
token, in ``var/credentials.json``). Bodies are bounded (1 MiB), parsed into typed models, and
anything else gets an RFC 9457 problem document with a stable ``code``. Records are JSON lines
in ``var/alerts/alerts.jsonl`` (rotated at 10 MB, five kept). When forward addresses are
configured, each notification is also posted to them (Slack's incoming-webhook format or the
record as JSON) after the answer is sent, so a slow or failing chat service never delays or
loses a record.
"""

from __future__ import annotations

import hmac
import json
import logging
import logging.handlers
import os
import threading
from collections import deque
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

# Imported at module level: FastAPI resolves the routes' annotations (postponed by
# `from __future__ import annotations`) in this module's namespace.
from fastapi import BackgroundTasks, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1 << 20
MAX_ALERTS_PER_NOTIFICATION = 1000
RECORD_FILE_BYTES = 10 * 1024 * 1024
RECORD_FILE_BACKUPS = 5
RECENT_LIMIT = 1000
FORWARD_TIMEOUT_S = 5.0
SLACK_URLS_ENV = "STRATEGY_ENGINE_ALERT_SLACK_URLS"
WEBHOOK_URLS_ENV = "STRATEGY_ENGINE_ALERT_WEBHOOK_URLS"

Label = str
Body = TypeVar("Body", bound=BaseModel)


class AlertmanagerAlert(BaseModel):
    """One alert of an Alertmanager notification."""

    model_config = ConfigDict(extra="ignore")
    status: Literal["firing", "resolved"]
    labels: dict[Label, str] = Field(default_factory=dict)
    annotations: dict[Label, str] = Field(default_factory=dict)
    startsAt: str = Field(default="", max_length=64)  # Alertmanager's field names
    endsAt: str = Field(default="", max_length=64)
    generatorURL: str = Field(default="", max_length=4096)
    fingerprint: str = Field(default="", max_length=64)


class AlertmanagerNotification(BaseModel):
    """Alertmanager's webhook payload, version 4 (its documented format)."""

    model_config = ConfigDict(extra="ignore")
    version: str = Field(max_length=8)
    status: Literal["firing", "resolved"]
    receiver: str = Field(default="", max_length=256)
    groupKey: str = Field(default="", max_length=4096)
    alerts: list[AlertmanagerAlert] = Field(max_length=MAX_ALERTS_PER_NOTIFICATION)


class PrefectNotification(BaseModel):
    """What the stack's Prefect automation sends: the notification's subject and body."""

    model_config = ConfigDict(extra="ignore")
    subject: str = Field(max_length=1024)
    body: str = Field(default="", max_length=65536)


class AlertRecord(BaseModel):
    """One recorded alert (a line of ``alerts.jsonl``)."""

    received_at: str
    source: Literal["alertmanager", "prefect"]
    status: str
    name: str
    severity: str = ""
    summary: str = ""
    description: str = ""
    labels: dict[str, str] = Field(default_factory=dict)
    starts_at: str = ""
    ends_at: str = ""


class AlertList(BaseModel):
    alerts: list[AlertRecord]


class Accepted(BaseModel):
    recorded: int


class AlertLog:
    """The record of alerts: a rotating JSON-lines file, and the latest ones in memory."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._recent: deque[AlertRecord] = deque(maxlen=RECENT_LIMIT)
        self._lock = threading.Lock()
        self._load_recent()
        # The stdlib's rotating handler does the rotation; a logger of its own keeps these
        # lines out of the process's log.
        self._file = logging.Logger(f"alert-log:{path}")
        handler = logging.handlers.RotatingFileHandler(
            path, maxBytes=RECORD_FILE_BYTES, backupCount=RECORD_FILE_BACKUPS, encoding="utf-8"
        )
        handler.setFormatter(logging.Formatter("%(message)s"))
        self._file.addHandler(handler)

    def append(self, records: list[AlertRecord]) -> None:
        with self._lock:
            for record in records:
                self._file.info(record.model_dump_json())
                self._recent.append(record)

    def recent(self, limit: int) -> list[AlertRecord]:
        with self._lock:
            items = list(self._recent)
        return items[-limit:] if limit > 0 else []

    def close(self) -> None:
        for handler in list(self._file.handlers):
            handler.close()
            self._file.removeHandler(handler)

    def _load_recent(self) -> None:
        """Read the tail of the current file, so a restarted receiver still lists them."""
        try:
            with self.path.open("rb") as source:
                source.seek(0, os.SEEK_END)
                size = source.tell()
                source.seek(max(0, size - 4 * MAX_BODY_BYTES))
                lines = source.read().splitlines()
        except OSError:
            return
        for line in lines[-RECENT_LIMIT:]:
            try:
                self._recent.append(AlertRecord.model_validate_json(line))
            except ValueError:
                continue  # a torn or foreign line: the file keeps it, the list skips it


@dataclass(frozen=True)
class Forwarding:
    """Where notifications are also posted: Slack incoming webhooks and plain JSON webhooks."""

    slack_urls: tuple[str, ...] = ()
    webhook_urls: tuple[str, ...] = ()

    @classmethod
    def from_environment(cls, environ: MutableMapping[str, str] | None = None) -> Forwarding:
        env = os.environ if environ is None else environ
        return cls(
            slack_urls=_urls(env.get(SLACK_URLS_ENV, "")),
            webhook_urls=_urls(env.get(WEBHOOK_URLS_ENV, "")),
        )

    def __bool__(self) -> bool:
        return bool(self.slack_urls or self.webhook_urls)


@dataclass
class ReceiverCounters:
    received: int = 0
    rejected: int = 0
    forward_failures: int = 0
    by_status: dict[str, int] = field(default_factory=dict)


def _urls(text: str) -> tuple[str, ...]:
    urls = tuple(u.strip() for u in text.split(",") if u.strip())
    for url in urls:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"a forward address must be http(s): {url[:40]!r}")
    return urls


def create_app(alert_log: AlertLog, token: str, forwarding: Forwarding | None = None) -> Any:
    """Build the receiver's ASGI application.

    Parameters
    ----------
    alert_log : AlertLog
        Where alerts are recorded.
    token : str
        The bearer token every route but ``/healthz`` requires (never empty).
    forwarding : Forwarding, optional
        Where notifications are also posted.
    """
    if not token:
        raise ValueError("the alert receiver needs a token")
    forwarding = forwarding or Forwarding()
    counters = ReceiverCounters()
    app = FastAPI(
        title="Strategy Engine alert receiver",
        version="1",
        description="Records Alertmanager and Prefect notifications; forwards them when asked.",
    )
    app.state.counters = counters

    def problem(status: int, code: str, detail: str) -> JSONResponse:
        counters.rejected += 1
        return JSONResponse(
            {"type": f"about:blank#{code}", "title": code.replace("_", " "), "status": status,
             "detail": detail, "code": code},
            status_code=status,
            media_type="application/problem+json",
        )  # fmt: skip

    class Refused(Exception):
        def __init__(self, status: int, code: str, detail: str) -> None:
            super().__init__(detail)
            self.status, self.code, self.detail = status, code, detail

    @app.exception_handler(Refused)
    async def _refused(_request: Request, exc: Refused) -> JSONResponse:
        return problem(exc.status, exc.code, exc.detail)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return problem(422, "invalid_body", f"{where}: {first.get('msg', 'invalid')}"[:300])

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return problem(exc.status_code, code, str(exc.detail))

    def authorized(request: Request) -> None:
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.encode(), token.encode()):
            raise Refused(401, "unauthorized", "a valid bearer token is required")

    async def read_body(request: Request, model: type[Body]) -> Body:
        """The body as ``model``: bounded while it is read, JSON, then typed."""
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY_BYTES):
            raise Refused(413, "body_too_large", f"at most {MAX_BODY_BYTES} bytes")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY_BYTES:
                raise Refused(413, "body_too_large", f"at most {MAX_BODY_BYTES} bytes")
        try:
            payload = json.loads(body)
        except (ValueError, RecursionError):
            raise Refused(400, "malformed_json", "the body is not JSON") from None
        try:
            return model.model_validate(payload)
        except ValidationError as exc:
            errors = exc.errors()
            where = ".".join(str(p) for p in errors[0]["loc"]) if errors else ""
            message = errors[0]["msg"] if errors else "invalid"
            raise Refused(422, "invalid_body", f"{where or 'body'}: {message}"[:300]) from None

    def keep(records: list[AlertRecord], tasks: BackgroundTasks) -> Accepted:
        alert_log.append(records)
        counters.received += len(records)
        for record in records:
            counters.by_status[record.status] = counters.by_status.get(record.status, 0) + 1
            log.warning(
                "alert %s %s", record.name, record.status,
                extra={"event": "alert_received", "alert": record.name, "status": record.status,
                       "severity": record.severity, "source": record.source},
            )  # fmt: skip
        if forwarding and records:
            tasks.add_task(_forward, forwarding, records, counters)
        return Accepted(recorded=len(records))

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/alertmanager", response_model=Accepted, dependencies=[Depends(authorized)])
    async def alertmanager(request: Request, tasks: BackgroundTasks) -> Accepted:
        notification = await read_body(request, AlertmanagerNotification)
        now = _now()
        records = [_from_alertmanager(alert, now) for alert in notification.alerts]
        return keep(records, tasks)

    @app.post("/prefect", response_model=Accepted, dependencies=[Depends(authorized)])
    async def prefect(request: Request, tasks: BackgroundTasks) -> Accepted:
        note = await read_body(request, PrefectNotification)
        record = AlertRecord(
            received_at=_now(), source="prefect", status="firing", name="FlowRunFailed",
            severity="warning", summary=note.subject, description=note.body[:4096],
        )  # fmt: skip
        return keep([record], tasks)

    @app.get("/alerts", response_model=AlertList, dependencies=[Depends(authorized)])
    async def alerts(limit: int = 100) -> AlertList:
        if not 0 < limit <= RECENT_LIMIT:
            raise Refused(422, "invalid_limit", f"limit must be 1..{RECENT_LIMIT}")
        return AlertList(alerts=alert_log.recent(limit))

    return app


def _from_alertmanager(alert: AlertmanagerAlert, received_at: str) -> AlertRecord:
    labels = dict(alert.labels)
    return AlertRecord(
        received_at=received_at,
        source="alertmanager",
        status=alert.status,
        name=labels.get("alertname", "")[:200],
        severity=labels.get("severity", "")[:50],
        summary=alert.annotations.get("summary", "")[:2000],
        description=alert.annotations.get("description", "")[:4000],
        labels={k[:100]: v[:500] for k, v in list(labels.items())[:50]},
        starts_at=alert.startsAt,
        ends_at=alert.endsAt,
    )


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _forward(
    forwarding: Forwarding, records: list[AlertRecord], counters: ReceiverCounters
) -> None:
    import httpx

    text = "\n".join(_line(r) for r in records)
    posts: list[tuple[str, Any]] = [(url, {"text": text}) for url in forwarding.slack_urls]
    body = {"alerts": [r.model_dump() for r in records]}
    posts += [(url, body) for url in forwarding.webhook_urls]
    with httpx.Client(timeout=FORWARD_TIMEOUT_S, follow_redirects=False) as client:
        for url, payload in posts:
            try:
                client.post(url, json=payload).raise_for_status()
            except httpx.HTTPError as exc:
                counters.forward_failures += 1
                log.error(
                    "forwarding alerts failed: %s", type(exc).__name__,
                    extra={"event": "alert_forward_failed", "reason": type(exc).__name__,
                           "alerts": len(records)},
                )  # fmt: skip


def _line(record: AlertRecord) -> str:
    mark = "RESOLVED" if record.status == "resolved" else record.severity.upper() or "ALERT"
    return f"[{mark}] {record.name}: {record.summary}"
