"""Learning-loop commands: govern a running core's online-generator proposal (``adopt-shadow``)."""

from __future__ import annotations

import argparse
import os

from strategy_engine.output import print_json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "adopt-shadow",
        help="govern a core's online-generator proposal as a challenger of its champion",
    )
    p.add_argument("--core", default="core-1", help="the core whose status holds the proposal")
    p.add_argument(
        "--namespace", default=None, help="Redis namespace (default $STRATEGY_ENGINE_NAMESPACE)"
    )
    p.add_argument(
        "--dataset", default=None, help="evaluate on this data set (default: the type's own)"
    )
    p.add_argument(
        "--symbol",
        action="append",
        default=[],
        help="instruments to evaluate on (default: the champion's)",
    )
    p.add_argument(
        "--margin",
        type=float,
        default=None,
        help="the lead the variant must show over the champion (default: the family's)",
    )
    p.add_argument("--fast", action="store_true", help="evaluate on the small slices")
    p.add_argument("--no-notify", action="store_true", help="do not tell running cores")
    p.add_argument("--json", action="store_true", help="print the outcome as JSON")
    p.set_defaults(handler=_adopt_shadow)


def _adopt_shadow(args: argparse.Namespace) -> int:
    """Exit 0 when the proposal was governed (promoted or kept) or there was none to govern,
    1 when its data gate failed."""
    from strategy_engine.environment import apply_environment_defaults

    apply_environment_defaults()
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    from pipelines.proposals import adopt_shadow_variant

    outcome = adopt_shadow_variant(
        core=args.core,
        namespace=args.namespace,
        dataset=args.dataset,
        symbols=args.symbol or None,
        fast=args.fast,
        margin=args.margin,
        notify=not args.no_notify,
    )
    if args.json:
        print_json({k: v for k, v in outcome.items() if k != "candidates"})
    elif "skipped" in outcome:
        print(f"nothing to govern: {outcome['skipped']}")
    else:
        decision = outcome["decision"]
        challenger = outcome["challenger"] or {}
        verdict = "promoted" if decision["promoted"] else "not promoted"
        print(f"{outcome['model']} v{challenger.get('version')}: {verdict}: {decision['reason']}")
    return 0 if "skipped" in outcome or outcome["gate"]["success"] else 1
