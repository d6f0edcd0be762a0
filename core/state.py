"""Strategy state in JSON: where an undefined number (NaN) becomes null and back, in one place.

A strategy's state (``Strategy.to_state``) is checkpointed as JSON, which has no NaN or
infinity; msgspec writes both as ``null``. Strategies hold NaN for "not seen yet" (a first
close, an indicator still warming up), so every float of a state is written with
:func:`encode_float` (non-finite -> ``None``) and read back with :func:`decode_float`
(``None`` -> NaN). Reading accepts both forms, so a state restores the same straight from
``to_state`` (hot reloads, batch rows) and from a checkpoint written by any earlier version.

:class:`StrategyState` is the typed form: a struct whose ``float`` fields (and lists of
floats) are encoded and decoded that way, with the JSON shape of the hand-written dicts it
replaces (the same keys; unknown keys of other versions are ignored).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable
from enum import Enum
from typing import Any, Self

import msgspec


def encode_float(value: float) -> float | None:
    """``value`` as JSON: ``None`` for NaN and infinities (which JSON cannot hold)."""
    return value if math.isfinite(value) else None


def decode_float(value: Any) -> float:
    """A float read from state: ``None`` (an encoded NaN) is NaN again."""
    return math.nan if value is None else float(value)


def encode_floats(values: Iterable[float]) -> list[float | None]:
    """``values`` as JSON, each NaN or infinity as ``None``."""
    copied: list[Any] = list(values)
    # One pass in C for the usual all-finite case: a NaN or infinity makes the sum non-finite.
    if math.isfinite(sum(copied)):
        return copied
    return [encode_float(v) for v in copied]


def decode_floats(values: Iterable[Any]) -> list[float]:
    return [decode_float(v) for v in values]


def encode_state(state: Any) -> Any:
    """``state`` with every non-finite float, at any depth of dicts and lists, as ``None``:
    for the untyped parts of a state (a nested dict, a fitted model's parameters)."""
    if isinstance(state, float):
        return encode_float(state)
    if isinstance(state, dict):
        return {key: encode_state(value) for key, value in state.items()}
    if isinstance(state, list | tuple):
        return [encode_state(value) for value in state]
    return state


class StrategyState(msgspec.Struct, kw_only=True):
    """Typed strategy state: ``float`` fields may hold NaN, written as null.

    Subclasses declare the fields; :meth:`to_dict` gives the JSON-safe dict and
    :meth:`from_dict` reads it back: a ``None`` in a ``float`` field, or in a list of floats, is
    NaN; keys the struct does not declare (the base state of ``Strategy._base_state``, keys of
    other versions) are ignored. Fields of other types that may nest floats (dicts, ``Any``)
    are encoded with :func:`encode_state`.
    """

    def to_dict(self) -> dict[str, Any]:
        state = msgspec.structs.asdict(self)
        for name, kind in _field_kinds(type(self)).items():
            if kind is _Kind.FLOAT:
                state[name] = encode_float(state[name])
            elif kind is _Kind.FLOATS:
                state[name] = encode_floats(state[name])
            elif kind is _Kind.NESTED:
                state[name] = encode_state(state[name])
        return state

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> Self:
        data = dict(state)
        for field in _fields(cls):
            if field.name in data:
                data[field.name] = _nan_for_null(data[field.name], field.type)
        return msgspec.convert(data, cls, strict=False)


class _Kind(Enum):
    FLOAT = "float"
    FLOATS = "list of floats"
    NESTED = "may nest floats"
    PLAIN = "no floats"  # int, bool, str and lists of them


_PLAIN_TYPES = (
    msgspec.inspect.IntType,
    msgspec.inspect.BoolType,
    msgspec.inspect.StrType,
    msgspec.inspect.NoneType,
)


def _nan_for_null(value: Any, kind: msgspec.inspect.Type) -> Any:
    """``value`` with ``None`` as NaN wherever ``kind`` has a float (lists of lists too)."""
    if value is None and isinstance(kind, msgspec.inspect.FloatType):
        return math.nan
    if isinstance(value, list) and isinstance(kind, msgspec.inspect.ListType):
        return [_nan_for_null(item, kind.item_type) for item in value]
    if isinstance(value, list) and isinstance(kind, msgspec.inspect.UnionType):
        for member in kind.types:  # ``list[float] | None``
            if isinstance(member, msgspec.inspect.ListType):
                return _nan_for_null(value, member)
    return value


@functools.cache
def _fields(cls: type[StrategyState]) -> tuple[msgspec.inspect.Field, ...]:
    info = msgspec.inspect.type_info(cls)
    assert isinstance(info, msgspec.inspect.StructType)
    return info.fields


@functools.cache
def _field_kinds(cls: type[StrategyState]) -> dict[str, _Kind]:
    kinds: dict[str, _Kind] = {}
    for field in _fields(cls):
        kind = field.type
        if isinstance(kind, msgspec.inspect.FloatType):
            kinds[field.name] = _Kind.FLOAT
        elif isinstance(kind, msgspec.inspect.ListType) and isinstance(
            kind.item_type, msgspec.inspect.FloatType
        ):
            kinds[field.name] = _Kind.FLOATS
        elif isinstance(kind, _PLAIN_TYPES) or (
            isinstance(kind, msgspec.inspect.ListType) and isinstance(kind.item_type, _PLAIN_TYPES)
        ):
            kinds[field.name] = _Kind.PLAIN
        else:
            kinds[field.name] = _Kind.NESTED
    return kinds
