"""The catalogue of strategy types: name -> class, with family, tier, data kind and schema."""

from __future__ import annotations

from typing import Any

from core.errors import ConfigError
from core.strategies.base import Strategy

_TYPES: dict[str, type[Strategy[Any]]] = {}


def register(cls: type[Strategy[Any]]) -> type[Strategy[Any]]:
    """Class decorator adding a strategy type to the catalogue."""
    name = cls.spec.name
    if name in _TYPES and _TYPES[name] is not cls:
        raise ConfigError(f"strategy type {name!r} registered twice")
    _TYPES[name] = cls
    return cls


def _load_builtin_types() -> None:
    # Importing the modules registers their types; kept here so the catalogue is always complete.
    from core.strategies.trend import ma_crossover  # noqa: F401


def strategy_type(name: str) -> type[Strategy[Any]]:
    """Return the class of strategy type ``name``; unknown names raise ConfigError."""
    _load_builtin_types()
    try:
        return _TYPES[name]
    except KeyError:
        known = ", ".join(sorted(_TYPES))
        raise ConfigError(f"unknown strategy type {name!r} (known: {known})") from None


def strategy_types() -> list[type[Strategy[Any]]]:
    _load_builtin_types()
    return [_TYPES[name] for name in sorted(_TYPES)]


def build(
    name: str, config: dict[str, Any], symbol: str, *, instance_name: str | None = None
) -> Strategy[Any]:
    """Build a strategy of type ``name`` from a plain config dict, validated."""
    cls = strategy_type(name)
    return cls(cls.config_type.from_dict(config), symbol, name=instance_name)


def describe(cls: type[Strategy[Any]]) -> dict[str, Any]:
    """JSON-safe description of a type: name, family, tier, data kind, parameter schema."""
    spec = cls.spec
    return {
        "name": spec.name,
        "family": spec.family.value,
        "tier": spec.tier.value,
        "data_kind": spec.data_kind.value,
        "summary": spec.summary,
        "parameters": cls.config_type.json_schema(),
        "defaults": cls.config_type().to_dict(),
    }
