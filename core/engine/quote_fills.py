"""Paper fills for a market maker's resting quotes against real trade prints (first version).

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

:func:`backtest_market_maker` replays events through a quoting strategy and this model and
reports fills, the inventory path, PnL (realized, unrealized marked to the mid, fees) and
adverse selection (how the mid moved after fills).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from core.errors import ConfigError
from core.model import Quote, Side, Signal, Trade

# Prices within a millionth of a tick of each other are the same price.
_PRICE_TOLERANCE = 1e-9


def _binance_maker_fees() -> dict[str, float]:
    return {"spot": 10.0, "usdm": 2.0}


@dataclass(frozen=True)
class QuoteFillConfig:
    """Fill model parameters; see the module docstring for what each assumes."""

    maker_fee_bps: Mapping[str, float] = field(default_factory=_binance_maker_fees)
    default_fee_bps: float = 10.0
    touch_fill_fraction: float = 0.5
    max_inventory: float = math.inf
    markout_seconds: float = 1.0

    def __post_init__(self) -> None:
        for venue, bps in {**self.maker_fee_bps, "default": self.default_fee_bps}.items():
            if not -100.0 <= bps <= 1000.0:
                raise ConfigError(
                    f"maker fee for {venue!r} must be within [-100, 1000] bps, was {bps}"
                )
        if not 0.0 <= self.touch_fill_fraction <= 1.0:
            raise ConfigError(
                f"touch_fill_fraction must be within [0, 1], was {self.touch_fill_fraction}"
            )
        if not self.max_inventory > 0:
            raise ConfigError(f"max_inventory must be > 0, was {self.max_inventory}")
        if not self.markout_seconds > 0:
            raise ConfigError(f"markout_seconds must be > 0, was {self.markout_seconds}")

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
            room = self.config.max_inventory - inventory
            return self._fill(
                self.bid, trade, trade.price < self.bid.price - _PRICE_TOLERANCE, room
            )
        if self.ask is not None and trade.price >= self.ask.price - _PRICE_TOLERANCE:
            room = self.config.max_inventory + inventory
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


class QuotingStrategyLike(Protocol):
    def update(self, event: Any) -> Signal | None: ...

    def on_fill(self, signed_quantity: float) -> None: ...


@dataclass
class _Ledger:
    """Cash, inventory and average-cost PnL of one instrument."""

    cash: float = 0.0
    inventory: float = 0.0
    avg_price: float = 0.0
    realized: float = 0.0
    fees: float = 0.0
    volume: float = 0.0

    def apply(self, fill: QuoteFill) -> None:
        qty = fill.signed_quantity
        self.cash -= qty * fill.price + fill.fee
        self.fees += fill.fee
        self.volume += fill.quantity
        position = self.inventory
        if position * qty < 0:  # reduces (and possibly flips) the position
            closed = min(abs(qty), abs(position))
            self.realized += closed * (fill.price - self.avg_price) * math.copysign(1.0, position)
            if abs(qty) > abs(position):
                self.avg_price = fill.price
        else:
            self.avg_price = (position * self.avg_price + qty * fill.price) / (position + qty)
        self.inventory = position + qty
        if self.inventory == 0.0:
            self.avg_price = 0.0


def backtest_market_maker(
    strategy: QuotingStrategyLike,
    events: Iterable[Quote | Trade],
    config: QuoteFillConfig | None = None,
) -> dict[str, Any]:
    """Replay quote/trade events through a quoting strategy with paper fills of its quotes.

    Per event: a print first fills the quotes resting from earlier events (the strategy hears
    of each fill through ``on_fill``), then the strategy sees the event and may requote.

    Parameters
    ----------
    strategy
        A quoting strategy (``update`` and ``on_fill``), freshly built or restored.
    events
        One instrument's :class:`Quote` and :class:`Trade` events in arrival order.
    config
        Fill model parameters (default :class:`QuoteFillConfig`).

    Returns
    -------
    dict
        ``fills`` (records with ``ts_event, ts_recv, side, price, quantity, fee, trade_price, mid,
        inventory``), ``inventory_path`` (``(ts_event, inventory)`` after each fill), ``cash``,
        ``inventory``, ``mid`` (last), ``fees``, ``realized_pnl``, ``unrealized_pnl``
        (inventory marked to the mid against its average cost), ``pnl`` (``cash + inventory *
        mid``), ``volume``, ``quotes_posted``, and adverse selection: ``adverse_selection``
        (mean move of the mid against the filled side from the fill to ``markout_seconds``
        later, in price; positive = adverse), ``adverse_selection_bps``, ``markout`` (mean of
        the later mid minus the fill price in the filled side's favour: spread earned net of
        the move) and ``markouts`` (fills measured; later fills have no mid yet).
    """
    model = QuoteFillModel(config)
    horizon_ns = int(model.config.markout_seconds * 1e9)
    ledger = _Ledger()
    fills: list[dict[str, Any]] = []
    path: list[tuple[int, float]] = []
    waiting: deque[tuple[int, int]] = deque()  # (due on the local clock, fill index)
    moves: list[float] = []  # mid move in the filled side's favour
    markouts: list[float] = []  # mid later minus fill price, in the filled side's favour
    mid, posted = math.nan, 0
    for event in events:
        clock = event.ts_recv or event.ts_event  # the local clock orders both streams
        if isinstance(event, Quote):
            mid = event.mid
            while waiting and waiting[0][0] <= clock:
                record = fills[waiting.popleft()[1]]
                sign = 1.0 if record["side"] == Side.BUY.value else -1.0
                moves.append(sign * (mid - record["mid"]))
                markouts.append(sign * (mid - record["price"]))
        elif isinstance(event, Trade):
            fill = model.on_trade(event, ledger.inventory)
            if fill is not None:
                ledger.apply(fill)
                strategy.on_fill(fill.signed_quantity)
                fills.append(_record(fill, clock, mid, ledger.inventory))
                path.append((fill.ts_event, ledger.inventory))
                waiting.append((clock + horizon_ns, len(fills) - 1))
        signal = strategy.update(event)
        if signal is not None:
            model.place(signal.bid_price, signal.ask_price, signal.quote_size)
            posted += 1
    return _summary(ledger, mid, fills, path, (moves, markouts), posted)


def _record(fill: QuoteFill, clock: int, mid: float, inventory: float) -> dict[str, Any]:
    return {
        "ts_event": fill.ts_event,
        "ts_recv": clock,
        "side": fill.side.value,
        "price": fill.price,
        "quantity": fill.quantity,
        "fee": fill.fee,
        "trade_price": fill.trade_price,
        "mid": mid,
        "inventory": inventory,
    }


def _summary(
    ledger: _Ledger,
    mid: float,
    fills: list[dict[str, Any]],
    path: list[tuple[int, float]],
    measured: tuple[list[float], list[float]],
    posted: int,
) -> dict[str, Any]:
    moves, markouts = measured
    unrealized = ledger.inventory * (mid - ledger.avg_price) if ledger.inventory else 0.0
    adverse = -math.fsum(moves) / len(moves) if moves else math.nan
    return {
        "fills": fills,
        "inventory_path": path,
        "cash": ledger.cash,
        "inventory": ledger.inventory,
        "mid": mid,
        "fees": ledger.fees,
        "realized_pnl": ledger.realized,
        "unrealized_pnl": unrealized,
        "pnl": ledger.cash + ledger.inventory * mid if ledger.inventory else ledger.cash,
        "volume": ledger.volume,
        "quotes_posted": posted,
        "adverse_selection": adverse,
        "adverse_selection_bps": adverse / mid * 1e4 if moves else math.nan,
        "markout": math.fsum(markouts) / len(markouts) if markouts else math.nan,
        "markouts": len(moves),
    }
