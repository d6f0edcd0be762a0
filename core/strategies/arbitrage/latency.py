"""Lead-lag latency arbitrage: take the lagging market's stale quote after the leader jumps.

The leader (Binance BTCUSDT USD-M perpetual) reprices first; the lagger (spot) follows. The two
trade at a slowly drifting basis, tracked as the EWMA (span ``basis_span`` events, seeded with the
first value) of the relative basis ``leader_mid / lagger_mid - 1`` over events where both mids are
known. The leader's mid translated into lagger terms is ``fair = leader_mid / (1 + basis)``, with
the basis as it stood *before* the current event (so a jump is not absorbed into its own
reference).

* On a leader event whose mid jumped up by more than ``jump_bps`` from the leader's previous
  mid: if ``fair / lagger_ask - 1`` exceeds ``entry_bps`` the lagger's ask is stale-cheap: buy it
  (target ``+1``, one unit of the lagger). Mirror image on a jump down: if ``lagger_bid / fair - 1``
  exceeds ``entry_bps`` its bid is stale-rich: sell it (target ``-1``, with ``allow_short``).
* On any event while positioned: once the remaining edge at the exit side
  (``fair / lagger_bid - 1`` for a long, ``lagger_ask / fair - 1`` for a short) is at most
  ``exit_bps``, the lagger has followed: go flat.

``entry_bps`` must exceed the round-trip taker fee ``2 * fee_bps``. The strategy decides on what
it has received; whether the stale quote is still there when the order lands is the venue's
question (its taker fill model, :class:`core.engine.execution.TakerFillModel`, with
``latency_ms`` and ``fee_bps`` as its latency and fee in a backtest).
Quotes with bid > ask or a non-positive price are skipped and counted (``rejected_quotes``).

Event: :class:`~core.model.Quote` with ``venue`` ``usdm`` (leader) or ``spot`` (lagger), in
arrival order (``ts_recv``: the capture's one local clock; ``ts_event`` of USD-M rows is exchange
time, about 1.2 s ahead of it). Instance symbol e.g. ``"BTCUSDT:usdm/spot"``.

Vectorized frame: the quotes frame of :func:`core.data.loaders.read_binance_quotes_frame` for one
symbol, sorted by ``ts_recv`` (columns ``ts_event``, ``ts_recv``, ``venue``, ``bid_price``,
``ask_price``). Rows of other venues, rejected rows and warm-up rows give NaN.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from core.indicators import ExponentialMean
from core.model import Quote, Signal
from core.state import decode_float, encode_float
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


class LatencyConfig(StrategyConfig, frozen=True, kw_only=True):
    leader_venue: str = "usdm"
    lagger_venue: str = "spot"
    basis_span: int = 2000  # events
    jump_bps: float = 1.0  # leader mid move, event to event, that can trigger an entry
    entry_bps: float = 2.0  # edge of the leader-implied price over the stale quote
    exit_bps: float = 0.0  # close once the remaining edge is at most this
    fee_bps: float = 0.5  # taker fee per fill on the lagger
    latency_ms: float = 5.0  # assumed reaction latency: signal received -> order at the lagger
    allow_short: bool = True

    def __post_init__(self) -> None:
        require(
            self.leader_venue != self.lagger_venue,
            f"leader_venue must differ from lagger_venue, was {self.leader_venue!r}",
        )
        require(
            2 <= self.basis_span <= 1_000_000,
            f"basis_span must be in [2, 1000000], was {self.basis_span}",
        )
        require(self.jump_bps > 0, f"jump_bps must be > 0, was {self.jump_bps}")
        require(self.fee_bps >= 0, f"fee_bps must be >= 0, was {self.fee_bps}")
        require(
            self.entry_bps > 2 * self.fee_bps,
            f"entry_bps must be > round-trip fee 2 * fee_bps, was {self.entry_bps} <= "
            f"{2 * self.fee_bps}",
        )
        require(
            self.exit_bps < self.entry_bps,
            f"exit_bps must be < entry_bps, was {self.exit_bps} >= {self.entry_bps}",
        )
        require(self.latency_ms >= 0, f"latency_ms must be >= 0, was {self.latency_ms}")


def _next_target(
    position: float,
    jump: float,
    fair: float,
    bid: float,
    ask: float,
    config: LatencyConfig,
) -> float:
    """Exit when the lagger has followed; enter only on a leader jump that left a stale quote.

    ``jump`` is the leader's mid move at this event in bps (0 on lagger events).
    """
    remaining = (fair / bid - 1.0) if position > 0 else (ask / fair - 1.0)
    if position != 0.0 and remaining * 1e4 <= config.exit_bps:
        position = 0.0
    if position == 0.0:
        if jump > config.jump_bps and (fair / ask - 1.0) * 1e4 > config.entry_bps:
            return 1.0
        sell_edge = (bid / fair - 1.0) * 1e4
        if config.allow_short and -jump > config.jump_bps and sell_edge > config.entry_bps:
            return -1.0
    return position


@register
class LeadLagLatency(Strategy[LatencyConfig]):
    """Buy (sell) the lagger's stale ask (bid) right after the leader's mid jumps up (down)."""

    spec = StrategySpec(
        name="latency",
        family=Family.ARBITRAGE,
        tier=Tier.FAST,
        data_kind=DataKind.QUOTES_TRADES,
        summary=(
            "Lead-lag: when the USD-M perpetual's mid jumps beyond a threshold and spot has not "
            "followed, take spot's stale quote; latency and fees decide if it pays."
        ),
        dataset="crypto_l2_binance_hftbacktest",
        execution=Execution.TAKER,
    )
    config_type = LatencyConfig

    def __init__(self, config: LatencyConfig, symbol: str, *, name: str | None = None) -> None:
        super().__init__(config, symbol, name=name)
        self._basis = ExponentialMean(config.basis_span)
        self._leader_mid = math.nan
        self._bid = math.nan
        self._ask = math.nan
        self.rejected_quotes = 0

    @property
    def warmup(self) -> int:
        return self.config.basis_span

    def subscriptions(self) -> tuple[str, ...]:
        return (self.symbol.split(":", 1)[0],)

    def legs(self, signal: Signal) -> dict[str, float]:
        # It trades the lagging venue's stale quote: ``<symbol>:<venue>`` is that instrument.
        base = self.symbol.split(":", 1)[0]
        return {f"{base}:{self.config.lagger_venue}": signal.target_position}

    def update(self, quote: Quote) -> Signal | None:
        if quote.kind != "quote":  # the feed also carries trades; this rule reads only quotes
            return None
        cfg = self.config
        is_leader = quote.venue == cfg.leader_venue
        if not is_leader and quote.venue != cfg.lagger_venue:
            return None
        if not (0.0 < quote.bid_price <= quote.ask_price):
            self.rejected_quotes += 1
            return None
        jump = 0.0
        if is_leader:
            mid = 0.5 * (quote.bid_price + quote.ask_price)
            if not math.isnan(self._leader_mid):
                jump = (mid / self._leader_mid - 1.0) * 1e4
            self._leader_mid = mid
        else:
            self._bid, self._ask = quote.bid_price, quote.ask_price
        if math.isnan(self._leader_mid) or math.isnan(self._bid):
            return None
        basis_before = self._basis.value
        self._basis.update(self._leader_mid / (0.5 * (self._bid + self._ask)) - 1.0)
        if math.isnan(basis_before):
            return None
        fair = self._leader_mid / (1.0 + basis_before)
        target = _next_target(self.target, jump, fair, self._bid, self._ask, cfg)
        reason = {
            "leader_mid": self._leader_mid,
            "leader_jump_bps": jump,
            "fair_price": fair,
            "lagger_bid": self._bid,
            "lagger_ask": self._ask,
            "basis_bps": basis_before * 1e4,
            "buy_edge_bps": (fair / self._ask - 1.0) * 1e4,
            "sell_edge_bps": (self._bid / fair - 1.0) * 1e4,
            "rejected_quotes": float(self.rejected_quotes),
        }
        strength = max(reason["buy_edge_bps"], reason["sell_edge_bps"], 0.0)
        return self._emit(quote.ts_event, target, strength, reason)

    def to_state(self) -> dict[str, Any]:
        return {
            **self._base_state(),
            "basis": self._basis.to_state(),
            "leader_mid": encode_float(self._leader_mid),
            "bid": encode_float(self._bid),
            "ask": encode_float(self._ask),
            "rejected_quotes": self.rejected_quotes,
        }

    def restore(self, state: dict[str, Any]) -> None:
        self._restore_base(state)
        self._basis.restore(state["basis"])
        self._leader_mid = decode_float(state["leader_mid"])
        self._bid = decode_float(state["bid"])
        self._ask = decode_float(state["ask"])
        self.rejected_quotes = int(state["rejected_quotes"])

    @classmethod
    def vectorized(cls, config: LatencyConfig, frame: pd.DataFrame) -> pd.Series:
        venue = frame["venue"].astype("str").to_numpy()
        bid = frame["bid_price"].to_numpy(np.float64)
        ask = frame["ask_price"].to_numpy(np.float64)
        with np.errstate(invalid="ignore"):
            valid = (bid > 0) & (bid <= ask)
        leader = valid & (venue == config.leader_venue)
        lagger = valid & (venue == config.lagger_venue)
        leader_mid = carried(leader, 0.5 * (bid + ask))
        previous = np.concatenate([[np.nan], leader_mid[:-1]])  # latest leader mid before a row
        jump = np.where(leader, (leader_mid / previous - 1.0) * 1e4, 0.0)
        jump = np.nan_to_num(jump, nan=0.0)
        lag_bid, lag_ask = carried(lagger, bid), carried(lagger, ask)
        both = (leader | lagger) & ~np.isnan(leader_mid) & ~np.isnan(lag_bid)
        relative = pd.Series(leader_mid[both] / (0.5 * (lag_bid[both] + lag_ask[both])) - 1.0)
        # The EWMA as it stood before each row: shift by one, warm-up as in ExponentialMean.
        ewma = relative.ewm(span=config.basis_span, adjust=False).mean()
        count = np.arange(1, len(relative) + 1)
        before = ewma.where(count >= config.basis_span).shift(1).to_numpy(np.float64)
        basis = np.full(len(frame), np.nan)
        basis[both] = before
        target = np.full(len(frame), np.nan)
        position = 0.0
        for i in np.flatnonzero(~np.isnan(basis)).tolist():
            fair = leader_mid[i] / (1.0 + basis[i])
            position = _next_target(position, jump[i], fair, lag_bid[i], lag_ask[i], config)
            target[i] = position
        return pd.Series(target, index=frame.index)
