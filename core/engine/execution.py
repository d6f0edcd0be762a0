"""Paper execution: pending orders filled by the market data that follows their decision.

Bars: an order decided at a bar's close fills at the symbol's next open, with slippage and a
fee, optionally capped at a fraction of each bar's volume (the rest waits for later bars).

Quotes (taker): an order reaches the venue ``latency_ns`` after the decision (on the local
receive clock) and takes the book standing then: the last quote of its symbol received at or
before its arrival, buys at the ask and sells at the bid, capped at the quoted size; what that
size cannot fill takes each later quote as it comes. The arrival is known once a quote of the
symbol is received after it. Every fill pays the venue's taker fee. An order names a venue by a
qualified symbol ``"BTCUSDT:spot"``; a plain ``"BTCUSDT"`` takes whichever venue quoted last.

Orders that fill at the decision (funding carry, currency cycles) are executed by
:meth:`PaperBroker.execute` with the prices the venue's model gives.

A new decision for a symbol replaces whatever of its previous order is unfilled. Order ids are
unique by construction: ``<symbol>-<decision time>-<n>`` where ``n`` is the broker's own order
sequence (checkpointed), and fill ids ``<order_id>-1``, ``-2``, ...; so a decision redone after
a restart from a checkpoint produces the same ids, and a store that dedupes by id never fills
twice, while two different orders can never share an id.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec

from core.config import FrozenConfig, require
from core.errors import MessageError
from core.model import Bar, Fill, Order, Quote, Side


class BarFillModel(FrozenConfig, frozen=True, kw_only=True):
    """Next-open fills with slippage and a fee, both in basis points of the traded notional.

    ``max_volume_fraction`` (None = no cap) caps each fill at that fraction of the bar's volume.
    """

    fee_bps: float = 0.0
    slippage_bps: float = 0.0
    max_volume_fraction: float | None = None

    def __post_init__(self) -> None:
        require(
            0.0 <= self.fee_bps <= 1000.0, f"fee_bps must be within [0, 1000], was {self.fee_bps}"
        )
        require(
            0.0 <= self.slippage_bps <= 1000.0,
            f"slippage_bps must be within [0, 1000], was {self.slippage_bps}",
        )
        cap = self.max_volume_fraction
        require(
            cap is None or 0.0 < cap <= 1.0, f"max_volume_fraction must be within (0, 1], was {cap}"
        )

    def fill_price(self, order: Order, bar: Bar) -> float:
        slip = bar.open * self.slippage_bps / 1e4
        return bar.open + slip if order.side is Side.BUY else bar.open - slip

    def fill_quantity(self, remaining: float, bar: Bar) -> float:
        """How much of ``remaining`` this bar can fill (all of it without a volume cap)."""
        if self.max_volume_fraction is None:
            return remaining
        return min(remaining, self.max_volume_fraction * bar.volume)

    def fee(self, quantity: float, price: float) -> float:
        return abs(quantity) * price * self.fee_bps / 1e4


class TakerFillModel(FrozenConfig, frozen=True, kw_only=True):
    """Taker fills against the quote seen ``latency_ns`` after the decision.

    Parameters
    ----------
    latency_ns
        Decision to order arrival, on the local receive clock (``ts_recv``, else ``ts_event``).
    taker_fee_bps
        Taker fee per venue in basis points of the notional; other venues pay
        ``default_fee_bps``.
    """

    latency_ns: int = 0
    taker_fee_bps: dict[str, float] = msgspec.field(default_factory=dict)
    default_fee_bps: float = 0.0

    def __post_init__(self) -> None:
        require(self.latency_ns >= 0, f"latency_ns must be >= 0, was {self.latency_ns}")
        for venue, bps in {**self.taker_fee_bps, "default": self.default_fee_bps}.items():
            require(
                0.0 <= bps <= 1000.0,
                f"taker fee for {venue!r} must be within [0, 1000] bps, was {bps}",
            )

    def fee_bps(self, venue: str) -> float:
        return self.taker_fee_bps.get(venue, self.default_fee_bps)

    def price_and_size(self, side: Side, quote: Quote) -> tuple[float, float]:
        """The price a taker pays on ``side`` and how much is quoted there."""
        if side is Side.BUY:
            return quote.ask_price, quote.ask_size
        return quote.bid_price, quote.bid_size


@dataclass(slots=True)
class _Working:
    """An order and what is left of it: quantity unfilled, fills so far, decision time, and
    the price it was decided at (0: unknown), which a fill's price is held against."""

    order: Order
    remaining: float
    fills: int = 0
    decided_ns: int = 0
    decided_price: float = 0.0
    reached: bool = False  # a taker order the venue has: it took the book standing then


# Asked before every fill: (order, decided price, fill price, fill time) -> may it fill?
FillGuard = Callable[[Order, float, float, int], bool]


class PaperBroker:
    """Hold each symbol's pending order until market data for that symbol fills it."""

    def __init__(self, fill_model: BarFillModel, quote_model: TakerFillModel | None = None) -> None:
        self.fill_model = fill_model
        self.quote_model = quote_model
        # The local clock of the event being processed, set by the engine; an order's latency
        # counts from it. Zero means "use the order's own timestamp".
        self.local_ns = 0
        self._pending: dict[str, _Working] = {}
        # The risk manager's price band: a fill it refuses cancels the rest of the order.
        self.fill_guard: FillGuard | None = None
        # Orders issued so far: the last part of every order id.
        self.sequence = 0
        # The last usable quote per symbol and per symbol:venue: the book a taker order finds
        # when it arrives.
        self._book: dict[str, Quote] = {}

    def submit(
        self,
        symbol: str,
        quantity_delta: float,
        ts_event: int,
        strategy: str = "",
        decided_price: float = 0.0,
    ) -> Order | None:
        """Replace the symbol's pending order with one for ``quantity_delta`` (None when zero),
        decided at ``decided_price`` (0: unknown)."""
        self._pending.pop(symbol, None)
        if quantity_delta == 0.0:
            return None
        self.sequence += 1
        order = Order(
            order_id=f"{symbol}-{ts_event}-{self.sequence}",
            symbol=symbol,
            side=Side.BUY if quantity_delta > 0 else Side.SELL,
            quantity=abs(quantity_delta),
            ts_event=ts_event,
            strategy=strategy,
        )
        self._pending[symbol] = _Working(
            order, order.quantity, 0, self.local_ns or ts_event, decided_price
        )
        return order

    def has_pending(self, symbol: str) -> bool:
        return symbol in self._pending

    @property
    def pending_count(self) -> int:
        return len(self._pending)

    def on_bar_open(self, bar: Bar) -> Fill | None:
        """Fill (some of) the symbol's pending order at this bar's open."""
        working = self._pending.get(bar.symbol)
        if working is None:
            return None
        model = self.fill_model
        quantity = model.fill_quantity(working.remaining, bar)
        if quantity <= 0.0:  # a bar without volume fills nothing; the order keeps waiting
            return None
        price = model.fill_price(working.order, bar)
        if not self._may_fill(working, price, bar.ts_event):
            return None
        return self._fill(working, quantity, price, model.fee(quantity, price), bar.ts_event)

    def on_quote(self, quote: Quote) -> list[Fill]:
        """Fill the taker orders ``quote`` tells have arrived, then remember it as the book."""
        model = self.quote_model
        if model is None or not _usable(quote):
            return []
        now = quote.ts_recv or quote.ts_event
        keys = (quote.symbol, f"{quote.symbol}:{quote.venue}") if quote.venue else (quote.symbol,)
        fills: list[Fill] = []
        pending = self._pending
        if pending:
            for key in keys:
                working = pending.get(key)
                if working is None or working.reached:
                    continue
                if now > working.decided_ns + model.latency_ns:  # it arrived before this quote
                    working.reached = True
                    standing = self._book.get(key)
                    if standing is not None:
                        self._take(working, standing, quote.ts_event, fills)
        book = self._book
        for key in keys:
            book[key] = quote
        if pending:
            for key in keys:
                working = pending.get(key)
                if working is not None and working.reached:  # the rest takes later quotes
                    self._take(working, quote, quote.ts_event, fills)
        return fills

    def _take(self, working: _Working, quote: Quote, ts_event: int, fills: list[Fill]) -> None:
        model = self.quote_model
        assert model is not None
        price, size = model.price_and_size(working.order.side, quote)
        quantity = min(working.remaining, size)
        if quantity <= 0.0 or not self._may_fill(working, price, ts_event):
            return
        fee = quantity * price * model.fee_bps(quote.venue) / 1e4
        fills.append(self._fill(working, quantity, price, fee, ts_event))

    def execute(
        self, order: Order, legs: list[tuple[str, Side, float, float, float]]
    ) -> list[Fill]:
        """Fill ``order`` at once as the venue's entries ``(symbol, side, quantity, price,
        fee)`` (one for a carry leg, four for a currency cycle); ids ``<order_id>-1``, ..."""
        self._pending.pop(order.symbol, None)
        return [
            Fill(
                fill_id=f"{order.order_id}-{n}",
                order_id=order.order_id,
                symbol=symbol,
                side=side,
                quantity=quantity,
                price=price,
                fee=fee,
                ts_event=order.ts_event,
                strategy=order.strategy,
            )
            for n, (symbol, side, quantity, price, fee) in enumerate(legs, start=1)
        ]

    def book_state(self) -> dict[str, Any]:
        """The standing quotes, JSON-safe, so an order waiting at a checkpoint finds them."""
        return {key: msgspec.to_builtins(quote) for key, quote in self._book.items()}

    def restore_book_state(self, state: dict[str, Any]) -> None:
        self._book = {str(key): msgspec.convert(q, Quote) for key, q in state.items()}

    def _may_fill(self, working: _Working, price: float, ts_event: int) -> bool:
        guard = self.fill_guard
        if guard is None or guard(working.order, working.decided_price, price, ts_event):
            return True
        del self._pending[working.order.symbol]  # cancelled: the position stays as it is
        return False

    def pending(self) -> list[Order]:
        """The orders waiting (as decided; :meth:`pending_state` has what is left of them)."""
        return [working.order for working in self._pending.values()]

    def pending_state(self) -> list[dict[str, Any]]:
        """JSON-safe pending orders with their unfilled quantity, fill count and decision time."""
        return [
            {
                "order": msgspec.to_builtins(w.order),
                "remaining": w.remaining,
                "fills": w.fills,
                "decided_ns": w.decided_ns,
                "decided_price": w.decided_price,
                "reached": w.reached,
            }
            for w in self._pending.values()
        ]

    def restore_pending_state(self, state: list[dict[str, Any]]) -> None:
        """Re-queue from :meth:`pending_state` (or from plain orders, as older snapshots hold)."""
        self._pending = {}
        for item in state:
            if "order" not in item:  # a snapshot from before partial fills: an order as decided
                order = msgspec.convert(item, Order)
                self._pending[order.symbol] = _Working(order, order.quantity, 0, order.ts_event)
                continue
            order = msgspec.convert(item["order"], Order)
            remaining, fills = float(item["remaining"]), int(item["fills"])
            if not 0.0 < remaining <= order.quantity or fills < 0:
                raise MessageError(
                    f"pending order {order.order_id} has remaining={remaining} fills={fills}"
                )
            self._pending[order.symbol] = _Working(
                order,
                remaining,
                fills,
                int(item["decided_ns"]),
                float(item.get("decided_price", 0.0)),  # older snapshots: none kept
                bool(item.get("reached", fills > 0)),  # older: a partly filled one had
            )

    def _fill(
        self, working: _Working, quantity: float, price: float, fee: float, ts_event: int
    ) -> Fill:
        order = working.order
        working.fills += 1
        working.remaining -= quantity
        if working.remaining <= 0.0:
            del self._pending[order.symbol]
        return Fill(
            fill_id=f"{order.order_id}-{working.fills}",
            order_id=order.order_id,
            symbol=order.symbol,
            side=order.side,
            quantity=quantity,
            price=price,
            fee=fee,
            ts_event=ts_event,
            strategy=order.strategy,
        )


def _usable(quote: Quote) -> bool:
    """A quote a taker could trade on: positive prices, not crossed."""
    return 0.0 < quote.bid_price <= quote.ask_price
