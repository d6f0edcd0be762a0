"""CSV loaders for the shipped data sets: vectorized frames plus the rows they had to reject.

Every loader reads with ``pandas.read_csv``, checks each value with array operations and returns a
:class:`LoadResult`: a DataFrame of clean rows in file order plus one :class:`RejectedRow` per row
that could not be parsed (bad timestamp, non-numeric, missing or non-finite value, negative price
or size). Whole-file problems (missing file, empty file, missing column) raise
:class:`core.errors.DataError`. Consistency checks across columns (``high < low``, crossed quotes,
duplicate or out-of-order stamps) are deliberately left to the data-quality gate downstream, so
frames are neither sorted nor de-duplicated. ``iter_*`` functions turn frames into typed events.
"""

from __future__ import annotations

import gzip
import io
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import numpy as np
import pandas as pd

from core.data.timestamps import parse_timestamps
from core.errors import DataError
from core.model import Bar, FundingRate, NewsItem, Quote, Side, Trade

BAR_COLUMNS = ("ts_event", "open", "high", "low", "close", "volume")
# Preference order when a file has several of these (e.g. both "Date" and "Time").
_TIME_ALIASES = ("datetime", "timestamp", "date", "time")
_PRICE_FIELDS = ("open", "high", "low", "close")
# NinjaTrader minute exports (pyalgotrade intraday) have no header.
_HEADERLESS_BAR_NAMES = ("datetime", "open", "high", "low", "close", "volume")
_MISSING_TEXT = frozenset({"", "nan", "none", "null", "na", "n/a"})


@dataclass(frozen=True)
class RejectedRow:
    """One input row that was not loaded: its 1-based file line, why, and its text."""

    line: int
    reason: str
    raw: str


@dataclass
class LoadResult:
    """Clean rows of one file (``frame``, file order) and the rows that were rejected."""

    frame: pd.DataFrame
    rejected: list[RejectedRow] = field(default_factory=list)
    source: str = ""
    symbol: str = ""

    def __len__(self) -> int:
        return len(self.frame)


# ---------------------------------------------------------------------------------------------
# File reading and row rejection: the building blocks of every parser in core/data
# ---------------------------------------------------------------------------------------------


def _open_text(path: Path) -> IO[str]:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", errors="replace")
    return path.open(encoding="utf-8", errors="replace")


def _first_line(path: Path) -> str:
    """Return the first non-blank line of ``path``, raising DataError if it has none."""
    _check_exists(path)
    with _open_text(path) as handle:
        for line in handle:
            if line.strip():
                return line.rstrip("\r\n")
    raise DataError(f"{path.name}: empty file")


def _check_exists(path: Path) -> None:
    if not path.is_file():
        raise DataError(f"{path}: no such file")


def read_table(path: Path, **kwargs: object) -> pd.DataFrame:
    """Read a CSV keeping one frame row per file line (blank lines become all-missing rows)."""
    _check_exists(path)
    try:
        frame = pd.read_csv(path, skip_blank_lines=False, **kwargs)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path.name}: empty file") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{path.name}: unreadable CSV ({first})") from None
    if frame.empty:
        raise DataError(f"{path.name}: no data rows")
    return frame


def resolve_columns(
    frame: pd.DataFrame, path: Path, wanted: Iterable[str | tuple[str, ...]]
) -> dict[str, str]:
    """Map each wanted (lower-case) name to the file's column, case-insensitively.

    A tuple in ``wanted`` lists aliases; the first one present wins and is stored under its
    first element.
    """
    by_lower = {str(c).strip().lower(): str(c) for c in frame.columns}
    found: dict[str, str] = {}
    missing: list[str] = []
    for want in wanted:
        aliases = (want,) if isinstance(want, str) else want
        hit = next((by_lower[a] for a in aliases if a in by_lower), None)
        if hit is None:
            missing.append(f"'{aliases[0].title()}'")
        else:
            found[aliases[0]] = hit
    if missing:
        have = ", ".join(str(c) for c in frame.columns)
        plural = "s" if len(missing) > 1 else ""
        raise DataError(f"{path.name}: missing column{plural} {', '.join(missing)} (have: {have})")
    return found


class RowRejects:
    """Collects per-row reasons found by vectorized checks; formats messages only for bad rows."""

    def __init__(self, n_rows: int) -> None:
        self.bad = np.zeros(n_rows, dtype=bool)
        self.reasons: dict[int, list[str]] = {}

    def add(self, mask: np.ndarray, describe: Callable[[int], str]) -> None:
        rows = np.flatnonzero(mask)
        for row in rows.tolist():
            self.reasons.setdefault(row, []).append(describe(row))
        self.bad[rows] = True

    def rows(
        self, raw_of: Callable[[list[int]], list[str]], header_lines: int
    ) -> list[RejectedRow]:
        order = sorted(self.reasons)
        raws = raw_of(order) if order else []
        return [
            RejectedRow(line=row + header_lines + 1, reason="; ".join(self.reasons[row]), raw=raw)
            for row, raw in zip(order, raws, strict=True)
        ]


def file_lines(path: Path, header_lines: int) -> Callable[[list[int]], list[str]]:
    """Return a lookup of the original text of frame rows (one record per file line)."""

    def lookup(rows: list[int]) -> list[str]:
        wanted = {row + header_lines: row for row in rows}
        texts: dict[int, str] = {}
        with _open_text(path) as handle:
            for number, line in enumerate(handle):
                if number in wanted:
                    texts[wanted[number]] = line.rstrip("\r\n")
                    if len(texts) == len(wanted):
                        break
        return [texts.get(row, "") for row in rows]

    return lookup


def clean_text(series: pd.Series) -> pd.Series:
    return series.astype("str").str.strip().where(series.notna(), "")


def missing_text(text: pd.Series) -> np.ndarray:
    return text.str.lower().isin(_MISSING_TEXT).to_numpy(bool)


def parse_numbers(
    rejects: RowRejects, column: pd.Series, name: str, *, non_negative: bool = True
) -> np.ndarray:
    """Return ``column`` as float64; reject missing, non-numeric, non-finite, negative values."""
    if pd.api.types.is_numeric_dtype(column.dtype) and not pd.api.types.is_bool_dtype(column):
        values = column.to_numpy(np.float64)
        text = None
        missing = np.isnan(values)
        non_numeric = np.zeros(len(values), dtype=bool)
    else:
        text = clean_text(column)
        values = pd.to_numeric(text, errors="coerce").to_numpy(np.float64)
        missing = missing_text(text)
        non_numeric = np.isnan(values) & ~missing

    def shown(row: int) -> str:
        if text is not None:
            return str(text.iat[row])
        return np.format_float_positional(values[row], trim="-")

    rejects.add(missing, lambda _row: f"missing {name}")
    rejects.add(non_numeric, lambda row: f"non-numeric {name} '{shown(row)}'")
    rejects.add(np.isinf(values), lambda row: f"non-finite {name} '{shown(row)}'")
    if non_negative:
        with np.errstate(invalid="ignore"):
            negative = values < 0
        rejects.add(negative, lambda row: f"negative {name} {shown(row)}")
    return values


def parse_stamps(
    rejects: RowRejects, column: pd.Series, name: str, tz: str | None = None
) -> np.ndarray:
    """Return ``column`` as int64 ns UTC, rejecting missing and unparsable values."""
    text = clean_text(column)
    parsed = parse_timestamps(text, tz=tz)
    missing = missing_text(text)
    rejects.add(missing, lambda _row: f"missing {name}")
    rejects.add(parsed.unparsable & ~missing, lambda row: f"unparsable {name} '{text.iat[row]}'")
    rejects.add(
        parsed.bad_local_time,
        lambda row: f"{name} '{text.iat[row]}' does not exist or is ambiguous in {tz}",
    )
    return parsed.ns


def blank_rows(frame: pd.DataFrame) -> np.ndarray:
    return frame.isna().all(axis=1).to_numpy(bool)


def finish_load(
    columns: dict[str, np.ndarray | pd.Series],
    rejects: RowRejects,
    blank: np.ndarray,
    raw_of: Callable[[list[int]], list[str]],
    header_lines: int,
    path: Path,
    symbol: str = "",
) -> LoadResult:
    """Build the clean frame (rows neither rejected nor blank) and the list of rejects."""
    for row in np.flatnonzero(blank).tolist():
        rejects.reasons.pop(row, None)
    keep = ~(rejects.bad | blank)
    data = {
        name: (values.to_numpy()[keep] if isinstance(values, pd.Series) else values[keep])
        for name, values in columns.items()
    }
    return LoadResult(
        frame=pd.DataFrame(data),
        rejected=rejects.rows(raw_of, header_lines),
        source=path.name,
        symbol=symbol,
    )


# ---------------------------------------------------------------------------------------------
# Bars
# ---------------------------------------------------------------------------------------------


def read_bars_frame(
    path: str | Path, symbol: str | None = None, *, tz: str | None = None
) -> LoadResult:
    """Load an OHLCV CSV (daily or intraday) into a frame of clean bars and a list of rejects.

    Parameters
    ----------
    path
        CSV (optionally ``.gz``) with a Date/Datetime/Time column and Open, High, Low, Close,
        Volume columns (any case; extra columns such as Adj Close are ignored), or a headerless
        ``;``-separated NinjaTrader minute export ``yyyyMMdd HHmmss;open;high;low;close;volume``.
    symbol
        Symbol recorded on the result; defaults to the file name without extension.
    tz
        Zone of stamps written without an offset; ``None`` means UTC.

    Returns
    -------
    LoadResult
        ``frame`` has ``ts_event`` (int64 ns UTC) and float64 ``open, high, low, close, volume``
        in file order (duplicates and out-of-order rows kept for the data-quality gate).

    Raises
    ------
    DataError
        If the file does not exist, is empty or lacks a required column.
    """
    path = Path(path)
    first = _first_line(path)
    sep = ";" if ";" in first and "," not in first else ","
    headerless = first.lstrip()[:1].isdigit()
    if headerless:
        n_fields = len(first.split(sep))
        if n_fields != len(_HEADERLESS_BAR_NAMES):
            raise DataError(
                f"{path.name}: no header and {n_fields} fields per row "
                f"(expected {len(_HEADERLESS_BAR_NAMES)}: {sep.join(_HEADERLESS_BAR_NAMES)})"
            )
        raw = read_table(path, sep=sep, header=None, names=list(_HEADERLESS_BAR_NAMES))
    else:
        # Read time stamps as text so that e.g. epoch ns with a gap do not become floats.
        names = [h.strip().strip('"') for h in first.split(sep)]
        time_cols = {h: str for h in names if h.lower() in _TIME_ALIASES}
        raw = read_table(path, sep=sep, dtype=time_cols)
    cols = resolve_columns(raw, path, [_TIME_ALIASES, *_PRICE_FIELDS, "volume"])
    rejects = RowRejects(len(raw))
    out: dict[str, np.ndarray | pd.Series] = {
        "ts_event": parse_stamps(rejects, raw[cols["datetime"]], "date", tz)
    }
    for name in (*_PRICE_FIELDS, "volume"):
        out[name] = parse_numbers(rejects, raw[cols[name]], name)
    header_lines = 0 if headerless else 1
    return finish_load(
        out,
        rejects,
        blank_rows(raw),
        file_lines(path, header_lines),
        header_lines,
        path,
        symbol or path.name.split(".")[0],
    )


def iter_bars(frame: pd.DataFrame, symbol: str) -> Iterator[Bar]:
    """Yield one :class:`Bar` per row of a bars frame, in frame order."""
    columns = [frame[c].to_numpy().tolist() for c in BAR_COLUMNS]
    for ts, o, h, lo, c, v in zip(*columns, strict=True):
        yield Bar(symbol=symbol, ts_event=ts, open=o, high=h, low=lo, close=c, volume=v)


def iter_merged_bars(frames: Mapping[str, pd.DataFrame]) -> Iterator[Bar]:
    """Yield the bars of several symbols in time order (ties by symbol, then file order).

    Parameters
    ----------
    frames
        Bars frames keyed by symbol, as returned in ``LoadResult.frame``.
    """
    symbols = sorted(frames)
    if not symbols:
        return
    ts = np.concatenate([frames[s]["ts_event"].to_numpy(np.int64) for s in symbols])
    codes = np.concatenate([np.full(len(frames[s]), i, np.int32) for i, s in enumerate(symbols)])
    # lexsort is stable: equal (ts, symbol) rows keep their file order.
    order = np.lexsort((codes, ts))
    columns = [
        np.concatenate([frames[s][c].to_numpy() for s in symbols])[order].tolist()
        for c in BAR_COLUMNS
    ]
    for code, t, o, h, lo, c, v in zip(codes[order].tolist(), *columns, strict=True):
        yield Bar(symbol=symbols[code], ts_event=t, open=o, high=h, low=lo, close=c, volume=v)


def merge_bars(frames: Mapping[str, pd.DataFrame]) -> list[Bar]:
    """Return several symbols' bars as one time-ordered list (see :func:`iter_merged_bars`)."""
    return list(iter_merged_bars(frames))


def read_many_bars(
    paths: Mapping[str, str | Path], *, tz: str | None = None
) -> dict[str, LoadResult]:
    """Load one bars file per symbol; ``paths`` maps symbol to file."""
    return {symbol: read_bars_frame(p, symbol, tz=tz) for symbol, p in paths.items()}


# ---------------------------------------------------------------------------------------------
# Binance best bid/ask and trades (hftbacktest capture, derived CSVs)
# ---------------------------------------------------------------------------------------------

_TEXT_DTYPES = {"market": str, "symbol": str, "local_ts_ns": str, "exch_ts_ms": str}


def _exchange_or_local(rejects: RowRejects, exch_ms: pd.Series, local_ns: np.ndarray) -> np.ndarray:
    """Venue time in ns where the capture has it (``exch_ts_ms``), else the local receive time."""
    text = clean_text(exch_ms)
    absent = missing_text(text)
    ms = pd.to_numeric(text, errors="coerce").to_numpy(np.float64)
    rejects.add(np.isnan(ms) & ~absent, lambda row: f"non-numeric exch_ts_ms '{text.iat[row]}'")
    # Millisecond epochs (~1.7e12) are exact in float64; round before scaling to ns.
    exchange = np.where(np.isnan(ms), 0, np.round(ms)).astype(np.int64) * 1_000_000
    return np.where(absent | np.isnan(ms), local_ns, exchange)


def _binance_identity(
    rejects: RowRejects, raw: pd.DataFrame, cols: dict[str, str], ts_recv: np.ndarray
) -> dict[str, np.ndarray | pd.Series]:
    """The stamps, symbol and venue columns every row of a Binance capture file has."""
    return {
        "ts_event": _exchange_or_local(rejects, raw[cols["exch_ts_ms"]], ts_recv),
        "ts_recv": ts_recv,
        "symbol": _required_text(rejects, raw[cols["symbol"]], "symbol"),
        "venue": _required_text(rejects, raw[cols["market"]], "market"),
    }


def read_binance_quotes_frame(path: str | Path) -> LoadResult:
    """Load the Binance bookTicker extraction (``derived/bbo.csv.gz``) as a quotes frame.

    ``ts_event`` is the exchange time when the message carries one (USD-M ``E``) and the local
    receive time otherwise (spot bookTicker has none); ``ts_recv`` is always the local receive
    time. The capture's local clock runs about 1.2 s behind the exchange, so ``ts_recv -
    ts_event`` is negative on USD-M rows: do not read it as latency. Crossed books are kept.

    Returns
    -------
    LoadResult
        ``frame`` columns: ``ts_event, ts_recv`` (int64 ns), ``symbol``, ``venue`` (the
        ``market`` column: ``spot`` or ``usdm``), ``bid_price, bid_size, ask_price, ask_size``.
    """
    path = Path(path)
    raw = read_table(path, dtype=_TEXT_DTYPES)
    cols = resolve_columns(
        raw,
        path,
        ["market", "symbol", "local_ts_ns", "exch_ts_ms", "bid_px", "bid_qty", "ask_px", "ask_qty"],
    )
    rejects = RowRejects(len(raw))
    ts_recv = parse_stamps(rejects, raw[cols["local_ts_ns"]], "local_ts_ns")
    out: dict[str, np.ndarray | pd.Series] = {
        **_binance_identity(rejects, raw, cols, ts_recv),
        "bid_price": parse_numbers(rejects, raw[cols["bid_px"]], "bid_px"),
        "bid_size": parse_numbers(rejects, raw[cols["bid_qty"]], "bid_qty"),
        "ask_price": parse_numbers(rejects, raw[cols["ask_px"]], "ask_px"),
        "ask_size": parse_numbers(rejects, raw[cols["ask_qty"]], "ask_qty"),
    }
    return finish_load(out, rejects, blank_rows(raw), file_lines(path, 1), 1, path)


def iter_quotes(frame: pd.DataFrame) -> Iterator[Quote]:
    """Yield one :class:`Quote` per row of a quotes frame, in frame order."""
    names = ("symbol", "ts_event", "ts_recv", "venue", "bid_price", "bid_size", "ask_price")
    columns = [frame[c].to_numpy().tolist() for c in (*names, "ask_size")]
    for sym, ts, recv, venue, bp, bs, ap, az in zip(*columns, strict=True):
        yield Quote(
            symbol=sym,
            ts_event=ts,
            ts_recv=recv,
            venue=venue,
            bid_price=bp,
            bid_size=bs,
            ask_price=ap,
            ask_size=az,
        )


def read_binance_trades_frame(path: str | Path) -> LoadResult:
    """Load the Binance trade extraction (``derived/trades.csv.gz``) as a trades frame.

    ``buyer_is_maker`` true means the seller crossed the spread, so the aggressor is ``sell``.
    Time stamps follow :func:`read_binance_quotes_frame` (trade time ``T`` when present).

    Returns
    -------
    LoadResult
        ``frame`` columns: ``ts_event, ts_recv`` (int64 ns), ``symbol``, ``venue``, ``price``,
        ``size``, ``aggressor`` (``"buy"``/``"sell"``), ``trade_id`` (text).
    """
    path = Path(path)
    raw = read_table(path, dtype={**_TEXT_DTYPES, "trade_id": str, "buyer_is_maker": str})
    cols = resolve_columns(
        raw,
        path,
        [
            "market",
            "symbol",
            "local_ts_ns",
            "exch_ts_ms",
            "trade_id",
            "price",
            "qty",
            "buyer_is_maker",
        ],
    )
    rejects = RowRejects(len(raw))
    ts_recv = parse_stamps(rejects, raw[cols["local_ts_ns"]], "local_ts_ns")
    maker = clean_text(raw[cols["buyer_is_maker"]]).str.lower()
    is_true = maker.isin(("true", "1")).to_numpy(bool)
    is_false = maker.isin(("false", "0")).to_numpy(bool)
    rejects.add(~(is_true | is_false), lambda row: f"bad buyer_is_maker '{maker.iat[row]}'")
    out: dict[str, np.ndarray | pd.Series] = {
        **_binance_identity(rejects, raw, cols, ts_recv),
        "price": parse_numbers(rejects, raw[cols["price"]], "price"),
        "size": parse_numbers(rejects, raw[cols["qty"]], "qty"),
        "aggressor": np.where(is_true, Side.SELL.value, Side.BUY.value),
        "trade_id": _required_text(rejects, raw[cols["trade_id"]], "trade_id"),
    }
    return finish_load(out, rejects, blank_rows(raw), file_lines(path, 1), 1, path)


def iter_trades(frame: pd.DataFrame) -> Iterator[Trade]:
    """Yield one :class:`Trade` per row of a trades frame, in frame order."""
    names = ("symbol", "ts_event", "ts_recv", "venue", "price", "size", "aggressor", "trade_id")
    columns = [frame[c].to_numpy().tolist() for c in names]
    for sym, ts, recv, venue, price, size, aggressor, trade_id in zip(*columns, strict=True):
        yield Trade(
            symbol=sym,
            ts_event=ts,
            ts_recv=recv,
            venue=venue,
            price=price,
            size=size,
            aggressor=Side(aggressor),
            trade_id=trade_id,
        )


def _required_text(rejects: RowRejects, column: pd.Series, name: str) -> np.ndarray:
    text = clean_text(column)
    rejects.add(text.to_numpy() == "", lambda _row: f"missing {name}")
    return text.to_numpy(dtype=object)


# ---------------------------------------------------------------------------------------------
# Funding rates, news, sentiment texts
# ---------------------------------------------------------------------------------------------


def read_funding_frame(path: str | Path, *, tz: str | None = None) -> LoadResult:
    """Load funding rates (``exchange,symbol,funding_time_utc,funding_rate``) as a frame.

    Rates may be negative (shorts pay longs) and are kept as decimals per funding interval.

    Returns
    -------
    LoadResult
        ``frame`` columns: ``ts_event`` (int64 ns), ``symbol`` (as in the file, e.g.
        ``BTC-USDT``), ``venue`` (exchange name), ``rate`` (float64).
    """
    path = Path(path)
    raw = read_table(path, dtype={"exchange": str, "symbol": str, "funding_time_utc": str})
    cols = resolve_columns(
        raw, path, ["exchange", "symbol", ("funding_time_utc", "date"), ("funding_rate",)]
    )
    rejects = RowRejects(len(raw))
    out: dict[str, np.ndarray | pd.Series] = {
        "ts_event": parse_stamps(rejects, raw[cols["funding_time_utc"]], "funding_time_utc", tz),
        "symbol": _required_text(rejects, raw[cols["symbol"]], "symbol"),
        "venue": _required_text(rejects, raw[cols["exchange"]], "exchange"),
        "rate": parse_numbers(
            rejects, raw[cols["funding_rate"]], "funding_rate", non_negative=False
        ),
    }
    return finish_load(out, rejects, blank_rows(raw), file_lines(path, 1), 1, path)


def iter_funding(frame: pd.DataFrame) -> Iterator[FundingRate]:
    """Yield one :class:`FundingRate` per row of a funding frame, in frame order."""
    columns = [frame[c].to_numpy().tolist() for c in ("symbol", "venue", "ts_event", "rate")]
    for sym, venue, ts, rate in zip(*columns, strict=True):
        yield FundingRate(symbol=sym, venue=venue, ts_event=ts, rate=rate)


def read_tweets_frame(path: str | Path, *, source: str = "stocknet") -> LoadResult:
    """Load ticker-tagged tweets (``ticker,file_date,created_at_utc,text``) as news items.

    The file has one row per (ticker, tweet); a tweet filed under several tickers becomes one
    item whose ``symbols`` lists them all (sorted). Items are ordered by ``ts_event`` (stable),
    since the file itself is ordered by ticker.

    Returns
    -------
    LoadResult
        ``frame`` columns: ``ts_event`` (int64 ns), ``text``, ``symbols`` (tuple of str),
        ``source``.
    """
    path = Path(path)
    raw = read_table(path, dtype=str)
    cols = resolve_columns(raw, path, ["ticker", ("created_at_utc", "created_at"), "text"])
    rejects = RowRejects(len(raw))
    ts = parse_stamps(rejects, raw[cols["created_at_utc"]], "created_at_utc")
    tickers = _required_text(rejects, raw[cols["ticker"]], "ticker")
    text = _required_text(rejects, raw[cols["text"]], "text")
    rows = finish_load(
        {"ts_event": ts, "ticker": tickers, "text": text},
        rejects,
        blank_rows(raw),
        file_lines(path, 1),
        1,
        path,
    )
    grouped = (
        rows.frame.groupby(["ts_event", "text"], sort=True)["ticker"]
        .agg(lambda s: tuple(sorted(set(s))))
        .reset_index()
        .rename(columns={"ticker": "symbols"})
    )
    grouped["source"] = source
    rows.frame = grouped[["ts_event", "text", "symbols", "source"]]
    return rows


def iter_news(frame: pd.DataFrame) -> Iterator[NewsItem]:
    """Yield one :class:`NewsItem` per row of a news frame, in frame order."""
    columns = [frame[c].to_numpy().tolist() for c in ("ts_event", "text", "symbols", "source")]
    for ts, text, symbols, source in zip(*columns, strict=True):
        yield NewsItem(ts_event=ts, text=text, symbols=tuple(symbols), source=source)


SENTIMENT_LABELS = {0: "bearish", 1: "bullish", 2: "neutral"}


def read_sentiment_frame(path: str | Path) -> LoadResult:
    """Load a labelled sentiment CSV (``text,label`` with label 0 bearish, 1 bullish, 2 neutral).

    Texts may contain quoted line breaks, so ``RejectedRow.line`` is the record number plus one
    (the header) and ``raw`` is rebuilt from the fields rather than read from the file.

    Returns
    -------
    LoadResult
        ``frame`` columns: ``text`` (str), ``label`` (int64).
    """
    path = Path(path)
    raw = read_table(path, dtype=str)
    cols = resolve_columns(raw, path, ["text", "label"])
    rejects = RowRejects(len(raw))
    text = _required_text(rejects, raw[cols["text"]], "text")
    label_text = clean_text(raw[cols["label"]])
    labels = pd.to_numeric(label_text, errors="coerce").to_numpy(np.float64)
    valid = np.isin(labels, list(SENTIMENT_LABELS))
    rejects.add(~valid, lambda row: f"label '{label_text.iat[row]}' not in 0, 1, 2")
    out: dict[str, np.ndarray | pd.Series] = {
        "text": text,
        "label": np.where(valid, labels, -1).astype(np.int64),
    }

    def rebuilt(rows: list[int]) -> list[str]:
        values = raw.iloc[rows].astype("str").fillna("")
        return [",".join(r) for r in values.itertuples(index=False, name=None)]

    result = finish_load(out, rejects, blank_rows(raw), rebuilt, 1, path)
    result.frame["text"] = result.frame["text"].astype("str")
    return result
