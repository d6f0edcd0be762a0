"""Strategy Applicator: the hot path that turns each event into the active set's signals."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from core.errors import StrategyError
from core.model import Bar, Lineage, Signal
from core.ports import StrategyDeployment
from core.strategies.base import Strategy
from core.strategies.catalogue import build


@dataclass
class _Slot:
    deployment: StrategyDeployment
    instances: dict[str, Strategy[Any]] = field(default_factory=dict)
    quarantined: str | None = None


class StrategyApplicator:
    """Apply every active strategy to the events of its symbols.

    One strategy instance per deployment and symbol, created on the symbol's first event. A
    strategy that raises is quarantined (its error kept) and the others keep running.
    """

    def __init__(self, deployments: list[StrategyDeployment]) -> None:
        self._slots = [_Slot(d) for d in deployments]
        self.errors: list[StrategyError] = []

    @property
    def deployments(self) -> list[StrategyDeployment]:
        return [slot.deployment for slot in self._slots]

    def on_bar(self, bar: Bar) -> list[Signal]:
        signals: list[Signal] = []
        for slot in self._slots:
            if slot.quarantined is not None:
                continue
            strategy = self._instance(slot, bar.symbol)
            if strategy is None:
                continue
            try:
                signal = strategy.update(bar)
            except Exception as exc:  # a strategy's bug must not stop the others
                self._quarantine(slot, bar.symbol, exc)
                continue
            if signal is not None:
                signals.append(signal)
        return signals

    def instances(self) -> dict[str, Strategy[Any]]:
        """Every live instance keyed ``<model name>|<symbol>`` (the state-snapshot key)."""
        return {
            f"{slot.deployment.name}|{symbol}": strategy
            for slot in self._slots
            for symbol, strategy in slot.instances.items()
        }

    def _instance(self, slot: _Slot, symbol: str) -> Strategy[Any] | None:
        strategy = slot.instances.get(symbol)
        if strategy is None:
            deployment = slot.deployment
            if deployment.symbols and symbol not in deployment.symbols:
                return None
            strategy = build(
                deployment.type_name, deployment.config, symbol, instance_name=deployment.name
            )
            strategy.lineage = Lineage(
                model_name=deployment.name,
                model_version=deployment.version,
                validation_run=deployment.validation_run,
            )
            slot.instances[symbol] = strategy
        return strategy

    def _quarantine(self, slot: _Slot, symbol: str, exc: Exception) -> None:
        reason = f"{slot.deployment.name} raised on {symbol}: {type(exc).__name__}: {exc}"
        slot.quarantined = reason
        self.errors.append(StrategyError(reason))
