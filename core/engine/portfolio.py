"""Positions, cash and PnL, updated by fills and marked to the last price."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from core.model import Fill, Position


@dataclass(slots=True)
class _Holding:
    quantity: float = 0.0
    avg_price: float = 0.0
    realized_pnl: float = 0.0
    fees: float = 0.0
    last_price: float = 0.0
    trades: int = 0
    ts_event: int = 0

    @property
    def unrealized_pnl(self) -> float:
        return self.quantity * (self.last_price - self.avg_price)


class Portfolio:
    """A cash-and-positions ledger; equity = cash + sum of positions at their last price."""

    def __init__(self, initial_cash: float = 0.0) -> None:
        self.initial_cash = initial_cash
        self.cash = initial_cash
        self._holdings: dict[str, _Holding] = {}
        self._market_value = 0.0
        self._gross = 0.0
        # Live view of signed quantities, handed to the risk manager without copying.
        self.quantities: dict[str, float] = {}
        self.traded_notional = 0.0
        self.closed_trades = 0
        self.winning_trades = 0

    def apply_fill(self, fill: Fill) -> None:
        symbol, price, fee = fill.symbol, fill.price, fill.fee
        h = self._holdings.get(symbol)
        if h is None:  # not setdefault: that would build a holding on every fill
            h = self._holdings[symbol] = _Holding(last_price=price)
        held, last = h.quantity, h.last_price
        self._market_value -= held * last
        self._gross -= abs(held) * last
        qty = fill.signed_quantity
        self.cash -= qty * price + fee
        realized = _realized_by(h, qty, price)
        if realized != 0.0:
            self.closed_trades += 1
            self.winning_trades += realized > 0.0
        h.realized_pnl += realized
        self.traded_notional += abs(qty) * price
        h.avg_price = _new_average(h, qty, price)
        h.quantity = held = held + qty
        h.fees += fee
        h.trades += 1
        h.ts_event = fill.ts_event
        h.last_price = price
        self._market_value += held * price
        self._gross += abs(held) * price
        self.quantities[symbol] = held

    def settle(self, symbol: str, amount: float, ts_event: int) -> None:
        """Book a cash flow of holding ``symbol`` (funding paid or collected) as realized PnL."""
        h = self._holdings.get(symbol)
        if h is None:
            h = self._holdings[symbol] = _Holding()
        self.cash += amount
        h.realized_pnl += amount
        h.ts_event = ts_event

    def mark(self, symbol: str, price: float) -> None:
        h = self._holdings.get(symbol)
        if h is None:
            self._holdings[symbol] = _Holding(last_price=price)
            return
        move = price - h.last_price
        held = h.quantity
        self._market_value += held * move
        self._gross += abs(held) * move
        h.last_price = price

    def last_price(self, symbol: str) -> float:
        h = self._holdings.get(symbol)
        return h.last_price if h is not None else 0.0

    def quantity(self, symbol: str) -> float:
        h = self._holdings.get(symbol)
        return h.quantity if h is not None else 0.0

    @property
    def equity(self) -> float:
        return self.cash + self._market_value

    @property
    def hit_rate(self) -> float:
        """Share of position reductions that realised a gain (before fees)."""
        return self.winning_trades / self.closed_trades if self.closed_trades else 0.0

    @property
    def gross_exposure(self) -> float:
        """Sum of |quantity| x last price over all symbols."""
        return self._gross

    @property
    def net_exposure(self) -> float:
        """Sum of quantity x last price over all symbols (long minus short)."""
        return self._market_value

    def to_state(self) -> dict[str, Any]:
        """Everything the ledger holds, JSON-safe and exact (floats round-trip through JSON),
        so a restart continues from a checkpoint without reading the fills before it."""
        return {
            "cash": self.cash,
            "market_value": self._market_value,
            "gross": self._gross,
            "traded_notional": self.traded_notional,
            "closed_trades": self.closed_trades,
            "winning_trades": self.winning_trades,
            "holdings": {
                symbol: [h.quantity, h.avg_price, h.realized_pnl, h.fees, h.last_price,
                         h.trades, h.ts_event]
                for symbol, h in self._holdings.items()
            },
        }  # fmt: skip

    def restore(self, state: dict[str, Any]) -> None:
        """Take back :meth:`to_state`; raises ``ValueError`` (nothing changed) if it does not
        validate."""
        holdings = {}
        for symbol, row in state["holdings"].items():
            quantity, avg, realized, fees, last, trades, ts = row
            q, a, r, f, p = (float(v) for v in (quantity, avg, realized, fees, last))
            if not all(math.isfinite(v) for v in (q, a, r, f, p)):
                raise ValueError(f"holding {symbol!r} has a non-finite number: {row}")
            holdings[str(symbol)] = _Holding(q, a, r, f, p, int(trades), int(ts))
        numbers = [float(state[k]) for k in ("cash", "market_value", "gross", "traded_notional")]
        if not all(math.isfinite(v) for v in numbers):
            raise ValueError(f"portfolio totals are not finite: {numbers}")
        self.cash, self._market_value, self._gross, self.traded_notional = numbers
        self.closed_trades = int(state["closed_trades"])
        self.winning_trades = int(state["winning_trades"])
        self._holdings = holdings
        self.quantities = {s: h.quantity for s, h in holdings.items() if h.trades}

    def positions(self) -> list[Position]:
        return [
            Position(
                symbol=s,
                quantity=h.quantity,
                avg_price=h.avg_price,
                realized_pnl=h.realized_pnl,
                ts_event=h.ts_event,
            )
            for s, h in sorted(self._holdings.items())
            if h.trades
        ]

    def per_symbol(self) -> list[dict[str, float | int | str]]:
        """Trades and PnL per traded symbol, net of fees, marked to the last price."""
        return [
            {
                "symbol": s,
                "trades": h.trades,
                "position": h.quantity,
                "realized_pnl": h.realized_pnl,
                "unrealized_pnl": h.unrealized_pnl,
                "fees": h.fees,
                "pnl": h.realized_pnl + h.unrealized_pnl - h.fees,
            }
            for s, h in sorted(self._holdings.items())
            if h.trades
        ]


def _realized_by(h: _Holding, qty: float, price: float) -> float:
    """PnL realized when ``qty`` reduces an existing position of the opposite sign."""
    if h.quantity == 0.0 or (h.quantity > 0) == (qty > 0):
        return 0.0
    closed = min(abs(qty), abs(h.quantity))
    direction = 1.0 if h.quantity > 0 else -1.0
    return closed * direction * (price - h.avg_price)


def _new_average(h: _Holding, qty: float, price: float) -> float:
    new_qty = h.quantity + qty
    if new_qty == 0.0:
        return 0.0
    if h.quantity == 0.0 or (h.quantity > 0) != (new_qty > 0):
        return price  # opened, or flipped through zero: the remainder is at this price
    if (h.quantity > 0) == (qty > 0):
        return (h.quantity * h.avg_price + qty * price) / new_qty
    return h.avg_price  # reduced: the average of what is left is unchanged
