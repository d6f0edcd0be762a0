"""Parameter variants of a live strategy: bounded multiplicative perturbations of its config."""

from __future__ import annotations

import itertools
import math
from typing import Any

from core.errors import ConfigError
from core.strategies.catalogue import strategy_type

MAX_VARIANTS = 16
MAX_FACTOR = 4.0  # no variant moves a parameter further than x4 or /4 from the live value
DEFAULT_FACTORS = (0.5, 0.75, 1.0, 1.5, 2.0)


def variant_configs(
    type_name: str,
    config: dict[str, Any],
    *,
    fields: tuple[str, ...] | None = None,
    factors: tuple[float, ...] = DEFAULT_FACTORS,
    max_variants: int = 8,
) -> list[dict[str, Any]]:
    """Return up to ``max_variants`` valid configs around ``config``, the live one first.

    Each of ``fields`` (default: the integer fields named ``*_period``) is multiplied by each of
    ``factors`` (integers rounded, at least 1); every combination the config type accepts is
    kept, nearest to the live config first (smallest sum of ``|log factor|``).

    Raises
    ------
    ConfigError
        If a factor is outside ``[1/4, 4]``, a field is not numeric, ``max_variants`` is not in
        ``[2, 16]``, or fewer than two distinct valid variants exist.
    """
    if not 2 <= max_variants <= MAX_VARIANTS:
        raise ConfigError(f"max_variants must be within [2, {MAX_VARIANTS}], was {max_variants}")
    for factor in factors:
        if not 1.0 / MAX_FACTOR <= factor <= MAX_FACTOR:
            raise ConfigError(f"factors must be within [0.25, 4], was {factor}")
    config_type = strategy_type(type_name).config_type
    live = config_type.from_dict(config).to_dict()
    names = fields if fields is not None else _period_fields(live)
    for name in names:
        if isinstance(live.get(name), bool) or not isinstance(live.get(name), int | float):
            raise ConfigError(
                f"field {name!r} of {type_name} is not numeric, was {live.get(name)!r}"
            )
    combos = sorted(
        itertools.product(factors, repeat=len(names)),
        key=lambda combo: sum(abs(math.log(f)) for f in combo),
    )
    out = [live]
    for combo in combos:
        candidate = _perturbed(config_type, live, names, combo)
        if candidate is not None and candidate not in out:
            out.append(candidate)
        if len(out) == max_variants:
            break
    if len(out) < 2:
        raise ConfigError(f"no valid variant of {type_name} around {live} with factors {factors}")
    return out


def _period_fields(config: dict[str, Any]) -> tuple[str, ...]:
    return tuple(
        k for k, v in config.items() if k.endswith("_period") and isinstance(v, int)
        and not isinstance(v, bool)
    )  # fmt: skip


def _perturbed(
    config_type: Any, live: dict[str, Any], names: tuple[str, ...], combo: tuple[float, ...]
) -> dict[str, Any] | None:
    changes: dict[str, Any] = {}
    for name, factor in zip(names, combo, strict=True):
        value = live[name]
        changes[name] = max(1, round(value * factor)) if isinstance(value, int) else value * factor
    try:
        result: dict[str, Any] = config_type.from_dict({**live, **changes}).to_dict()
    except ConfigError:
        return None  # e.g. fast_period pushed past slow_period
    return result
