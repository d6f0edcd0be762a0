"""The paper venue: how orders of each execution style are filled, at what fee and latency.

Strategies only say what they want to hold; the venue decides what that costs, in the way a
simulated exchange does. One :class:`Venue` bundles a fill model per execution style
(:class:`core.strategies.base.Execution`), each with its own fees and latency:

* ``bars`` (next open): :class:`core.engine.execution.BarFillModel`;
* ``taker`` (quotes): :class:`core.engine.execution.TakerFillModel`, the book standing when the
  order arrives after the latency;
* ``maker`` (resting quotes against prints): :class:`core.engine.quote_fills.QuoteFillConfig`;
* ``carry`` (funding): :class:`CarryFillModel`;
* ``cycle`` (FX triangles): :class:`CycleFillModel`.

Fees and latency belong to the fill model of the style they price.

The backtest and the live core build the engine with a venue; nothing else differs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import msgspec

from core.config import FrozenConfig, require
from core.engine.execution import BarFillModel, TakerFillModel
from core.engine.quote_fills import QuoteFillConfig
from core.model import FundingRate, Side

# Instruments that carry or cycle are counted in units of notional of the home currency.
NOTIONAL_PRICE = 1.0


class CarryFillModel(FrozenConfig, frozen=True, kw_only=True):
    """A delta-neutral funding position: legs in units of notional, filled at the decision.

    A perpetual leg is the instrument ``<symbol>:<venue>``; a spot hedge ``<symbol>:spot``.
    Each fill costs ``fee_bps`` of its notional (a round trip of a two-legged position is four
    fills). At every settlement (:class:`core.model.FundingRate`) a position in that venue's
    perpetual pays ``quantity x rate`` of notional: longs pay shorts when the rate is positive.
    Funding data carries no prices, so positions are held at :data:`NOTIONAL_PRICE`.
    """

    fee_bps: float = 5.0

    def __post_init__(self) -> None:
        require(
            0.0 <= self.fee_bps <= 1000.0,
            f"carry fee_bps must be within [0, 1000], was {self.fee_bps}",
        )

    def fee(self, quantity: float) -> float:
        return abs(quantity) * NOTIONAL_PRICE * self.fee_bps / 1e4

    @staticmethod
    def perpetual(event: FundingRate) -> str:
        """The instrument a settlement pays on."""
        return f"{event.symbol}:{event.venue}"


@dataclass(frozen=True)
class CycleLeg:
    """One ledger entry of a cycle: ``quantity`` > 0 of ``currency`` at ``price`` (home)."""

    currency: str
    side: Side
    quantity: float
    price: float
    fee: float


class CycleFillModel(FrozenConfig, frozen=True, kw_only=True):
    """Currency cycles executed at once at the standing quotes of their three pairs.

    For ``A/B/C`` (home ``B``): buying one unit runs the forward cycle B -> A -> C -> B on one
    unit of B (buy A at the AB ask, sell A for C at the AC bid, sell C at the CB bid), selling
    runs the reverse cycle B -> C -> A -> B. The ledger holds currencies valued in B: the first
    currency bought, exchanged for the second valued at the price it is sold at, and that one
    sold: four entries whose cash nets to ``units x (product - 1)`` less fees and that leave
    no currency held. Each pair traded pays ``fee_bps`` of its notional in B.
    """

    fee_bps: float = 0.0

    def __post_init__(self) -> None:
        require(
            0.0 <= self.fee_bps <= 1000.0,
            f"cycle fee_bps must be within [0, 1000], was {self.fee_bps}",
        )

    def execute(
        self, instrument: str, side: Side, units: float, book: Mapping[str, tuple[float, float]]
    ) -> list[CycleLeg]:
        """The ledger entries of ``units`` cycles through ``instrument`` at ``book``'s (bid,
        ask) per pair; [] if a pair is unquoted (nothing is executed)."""
        name, _, venue = instrument.partition(":")
        a, b, c = name.split("/")
        suffix = f":{venue}" if venue else ""
        ab, cb, ac = (book.get(pair + suffix) for pair in (a + b, c + b, a + c))
        if ab is None or cb is None or ac is None:
            return []
        rate = self.fee_bps / 1e4
        if side is Side.BUY:  # B -> A -> C -> B
            held_a = units / ab[1]
            held_c = held_a * ac[0]
            back = held_c * cb[0]  # B received at the end
            return [
                CycleLeg(a, Side.BUY, held_a, ab[1], units * rate),
                CycleLeg(a, Side.SELL, held_a, ac[0] * cb[0], back * rate),
                CycleLeg(c, Side.BUY, held_c, cb[0], 0.0),
                CycleLeg(c, Side.SELL, held_c, cb[0], back * rate),
            ]
        held_c = units / cb[1]  # B -> C -> A -> B
        held_a = held_c / ac[1]
        back = held_a * ab[0]
        return [
            CycleLeg(c, Side.BUY, held_c, cb[1], units * rate),
            CycleLeg(c, Side.SELL, held_c, ab[0] / ac[1], back * rate),
            CycleLeg(a, Side.BUY, held_a, ab[0], 0.0),
            CycleLeg(a, Side.SELL, held_a, ab[0], back * rate),
        ]


class Venue(FrozenConfig, frozen=True, kw_only=True):
    """The fill model of every execution style. ``taker`` None: taker orders wait unfilled
    (a feed without quotes); ``maker`` None: quotes are recorded, never filled."""

    bars: BarFillModel = msgspec.field(default_factory=BarFillModel)
    taker: TakerFillModel | None = None
    maker: QuoteFillConfig | None = None
    carry: CarryFillModel = msgspec.field(default_factory=CarryFillModel)
    cycle: CycleFillModel = msgspec.field(default_factory=CycleFillModel)
