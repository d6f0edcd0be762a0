"""The base of every configuration: frozen, typed, unknown fields rejected, JSON both ways."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Self

import msgspec

from core.errors import ConfigError


def require(condition: bool, message: str) -> None:
    """Raise :class:`ConfigError` with ``message`` unless ``condition`` holds."""
    if not condition:
        raise ConfigError(message)


class FrozenConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A validated configuration.

    Subclasses check ranges in ``__post_init__`` and raise :class:`ConfigError` naming the value;
    :meth:`from_dict` turns every other validation failure into a one-line ``ConfigError`` too.
    A :class:`~pathlib.Path` field is a string in JSON.
    """

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """Build and validate from plain data (JSON, command-line overrides, a registry param)."""
        try:
            return msgspec.convert(data, cls, strict=False, dec_hook=_decode_path)
        except msgspec.ValidationError as exc:
            raise ConfigError(f"{cls.__name__}: {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = msgspec.to_builtins(self, enc_hook=_encode_path)
        return result

    def replace(self, **changes: Any) -> Self:
        return type(self).from_dict({**self.to_dict(), **changes})

    @classmethod
    def json_schema(cls) -> dict[str, Any]:
        """JSON schema of the fields: the config's own object schema, not a reference to it,
        with the schemas of the configs it nests under ``$defs``."""
        schema: dict[str, Any] = msgspec.json.schema(cls, schema_hook=_path_schema)
        defs: dict[str, Any] = dict(schema.get("$defs", {}))
        own: dict[str, Any] = defs.pop(cls.__name__, schema)
        return {**own, "$defs": defs} if defs else own


def _decode_path(kind: type, value: Any) -> Any:
    if kind is Path and isinstance(value, str | Path):
        return Path(value)
    raise NotImplementedError(f"{kind.__name__} has no JSON form")


def _encode_path(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    raise NotImplementedError(f"{type(value).__name__} has no JSON form")


def _path_schema(kind: type) -> dict[str, Any]:
    if kind is Path:
        return {"type": "string"}
    raise NotImplementedError(f"{kind.__name__} has no JSON schema")
