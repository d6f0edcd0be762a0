"""Paper fills for a market maker's resting quotes against real trade prints.

Assumptions, stated because the data cannot show them (we see prints, not our place in the
queue):

- **Queue.** A resting bid is filled by a print at or below its price, a resting ask by a print
  at or above it. A print *through* our price (strictly below our bid) means every order at
  our price was consumed first, so the whole remaining quote fills, at our price. A print
  *exactly at* our price is shared with the queue ahead of us: only ``touch_fill_fraction`` of
  the print's size is ours (0 = always last in the queue, 1 = always first).
- **Timing.** Quotes posted on one event are live from the next event on (no latency model);
  a new quote replaces the old one with its full size (cancel/replace).
- **Fees.** Every fill pays the venue's maker fee in basis points of its notional (a rebate
  if negative). Defaults are Binance's regular-tier rates in 2024: spot 0.1000 %, USD-M
  futures 0.0200 %; VIP tiers and BNB discounts lower them.
- **Inventory.** A fill never takes the absolute inventory beyond ``max_inventory``.
- **Stream skew.** Binance pushes bookTicker ahead of the trade stream, so in arrival order a
  sweep usually shows in the book before its prints arrive: the mid recorded "at" a fill is
  often already the post-trade mid, which understates the adverse selection measured from it
  (``markout``, measured from the fill price, does not have that bias).

The model is run by the engine for every market maker (:mod:`core.engine.makers`); the ledger is the
engine's portfolio and markouts come from :mod:`core.engine.analyzers`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import msgspec

from core.config import FrozenConfig, require
from core.model import Side, Trade

# Prices within a millionth of a tick of each other are the same price.
_PRICE_TOLERANCE = 1e-9


class QuoteFillConfig(FrozenConfig, frozen=True, kw_only=True):
    """Fill model parameters; see the module docstring for what each assumes.

    ``max_inventory`` None: no limit beyond the strategy's own.
    """

    maker_fee_bps: dict[str, float] = msgspec.field(
        default_factory=lambda: {"spot": 10.0, "usdm": 2.0}
    )
    default_fee_bps: float = 10.0
    touch_fill_fraction: float = 0.5
    max_inventory: float | None = None
    markout_seconds: float = 1.0

    def __post_init__(self) -> None:
        for venue, bps in {**self.maker_fee_bps, "default": self.default_fee_bps}.items():
            require(
                -100.0 <= bps <= 1000.0,
                f"maker fee for {venue!r} must be within [-100, 1000] bps, was {bps}",
            )
        require(
            0.0 <= self.touch_fill_fraction <= 1.0,
            f"touch_fill_fraction must be within [0, 1], was {self.touch_fill_fraction}",
        )
        require(
            self.max_inventory is None or self.max_inventory > 0,
            f"max_inventory must be > 0, was {self.max_inventory}",
        )
        require(
            self.markout_seconds > 0, f"markout_seconds must be > 0, was {self.markout_seconds}"
        )

    @property
    def inventory_limit(self) -> float:
        return math.inf if self.max_inventory is None else self.max_inventory

    def fee_bps(self, venue: str) -> float:
        return self.maker_fee_bps.get(venue, self.default_fee_bps)


@dataclass
class RestingQuote:
    side: Side
    price: float
    remaining: float


@dataclass(frozen=True)
class QuoteFill:
    """One fill of a resting quote: ``quantity`` > 0, ``fee`` in quote currency (paid if > 0)."""

    ts_event: int
    side: Side
    price: float
    quantity: float
    fee: float
    trade_price: float

    @property
    def signed_quantity(self) -> float:
        return self.quantity if self.side is Side.BUY else -self.quantity


class QuoteFillModel:
    """The market maker's resting bid and ask, filled by trade prints."""

    def __init__(self, config: QuoteFillConfig | None = None) -> None:
        self.config = config or QuoteFillConfig()
        self.bid: RestingQuote | None = None
        self.ask: RestingQuote | None = None

    def place(self, bid_price: float | None, ask_price: float | None, size: float) -> None:
        """Replace both resting quotes (``None`` leaves that side empty)."""
        self.bid = RestingQuote(Side.BUY, bid_price, size) if bid_price is not None else None
        self.ask = RestingQuote(Side.SELL, ask_price, size) if ask_price is not None else None

    def on_trade(self, trade: Trade, inventory: float) -> QuoteFill | None:
        """Fill whichever resting quote ``trade`` reaches, given the current inventory."""
        if self.bid is not None and trade.price <= self.bid.price + _PRICE_TOLERANCE:
            room = self.config.inventory_limit - inventory
            return self._fill(
                self.bid, trade, trade.price < self.bid.price - _PRICE_TOLERANCE, room
            )
        if self.ask is not None and trade.price >= self.ask.price - _PRICE_TOLERANCE:
            room = self.config.inventory_limit + inventory
            return self._fill(
                self.ask, trade, trade.price > self.ask.price + _PRICE_TOLERANCE, room
            )
        return None

    def _fill(
        self, quote: RestingQuote, trade: Trade, through: bool, room: float
    ) -> QuoteFill | None:
        share = quote.remaining if through else self.config.touch_fill_fraction * trade.size
        quantity = min(share, quote.remaining, room)
        if quantity <= 0.0:
            return None
        quote.remaining -= quantity
        if quote.remaining <= 0.0:
            if quote.side is Side.BUY:
                self.bid = None
            else:
                self.ask = None
        fee = quantity * quote.price * self.config.fee_bps(trade.venue) / 1e4
        return QuoteFill(trade.ts_event, quote.side, quote.price, quantity, fee, trade.price)
