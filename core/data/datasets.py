"""Catalogue of the data sets shipped under the repository's ``data/`` folder.

Each entry says what kind of data a set holds, which files belong to it (relative to
:func:`data_root`) and in which zone its naive time stamps are written. Every set used here is UTC
or date-only; see each folder's PROVENANCE.md for sources and caveats.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from core.data.loaders import LoadResult, read_bars_frame
from core.errors import DataError

DATA_ENV_VAR = "STRATEGY_ENGINE_DATA"
KINDS = ("bars", "quotes", "trades", "funding", "news", "text", "macro")


def data_root() -> Path:
    """Return the data folder: ``$STRATEGY_ENGINE_DATA`` if set, else the repository's ``data/``."""
    override = os.environ.get(DATA_ENV_VAR)
    if override:
        return Path(override).expanduser()
    return Path(__file__).resolve().parents[2] / "data"


@dataclass(frozen=True)
class Dataset:
    """One shipped data set.

    ``paths`` are relative to :func:`data_root`; for per-symbol bar sets, ``bars_pattern``
    (with ``{symbol}``) locates one symbol's file and ``tickers`` lists the symbols.
    """

    name: str
    kind: str
    paths: tuple[str, ...]
    description: str = ""
    tickers: tuple[str, ...] = ()
    bars_pattern: str = ""
    timezone: str = "UTC"

    @property
    def folder(self) -> Path:
        return data_root() / self.name

    def files(self) -> list[Path]:
        """Return the absolute paths of the set's files."""
        return [self.folder / p for p in self.paths]

    def symbols(self) -> tuple[str, ...]:
        """Return the symbols of a per-symbol set (empty for other sets)."""
        return self.tickers


# fmt: off
_STOCKNET88 = (
    "AAPL", "ABB", "ABBV", "AEP", "AGFS", "AMGN", "AMZN", "BA", "BABA", "BAC", "BBL", "BCH",
    "BHP", "BP", "BRK-A", "BSAC", "BUD", "C", "CAT", "CELG", "CHL", "CHTR", "CMCSA", "CODI",
    "CSCO", "CVX", "D", "DHR", "DIS", "DUK", "EXC", "FB", "GD", "GE", "GMRE", "GOOG", "HD", "HON",
    "HRG", "HSBC", "IEP", "INTC", "JNJ", "JPM", "KO", "LMT", "MA", "MCD", "MDT", "MMM", "MO",
    "MRK", "MSFT", "NEE", "NGG", "NVS", "ORCL", "PCG", "PCLN", "PEP", "PFE", "PG", "PICO", "PM",
    "PPL", "PTR", "RDS-B", "REX", "SLB", "SNP", "SNY", "SO", "SPLP", "SRE", "T", "TM", "TOT",
    "TSM", "UL", "UN", "UNH", "UPS", "UTX", "V", "VZ", "WFC", "WMT", "XOM",
)
# fmt: on
_ETF9 = ("DBC", "DIA", "GDX", "GLD", "IEF", "SPY", "VEU", "VNQ", "VTI")


def _per_symbol_bars(
    name: str, description: str, tickers: tuple[str, ...], pattern: str
) -> Dataset:
    """A bar set of one file per symbol, named by ``pattern`` (its files follow from it)."""
    return Dataset(
        name=name,
        kind="bars",
        description=description,
        tickers=tickers,
        bars_pattern=pattern,
        paths=tuple(pattern.format(symbol=t) for t in tickers),
    )


DATASETS: dict[str, Dataset] = {
    d.name: d
    for d in (
        _per_symbol_bars(
            "equities_daily_stocknet88",
            "Daily OHLCV, 88 US stocks, 2012-09-04 … 2017-09-01 (Yahoo, split-adj.)",
            _STOCKNET88,
            "prices/{symbol}.csv",
        ),
        _per_symbol_bars(
            "etf_daily_pyalgotrade",
            "Daily OHLCV, 9 US ETFs incl. GLD/GDX, 2006 … 2013 (unadjusted OHLC)",
            _ETF9,
            "{symbol}.csv",
        ),
        Dataset(
            name="intraday_spy_1min_pyalgotrade",
            kind="bars",
            description="SPY 1-minute bars, Jan and Mar 2011, bar-end stamps in UTC",
            paths=("nt-spy-minute-2011.csv", "nt-spy-minute-2011-03.csv"),
        ),
        Dataset(
            name="crypto_l2_binance_hftbacktest",
            kind="quotes",
            description="Binance BTC/ETH spot and BTC USD-M best bid/ask and trades, 2024-08-08/09",
            paths=("derived/bbo.csv.gz", "derived/trades.csv.gz"),
        ),
        Dataset(
            name="funding_rates_btc_eth_supervik",
            kind="funding",
            description="BTC/ETH perpetual funding rates on 7 venues, 2020 … 2023, UTC",
            paths=("derived/funding_rates_utc.csv.gz",),
        ),
        Dataset(
            name="tweets_timestamped_stocknet",
            kind="news",
            description="Timestamped tweets for KO, PEP, XOM, CVX, JPM, BAC, 2014 … 2015",
            tickers=("KO", "PEP", "XOM", "CVX", "JPM", "BAC"),
            paths=("tweets_KO_PEP_XOM_CVX_JPM_BAC.csv.gz",),
        ),
        Dataset(
            name="sentiment_twitter_financial_news",
            kind="text",
            description="Finance-news tweets labelled 0 bearish, 1 bullish, 2 neutral (no stamps)",
            paths=("sent_train.csv", "sent_valid.csv"),
        ),
        Dataset(
            name="macro_fred_monetary",
            kind="macro",
            description="FRED monthly Fed funds, M1, M2, monetary base, EURUSD",
            paths=("FEDFUNDS.csv", "M2SL.csv", "M1SL.csv", "BOGMBASE.csv", "EXUSEU.csv"),
        ),
    )
}


def get_dataset(name: str) -> Dataset:
    """Return the catalogue entry ``name``, raising DataError that lists the known names."""
    try:
        return DATASETS[name]
    except KeyError:
        known = ", ".join(sorted(DATASETS))
        raise DataError(f"unknown dataset '{name}' (known: {known})") from None


def bars_path(dataset: str, symbol: str) -> Path:
    """Return the bars file of ``symbol`` in the per-symbol bar set ``dataset``.

    Raises
    ------
    DataError
        If the set is unknown, has no per-symbol files, or does not list ``symbol``.
    """
    entry = get_dataset(dataset)
    if not entry.bars_pattern:
        raise DataError(f"dataset '{dataset}' has no per-symbol bar files (kind {entry.kind})")
    if symbol not in entry.tickers:
        raise DataError(
            f"dataset '{dataset}' has no symbol '{symbol}' ({len(entry.tickers)} symbols, "
            f"e.g. {', '.join(entry.tickers[:5])})"
        )
    return entry.folder / entry.bars_pattern.format(symbol=symbol)


def load_bars(dataset: str, symbols: list[str] | None = None) -> dict[str, LoadResult]:
    """Load the bars of ``symbols`` (all of the set's symbols if None), keyed by symbol."""
    entry = get_dataset(dataset)
    chosen = list(entry.tickers) if symbols is None else symbols
    return {s: read_bars_frame(bars_path(dataset, s), s, tz=entry.timezone) for s in chosen}
