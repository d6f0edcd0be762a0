"""An account at the paper venue: a broker and the ledger its fills go to.

The engine trades the whole set through one account; each strategy's own book (what it would
have earned alone) is another account at the same venue, fed the same market data. Market data
fills what waits and marks the ledger; an order of an instrument that fills at the decision
(funding carry, a currency cycle) is executed at once by the venue's model.
"""

from __future__ import annotations

from core.engine.execution import PaperBroker
from core.engine.portfolio import Portfolio
from core.engine.venue import NOTIONAL_PRICE, Venue
from core.model import Bar, Fill, FundingRate, Order, Quote
from core.strategies.base import Execution

# The execution styles whose orders the venue fills when they are decided.
AT_DECISION = frozenset({Execution.CARRY, Execution.CYCLE})


class Account:
    """One broker and one portfolio at ``venue``."""

    def __init__(self, venue: Venue, capital: float) -> None:
        self.venue = venue
        self.broker = PaperBroker(venue.bars, venue.taker)
        self.portfolio = Portfolio(capital)
        # Instruments filled at the decision, and how; registered by the strategies that trade
        # them before their first order.
        self.at_decision: dict[str, Execution] = {}
        # The standing (bid, ask) of every pair quoted, for currency cycles (kept only once a
        # cycle is traded: other quote feeds need not pay for it).
        self._pairs: dict[str, tuple[float, float]] = {}
        self._cycles = False

    def register(self, instrument: str, execution: Execution) -> None:
        """Fill ``instrument``'s orders at the decision (carry and cycle styles)."""
        if execution not in AT_DECISION or instrument in self.at_decision:
            return
        self.at_decision[instrument] = execution
        self._cycles |= execution is Execution.CYCLE
        if self.portfolio.last_price(instrument) == 0.0:
            self.portfolio.mark(instrument, NOTIONAL_PRICE)

    def on_bar(self, bar: Bar) -> Fill | None:
        """Fill the symbol's order waiting for this open, then mark the close."""
        fill = None
        broker = self.broker
        if broker.has_pending(bar.symbol):  # most bars have no order waiting
            fill = broker.on_bar_open(bar)
            if fill is not None:
                self.portfolio.apply_fill(fill)
        self.portfolio.mark(bar.symbol, bar.close)
        return fill

    def on_quote(self, quote: Quote) -> list[Fill]:
        """Fill the taker orders the quote tells have arrived; mark symbol and symbol:venue."""
        fills = self.broker.on_quote(quote) if self.broker.quote_model is not None else []
        for fill in fills:
            self.portfolio.apply_fill(fill)
        if 0.0 < quote.bid_price <= quote.ask_price:
            mid = quote.mid
            self.portfolio.mark(quote.symbol, mid)
            if quote.venue:
                self.portfolio.mark(f"{quote.symbol}:{quote.venue}", mid)
            if self._cycles:
                book = (quote.bid_price, quote.ask_price)
                self._pairs[quote.symbol] = book
                if quote.venue:
                    self._pairs[f"{quote.symbol}:{quote.venue}"] = book
        return fills

    def on_funding(self, event: FundingRate) -> None:
        """Pay or collect the settlement on a position in that venue's perpetual."""
        instrument = self.venue.carry.perpetual(event)
        held = self.portfolio.quantity(instrument)
        if held != 0.0:
            self.portfolio.settle(instrument, -held * NOTIONAL_PRICE * event.rate, event.ts_event)

    def execute(self, order: Order) -> list[Fill]:
        """Fill an order of an at-decision instrument now; applied to the ledger."""
        style = self.at_decision[order.symbol]
        if style is Execution.CARRY:
            quantity = order.quantity
            legs = [
                (order.symbol, order.side, quantity, NOTIONAL_PRICE, self.venue.carry.fee(quantity))
            ]
        else:
            cycle = self.venue.cycle
            entries = cycle.execute(order.symbol, order.side, order.quantity, self._pairs)
            legs = [(e.currency, e.side, e.quantity, e.price, e.fee) for e in entries]
        fills = self.broker.execute(order, legs)
        for fill in fills:
            self.portfolio.apply_fill(fill)
        return fills
