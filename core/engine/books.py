"""Per-strategy books: what each strategy would have traded and earned on its own.

The portfolio nets all strategies into one position per instrument, so its PnL cannot say who
made it. Each book replays its strategy's own targets through the same fill model at the same
prices, which attributes PnL, hit rate and turnover per strategy.
"""

from __future__ import annotations

from typing import Any

from core.engine.composer import StrategyComposer
from core.engine.execution import BarFillModel, PaperBroker
from core.engine.portfolio import Portfolio
from core.engine.tracker import PerformanceTracker
from core.model import Bar


class StrategyBook:
    """One strategy's own broker, portfolio and tracker."""

    def __init__(
        self,
        name: str,
        fill_model: BarFillModel,
        capital: float,
        equity_window: int | None = None,
    ) -> None:
        self.name = name
        self.composer = StrategyComposer()
        self.broker = PaperBroker(fill_model)
        self.portfolio = Portfolio(capital)
        self.tracker = PerformanceTracker(capital, equity_window)

    def on_bar(self, bar: Bar) -> None:
        if self.broker.has_pending(bar.symbol):  # most bars have no order waiting
            fill = self.broker.on_bar_open(bar)
            if fill is not None:
                self.portfolio.apply_fill(fill)
                self.tracker.fills += 1
        self.portfolio.mark(bar.symbol, bar.close)

    def on_legs(self, instance_key: str, legs: dict[str, float], ts_event: int) -> None:
        self.tracker.signals += 1
        for symbol, target in self.composer.on_legs(self.name, instance_key, legs).items():
            self.broker.submit(
                symbol, target - self.portfolio.quantity(symbol), ts_event, self.name
            )

    def on_time(self, ts_event: int) -> None:
        self.tracker.on_equity(ts_event, self.portfolio.equity, self.portfolio.gross_exposure)

    def summary(self) -> dict[str, Any]:
        self.tracker.close()
        return {
            "strategy": self.name,
            "signals": self.tracker.signals,
            "fills": self.tracker.fills,
            "hit_rate": self.portfolio.hit_rate,
            **self.tracker.metrics(self.portfolio.traded_notional),
        }
