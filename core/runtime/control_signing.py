"""Signed control messages: only holders of the control key can steer a core.

A message is an envelope ``{"v", "sender", "issued_ns", "nonce", "body", "sig"}`` where ``sig``
is HMAC-SHA256 of the other fields (canonical JSON, sorted keys) under the control key
(:mod:`core.adapters.control_key`). :class:`ControlVerifier` accepts a message only if the
signature verifies, it was issued within a window of the receiver's clock, and its nonce was
not seen before; anything else is a :class:`ControlRejection` with a stable code.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import msgspec

from core.errors import ConfigError
from core.messages import CONTROL_VERSION, ControlEnvelope, Message

MAX_CONTROL_BYTES = 16 * 1024
DEFAULT_WINDOW_NS = 120 * 1_000_000_000
"""How far a message's issue time may be from the receiver's clock (either way)."""
_DOMAIN = b"strategy-engine control v1\n"  # keeps these MACs apart from any other use of the key


class ControlCode(StrEnum):
    """Why a control message was not acted on (dead-letter ``code``)."""

    MALFORMED = "control_malformed"
    UNSIGNED = "control_unsigned"
    BAD_SIGNATURE = "control_bad_signature"
    STALE = "control_stale"
    REPLAYED = "control_replayed"
    UNKNOWN_ACTION = "control_unknown_action"


def _mac(key: bytes, v: int, sender: str, issued_ns: int, nonce: str, body: Any) -> str:
    signed = msgspec.json.encode(
        {"v": v, "sender": sender, "issued_ns": issued_ns, "nonce": nonce, "body": body},
        order="sorted",
    )
    return hmac.new(key, _DOMAIN + signed, hashlib.sha256).hexdigest()


def sign_control(
    body: Mapping[str, Any] | Message,
    key: bytes,
    *,
    sender: str,
    issued_ns: int | None = None,
) -> bytes:
    """The wire form (:class:`core.messages.ControlEnvelope`) of ``body`` (a
    :data:`core.messages.ControlBody`, or ``{"action": ...}``) signed with ``key`` by
    ``sender``."""
    if len(key) < 16:
        raise ConfigError("the control key must be at least 16 bytes")
    issued = time.time_ns() if issued_ns is None else issued_ns
    nonce = secrets.token_hex(16)
    plain = body.to_dict() if isinstance(body, Message) else msgspec.to_builtins(dict(body))
    sig = _mac(key, CONTROL_VERSION, sender, issued, nonce, plain)
    envelope = ControlEnvelope(
        v=CONTROL_VERSION, sender=sender, issued_ns=issued, nonce=nonce, body=plain, sig=sig
    )
    return msgspec.json.encode(envelope)


@dataclass(frozen=True)
class ControlMessage:
    """A verified control message: who sent it, when, and what it asks."""

    sender: str
    issued_ns: int
    body: dict[str, Any]


@dataclass(frozen=True)
class ControlRejection:
    code: ControlCode
    reason: str
    sender: str = ""


class ControlVerifier:
    """Check signatures, freshness and uniqueness of control messages; O(1) per message.

    Nonces are remembered for twice the window (older messages are stale anyway), so memory is
    bounded by the message rate times the window.
    """

    def __init__(
        self,
        key: bytes,
        *,
        window_ns: int = DEFAULT_WINDOW_NS,
        wall_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        if len(key) < 16:
            raise ConfigError("the control key must be at least 16 bytes")
        self._key = key
        self._window = window_ns
        self._wall_ns = wall_ns
        self._seen: dict[str, int] = {}  # nonce -> issue time, in arrival order

    def verify(self, payload: bytes) -> ControlMessage | ControlRejection:
        if len(payload) > MAX_CONTROL_BYTES:
            return ControlRejection(
                ControlCode.MALFORMED, f"{len(payload)} bytes > {MAX_CONTROL_BYTES}"
            )
        try:
            envelope = msgspec.json.decode(payload, type=ControlEnvelope)
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
            return self._unsigned_or_malformed(payload, exc)
        sender = envelope.sender[:128]
        expected = _mac(
            self._key, envelope.v, envelope.sender, envelope.issued_ns, envelope.nonce,
            envelope.body,
        )  # fmt: skip
        if not hmac.compare_digest(expected, envelope.sig):
            return ControlRejection(ControlCode.BAD_SIGNATURE, "signature does not verify", sender)
        now = self._wall_ns()
        if abs(now - envelope.issued_ns) > self._window:
            return ControlRejection(
                ControlCode.STALE,
                f"issued {(now - envelope.issued_ns) / 1e9:.0f} s from this core's clock "
                f"(window {self._window / 1e9:g} s)",
                sender,
            )
        if envelope.nonce in self._seen:
            return ControlRejection(ControlCode.REPLAYED, "nonce seen before: a replay", sender)
        self._remember(envelope.nonce, envelope.issued_ns, now)
        return ControlMessage(sender, envelope.issued_ns, envelope.body)

    def _remember(self, nonce: str, issued_ns: int, now: int) -> None:
        seen = self._seen
        seen[nonce] = issued_ns
        horizon = now - 2 * self._window
        while seen:
            oldest = next(iter(seen))
            if seen[oldest] >= horizon:
                break
            del seen[oldest]

    @staticmethod
    def _unsigned_or_malformed(payload: bytes, exc: Exception) -> ControlRejection:
        try:
            plain = msgspec.json.decode(payload)
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
            plain = None
        if isinstance(plain, dict) and "sig" not in plain:
            return ControlRejection(ControlCode.UNSIGNED, "an unsigned control message")
        return ControlRejection(ControlCode.MALFORMED, f"not a control envelope: {exc}"[:300])
