"""Loaders for the FX data sets: daily bid/ask bars of a currency triangle and ECB reference rates.

Same conventions as :mod:`core.data.loaders`: ``pandas.read_csv``, vectorized per-value checks,
a :class:`LoadResult` of clean rows plus one :class:`RejectedRow` (with its reason) per row that
could not be used, ``ts_event`` in int64 nanoseconds UTC.

The standard FX quotes frame (consumed by the triangular arbitrage strategy) has one row per pair
and day: ``ts_event`` (int64 ns), ``symbol`` (``EURUSD``...), ``venue`` (``oanda``, ``fxcm``,
``ecb``), ``bid_price``, ``ask_price`` (the daily closes), ``bid_size``, ``ask_size``. Crossed
closes (bid > ask) are kept by default, as in :mod:`core.data.loaders`, so that the strategy's own
guard can be tested; ``reject_crossed=True`` moves them to the rejects instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from core.data.datasets import data_root, load_shipped_file
from core.data.loaders import (
    LoadResult,
    RejectedRow,
    RowRejects,
    blank_rows,
    file_lines,
    finish_load,
    parse_numbers,
    parse_stamps,
    read_table,
    resolve_columns,
)
from core.errors import DataError
from core.model import Quote

TRIANGLE_DATASET = "fx_triangle_daily_lean"
ECB_DATASET = "fx_ecb_reference_rates"
TRIANGLE_PAIRS = ("EURUSD", "GBPUSD", "EURGBP")
# LEAN labels daily bars 00:00 in the market's data zone: Oanda UTC, FXCM fixed UTC-05 (EST).
# POSIX sign convention: "Etc/GMT+5" is five hours *behind* UTC.
MARKET_TIMEZONES = {"oanda": "UTC", "fxcm": "Etc/GMT+5"}
QUOTE_COLUMNS = ("ts_event", "symbol", "venue", "bid_price", "ask_price", "bid_size", "ask_size")


def read_fx_daily_frame(
    path: str | Path,
    symbol: str | None = None,
    *,
    venue: str = "",
    tz: str | None = None,
    reject_crossed: bool = False,
) -> LoadResult:
    """Load one LEAN daily bid/ask CSV as a frame of daily closing quotes.

    Parameters
    ----------
    path
        CSV with ``date, bid_open, ..., bid_close, bid_size, ask_open, ..., ask_close, ask_size``.
    symbol
        Pair name recorded on every row; defaults to the file name before ``_`` (``EURUSD``).
    venue
        Broker recorded on every row (``oanda``, ``fxcm``).
    tz
        Zone of the naive ``date`` stamps; ``None`` means UTC.
    reject_crossed
        Reject rows whose closing bid is above the closing ask (bad data, never arbitrage).

    Returns
    -------
    LoadResult
        ``frame`` columns as in :data:`QUOTE_COLUMNS`, in file order.

    Raises
    ------
    DataError
        If the file does not exist, is empty or lacks a required column.
    """
    path = Path(path)
    name = symbol or path.name.split("_")[0].split(".")[0]
    raw = read_table(path, dtype={"date": str})
    cols = resolve_columns(raw, path, ["date", "bid_close", "ask_close", "bid_size", "ask_size"])
    rejects = RowRejects(len(raw))
    bid = parse_numbers(rejects, raw[cols["bid_close"]], "bid_close")
    ask = parse_numbers(rejects, raw[cols["ask_close"]], "ask_close")
    if reject_crossed:
        with np.errstate(invalid="ignore"):
            crossed = bid > ask
        rejects.add(
            crossed, lambda row: f"crossed close: bid {float(bid[row])} > ask {float(ask[row])}"
        )
    out: dict[str, np.ndarray | pd.Series] = {
        "ts_event": parse_stamps(rejects, raw[cols["date"]], "date", tz),
        "symbol": np.full(len(raw), name, dtype=object),
        "venue": np.full(len(raw), venue, dtype=object),
        "bid_price": bid,
        "ask_price": ask,
        "bid_size": parse_numbers(rejects, raw[cols["bid_size"]], "bid_size"),
        "ask_size": parse_numbers(rejects, raw[cols["ask_size"]], "ask_size"),
    }
    return finish_load(out, rejects, blank_rows(raw), file_lines(path, 1), 1, path, name)


def read_fx_pair_file(
    path: str | Path, market: str, pair: str, *, reject_crossed: bool = False
) -> LoadResult:
    """Load one pair's daily file of ``market`` (its stamps in the market's zone)."""
    if market not in MARKET_TIMEZONES:
        raise DataError(f"unknown FX market '{market}' (known: {', '.join(MARKET_TIMEZONES)})")
    return read_fx_daily_frame(
        path, pair, venue=market, tz=MARKET_TIMEZONES[market], reject_crossed=reject_crossed
    )


def read_fx_triangle_frame(
    market: str, *, root: str | Path | None = None, reject_crossed: bool = False
) -> LoadResult:
    """Load the EURUSD, GBPUSD and EURGBP daily closes of one broker as one time-ordered frame.

    Rows are sorted by ``ts_event`` and, within a day, in :data:`TRIANGLE_PAIRS` order (stable),
    so a strategy sees the whole triangle of a day once its EURGBP row arrives. Each reject's
    reason is prefixed with its file name, since lines refer to three files.

    Parameters
    ----------
    market
        ``oanda`` or ``fxcm``.
    root
        Folder of a copy of the data set; by default the shipped set, each pair's file followed
        by the rows ingested after it (:func:`core.data.datasets.load_shipped_file`).
    reject_crossed
        Passed to :func:`read_fx_daily_frame`.
    """
    if market not in MARKET_TIMEZONES:
        raise DataError(f"unknown FX market '{market}' (known: {', '.join(MARKET_TIMEZONES)})")
    frames, rejected = [], []
    for pair in TRIANGLE_PAIRS:

        def read(path: Path, pair: str = pair) -> LoadResult:
            return read_fx_pair_file(path, market, pair, reject_crossed=reject_crossed)

        shipped = f"{market}/{pair}_daily.csv"
        if root is None:
            result = load_shipped_file(TRIANGLE_DATASET, shipped, read)
        else:
            result = read(Path(root) / shipped)
        frames.append(result.frame)
        rejected += [
            RejectedRow(r.line, f"{result.source}: {r.reason}", r.raw) for r in result.rejected
        ]
    merged = pd.concat(frames, ignore_index=True)
    merged = merged.sort_values("ts_event", kind="stable").reset_index(drop=True)
    return LoadResult(frame=merged, rejected=rejected, source=market, symbol="EUR/USD/GBP")


def iter_fx_quotes(frame: pd.DataFrame) -> Iterator[Quote]:
    """Yield one :class:`Quote` per row of an FX quotes frame, in frame order."""
    columns = [frame[c].to_numpy().tolist() for c in QUOTE_COLUMNS]
    for ts, sym, venue, bid, ask, bid_size, ask_size in zip(*columns, strict=True):
        yield Quote(
            symbol=sym,
            ts_event=ts,
            venue=venue,
            bid_price=bid,
            bid_size=bid_size,
            ask_price=ask,
            ask_size=ask_size,
        )


def read_ecb_rates_frame(
    path: str | Path | None = None, currencies: tuple[str, ...] = ("USD", "GBP")
) -> LoadResult:
    """Load ECB euro reference rates (units of currency per 1 EUR) for ``currencies``.

    A row missing any requested currency is rejected with the currency named. Dates are stamped
    00:00 UTC of the fixing day (the fixing itself is published at about 16:00 CET, so shift
    before using these as tradable prices intraday).

    Returns
    -------
    LoadResult
        ``frame`` columns: ``ts_event`` (int64 ns) and one float64 column per currency.
    """
    path = (
        Path(path) if path is not None else data_root() / ECB_DATASET / "eurofxref_hist_major.csv"
    )
    raw = read_table(path, dtype={"Date": str})
    cols = resolve_columns(raw, path, ["date", *(c.lower() for c in currencies)])
    rejects = RowRejects(len(raw))
    out: dict[str, np.ndarray | pd.Series] = {
        "ts_event": parse_stamps(rejects, raw[cols["date"]], "date")
    }
    for currency in currencies:
        out[currency] = parse_numbers(rejects, raw[cols[currency.lower()]], currency)
    return finish_load(out, rejects, blank_rows(raw), file_lines(path, 1), 1, path, "EUR")


def ecb_triangle_frame(rates: pd.DataFrame) -> pd.DataFrame:
    """Turn ECB ``USD`` and ``GBP`` rates into an FX quotes frame with bid = ask = the fixing.

    EURUSD and EURGBP are the fixings; GBPUSD is implied as USD / GBP, so the triangle closes by
    construction: the no-arbitrage baseline for triangular-arbitrage code.
    """
    ts = rates["ts_event"].to_numpy(np.int64)
    usd = rates["USD"].to_numpy(np.float64)
    gbp = rates["GBP"].to_numpy(np.float64)
    legs = {"EURUSD": usd, "GBPUSD": usd / gbp, "EURGBP": gbp}
    parts = [
        pd.DataFrame(
            {
                "ts_event": ts,
                "symbol": pair,
                "venue": "ecb",
                "bid_price": legs[pair],
                "ask_price": legs[pair],
                "bid_size": 0.0,
                "ask_size": 0.0,
            }
        )
        for pair in TRIANGLE_PAIRS
    ]
    merged = pd.concat(parts, ignore_index=True)
    return merged.sort_values("ts_event", kind="stable").reset_index(drop=True)
