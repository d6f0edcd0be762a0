"""Per-strategy books: what each strategy would have traded and earned on its own.

The portfolio nets all strategies into one position per instrument, so its PnL cannot say who
made it. Every strategy has a book. A strategy that runs alone is its book: the book is the
engine's own account and tracker. With several, each book is its own account at the same
venue, replaying its strategy's targets at the same prices, which attributes PnL, hit rate and
turnover per strategy.
"""

from __future__ import annotations

from typing import Any

from core.engine.account import Account
from core.engine.composer import StrategyComposer
from core.engine.portfolio import Portfolio
from core.engine.tracker import PerformanceTracker
from core.engine.venue import Venue
from core.model import Bar, Fill, FundingRate, Quote


class StrategyBook:
    """One strategy's account and tracker (shared with the engine when it runs alone)."""

    def __init__(
        self,
        name: str,
        venue: Venue,
        capital: float,
        equity_window: int | None = None,
        *,
        shared: tuple[Account, PerformanceTracker] | None = None,
    ) -> None:
        self.name = name
        self.separate = shared is None
        self.composer = StrategyComposer()
        if shared is None:
            self.account = Account(venue, capital)
            self.tracker = PerformanceTracker(capital, equity_window)
        else:
            self.account, self.tracker = shared

    @property
    def portfolio(self) -> Portfolio:
        return self.account.portfolio

    def on_market(self, event: Bar | Quote | FundingRate) -> None:
        """Fill and mark this book's own account (a separate book only)."""
        account = self.account
        if isinstance(event, Bar):
            if account.on_bar(event) is not None:
                self.tracker.count_fills()
        elif isinstance(event, Quote):
            self.tracker.count_fills(len(account.on_quote(event)))
        elif isinstance(event, FundingRate):
            account.on_funding(event)

    def on_own_fill(self, fill: Fill) -> None:
        """A fill only this strategy's quotes got (a market maker's): its book takes it too."""
        self.account.portfolio.apply_fill(fill)
        self.tracker.count_fills()

    def on_signal(self) -> None:
        self.tracker.count_signal()

    def on_legs(self, instance_key: str, legs: dict[str, float], ts_event: int) -> None:
        """Trade this book to the strategy's new leg positions (a separate book only)."""
        self.tracker.count_signal()
        account = self.account
        for symbol, target in self.composer.on_legs(self.name, instance_key, legs).items():
            order = account.broker.submit(
                symbol, target - account.portfolio.quantity(symbol), ts_event, self.name
            )
            if order is not None and symbol in account.at_decision:
                self.tracker.count_fills(len(account.execute(order)))

    def on_time(self, ts_event: int) -> None:
        portfolio = self.account.portfolio
        self.tracker.on_equity(ts_event, portfolio.equity, portfolio.gross_exposure)

    def summary(self) -> dict[str, Any]:
        """Signals, fills, hit rate and the tracker's metrics; PnL from the ledger."""
        if self.separate:  # the engine closes its own tracker when the run ends
            self.tracker.close()
        portfolio = self.account.portfolio
        capital = self.tracker.initial_capital
        numbers = {
            "strategy": self.name,
            "signals": self.tracker.signals,
            "fills": self.tracker.fills,
            "hit_rate": portfolio.hit_rate,
            **self.tracker.metrics(portfolio.traded_notional),
        }
        # PnL from the ledger, not the equity samples: a core restarted after its feed ended
        # has none, and still has its PnL.
        numbers["pnl"] = portfolio.equity - capital
        numbers["total_return"] = numbers["pnl"] / capital if capital > 0 else 0.0
        return numbers
