"""Read routes: the catalogue, the registry, the cores, their outputs, dead letters, context,
risk. Every one only reads (Redis or the MLflow registry); nothing read is unpickled or
evaluated, and a value that does not decode is skipped, never a 500."""

from __future__ import annotations

import time
from functools import cache
from typing import Annotated, Any, TypeVar, cast

import msgspec
from fastapi import APIRouter, Depends, Query

from core import codec
from core.adapters.redis_store import ledger_key
from core.errors import MessageError
from core.model import Fill, Order, Position, Signal
from strategy_engine.api.auth import Role
from strategy_engine.api.common import (
    COMMON,
    CORE_NAME,
    ApiContext,
    Refused,
    is_stream_id,
    problem_responses,
    require,
)
from strategy_engine.api.models import (
    Contexts,
    CoreStatus,
    DeadLetter,
    DeadLetters,
    FillItem,
    FillPage,
    OrderItem,
    OrderPage,
    PositionItem,
    Positions,
    RegisteredStrategy,
    Risk,
    RiskState,
    SignalItem,
    SignalPage,
    StrategyType,
)
from strategy_engine.dashboard.state import DashboardReader

M = TypeVar("M", bound=msgspec.Struct)
MAX_LIMIT = 1000
SCAN_FACTOR = 20
"""A page scans at most this many entries per item asked for: a filter that matches little
answers a short page with a cursor, never a scan of the whole stream."""
MAX_RECORD_BYTES = 256 * 1024
INT64_MAX = 2**63 - 1
LAST_ID = f"{2**64 - 1}-{2**64 - 1}"

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="items per page (1-1000)")]
Name = Annotated[str | None, Query(min_length=1, max_length=200)]
Time = Annotated[int | None, Query(ge=0, le=INT64_MAX, description="ts_event, ns since epoch")]
Cursor = Annotated[
    str | None,
    Query(max_length=41, pattern=r"^[0-9]{1,20}-[0-9]{1,20}$", description="a stream id"),
]
Core = Annotated[str | None, Query(pattern=CORE_NAME, description="default: the API's core")]


@cache
def catalogue() -> list[StrategyType]:
    from core.strategies.catalogue import describe, strategy_types

    return [StrategyType.model_validate(describe(cls)) for cls in strategy_types()]


def router(ctx: ApiContext) -> APIRouter:
    reader = Depends(require(ctx, Role.READER))
    api = APIRouter(prefix="/v1", dependencies=[reader], responses=problem_responses(*COMMON))
    client = ctx.client

    @api.get("/strategies", response_model=list[StrategyType], tags=["read"])
    def strategies() -> list[StrategyType]:
        """The strategy types and their parameters' schemas (as ``strategy-engine strategies``)."""
        return catalogue()

    @api.get("/registry", response_model=list[RegisteredStrategy], tags=["read"])
    def registry() -> list[RegisteredStrategy]:
        """Registered strategies: versions, aliases and lineage tags (``strategy-engine
        registry``)."""
        try:
            listing = ctx.registry_listing()
        except Exception as exc:  # MLflow's store away or broken: say so, never a 500
            raise Refused(503, "registry_unavailable", f"{type(exc).__name__}") from None
        return [RegisteredStrategy.model_validate(m) for m in listing]

    @api.get("/cores", response_model=list[CoreStatus], tags=["read"])
    def cores() -> list[CoreStatus]:
        """Every core's last published status (``<ns>:reports`` fields ``status:<core>``)."""
        return [_core_status(name, status) for name, status in published_statuses(ctx)]

    @api.get("/signals", response_model=SignalPage, tags=["read"])
    def signals(
        strategy: Name = None, symbol: Name = None, since: Time = None, until: Time = None,
        cursor: Cursor = None, limit: Limit = 100,
    ) -> SignalPage:  # fmt: skip
        """Signals, oldest first, from ``<ns>:signals``; ``next_cursor`` pages on."""
        rows, after = _page(ctx, ctx.key("signals"), Signal, strategy, symbol, since, until,
                            cursor, limit)  # fmt: skip
        return SignalPage(items=[SignalItem(id=i, **_plain(s)) for i, s in rows], next_cursor=after)

    @api.get("/orders", response_model=OrderPage, tags=["read"])
    def orders(
        strategy: Name = None, symbol: Name = None, since: Time = None, until: Time = None,
        cursor: Cursor = None, limit: Limit = 100, core: Core = None,
    ) -> OrderPage:  # fmt: skip
        """One core's orders, oldest first."""
        key = ledger_key(ctx.namespace, core or ctx.core, "orders")
        rows, after = _page(ctx, key, Order, strategy, symbol, since, until, cursor, limit)
        return OrderPage(items=[OrderItem(id=i, **_plain(o)) for i, o in rows], next_cursor=after)

    @api.get("/fills", response_model=FillPage, tags=["read"])
    def fills(
        strategy: Name = None, symbol: Name = None, since: Time = None, until: Time = None,
        cursor: Cursor = None, limit: Limit = 100, core: Core = None,
    ) -> FillPage:  # fmt: skip
        """One core's fills, oldest first."""
        key = ledger_key(ctx.namespace, core or ctx.core, "fills")
        rows, after = _page(ctx, key, Fill, strategy, symbol, since, until, cursor, limit)
        return FillPage(items=[FillItem(id=i, **_plain(f)) for i, f in rows], next_cursor=after)

    @api.get("/positions", response_model=Positions, tags=["read"])
    def positions(core: Core = None) -> Positions:
        """One core's positions, by symbol."""
        name = core or ctx.core
        raw = cast(dict[bytes, bytes], client.hgetall(ledger_key(ctx.namespace, name, "positions")))
        found = (_decode(payload, Position) for payload in raw.values())
        rows = sorted((PositionItem(**_plain(p)) for p in found if p), key=lambda p: p.symbol)
        return Positions(core=name, positions=rows)

    @api.get("/deadletters", response_model=DeadLetters, tags=["read"])
    def deadletters(limit: Limit = 20) -> DeadLetters:
        """Rejected input: counts by code, and the latest entries (without their raw bytes)."""
        counts = cast(dict[bytes, bytes], client.hgetall(ctx.key("deadletter:counts")))
        by_code = {k.decode(errors="replace"): _int(v) for k, v in counts.items()}
        entries = cast(list[Any], client.xrevrange(ctx.key("deadletter"), count=limit))
        latest = []
        for entry_id, fields in entries:
            text = {k.decode(errors="replace"): v for k, v in fields.items() if k != b"raw"}
            latest.append(DeadLetter(
                id=entry_id.decode(), source=_text(text.get("source")),
                code=_text(text.get("code")), reason=_text(text.get("reason")),
                size=_int(text.get("size")), ts=_int(text.get("ts")),
            ))  # fmt: skip
        return DeadLetters(by_code=dict(sorted(by_code.items())), latest=latest)

    @api.get("/contexts", response_model=Contexts, tags=["read"])
    def contexts() -> Contexts:
        """The strategic tier's context records (regime, news, macro, adaptation, ...)."""
        found = DashboardReader(client, ctx.namespace, ctx.core).contexts()
        return Contexts(contexts={k: v for k, v in found.items() if "error" not in v})

    @api.get("/risk", response_model=Risk, tags=["read"])
    def risk() -> Risk:
        """Each core's risk state and limits, from its published status."""
        return Risk(cores=[_risk(name, status) for name, status in published_statuses(ctx)])

    return api


# --- helpers -----------------------------------------------------------------------------------


def _page(
    ctx: ApiContext, key: str, kind: type[M], strategy: str | None, symbol: str | None,
    since: int | None, until: int | None, cursor: str | None, limit: int,
) -> tuple[list[tuple[str, M]], str | None]:  # fmt: skip
    """Up to ``limit`` entries of ``key`` after ``cursor`` that pass the filters.

    The cursor is the last stream id scanned (matched or not), so the next page starts where
    this one stopped; None when the stream has nothing after it.
    """
    if cursor is not None and not is_stream_id(cursor):
        raise Refused(422, "invalid_cursor", "cursor must be a stream id like 1700000000000-0")
    if cursor == LAST_ID:
        return [], None  # nothing can follow it (and Redis refuses an interval after it)
    start = "-" if cursor is None else f"({cursor}"
    budget = limit * SCAN_FACTOR
    found: list[tuple[str, M]] = []
    last: str | None = cursor
    batch = min(1000, max(limit, 100))
    while budget > 0 and len(found) < limit:
        entries = cast(list[Any], ctx.client.xrange(key, min=start, count=min(batch, budget)))
        if not entries:
            return found, None
        for entry_id, fields in entries:
            budget -= 1
            last = entry_id.decode()
            message = _decode(fields.get(b"msg"), kind)
            if message is not None and _matches(message, strategy, symbol, since, until):
                found.append((last, message))
                if len(found) == limit:
                    break
        start = f"({last}"
    if last is None or not ctx.client.xrange(key, min=f"({last}", count=1):
        return found, None
    return found, last


def _matches(message: Any, strategy: str | None, symbol: str | None, since: int | None,
             until: int | None) -> bool:  # fmt: skip
    if strategy is not None and getattr(message, "strategy", None) != strategy:
        return False
    if symbol is not None and message.symbol != symbol:
        return False
    if since is not None and message.ts_event < since:
        return False
    return until is None or message.ts_event <= until


def _decode(payload: bytes | None, kind: type[M]) -> M | None:
    try:
        return codec.decode(payload or b"", kind)
    except MessageError:
        return None


def _plain(message: msgspec.Struct) -> dict[str, Any]:
    return cast(dict[str, Any], msgspec.to_builtins(message))


def published_statuses(ctx: ApiContext) -> list[tuple[str, dict[str, Any]]]:
    """Every ``status:<core>`` record of ``<ns>:reports`` that decodes to an object, by name."""
    fields = cast(list[bytes], ctx.client.hkeys(ctx.key("reports")))
    names = sorted(f[7:].decode(errors="replace") for f in fields if f.startswith(b"status:"))[
        :1000
    ]
    found = []
    for name in names:
        payload = cast(bytes | None, ctx.client.hget(ctx.key("reports"), f"status:{name}"))
        if payload is None or len(payload) > MAX_RECORD_BYTES:
            continue
        try:
            value = codec.loads(payload)
        except MessageError:
            continue
        if isinstance(value, dict):
            found.append((name, value))
    return found


def _core_status(name: str, status: dict[str, Any]) -> CoreStatus:
    beat = status.get("heartbeat_ns")
    beat = beat if isinstance(beat, int) and 0 <= beat <= INT64_MAX else None
    age = round((time.time_ns() - beat) / 1e9, 3) if beat is not None else None
    active = status.get("active_set")
    state = status.get("state")
    return CoreStatus(
        core=name, heartbeat_ns=beat, heartbeat_age_s=age,
        state=state if isinstance(state, str) else None,
        active_set=[a for a in active if isinstance(a, dict)] if isinstance(active, list) else [],
        status=status,
    )  # fmt: skip


def _risk(name: str, status: dict[str, Any]) -> RiskState:
    def number(key: str) -> float | None:
        value = status.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        return float(value)

    def text(key: str) -> str | None:
        value = status.get(key)
        return value if isinstance(value, str) else None

    limits = status.get("risk_limits")
    beat = status.get("heartbeat_ns")
    return RiskState(
        core=name, risk_mode=text("risk_mode"), halt_reason=text("halt_reason"),
        drawdown=number("drawdown"), equity=number("equity"),
        risk_limits=limits if isinstance(limits, dict) else {},
        heartbeat_ns=beat if isinstance(beat, int) and 0 <= beat <= INT64_MAX else None,
    )  # fmt: skip


def _text(value: bytes | None) -> str:
    return (value or b"").decode(errors="replace")


def _int(value: bytes | None) -> int:
    try:
        number = int(value or b"0")
    except ValueError:
        return 0
    return number if -INT64_MAX <= number <= INT64_MAX else 0
