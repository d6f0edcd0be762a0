"""Strategy Applicator: the hot path that turns each event into the active set's signals.

Events are routed by symbol: each strategy instance subscribes to the symbols it consumes (one
for most, two legs for a pair, three pairs for a triangle), and instances of strategies that
read symbol-less context (macro series) receive those events too. Routing is a dict lookup, so
an event costs O(strategies on its symbol).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from core.errors import StrategyError
from core.model import Lineage, Signal
from core.ports import StrategyDeployment
from core.strategies.base import EVENT_KINDS, Strategy
from core.strategies.catalogue import build, strategy_type

# Message kinds that carry no symbol and go to every instance that consumes the kind.
BROADCAST_KINDS = frozenset({"macro"})


@dataclass
class _Slot:
    deployment: StrategyDeployment
    event_kinds: frozenset[str]
    instances: dict[str, Strategy[Any]] = field(default_factory=dict)
    quarantined: str | None = None


_Route = tuple[_Slot, Strategy[Any], str]  # (slot, instance, "<model name>|<symbol>")


@dataclass(frozen=True)
class Routed:
    """A signal with the instrument positions that realise it, keyed for the composer."""

    signal: Signal
    instance_key: str
    legs: dict[str, float]
    strategy: Strategy[Any] | None = None  # the instance, for what must call it back (fills)


class StrategyApplicator:
    """Apply every active strategy to the events of its symbols.

    A deployment that names its symbols gets its instances at start; one that names none gets
    an instance per symbol on that symbol's first event. A strategy that raises is quarantined
    (its error kept) and the others keep running.
    """

    def __init__(self, deployments: list[StrategyDeployment]) -> None:
        self._slots = [
            _Slot(d, EVENT_KINDS[strategy_type(d.type_name).spec.data_kind]) for d in deployments
        ]
        # Each route carries its instance's snapshot key, built once rather than per signal.
        self._routes: dict[str, list[_Route]] = defaultdict(list)
        self._broadcast: list[_Route] = []
        self._lazy = [slot for slot in self._slots if not slot.deployment.symbols]
        self._seen: set[str] = set()
        self.errors: list[StrategyError] = []
        for slot in self._slots:
            for symbol in slot.deployment.symbols:
                self._add_instance(slot, symbol)

    @property
    def deployments(self) -> list[StrategyDeployment]:
        return [slot.deployment for slot in self._slots]

    def on_event(self, event: Any) -> list[Routed]:
        """Feed one event to every instance subscribed to it; return the signals it caused."""
        kind = event.kind
        if kind in BROADCAST_KINDS:
            return self._dispatch(event, kind, self._broadcast)
        if kind == "news":
            out: list[Routed] = []
            for symbol in event.symbols:
                out += self._dispatch(event, kind, self._targets(symbol))
            return out
        # The per-event hot path: _targets and _dispatch inlined (a call costs as much as a
        # strategy's whole indicator update).
        symbol = event.symbol
        if symbol not in self._seen:
            self._targets(symbol)
        out = []
        for slot, strategy, key in self._routes.get(symbol, ()):
            if slot.quarantined is not None or kind not in slot.event_kinds:
                continue
            try:
                signal = strategy.update(event)
                if signal is not None:
                    out.append(Routed(signal, key, strategy.legs(signal), strategy))
            except Exception as exc:  # a strategy's bug must not stop the others
                self._quarantine(slot, strategy.symbol, exc)
        return out

    def instances(self) -> dict[str, Strategy[Any]]:
        """Every live instance keyed ``<model name>|<symbol>`` (the state-snapshot key)."""
        return {
            _key(slot, symbol): strategy
            for slot in self._slots
            for symbol, strategy in slot.instances.items()
        }

    def restore(self, states: dict[str, dict[str, Any]]) -> int:
        """Rebuild the instances named in ``states`` (``<model>|<symbol>``) and restore them.

        Snapshots of models no longer in the set are ignored; returns how many were restored.
        """
        slots = {slot.deployment.name: slot for slot in self._slots}
        restored = 0
        for key, state in states.items():
            name, _, symbol = key.partition("|")
            slot = slots.get(name)
            if slot is None or not symbol:
                continue
            if symbol not in slot.instances:
                self._add_instance(slot, symbol)
            slot.instances[symbol].restore(state)
            restored += 1
        return restored

    def _targets(self, symbol: str) -> list[_Route]:
        if symbol not in self._seen:
            self._seen.add(symbol)
            for slot in self._lazy:
                if symbol not in slot.instances:  # restored instances exist already
                    self._add_instance(slot, symbol)
        return self._routes.get(symbol, [])

    def _dispatch(self, event: Any, kind: str, targets: list[_Route]) -> list[Routed]:
        out: list[Routed] = []
        for slot, strategy, key in targets:
            if slot.quarantined is not None or kind not in slot.event_kinds:
                continue
            try:
                signal = strategy.update(event)
                if signal is not None:
                    out.append(Routed(signal, key, strategy.legs(signal), strategy))
            except Exception as exc:  # a strategy's bug must not stop the others
                self._quarantine(slot, strategy.symbol, exc)
        return out

    def _add_instance(self, slot: _Slot, symbol: str) -> None:
        deployment = slot.deployment
        strategy = build(
            deployment.type_name, deployment.config, symbol, instance_name=deployment.name
        )
        strategy.lineage = Lineage(
            model_name=deployment.name,
            model_version=deployment.version,
            validation_run=deployment.validation_run,
        )
        if deployment.predictor is not None:
            strategy.attach_predictor(deployment.predictor)  # type: ignore[attr-defined]
        slot.instances[symbol] = strategy
        route = (slot, strategy, _key(slot, strategy.symbol))
        for subscribed in strategy.subscriptions():
            self._routes[subscribed].append(route)
        if slot.event_kinds & BROADCAST_KINDS:
            self._broadcast.append(route)

    def _quarantine(self, slot: _Slot, symbol: str, exc: Exception) -> None:
        reason = f"{slot.deployment.name} raised on {symbol}: {type(exc).__name__}: {exc}"
        slot.quarantined = reason
        self.errors.append(StrategyError(reason))


def _key(slot: _Slot, symbol: str) -> str:
    return f"{slot.deployment.name}|{symbol}"
