"""One lifecycle for every strategy type, decided on the engine that runs it live.

For any catalogued type on its data set (bars, pair bars, quotes and trades, funding, FX,
text, macro):

1. **gate**: every event kind of the stream through its Great Expectations suite, on the
   events as the data set gives them (nothing filtered first), and the rows its loader could
   not use counted with them. A rule broken by more rows than tolerated fails the gate; the
   only tolerances are the operator's (``tolerate``) and the defects a shipped data set is
   documented to carry (:data:`KNOWN_DEFECTS`); a copy of the data is held to none;
2. **challenger**: the champion's config (or the default) and its one-step variants, each run
   by the engine over the training window; the best by the family's objective;
3. **evaluation**: challenger and champion run by the same engine (``engine_for``, the venue
   and sizing of a backtest) over the whole stream, measured on the held-out window only;
4. **decision**: the challenger is registered with its lineage (data hash, gate report,
   held-out metrics, symbols) and its promotion evidence (the look-ahead check: its signals
   before the held-out window in the training run, which is the held-out run cut there, equal
   those of the held-out run; and both objectives on the window with the margin) under alias
   ``challenger``, and promoted if the look-ahead check passed and it beats the champion by
   ``margin`` in the objective; the registry checks the evidence itself.

Objectives, per family (:data:`OBJECTIVES`): market makers, the window's return net of fees
less an inventory penalty (a tenth of the inventory's value at the end, over capital); arbitrage,
the window's net return (funding carry less costs, or the edge captured less fees); every other
family, the window's Sharpe ratio, with the hit rate reported beside it.
"""

from __future__ import annotations

import hashlib
import math
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import msgspec
import numpy as np
import pandas as pd

from core import codec
from core.backtest.runner import admitted_events, engine_for
from core.backtest.streams import Stream, bars_stream, csv_bars_stream, stream_for
from core.config import FrozenConfig, require
from core.errors import DataError
from core.strategies.base import DataKind, Family
from core.strategies.catalogue import strategy_type
from pipelines import learning
from pipelines.learning_counts import count_learning_event
from pipelines.validation import GateReport
from pipelines.validation.gates import validate
from registry.evidence import evaluation_evidence, promotion_evidence
from registry.runs import log_decision, log_gate_failure
from registry.strategy_registry import CHAMPION, MODEL_PREFIX, StrategyRegistry, model_name

# The gate of each event kind a stream carries.
GATE_OF_EVENT = {
    "bar": "bars",
    "quote": "quotes",
    "trade": "trades",
    "funding": "funding",
    "news": "text",
    "macro": "macro",
}

# What a shipped data set is documented to carry (its PROVENANCE.md), by gate rule: the most
# rows that may break it. The daily FX closes of LEAN hold 297 crossed bid/ask pairs.
KNOWN_DEFECTS: dict[str, dict[str, int]] = {
    "fx_triangle_daily_lean": {"bid_price <= ask_price": 297},
}
# The key of the operator's tolerance for rows the loader could not use (--max-rejected-rows),
# and the expectation a gate reports when more were rejected.
LOADER_RULE = "rows the loader could use"
LOADER_EXPECTATION = "loader rejected rows"
# The version tag naming who proposed a challenger that was not found by parameter selection.
PROPOSAL_SOURCE_TAG = "proposal_source"

INVENTORY_PENALTY = 0.1
OBJECTIVES: dict[Family, str] = {
    Family.MARKET_MAKING: "net return less inventory penalty",
    Family.ARBITRAGE: "net return",
    Family.TREND_FOLLOWING: "sharpe",
    Family.STATISTICAL_ARBITRAGE: "sharpe",
    Family.NEWS_DRIVEN: "sharpe",
    Family.HIGH_TIME_FRAME: "sharpe",
}
# The lead a challenger needs, in its objective's units, unless the operator sets one.
DEFAULT_MARGIN = {"sharpe": 0.05}
DEFAULT_RETURN_MARGIN = 0.0005
# What a bar fill costs in an evaluation, in basis points of its notional.
BAR_FEE_BPS = 1.0
# Rows the loader rejected that an outcome lists (the count is always complete).
LISTED_REJECTIONS = 100


class GovernSettings(FrozenConfig, frozen=True, kw_only=True):
    """One retrain of a type on a shipped data set, or (single-asset bar types) a user's CSV.

    With ``csv``, ``symbols`` holds exactly one symbol: the CSV's instrument, which the
    registered version trades (a file name says nothing reliable about it). ``fee_bps`` is
    what a bar fill costs (the other execution styles price their fills with the strategy's
    own cost parameters).
    """

    strategy: str
    dataset: str | None = None
    symbols: tuple[str, ...] = ()
    csv: str | None = None
    fast: bool = False
    test_fraction: float = 0.3
    margin: float | None = None  # None: the objective's default
    max_variants: int = 8
    fee_bps: float = BAR_FEE_BPS
    tolerate: dict[str, int] = msgspec.field(default_factory=dict)

    def __post_init__(self) -> None:
        kind = strategy_type(self.strategy).spec.data_kind  # an unknown type: ConfigError
        if self.csv is not None:
            require(
                kind is DataKind.BARS,
                f"a CSV holds single-asset bars; {self.strategy} reads {kind.value}: it "
                "trains on its data set",
            )
            require(
                len(self.symbols) == 1,
                f"a CSV needs exactly one symbol naming its instrument (--symbol), "
                f"got {len(self.symbols)}: {', '.join(self.symbols) or 'none'}",
            )
        require(0.0 <= self.fee_bps <= 1000.0, f"fee_bps must be within [0, 1000], was "
                f"{self.fee_bps}")  # fmt: skip
        require(
            0.05 <= self.test_fraction <= 0.8,
            f"test_fraction must be within [0.05, 0.8], was {self.test_fraction}",
        )
        require(2 <= self.max_variants <= 32, f"max_variants must be within [2, 32], was "
                f"{self.max_variants}")  # fmt: skip
        for rule, rows in self.tolerate.items():
            require(rows >= 0, f"tolerate {rule!r} must be >= 0 rows, was {rows}")


@dataclass(frozen=True)
class StreamGate:
    """The gate over a whole stream: one report per event kind, and the loader's count."""

    dataset: str
    reports: tuple[GateReport, ...]
    loader_rejected: int
    tolerated: dict[str, int]
    # The rows the loader rejected, where it names them: (symbol, line, reason).
    rejections: tuple[tuple[str, int, str], ...] = ()

    def rejected_rows(self) -> list[dict[str, Any]]:
        """The first :data:`LISTED_REJECTIONS` rejected rows as ``symbol``, ``line``, ``reason``."""
        return [
            {"symbol": symbol, "line": line, "reason": reason}
            for symbol, line, reason in self.rejections[:LISTED_REJECTIONS]
        ]

    def broken(self) -> list[tuple[str, int]]:
        """Each rule broken by more rows than tolerated (a table rule is never tolerated)."""
        out = [
            (r.expectation, r.unexpected_count)
            for report in self.reports
            for r in report.failed()
            if r.detail or r.unexpected_count > self.tolerated.get(r.expectation, 0)
        ]
        allowed = self.tolerated.get(LOADER_RULE, 0)
        if self.loader_rejected > allowed:
            # Named as the bars gate names it (register-and-promote's report says the same).
            out.append((f"{LOADER_EXPECTATION} <= {allowed}", self.loader_rejected))
        return out

    @property
    def success(self) -> bool:
        return not self.broken()

    @property
    def rows(self) -> int:
        return sum(report.rows for report in self.reports)

    def message(self) -> str:
        broken = self.broken()
        head = f"gate '{self.suite}' on {self.rows} rows"
        if not broken:
            return f"{head} passed"
        return f"{head} failed: " + "; ".join(self._say(rule, n) for rule, n in broken)

    def _say(self, rule: str, rows: int) -> str:
        said = f"{rule}: {rows} row{'s' if rows != 1 else ''}"
        if rule.startswith(LOADER_EXPECTATION) and self.rejections:
            symbol, line, reason = self.rejections[0]
            said += f", first {symbol} line {line}: {reason}"
        return said

    @property
    def suite(self) -> str:
        return "+".join(report.suite for report in self.reports)

    def summary(self, data_hash: str) -> dict[str, Any]:
        """What is registered with a version (the registry pins it as the evidence)."""
        return {
            "success": self.success,
            "suite": self.suite,
            "rows": self.rows,
            "data_hash": data_hash,
            "loader_rejected": self.loader_rejected,
            "rejected_rows": self.rejected_rows(),
            "failed_expectations": [rule for rule, _ in self.broken()],
            "tolerated": dict(self.tolerated),
            "reports": [report.to_dict() for report in self.reports],
        }


def gate_stream(stream: Stream, tolerate: dict[str, int] | None = None) -> StreamGate:
    """Run the gate of every event kind in ``stream`` over its events as given."""
    by_kind: dict[str, list[Any]] = defaultdict(list)
    for event in stream.events:
        by_kind[event.kind].append(event)
    reports = []
    for kind in sorted(by_kind):
        frame = pd.DataFrame(msgspec.to_builtins(by_kind[kind]))
        gate = GATE_OF_EVENT[kind]
        reports.append(validate(gate, frame, name=f"{gate}:{stream.dataset}"))
    allowed = {**KNOWN_DEFECTS.get(stream.dataset, {}), **(tolerate or {})}
    named = tuple((symbol, row.line, row.reason) for symbol, row in stream.rejections)
    return StreamGate(stream.dataset, tuple(reports), int(stream.rejected_rows), allowed, named)


def stream_hash(events: list[Any]) -> str:
    """SHA-256 of the events' encoded content: what a version was trained and tested on."""
    digest = hashlib.sha256()
    for event in events:
        digest.update(codec.encode(event))
    return f"sha256:{digest.hexdigest()}"


@dataclass(frozen=True)
class Split:
    """Training ends before ``test_start`` (event time, ns); the held-out window starts there."""

    test_start: int


def split(events: list[Any], test_fraction: float) -> Split:
    """The held-out window: the last ``test_fraction`` of the stream's distinct times."""
    stamps = np.unique(np.fromiter((e.ts_event for e in events), np.int64, len(events)))
    cut = int(len(stamps) * (1.0 - test_fraction))
    if cut < 2 or cut >= len(stamps) - 1:
        raise DataError(f"{len(stamps)} distinct times are too few to train and test")
    return Split(test_start=int(stamps[cut]))


def objective_of(strategy: str) -> str:
    return OBJECTIVES[strategy_type(strategy).spec.family]


def evaluate(
    stream: Stream,
    config: dict[str, Any],
    events: list[Any],
    *,
    start: int | None,
    fee_bps: float = BAR_FEE_BPS,
) -> dict[str, Any]:
    """Run ``config`` over ``events`` on the backtest's engine; measure from ``start`` on.

    The run starts at the first event so the strategy is warm when the window opens; returns
    are measured from the equity just before the window. The result has the window's
    ``total_return``, ``sharpe``, ``sortino``, ``max_drawdown``, ``periods``, the ledger's
    ``hit_rate`` and the ``objective`` value. ``fee_bps`` prices bar fills.
    """
    return evaluate_run(stream, config, events, start=start, fee_bps=fee_bps).metrics


def evaluate_run(
    stream: Stream,
    config: dict[str, Any],
    events: list[Any],
    *,
    start: int | None,
    fee_bps: float = BAR_FEE_BPS,
) -> learning.EngineRun:
    """:func:`evaluate`, keeping the run's signals (for the look-ahead check)."""
    engine, capital, _ = engine_for(stream, config, fee_bps=fee_bps)
    engine.run(events)
    metrics = learning.window_metrics(engine, start, capital)
    gained = metrics["window_end_equity"] - metrics["window_start_equity"]
    window_return = gained / capital if capital > 0 else 0.0
    result = {k: metrics[k] for k in ("total_return", "sharpe", "sortino", "max_drawdown")}
    result["periods"] = int(metrics["periods"])
    result["total_return"] = window_return
    result["hit_rate"] = engine.portfolio.hit_rate
    objective = objective_of(stream.type_name)
    if objective == "sharpe":
        value = float(metrics["sharpe"])
    elif objective == "net return":
        value = window_return
    else:  # net return less inventory penalty: holding inventory at the end is a risk taken
        held = sum(
            abs(p.quantity) * engine.portfolio.last_price(p.symbol)
            for p in engine.portfolio.positions()
        )
        value = window_return - INVENTORY_PENALTY * held / capital if capital > 0 else 0.0
    result["objective"] = value if math.isfinite(value) else 0.0
    return learning.EngineRun(result, engine.all_signals)


def training_events(events: list[Any], windows: Split) -> list[Any]:
    """The events before the held-out window, in replay order: a prefix of ``events`` (a stream
    in receive order holds a few events stamped before the window that arrive after it)."""
    cut = next((i for i, e in enumerate(events) if e.ts_event >= windows.test_start), len(events))
    return events[:cut]


@dataclass(frozen=True)
class Measured:
    """A given config measured as a retrain measures its challenger (:func:`measure`)."""

    windows: Split
    test: dict[str, Any]
    champion_test: dict[str, Any] | None
    lookahead: dict[str, Any]


def measure(
    stream: Stream,
    events: list[Any],
    config: dict[str, Any],
    champion: dict[str, Any] | None,
    *,
    test_fraction: float,
    fee_bps: float = BAR_FEE_BPS,
) -> Measured:
    """Measure ``config`` (and ``champion``, when there is one) on the held-out window, with
    the look-ahead check of ``config``: its run on the training events gives the first signals
    of its run on all events. What a retrain does for its challenger, for a config chosen
    elsewhere (``register-and-promote``)."""
    windows = split(events, test_fraction)
    trained = evaluate_run(
        stream, config, training_events(events, windows), start=None, fee_bps=fee_bps
    )
    held_out = evaluate_run(stream, config, events, start=windows.test_start, fee_bps=fee_bps)
    champion_test = (
        evaluate(stream, champion, events, start=windows.test_start, fee_bps=fee_bps)
        if champion is not None
        else None
    )
    lookahead = learning.prefix_lookahead(trained.signals, held_out.signals)
    return Measured(windows, held_out.metrics, champion_test, lookahead)


def bars_version_evidence(
    strategy: str,
    dataset: str,
    frames: Mapping[str, pd.DataFrame],
    config: dict[str, Any],
    champion: tuple[str, dict[str, Any]] | None,
    *,
    margin: float,
    test_fraction: float = 0.3,
) -> tuple[Measured, dict[str, Any]]:
    """A given config of a single-asset bar type on ``frames`` (per symbol), measured as a
    retrain measures its challenger against ``champion`` (its version and config, or None),
    and the promotion evidence that records it (``lookahead`` and ``evaluation``): what
    ``register-and-promote`` registers a version with."""
    stream = bars_stream(strategy, dataset, frames)
    events, _ = admitted_events(stream)
    version, theirs = champion if champion is not None else (None, None)
    measured = measure(stream, events, config, theirs, test_fraction=test_fraction)
    scored = measured.champion_test
    evidence = promotion_evidence(
        measured.lookahead,
        evaluation_evidence(
            objective_of(strategy),
            challenger=measured.test["objective"],
            champion=None if scored is None else scored["objective"],
            champion_version=None if scored is None else version,
            margin=margin,
            window={"test_start_ns": measured.windows.test_start},
        ),
    )
    return measured, evidence


def margin_for(strategy: str, margin: float | None) -> float:
    if margin is not None:
        return margin
    return DEFAULT_MARGIN.get(objective_of(strategy), DEFAULT_RETURN_MARGIN)


def decide(
    strategy: str,
    challenger: dict[str, Any],
    champion: dict[str, Any] | None,
    margin: float,
) -> tuple[bool, str]:
    """Promote only a challenger that beats the champion's held-out objective by ``margin``."""
    theirs = champion["objective"] if champion is not None else None
    return learning.compare(objective_of(strategy), challenger["objective"], theirs, margin)


def admitted_stream(settings: GovernSettings, config: dict[str, Any]) -> tuple[Stream, list[Any]]:
    """The type's stream and the events of it a core would admit (what the engine runs on)."""
    if settings.csv is not None:
        (symbol,) = settings.symbols
        stream = csv_bars_stream(settings.strategy, settings.csv, symbol)
    else:
        stream = stream_for(
            settings.strategy, settings.dataset, settings.symbols or None, settings.fast,
            params=config,
        )  # fmt: skip
    events, _ = admitted_events(stream)
    return stream, events


def govern(
    settings: GovernSettings,
    registry: StrategyRegistry,
    *,
    notify: Callable[[str, str], object] | None = None,
    proposal: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run the lifecycle of :mod:`this module <pipelines.governance>` once; return the outcome
    (:class:`core.messages.RetrainOutcome`). A failed gate trains, registers and promotes
    nothing; its report is logged as a FAILED MLflow run.

    ``proposal`` (:class:`core.messages.Proposal`: ``source``, ``config``, ``evidence``) is a
    config the running system proposed: it is the challenger instead of the best of the
    variants, and goes through the same gate, evaluation and decision. Its source is tagged
    on the registered version and the proposal is recorded with the decision."""
    strategy = settings.strategy
    name = model_name(strategy)
    champion_version, champion = learning.champion_config(registry, strategy)
    base = champion or strategy_type(strategy).config_type().to_dict()
    stream, events = admitted_stream(settings, base)
    gate = gate_stream(stream, settings.tolerate)
    digest = stream_hash(events)
    if not gate.success:
        count_learning_event("gate_failed", name)
        run_id = log_gate_failure(
            registry.store, f"retrain {name}", gate.summary(digest), tags={"model_name": name}
        )
        why = f"data gate failed: {gate.message()}"
        return _outcome(name, stream, None, gate, None, None, False, why, run_id)
    windows = split(events, settings.test_fraction)
    fee = settings.fee_bps
    # Training is the replay up to the window: a prefix of the held-out run.
    training = training_events(events, windows)
    first, *others = (
        [strategy_type(strategy).config_type.from_dict(proposal["config"]).to_dict()]
        if proposal is not None
        else learning.variants(strategy, base, settings.max_variants)
    )
    challenger, trained = first, evaluate_run(stream, first, training, start=None, fee_bps=fee)
    scored = [{"config": first, "train": trained.metrics}]
    for config in others:
        run = evaluate_run(stream, config, training, start=None, fee_bps=fee)
        scored.append({"config": config, "train": run.metrics})
        # Only the best run's signals are kept: a quote stream's runs are long.
        if run.metrics["objective"] > trained.metrics["objective"]:
            challenger, trained = config, run
    held_out = evaluate_run(stream, challenger, events, start=windows.test_start, fee_bps=fee)
    challenger_test = held_out.metrics
    champion_test = (
        evaluate(stream, champion, events, start=windows.test_start, fee_bps=fee)
        if champion
        else None
    )
    margin = margin_for(strategy, settings.margin)
    # The training run is the held-out run cut at the window: its signals are the held-out
    # run's first ones unless the strategy read events it had not seen yet.
    lookahead = learning.prefix_lookahead(trained.signals, held_out.signals)
    evidence = promotion_evidence(
        lookahead,
        evaluation_evidence(
            objective_of(strategy),
            challenger=challenger_test["objective"],
            champion=None if champion_test is None else champion_test["objective"],
            champion_version=None if champion_test is None else champion_version,
            margin=margin,
            window={"test_start_ns": windows.test_start},
        ),
    )
    version = registry.register(
        strategy,
        challenger,
        data_hash=digest,
        validation={**gate.summary(digest), **evidence},
        metrics={f"test_{k}": float(v) for k, v in challenger_test.items()},
        symbols=stream.instances,
    )
    registry.set_alias(name, learning.CHALLENGER, version.version)
    if proposal is not None:
        registry.client.set_model_version_tag(
            name, version.version, PROPOSAL_SOURCE_TAG, str(proposal["source"])
        )
    refused = learning.lookahead_refusal(lookahead)
    if refused is not None:
        promoted, why = False, refused
    else:
        promoted, why = decide(strategy, challenger_test, champion_test, margin)
        unfounded = registry.get_alias(name, CHAMPION) if champion is None else None
        if promoted and unfounded is not None:
            why = (
                f"champion version {unfounded} has no valid promotion evidence (no core runs "
                "it): the challenger replaces it"
            )
    if promoted:
        # The registry checks the evidence itself, against the hash of the data in hand.
        if registry.promote(name, version.version, data_hash=digest, reason=why):
            count_learning_event("promoted", name)
        if notify is not None:
            notify(name, version.version)
    outcome = _outcome(
        name,
        stream,
        {"version": version.version, "config": challenger, "test": challenger_test},
        gate,
        {"version": champion_version, "config": champion, "test": champion_test}
        if champion is not None and champion_test is not None
        else None,
        windows,
        promoted,
        why,
        None,
    )
    outcome["candidates"] = scored
    if proposal is not None:
        outcome["proposal"] = proposal
    outcome["decision_run"] = log_decision(
        registry.store, f"retrain {name}", outcome, tags={"model_name": name}
    )
    return outcome


def _outcome(
    name: str,
    stream: Stream,
    challenger: dict[str, Any] | None,
    gate: StreamGate,
    champion: dict[str, Any] | None,
    windows: Split | None,
    promoted: bool,
    why: str,
    gate_run: str | None,
) -> dict[str, Any]:
    return learning.retrain_outcome(
        name,
        objective=objective_of(name.removeprefix(MODEL_PREFIX)),
        symbols=list(stream.instances),
        challenger=challenger,
        champion=champion,
        gate={
            "success": gate.success,
            "failed": [
                {"expectation": rule, "unexpected_count": rows} for rule, rows in gate.broken()
            ],
            "run_id": gate_run,
            "suite": gate.suite,
            "rows": gate.rows,
            "rows_rejected": gate.loader_rejected,
            "max_rejected_rows": gate.tolerated.get(LOADER_RULE, 0),
            **({"rejected_rows": gate.rejected_rows()} if gate.rejections else {}),
        },
        # The held-out window starts where training ends (no purge: the run is warm from
        # the first event and only the window is measured).
        windows=None if windows is None else (windows.test_start, windows.test_start),
        promoted=promoted,
        why=why,
        failed_gate=None if gate.success else gate.suite,
    )


__all__ = [
    "GATE_OF_EVENT",
    "KNOWN_DEFECTS",
    "OBJECTIVES",
    "PROPOSAL_SOURCE_TAG",
    "GovernSettings",
    "Measured",
    "StreamGate",
    "admitted_stream",
    "bars_version_evidence",
    "decide",
    "evaluate",
    "evaluate_run",
    "gate_stream",
    "govern",
    "margin_for",
    "measure",
    "objective_of",
    "split",
    "stream_hash",
    "training_events",
]
