"""What the lifecycle of every type (:mod:`pipelines.governance`) shares: the variants of a
config (each numeric parameter moved one step down and up), the metrics of a held-out window,
the look-ahead check (a run cut where training ends gives the first signals of the run on all
events), the comparison on a margin and the retrain outcome.

``register-and-promote`` (a given config of a single-asset bar type, not a retrain) measures
its version against the champion here too (:func:`compare_on_held_out_window`): the same
engine on one held-out window, after a purge gap as long as the strategies' warm-up.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.config import FrozenConfig, require
from core.data.loaders import merge_bars
from core.engine.engine import PositionSizing, TradingEngine
from core.engine.execution import BarFillModel
from core.engine.tracker import performance_metrics
from core.engine.venue import Venue
from core.errors import ConfigError, DataError
from core.messages import RetrainOutcome, read_as
from core.model import Signal
from core.ports import StrategyDeployment
from core.strategies.base import DataKind
from core.strategies.catalogue import strategy_type
from pipelines.lifecycle import AdmittedBars
from pipelines.validation import GateReport
from registry.evidence import evaluation_evidence, lookahead_evidence, promotion_evidence
from registry.strategy_registry import CHAMPION, StrategyRegistry, model_name

CHALLENGER = "challenger"
BARS_DATASET = "equities_daily_stocknet88"
DEFAULT_SYMBOLS = ("AAPL", "MSFT", "JPM", "XOM", "KO", "PFE", "WMT", "GE")
NOTIONAL = 10_000.0
# The look-ahead check of a strategy on the engine: its signals before a cut, run on the events
# before the cut and on all events, must be the same.
PREFIX_METHOD = "prefix"


class RetrainSettings(FrozenConfig, frozen=True, kw_only=True):
    """How ``register-and-promote`` measures a given config of a single-asset bar type against
    the champion; ``margin`` is in Sharpe units. (A retrain is
    :class:`pipelines.governance.GovernSettings`.)
    """

    strategy: str
    dataset: str = BARS_DATASET
    symbols: tuple[str, ...] = DEFAULT_SYMBOLS
    test_fraction: float = 0.3
    margin: float = 0.05
    fee_bps: float = 1.0
    max_rejected_rows: int = 0

    def __post_init__(self) -> None:
        kind = strategy_type(self.strategy).spec.data_kind
        require(
            kind is DataKind.BARS,
            f"register-and-promote handles single-asset bar strategies, {self.strategy} reads "
            f"{kind.value}",
        )
        require(
            0.05 <= self.test_fraction <= 0.8,
            f"test_fraction must be within [0.05, 0.8], was {self.test_fraction}",
        )
        require(
            self.max_rejected_rows >= 0,
            f"max_rejected_rows must be >= 0, was {self.max_rejected_rows}",
        )


@dataclass(frozen=True)
class Windows:
    """Training and test windows in event time, separated by a purge gap."""

    train_end: int
    test_start: int


def split_windows(admitted: AdmittedBars, test_fraction: float, purge_bars: int) -> Windows:
    """Train on the first dates, test on the last ``test_fraction``, ``purge_bars`` apart."""
    dates = np.unique(np.concatenate([f["ts_event"].to_numpy() for f in admitted.frames.values()]))
    test_index = int(len(dates) * (1.0 - test_fraction))
    train_index = test_index - purge_bars
    if train_index <= purge_bars or test_index >= len(dates) - 1:
        raise DataError(
            f"{len(dates)} dates are too few to train and test with a {purge_bars}-bar purge"
        )
    return Windows(train_end=int(dates[train_index]), test_start=int(dates[test_index]))


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


def evaluate(
    strategy: str,
    config: dict[str, Any],
    admitted: AdmittedBars,
    *,
    start: int | None,
    end: int | None,
    fee_bps: float,
) -> dict[str, Any]:
    """Backtest ``config`` with the engine; metrics over ``[start, end]`` only.

    The run starts at the first bar so indicators are warm when the window opens; returns are
    measured from the window's first equity on.
    """
    return evaluate_run(strategy, config, admitted, start=start, end=end, fee_bps=fee_bps).metrics


def evaluate_run(
    strategy: str,
    config: dict[str, Any],
    admitted: AdmittedBars,
    *,
    start: int | None,
    end: int | None,
    fee_bps: float,
) -> EngineRun:
    """:func:`evaluate`, keeping the run's signals (for :func:`prefix_lookahead`)."""
    deployment = StrategyDeployment(
        name=model_name(strategy), version="candidate", type_name=strategy, config=config
    )
    capital = NOTIONAL * len(admitted.frames)
    engine = TradingEngine(
        [deployment],
        venue=Venue(bars=BarFillModel(fee_bps=fee_bps)),
        initial_capital=capital,
        sizing=PositionSizing(notional=NOTIONAL),
        keep_history=True,
    )
    bars = merge_bars(admitted.frames)
    if end is not None:
        bars = [b for b in bars if b.ts_event <= end]
    engine.run(bars)
    metrics = window_metrics(engine, start, capital)
    kept = ("total_return", "sharpe", "sortino", "max_drawdown", "periods")
    return EngineRun({k: metrics[k] for k in kept}, engine.all_signals)


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


def bars_lookahead(
    strategy: str, config: dict[str, Any], admitted: AdmittedBars, end: int, fee_bps: float
) -> dict[str, Any]:
    """:func:`prefix_lookahead` of ``config`` on the bars up to ``end`` and on all bars."""
    prefix = evaluate_run(strategy, config, admitted, start=None, end=end, fee_bps=fee_bps)
    full = evaluate_run(strategy, config, admitted, start=None, end=None, fee_bps=fee_bps)
    return prefix_lookahead(prefix.signals, full.signals)


def lookahead_refusal(lookahead: dict[str, Any]) -> str | None:
    """The reason a challenger whose look-ahead check did not pass is not promoted."""
    if lookahead["passed"]:
        return None
    return (
        f"look-ahead check ({lookahead['method']}) failed: {lookahead['violations']} of "
        f"{lookahead['checked']} signals differ"
    )


def candidate_evidence(
    settings: RetrainSettings,
    candidate: dict[str, Any],
    admitted: AdmittedBars,
    compared: dict[str, Any] | None,
    champion_version: str | None,
) -> dict[str, Any]:
    """The promotion evidence of a version registered outside a retrain (register-and-promote).

    ``compared`` is :func:`compare_on_held_out_window`'s result as the flow keeps it
    (``challenger``/``champion`` with their ``test`` metrics and the ``windows``), or None when
    there is no champion: the candidate is then scored alone on the window a retrain would
    hold out. The look-ahead check cuts the run where that window's training ends.
    """
    if compared is None:
        purge = warmup_bars(settings.strategy, [candidate])
        windows = split_windows(admitted, settings.test_fraction, purge)
        ours = evaluate(
            settings.strategy, candidate, admitted, start=windows.test_start, end=None,
            fee_bps=settings.fee_bps,
        )["sharpe"]  # fmt: skip
        theirs = None
    else:
        held = compared["windows"]
        windows = Windows(train_end=held["train_end_ns"], test_start=held["test_start_ns"])
        ours = compared["challenger"]["test"]["sharpe"]
        theirs = compared["champion"]["test"]["sharpe"]
    lookahead = bars_lookahead(
        settings.strategy, candidate, admitted, windows.train_end, settings.fee_bps
    )
    return promotion_evidence(
        lookahead,
        evaluation_evidence(
            "sharpe",
            challenger=ours,
            champion=theirs,
            champion_version=champion_version if theirs is not None else None,
            margin=settings.margin,
            window=window_of(windows),
        ),
    )


def window_of(windows: Windows) -> dict[str, int]:
    """The held-out window as an evaluation records it."""
    return {"train_end_ns": windows.train_end, "test_start_ns": windows.test_start}


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


def decide(
    report: GateReport,
    challenger: dict[str, Any],
    champion: dict[str, Any] | None,
    margin: float,
    *,
    lookahead: dict[str, Any] | None = None,
) -> tuple[bool, str]:
    """Promote only a challenger on gated data, whose ``lookahead`` check (when given) passed,
    that beats the champion by ``margin`` Sharpe."""
    if not report.success:
        return False, f"data gate failed: {report.message()}"
    refused = lookahead_refusal(lookahead) if lookahead is not None else None
    if refused is not None:
        return False, refused
    theirs = champion["sharpe"] if champion is not None else None
    return compare("Sharpe", challenger["sharpe"], theirs, margin)


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


def compare_on_held_out_window(
    settings: RetrainSettings,
    challenger: dict[str, Any],
    champion: dict[str, Any],
    admitted: AdmittedBars,
) -> tuple[Windows, dict[str, Any], dict[str, Any]]:
    """Evaluate ``challenger`` and ``champion`` on one held-out window, as a retrain does.

    The window is the last ``settings.test_fraction`` of the dates, after a purge as long as
    the longer warm-up of the two; returns it and the challenger's and champion's metrics.
    """
    purge = warmup_bars(settings.strategy, [challenger, champion])
    windows = split_windows(admitted, settings.test_fraction, purge)
    scores = [
        evaluate(
            settings.strategy,
            config,
            admitted,
            start=windows.test_start,
            end=None,
            fee_bps=settings.fee_bps,
        )
        for config in (challenger, champion)
    ]
    return windows, scores[0], scores[1]


def champion_config(
    registry: StrategyRegistry, strategy: str
) -> tuple[str | None, dict[str, Any] | None]:
    """The champion's version and config, or (None, None) if there is none."""
    from registry import MlflowStrategySource

    version = registry.get_alias(model_name(strategy), CHAMPION)
    if version is None:
        return None, None
    deployment = MlflowStrategySource(registry).load_version(model_name(strategy), version)
    return version, deployment.config


def warmup_bars(strategy: str, configs: Sequence[dict[str, Any]]) -> int:
    """The longest warm-up among ``configs``: the purge between training and test."""
    cls = strategy_type(strategy)
    return max(cls(cls.config_type.from_dict(c), "X").warmup for c in configs)


__all__ = [
    "CHALLENGER",
    "PREFIX_METHOD",
    "EngineRun",
    "RetrainSettings",
    "Windows",
    "bars_lookahead",
    "candidate_evidence",
    "champion_config",
    "compare",
    "compare_on_held_out_window",
    "decide",
    "evaluate",
    "evaluate_run",
    "lookahead_refusal",
    "prefix_lookahead",
    "split_windows",
    "variants",
    "warmup_bars",
    "window_of",
]
