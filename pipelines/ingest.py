"""Ingest a drop folder: new data files pass the data gate before any retrain can read them.

The inbox (default ``<var>/inbox``, or ``$STRATEGY_ENGINE_INBOX``) has one folder per data set::

    inbox/<dataset>/<name>.csv                a new file, CSV or Parquet (names per set below)
    inbox/<dataset>/done/<stamp>-<name>       accepted, beside <stamp>-<name>.report.json
    inbox/<dataset>/rejected/<stamp>-<name>   refused, beside a report naming the failed rules

The data sets taken (:data:`KINDS`), each with its file naming and its Great Expectations suite:

* per-symbol bar sets (``equities_daily_stocknet88``, ``etf_daily_pyalgotrade``):
  ``<SYMBOL>.csv`` or ``<SYMBOL>.<anything>.csv`` (the symbol is the name up to its first dot),
  one symbol's OHLCV bars; suite ``bars``;
* ``funding_rates_btc_eth_supervik``: any name, rows ``exchange,symbol,funding_time_utc,
  funding_rate``; suite ``funding``;
* ``tweets_timestamped_stocknet``: any name, rows ``ticker,file_date,created_at_utc,text``;
  suite ``text``;
* ``macro_fred_monetary``: ``<SERIES>.csv`` (or ``<SERIES>.<anything>.csv``) for a shipped
  series (``FEDFUNDS``, ``M2SL``, ...), columns ``Date,<SERIES>``; suite ``macro``.
* ``fx_triangle_daily_lean``: ``<market>_<PAIR>.csv`` (or ``<market>_<PAIR>.<anything>.csv``),
  one broker's (``fxcm``, ``oanda``) daily closes of one pair of the triangle, LEAN's columns
  ``date,...,bid_close,bid_size,...,ask_close,ask_size`` with dates in the market's zone;
  suite ``quotes``, so no new close is crossed (the shipped crossed FXCM closes are documented,
  not repeated). A drop extends ``<market>/<PAIR>_daily.csv``, which the triangle's stream reads;
  the aligned file beside it is derived from the per-pair files and is not extended.
* ``equities_adjclose_skfolio``: any name, the S&P 500 index's closes, columns ``Date,SP500``,
  read as close-only bars; suite ``bars``. A drop extends ``sp500_index.csv.gz`` (the set's
  stock and factor price files are not ingested).
* ``crypto_l2_binance_hftbacktest``: ``bbo.csv`` or ``trades.csv`` (or ``bbo.<anything>.csv``,
  ...), rows of the capture's best bid/ask (suite ``quotes``) or trades (suite ``trades``) in the
  shipped files' columns; they extend ``derived/bbo.csv.gz`` or ``derived/trades.csv.gz``, later
  per symbol and market, which the market makers' and the latency arbitrage's streams and the
  Binance feed read.
* ``us_treasury_yields_zipline``: any name, the curve's columns ``Time Period,1month,...,30year``
  (decimal yields, a blank tenor is a tenor not published that day); suite ``macro`` on the
  points the macro streams read (one per tenor and day, in percent).

A file for any other set is rejected. A producer writes under a name that starts with ``.`` or
ends in ``.part`` or ``.tmp`` and renames the file when it is complete; such names are left
alone until then.

Each file is copied (at most ``max_file_bytes``, never through a symbolic link) into a private
folder, parsed by the data set's own loader, and gated by its kind's suite plus rules of its
own: the loader rejected no row, one row per key (all but bars, whose suite checks it), and
every row is later than the stored ones (per venue and symbol for funding rates) or equal to a
stored row (so a re-ingested file changes nothing, and history is never rewritten). Only then
are the new rows appended to the ingested file of the shipped file (or symbol, series or pair)
they extend, under
:func:`core.data.datasets.ingested_root`, which the data set's loads
(:func:`core.data.datasets.load_bars`, :func:`core.data.datasets.load_shipped_file`) read after
the shipped file; the write is a temporary file renamed over the old one, so a reader sees the
old rows or the new ones, never a half-written file.

This is an ingestion boundary: nothing a file holds makes it raise. Every file ends as an
accepted or a rejected outcome, logged (events ``ingest_accepted``, ``ingest_rejected``) and,
when rejected, counted as a ``gate_failed`` learning event of ``ingest.<dataset>``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import stat
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from prefect import flow

from core.data.datasets import (
    DATASETS,
    Dataset,
    get_dataset,
    ingested_bars_path,
    ingested_path,
    ingested_root,
    load_shipped_file,
    load_symbol_bars,
)
from core.data.fx import MARKET_TIMEZONES, TRIANGLE_DATASET, TRIANGLE_PAIRS, read_fx_pair_file
from core.data.loaders import (
    BAR_COLUMNS,
    LoadResult,
    read_bars_frame,
    read_binance_quotes_frame,
    read_binance_trades_frame,
    read_funding_frame,
    read_tweets_frame,
)
from core.data.macro import (
    FRED_DATASET,
    SKFOLIO_DATASET,
    SP500_INDEX_COLUMN,
    SP500_INDEX_FILE,
    TREASURY_DATASET,
    read_fred_series,
    read_index_bars_file,
    read_treasury_points,
    treasury_curve_rows,
)
from core.data.news import TWEETS_DATASET
from core.errors import ConfigError, DataError
from pipelines.learning_counts import count_learning_event
from pipelines.validation import ExpectationResult, count_rejected_rows, validate

INBOX_ENV = "STRATEGY_ENGINE_INBOX"
MAX_FILE_BYTES = 64 * 1024 * 1024
"""The largest file taken (for Parquet, also its uncompressed size); a larger one is refused."""
SUFFIXES = (".csv", ".parquet")
PENDING_SUFFIXES = (".part", ".tmp")
DONE, REJECTED = "done", "rejected"
REPORT_SUFFIX = ".report.json"
STORE_RULE = "rows later than the stored ones, or equal to stored rows"
LOCK_FILE = ".ingest.lock"
# Two float spellings of one price (the shipped text and its re-written form) may differ in
# the last bit: equal within this relative tolerance is the same stored value.
SAME_VALUE_RTOL = 1e-12
MAX_EXAMPLES = 5

log = logging.getLogger(__name__)


def default_inbox() -> Path:
    """Return ``$STRATEGY_ENGINE_INBOX`` if set, else ``inbox/`` in the run-time folder."""
    override = os.environ.get(INBOX_ENV)
    if override:
        return Path(override).expanduser()
    var = os.environ.get("STRATEGY_ENGINE_VAR_DIR") or Path(__file__).resolve().parents[1] / "var"
    return Path(var).expanduser() / "inbox"


@dataclass
class FileOutcome:
    """What became of one dropped file."""

    file: str
    dataset: str
    accepted: bool
    reason: str
    symbol: str = ""
    rows: int = 0
    new_rows: int = 0
    already_stored: int = 0
    moved_to: str = ""
    report_file: str = ""
    stored_in: str = ""
    failed_expectations: list[str] = field(default_factory=list)
    gate: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "dataset": self.dataset,
            "symbol": self.symbol,
            "accepted": self.accepted,
            "reason": self.reason,
            "rows": self.rows,
            "new_rows": self.new_rows,
            "already_stored": self.already_stored,
            "stored_in": self.stored_in,
            "moved_to": self.moved_to,
            "report_file": self.report_file,
            "failed_expectations": list(self.failed_expectations),
            "gate": self.gate,
        }


class Refused(Exception):
    """A file is refused before its rows are gated (its type, size, name or bytes)."""


def ingest_inbox(
    inbox: str | Path | None = None,
    datasets: Sequence[str] | None = None,
    *,
    max_file_bytes: int = MAX_FILE_BYTES,
) -> dict[str, Any]:
    """Ingest every new file of the inbox's data set folders (or only of ``datasets``).

    Parameters
    ----------
    inbox
        The drop folder (default :func:`default_inbox`); created if missing.
    datasets
        Data set folders to look at; all of the inbox's folders if None.
    max_file_bytes
        The largest file taken; a larger one is rejected unread.

    Returns
    -------
    dict
        ``inbox``, ``store`` (where accepted rows go), ``files`` (one outcome per file:
        ``accepted``, ``reason``, ``new_rows``, ``moved_to``, ``report_file``,
        ``failed_expectations``, ...), and the counts ``accepted``, ``rejected``, ``new_rows``.

    Raises
    ------
    ConfigError
        If ``max_file_bytes`` is not a positive integer, a named data set is unknown, or the
        inbox is not a folder.
    """
    if isinstance(max_file_bytes, bool) or not isinstance(max_file_bytes, int):
        raise ConfigError(f"max_file_bytes must be a positive integer, was {max_file_bytes!r}")
    if max_file_bytes <= 0:
        raise ConfigError(f"max_file_bytes must be a positive integer, was {max_file_bytes!r}")
    root = Path(inbox).expanduser() if inbox else default_inbox()
    for name in datasets or ():
        try:
            get_dataset(name)
        except DataError as exc:
            raise ConfigError(str(exc)) from None
    root.mkdir(parents=True, exist_ok=True)
    if root.is_symlink() or not root.is_dir():
        raise ConfigError(f"the inbox {root} must be a folder, not a link or a file")
    for name in datasets or ():
        (root / name).mkdir(exist_ok=True)
    store = ingested_root()
    outcomes: list[FileOutcome] = []
    with _store_lock(store):
        for folder in _dataset_folders(root, datasets):
            outcomes.extend(_ingest_folder(folder, max_file_bytes))
    accepted = [o for o in outcomes if o.accepted]
    return {
        "inbox": str(root),
        "store": str(store),
        "files": [o.to_dict() for o in outcomes],
        "accepted": len(accepted),
        "rejected": len(outcomes) - len(accepted),
        "new_rows": sum(o.new_rows for o in accepted),
    }


@flow(name="ingest-drop-folder", log_prints=False)
def ingest_drop_folder(
    inbox: str | None = None,
    datasets: list[str] | None = None,
    max_file_bytes: int = MAX_FILE_BYTES,
) -> dict[str, Any]:
    """Ingest the drop folder once (see :func:`ingest_inbox`); rejected files are outcomes,
    not failures, so the run completes and reports them."""
    return ingest_inbox(inbox, datasets, max_file_bytes=max_file_bytes)


# --- the folders -------------------------------------------------------------------------------


@contextlib.contextmanager
def _store_lock(store: Path) -> Iterator[None]:
    """One ingestion at a time (a scheduled run and one by hand would race on the files)."""
    store.mkdir(parents=True, exist_ok=True)
    with (store / LOCK_FILE).open("a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _dataset_folders(root: Path, datasets: Sequence[str] | None) -> list[Path]:
    names = sorted(datasets) if datasets else sorted(p.name for p in root.iterdir())
    folders = []
    for name in names:
        folder = root / name
        if name.startswith(".") or not folder.is_dir():
            continue
        if folder.is_symlink():
            log.warning(
                f"ingest: {folder} is a symbolic link; its files are not read",
                extra={"event": "ingest_folder_skipped", "folder": str(folder)},
            )
            continue
        folders.append(folder)
    return folders


def _ingest_folder(folder: Path, max_file_bytes: int) -> list[FileOutcome]:
    try:
        entry: Dataset | None = get_dataset(folder.name)
    except DataError:
        entry = None
    outcomes = []
    for path in sorted(folder.iterdir()):
        name = path.name
        if name in (DONE, REJECTED) and path.is_dir() and not path.is_symlink():
            continue
        if name.startswith(".") or name.endswith(PENDING_SUFFIXES):
            continue  # still being written, by the producer's convention
        outcome = _ingest_one(path, _shown(folder.name), entry, max_file_bytes)
        _settle(path, outcome)
        outcomes.append(outcome)
    return outcomes


# --- the data kinds ingested --------------------------------------------------------------------


@dataclass(frozen=True)
class IngestKind:
    """How the files of one data set are ingested: which stored file a dropped file adds to,
    the loader that parses both, the Great Expectations suite that gates its rows, and what
    identifies a row for the store rule.

    ``unit`` maps a dropped file's name to the symbol or series it holds (``""`` when the set
    has one file) and the shipped file it adds to; ``read`` is the set's own loader; ``write``
    turns loaded rows back into that loader's file format. A row is identified by ``key``
    (its time first); ``values`` are compared within :data:`SAME_VALUE_RTOL`; "later than the
    stored rows" is per ``group`` (per venue and symbol for funding rates).
    """

    gate: str
    unit: Callable[[str, Dataset], tuple[str, str]]
    read: Callable[[Path, Dataset, str], LoadResult]
    write: Callable[[pd.DataFrame], pd.DataFrame]
    key: tuple[str, ...] = ("ts_event",)
    values: tuple[str, ...] = ()
    group: tuple[str, ...] = ()

    def stored(self, entry: Dataset, unit: str, shipped: str) -> LoadResult:
        """The unit's stored rows: the shipped file and then the ingested one."""
        if entry.bars_pattern:
            return load_symbol_bars(entry.name, unit)
        return load_shipped_file(entry.name, shipped, lambda p: self.read(p, entry, unit))

    def target(self, entry: Dataset, unit: str, shipped: str) -> Path:
        if entry.bars_pattern:
            return ingested_bars_path(entry.name, unit)
        return ingested_path(entry.name, shipped)


def _symbol_unit(name: str, entry: Dataset) -> tuple[str, str]:
    symbol = name.split(".", 1)[0]
    if symbol not in entry.tickers:
        raise Refused(
            f"'{_shown(name)}' names symbol '{_shown(symbol)}', which data set '{entry.name}' "
            "does not list "
            f"(e.g. {', '.join(entry.tickers[:5])})"
        )
    return symbol, entry.bars_pattern.format(symbol=symbol)


def _series_unit(name: str, entry: Dataset) -> tuple[str, str]:
    series = name.split(".", 1)[0]
    shipped = f"{series}.csv"
    if shipped not in entry.paths:
        known = ", ".join(p.removesuffix(".csv") for p in entry.paths)
        raise Refused(
            f"'{_shown(name)}' names series '{_shown(series)}', which data set '{entry.name}' "
            f"does not ship (has: {known})"
        )
    return series, shipped


def _fx_pair_unit(name: str, entry: Dataset) -> tuple[str, str]:
    """``<market>_<PAIR>.csv`` (``fxcm_EURUSD.csv``) adds to ``<market>/<PAIR>_daily.csv``.

    The per-pair files are what the triangle's stream reads; the aligned file beside them is
    derived from them and is not extended.
    """
    unit = name.split(".", 1)[0]
    market, _, pair = unit.partition("_")
    if market not in MARKET_TIMEZONES or pair not in TRIANGLE_PAIRS:
        raise Refused(
            f"'{_shown(name)}' names no market and pair of data set '{entry.name}' (expected "
            f"<market>_<PAIR>.csv, market {' or '.join(MARKET_TIMEZONES)}, "
            f"pair {', '.join(TRIANGLE_PAIRS)})"
        )
    return unit, f"{market}/{pair}_daily.csv"


def _fx_pair_read(path: Path, _entry: Dataset, unit: str) -> LoadResult:
    market, _, pair = unit.partition("_")
    return read_fx_pair_file(path, market, pair)


def _sp500_index_unit(name: str, entry: Dataset) -> tuple[str, str]:
    """Any name adds to the index file: the set's other files are not ingested."""
    return "", SP500_INDEX_FILE


def _single_file_unit(name: str, entry: Dataset) -> tuple[str, str]:
    (shipped,) = entry.paths
    return "", shipped


def _bars_out(rows: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame({"datetime": [_iso(int(t)) for t in rows["ts_event"].tolist()]})
    for column in BAR_COLUMNS[1:]:
        out[column] = rows[column].to_numpy(np.float64)
    return out


def _funding_out(rows: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "exchange": rows["venue"].to_numpy(object),
            "symbol": rows["symbol"].to_numpy(object),
            "funding_time_utc": [_iso(int(t)) for t in rows["ts_event"].tolist()],
            "funding_rate": rows["rate"].to_numpy(np.float64),
        }
    )


def _tweets_out(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per (ticker, tweet), as the shipped file: the loader groups them again."""
    flat = rows.explode("symbols", ignore_index=True)
    stamps = [pd.Timestamp(int(t), tz="UTC") for t in flat["ts_event"].tolist()]
    return pd.DataFrame(
        {
            "ticker": flat["symbols"].to_numpy(object),
            "file_date": [t.date().isoformat() for t in stamps],
            "created_at_utc": [t.isoformat() for t in stamps],
            "text": flat["text"].to_numpy(object),
        }
    )


def _fred_out(rows: pd.DataFrame) -> pd.DataFrame:
    series = str(rows["series"].iloc[0]) if len(rows) else "value"
    dates = [pd.Timestamp(int(t)).date().isoformat() for t in rows["period_start"].tolist()]
    return pd.DataFrame({"Date": dates, series: rows["value"].to_numpy(np.float64)})


def _fx_out(rows: pd.DataFrame) -> pd.DataFrame:
    """The loader's columns, the stamps written in the market's zone as the shipped file's."""
    market = str(rows["venue"].iloc[0]) if len(rows) else "oanda"
    stamps = pd.DatetimeIndex(rows["ts_event"].to_numpy(np.int64).astype("datetime64[ns]"))
    local = stamps.tz_localize("UTC").tz_convert(MARKET_TIMEZONES[market])
    out = pd.DataFrame({"date": local.strftime("%Y-%m-%d %H:%M:%S")})
    for column in ("bid_close", "bid_size", "ask_close", "ask_size"):
        out[column] = rows[column.replace("_close", "_price")].to_numpy(np.float64)
    return out


def _index_out(rows: pd.DataFrame) -> pd.DataFrame:
    dates = [_iso(int(t)) for t in rows["ts_event"].tolist()]
    return pd.DataFrame({"Date": dates, SP500_INDEX_COLUMN: rows["close"].to_numpy(np.float64)})


def _binance_stamps(rows: pd.DataFrame) -> dict[str, list[str]]:
    """The capture's stamp columns: ``exch_ts_ms`` only where the exchange stamped the row (the
    loader takes the local receive time as ``ts_event`` where it is blank)."""
    event = rows["ts_event"].to_numpy(np.int64).tolist()
    recv = rows["ts_recv"].to_numpy(np.int64).tolist()
    pairs = zip(event, recv, strict=True)
    return {
        "local_ts_ns": [str(t) for t in recv],
        "exch_ts_ms": [str(e // 1_000_000) if e != r else "" for e, r in pairs],
    }


def _bbo_out(rows: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "market": rows["venue"].to_numpy(object),
            "symbol": rows["symbol"].to_numpy(object),
            **_binance_stamps(rows),
            "bid_px": rows["bid_price"].to_numpy(np.float64),
            "bid_qty": rows["bid_size"].to_numpy(np.float64),
            "ask_px": rows["ask_price"].to_numpy(np.float64),
            "ask_qty": rows["ask_size"].to_numpy(np.float64),
        }
    )


def _trades_out(rows: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "market": rows["venue"].to_numpy(object),
            "symbol": rows["symbol"].to_numpy(object),
            **_binance_stamps(rows),
            "trade_id": rows["trade_id"].to_numpy(object),
            "price": rows["price"].to_numpy(np.float64),
            "qty": rows["size"].to_numpy(np.float64),
            # The buyer was the maker exactly when the seller crossed the spread.
            "buyer_is_maker": (rows["aggressor"] == "sell").to_numpy(bool),
        }
    )


def _derived_file(stem: str) -> Callable[[str, Dataset], tuple[str, str]]:
    return lambda _name, _entry: ("", f"derived/{stem}.csv.gz")


_BARS = IngestKind(
    gate="bars",
    unit=_symbol_unit,
    read=lambda path, entry, symbol: read_bars_frame(path, symbol, tz=entry.timezone),
    write=_bars_out,
    values=BAR_COLUMNS[1:],
)
KINDS: dict[str, IngestKind] = {
    **{name: _BARS for name, entry in DATASETS.items() if entry.bars_pattern},
    "funding_rates_btc_eth_supervik": IngestKind(
        gate="funding",
        unit=_single_file_unit,
        read=lambda path, _entry, _unit: read_funding_frame(path),
        write=_funding_out,
        key=("ts_event", "symbol", "venue"),
        values=("rate",),
        group=("symbol", "venue"),
    ),
    TWEETS_DATASET: IngestKind(
        gate="text",
        unit=_single_file_unit,
        read=lambda path, _entry, _unit: read_tweets_frame(path),
        write=_tweets_out,
        key=("ts_event", "text", "symbols"),
    ),
    TRIANGLE_DATASET: IngestKind(
        gate="quotes",
        unit=_fx_pair_unit,
        read=_fx_pair_read,
        write=_fx_out,
        values=("bid_price", "ask_price", "bid_size", "ask_size"),
    ),
    FRED_DATASET: IngestKind(
        gate="macro",
        unit=_series_unit,
        read=lambda path, _entry, series: read_fred_series(path, series),
        write=_fred_out,
        key=("ts_event", "period_start"),
        values=("value",),
    ),
    SKFOLIO_DATASET: IngestKind(
        gate="bars",
        unit=_sp500_index_unit,
        read=lambda path, _entry, _unit: read_index_bars_file(path),
        write=_index_out,
        values=("close",),
    ),
    TREASURY_DATASET: IngestKind(
        gate="macro",
        unit=_single_file_unit,
        # Gated and stored as the points the macro streams read: one per tenor and day.
        read=lambda path, _entry, _unit: read_treasury_points(path),
        write=treasury_curve_rows,
        key=("ts_event", "series"),
        values=("value",),
    ),
}
"""The data sets ingested, by name; a file for any other set is rejected."""
BINANCE_L2_DATASET = "crypto_l2_binance_hftbacktest"
FILE_KINDS: dict[str, dict[str, IngestKind]] = {
    BINANCE_L2_DATASET: {
        "bbo": IngestKind(
            gate="quotes",
            unit=_derived_file("bbo"),
            read=lambda path, _entry, _unit: read_binance_quotes_frame(path),
            write=_bbo_out,
            key=("ts_event", "ts_recv", "symbol", "venue"),
            values=("bid_price", "bid_size", "ask_price", "ask_size"),
            group=("symbol", "venue"),
        ),
        "trades": IngestKind(
            gate="trades",
            unit=_derived_file("trades"),
            read=lambda path, _entry, _unit: read_binance_trades_frame(path),
            write=_trades_out,
            key=("ts_event", "trade_id", "symbol", "venue"),
            values=("price", "size"),
            group=("symbol", "venue"),
        ),
    },
}
"""The data sets whose files are of different kinds: the kind of each file, by the name its
dropped file starts with (``bbo.csv``, ``trades.<anything>.csv``)."""


def _kind_of(entry: Dataset, name: str) -> IngestKind | None:
    by_file = FILE_KINDS.get(entry.name)
    if by_file is None:
        return KINDS.get(entry.name)
    kind = by_file.get(name.split(".", 1)[0])
    if kind is None:
        raise Refused(
            f"'{_shown(name)}' names no file of data set '{entry.name}' (expected "
            f"{' or '.join(f'{stem}.csv' for stem in by_file)}, or <name>.<anything>.csv)"
        )
    return kind


# --- one file ----------------------------------------------------------------------------------


def _ingest_one(
    path: Path, dataset: str, entry: Dataset | None, max_file_bytes: int
) -> FileOutcome:
    """Decide one file; nothing it holds raises past here."""
    outcome = FileOutcome(file=_shown(path.name), dataset=dataset, accepted=False, reason="")
    kind: IngestKind | None = None
    try:
        if entry is None:
            raise Refused(f"unknown data set '{dataset}' (the inbox's folders are data set names)")
        kind = _kind_of(entry, path.name)
        if kind is None:
            raise Refused(
                f"'{dataset}' holds {entry.kind} data, which ingest does not take "
                f"(it takes {', '.join(sorted([*KINDS, *FILE_KINDS]))})"
            )
        suffix = _suffix_of(path.name)
        unit, shipped = kind.unit(path.name, entry)
        outcome.symbol = unit
        with tempfile.TemporaryDirectory(prefix="se-ingest-") as work:
            # Named by what it holds alone: the loader's messages never carry the raw name.
            stem = unit or Path(shipped).name.split(".", 1)[0]
            copy = _private_copy(path, Path(work) / f"{stem}{suffix}", max_file_bytes)
            csv = _as_csv(copy, max_file_bytes)
            _gate_and_store(csv, entry, kind, shipped, outcome)
    except (Refused, DataError) as exc:
        outcome.reason = str(exc)
    except Exception as exc:  # the boundary: any surprise is this file's rejection
        outcome.reason = f"unreadable file ({type(exc).__name__}: {exc})"[:500]
    if not outcome.accepted and not outcome.failed_expectations:
        outcome.failed_expectations = [f"file readable as {kind.gate if kind else 'bars'}"]
    return outcome


def _suffix_of(name: str) -> str:
    suffix = next((s for s in SUFFIXES if name.lower().endswith(s)), None)
    if suffix is None:
        raise Refused(f"unsupported file type: '{_shown(name)}' (expected {' or '.join(SUFFIXES)})")
    return suffix


def _shown(name: str) -> str:
    """A file name as logs and reports show it: control characters and undecodable bytes
    escaped, so a name can neither forge a log line nor break a JSON encoder."""
    return name if name.isprintable() else name.encode("unicode_escape").decode("ascii")


def _private_copy(path: Path, copy: Path, max_file_bytes: int) -> Path:
    """Copy ``path`` to ``copy`` through one descriptor opened without following links.

    Checking and reading the same open file means a file swapped for a link (or grown) after
    the check is still never read through the link, nor past the bound.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        if path.is_symlink():
            raise Refused("a symbolic link, not a regular file: not followed") from None
        raise Refused(f"cannot open: {exc.strerror or exc}") from None
    with os.fdopen(fd, "rb") as source:
        info = os.fstat(source.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise Refused("not a regular file")
        if info.st_size > max_file_bytes:
            raise Refused(f"file too large: {info.st_size} bytes (at most {max_file_bytes})")
        data = source.read(max_file_bytes + 1)
    if len(data) > max_file_bytes:
        raise Refused(f"file too large: more than {max_file_bytes} bytes")
    copy.write_bytes(data)
    return copy


def _as_csv(copy: Path, max_file_bytes: int) -> Path:
    """Return a CSV of the file for the bar loader (a Parquet file is written out as one)."""
    if not copy.name.lower().endswith(".parquet"):
        return copy
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(copy).metadata
    unpacked = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
    if unpacked > max_file_bytes:
        raise Refused(
            f"Parquet data too large: {unpacked} bytes unpacked (at most {max_file_bytes})"
        )
    frame = pd.read_parquet(copy)
    csv = copy.with_name(copy.name[: -len(".parquet")] + ".csv")
    frame.to_csv(csv, index=False)
    return csv


def _gate_and_store(
    csv: Path, entry: Dataset, kind: IngestKind, shipped: str, outcome: FileOutcome
) -> None:
    """Gate the file's rows; on success append the new ones to the store."""
    unit = outcome.symbol
    loaded = kind.read(csv, entry, unit)
    frame = loaded.frame
    outcome.rows = len(frame)
    name = f"ingest:{entry.name}" + (f":{unit}" if unit else "")
    report = validate(kind.gate, frame, name=name)
    rejected = [
        {"symbol": unit, "line": r.line, "reason": r.reason, "raw": r.raw[:200]}
        for r in loaded.rejected
    ]
    report = count_rejected_rows(report, rejected, allowed=0, kind=kind.gate)
    stored = kind.stored(entry, unit, shipped).frame
    new, same, rules = _against_store(frame, stored, kind)
    report = replace(
        report,
        success=report.success and all(r.success for r in rules),
        results=[*report.results, *rules],
    )
    outcome.gate = report.to_dict()
    outcome.failed_expectations = [r.expectation for r in report.failed()]
    if not report.success:
        outcome.reason = report.message()
        return
    outcome.already_stored = same
    outcome.new_rows = len(new)
    if len(new):
        outcome.stored_in = str(_append_rows(entry, kind, unit, shipped, new))
    outcome.accepted = True
    outcome.reason = (
        f"{len(new)} new rows stored, {same} already stored"
        if len(new)
        else f"nothing new: all {same} rows already stored"
    )


def _keys(frame: pd.DataFrame, columns: Sequence[str]) -> list[tuple[Any, ...]]:
    return list(zip(*(frame[c].tolist() for c in columns), strict=True))


def _against_store(
    frame: pd.DataFrame, stored: pd.DataFrame, kind: IngestKind
) -> tuple[pd.DataFrame, int, list[ExpectationResult]]:
    """Split the file's rows into new ones (later than every stored row of their group) and
    stored ones; the rules: one row per key in the file, and :data:`STORE_RULE`.

    A row at or before the last stored time that is not equal to the stored row of its key
    breaks the store rule: the store's history is never rewritten by a drop.
    """
    keys = _keys(frame, kind.key)
    repeated = len(keys) - len(set(keys))
    unique = ExpectationResult(
        f"one row per ({', '.join(kind.key)})",
        kind.key,
        repeated == 0,
        repeated,
        detail=f"{repeated} repeated rows" if repeated else "",
    )
    rules = [] if kind.gate == "bars" else [unique]  # the bar suite checks it already
    ts = frame["ts_event"].to_numpy(np.int64)
    floor = np.full(len(frame), np.iinfo(np.int64).min, dtype=np.int64)
    if not stored.empty and kind.group:
        lasts = stored.groupby(list(kind.group), sort=False)["ts_event"].max().reset_index()
        last_of = dict(zip(_keys(lasts, kind.group), lasts["ts_event"].tolist(), strict=True))
        floor[:] = [last_of.get(k, floor[0]) for k in _keys(frame, kind.group)]
    elif not stored.empty:
        floor[:] = int(stored["ts_event"].max())
    later = ts > floor
    new = frame[later].reset_index(drop=True)
    old = frame[~later]
    candidates = stored[stored["ts_event"].isin(old["ts_event"])]
    position = {k: i for i, k in enumerate(_keys(candidates, kind.key))}
    theirs = candidates[list(kind.values)].to_numpy(np.float64)
    ours = old[list(kind.values)].to_numpy(np.float64)
    equal = np.zeros(len(old), dtype=bool)
    for row, key in enumerate(_keys(old, kind.key)):
        at = position.get(key)
        if at is not None:
            equal[row] = bool(
                np.isclose(ours[row], theirs[at], rtol=SAME_VALUE_RTOL, atol=0.0).all()
            )
    differing = old[~equal]
    count = len(differing)
    detail = ""
    if count:
        per = f" of its {', '.join(kind.group)}" if kind.group else ""
        detail = (
            f"{count} row{'s' if count != 1 else ''} at or before the last stored time"
            f"{per} {_iso(int(floor[~later][~equal][0]))} differ from the stored rows or fill "
            f"a gap in them, first {_iso(int(differing['ts_event'].iloc[0]))}"
        )
    examples = tuple(
        {k: _plain(v) for k, v in row.items()} | {"ts_event": _iso(int(row["ts_event"]))}
        for row in differing.head(MAX_EXAMPLES).to_dict("records")
    )
    rules.append(ExpectationResult(STORE_RULE, ("ts_event",), count == 0, count, examples, detail))
    return new, int(equal.sum()), rules


def _plain(value: Any) -> Any:
    """A cell as a report shows it: a number as float, anything else as bounded text."""
    if isinstance(value, int | float | np.number) and not isinstance(value, bool):
        return float(value)
    return str(value)[:200]


def _iso(ns: int) -> str:
    return pd.Timestamp(ns, tz="UTC").isoformat()


def _append_rows(
    entry: Dataset, kind: IngestKind, unit: str, shipped: str, new: pd.DataFrame
) -> Path:
    """Append ``new`` to the unit's ingested file: write a whole new file, then rename it."""
    target = kind.target(entry, unit, shipped)
    target.parent.mkdir(parents=True, exist_ok=True)
    parts = [kind.read(target, entry, unit).frame] if target.is_file() else []
    added = new.sort_values("ts_event", kind="stable")
    rows = pd.concat([*parts, added], ignore_index=True)
    _write_atomically(target, kind.write(rows).to_csv(index=False).encode())
    return target


def _write_atomically(target: Path, data: bytes) -> None:
    """Write ``data`` to ``target`` so that a crash leaves the old file or the new one."""
    handle, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    folder = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(folder)  # the rename itself survives a power cut
    finally:
        os.close(folder)


# --- after the decision ------------------------------------------------------------------------


def _settle(path: Path, outcome: FileOutcome) -> None:
    """Move the file to done/ or rejected/, write its report beside it, log and count it."""
    folder = path.parent / (DONE if outcome.accepted else REJECTED)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    try:
        folder.mkdir(exist_ok=True)
        # The name as shown (escaped, bounded), so what reports and logs name exists as is.
        moved = _free_name(folder, f"{stamp}-{_shown(path.name)[:200]}")
        # rename moves a symbolic link itself, never what it points to.
        os.rename(path, moved)
        outcome.moved_to = str(moved)
        report = moved.with_name(moved.name + REPORT_SUFFIX)
        received = datetime.now(UTC).isoformat(timespec="seconds")
        body = {**outcome.to_dict(), "report_file": str(report), "received_at": received}
        _write_atomically(report, (json.dumps(body, indent=2) + "\n").encode())
        outcome.report_file = str(report)
    except OSError as exc:
        # Left in place, the file is decided again on the next run (accepting is idempotent).
        log.error(
            f"ingest: could not move {outcome.file} to {folder}: {exc}",
            extra={"event": "ingest_move_failed", "file": outcome.file, "error": str(exc)},
        )
    fields = {
        "dataset": outcome.dataset,
        "file": outcome.file,
        "symbol": outcome.symbol,
        "rows": outcome.rows,
        "new_rows": outcome.new_rows,
        "moved_to": outcome.moved_to,
    }
    if outcome.accepted:
        log.info(
            f"ingest: accepted {outcome.dataset}/{outcome.file}: {outcome.reason}",
            extra={"event": "ingest_accepted", **fields},
        )
        return
    log.warning(
        f"ingest: rejected {outcome.dataset}/{outcome.file}: {outcome.reason}"[:1000],
        extra={
            "event": "ingest_rejected",
            **fields,
            "reason": outcome.reason[:1000],
            "failed_expectations": outcome.failed_expectations,
        },
    )
    # One counter per known data set: a folder's name chosen by anyone makes no new series.
    known = outcome.dataset in DATASETS
    count_learning_event("gate_failed", f"ingest.{outcome.dataset if known else 'unknown'}")


def _free_name(folder: Path, name: str) -> Path:
    candidate = folder / name
    number = 1
    while os.path.lexists(candidate):
        candidate = folder / f"{number}-{name}"
        number += 1
    return candidate


__all__ = [
    "INBOX_ENV",
    "MAX_FILE_BYTES",
    "FileOutcome",
    "default_inbox",
    "ingest_drop_folder",
    "ingest_inbox",
]
