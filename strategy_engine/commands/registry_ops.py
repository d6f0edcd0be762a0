"""Registry and data commands: list the registry, roll a champion back, gate a CSV."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import ConfigError, RegistryError
from strategy_engine.output import print_json

if TYPE_CHECKING:
    from core.data.loaders import LoadResult

MAX_REJECTS_SHOWN = 5
DAY_S = 86_400
# The loader ("module:function") for each gate kind; each reads the CSV layout its docstring
# names.
LOADERS = {
    "bars": "core.data.loaders:read_bars_frame",
    "quotes": "core.data.loaders:read_binance_quotes_frame",
    "trades": "core.data.loaders:read_binance_trades_frame",
    "funding": "core.data.loaders:read_funding_frame",
    "text": "core.data.loaders:read_tweets_frame",
    "macro": "core.data.macro:read_fred_series",
}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("registry", help="list registered strategies, versions and aliases")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=_registry)

    p = sub.add_parser("rollback", help="move a strategy's champion back to its previous version")
    p.add_argument("--strategy", required=True, help="type or model name, e.g. ma_crossover")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=_rollback)

    p = sub.add_parser("validate", help="run a data gate on a CSV; exit 1 if it fails")
    p.add_argument("--kind", required=True, choices=sorted(LOADERS), help="data kind")
    p.add_argument("--csv", required=True, help="the file to check")
    p.add_argument(
        "--max-age-days",
        type=float,
        help="fail if the newest timestamp is more than N days before --as-of (default: now)",
    )
    p.add_argument("--as-of", help="freshness reference day, YYYY-MM-DD (UTC 00:00)")
    p.add_argument(
        "--publication-lag-days",
        type=int,
        help="macro only: days after the month's end at which the series is published "
        "(default: known FRED series' lag)",
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=_validate)


# --- registry ----------------------------------------------------------------------------------


def _registry(args: argparse.Namespace) -> int:
    from registry.strategy_registry import StrategyRegistry

    listing = StrategyRegistry().list_strategies()
    if args.json:
        print_json(listing)
        return 0
    if not listing:
        print("no registered strategies")
    for model in listing:
        aliases = ", ".join(f"{a}={v}" for a, v in model["aliases"].items()) or "no aliases"
        print(f"{model['name']}  ({aliases})")
        for version in model["versions"]:
            tags = version["tags"]
            marks = f" [{', '.join(version['aliases'])}]" if version["aliases"] else ""
            print(
                f"  v{version['version']:<4}{version['created']}  "
                f"validation={tags.get('validation_success', '?')}  "
                f"code={tags.get('code_version', '?')}{marks}"
            )
    return 0


def _rollback(args: argparse.Namespace) -> int:
    from pipelines.lifecycle import rollback_champion
    from registry.strategy_registry import CHAMPION, PREVIOUS, StrategyRegistry

    registry = StrategyRegistry()
    name = _model_name(args.strategy)
    known = [model.name for model in registry.registered_models()]
    if name not in known:
        listed = ", ".join(sorted(known)) or "none"
        raise RegistryError(f"no registered strategy {name!r} (registered: {listed})")
    before = {a: registry.get_alias(name, a) for a in (CHAMPION, PREVIOUS)}
    # Logged (model_rolled_back) and counted for alerting (learning:counts rolled_back|name).
    restored = rollback_champion(registry, name, reason="operator rollback")
    change = {
        "name": name,
        "champion_before": before[CHAMPION],
        "champion_after": restored,
        "previous_before": before[PREVIOUS],
        "previous_after": registry.get_alias(name, PREVIOUS),
    }
    if args.json:
        print_json(change)
    else:
        print(
            f"{name}: champion {change['champion_before']} -> {restored} "
            f"(previous {change['previous_before']} -> {change['previous_after']})"
        )
    return 0


def _model_name(strategy: str) -> str:
    from registry.strategy_registry import MODEL_PREFIX, model_name

    if not strategy.strip():
        raise ConfigError("--strategy must name a strategy type, was empty")
    return strategy if strategy.startswith(MODEL_PREFIX) else model_name(strategy)


# --- validate ----------------------------------------------------------------------------------


def _validate(args: argparse.Namespace) -> int:
    from pipelines.validation import validate

    path = Path(args.csv)
    freshness = _freshness(args.as_of, args.max_age_days)
    loaded = _load(args.kind, path, args.publication_lag_days)
    report = validate(args.kind, loaded.frame, name=f"{args.kind}:{path.name}", **freshness)
    # A row the loader had to drop is bad data the gate never saw: it fails the check too.
    success = report.success and not loaded.rejected
    result = {
        "kind": args.kind,
        "csv": str(path),
        "success": success,
        "freshness": _freshness_text(freshness),
        "loader_rejections": {
            "count": len(loaded.rejected),
            "examples": [
                {"line": r.line, "reason": r.reason, "raw": r.raw}
                for r in loaded.rejected[:MAX_REJECTS_SHOWN]
            ],
        },
        "failed_expectations": [
            {
                "expectation": r.expectation,
                "unexpected_count": r.unexpected_count,
                "detail": r.detail,
            }
            for r in report.failed()
        ],
        "gate": report.to_dict(),
    }
    if args.json:
        print_json(result)
    else:
        print(_validation_text(result, report.summary_text()))
    return 0 if success else 1


def _freshness(as_of: str | None, max_age_days: float | None) -> dict[str, Any]:
    """Return the gate's freshness options (none without ``--max-age-days``)."""
    import math

    import pandas as pd

    if max_age_days is None:
        if as_of is not None:
            raise ConfigError(f"--as-of {as_of} needs --max-age-days")
        return {}
    if not (0 < max_age_days < math.inf):
        raise ConfigError(f"--max-age-days must be a positive number, was {max_age_days:g}")
    if as_of is None:
        as_of_ns = pd.Timestamp.now(tz="UTC").value
    else:
        try:
            as_of_ns = pd.Timestamp(as_of, tz="UTC").as_unit("ns").value
        except ValueError:
            raise ConfigError(f"--as-of must be a date YYYY-MM-DD, was {as_of!r}") from None
    return {"as_of_ns": as_of_ns, "max_age_s": max_age_days * DAY_S}


def _freshness_text(freshness: dict[str, Any]) -> dict[str, Any] | None:
    """Return the freshness reference as ISO time and days, for the JSON result."""
    if not freshness:
        return None
    import pandas as pd

    as_of = pd.Timestamp(freshness["as_of_ns"], unit="ns", tz="UTC").isoformat()
    return {"as_of": as_of, "max_age_days": freshness["max_age_s"] / DAY_S}


def _load(kind: str, path: Path, publication_lag_days: int | None) -> LoadResult:
    if publication_lag_days is None:
        return _loader(kind)(path)
    if kind != "macro":
        raise ConfigError(f"--publication-lag-days applies to --kind macro only, not {kind!r}")
    from core.data.macro import read_fred_series

    return read_fred_series(path, publication_lag_days=publication_lag_days)


def _loader(kind: str) -> Callable[[Path], LoadResult]:
    import importlib

    target = LOADERS.get(kind)
    if target is None:
        raise ConfigError(f"unknown data kind {kind!r}; expected one of {', '.join(LOADERS)}")
    module, name = target.split(":")
    loader: Callable[[Path], LoadResult] = getattr(importlib.import_module(module), name)
    return loader


def _validation_text(result: dict[str, Any], gate_text: str) -> str:
    rejected = result["loader_rejections"]
    lines = [f"{'PASSED' if result['success'] else 'FAILED'} {result['kind']} {result['csv']}"]
    if rejected["count"]:
        lines.append(f"loader rejected {rejected['count']} row(s)")
        lines.extend(f"  line {r['line']}: {r['reason']}" for r in rejected["examples"])
    lines.append(gate_text)
    return "\n".join(lines)
