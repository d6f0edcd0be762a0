"""Loaders for macro data (FRED monthly series, Treasury curves, close-only index prices) and the
merged macro + bar event stream that the macro strategies consume.

Timing convention (both the event stream and the event frame)
--------------------------------------------------------------
Every stamp is int64 nanoseconds UTC at 00:00 of a *day label*, read as "known by the end of that
day":

* a daily bar stamped ``D 00:00`` (as :func:`core.data.loaders.read_bars_frame` stamps them) is
  day D's close;
* a :class:`MacroPoint` stamped ``P 00:00`` was published during day P, so it may be used by the
  bar of day P and every later one. ``ts_event`` is the publication day, never the period it
  measures (that is ``period_start``).

At equal stamps macro points are ordered before bars, so a strategy deciding at a bar sees exactly
the figures published up to that day. Publication lags assumed (FRED serves the latest revised
vintage, not the real-time one: revisions are a residual look-ahead this data cannot remove):

* FRED monthly series: published ``FRED_PUBLICATION_LAG_DAYS[series]`` days after the end of the
  month measured (M2 and the monetary base: 28 days, the H.6 release comes about four weeks after
  month end; Fed funds monthly average: 7 days, the weekly H.15 after month end);
* Treasury constant-maturity yields of day D: 1 day (the curve is fixed after the equity close,
  so it is usable from the next session).

Event frame
-----------
:func:`macro_event_frame` returns one row per event in stream order with columns ``ts_event``
(int64), ``kind`` (``"macro"`` or ``"bar"``), ``series`` (macro rows; ``""`` on bars), ``value``
(float64, NaN on bars), ``period_start`` (int64, 0 on bars), ``symbol`` (bars; ``""`` on macro
rows) and ``open, high, low, close, volume`` (float64, NaN on macro rows).
:func:`iter_macro_events` yields the same rows as typed events.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from core.data.datasets import data_root, load_shipped_file
from core.data.loaders import (
    BAR_COLUMNS,
    LoadResult,
    RowRejects,
    blank_rows,
    clean_text,
    file_lines,
    finish_load,
    missing_text,
    parse_stamps,
    read_bars_frame,
    read_table,
    resolve_columns,
)
from core.errors import DataError
from core.model import Bar, MacroPoint

DAY_NS = 86_400 * 1_000_000_000
FRED_PUBLICATION_LAG_DAYS = {"FEDFUNDS": 7, "M2SL": 28, "M1SL": 28, "BOGMBASE": 28, "EXUSEU": 7}
TREASURY_PUBLICATION_LAG_DAYS = 1
FRED_DATASET = "macro_fred_monetary"
TREASURY_DATASET = "us_treasury_yields_zipline"
TREASURY_FILE = "treasury_curves.csv"
SKFOLIO_DATASET = "equities_adjclose_skfolio"
SP500_INDEX_FILE = "sp500_index.csv.gz"
SP500_INDEX_COLUMN = "SP500"
# Treasury curve columns -> FRED-style series names; values are converted to percent.
TREASURY_SERIES = {
    "1month": "DGS1MO",
    "3month": "DGS3MO",
    "6month": "DGS6MO",
    "1year": "DGS1",
    "2year": "DGS2",
    "3year": "DGS3",
    "5year": "DGS5",
    "7year": "DGS7",
    "10year": "DGS10",
    "20year": "DGS20",
    "30year": "DGS30",
}
MACRO_FRAME_COLUMNS = (
    "ts_event", "kind", "series", "value", "period_start", "symbol", *BAR_COLUMNS[1:]
)  # fmt: skip


def _month_after(period_ns: np.ndarray) -> np.ndarray:
    """First day of the month after each (month-start) stamp, in int64 ns."""
    months = pd.DatetimeIndex(period_ns.astype("datetime64[ns]")).to_period("M") + 1
    return months.to_timestamp().as_unit("ns").asi8


def read_fred_series(
    path: str | Path, series: str | None = None, *, publication_lag_days: int | None = None
) -> LoadResult:
    """Load a FRED monthly CSV (``"Date","<SERIES>"``) as macro points stamped when published.

    Parameters
    ----------
    path
        The CSV; ``Date`` is the first day of the month measured.
    series
        Series name; defaults to the value column's header.
    publication_lag_days
        Days after the end of the month at which the figure is public; defaults to
        ``FRED_PUBLICATION_LAG_DAYS[series]``.

    Returns
    -------
    LoadResult
        ``frame`` columns: ``ts_event`` (publication day, int64 ns UTC), ``period_start``
        (int64 ns), ``series`` (str), ``value`` (float64). FRED's ``.`` (no value) and other
        non-numeric values are rejected with the reason.

    Raises
    ------
    DataError
        If the file is missing or empty, lacks a ``Date`` column, or the lag is unknown.
    """
    path = Path(path)
    raw = read_table(path, dtype=str)
    cols = resolve_columns(raw, path, [("date",)])
    value_columns = [c for c in raw.columns if str(c) != cols["date"]]
    if len(value_columns) != 1:
        raise DataError(f"{path.name}: expected one value column, have {value_columns}")
    name = series or str(value_columns[0]).strip()
    lag = FRED_PUBLICATION_LAG_DAYS.get(name) if publication_lag_days is None else None
    lag = publication_lag_days if publication_lag_days is not None else lag
    if lag is None or lag < 0:
        raise DataError(f"{path.name}: no publication lag known for series '{name}', pass one")
    rejects = RowRejects(len(raw))
    period = parse_stamps(rejects, raw[cols["date"]], "date")
    value_text = clean_text(raw[value_columns[0]])
    values = pd.to_numeric(value_text, errors="coerce").to_numpy(np.float64)
    absent = missing_text(value_text)
    rejects.add(absent, lambda _row: f"missing {name}")
    rejects.add(
        ~np.isfinite(values) & ~absent, lambda row: f"non-numeric {name} '{value_text.iat[row]}'"
    )
    ok = ~rejects.bad
    published = np.zeros(len(raw), dtype=np.int64)
    published[ok] = _month_after(period[ok]) + lag * DAY_NS
    out: dict[str, np.ndarray | pd.Series] = {
        "ts_event": published,
        "period_start": period,
        "series": np.full(len(raw), name, dtype=object),
        "value": values,
    }
    return finish_load(out, rejects, blank_rows(raw), file_lines(path, 1), 1, path, name)


def _describe(what: str, text: pd.Series) -> Callable[[int], str]:
    """Reason for a rejected row: ``what`` and the offending text."""
    return lambda row: f"{what} '{text.iat[row]}'"


def read_treasury_frame(path: str | Path) -> LoadResult:
    """Load the daily Treasury curve (``Time Period,1month,...,30year``, decimal yields).

    Blank tenors are legitimate (a tenor not published that day) and stay NaN; unparsable dates
    and non-numeric or non-finite yields are rejected.

    Returns
    -------
    LoadResult
        ``frame`` columns: ``ts_event`` (the curve's date, 00:00 UTC) and one float64 column per
        tenor present in the file, as decimals (0.0783 = 7.83 %).
    """
    path = Path(path)
    raw = read_table(path, dtype=str)
    cols = resolve_columns(raw, path, [("time period", "date")])
    tenors = [str(c) for c in raw.columns if str(c).strip() in TREASURY_SERIES]
    if not tenors:
        raise DataError(
            f"{path.name}: no tenor columns (want some of {', '.join(TREASURY_SERIES)})"
        )
    rejects = RowRejects(len(raw))
    out: dict[str, np.ndarray | pd.Series] = {
        "ts_event": parse_stamps(rejects, raw[cols["time period"]], "date")
    }
    for tenor in tenors:
        text = clean_text(raw[tenor])
        values = pd.to_numeric(text, errors="coerce").to_numpy(np.float64)
        blank = missing_text(text)
        rejects.add(~np.isfinite(values) & ~blank, _describe(f"non-numeric {tenor}", text))
        out[tenor.strip()] = np.where(blank, np.nan, values)
    return finish_load(out, rejects, blank_rows(raw), file_lines(path, 1), 1, path)


def treasury_points(
    curve: pd.DataFrame,
    tenors: Iterable[str] = ("3month", "2year", "10year"),
    *,
    publication_lag_days: int = TREASURY_PUBLICATION_LAG_DAYS,
) -> pd.DataFrame:
    """Turn a curve frame into macro points (one per tenor and day), in percent.

    Returns
    -------
    pandas.DataFrame
        Columns ``ts_event`` (curve date + lag), ``period_start`` (curve date), ``series``
        (``DGS2``, ``DGS10``...), ``value`` (percent); days where a tenor is blank are skipped.
    """
    parts = []
    for tenor in tenors:
        if tenor not in curve or tenor not in TREASURY_SERIES:
            raise DataError(f"treasury curve has no tenor '{tenor}'")
        rows = curve[curve[tenor].notna()]
        dates = rows["ts_event"].to_numpy(np.int64)
        parts.append(
            pd.DataFrame(
                {
                    "ts_event": dates + publication_lag_days * DAY_NS,
                    "period_start": dates,
                    "series": TREASURY_SERIES[tenor],
                    # Percent, like FRED's DGS series and FEDFUNDS, so changes read in points.
                    "value": rows[tenor].to_numpy(np.float64) * 100.0,
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


def read_close_prices_frame(path: str | Path) -> LoadResult:
    """Load a ``Date,<TICKER>,...`` close-price CSV (skfolio's adjusted closes).

    Returns
    -------
    LoadResult
        ``frame`` columns: ``ts_event`` and one float64 column per ticker. A missing price is
        kept as NaN (a ticker not yet listed); a non-numeric or negative one rejects the row.
    """
    path = Path(path)
    raw = read_table(path, dtype=str)
    cols = resolve_columns(raw, path, [("date",)])
    rejects = RowRejects(len(raw))
    out: dict[str, np.ndarray | pd.Series] = {
        "ts_event": parse_stamps(rejects, raw[cols["date"]], "date")
    }
    for column in (str(c) for c in raw.columns if str(c) != cols["date"]):
        text = clean_text(raw[column])
        values = pd.to_numeric(text, errors="coerce").to_numpy(np.float64)
        blank = missing_text(text)
        bad = (~np.isfinite(values) | (values < 0)) & ~blank
        rejects.add(bad, _describe(f"bad {column} price", text))
        out[column] = np.where(blank, np.nan, values)
    return finish_load(out, rejects, blank_rows(raw), file_lines(path, 1), 1, path)


def close_only_bars(prices: pd.DataFrame, column: str) -> pd.DataFrame:
    """Bars frame from one close-price column: open = high = low = close, volume 0, NaNs dropped."""
    if column not in prices:
        raise DataError(f"no price column '{column}' (have: {', '.join(map(str, prices.columns))})")
    rows = prices[prices[column].notna()]
    close = rows[column].to_numpy(np.float64)
    return pd.DataFrame(
        {
            "ts_event": rows["ts_event"].to_numpy(np.int64),
            "open": close,
            "high": close,
            "low": close,
            "close": close,
            "volume": np.zeros(len(close)),
        }
    )


def lean_daily_bars(symbol: str) -> LoadResult:
    """Load one ticker of ``etf_daily_lean`` (raw, unadjusted daily OHLCV; plain CSV)."""
    return read_bars_frame(data_root() / "etf_daily_lean" / f"{symbol}.csv", symbol)


def fred_series(series: str) -> LoadResult:
    """Load one series of ``macro_fred_monetary`` with its default publication lag, followed by
    the points ingested after the shipped ones."""
    return load_shipped_file(
        FRED_DATASET, f"{series}.csv", lambda path: read_fred_series(path, series)
    )


def treasury_curve() -> LoadResult:
    """Load ``us_treasury_yields_zipline``'s curve, followed by the days ingested after it."""
    return load_shipped_file(TREASURY_DATASET, TREASURY_FILE, read_treasury_frame)


def read_treasury_points(path: str | Path) -> LoadResult:
    """Load a Treasury curve file as the macro points of every tenor it has
    (:func:`treasury_points`), with the curve's rejected rows."""
    curve = read_treasury_frame(path)
    tenors = [t for t in TREASURY_SERIES if t in curve.frame]
    return LoadResult(
        frame=treasury_points(curve.frame, tenors),
        rejected=curve.rejected,
        source=curve.source,
        symbol=curve.symbol,
    )


def treasury_curve_rows(points: pd.DataFrame) -> pd.DataFrame:
    """The curve file of macro points (the inverse of :func:`read_treasury_points`): one row per
    curve date, one decimal column per tenor, blank where a tenor has no point that day."""
    wide = points.pivot(index="period_start", columns="series", values="value") / 100.0
    tenors = [t for t in TREASURY_SERIES if TREASURY_SERIES[t] in wide.columns]
    out = pd.DataFrame(
        {"Time Period": [pd.Timestamp(int(t), tz="UTC").isoformat() for t in wide.index]}
    )
    for tenor in tenors:
        out[tenor] = wide[TREASURY_SERIES[tenor]].to_numpy(np.float64)
    return out


def read_index_bars_file(path: str | Path) -> LoadResult:
    """Load a ``Date,SP500`` close-price file as close-only bars (:func:`close_only_bars`)."""
    prices = read_close_prices_frame(path)
    return LoadResult(
        frame=close_only_bars(prices.frame, SP500_INDEX_COLUMN),
        rejected=prices.rejected,
        source=prices.source,
        symbol=SP500_INDEX_COLUMN,
    )


def sp500_index_bars() -> pd.DataFrame:
    """The S&P 500 index of ``equities_adjclose_skfolio`` as close-only bars, followed by the
    days ingested after the shipped ones."""
    return load_shipped_file(SKFOLIO_DATASET, SP500_INDEX_FILE, read_index_bars_file).frame


def macro_event_frame(
    macro: pd.DataFrame | Iterable[pd.DataFrame], bars: Mapping[str, pd.DataFrame]
) -> pd.DataFrame:
    """Merge macro points and bars into one event frame in stream order (see module docstring).

    Parameters
    ----------
    macro
        One or several frames with ``ts_event, series, value`` (and optionally
        ``period_start``), e.g. ``read_fred_series(...).frame`` or :func:`treasury_points`.
    bars
        Bars frames keyed by symbol.

    Returns
    -------
    pandas.DataFrame
        Sorted by ``ts_event``, then macro before bars, then series/symbol, then input order.
    """
    frames = [macro] if isinstance(macro, pd.DataFrame) else list(macro)
    parts = []
    for frame in frames:
        n = len(frame)
        period = frame["period_start"] if "period_start" in frame else np.zeros(n, np.int64)
        part = {
            "ts_event": frame["ts_event"].to_numpy(np.int64),
            "kind": np.full(n, "macro", dtype=object),
            "series": frame["series"].astype("str").to_numpy(object),
            "value": frame["value"].to_numpy(np.float64),
            "period_start": np.asarray(period, dtype=np.int64),
            "symbol": np.full(n, "", dtype=object),
        }
        part.update({c: np.full(n, np.nan) for c in BAR_COLUMNS[1:]})
        parts.append(pd.DataFrame(part))
    for symbol, frame in bars.items():
        n = len(frame)
        part = {
            "ts_event": frame["ts_event"].to_numpy(np.int64),
            "kind": np.full(n, "bar", dtype=object),
            "series": np.full(n, "", dtype=object),
            "value": np.full(n, np.nan),
            "period_start": np.zeros(n, np.int64),
            "symbol": np.full(n, symbol, dtype=object),
        }
        part.update({c: frame[c].to_numpy(np.float64) for c in BAR_COLUMNS[1:]})
        parts.append(pd.DataFrame(part))
    if not parts:
        raise DataError("no macro points and no bars to merge")
    merged = pd.concat(parts, ignore_index=True)
    rank = (merged["kind"] == "bar").to_numpy(np.int8)
    name = (merged["series"] + merged["symbol"]).to_numpy(object)
    # lexsort is stable: ties on (ts, kind, name) keep input order.
    order = np.lexsort((pd.factorize(name, sort=True)[0], rank, merged["ts_event"].to_numpy()))
    return merged.iloc[order].reset_index(drop=True)[list(MACRO_FRAME_COLUMNS)]


def iter_macro_events(frame: pd.DataFrame) -> Iterator[MacroPoint | Bar]:
    """Yield the rows of an event frame as :class:`MacroPoint` and :class:`Bar` events."""
    columns = [frame[c].to_numpy().tolist() for c in MACRO_FRAME_COLUMNS]
    for ts, kind, series, value, period, symbol, o, h, lo, c, v in zip(*columns, strict=True):
        if kind == "macro":
            yield MacroPoint(series=series, ts_event=ts, value=value, period_start=period)
        else:
            yield Bar(symbol=symbol, ts_event=ts, open=o, high=h, low=lo, close=c, volume=v)


def between(frame: pd.DataFrame, start: str, end: str) -> pd.DataFrame:
    """Rows of a frame with ``start <= ts_event < end`` (ISO dates, UTC), index reset."""
    lo, hi = pd.Timestamp(start, tz="UTC").value, pd.Timestamp(end, tz="UTC").value
    ts = frame["ts_event"].to_numpy(np.int64)
    return frame[(ts >= lo) & (ts < hi)].reset_index(drop=True)
