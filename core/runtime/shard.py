"""Which symbols a core takes from shared feeds, so that several cores can split a universe.

Every core reads every feed entry through its own consumer group and keeps the events of its
own symbols: a named list (an operator keeps a pair's legs together that way), or one of N
partitions by a stable hash (CRC-32, the same in every process, unlike Python's ``hash``).
Symbol-less context (macro series) goes to every core; a news item goes to a core with the
symbols of it that the core owns.
"""

from __future__ import annotations

import zlib
from typing import Any

import msgspec

from core.config import FrozenConfig, require
from core.errors import ConfigError
from core.model import NewsItem


class SymbolShard(FrozenConfig, frozen=True, kw_only=True):
    """A core's share of the symbols: ``symbols`` if given, else partition ``index`` of
    ``count`` (the default, 0 of 1, is every symbol)."""

    symbols: frozenset[str] = frozenset()
    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        require(
            0 <= self.index < self.count,
            f"shard must be K/N with 0 <= K < N, was {self.index}/{self.count}",
        )
        require(
            not (self.symbols and self.count != 1),
            "a core takes either a list of symbols or a hash shard, not both",
        )

    @classmethod
    def parse(cls, symbols: str = "", shard: str = "") -> SymbolShard:
        """From the command line: ``symbols`` "A,B,C" and/or ``shard`` "K/N"."""
        named = frozenset(s.strip() for s in symbols.split(",") if s.strip())
        if not shard:
            return cls(symbols=named)
        index, slash, count = shard.partition("/")
        if not (slash and index.strip().isdigit() and count.strip().isdigit()):
            raise ConfigError(f"shard must look like K/N (e.g. 0/2), was {shard!r}")
        return cls(symbols=named, index=int(index), count=int(count))

    @property
    def everything(self) -> bool:
        return not self.symbols and self.count == 1

    def owns(self, symbol: str) -> bool:
        if self.symbols:
            return symbol in self.symbols
        return self.count == 1 or zlib.crc32(symbol.encode()) % self.count == self.index

    def admit(self, event: Any) -> Any | None:
        """The event as this core should see it, or None when it belongs to other cores."""
        if self.everything:
            return event
        if isinstance(event, NewsItem):
            mine = [s for s in event.symbols if self.owns(s)]
            if len(mine) == len(event.symbols):
                return event
            return msgspec.structs.replace(event, symbols=tuple(mine)) if mine else None
        symbol = getattr(event, "symbol", None)
        return event if symbol is None or self.owns(symbol) else None

    def describe(self) -> str:
        if self.symbols:
            return ",".join(sorted(self.symbols))
        return "all" if self.count == 1 else f"{self.index}/{self.count}"
