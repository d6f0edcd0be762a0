"""Paper execution for bars: an order decided at a bar's close fills at the next bar's open."""

from __future__ import annotations

from dataclasses import dataclass

from core.errors import ConfigError
from core.model import Bar, Fill, Order, Side


@dataclass(frozen=True)
class BarFillModel:
    """Next-open fills with slippage and a fee, both in basis points of the traded notional."""

    fee_bps: float = 0.0
    slippage_bps: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.fee_bps <= 1000.0:
            raise ConfigError(f"fee_bps must be within [0, 1000], was {self.fee_bps}")
        if not 0.0 <= self.slippage_bps <= 1000.0:
            raise ConfigError(f"slippage_bps must be within [0, 1000], was {self.slippage_bps}")

    def fill_price(self, order: Order, bar: Bar) -> float:
        slip = bar.open * self.slippage_bps / 1e4
        return bar.open + slip if order.side is Side.BUY else bar.open - slip

    def fee(self, quantity: float, price: float) -> float:
        return abs(quantity) * price * self.fee_bps / 1e4


class PaperBroker:
    """Hold each symbol's pending order until that symbol's next bar, then fill it.

    Order and fill ids derive from the symbol and the deciding bar's timestamp, so a replayed
    decision produces the same ids and a store that dedupes by id never fills twice.
    """

    def __init__(self, fill_model: BarFillModel) -> None:
        self.fill_model = fill_model
        self._pending: dict[str, Order] = {}

    def submit(
        self, symbol: str, quantity_delta: float, ts_event: int, strategy: str = ""
    ) -> Order | None:
        """Replace the symbol's pending order with one for ``quantity_delta`` (None when zero)."""
        self._pending.pop(symbol, None)
        if quantity_delta == 0.0:
            return None
        order = Order(
            order_id=f"{symbol}-{ts_event}",
            symbol=symbol,
            side=Side.BUY if quantity_delta > 0 else Side.SELL,
            quantity=abs(quantity_delta),
            ts_event=ts_event,
            strategy=strategy,
        )
        self._pending[symbol] = order
        return order

    def on_bar_open(self, bar: Bar) -> Fill | None:
        """Fill the symbol's pending order at this bar's open."""
        order = self._pending.pop(bar.symbol, None)
        if order is None:
            return None
        price = self.fill_model.fill_price(order, bar)
        return Fill(
            fill_id=f"{order.order_id}-1",
            order_id=order.order_id,
            symbol=order.symbol,
            side=order.side,
            quantity=order.quantity,
            price=price,
            fee=self.fill_model.fee(order.quantity, price),
            ts_event=bar.ts_event,
            strategy=order.strategy,
        )

    def pending(self) -> list[Order]:
        return list(self._pending.values())

    def restore_pending(self, orders: list[Order]) -> None:
        """Re-queue orders decided before a restart and not yet filled."""
        self._pending = {order.symbol: order for order in orders}
