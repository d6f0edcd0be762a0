"""The standard frame of the ``quotes_trades`` data kind, and its events.

One symbol's best bid/ask updates and trade prints merged into one time-ordered frame:

=============  ===================================================================
``ts_event``   int64 ns, the event's own stamp (venue time when the venue sends it)
``ts_recv``    int64 ns, local receive time: the one clock both streams share
``kind``       ``"quote"`` or ``"trade"``
``venue``      e.g. ``"spot"`` or ``"usdm"``
``bid_price``  best bid (quote rows; NaN on trade rows), likewise ``bid_size``,
               ``ask_price``, ``ask_size``
``price``      trade price (trade rows; NaN on quote rows), likewise ``size``
``aggressor``  ``"buy"``/``"sell"`` on trade rows, missing on quote rows
=============  ===================================================================

Rows are ordered by ``ts_recv``: Binance spot bookTicker carries no venue time, so quotes are
stamped on the local clock while trades carry the venue's trade time, which runs about 1.2 s
ahead of the capture's local clock. Ordering by ``ts_event`` would therefore show each print
more than a second after the quotes that surrounded it.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd

from core.errors import DataError
from core.model import Quote, Side, Trade

FRAME_COLUMNS = (
    "ts_event",
    "ts_recv",
    "kind",
    "venue",
    "bid_price",
    "bid_size",
    "ask_price",
    "ask_size",
    "price",
    "size",
    "aggressor",
)
_QUOTE_FIELDS = ("bid_price", "bid_size", "ask_price", "ask_size")
_TRADE_FIELDS = ("price", "size")


def _select(frame: pd.DataFrame, symbol: str | None, venue: str | None) -> pd.DataFrame:
    keep = np.ones(len(frame), dtype=bool)
    if symbol is not None:
        keep &= (frame["symbol"] == symbol).to_numpy(bool)
    if venue is not None:
        keep &= (frame["venue"] == venue).to_numpy(bool)
    return frame.loc[keep]


def _require(frame: pd.DataFrame, columns: tuple[str, ...], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(f"{what} frame lacks column(s) {', '.join(missing)}")


def _part(frame: pd.DataFrame, kind: str) -> dict[str, np.ndarray]:
    n = len(frame)
    ts_event = frame["ts_event"].to_numpy(np.int64)
    ts_recv = frame["ts_recv"].to_numpy(np.int64) if "ts_recv" in frame else ts_event
    venue = frame["venue"].to_numpy(object) if "venue" in frame else np.full(n, "", object)
    nan = np.full(n, np.nan)
    part: dict[str, np.ndarray] = {
        "ts_event": ts_event,
        "ts_recv": ts_recv,
        "kind": np.full(n, kind, object),
        "venue": venue,
    }
    for name in _QUOTE_FIELDS:
        part[name] = frame[name].to_numpy(np.float64) if kind == "quote" else nan
    for name in _TRADE_FIELDS:
        part[name] = frame[name].to_numpy(np.float64) if kind == "trade" else nan
    part["aggressor"] = (
        frame["aggressor"].to_numpy(object) if kind == "trade" else np.full(n, None, object)
    )
    return part


def quotes_trades_frame(
    quotes: pd.DataFrame,
    trades: pd.DataFrame,
    *,
    symbol: str | None = None,
    venue: str | None = None,
) -> pd.DataFrame:
    """Merge one instrument's quotes and trades into the standard ``quotes_trades`` frame.

    Parameters
    ----------
    quotes, trades
        Frames as returned by ``read_binance_quotes_frame`` / ``read_binance_trades_frame``
        (``ts_event``, optional ``ts_recv``, ``symbol``, ``venue`` and the price/size columns).
    symbol, venue
        Keep only these rows (``None`` keeps all; pass both when the frames hold several).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`FRAME_COLUMNS`, ordered by ``ts_recv``; on equal stamps quotes come
        first, then each input's own order.
    """
    _require(quotes, ("ts_event", *_QUOTE_FIELDS), "quotes")
    _require(trades, ("ts_event", *_TRADE_FIELDS, "aggressor"), "trades")
    q = _part(_select(quotes, symbol, venue), "quote")
    t = _part(_select(trades, symbol, venue), "trade")
    merged = {name: np.concatenate([q[name], t[name]]) for name in FRAME_COLUMNS}
    # lexsort is stable, so ties keep quotes before trades and each file's order.
    order = np.lexsort((np.arange(len(merged["ts_recv"])), merged["ts_recv"]))
    return pd.DataFrame({name: values[order] for name, values in merged.items()})


def iter_quotes_trades(frame: pd.DataFrame, symbol: str) -> Iterator[Quote | Trade]:
    """Yield the :class:`Quote` and :class:`Trade` events of a ``quotes_trades`` frame in order."""
    columns = [frame[c].to_numpy().tolist() for c in FRAME_COLUMNS]
    for ts, recv, kind, venue, bp, bs, ap, az, price, size, aggressor in zip(*columns, strict=True):
        venue_name = venue if isinstance(venue, str) else ""
        if kind == "quote":
            yield Quote(
                symbol=symbol,
                ts_event=ts,
                ts_recv=recv,
                venue=venue_name,
                bid_price=bp,
                bid_size=bs,
                ask_price=ap,
                ask_size=az,
            )
        else:
            yield Trade(
                symbol=symbol,
                ts_event=ts,
                ts_recv=recv,
                venue=venue_name,
                price=price,
                size=size,
                aggressor=Side(aggressor) if isinstance(aggressor, str) else None,
            )
