"""Act routes (operator role): halt, resume, weights, reload, as signed control messages.

Each is published through :meth:`RedisStore.publish_control`, which signs it with the control
key; the sender is ``api:<token name>``, inside the signature, so every core's audit
(``<ns>:control:audit``) names the caller, and the body carries ``caller`` too, in the control
log (``<ns>:control:log``). The cores check weights against their own limits whatever is sent.
"""

# Annotations are evaluated at definition (no `from __future__ import annotations`): the
# routes' caller dependency is a local of router(), which FastAPI could not resolve later.

import math
from typing import Annotated, Any

from fastapi import APIRouter, Depends

from core.adapters.redis_store import RedisStore
from core.errors import ConfigError
from strategy_engine.api.auth import Role, TokenRecord
from strategy_engine.api.common import COMMON, ApiContext, Refused, problem_responses, require
from strategy_engine.api.models import (
    ControlSent,
    EmptyRequest,
    HaltRequest,
    ReloadRequest,
    WeightsRequest,
)

NAME_CHARS = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-/:")


def router(ctx: ApiContext) -> APIRouter:
    operator = require(ctx, Role.OPERATOR)
    api = APIRouter(prefix="/v1/control", tags=["act"], responses=problem_responses(*COMMON))
    store = RedisStore(ctx.client, ctx.namespace, ctx.core)
    Caller = Annotated[TokenRecord, Depends(operator)]

    def send(message: dict[str, Any], caller: TokenRecord) -> ControlSent:
        sender = f"api:{caller.name}"
        try:
            key = ctx.control_key()
        except (ConfigError, OSError) as exc:  # no usable key: nothing is signed, nothing sent
            raise Refused(503, "control_key_unavailable", type(exc).__name__) from None
        received = store.publish_control({**message, "caller": caller.name}, sender=sender,
                                         key=key)  # fmt: skip
        return ControlSent(action=message["action"], namespace=ctx.namespace,
                           cores_received=received, sender=sender)  # fmt: skip

    @api.post("/halt", response_model=ControlSent)
    def halt(body: HaltRequest, caller: Caller) -> ControlSent:
        """Stop new risk on every core of the namespace; ``flatten`` closes positions too."""
        return send({"action": "halt", "flatten": body.flatten, "reason": body.reason}, caller)

    @api.post("/resume", response_model=ControlSent)
    def resume(caller: Caller, body: EmptyRequest | None = None) -> ControlSent:
        """Let the cores trade again after a halt."""
        return send({"action": "resume"}, caller)

    @api.post("/weights", response_model=ControlSent)
    def weights(body: WeightsRequest, caller: Caller) -> ControlSent:
        """Set strategy weights; each core applies them only within its own limits."""
        for name, weight in body.weights.items():
            if not (0 < len(name) <= 200 and set(name) <= NAME_CHARS):
                raise Refused(422, "invalid_weights", f"not a strategy name: {name[:40]!r}")
            if not math.isfinite(weight):
                raise Refused(422, "invalid_weights", f"weight of {name} is not finite")
        return send({"action": "weights", "weights": body.weights}, caller)

    @api.post("/reload", response_model=ControlSent)
    def reload(caller: Caller, body: ReloadRequest | None = None) -> ControlSent:
        """Ask the cores to reload their active set from the registry's aliases."""
        message: dict[str, Any] = {"action": "reload"}
        if body is not None and body.model:
            message.update(model=body.model, version=body.version)
        return send(message, caller)

    return api
