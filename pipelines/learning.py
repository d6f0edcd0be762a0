"""What the lifecycle of every type (:mod:`pipelines.governance`) shares: the variants of a
config (each numeric parameter moved one step down and up), the metrics of a held-out window,
the look-ahead check (a run cut where training ends gives the first signals of the run on all
events), the comparison on a margin, the champion's config and the retrain outcome.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.engine.engine import TradingEngine
from core.engine.tracker import performance_metrics
from core.errors import ConfigError, DataError
from core.messages import RetrainOutcome, read_as
from core.model import Signal
from core.strategies.catalogue import strategy_type
from registry.evidence import lookahead_evidence
from registry.strategy_registry import CHAMPION, StrategyRegistry, model_name

log = logging.getLogger(__name__)

CHALLENGER = "challenger"
BARS_DATASET = "equities_daily_stocknet88"
DEFAULT_SYMBOLS = ("AAPL", "MSFT", "JPM", "XOM", "KO", "PFE", "WMT", "GE")
# The look-ahead check of a strategy on the engine: its signals before a cut, run on the events
# before the cut and on all events, must be the same.
PREFIX_METHOD = "prefix"


def variants(strategy: str, base: dict[str, Any], limit: int) -> list[dict[str, Any]]:
    """The base config and valid one-step moves of each numeric parameter (down and up)."""
    config_type = strategy_type(strategy).config_type
    found: list[dict[str, Any]] = [config_type.from_dict(base).to_dict()]
    for name, value in base.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        for factor in (0.75, 1.25):
            moved = round(value * factor) if isinstance(value, int) else value * factor
            if moved == value:
                continue
            try:
                candidate = config_type.from_dict({**base, name: moved}).to_dict()
            except ConfigError:
                continue  # a move outside the valid range is not a candidate
            if candidate not in found:
                found.append(candidate)
    return found[:limit]


@dataclass(frozen=True)
class EngineRun:
    """A finished evaluation run: its window metrics and every signal it emitted."""

    metrics: dict[str, Any]
    signals: list[Signal]


def _comparable(value: Any) -> Any:
    # NaN never equals itself; two runs that both computed NaN agree.
    return "nan" if isinstance(value, float) and math.isnan(value) else value


def _signal_record(signal: Signal) -> tuple[Any, ...]:
    reason = tuple(sorted((k, _comparable(v)) for k, v in signal.reason.items()))
    return (
        signal.strategy, signal.symbol, signal.ts_event, _comparable(signal.target_position),
        _comparable(signal.strength), reason, _comparable(signal.bid_price),
        _comparable(signal.ask_price), _comparable(signal.quote_size),
    )  # fmt: skip


def prefix_lookahead(
    prefix_signals: Sequence[Signal], full_signals: Sequence[Signal]
) -> dict[str, Any]:
    """The ``lookahead`` evidence of a strategy run twice: on a prefix of the events (in replay
    order) and on all of them. Signals are a function of the past only, so the prefix run's
    signals must be the first signals of the full run, in the same order, number for number;
    each that differs (or that the full run lacks) is a violation.

    The prefix is cut by position, not by event time: a stream replayed in receive order holds
    events stamped before the cut that arrive after it.
    """
    ours = [_signal_record(s) for s in prefix_signals]
    theirs = [_signal_record(s) for s in full_signals[: len(ours)]]
    differing = sum(a != b for a, b in zip(ours, theirs, strict=False))
    differing += len(ours) - len(theirs)
    return lookahead_evidence(PREFIX_METHOD, checked=len(ours), violations=differing)


def lookahead_refusal(lookahead: dict[str, Any]) -> str | None:
    """The reason a challenger whose look-ahead check did not pass is not promoted."""
    if lookahead["passed"]:
        return None
    return (
        f"look-ahead check ({lookahead['method']}) failed: {lookahead['violations']} of "
        f"{lookahead['checked']} signals differ"
    )


def window_metrics(engine: TradingEngine, start: int | None, capital: float) -> dict[str, Any]:
    """The performance metrics of a finished run over its samples from ``start`` on (all with
    None), measured from the equity just before the window.

    Raises
    ------
    DataError
        If the run has no sample in the window.
    """
    ts, equity = engine.tracker.equity_curve()
    inside = ts >= start if start is not None else np.ones(len(ts), dtype=bool)
    if not inside.any():
        raise DataError("the evaluation window holds no events")
    first = int(np.argmax(inside))
    base = float(equity[first - 1]) if first > 0 else capital
    metrics: dict[str, Any] = performance_metrics(ts[inside], equity[inside], base)
    metrics["window_start_equity"] = base
    metrics["window_end_equity"] = float(equity[inside][-1])
    return metrics


def retrain_outcome(
    name: str,
    *,
    challenger: dict[str, Any] | None,
    champion: dict[str, Any] | None,
    gate: dict[str, Any],
    windows: tuple[int, int] | None,
    promoted: bool,
    why: str,
    failed_gate: str | None,
    **fields: Any,
) -> dict[str, Any]:
    """A retrain's result, checked as :class:`core.messages.RetrainOutcome` has it:
    ``windows`` is (training end, test start) in event time; ``fields`` are the contract's
    other top-level fields (``symbols``, ``objective``)."""
    outcome = {
        "model": name,
        **fields,
        "challenger": challenger,
        "champion": champion,
        "gate": gate,
        "windows": None
        if windows is None
        else {"train_end_ns": windows[0], "test_start_ns": windows[1]},
        "decision": {"promoted": promoted, "reason": why, "failed_gate": failed_gate},
    }
    return read_as(RetrainOutcome, outcome, "the retrain outcome").to_dict()


def compare(objective: str, ours: float, theirs: float | None, margin: float) -> tuple[bool, str]:
    """Whether a challenger scoring ``ours`` replaces a champion scoring ``theirs`` (None: no
    champion) on a lead above ``margin``, and the reason in words."""
    if theirs is None:
        return True, "no champion yet: the challenger becomes champion"
    lead = ours - theirs
    if lead > margin:
        return True, f"challenger {objective} {ours:.4g} beats champion {theirs:.4g} by {lead:.4g}"
    return False, (
        f"challenger {objective} {ours:.4g} does not beat champion {theirs:.4g} "
        f"by more than the margin {margin:g} (lead {lead:.4g})"
    )


def champion_config(
    registry: StrategyRegistry, strategy: str
) -> tuple[str | None, dict[str, Any] | None]:
    """The champion's version and config, or (None, None) if there is none.

    A champion without valid promotion evidence (registered before the evidence existed, or an
    alias moved by hand) counts as none: no core runs it, so a challenger is measured as
    against no champion, and the registry lets a version with evidence replace it.
    """
    from registry import MlflowStrategySource

    name = model_name(strategy)
    version = registry.get_alias(name, CHAMPION)
    if version is None:
        return None, None
    problem = registry.champion_problem(name)
    if problem is not None:
        log.warning(
            f"{name} champion version {version} is measured as no champion: {problem}"[:1000],
            extra={"event": "champion_without_evidence", "model": name, "version": version,
                   "reason": problem[:1000]},
        )  # fmt: skip
        return None, None
    deployment = MlflowStrategySource(registry).load_version(name, version)
    return version, deployment.config


__all__ = [
    "CHALLENGER",
    "PREFIX_METHOD",
    "EngineRun",
    "champion_config",
    "compare",
    "lookahead_refusal",
    "prefix_lookahead",
    "variants",
]
