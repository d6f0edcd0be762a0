"""The strategy contract: a frozen config, an incremental form, a vectorized form and state.

A strategy instance trades one instrument (or one pair, for pair strategies). The framework
calls :meth:`Strategy.update` once per event; the strategy answers with a :class:`Signal` when
its target position changes, else ``None``. :meth:`Strategy.vectorized` computes the same
target series over a whole frame for research; the two must agree exactly.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Self, TypeVar

import pandas as pd

from core.config import FrozenConfig
from core.config import require as require  # strategy modules import it from here
from core.model import Lineage, Signal

if TYPE_CHECKING:
    from core.strategies.batch import BatchStrategy


class Family(StrEnum):
    TREND_FOLLOWING = "trend_following"
    STATISTICAL_ARBITRAGE = "statistical_arbitrage"
    MARKET_MAKING = "market_making"
    NEWS_DRIVEN = "news_driven"
    HIGH_TIME_FRAME = "high_time_frame"
    ARBITRAGE = "arbitrage"


class Execution(StrEnum):
    """How a venue fills a type's orders: the engine picks its fill model by this.

    NEXT_OPEN: decided at a bar's close, filled at the symbol's next open. TAKER: a market
    order that reaches the venue after the engine's latency and takes the book standing then.
    MAKER: resting quotes filled by the prints that reach them. CARRY: a delta-neutral
    position in units of notional, filled at the decision, that collects or pays funding at
    every settlement. CYCLE: a currency cycle executed at once at its three legs' quotes.
    """

    NEXT_OPEN = "next_open"
    TAKER = "taker"
    MAKER = "maker"
    CARRY = "carry"
    CYCLE = "cycle"


class Tier(StrEnum):
    FAST = "fast"
    TACTICAL = "tactical"
    STRATEGIC = "strategic"


class DataKind(StrEnum):
    BARS = "bars"
    PAIR_BARS = "pair_bars"
    QUOTES_TRADES = "quotes_trades"
    FUNDING = "funding"
    NEWS = "news"
    MACRO = "macro"


# The event kinds (``core.model`` message kinds) each data kind's strategies consume.
EVENT_KINDS: dict[DataKind, frozenset[str]] = {
    DataKind.BARS: frozenset({"bar"}),
    DataKind.PAIR_BARS: frozenset({"bar"}),
    DataKind.QUOTES_TRADES: frozenset({"quote", "trade"}),
    DataKind.FUNDING: frozenset({"funding"}),
    DataKind.NEWS: frozenset({"news", "bar"}),
    DataKind.MACRO: frozenset({"macro", "bar"}),
}


class StrategyConfig(FrozenConfig, frozen=True, kw_only=True):
    """Base of every strategy config: frozen, typed, unknown fields rejected.

    Subclasses check ranges in ``__post_init__`` and raise :class:`ConfigError` naming the value.
    ``aliases`` maps short command-line names to fields (``fast`` -> ``fast_period``).
    """

    aliases: ClassVar[dict[str, str]] = {}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """Build and validate a config, accepting the short names in ``aliases``."""
        return super().from_dict({cls.aliases.get(key, key): value for key, value in data.items()})


@dataclass(frozen=True)
class StrategySpec:
    """What the catalogue knows of a strategy type."""

    name: str
    family: Family
    tier: Tier
    data_kind: DataKind
    summary: str
    dataset: str = ""  # the shipped data set it is tested and demonstrated on
    execution: Execution = Execution.NEXT_OPEN  # how the venue fills its orders


C = TypeVar("C", bound=StrategyConfig)


class Strategy(ABC, Generic[C]):
    """One strategy type bound to one instrument.

    Subclasses set ``spec`` and ``config_type``, create their indicators in ``__init__`` from the
    config, and implement ``update``, ``vectorized`` and state.
    """

    spec: ClassVar[StrategySpec]
    config_type: ClassVar[type[StrategyConfig]]
    # The type's batch form (``core.strategies.batch``), if it has one: many symbols per update.
    batch_type: ClassVar[type[BatchStrategy[Any]] | None] = None

    def __init__(self, config: C, symbol: str, *, name: str | None = None) -> None:
        self.config = config
        self.symbol = symbol
        self.name = name or self.spec.name
        self.lineage = Lineage()
        self.target = 0.0
        self._last_output: tuple[float, float | None, float | None] = (0.0, None, None)
        self._emitted = False

    def subscriptions(self) -> tuple[str, ...]:
        """Event symbols this instance consumes (a pair's two legs, a triangle's three pairs)."""
        return (self.symbol,)

    def legs(self, signal: Signal) -> dict[str, float]:
        """Positions per traded instrument that realise ``signal``'s target."""
        return {self.symbol: signal.target_position}

    @property
    @abstractmethod
    def warmup(self) -> int:
        """Number of events consumed before the first signal can be emitted."""

    @abstractmethod
    def update(self, event: Any) -> Signal | None:
        """Consume one event in O(1); return a signal when the target position changes."""

    def reset(self) -> None:
        """Return to the state of a freshly built strategy (its name and lineage stay).

        A strategy's state is whatever its constructor builds from the config, so building
        again is the one reset that can never forget a field.
        """
        lineage = self.lineage
        self.__init__(self.config, self.symbol, name=self.name)  # type: ignore[misc]
        self.lineage = lineage

    @abstractmethod
    def to_state(self) -> dict[str, Any]:
        """JSON-safe state from which :meth:`restore` resumes exactly.

        NaN has no JSON form: a float that may be NaN is written (and read back) through
        :mod:`core.state`, typically as a :class:`~core.state.StrategyState`.
        """

    @abstractmethod
    def restore(self, state: dict[str, Any]) -> None:
        """Resume from a :meth:`to_state` snapshot, as returned or after a trip through JSON."""

    @classmethod
    @abstractmethod
    def vectorized(cls, config: C, frame: pd.DataFrame) -> pd.Series | pd.DataFrame:
        """The output per row of ``frame`` (NaN during warm-up), for research and parity.

        A Series of target positions, or for quoting strategies a DataFrame with columns
        ``target_position``, ``bid_price``, ``ask_price``. ``frame`` is the standard frame of the
        strategy's data kind (see ``core.strategies.frames``) and has a ``ts_event`` column.
        """

    def _emit(
        self,
        ts_event: int,
        target: float,
        strength: float,
        reason: dict[str, float],
        *,
        bid_price: float | None = None,
        ask_price: float | None = None,
        quote_size: float = 0.0,
    ) -> Signal | None:
        """Signal a new output, or ``None`` when target and quotes are unchanged since the last."""
        output = (target, bid_price, ask_price)
        if self._emitted and output == self._last_output:
            return None
        self.target = target
        self._last_output = output
        self._emitted = True
        return Signal(
            strategy=self.name,
            symbol=self.symbol,
            ts_event=ts_event,
            target_position=target,
            strength=strength,
            reason=reason,
            lineage=self.lineage,
            bid_price=bid_price,
            ask_price=ask_price,
            quote_size=quote_size,
        )

    def _base_state(self) -> dict[str, Any]:
        return {"emitted": self._emitted, "last_output": list(self._last_output)}

    def _restore_base(self, state: dict[str, Any]) -> None:
        self._emitted = bool(state["emitted"])
        target, bid, ask = state["last_output"]
        self._last_output = (float(target), bid, ask)
        self.target = float(target)
