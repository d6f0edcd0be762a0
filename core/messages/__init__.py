"""One typed message per contract between processes and tiers.

Each record one process writes and another reads is a frozen :mod:`msgspec` struct defined
here, shared by the writer (which builds it) and the reader (which decodes with it), so a
field renamed on one side fails the other's read instead of silently reading nothing. Their
JSON Schemas are committed under ``docs/schemas/`` (``python -m core.messages --write``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec

from core.messages.backtest import BacktestResult
from core.messages.base import Message, read_as
from core.messages.context import (
    CONTEXT_SCHEMA_VERSION,
    CONTEXT_TYPES,
    AdaptationChange,
    AdaptationContext,
    AdaptationRecord,
    DailySentiment,
    EarningsEvent,
    MacroContext,
    MacroDecision,
    MarketSentiment,
    NewsContext,
    ProposalDecision,
    RegimeContext,
    StackingContext,
    StrategicContext,
    StrategyPerformance,
    TickerSentiment,
)
from core.messages.control import (
    CONTROL_ACTIONS,
    CONTROL_VERSION,
    ControlAudit,
    ControlBody,
    ControlEnvelope,
    HaltControl,
    ReloadControl,
    ResumeControl,
    WeightsControl,
)
from core.messages.learning import (
    EvaluatedConfig,
    EvaluationMetrics,
    GateOutcome,
    Proposal,
    RetrainDecision,
    RetrainOutcome,
    RetrainWindows,
    ScoredCandidate,
)
from core.messages.status import (
    ActiveDeployment,
    CoreStatus,
    CycleSummary,
    Histogram,
    LatencySummary,
    OnlineReport,
    PublishedRiskLimits,
    StrategyNumbers,
    VariantProposal,
    WriterStats,
)

SCHEMAS: dict[str, Any] = {
    "core-status": CoreStatus,
    "news-context": NewsContext,
    "regime-context": RegimeContext,
    "macro-context": MacroContext,
    "adaptation-context": AdaptationRecord,
    "stacking-context": StackingContext,
    "control-envelope": ControlEnvelope,
    "control-body": ControlBody,
    "control-audit": ControlAudit,
    "retrain-outcome": RetrainOutcome,
    "backtest-result": BacktestResult,
}
"""The contracts whose JSON Schema is published, by the name of its file."""


def schema_text(name: str) -> str:
    """The JSON Schema of contract ``name`` as committed: indented, keys sorted, one newline."""
    schema = msgspec.json.schema(SCHEMAS[name])
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_schemas(folder: Path) -> list[Path]:
    """Write every contract's schema to ``folder/<name>.json``; return the files written."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name in SCHEMAS:
        path = folder / f"{name}.json"
        path.write_text(schema_text(name), encoding="utf-8")
        written.append(path)
    return written


def stale_schemas(folder: Path) -> list[str]:
    """Names of the contracts whose file in ``folder`` is missing or differs from the code."""
    stale = []
    for name in SCHEMAS:
        path = folder / f"{name}.json"
        if not path.is_file() or path.read_text(encoding="utf-8") != schema_text(name):
            stale.append(name)
    return stale


__all__ = [
    "CONTEXT_SCHEMA_VERSION",
    "CONTEXT_TYPES",
    "CONTROL_ACTIONS",
    "CONTROL_VERSION",
    "SCHEMAS",
    "ActiveDeployment",
    "AdaptationChange",
    "AdaptationContext",
    "AdaptationRecord",
    "BacktestResult",
    "ControlAudit",
    "ControlBody",
    "ControlEnvelope",
    "CoreStatus",
    "CycleSummary",
    "DailySentiment",
    "EarningsEvent",
    "EvaluatedConfig",
    "EvaluationMetrics",
    "GateOutcome",
    "HaltControl",
    "Histogram",
    "LatencySummary",
    "MacroContext",
    "MacroDecision",
    "MarketSentiment",
    "Message",
    "NewsContext",
    "OnlineReport",
    "Proposal",
    "ProposalDecision",
    "PublishedRiskLimits",
    "RegimeContext",
    "ReloadControl",
    "ResumeControl",
    "RetrainDecision",
    "RetrainOutcome",
    "RetrainWindows",
    "ScoredCandidate",
    "StackingContext",
    "StrategicContext",
    "StrategyNumbers",
    "StrategyPerformance",
    "TickerSentiment",
    "VariantProposal",
    "WeightsControl",
    "WriterStats",
    "read_as",
    "schema_text",
    "stale_schemas",
    "write_schemas",
]
