"""The catalogue of strategy types: name -> class, with family, tier, data kind and schema."""

from __future__ import annotations

import importlib
import pkgutil
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


_loaded = False


def _load_builtin_types() -> None:
    """Import every module under ``core.strategies``: importing a module registers its types."""
    global _loaded
    if _loaded:
        return
    import core.strategies as package

    for info in pkgutil.walk_packages(package.__path__, prefix="core.strategies."):
        importlib.import_module(info.name)
    _loaded = True


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
        "dataset": spec.dataset,
        "parameters": cls.config_type.json_schema(),
        "defaults": cls.config_type().to_dict(),
    }
