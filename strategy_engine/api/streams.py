"""Server-Sent Events: signals and fills as the cores write them, resumable by stream id.

Each event's ``id`` is its Redis stream id; a client that reconnects with ``Last-Event-ID``
(or ``?cursor=``) gets every entry after it, so nothing is lost across a reconnect. A reader
task per client copies entries from Redis (XREAD with BLOCK, in a worker thread) into a
bounded queue; when the client does not keep up and the queue is full, the stream ends with an
``overflow`` event and the client reconnects from its last id. The cores are never slowed:
they write Redis, and only this reader reads it for the client.

The status stream is not a Redis stream: each core overwrites its status in ``<ns>:reports``.
It is polled (once a second, never more often, whatever the number of clients' cores) and an
event is sent for a core when what an operator acts on changes: its state, risk mode, halt
reason, active set or restarts (not its heartbeat and counters, which change on every write).
The first events are every core's current status; a reconnecting client gets them again, so
it needs no cursor.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Annotated, Any, cast

import anyio
import msgspec
from fastapi import APIRouter, Depends, Header, Query
from fastapi.responses import StreamingResponse

from core import codec
from core.adapters.redis_store import ledger_key
from core.errors import MessageError
from core.model import Fill, Signal
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
from strategy_engine.api.routes_read import published_statuses

READ_COUNT = 500
STALL_POLL_S = 0.05
STATUS_POLL_S = 1.0
STATUS_FIELDS = ("state", "risk_mode", "halt_reason", "active_set", "restarts")
_DONE = object()

Name = Annotated[str | None, Query(min_length=1, max_length=200)]
Cursor = Annotated[str | None, Query(max_length=41, pattern=r"^[0-9]{1,20}-[0-9]{1,20}$")]
LastId = Annotated[str | None, Header(alias="Last-Event-ID", max_length=41)]
_SSE: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
        "description": "an event stream: id (stream id), event, data (JSON)",
    }
}


def router(ctx: ApiContext) -> APIRouter:
    reader = Depends(require(ctx, Role.READER))
    api = APIRouter(
        prefix="/v1/streams", tags=["stream"], dependencies=[reader],
        responses={**problem_responses(*COMMON), **_SSE},
    )  # fmt: skip

    @api.get("/signals", response_class=StreamingResponse)
    async def signals(
        strategy: Name = None, symbol: Name = None, cursor: Cursor = None,
        last_event_id: LastId = None,
    ) -> StreamingResponse:  # fmt: skip
        """Signals from ``<ns>:signals``; from now on, or after ``Last-Event-ID``/``cursor``."""
        start = _start(last_event_id, cursor)
        return _open(ctx, ctx.key("signals"), "signal", Signal, strategy, symbol, start)

    @api.get("/fills", response_class=StreamingResponse)
    async def fills(
        strategy: Name = None, symbol: Name = None, cursor: Cursor = None,
        last_event_id: LastId = None,
        core: Annotated[str | None, Query(pattern=CORE_NAME)] = None,
    ) -> StreamingResponse:  # fmt: skip
        """One core's fills; resumable as the signal stream is."""
        start = _start(last_event_id, cursor)
        key = ledger_key(ctx.namespace, core or ctx.core, "fills")
        return _open(ctx, key, "fill", Fill, strategy, symbol, start)

    @api.get("/status", response_class=StreamingResponse)
    async def status(
        core: Annotated[str | None, Query(pattern=CORE_NAME)] = None,
    ) -> StreamingResponse:
        """Each core's published status (or one ``core``'s): every core's current one first,
        then an event whenever its state, risk mode, halt reason, active set or restarts
        change."""
        if ctx.streams_open >= ctx.max_streams:
            raise Refused(503, "too_many_streams", f"at most {ctx.max_streams} open streams")
        return StreamingResponse(
            _status_events(ctx, core), media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )  # fmt: skip

    return api


def _start(last_event_id: str | None, cursor: str | None) -> str:
    given = last_event_id if last_event_id is not None else cursor
    if given is None:
        return "$"
    if not is_stream_id(given):
        raise Refused(422, "invalid_cursor", "Last-Event-ID must be a stream id")
    return given


def _open(
    ctx: ApiContext, key: str, event: str, kind: type[Any], strategy: str | None,
    symbol: str | None, start: str,
) -> StreamingResponse:  # fmt: skip
    if ctx.streams_open >= ctx.max_streams:
        raise Refused(503, "too_many_streams", f"at most {ctx.max_streams} open streams")
    if start == "$":
        # "$" would mean "after whatever arrives first" on every XREAD: pin it now.
        newest = cast(list[Any], ctx.client.xrevrange(key, count=1))
        start = newest[0][0].decode() if newest else "0-0"
    body = _events(ctx, key, event, kind, strategy, symbol, start)
    return StreamingResponse(
        body, media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )  # fmt: skip


async def _events(
    ctx: ApiContext, key: str, event: str, kind: type[Any], strategy: str | None,
    symbol: str | None, start: str,
) -> AsyncIterator[bytes]:  # fmt: skip
    async def pump(queue: asyncio.Queue[Any]) -> None:
        await _pump(ctx, key, queue, start)

    def render(item: tuple[str, bytes]) -> bytes | None:
        entry_id, payload = item
        try:
            message = codec.decode(payload, kind)
        except MessageError:
            return None  # not shown; the next event's id moves the client past it
        if (strategy is not None and getattr(message, "strategy", None) != strategy) or (
            symbol is not None and message.symbol != symbol
        ):
            return None
        data = msgspec.json.encode({"id": entry_id, **msgspec.to_builtins(message)})
        return b"id: %s\nevent: %s\ndata: %s\n\n" % (entry_id.encode(), event.encode(), data)

    async for chunk in _drained(ctx, pump, render):
        yield chunk


async def _drained(
    ctx: ApiContext,
    pump: Callable[[asyncio.Queue[Any]], Coroutine[Any, Any, None]],
    render: Callable[[Any], bytes | None],
) -> AsyncIterator[bytes]:
    """One client's event stream: what ``pump`` puts in a bounded queue, each item as
    ``render`` writes it (None: not sent), with the stream's own retry, keep-alive, overflow
    and error lines; the pump is stopped and the stream's slot freed however the client
    leaves."""
    queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=ctx.stream_queue)
    # Counted here, not when the response is made: a generator that never starts never runs
    # its finally, and would hold a slot forever.
    ctx.streams_open += 1
    task = asyncio.create_task(pump(queue))
    try:
        yield b"retry: 1000\n\n"
        while True:
            try:
                item = await asyncio.wait_for(queue.get(), timeout=ctx.keepalive_s)
            except TimeoutError:
                yield b": keepalive\n\n"
                continue
            if item is _DONE:
                yield b"event: overflow\ndata: {}\n\n"
                return
            if isinstance(item, Exception):
                error = codec.dumps({"error": type(item).__name__})
                yield b"event: error\ndata: " + error + b"\n\n"
                return
            chunk = render(item)
            if chunk is not None:
                yield chunk
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        ctx.streams_open -= 1


async def _pump(ctx: ApiContext, key: str, queue: asyncio.Queue[Any], start: str) -> None:
    """Copy entries of ``key`` after ``start`` into ``queue``, reading only as many as it has
    room for; a queue still full after ``stream_stall_s`` (the client stopped reading) ends
    the stream."""
    cursor = start
    client = ctx.client

    def read(count: int) -> list[Any]:
        found = client.xread({key: cursor}, count=count, block=ctx.stream_block_ms)
        return cast(list[Any], found or [])

    try:
        while True:
            room = queue.maxsize - queue.qsize()
            waited = 0.0
            while room == 0:
                if waited >= ctx.stream_stall_s:
                    await _final(queue, _DONE)
                    return
                await asyncio.sleep(STALL_POLL_S)
                waited += STALL_POLL_S
                room = queue.maxsize - queue.qsize()
            count = min(READ_COUNT, room)
            found = await anyio.to_thread.run_sync(read, count, limiter=ctx.stream_limiter)
            for _, entries in found:
                for entry_id, fields in entries:
                    cursor = entry_id.decode()
                    queue.put_nowait((cursor, fields.get(b"msg", b"")))  # room was counted
    except Exception as exc:  # Redis away: the client is told and reconnects
        await _final(queue, exc)


async def _final(queue: asyncio.Queue[Any], item: Any) -> None:
    """End the stream with ``item`` next: what is queued is dropped, never sent, so the
    client's last id is still where it stopped and it reads those entries again after it
    reconnects (dropping only some would leave a hole behind its last id)."""
    while not queue.empty():
        queue.get_nowait()
    queue.put_nowait(item)


async def _status_events(ctx: ApiContext, core: str | None) -> AsyncIterator[bytes]:
    async def pump(queue: asyncio.Queue[Any]) -> None:
        await _status_pump(ctx, core, queue)

    def render(status: Any) -> bytes:
        return b"event: status\ndata: " + msgspec.json.encode(status) + b"\n\n"

    async for chunk in _drained(ctx, pump, render):
        yield chunk


async def _status_pump(ctx: ApiContext, core: str | None, queue: asyncio.Queue[Any]) -> None:
    """Poll the published statuses into ``queue``, one item per core whose watched fields
    changed; a queue full for ``stream_stall_s`` (the client stopped reading) ends the stream
    (a reconnect starts from the current statuses, so nothing the client needs is lost)."""
    seen: dict[str, dict[str, Any]] = {}
    try:
        while True:
            found = await anyio.to_thread.run_sync(
                published_statuses, ctx, limiter=ctx.stream_limiter
            )
            for name, published in found:
                if core is not None and name != core:
                    continue
                watched = {field: published.get(field) for field in STATUS_FIELDS}
                if seen.get(name) == watched:
                    continue
                waited = 0.0
                while queue.full():
                    if waited >= ctx.stream_stall_s:
                        await _final(queue, _DONE)
                        return
                    await asyncio.sleep(STALL_POLL_S)
                    waited += STALL_POLL_S
                seen[name] = watched
                beat = published.get("heartbeat_ns")
                queue.put_nowait({"core": name, **watched, "heartbeat_ns": beat})
            await asyncio.sleep(STATUS_POLL_S)
    except Exception as exc:  # Redis away: the client is told and reconnects
        await _final(queue, exc)
