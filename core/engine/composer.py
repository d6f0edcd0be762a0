"""Strategy Composer: net the active set's signals into one target position per symbol."""

from __future__ import annotations

from core.model import Signal


class StrategyComposer:
    """Weighted sum of each strategy's latest target, per symbol.

    ``units`` scales a strategy's target (+1 = one unit long) into a position size. Only the
    signal's symbol is recomposed, so each signal costs O(strategies on that symbol).
    """

    def __init__(self, weights: dict[str, float] | None = None, units: float = 1.0) -> None:
        self._weights = dict(weights or {})
        self._units = units
        self._targets: dict[str, dict[str, float]] = {}

    def set_weights(self, weights: dict[str, float]) -> None:
        self._weights = dict(weights)

    def on_signal(self, signal: Signal) -> float:
        """Record the signal and return the symbol's new portfolio target."""
        per_strategy = self._targets.setdefault(signal.symbol, {})
        per_strategy[signal.strategy] = signal.target_position
        return self.target(signal.symbol)

    def target(self, symbol: str) -> float:
        per_strategy = self._targets.get(symbol, {})
        total = sum(self._weights.get(name, 1.0) * t for name, t in per_strategy.items())
        return total * self._units
