"""The lifecycle steps of a rule strategy: admit data, gate it, register, promote.

Plain functions, so each step is usable from Python, the command line and a Prefect flow
(:mod:`pipelines.flows` wraps them as tasks).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from core.data.datasets import get_dataset, load_bars
from core.data.loaders import RejectedRow
from core.errors import ValidationGateFailed
from pipelines.learning_counts import count_learning_event
from pipelines.validation import GateReport, count_rejected_rows, validate_bars
from registry.strategy_registry import RegisteredVersion, StrategyRegistry, model_name


@dataclass
class AdmittedBars:
    """Bars that parsed, per symbol, and the rows the loader rejected (with reasons)."""

    dataset: str
    frames: dict[str, pd.DataFrame]
    rejected: list[tuple[str, RejectedRow]] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return sum(len(f) for f in self.frames.values())

    def rejected_rows(self) -> list[dict[str, Any]]:
        """Each rejected row as ``symbol``, ``line`` and ``reason``."""
        return [{"symbol": s, "line": r.line, "reason": r.reason} for s, r in self.rejected]

    def stacked(self) -> pd.DataFrame:
        """All symbols in one frame with a ``symbol`` column, as the gate checks them."""
        return pd.concat([f.assign(symbol=s) for s, f in self.frames.items()], ignore_index=True)


def admit_bars(dataset: str, symbols: list[str] | None = None) -> AdmittedBars:
    """Load a shipped bar data set; rows that do not parse are set aside with their reason."""
    chosen = symbols or list(get_dataset(dataset).symbols())
    loaded = load_bars(dataset, chosen)
    return AdmittedBars(
        dataset=dataset,
        frames={s: r.frame for s, r in loaded.items()},
        rejected=[(s, row) for s, r in loaded.items() for row in r.rejected],
    )


def gate_bars(admitted: AdmittedBars, max_rejected_rows: int = 0) -> GateReport:
    """Run the bars gate over every admitted symbol at once (ordering checked per symbol).

    The rows the loader rejected count too: more than ``max_rejected_rows`` fail the gate, so
    no data reaches it filtered without a word.
    """
    report = validate_bars(admitted.stacked(), name=f"bars:{admitted.dataset}")
    return count_rejected_rows(report, admitted.rejected_rows(), allowed=max_rejected_rows)


def data_hash(admitted: AdmittedBars) -> str:
    """SHA-256 of the admitted rows' content, stable across runs and machines."""
    digest = hashlib.sha256()
    for symbol in sorted(admitted.frames):
        digest.update(symbol.encode())
        hashed = pd.util.hash_pandas_object(admitted.frames[symbol], index=False)
        digest.update(hashed.to_numpy().tobytes())
    return digest.hexdigest()


def gate_summary(report: GateReport) -> dict[str, Any]:
    """The part of a gate report registered with a version (full report is an artifact)."""
    return {**report.to_dict(), "failed_expectations": [r.expectation for r in report.failed()]}


def register_strategy(
    registry: StrategyRegistry,
    type_name: str,
    config: dict[str, Any],
    *,
    data_hash: str,
    report: GateReport,
    metrics: dict[str, float] | None = None,
    evidence: dict[str, Any] | None = None,
) -> RegisteredVersion:
    """Register a version whose data passed the gate; a failed gate registers nothing.

    ``evidence`` is its promotion evidence (the ``lookahead`` and ``evaluation`` sections of
    :mod:`registry.evidence`, see :func:`pipelines.governance.measure`), stored in its
    validation report; without it the version is registered but cannot be promoted.
    """
    if not report.success:
        count_learning_event("gate_failed", model_name(type_name))
        raise ValidationGateFailed(report.message(), report=report.to_dict())
    return registry.register(
        type_name,
        config,
        data_hash=data_hash,
        validation={**gate_summary(report), **(evidence or {})},
        metrics=metrics,
    )


def promote_champion(
    registry: StrategyRegistry, name: str, version: str, *, data_hash: str | None = None
) -> dict[str, str | None]:
    """Move ``champion`` to ``version`` (the old champion becomes ``previous``); with
    ``data_hash`` (recomputed from the data in hand) the registry checks the version was
    validated on exactly that data."""
    if registry.promote(name, version, data_hash=data_hash, reason="register-and-promote"):
        count_learning_event("promoted", name)
    return {
        "champion": registry.get_alias(name, "champion"),
        "previous": registry.get_alias(name, "previous"),
    }


def rollback_champion(registry: StrategyRegistry, name: str, *, reason: str = "") -> str:
    """Move ``name``'s champion back to its previous version (counted); return that version."""
    restored = registry.rollback(name, reason=reason)
    count_learning_event("rolled_back", name)
    return restored


__all__ = [
    "AdmittedBars",
    "admit_bars",
    "data_hash",
    "gate_bars",
    "gate_summary",
    "model_name",
    "promote_champion",
    "register_strategy",
    "rollback_champion",
]
