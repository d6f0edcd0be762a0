"""Analyzers over fills: what happened to the market after each fill.

They watch the engine's events, orders and fills (never change them) and report numbers a
trader asks of a quoting or latency-sensitive strategy:

* markouts and adverse selection: the mid ``horizon`` after a fill (on the local receive
  clock) against the mid at the fill and against the fill price, in the filled side's favour;
* stale and moved taker fills: whether a taker order filled at the quote that stood when it
  was decided, or the book had moved by the time it arrived.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

from core.model import Fill, Order, Quote, Side


class FillAnalyzer:
    """Markouts, adverse selection and stale fills of one run."""

    def __init__(self, horizon_s: float = 1.0) -> None:
        self.horizon_ns = int(horizon_s * 1e9)
        self._clock = 0
        self._mid: dict[str, float] = {}
        self._last_filled = ""  # the symbol of the last fill: its mid scales the bps
        self._quote: dict[str, Quote] = {}
        self._waiting: deque[tuple[int, str, float, float, float]] = deque()
        self._moves: list[float] = []  # mid move in the filled side's favour
        self._markouts: list[float] = []  # later mid minus fill price, in the side's favour
        self._decided: dict[str, tuple[Side, float]] = {}  # order id -> side, standing price
        self.stale_fills = 0
        self.moved_fills = 0

    def observe(self, event: Any) -> None:
        """See an event before the engine acts on it (the book as it stands at that time)."""
        self._clock = getattr(event, "ts_recv", 0) or event.ts_event
        if not isinstance(event, Quote) or not 0.0 < event.bid_price <= event.ask_price:
            return
        mid = event.mid
        self._mid[event.symbol] = mid
        self._quote[event.symbol] = event
        if event.venue:
            self._quote[f"{event.symbol}:{event.venue}"] = event
        waiting = self._waiting
        while waiting and waiting[0][0] <= self._clock:
            _, symbol, sign, mid_then, price = waiting.popleft()
            now = self._mid.get(symbol, math.nan)
            self._moves.append(sign * (now - mid_then))
            self._markouts.append(sign * (now - price))

    def on_order(self, order: Order) -> None:
        """Remember the quote that stood on the order's side when it was decided."""
        quote = self._quote.get(order.symbol)
        if quote is not None:
            price = quote.ask_price if order.side is Side.BUY else quote.bid_price
            self._decided[order.order_id] = (order.side, price)

    def on_fill(self, fill: Fill) -> None:
        decided = self._decided.pop(fill.order_id, None)
        if decided is not None:
            if fill.price == decided[1]:
                self.stale_fills += 1
            else:
                self.moved_fills += 1
        symbol = fill.symbol.partition(":")[0]
        self._last_filled = symbol
        mid = self._mid.get(symbol, math.nan)
        if math.isnan(mid):
            return
        sign = 1.0 if fill.side is Side.BUY else -1.0
        self._waiting.append((self._clock + self.horizon_ns, symbol, sign, mid, fill.price))

    def report(self) -> dict[str, Any]:
        """``adverse_selection`` (mean move of the mid against the filled side, in price;
        positive = adverse), ``adverse_selection_bps`` (over the last mid of the last symbol
        filled), ``markout`` (mean of the later mid minus the fill price in the side's favour),
        ``markouts`` (fills measured), ``stale_fills`` and ``moved_fills``. None where nothing
        was measured."""
        moves, markouts = self._moves, self._markouts
        adverse = -math.fsum(moves) / len(moves) if moves else None
        last_mid = self._mid.get(self._last_filled, math.nan)
        bps = adverse / last_mid * 1e4 if adverse is not None and last_mid > 0 else None
        return {
            "adverse_selection": adverse,
            "adverse_selection_bps": bps,
            "markout": math.fsum(markouts) / len(markouts) if markouts else None,
            "markouts": len(moves),
            "stale_fills": self.stale_fills,
            "moved_fills": self.moved_fills,
        }
