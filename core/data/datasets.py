"""Catalogue of the data sets shipped under the repository's ``data/`` folder.

Each entry says what kind of data a set holds, which files belong to it (relative to
:func:`data_root`) and in which zone its naive time stamps are written. Every set used here is UTC
or date-only; see each folder's PROVENANCE.md for sources and caveats.

Rows that arrive later (``strategy-engine ingest``, after the data gate) are kept apart from the
shipped files, under :func:`ingested_root`: one file per shipped file (per symbol for bar sets,
per series for FRED) holding only the rows added after the shipped ones. :func:`load_bars` and
:func:`load_shipped_file` read the shipped file and then that file, so every retrain sees the
new rows while ``data/`` stays as shipped.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from core.data.loaders import LoadResult, read_bars_frame
from core.errors import DataError

DATA_ENV_VAR = "STRATEGY_ENGINE_DATA"
INGESTED_ENV_VAR = "STRATEGY_ENGINE_INGESTED"
VAR_ENV_VAR = "STRATEGY_ENGINE_VAR_DIR"
KINDS = ("bars", "quotes", "trades", "funding", "news", "text", "macro")


def data_root() -> Path:
    """Return the data folder: ``$STRATEGY_ENGINE_DATA`` if set, else the repository's ``data/``."""
    override = os.environ.get(DATA_ENV_VAR)
    if override:
        return Path(override).expanduser()
    return Path(__file__).resolve().parents[2] / "data"


def ingested_root() -> Path:
    """Return the folder of ingested rows: ``$STRATEGY_ENGINE_INGESTED`` if set, else
    ``ingested/`` in the run-time folder (``$STRATEGY_ENGINE_VAR_DIR``, default ``<repo>/var``).
    """
    override = os.environ.get(INGESTED_ENV_VAR)
    if override:
        return Path(override).expanduser()
    var = os.environ.get(VAR_ENV_VAR) or Path(__file__).resolve().parents[2] / "var"
    return Path(var).expanduser() / "ingested"


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
_FX_MARKETS = ("fxcm", "oanda")
_FX_PAIRS = ("EURUSD", "GBPUSD", "EURGBP")


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
            name="equities_adjclose_skfolio",
            kind="bars",
            description=(
                "Daily adjusted closes: 20 S&P 500 stocks and the S&P 500 index 1990 … 2022, "
                "5 factor ETFs from 2014"
            ),
            paths=("sp500_dataset.csv.gz", "factors_dataset.csv.gz", "sp500_index.csv.gz"),
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
            name="fx_triangle_daily_lean",
            kind="quotes",
            description=(
                "Daily bid/ask closes of EURUSD, GBPUSD, EURGBP at FXCM and Oanda, 2007 … 2018"
            ),
            paths=(
                *(f"{market}/{pair}_daily.csv" for market in _FX_MARKETS for pair in _FX_PAIRS),
                *(f"{market}/triangle_close_aligned.csv" for market in _FX_MARKETS),
            ),
        ),
        Dataset(
            name="us_treasury_yields_zipline",
            kind="macro",
            description="Daily US Treasury yield curve, 1 month … 30 years, 1990 … 2017 (decimals)",
            paths=("treasury_curves.csv",),
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


def ingested_bars_path(dataset: str, symbol: str) -> Path:
    """Return the file of the rows ingested for ``symbol`` of ``dataset`` (it may not exist).

    Raises
    ------
    DataError
        As :func:`bars_path`.
    """
    entry = get_dataset(dataset)
    bars_path(dataset, symbol)  # the same checks: a per-symbol set that lists the symbol
    return ingested_root() / dataset / entry.bars_pattern.format(symbol=symbol)


def ingested_path(dataset: str, path: str) -> Path:
    """Return the file of the rows ingested after the shipped file ``path`` of ``dataset``.

    The ingested file is plain CSV (a shipped ``.gz`` name loses its ``.gz``); it may not exist.

    Raises
    ------
    DataError
        If the set is unknown or does not ship ``path``.
    """
    entry = get_dataset(dataset)
    if path not in entry.paths:
        raise DataError(f"dataset '{dataset}' ships no file '{path}' (has: {', '.join(entry.paths)})")
    return ingested_root() / dataset / path.removesuffix(".gz")


def _with_ingested(
    shipped: LoadResult, extra: Path, read: Callable[[Path], LoadResult]
) -> LoadResult:
    """The shipped rows followed by those of ``extra`` (read by the same loader), if it exists.

    Ingestion only appends rows later than every stored one, so the two files read one after
    the other keep time order; the gates downstream check it anyway.
    """
    if not extra.is_file():
        return shipped
    added = read(extra)
    return LoadResult(
        frame=pd.concat([shipped.frame, added.frame], ignore_index=True),
        rejected=[*shipped.rejected, *added.rejected],
        source=f"{shipped.source}+{extra.name}",
        symbol=shipped.symbol,
    )


def load_shipped_file(
    dataset: str, path: str, read: Callable[[Path], LoadResult]
) -> LoadResult:
    """Load the shipped file ``path`` of ``dataset`` with ``read`` (its own loader), followed by
    the rows ingested after it (:func:`ingested_path`), if any.

    Raises
    ------
    DataError
        As :func:`ingested_path`, or as ``read``.
    """
    extra = ingested_path(dataset, path)
    return _with_ingested(read(get_dataset(dataset).folder / path), extra, read)


def ingested_state(dataset: str) -> tuple[tuple[str, int, int], ...]:
    """The ingested files of ``dataset`` with their change time and size: a key for caches of
    what :func:`load_shipped_file` reads, which changes whenever ingestion writes."""
    folder = ingested_root() / dataset
    if not folder.is_dir():
        return ((str(folder), 0, 0),)
    found = []
    for file in sorted(folder.rglob("*")):
        if file.is_file() and not file.name.startswith("."):
            info = file.stat()
            found.append((str(file), info.st_mtime_ns, info.st_size))
    return (str(folder), 0, 0), *found


def load_symbol_bars(dataset: str, symbol: str) -> LoadResult:
    """Load one symbol's shipped bars followed by the rows ingested after them, if any."""
    entry = get_dataset(dataset)
    shipped = read_bars_frame(bars_path(dataset, symbol), symbol, tz=entry.timezone)
    # Ingested files are written with explicit UTC offsets: the set's zone does not apply.
    return _with_ingested(
        shipped, ingested_bars_path(dataset, symbol), lambda p: read_bars_frame(p, symbol)
    )


def load_bars(dataset: str, symbols: list[str] | None = None) -> dict[str, LoadResult]:
    """Load the bars of ``symbols`` (all of the set's symbols if None), keyed by symbol.

    Each symbol's rows are the shipped ones followed by those ingested later (see
    :func:`load_symbol_bars`).
    """
    entry = get_dataset(dataset)
    chosen = list(entry.tickers) if symbols is None else symbols
    return {s: load_symbol_bars(dataset, s) for s in chosen}
