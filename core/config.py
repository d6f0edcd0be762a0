"""The base of every configuration: frozen, typed, unknown fields rejected, JSON both ways."""

from __future__ import annotations

from typing import Any, Self

import msgspec

from core.errors import ConfigError


class FrozenConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A validated configuration.

    Subclasses check ranges in ``__post_init__`` and raise :class:`ConfigError` naming the value;
    :meth:`from_dict` turns every other validation failure into a one-line ``ConfigError`` too.
    """

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """Build and validate from plain data (JSON, command-line overrides, a registry param)."""
        try:
            return msgspec.convert(data, cls, strict=False)
        except msgspec.ValidationError as exc:
            raise ConfigError(f"{cls.__name__}: {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = msgspec.to_builtins(self)
        return result

    def replace(self, **changes: Any) -> Self:
        return type(self).from_dict({**self.to_dict(), **changes})
