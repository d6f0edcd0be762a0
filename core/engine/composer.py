"""Strategy Composer: net the active set's signals into one target position per instrument."""

from __future__ import annotations


class StrategyComposer:
    """Weighted sum of every strategy instance's latest leg positions, per instrument.

    Leg positions arrive already sized (quantities). Only the instruments a signal touches are
    recomposed, so a signal costs O(instances on them).
    """

    def __init__(self, weights: dict[str, float] | None = None) -> None:
        self._weights = dict(weights or {})
        self._targets: dict[str, dict[str, float]] = {}

    def set_weights(self, weights: dict[str, float]) -> None:
        self._weights = dict(weights)

    @property
    def weights(self) -> dict[str, float]:
        """The weights set so far (a strategy not named here weighs 1)."""
        return dict(self._weights)

    def on_legs(self, strategy: str, instance_key: str, legs: dict[str, float]) -> dict[str, float]:
        """Record an instance's new leg positions; return the new target of each leg's symbol."""
        weight = self._weights.get(strategy, 1.0)
        targets = self._targets
        changed: dict[str, float] = {}
        for symbol, position in legs.items():
            per_instance = targets.get(symbol)
            if per_instance is None:  # not setdefault: that would build a dict on every signal
                per_instance = targets[symbol] = {}
            per_instance[instance_key] = weight * position
            changed[symbol] = sum(per_instance.values())
        return changed

    def to_state(self) -> dict[str, dict[str, float]]:
        return {symbol: dict(per_instance) for symbol, per_instance in self._targets.items()}

    def restore(self, state: dict[str, dict[str, float]]) -> None:
        self._targets = {s: {k: float(v) for k, v in per.items()} for s, per in state.items()}

    def target(self, symbol: str) -> float:
        return sum(self._targets.get(symbol, {}).values())
