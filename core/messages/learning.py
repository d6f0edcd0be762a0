"""What a retrain decides (the ``retrain`` flow's result, logged as ``decision.json``)."""

from __future__ import annotations

from typing import Any

from core.messages.base import Message


class EvaluationMetrics(Message, frozen=True, kw_only=True, omit_defaults=True):
    """A backtest's metrics over one window (:func:`pipelines.learning.evaluate`)."""

    total_return: float
    sharpe: float
    sortino: float
    max_drawdown: float
    periods: int
    # The lifecycle of every type (pipelines.governance) adds the ledger's hit rate and the
    # value of the family's objective the decision compared.
    hit_rate: float | None = None
    objective: float | None = None


class EvaluatedConfig(Message, frozen=True, kw_only=True):
    """A candidate (challenger or champion): its version, config and held-out metrics."""

    version: str | None
    config: dict[str, Any]
    test: EvaluationMetrics


class FailedExpectation(Message, frozen=True, kw_only=True):
    expectation: str
    unexpected_count: int


class RejectedRow(Message, frozen=True, kw_only=True):
    """A row the loader could not use: where it was and why."""

    symbol: str
    line: int
    reason: str


class GateOutcome(Message, frozen=True, kw_only=True, omit_defaults=True):
    """The data gate: passed or not, its failed rules, and the MLflow run of a failure; then
    what it checked: the suite, the rows, and the rows the loader could not use (counted
    against ``max_rejected_rows``; at most 100 listed, the count is complete)."""

    success: bool
    failed: list[FailedExpectation]
    run_id: str | None
    suite: str | None = None
    rows: int | None = None
    rows_rejected: int | None = None
    max_rejected_rows: int | None = None
    rejected_rows: list[RejectedRow] | None = None


class RetrainWindows(Message, frozen=True, kw_only=True):
    """Training ends and testing starts (event time, ns), a purge gap apart."""

    train_end_ns: int
    test_start_ns: int


class RetrainDecision(Message, frozen=True, kw_only=True):
    promoted: bool
    reason: str
    failed_gate: str | None = None  # the suite of a failed gate (null when it passed)


class ScoredCandidate(Message, frozen=True, kw_only=True):
    """A variant tried during training, with its training-window metrics."""

    config: dict[str, Any]
    train: EvaluationMetrics


class Proposal(Message, frozen=True, kw_only=True):
    """A config the running system proposed as a challenger (instead of parameter selection):
    who proposed it and the evidence it gave, e.g. the online generator's shadow returns or
    the adaptation engine's reasons (:mod:`pipelines.proposals`)."""

    source: str
    config: dict[str, Any]
    evidence: dict[str, Any]


class RetrainOutcome(Message, frozen=True, kw_only=True, omit_defaults=True):
    """One retrain: the challenger, the champion it met, the gate and the decision.

    With a failed gate nothing was trained: ``challenger``, ``champion`` and ``windows`` are
    null, and there are no ``candidates`` nor ``decision_run``.
    """

    model: str
    objective: str | None = None  # what the decision compared (pipelines.governance)
    symbols: list[str] | None = None  # the instruments trained and tested on
    challenger: EvaluatedConfig | None
    champion: EvaluatedConfig | None
    gate: GateOutcome
    windows: RetrainWindows | None
    decision: RetrainDecision
    candidates: list[ScoredCandidate] | None = None
    decision_run: str | None = None
    proposal: Proposal | None = None  # set when the challenger was proposed, not selected
