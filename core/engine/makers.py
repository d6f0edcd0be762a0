"""Resting quotes of the market makers in the engine, filled by real trade prints.

The same fill model as :func:`core.engine.quote_fills.backtest_market_maker` (see its module
for the queue, timing and fee assumptions), run by the engine so a market maker trades the
same way in a backtest and in the live core: a print first fills the quotes resting from
earlier events, the strategy hears of its fill (``on_fill``) and may then requote.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from core.engine.quote_fills import QuoteFillConfig, QuoteFillModel
from core.model import Fill, InstanceKey, Signal, Trade


@dataclass
class _Maker:
    key: InstanceKey
    symbol: str
    strategy: Any
    model: QuoteFillModel
    inventory: float = 0.0


class RestingQuotes:
    """Every quoting instance's resting bid and ask, by the symbol its quotes rest on."""

    def __init__(self, config: QuoteFillConfig | None = None) -> None:
        self.config = config or QuoteFillConfig()
        self._makers: dict[str, _Maker] = {}
        self._by_symbol: dict[str, list[_Maker]] = defaultdict(list)
        self._restored: dict[str, float] = {}

    def place(self, instance_key: InstanceKey, strategy: Any, signal: Signal) -> None:
        """Replace an instance's quotes with the ones its signal states."""
        maker = self._makers.get(instance_key)
        if maker is None:
            inventory = self._restored.pop(instance_key, 0.0)
            model = QuoteFillModel(self.config)
            maker = _Maker(instance_key, signal.symbol, strategy, model, inventory)
            self._makers[instance_key] = maker
            self._by_symbol[signal.symbol].append(maker)
        maker.strategy = strategy  # a hot reload may have replaced the instance
        maker.model.place(signal.bid_price, signal.ask_price, signal.quote_size)

    def on_trade(self, trade: Trade, sequence: int) -> list[Fill]:
        """Fill the quotes this print reaches; tell each strategy of its own fill.

        ``sequence`` numbers the event in the engine's run (restored with its checkpoint), so
        fill ids are the same on a replay and unique even when prints share a timestamp.
        """
        makers = self._by_symbol.get(trade.symbol)
        if not makers:
            return []
        fills = []
        for maker in makers:
            fill = maker.model.on_trade(trade, maker.inventory)
            if fill is None:
                continue
            maker.inventory += fill.signed_quantity
            maker.strategy.on_fill(fill.signed_quantity)
            order_id = f"mm-{maker.key}-{sequence}"
            fills.append(
                Fill(
                    fill_id=f"{order_id}-{fill.side.value}",
                    order_id=order_id,
                    symbol=trade.symbol,
                    side=fill.side,
                    quantity=fill.quantity,
                    price=fill.price,
                    fee=fill.fee,
                    ts_event=fill.ts_event,
                    strategy=maker.key.model,
                )
            )
        return fills

    def inventories(self) -> dict[str, float]:
        return {key: maker.inventory for key, maker in self._makers.items()}

    def restore_inventories(self, inventories: dict[str, float]) -> None:
        """Inventory per instance after a restart; quotes come back with the next signal."""
        self._restored = {key: float(value) for key, value in inventories.items()}
