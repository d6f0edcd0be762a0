"""Promote and roll back (operator role), through the registry's gated paths.

Promotion is :meth:`registry.strategy_registry.StrategyRegistry.promote`: it checks the
version's own validation evidence (its finished validation run, pinned report digest and data
hash, a passed look-ahead check, an evaluation that beat the current champion by the margin)
and refuses a version without it (409 ``validation_gate_failed``, the detail naming the
check), leaving the champion as it was. Rollback is
:meth:`~registry.strategy_registry.StrategyRegistry.rollback`. Both are counted for alerting
(``<ns>:learning:counts``), as the commands and flows count them, and followed by a signed
``reload`` naming the model, so the cores load the new champion; the caller is the sender.
"""

# Annotations are evaluated at definition (no `from __future__ import annotations`): the
# routes' caller dependency is a local of router(), which FastAPI could not resolve later.

import logging
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path

from core.adapters.redis_store import RedisStore
from core.errors import RegistryError, ValidationGateFailed
from strategy_engine.api.auth import Role, TokenRecord
from strategy_engine.api.common import COMMON, ApiContext, Refused, problem_responses, require
from strategy_engine.api.models import PromoteRequest, RegistryChange, RollbackRequest

log = logging.getLogger(__name__)

STRATEGY = r"^[A-Za-z0-9._-]{1,200}$"
Strategy = Annotated[str, Path(pattern=STRATEGY, description="a type or model name")]


def router(ctx: ApiContext, registry: Callable[[], Any]) -> APIRouter:
    operator = require(ctx, Role.OPERATOR)
    Caller = Annotated[TokenRecord, Depends(operator)]
    api = APIRouter(
        prefix="/v1/registry", tags=["act"], responses=problem_responses(*COMMON, 404, 409)
    )
    store = RedisStore(ctx.client, ctx.namespace, ctx.core)

    def change(
        strategy: str, caller: TokenRecord, move: Callable[[Any, str], str], kind: str
    ) -> RegistryChange:
        from registry.strategy_registry import CHAMPION, MODEL_PREFIX, PREVIOUS, model_name

        name = strategy if strategy.startswith(MODEL_PREFIX) else model_name(strategy)
        try:
            reg = registry()
            if name not in {m.name for m in reg.registered_models()}:
                raise Refused(404, "unknown_strategy", f"no registered strategy {name!r}")
            before = {a: reg.get_alias(name, a) for a in (CHAMPION, PREVIOUS)}
            version = move(reg, name)
            after = {a: reg.get_alias(name, a) for a in (CHAMPION, PREVIOUS)}
        except ValidationGateFailed as exc:
            raise Refused(409, "validation_gate_failed", str(exc)) from None
        except RegistryError as exc:
            raise Refused(409, "registry_refused", str(exc)) from None
        except Refused:
            raise
        except Exception as exc:  # MLflow's store away or broken
            raise Refused(503, "registry_unavailable", type(exc).__name__) from None
        moved = before[CHAMPION] != after[CHAMPION]
        received = 0
        if moved:
            store.count_learning_event(kind, name)
            message = {"action": "reload", "model": name, "version": version,
                       "caller": caller.name}  # fmt: skip
            received = store.publish_control(
                message, sender=f"api:{caller.name}", key=ctx.control_key()
            )
        log.warning(
            f"{name}: champion {before[CHAMPION]} -> {after[CHAMPION]} by {caller.name}",
            extra={"event": f"api_{kind}", "model": name, "caller": caller.name,
                   "champion": after[CHAMPION], "from_version": before[CHAMPION]},
        )  # fmt: skip
        return RegistryChange(
            name=name, champion_before=before[CHAMPION], champion_after=after[CHAMPION],
            previous_before=before[PREVIOUS], previous_after=after[PREVIOUS],
            reload_sent_to=received, caller=caller.name,
        )  # fmt: skip

    @api.post("/{strategy}/promote", response_model=RegistryChange)
    def promote(strategy: Strategy, body: PromoteRequest, caller: Caller) -> RegistryChange:
        """Make a version the champion if its validation evidence holds (409 if not)."""

        def move(reg: Any, name: str) -> str:
            reg.promote(name, body.version, reason=f"api promote by {caller.name}")
            return body.version

        return change(strategy, caller, move, "promoted")

    @api.post("/{strategy}/rollback", response_model=RegistryChange)
    def rollback(
        strategy: Strategy, caller: Caller, body: RollbackRequest | None = None
    ) -> RegistryChange:
        """Move the champion back to the previous version (409 if there is none)."""
        reason = (body.reason if body else "") or f"api rollback by {caller.name}"

        def move(reg: Any, name: str) -> str:
            return str(reg.rollback(name, reason=reason))

        return change(strategy, caller, move, "rolled_back")

    return api
