"""Vectorized parsing of the timestamp spellings found in the shipped data to int64 ns UTC.

Accepted spellings: ISO dates (``2012-09-04``) and datetimes (``2012-09-04 10:00:00``,
``2012-09-04T10:00:00.123456789Z``, ``...+02:00``), US ``M/D/YYYY`` with an optional
``H:M[:S]`` time, NinjaTrader/pyalgotrade ``yyyyMMdd HHmmss`` and integer epoch nanoseconds.
A value without an offset is wall time in ``tz`` (UTC unless the data set says otherwise); a date
without a time is that day's 00:00 in ``tz``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

NAT_NS = np.iinfo(np.int64).min
# 16+ digits cannot be a yyyyMMdd date (8) or a yyyyMMddHHmmss stamp (14): epoch nanoseconds.
_EPOCH_NS = r"^\d{16,19}$"
_HAS_OFFSET = r"(?:Z|[+-]\d{2}:?\d{2})$"
# Tried in order on whatever the previous formats could not parse.
_NAIVE_FORMATS = ("ISO8601", "%m/%d/%Y", "%m/%d/%Y %H:%M:%S", "%m/%d/%Y %H:%M")


@dataclass(frozen=True)
class ParsedTimestamps:
    """Result of :func:`parse_timestamps`: one entry per input value.

    ``ns`` holds int64 nanoseconds UTC (``NAT_NS`` where parsing failed), ``unparsable`` marks
    values in no accepted spelling and ``bad_local_time`` marks wall times that do not exist or
    are ambiguous in the requested zone (DST transitions).
    """

    ns: np.ndarray
    unparsable: np.ndarray
    bad_local_time: np.ndarray

    @property
    def failed(self) -> np.ndarray:
        return self.unparsable | self.bad_local_time


def parse_timestamps(
    values: pd.Series | np.ndarray | list, tz: str | None = None
) -> ParsedTimestamps:
    """Parse timestamps to integer nanoseconds since the epoch, UTC, never raising on bad values.

    Parameters
    ----------
    values
        Strings in any accepted spelling, or integers (taken as epoch nanoseconds).
    tz
        IANA zone of values written without an offset (``None`` or ``"UTC"``: already UTC).

    Returns
    -------
    ParsedTimestamps
        Nanoseconds and failure masks aligned with ``values``.
    """
    series = pd.Series(values, copy=False).reset_index(drop=True)
    n = len(series)
    ns = np.full(n, NAT_NS, dtype=np.int64)
    bad_local = np.zeros(n, dtype=bool)
    if pd.api.types.is_integer_dtype(series.dtype):
        return ParsedTimestamps(series.to_numpy(np.int64), np.zeros(n, dtype=bool), bad_local)

    text = series.astype("str").str.strip()
    done = np.zeros(n, dtype=bool)

    epoch = text.str.fullmatch(_EPOCH_NS).fillna(False).to_numpy(bool)
    ns[epoch] = text[epoch].astype(np.int64).to_numpy()
    done |= epoch

    aware = ~done & text.str.contains(_HAS_OFFSET, regex=True).fillna(False).to_numpy(bool)
    if aware.any():
        parsed = pd.to_datetime(text[aware], format="ISO8601", utc=True, errors="coerce")
        _store(ns, done, np.flatnonzero(aware), parsed)

    for fmt in _NAIVE_FORMATS:
        todo = np.flatnonzero(~done)
        if todo.size == 0:
            break
        parsed = pd.to_datetime(text.iloc[todo], format=fmt, errors="coerce")
        if tz is not None and tz.upper() != "UTC":
            ok = parsed.notna().to_numpy()
            local = parsed.dt.tz_localize(tz, ambiguous="NaT", nonexistent="NaT")
            bad_local[todo[ok & local.isna().to_numpy()]] = True
            parsed = local.dt.tz_convert("UTC")
        _store(ns, done, todo, parsed)
    return ParsedTimestamps(ns, ~done & ~bad_local, bad_local)


def _store(ns: np.ndarray, done: np.ndarray, rows: np.ndarray, parsed: pd.Series) -> None:
    """Write the parsed (non-NaT) values of ``rows`` into ``ns`` and mark them done."""
    ok = parsed.notna().to_numpy()
    if not ok.any():
        return
    # pandas 3 infers second/micro resolutions from strings: normalise to ns before taking ints.
    stamps = pd.DatetimeIndex(parsed[ok]).as_unit("ns")
    if stamps.tz is not None:
        stamps = stamps.tz_convert("UTC").tz_localize(None)
    ns[rows[ok]] = stamps.asi8
    done[rows[ok]] = True
