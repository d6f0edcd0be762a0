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
# The loader for each gate kind; each reads the CSV layout its docstring names.
LOADERS = {
    "bars": "read_bars_frame",
    "quotes": "read_binance_quotes_frame",
    "trades": "read_binance_trades_frame",
    "funding": "read_funding_frame",
    "text": "read_tweets_frame",
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
    from registry.strategy_registry import CHAMPION, PREVIOUS, StrategyRegistry

    registry = StrategyRegistry()
    name = _model_name(args.strategy)
    known = [model.name for model in registry.registered_models()]
    if name not in known:
        listed = ", ".join(sorted(known)) or "none"
        raise RegistryError(f"no registered strategy {name!r} (registered: {listed})")
    before = {a: registry.get_alias(name, a) for a in (CHAMPION, PREVIOUS)}
    restored = registry.rollback(name)
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
    loaded = _loader(args.kind)(path)
    report = validate(args.kind, loaded.frame, name=f"{args.kind}:{path.name}")
    # A row the loader had to drop is bad data the gate never saw: it fails the check too.
    success = report.success and not loaded.rejected
    result = {
        "kind": args.kind,
        "csv": str(path),
        "success": success,
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


def _loader(kind: str) -> Callable[[Path], LoadResult]:
    from core.data import loaders

    name = LOADERS.get(kind)
    if name is None:
        raise ConfigError(f"unknown data kind {kind!r}; expected one of {', '.join(LOADERS)}")
    loader: Callable[[Path], LoadResult] = getattr(loaders, name)
    return loader


def _validation_text(result: dict[str, Any], gate_text: str) -> str:
    rejected = result["loader_rejections"]
    lines = [f"{'PASSED' if result['success'] else 'FAILED'} {result['kind']} {result['csv']}"]
    if rejected["count"]:
        lines.append(f"loader rejected {rejected['count']} row(s)")
        lines.extend(f"  line {r['line']}: {r['reason']}" for r in rejected["examples"])
    lines.append(gate_text)
    return "\n".join(lines)
