"""The small protocols through which the core talks to the outside world.

Outer layers (``registry``, the Redis adapter, the CLI) hand in implementations; the core
never imports MLflow, Prefect or a Redis client itself outside ``core.adapters``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from core.model import Fill, Order, Position, Signal

DEFAULT_CORE = "core-1"
"""The name of a core nobody named; its ledger keeps the namespace's historical keys."""


@dataclass(frozen=True)
class StrategyDeployment:
    """One registered strategy version the core should run.

    ``name`` is the registered model name (``strategy.ma_crossover``), ``type_name`` the catalogue
    type that rebuilds it, ``config`` its validated parameters; ``symbols`` empty means every
    symbol of the data kind.
    """

    name: str
    version: str
    type_name: str
    config: dict[str, Any]
    alias: str = "champion"
    symbols: tuple[str, ...] = ()
    validation_run: str = ""
    weight: float = 1.0
    tags: dict[str, str] = field(default_factory=dict)
    # A fitted model loaded by the registry from its own format (never unpickled), handed to
    # each instance of a learned strategy; rule strategies have none.
    predictor: Any = field(default=None, compare=False, repr=False)


class StrategySource(Protocol):
    """Where the active strategy set comes from (the MLflow registry in production)."""

    def load_active_set(self, alias: str = "champion") -> list[StrategyDeployment]: ...


class SignalSink(Protocol):
    """Where signals, orders, fills and positions are recorded (Redis in production)."""

    def publish_signals(self, signals: Sequence[Signal]) -> None: ...

    def record_orders(self, orders: Sequence[Order]) -> int:
        """Record orders once each (by id); return how many were new."""
        ...

    def record_fills(self, fills: Sequence[Fill]) -> int:
        """Record fills once each (by id); return how many were new."""
        ...

    def save_positions(self, positions: Sequence[Position]) -> None: ...


class StateStore(Protocol):
    """Where strategy state snapshots are kept so a restart continues without re-warming."""

    def save_state(self, key: str, state: dict[str, Any]) -> None: ...

    def load_state(self, key: str) -> dict[str, Any] | None: ...
