"""What the market makers share: the config base, the book, tick rounding and mid volatility.

Each piece comes twice, once per event for the live core (plain floats, O(1)) and once over a
whole ``quotes_trades`` frame (numpy/pandas arrays) for research. The two are written
separately and must agree to the last tick; the parity suite checks that they do.

Quote prices are rounded away from the mid onto the instrument's tick (bid down, ask up), kept
post-only (a bid never at or above the best ask, an ask never at or below the best bid), and a
side is pulled (``None``) once the inventory reaches its limit on that side.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from core.indicators import ExponentialMean
from core.model import Quote, Signal, Trade
from core.state import StrategyState, decode_float, encode_float
from core.strategies.arrays import carried
from core.strategies.base import Strategy, StrategyConfig, require

# Nudge before floor/ceil so a price that is a whole number of ticks in decimal but a hair off
# in binary (61837.63 * 100 = 6183762.999...) lands on its own tick in both forms.
TICK_EPS = 1e-9
NS_PER_SECOND = 1e9


class QuotingConfig(StrategyConfig, frozen=True, kw_only=True):
    """Instrument and risk fields every market maker has (defaults: Binance spot BTCUSDT)."""

    tick_size: float = 0.01
    lot_size: float = 0.00001
    quote_size: float = 0.001
    max_inventory: float = 0.005

    def __post_init__(self) -> None:
        require(self.tick_size > 0, f"tick_size must be > 0, was {self.tick_size}")
        require(self.lot_size > 0, f"lot_size must be > 0, was {self.lot_size}")
        require(
            self.quote_size >= self.lot_size,
            f"quote_size must be >= lot_size, was {self.quote_size} < {self.lot_size}",
        )
        require(
            self.max_inventory >= self.quote_size,
            f"max_inventory must be >= quote_size, was {self.max_inventory} < {self.quote_size}",
        )


def check_span(name: str, value: int) -> None:
    require(2 <= value <= 1_000_000, f"{name} must be within [2, 1000000], was {value}")


def check_positive(name: str, value: float) -> None:
    require(value > 0 and math.isfinite(value), f"{name} must be > 0, was {value}")


def check_non_negative(name: str, value: float) -> None:
    require(value >= 0 and math.isfinite(value), f"{name} must be >= 0, was {value}")


# ---------------------------------------------------------------------------------------------
# Incremental pieces
# ---------------------------------------------------------------------------------------------


class MidVariance:
    """Variance rate of the mid in price² per second, from the quote stream.

    EWMA of squared mid changes between consecutive quotes divided by the EWMA of the time
    between them (same span, in quotes): realized variance over a recent stretch of the tape
    per second of it, with no division by a near-zero gap between two updates.
    """

    __slots__ = ("_gaps", "_last_mid", "_last_ts", "_moves")

    def __init__(self, span: int) -> None:
        self._moves = ExponentialMean(span)
        self._gaps = ExponentialMean(span)
        self._last_mid = math.nan
        self._last_ts = 0

    @property
    def value(self) -> float:
        moves, gaps = self._moves.value, self._gaps.value
        return moves / gaps if gaps > 0 else math.nan

    def update(self, ts_event: int, mid: float) -> float:
        if not math.isnan(self._last_mid):
            change = mid - self._last_mid
            self._moves.update(change * change)
            self._gaps.update((ts_event - self._last_ts) / NS_PER_SECOND)
        self._last_mid = mid
        self._last_ts = ts_event
        return self.value

    def to_state(self) -> dict[str, Any]:
        return {
            "moves": self._moves.to_state(),
            "gaps": self._gaps.to_state(),
            "last_mid": encode_float(self._last_mid),
            "last_ts": self._last_ts,
        }

    def restore(self, state: dict[str, Any]) -> None:
        self._moves.restore(state["moves"])
        self._gaps.restore(state["gaps"])
        self._last_mid = decode_float(state["last_mid"])
        self._last_ts = int(state["last_ts"])


C = TypeVar("C", bound=QuotingConfig)


class _QuotingState(StrategyState):
    inventory: float
    book: list[float]  # best bid, its size, best ask, its size: NaN before the first quote
    indicators: dict[str, Any]  # the strategy's own (``_indicator_state``)


class QuotingStrategy(Strategy[C]):
    """A market maker on the merged quote/trade stream of one instrument.

    ``update`` takes :class:`Quote` and :class:`Trade` events; the inventory comes from
    :meth:`on_fill`, which the execution layer (or the quote fill model) calls for every fill.
    The target position of a market maker is the inventory it holds: it does not ask the
    portfolio to trade, it works the inventory off through the skew of its quotes.
    """

    def __init__(self, config: C, symbol: str, *, name: str | None = None) -> None:
        super().__init__(config, symbol, name=name)
        self.inventory = 0.0
        self._bid = self._ask = math.nan
        self._bid_size = self._ask_size = math.nan
        self._ticks_per_unit = 1.0 / config.tick_size
        self._init_indicators()

    @abstractmethod
    def _init_indicators(self) -> None: ...

    @abstractmethod
    def _on_quote(self, quote: Quote) -> None: ...

    @abstractmethod
    def _on_trade(self, trade: Trade) -> None: ...

    @abstractmethod
    def _requote(self, ts_event: int) -> Signal | None:
        """Quotes from the current state, via :meth:`_post`, or None while not ready."""

    @abstractmethod
    def _indicator_state(self) -> dict[str, Any]: ...

    @abstractmethod
    def _restore_indicators(self, state: dict[str, Any]) -> None: ...

    @property
    def mid(self) -> float:
        return 0.5 * (self._bid + self._ask)

    def on_fill(self, signed_quantity: float) -> None:
        """Add a fill to the inventory (positive bought, negative sold)."""
        self.inventory += signed_quantity

    def update(self, event: Quote | Trade) -> Signal | None:
        if isinstance(event, Quote):
            self._bid, self._ask = event.bid_price, event.ask_price
            self._bid_size, self._ask_size = event.bid_size, event.ask_size
            self._on_quote(event)
        elif isinstance(event, Trade):
            if math.isnan(self._bid):
                return None  # a print before any quote has no mid to be measured against
            self._on_trade(event)
        else:
            raise TypeError(f"{self.name} takes Quote and Trade events, got {type(event).__name__}")
        return self._requote(event.ts_event)

    def _post(
        self,
        ts_event: int,
        bid_raw: float,
        ask_raw: float,
        size: float,
        reason: dict[str, float],
    ) -> Signal | None:
        """Round raw quotes onto the tick, keep them post-only, apply inventory limits, emit."""
        tpu = self._ticks_per_unit
        bid_ticks = math.floor(bid_raw * tpu + TICK_EPS)
        ask_ticks = max(math.ceil(ask_raw * tpu - TICK_EPS), bid_ticks + 1)
        bid_ticks = min(bid_ticks, round(self._ask * tpu) - 1)
        ask_ticks = max(ask_ticks, round(self._bid * tpu) + 1)
        limit = self.config.max_inventory - 0.5 * self.config.lot_size
        q = self.inventory
        bid = bid_ticks / tpu if q < limit else None
        ask = ask_ticks / tpu if q > -limit else None
        return self._emit(
            ts_event, q, 1.0, {**reason, "inventory": q}, bid_price=bid, ask_price=ask,
            quote_size=size,
        )  # fmt: skip

    def _pull(self, ts_event: int, reason: dict[str, float]) -> Signal | None:
        q = self.inventory
        return self._emit(ts_event, q, 1.0, {**reason, "inventory": q})

    def to_state(self) -> dict[str, Any]:
        saved = _QuotingState(
            inventory=self.inventory,
            book=[self._bid, self._bid_size, self._ask, self._ask_size],
            indicators=self._indicator_state(),
        )
        return {**self._base_state(), **saved.to_dict()}

    def restore(self, state: dict[str, Any]) -> None:
        saved = _QuotingState.from_dict(state)
        if len(saved.book) != 4:
            raise ValueError(f"state book has {len(saved.book)} values, not bid, size, ask, size")
        self._restore_base(state)
        self.inventory = saved.inventory
        self._bid, self._bid_size, self._ask, self._ask_size = saved.book
        self._restore_indicators(saved.indicators)


# ---------------------------------------------------------------------------------------------
# Vectorized pieces
# ---------------------------------------------------------------------------------------------


class FrameBook:
    """A ``quotes_trades`` frame as arrays, with the book as of each row (last quote so far)."""

    def __init__(self, frame: pd.DataFrame) -> None:
        n = len(frame)
        kind = frame["kind"].to_numpy(object)
        self.is_quote = kind == "quote"
        self.is_trade = kind == "trade"
        self.ts = frame["ts_event"].to_numpy(np.int64)
        self.price = frame["price"].to_numpy(np.float64)
        self.size = frame["size"].to_numpy(np.float64)
        self.aggressor_sign = np.select(
            [frame["aggressor"].to_numpy(object) == "buy", frame["aggressor"].to_numpy(object)
             == "sell"], [1.0, -1.0], 0.0,
        )  # fmt: skip
        self.bid = carried(self.is_quote, frame["bid_price"].to_numpy(np.float64))
        self.ask = carried(self.is_quote, frame["ask_price"].to_numpy(np.float64))
        self.bid_size = carried(self.is_quote, frame["bid_size"].to_numpy(np.float64))
        self.ask_size = carried(self.is_quote, frame["ask_size"].to_numpy(np.float64))
        self.mid = 0.5 * (self.bid + self.ask)
        # Prints before the first quote are skipped by the live form too.
        self.measured_trade = self.is_trade & ~np.isnan(self.mid)
        self.n = n

    def trade_ewm(self, values: np.ndarray, span: int) -> np.ndarray:
        """EWMA of ``values`` over measured trade rows, carried to every row (NaN until ready)."""
        rows = self.measured_trade
        smoothed = (
            pd.Series(values[rows]).ewm(span=span, adjust=False, min_periods=span).mean()
        ).to_numpy()
        full = np.full(self.n, np.nan)
        full[rows] = smoothed
        return carried(rows, full)

    def variance_rate(self, span: int) -> np.ndarray:
        """:class:`MidVariance` over the frame: price² per second, carried to every row."""
        rows = np.flatnonzero(self.is_quote)
        mid = self.mid[rows]
        change = np.diff(mid)
        gaps = np.diff(self.ts[rows]) / NS_PER_SECOND
        moves = pd.Series(change * change).ewm(span=span, adjust=False, min_periods=span).mean()
        spans = pd.Series(gaps).ewm(span=span, adjust=False, min_periods=span).mean()
        m, g = moves.to_numpy(), spans.to_numpy()
        with np.errstate(divide="ignore", invalid="ignore"):
            variance = np.where(g > 0, m / g, np.nan)
        full = np.full(self.n, np.nan)
        full[rows[1:]] = variance
        return carried(self.is_quote, full)


def post_quotes(
    config: QuotingConfig,
    book: FrameBook,
    inventory: np.ndarray,
    bid_raw: np.ndarray,
    ask_raw: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Vectorized tick rounding, post-only clamp and inventory limits (NaN = no quote)."""
    tpu = 1.0 / config.tick_size
    with np.errstate(invalid="ignore"):
        bid_ticks = np.floor(bid_raw * tpu + TICK_EPS)
        ask_ticks = np.maximum(np.ceil(ask_raw * tpu - TICK_EPS), bid_ticks + 1)
        bid_ticks = np.minimum(bid_ticks, np.rint(book.ask * tpu) - 1)
        ask_ticks = np.maximum(ask_ticks, np.rint(book.bid * tpu) + 1)
        limit = config.max_inventory - 0.5 * config.lot_size
        bid = np.where(inventory < limit, bid_ticks / tpu, np.nan)
        ask = np.where(inventory > -limit, ask_ticks / tpu, np.nan)
    return bid, ask


def frame_inventory(frame: pd.DataFrame) -> np.ndarray:
    """The optional ``inventory`` column (inventory as of each row), else zero throughout."""
    if "inventory" in frame:
        return frame["inventory"].to_numpy(np.float64)
    return np.zeros(len(frame))


def quotes_output(
    ready: np.ndarray, inventory: np.ndarray, bid: np.ndarray, ask: np.ndarray, index: pd.Index
) -> pd.DataFrame:
    """The vectorized output frame: NaN target before the strategy is ready."""
    return pd.DataFrame(
        {
            "target_position": np.where(ready, inventory, np.nan),
            "bid_price": np.where(ready, bid, np.nan),
            "ask_price": np.where(ready, ask, np.nan),
        },
        index=index,
    )
