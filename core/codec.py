"""JSON encoding of messages with a schema version, and strict decoding.

Every stored message is an envelope ``{"v": SCHEMA_VERSION, "kind": ..., "data": {...}}``.
Decoding checks the version, the kind and every field; anything else raises
:class:`core.errors.MessageError` with a one-line reason, never a crash of the reader.
"""

from __future__ import annotations

import math
import typing
from collections.abc import Collection
from typing import Any, TypeVar

import msgspec

from core.errors import MessageError
from core.model import MESSAGE_TYPES

SCHEMA_VERSION = 1
MAX_MESSAGE_BYTES = 64 * 1024

T = TypeVar("T")


def _plain(obj: Any) -> Any:
    """Typed strings (``core.model.InstanceKey``) encode as the strings they are."""
    if isinstance(obj, str):
        return str.__str__(obj)
    raise TypeError(f"Encoding objects of type {type(obj).__name__} is unsupported")


_encoder = msgspec.json.Encoder(enc_hook=_plain)


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


def decode(
    payload: bytes | str, expected: type[T] | None = None, *, kinds: Collection[str] = ()
) -> T:
    """Decode a versioned envelope, validating its version, kind and fields.

    ``kinds``, if given, are the only message kinds accepted (a feed of market data takes no
    orders). Every failure is a :class:`MessageError` whose ``code`` names it; bytes that are
    not UTF-8 and nesting too deep for the decoder are failures like any other.
    """
    raw = payload.encode(errors="surrogatepass") if isinstance(payload, str) else payload
    if len(raw) > MAX_MESSAGE_BYTES:
        raise MessageError(
            f"message too large: {len(raw)} bytes > {MAX_MESSAGE_BYTES}", "too_large"
        )
    envelope = _decode_part(raw, _envelope_decoder, "message envelope", "malformed_envelope")
    if envelope.v != SCHEMA_VERSION:
        raise MessageError(
            f"unknown schema version {envelope.v} (this reader knows {SCHEMA_VERSION})",
            "unknown_schema_version",
        )
    decoder = _data_decoders.get(envelope.kind)
    if decoder is None:
        raise MessageError(f"unknown message kind {envelope.kind[:64]!r}", "unknown_kind")
    if kinds and envelope.kind not in kinds:
        raise MessageError(f"a {envelope.kind} message is not allowed here", "kind_not_allowed")
    message = _decode_part(envelope.data, decoder, f"{envelope.kind} message", "malformed_message")
    if expected is not None and not isinstance(message, expected):
        raise MessageError(
            f"expected a {expected.__name__} message, got {envelope.kind!r}", "wrong_kind"
        )
    reject_non_finite(envelope.kind, message)
    return message


def _decode_part(raw: Any, decoder: msgspec.json.Decoder[Any], what: str, code: str) -> Any:
    try:
        return decoder.decode(raw)
    except msgspec.DecodeError as exc:
        if not _is_utf8(raw):
            code = "not_utf8"
        elif "out of range" in str(exc):  # a number beyond float64 (1e400) or int64/uint64
            code = "value_out_of_range"
        raise MessageError(f"malformed {what}: {exc}", code) from None
    except UnicodeDecodeError as exc:  # msgspec checks UTF-8 inside strings as it meets them
        raise MessageError(f"malformed {what}: not UTF-8 at byte {exc.start}", "not_utf8") from None
    except RecursionError:
        raise MessageError(f"malformed {what}: nested too deeply", "too_deep") from None


def _is_utf8(raw: Any) -> bool:
    try:
        bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def reject_non_finite(kind: str, message: Any) -> None:
    """Raise MessageError (code ``non_finite``) for a NaN or infinite float field."""
    cls = type(message)
    names = _FLOAT_FIELDS.get(cls)
    if names is None:
        names = _FLOAT_FIELDS[cls] = _float_fields(cls)
    for name in names:
        value = getattr(message, name)
        if isinstance(value, float) and not math.isfinite(value):
            raise MessageError(f"malformed {kind} message: field {name} is {value}", "non_finite")


_FLOAT_FIELDS: dict[type, tuple[str, ...]] = {}


def _float_fields(cls: type) -> tuple[str, ...]:
    """The fields of a message type that may hold a float (the others cannot be NaN)."""
    return tuple(
        field.name
        for field in msgspec.structs.fields(cls)
        if field.type is float or float in typing.get_args(field.type)
    )


def dumps(obj: Any) -> bytes:
    """Encode plain JSON-safe data (state snapshots, reports) with the fast encoder."""
    return _encoder.encode(obj)


def loads(payload: bytes | str) -> Any:
    """Decode plain JSON (never evaluates or unpickles anything)."""
    try:
        return msgspec.json.decode(payload)
    except msgspec.DecodeError as exc:
        raise MessageError(f"malformed JSON: {exc}") from None
