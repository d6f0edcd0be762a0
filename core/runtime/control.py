"""The control channel: signed messages that steer a running core, and what they may do.

Who may steer: only holders of the control key. Every message on ``<ns>:control`` is an
envelope signed with HMAC-SHA256; the core verifies the signature, that it was issued within
a window of its clock, and that its nonce was not seen before
(:mod:`core.runtime.control_signing`). An unsigned, forged, stale or replayed message is a
dead letter, never an action. What they may do (:class:`ControlInbox`): ``reload``
(coalesced: one reload per tactical cycle however many ask), ``weights`` (bounded, below),
``halt`` (stop new risk, optionally flatten) and ``resume``. At most
:data:`MAX_MESSAGES_PER_CYCLE` are taken per cycle; every message, applied, refused or
rejected, goes to the audit stream with its sender.

The bodies are :data:`core.messages.ControlBody` (tagged by ``action``); a ``weights`` message
comes from the adaptation flow or an operator::

    {"action": "weights", "weights": {"strategy.ma_crossover": 0.5, ...}, "changes": [...]}

The core checks it against its own :class:`WeightLimits` whatever the sender was configured
with: every named strategy must be in the active set and every weight a finite number within
the limits, moved by at most ``max_step``. One bad entry refuses the whole message (nothing is
applied), so a message is applied whole or not at all. An applied message recomposes every
target the changed weights touch and places the orders that move the positions there at once.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import msgspec

from core.config import FrozenConfig, require
from core.engine.engine import TradingEngine
from core.messages import (
    CONTROL_ACTIONS,
    ControlAudit,
    ControlBody,
    HaltControl,
    ReloadControl,
    WeightsControl,
)
from core.runtime.control_signing import (
    ControlCode,
    ControlMessage,
    ControlRejection,
    ControlVerifier,
)

log = logging.getLogger(__name__)

MAX_MESSAGES_PER_CYCLE = 64

MAX_WEIGHTS = 1_000
"""Most strategies one message may name (a size limit on untrusted input)."""


class WeightLimits(FrozenConfig, frozen=True, kw_only=True):
    """The core's own bounds on weights set through the control channel."""

    min_weight: float = 0.0
    max_weight: float = 2.0
    # One message cannot swing a book: a weight moves by at most half a unit (the adaptation
    # flow's bounds move it 0.25 per run by default, and are configured no wider than this).
    max_step: float | None = 0.5

    def __post_init__(self) -> None:
        require(
            math.isfinite(self.min_weight) and math.isfinite(self.max_weight),
            f"weight limits must be finite, were [{self.min_weight}, {self.max_weight}]",
        )
        require(
            0.0 <= self.min_weight <= self.max_weight,
            f"weight limits need 0 <= min_weight <= max_weight, "
            f"were [{self.min_weight}, {self.max_weight}]",
        )
        require(
            self.max_step is None or self.max_step > 0.0,
            f"max_step must be > 0, was {self.max_step}",
        )


class _Refused(Exception):
    """A message that cannot be applied; the text says why."""


def apply_control(engine: TradingEngine, message: Any, limits: WeightLimits | None = None) -> str:
    """Apply a ``weights`` control message to ``engine``; return one line saying what happened.

    Parameters
    ----------
    engine
        The running engine; its composer's weights change only if the whole message is valid.
    message
        The decoded control message (a dict from JSON, never unpickled).
    limits
        The core's bounds (default :class:`WeightLimits`).

    Returns
    -------
    str
        ``"applied weights: ..."``, ``"refused weights message: <reason>"`` or, for a message
        of another action, ``"ignored control message: ..."``.
    """
    bounds = limits or WeightLimits()
    if not isinstance(message, Mapping):
        return f"refused control message: expected a JSON object, was {type(message).__name__}"
    action = message.get("action")
    if action != "weights":
        return f"ignored control message: action {action!r} is not a weights update"
    try:
        wanted = _weights(message.get("weights"))
        current = current_weights(engine)
        for name, weight in wanted.items():
            _check(name, weight, current, bounds)
        # The checks above name the bad entry; the contract checks the rest (``changes``).
        msgspec.convert(message, WeightsControl)
    except _Refused as exc:
        return f"refused weights message: {exc}"
    except msgspec.ValidationError as exc:
        return f"refused weights message: {exc}"
    engine.set_weights({**current, **wanted})
    moves = ", ".join(f"{n} {current[n]:g}->{w:g}" for n, w in sorted(wanted.items()))
    return f"applied weights to {len(wanted)} strategies: {moves}"


def current_weights(engine: TradingEngine) -> dict[str, float]:
    """The weight the composer gives each active strategy (the deployment's unless changed)."""
    set_by_control = engine.composer.weights
    return {
        d.name: float(set_by_control.get(d.name, d.weight)) for d in engine.applicator.deployments
    }


def _weights(raw: Any) -> dict[str, float]:
    if not isinstance(raw, Mapping) or not raw:
        raise _Refused(f"'weights' must be a non-empty object of strategy -> number, was {raw!r}")
    if len(raw) > MAX_WEIGHTS:
        raise _Refused(f"'weights' names {len(raw)} strategies, at most {MAX_WEIGHTS} allowed")
    found = {}
    for name, value in raw.items():
        if not isinstance(name, str):
            raise _Refused(f"strategy names must be strings, was {name!r}")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _Refused(f"weight of {name!r} must be a number, was {value!r}")
        found[name] = float(value)
    return found


def _check(name: str, weight: float, current: Mapping[str, float], limits: WeightLimits) -> None:
    if name not in current:
        known = ", ".join(sorted(current)) or "none"
        raise _Refused(f"strategy {name!r} is not in the active set (active: {known})")
    if not math.isfinite(weight):
        raise _Refused(f"weight of {name!r} must be finite, was {weight}")
    if not limits.min_weight <= weight <= limits.max_weight:
        raise _Refused(
            f"weight of {name!r} must be within [{limits.min_weight:g}, {limits.max_weight:g}], "
            f"was {weight:g}"
        )
    step = abs(weight - current[name])
    if limits.max_step is not None and step > limits.max_step + 1e-12:
        raise _Refused(
            f"weight of {name!r} may move by at most {limits.max_step:g} per message, "
            f"was {current[name]:g} -> {weight:g}"
        )


# --- the core's inbox ------------------------------------------------------------------------


class ControlRecords(Protocol):
    """Where the inbox records what it did (:class:`core.adapters.redis_store.RedisStore`)."""

    def audit_control(self, record: dict[str, Any]) -> None: ...

    def dead_letter(
        self, source: str, reason: str, raw: bytes | str, *, key: str = "", code: str = ""
    ) -> bool: ...


class ControlInbox:
    """Verify and apply the control messages a core receives (see the module docstring)."""

    def __init__(
        self,
        verifier: ControlVerifier,
        records: ControlRecords,
        *,
        core: str,
        limits: WeightLimits | None = None,
        wall_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.verifier = verifier
        self.records = records
        self.core = core
        self.limits = limits or WeightLimits()
        self._wall_ns = wall_ns
        self.rejected_by_code: dict[str, int] = {}

    def handle(self, engine: TradingEngine, payloads: list[bytes]) -> tuple[bool, list[str]]:
        """Act on ``payloads`` in order; return whether a reload is asked and what was done."""
        reload, notes = False, []
        rejected: dict[str, int] = {}
        last_rejection = ""
        for payload in payloads[:MAX_MESSAGES_PER_CYCLE]:
            outcome = self.verifier.verify(payload)
            if isinstance(outcome, ControlRejection):
                code = str(outcome.code)
                self.rejected_by_code[code] = self.rejected_by_code.get(code, 0) + 1
                rejected[code] = rejected.get(code, 0) + 1
                self.records.dead_letter("control", outcome.reason, payload, code=code)
                note = f"rejected control message ({code}): {outcome.reason}"
                last_rejection = note
                self._audit(outcome.sender, "", note)
                notes.append(note)
                continue
            action = outcome.body.get("action")
            note, asks_reload = self._apply(engine, outcome)
            reload |= asks_reload
            self._audit(outcome.sender, str(action), note)
            _log_outcome(self.core, outcome.sender, str(action), note)
            notes.append(note)
        if rejected:
            # Unsigned, forged, stale or replayed messages can come in floods: one record per
            # batch (at most one a tactical cycle) with counts by code, not one per message.
            log.warning(
                last_rejection,
                extra={"event": "control_rejected", "core": self.core, "counts": rejected,
                       "rejected": sum(rejected.values())},
            )  # fmt: skip
        return reload, notes

    def _apply(self, engine: TradingEngine, message: ControlMessage) -> tuple[str, bool]:
        body = message.body
        action = body.get("action")
        if action not in CONTROL_ACTIONS:
            code = str(ControlCode.UNKNOWN_ACTION)
            self.rejected_by_code[code] = self.rejected_by_code.get(code, 0) + 1
            return f"refused control message: unknown action {str(action)[:40]!r}", False
        if action == "weights":
            return apply_control(engine, body, self.limits), False
        try:
            command = msgspec.convert(body, ControlBody)
        except msgspec.ValidationError as exc:
            if action != "halt":
                return f"refused {action} message: {exc}", False
            # A key holder asked to stop: stopping new risk is the safe reading of a halt whose
            # other fields do not decode (it does not flatten on a guess).
            command = HaltControl(reason=f"operator halt, fields ignored: {exc}")
        if isinstance(command, ReloadControl):
            return "reload requested", True
        if isinstance(command, HaltControl):
            why = (command.reason or "operator halt")[:200]
            engine.halt(f"{why} (by {message.sender})", flatten=command.flatten)
            return f"halted{' and flattened' if command.flatten else ''}: {why}", False
        engine.resume()
        return "resumed trading", False

    def _audit(self, sender: str, action: str, outcome: str) -> None:
        self.records.audit_control(
            ControlAudit(
                core=self.core, at_ns=self._wall_ns(), sender=sender, action=action,
                outcome=outcome,
            ).to_dict()
        )  # fmt: skip


def _log_outcome(core: str, sender: str, action: str, note: str) -> None:
    """One record per signed message: applied (info) or refused, with a code, (warning)."""
    fields = {"core": core, "sender": sender, "action": action, "outcome": note}
    if note.startswith(("refused", "ignored")):
        code = (
            str(ControlCode.UNKNOWN_ACTION)
            if "unknown action" in note
            else f"control_{action}_refused"
        )
        log.warning(note, extra={"event": "control_refused", **fields, "code": code})
    else:
        log.info(note, extra={"event": "control_applied", **fields})
