"""JSON encoding of messages with a schema version, and strict decoding.

Every stored message is an envelope ``{"v": SCHEMA_VERSION, "kind": ..., "data": {...}}``.
Decoding checks the version, the kind and every field; anything else raises
:class:`core.errors.MessageError` with a one-line reason, never a crash of the reader.
"""

from __future__ import annotations

import math
from typing import Any, TypeVar

import msgspec

from core.errors import MessageError
from core.model import MESSAGE_TYPES

SCHEMA_VERSION = 1
MAX_MESSAGE_BYTES = 64 * 1024

T = TypeVar("T")

_encoder = msgspec.json.Encoder()


class _Envelope(msgspec.Struct, forbid_unknown_fields=True):
    v: int
    kind: str
    data: msgspec.Raw


_envelope_decoder = msgspec.json.Decoder(_Envelope)
_data_decoders = {kind: msgspec.json.Decoder(t) for kind, t in MESSAGE_TYPES.items()}


def encode(message: msgspec.Struct) -> bytes:
    """Encode a message into its versioned JSON envelope."""
    kind = getattr(message, "kind", "")
    if kind not in MESSAGE_TYPES:
        raise MessageError(f"cannot encode {type(message).__name__}: not a message type")
    return b'{"v":%d,"kind":"%s","data":%s}' % (
        SCHEMA_VERSION,
        kind.encode(),
        _encoder.encode(message),
    )


def decode(payload: bytes | str, expected: type[T] | None = None) -> T:
    """Decode a versioned envelope, validating its version, kind and fields."""
    raw = payload.encode() if isinstance(payload, str) else payload
    if len(raw) > MAX_MESSAGE_BYTES:
        raise MessageError(f"message too large: {len(raw)} bytes > {MAX_MESSAGE_BYTES}")
    try:
        envelope = _envelope_decoder.decode(raw)
    except msgspec.DecodeError as exc:
        raise MessageError(f"malformed message envelope: {exc}") from None
    if envelope.v != SCHEMA_VERSION:
        raise MessageError(
            f"unknown schema version {envelope.v} (this reader knows {SCHEMA_VERSION})"
        )
    decoder = _data_decoders.get(envelope.kind)
    if decoder is None:
        raise MessageError(f"unknown message kind {envelope.kind!r}")
    try:
        message = decoder.decode(envelope.data)
    except msgspec.DecodeError as exc:
        raise MessageError(f"malformed {envelope.kind} message: {exc}") from None
    if expected is not None and not isinstance(message, expected):
        raise MessageError(f"expected a {expected.__name__} message, got {envelope.kind!r}")
    _reject_non_finite(envelope.kind, message)
    return message  # type: ignore[return-value]


def _reject_non_finite(kind: str, message: Any) -> None:
    for name in message.__struct_fields__:
        value = getattr(message, name)
        if isinstance(value, float) and not math.isfinite(value):
            raise MessageError(f"malformed {kind} message: field {name} is {value}")


def dumps(obj: Any) -> bytes:
    """Encode plain JSON-safe data (state snapshots, reports) with the fast encoder."""
    return _encoder.encode(obj)


def loads(payload: bytes | str) -> Any:
    """Decode plain JSON (never evaluates or unpickles anything)."""
    try:
        return msgspec.json.decode(payload)
    except msgspec.DecodeError as exc:
        raise MessageError(f"malformed JSON: {exc}") from None
