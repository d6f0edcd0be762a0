"""A core's share of the symbols: named lists, stable hash partitions, news narrowed."""

from __future__ import annotations

import pytest

from core.data.datasets import get_dataset
from core.errors import ConfigError
from core.model import Bar, MacroPoint, NewsItem
from core.runtime.shard import SymbolShard

TICKERS = get_dataset("equities_daily_stocknet88").symbols()


def _bar(symbol: str) -> Bar:
    return Bar(symbol=symbol, ts_event=1, open=1.0, high=1.0, low=1.0, close=1.0, volume=1.0)


def test_hash_shards_split_the_universe_into_disjoint_parts_that_cover_it():
    shards = [SymbolShard.parse(shard=f"{k}/3") for k in range(3)]

    owners = {symbol: [k for k, s in enumerate(shards) if s.owns(symbol)] for symbol in TICKERS}

    assert all(len(owned) == 1 for owned in owners.values())
    sizes = [sum(owned == [k] for owned in owners.values()) for k in range(3)]
    assert min(sizes) >= len(TICKERS) // 6  # CRC-32 spreads the 88 tickers, none left empty


def test_a_named_list_keeps_its_symbols_and_context_reaches_every_core():
    shard = SymbolShard.parse(symbols="KO, PEP")
    macro = MacroPoint(series="M2SL", ts_event=1, period_start=0, value=1.0)

    assert shard.admit(_bar("KO")) is not None and shard.admit(_bar("AAPL")) is None
    assert shard.admit(macro) is macro
    news = NewsItem(ts_event=1, text="KO and AAPL", symbols=("KO", "AAPL"))
    assert shard.admit(news) == NewsItem(ts_event=1, text="KO and AAPL", symbols=("KO",))
    assert shard.admit(NewsItem(ts_event=1, text="AAPL", symbols=("AAPL",))) is None
    assert SymbolShard().admit(news) is news


@pytest.mark.parametrize(
    ("symbols", "shard", "message"),
    [
        ("", "2/2", "0 <= K < N"),
        ("", "one/two", "must look like K/N"),
        ("KO", "0/2", "either a list of symbols or a hash shard"),
    ],
)
def test_a_bad_shard_is_refused_with_a_one_line_reason(symbols, shard, message):
    with pytest.raises(ConfigError, match=message):
        SymbolShard.parse(symbols, shard)
