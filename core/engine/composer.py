"""Strategy Composer: net the active set's signals into one target position per instrument.

Each instance's latest leg positions are kept unweighted, beside the weights. A signal
recomposes only the instruments it touches; a change of weights (an operator, or the adaptation
flow reacting to a new regime) or of the active set recomposes every instrument it affects at
once, and the engine trades the difference, rather than waiting for each instance's next signal.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

# The owner of positions read from a snapshot of an older version, which kept them already
# weighted: they weigh 1, and stay until their instance signals again (as they used to).
_WEIGHTED = ""


class StrategyComposer:
    """Weighted sum of every strategy instance's latest leg positions, per instrument.

    Leg positions arrive already sized (quantities). A strategy not named in the weights
    weighs 1.
    """

    def __init__(self, weights: dict[str, float] | None = None) -> None:
        self._weights = dict(weights or {})
        self._legs: dict[str, dict[str, float]] = {}  # symbol -> instance key -> position
        self._owner: dict[str, str] = {}  # instance key -> strategy (model) name

    @property
    def weights(self) -> dict[str, float]:
        """The weights set so far (a strategy not named here weighs 1)."""
        return dict(self._weights)

    def on_legs(self, strategy: str, instance_key: str, legs: dict[str, float]) -> dict[str, float]:
        """Record an instance's new leg positions; return the new target of each leg's symbol."""
        self._owner[instance_key] = strategy
        all_legs = self._legs
        changed: dict[str, float] = {}
        for symbol, position in legs.items():
            per_instance = all_legs.get(symbol)
            if per_instance is None:  # not setdefault: that would build a dict on every signal
                per_instance = all_legs[symbol] = {}
            per_instance[instance_key] = position
            changed[symbol] = self._compose(per_instance)
        return changed

    def set_weights(self, weights: dict[str, float]) -> dict[str, float]:
        """Use ``weights`` from now on; return the new target of every symbol they change."""
        before, self._weights = self._weights, dict(weights)
        moved = {
            name
            for name in before.keys() | self._weights.keys()
            if before.get(name, 1.0) != self._weights.get(name, 1.0)
        }
        return self._recompose(moved)

    def retain(self, strategies: Iterable[str]) -> dict[str, float]:
        """Drop the positions of strategies not in ``strategies`` (they left the active set);
        return the new target of every symbol that held one."""
        kept = set(strategies) | {_WEIGHTED}
        gone = {key for key, name in self._owner.items() if name not in kept}
        changed: dict[str, float] = {}
        for symbol, per_instance in self._legs.items():
            leaving = gone & per_instance.keys()
            if leaving:
                for key in leaving:
                    del per_instance[key]
                changed[symbol] = self._compose(per_instance)
        for key in gone:
            del self._owner[key]
        return changed

    def target(self, symbol: str) -> float:
        return self._compose(self._legs.get(symbol, {}))

    def to_state(self) -> dict[str, Any]:
        return {
            "weights": dict(self._weights),
            "legs": {symbol: dict(per) for symbol, per in self._legs.items()},
            "owners": dict(self._owner),
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Resume from :meth:`to_state`, or from an older version's snapshot of weighted
        positions only (see ``_WEIGHTED``; the weights stay those set now)."""
        if "legs" in state:
            legs, owners = state["legs"], state["owners"]
            self._weights = {str(name): float(w) for name, w in state["weights"].items()}
        else:
            legs, owners = state, {}
        self._legs = {s: {k: float(v) for k, v in per.items()} for s, per in legs.items()}
        keys = {key for per in self._legs.values() for key in per}
        self._owner = {key: str(owners.get(key, _WEIGHTED)) for key in keys}

    def _compose(self, per_instance: dict[str, float]) -> float:
        weights, owner = self._weights, self._owner
        return sum(
            weights.get(owner[key], 1.0) * position for key, position in per_instance.items()
        )

    def _recompose(self, strategies: set[str]) -> dict[str, float]:
        """The target of every symbol where one of ``strategies`` holds a position."""
        if not strategies:
            return {}
        owner = self._owner
        return {
            symbol: self._compose(per)
            for symbol, per in self._legs.items()
            if any(owner[key] in strategies for key in per)
        }
