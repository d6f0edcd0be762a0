"""Ingest (producer role): market data posted into a feed, through the core's own boundary.

Each event is checked by :class:`core.runtime.ingest.IngestionBoundary` (size, UTF-8,
envelope, schema version, market kinds only, field types, ranges, content, and time and price
plausibility within the post) before anything is written; a refused event is answered with
its :class:`~core.runtime.ingest.RejectCode` and never written. Accepted events are appended
to ``<ns>:md:<feed>`` in one transaction, re-encoded by the codec, with ``t_pub``, exactly as
:class:`core.adapters.market_streams.FeedPublisher` writes them, and the core checks them again
as it reads them (with its own state across posts).
"""

# Annotations are evaluated at definition (no `from __future__ import annotations`): the
# caller dependency is a local of router(), which FastAPI could not resolve later.

import time
from typing import Annotated, Any

import msgspec
from fastapi import APIRouter, Depends, Path

from core import codec
from core.adapters.market_streams import feed_key
from core.runtime.ingest import IngestionBoundary, Rejection
from strategy_engine.api.auth import Role, TokenRecord
from strategy_engine.api.common import COMMON, ApiContext, problem_responses, require
from strategy_engine.api.models import IngestItem, IngestRequest, IngestResult

FEED = r"^[A-Za-z0-9._-]{1,64}$"


def router(ctx: ApiContext) -> APIRouter:
    producer = require(ctx, Role.PRODUCER)
    Caller = Annotated[TokenRecord, Depends(producer)]
    api = APIRouter(prefix="/v1/feeds", tags=["ingest"], responses=problem_responses(*COMMON))

    @api.post("/{feed}/events", response_model=IngestResult)
    def post_events(
        feed: Annotated[str, Path(pattern=FEED, description="the feed's name")],
        body: IngestRequest,
        caller: Caller,
    ) -> IngestResult:
        """Append market events to a feed; each is accepted or refused with its code."""
        # A boundary per post: its ordering and price checks hold within the post; across
        # posts the core's own boundary (which keeps that state) decides.
        boundary = IngestionBoundary()
        items: list[IngestItem] = []
        accepted: list[tuple[int, bytes]] = []
        for index, raw in enumerate(body.events):
            verdict = boundary.admit_message(feed, _bytes(raw))
            if isinstance(verdict, Rejection):
                items.append(IngestItem(index=index, accepted=False, code=str(verdict.code),
                                        reason=verdict.reason[:300]))  # fmt: skip
            else:
                accepted.append((index, codec.encode(verdict)))
                items.append(IngestItem(index=index, accepted=True))
        if accepted:
            key = feed_key(ctx.namespace, feed)
            with ctx.client.pipeline() as pipe:
                for _, payload in accepted:
                    pipe.xadd(key, {b"msg": payload, b"t_pub": str(time.time_ns()).encode()})
                ids = pipe.execute()
            for (index, _), entry_id in zip(accepted, ids, strict=True):
                items[index].id = entry_id.decode()
        return IngestResult(
            feed=feed, stream=feed_key(ctx.namespace, feed), accepted=len(accepted),
            rejected=len(items) - len(accepted), items=items,
        )  # fmt: skip

    return api


def _bytes(raw: Any) -> bytes:
    """The event as the bytes a feed entry would hold (JSON); what is not JSON-able is refused
    by the boundary as a malformed envelope."""
    try:
        return msgspec.json.encode(raw)
    except (TypeError, ValueError, OverflowError):
        return b""
