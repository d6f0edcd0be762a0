"""Learning Manager: validate, train a challenger, evaluate it against the champion, promote.

For a rule strategy, training is parameter selection: variants of the champion's config (each
numeric parameter moved one step down and up, one at a time) are backtested on the training
window and the best by Sharpe becomes the challenger. Champion and challenger are then
evaluated by the same engine on the same held-out window, after a purge gap as long as the
strategies' warm-up, so no test bar informs the choice. The challenger is promoted only if the
data gate passed and it beats the champion's Sharpe by ``margin``; every decision is recorded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.config import FrozenConfig, require
from core.data.loaders import merge_bars, read_bars_frame
from core.engine.engine import PositionSizing, TradingEngine
from core.engine.execution import BarFillModel
from core.engine.tracker import performance_metrics
from core.engine.venue import Venue
from core.errors import ConfigError, DataError
from core.messages import RetrainOutcome, read_as
from core.ports import StrategyDeployment
from core.strategies.base import DataKind
from core.strategies.catalogue import strategy_type
from pipelines.lifecycle import AdmittedBars, admit_bars
from pipelines.progress import progress
from pipelines.validation import GateReport
from registry.strategy_registry import CHAMPION, StrategyRegistry, model_name

CHALLENGER = "challenger"
BARS_DATASET = "equities_daily_stocknet88"
DEFAULT_SYMBOLS = ("AAPL", "MSFT", "JPM", "XOM", "KO", "PFE", "WMT", "GE")
NOTIONAL = 10_000.0


class RetrainSettings(FrozenConfig, frozen=True, kw_only=True):
    """How a retrain runs; ``margin`` is in Sharpe units.

    With ``csv``, ``symbols`` holds exactly one symbol: the CSV's instrument, which the
    registered version trades (a file name says nothing reliable about it).
    ``max_rejected_rows`` is how many rows the loader may set aside before the gate fails.
    """

    strategy: str
    dataset: str = BARS_DATASET
    symbols: tuple[str, ...] = DEFAULT_SYMBOLS
    csv: str | None = None
    test_fraction: float = 0.3
    margin: float = 0.05
    fee_bps: float = 1.0
    max_variants: int = 12
    max_rejected_rows: int = 0

    def __post_init__(self) -> None:
        kind = strategy_type(self.strategy).spec.data_kind
        require(
            kind is DataKind.BARS,
            f"retrain handles single-asset bar strategies, {self.strategy} reads {kind.value}",
        )
        require(
            0.05 <= self.test_fraction <= 0.8,
            f"test_fraction must be within [0.05, 0.8], was {self.test_fraction}",
        )
        require(
            self.max_rejected_rows >= 0,
            f"max_rejected_rows must be >= 0, was {self.max_rejected_rows}",
        )
        require(
            self.csv is None or len(self.symbols) == 1,
            f"a CSV needs exactly one symbol naming its instrument (--symbol), "
            f"got {len(self.symbols)}: {', '.join(self.symbols) or 'none'}",
        )


@dataclass(frozen=True)
class Windows:
    """Training and test windows in event time, separated by a purge gap."""

    train_end: int
    test_start: int


def admit(settings: RetrainSettings) -> AdmittedBars:
    """The data to learn from: a user's CSV, or the shipped data set's symbols."""
    if settings.csv is None:
        return admit_bars(settings.dataset, list(settings.symbols))
    (symbol,) = settings.symbols
    loaded = read_bars_frame(settings.csv, symbol)
    return AdmittedBars(
        dataset=f"csv:{symbol}",
        frames={symbol: loaded.frame},
        rejected=[(symbol, row) for row in loaded.rejected],
    )


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
    deployment = StrategyDeployment(
        name=model_name(strategy), version="candidate", type_name=strategy, config=config
    )
    capital = NOTIONAL * len(admitted.frames)
    engine = TradingEngine(
        [deployment],
        venue=Venue(bars=BarFillModel(fee_bps=fee_bps)),
        initial_capital=capital,
        sizing=PositionSizing(notional=NOTIONAL),
    )
    bars = merge_bars(admitted.frames)
    if end is not None:
        bars = [b for b in bars if b.ts_event <= end]
    engine.run(bars)
    metrics = window_metrics(engine, start, capital)
    return {k: metrics[k] for k in ("total_return", "sharpe", "sortino", "max_drawdown", "periods")}


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


def train_challenger(
    settings: RetrainSettings, base: dict[str, Any], admitted: AdmittedBars, windows: Windows
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Pick the variant with the best training-window Sharpe; return it and every score."""
    scored = []
    candidates = variants(settings.strategy, base, settings.max_variants)
    for config in progress(candidates, desc="challenger candidates", total=len(candidates)):
        train = evaluate(
            settings.strategy, config, admitted, start=None, end=windows.train_end,
            fee_bps=settings.fee_bps,
        )  # fmt: skip
        scored.append({"config": config, "train": train})
    best = max(scored, key=lambda row: row["train"]["sharpe"])
    return best["config"], scored


def decide(
    report: GateReport, challenger: dict[str, Any], champion: dict[str, Any] | None, margin: float
) -> tuple[bool, str]:
    """Promote only a challenger on gated data that beats the champion by ``margin`` Sharpe."""
    if not report.success:
        return False, f"data gate failed: {report.message()}"
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
    "RetrainSettings",
    "Windows",
    "admit",
    "champion_config",
    "compare",
    "compare_on_held_out_window",
    "decide",
    "evaluate",
    "split_windows",
    "train_challenger",
    "variants",
    "warmup_bars",
]
