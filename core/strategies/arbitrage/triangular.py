"""Triangular FX arbitrage: trade a currency cycle when its executable product beats 1 + costs.

For currencies ``(A, B, C)`` = ``(EUR, USD, GBP)`` the legs are ``AB`` (EURUSD), ``CB`` (GBPUSD)
and ``AC`` (EURGBP), each quoted as units of the second currency per unit of the first. Starting
with one unit of B:

* forward cycle B -> A -> C -> B: buy A at ``AB ask``, sell A for C at ``AC bid``, sell C at
  ``CB bid``: ``forward = AC_bid * CB_bid / AB_ask``;
* reverse cycle B -> C -> A -> B: buy C at ``CB ask``, buy A with C at ``AC ask``, sell A at
  ``AB bid``: ``reverse = AB_bid / (CB_ask * AC_ask)``.

The hurdle is ``1 + (3 * fee_bps + min_edge_bps) / 1e4``. Target ``+1`` means "execute the forward
cycle once" (buy AB, sell AC, sell CB), ``-1`` the reverse cycle, ``0`` nothing to do.

Event: one :class:`~core.model.Quote` per pair and time (for daily data, one per pair per day),
``symbol`` the pair (``EURUSD``) and ``venue`` the broker. A triangle is evaluated only when all
three legs carry stamps within ``max_leg_age_s`` of each other (same day for daily closes): a
stale leg gives target 0. A quote with bid > ask, or a non-positive price, is bad data: it is
skipped (never stored as a leg, so it cannot look like arbitrage), counted in ``rejected_crossed``
and the count is carried in every signal's reason.

Vectorized frame: the FX quotes frame of :mod:`core.data.fx` (columns ``ts_event``, ``symbol``,
``venue``, ``bid_price``, ``ask_price``) in event order; rows of other pairs or venues, and rejected
rows, give NaN (no decision), as do rows before all three legs have been seen.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from core.model import Quote, Signal
from core.state import decode_floats, encode_floats
from core.strategies.arrays import carried
from core.strategies.base import (
    DataKind,
    Execution,
    Family,
    Strategy,
    StrategyConfig,
    StrategySpec,
    Tier,
    require,
)
from core.strategies.catalogue import register

_NS_PER_S = 1_000_000_000


def _cycle_instrument(config: TriangularConfig) -> str:
    name = "/".join(config.currencies)
    return f"{name}:{config.venue}" if config.venue else name


class TriangularConfig(StrategyConfig, frozen=True, kw_only=True):
    currencies: tuple[str, str, str] = ("EUR", "USD", "GBP")
    venue: str = ""  # only quotes from this venue; empty accepts any venue
    fee_bps: float = 0.0  # cost per leg (commission plus slippage), in basis points
    min_edge_bps: float = 1.0  # edge required above the fees, in basis points
    max_leg_age_s: float = 0.0  # legs must be stamped within this many seconds of each other

    def __post_init__(self) -> None:
        require(
            len(set(self.currencies)) == 3,
            f"currencies must be three different codes, was {list(self.currencies)}",
        )
        require(self.fee_bps >= 0, f"fee_bps must be >= 0, was {self.fee_bps}")
        require(self.min_edge_bps >= 0, f"min_edge_bps must be >= 0, was {self.min_edge_bps}")
        # With no cost at all, float rounding of a closed triangle (1 + 1e-16) would "trigger".
        require(
            3 * self.fee_bps + self.min_edge_bps > 0,
            f"3 * fee_bps + min_edge_bps must be > 0, was {3 * self.fee_bps + self.min_edge_bps}",
        )
        require(self.max_leg_age_s >= 0, f"max_leg_age_s must be >= 0, was {self.max_leg_age_s}")

    @property
    def legs(self) -> tuple[str, str, str]:
        """The pair names ``(AB, CB, AC)``, e.g. ``("EURUSD", "GBPUSD", "EURGBP")``."""
        a, b, c = self.currencies
        return a + b, c + b, a + c

    @property
    def hurdle(self) -> float:
        return 1.0 + (3.0 * self.fee_bps + self.min_edge_bps) / 1e4


@register
class Triangular(Strategy[TriangularConfig]):
    """Target +1 / -1 when the forward / reverse executable cycle beats the hurdle, else 0."""

    spec = StrategySpec(
        name="triangular",
        family=Family.ARBITRAGE,
        tier=Tier.FAST,
        data_kind=DataKind.QUOTES_TRADES,
        summary=(
            "Currency triangle: compute both cycle products from executable bid/ask and trade "
            "the cycle that beats 1 + costs; crossed quotes are rejected."
        ),
        dataset="fx_triangle_daily_lean",
        execution=Execution.CYCLE,
    )
    config_type = TriangularConfig

    def __init__(self, config: TriangularConfig, symbol: str, *, name: str | None = None) -> None:
        super().__init__(config, symbol, name=name)
        self._index = {pair: i for i, pair in enumerate(config.legs)}
        self._bid = [math.nan] * 3
        self._ask = [math.nan] * 3
        self._ts = [0] * 3
        self._seen = [False] * 3
        self.rejected_crossed = 0

    @property
    def warmup(self) -> int:
        return 3

    def subscriptions(self) -> tuple[str, ...]:
        return self.config.legs

    def legs(self, signal: Signal) -> dict[str, float]:
        # +1 / -1 asks the venue for one forward / reverse cycle of the triangle; the cycle
        # instrument ``A/B/C`` (``:venue`` when it keeps to one) holds no position after it.
        return {_cycle_instrument(self.config): signal.target_position}

    def update(self, quote: Quote) -> Signal | None:
        leg = self._index.get(quote.symbol)
        if leg is None or (self.config.venue and quote.venue != self.config.venue):
            return None
        bid, ask = quote.bid_price, quote.ask_price
        if not (0.0 < bid <= ask):
            self.rejected_crossed += 1
            return None
        self._bid[leg], self._ask[leg], self._ts[leg] = bid, ask, quote.ts_event
        self._seen[leg] = True
        if not all(self._seen):
            return None
        return self._decide(quote.ts_event)

    def _decide(self, ts_event: int) -> Signal | None:
        forward = self._bid[2] * self._bid[1] / self._ask[0]
        reverse = self._bid[0] / (self._ask[1] * self._ask[2])
        fresh = max(self._ts) - min(self._ts) <= self.config.max_leg_age_s * _NS_PER_S
        hurdle = self.config.hurdle
        target = 0.0
        if fresh and forward > hurdle:
            target = 1.0
        elif fresh and reverse > hurdle:
            target = -1.0
        reason = {
            "forward_product": forward,
            "reverse_product": reverse,
            "hurdle": hurdle,
            "fresh": float(fresh),
            "rejected_crossed": float(self.rejected_crossed),
        }
        strength = (max(forward, reverse) - hurdle) * 1e4 if target else 0.0
        return self._emit(ts_event, target, strength, reason)

    def to_state(self) -> dict[str, Any]:
        return {
            **self._base_state(),
            "bid": encode_floats(self._bid),
            "ask": encode_floats(self._ask),
            "ts": list(self._ts),
            "seen": list(self._seen),
            "rejected_crossed": self.rejected_crossed,
        }

    def restore(self, state: dict[str, Any]) -> None:
        self._restore_base(state)
        self._bid = decode_floats(state["bid"])
        self._ask = decode_floats(state["ask"])
        self._ts = [int(v) for v in state["ts"]]
        self._seen = [bool(v) for v in state["seen"]]
        self.rejected_crossed = int(state["rejected_crossed"])

    @classmethod
    def vectorized(cls, config: TriangularConfig, frame: pd.DataFrame) -> pd.Series:
        symbol = frame["symbol"].astype("str").to_numpy()
        bid = frame["bid_price"].to_numpy(np.float64)
        ask = frame["ask_price"].to_numpy(np.float64)
        ts = frame["ts_event"].to_numpy(np.int64)
        mine = np.isin(symbol, config.legs)
        if config.venue:
            mine &= frame["venue"].astype("str").to_numpy() == config.venue
        with np.errstate(invalid="ignore"):
            valid = mine & (bid > 0) & (bid <= ask)
        legs = [_last_valid(valid & (symbol == pair), bid, ask, ts) for pair in config.legs]
        (ab_bid, ab_ask, ab_ts), (cb_bid, cb_ask, cb_ts), (ac_bid, ac_ask, ac_ts) = legs
        forward = ac_bid * cb_bid / ab_ask
        reverse = ab_bid / (cb_ask * ac_ask)
        stamps = np.vstack([ab_ts, cb_ts, ac_ts])
        fresh = stamps.max(axis=0) - stamps.min(axis=0) <= config.max_leg_age_s * _NS_PER_S
        target = np.where(
            fresh & (forward > config.hurdle),
            1.0,
            np.where(fresh & (reverse > config.hurdle), -1.0, 0.0),
        )
        defined = valid & ~np.isnan(forward)
        return pd.Series(np.where(defined, target, np.nan), index=frame.index)


def _last_valid(
    mask: np.ndarray, bid: np.ndarray, ask: np.ndarray, ts: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Latest valid bid, ask and stamp of one leg as of each row (NaN / 0 before its first)."""
    return carried(mask, bid), carried(mask, ask), carried(mask, ts, 0)
