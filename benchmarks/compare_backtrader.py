"""Run the moving-average crossover in backtrader over the bars the project hands it.

Run by the benchmark venv's python (``var/bench-venv/bin/python``), never by the project's: it
imports backtrader and the standard library only, so it cannot use the project's code.

    var/bench-venv/bin/python benchmarks/compare_backtrader.py BARS.json [REPEATS]

``BARS.json``: ``{"fast": 10, "slow": 30, "bars": {symbol: {"ts": [int ns], "open": [...],
"high": [...], "low": [...], "close": [...], "volume": [...]}}}`` (the project's cleaned bars).

Rules, the project's backtest contract: SMA(fast) and SMA(slow) of the close; target 1 unit
when fast > slow, else flat (long only); the order decided at bar t's close is a market order,
which backtrader fills at bar t+1's open (its default, no cheat-on-close / cheat-on-open); no
fees; a position is marked at the last close. One ``Cerebro`` per symbol, so each symbol's
strategy starts after its own warm-up, as the project's per-symbol instances do.

Prints one JSON object: the backtrader version, the bars, the best wall time of the runs (only
``Cerebro`` set-up and ``run``; bars are built beforehand), bars per second, and per symbol the
final PnL (broker value minus starting cash) and the number of fills.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import time
from typing import Any

import backtrader as bt

Row = tuple[dt.datetime, float, float, float, float, float]


class ListFeed(bt.feed.DataBase):
    """A data feed over bars already in memory, so the timed run reads no file."""

    params = (("rows", None),)

    def start(self) -> None:
        super().start()
        self._next_row = 0

    def _load(self) -> bool:
        rows = self.p.rows
        if self._next_row >= len(rows):
            return False
        stamp, o, h, lo, c, v = rows[self._next_row]
        self._next_row += 1
        lines = self.lines
        lines.datetime[0] = bt.date2num(stamp)
        lines.open[0], lines.high[0], lines.low[0], lines.close[0] = o, h, lo, c
        lines.volume[0] = v
        lines.openinterest[0] = 0.0
        return True


class Crossover(bt.Strategy):
    """One unit long while SMA(fast) > SMA(slow), flat otherwise."""

    params = (("fast", 10), ("slow", 30))

    def __init__(self) -> None:
        self.fast_ma = bt.indicators.SMA(self.data.close, period=self.p.fast)
        self.slow_ma = bt.indicators.SMA(self.data.close, period=self.p.slow)
        self.fills = 0

    def next(self) -> None:
        want = 1.0 if self.fast_ma[0] > self.slow_ma[0] else 0.0
        have = self.position.size
        if want > have:
            self.buy(size=want - have)
        elif want < have:
            self.sell(size=have - want)

    def notify_order(self, order: Any) -> None:
        if order.status == order.Completed:
            self.fills += 1


def to_rows(bars: dict[str, list[Any]]) -> list[Row]:
    """Bars as (naive UTC datetime, open, high, low, close, volume) tuples."""
    epoch = dt.datetime(1970, 1, 1)
    stamps = [epoch + dt.timedelta(microseconds=ts // 1000) for ts in bars["ts"]]
    columns = (bars["open"], bars["high"], bars["low"], bars["close"], bars["volume"])
    return list(zip(stamps, *columns, strict=True))


def run_symbol(rows: list[Row], fast: int, slow: int) -> tuple[float, int]:
    """Backtest one symbol; return its final PnL and number of fills."""
    cerebro = bt.Cerebro(stdstats=False)  # no observers: backtrader's fastest set-up
    # Enough cash for one unit at any price, and small enough that value - cash keeps its digits.
    cash = 2.0 * max(row[2] for row in rows)
    cerebro.broker.setcash(cash)
    cerebro.adddata(ListFeed(rows=rows))
    cerebro.addstrategy(Crossover, fast=fast, slow=slow)
    (strategy,) = cerebro.run()
    return cerebro.broker.getvalue() - cash, strategy.fills


def main(argv: list[str]) -> int:
    with open(argv[1], encoding="utf-8") as handle:
        spec = json.load(handle)
    repeats = int(argv[2]) if len(argv) > 2 else 1
    fast, slow = int(spec["fast"]), int(spec["slow"])
    rows = {symbol: to_rows(bars) for symbol, bars in spec["bars"].items()}
    n_bars = sum(len(r) for r in rows.values())
    best, cpu = float("inf"), float("nan")
    pnl: dict[str, float] = {}
    fills: dict[str, int] = {}
    for _ in range(repeats):
        start, cpu_start = time.perf_counter(), time.process_time()
        results = {symbol: run_symbol(r, fast, slow) for symbol, r in rows.items()}
        seconds = time.perf_counter() - start
        if seconds < best:
            best, cpu = seconds, time.process_time() - cpu_start
        pnl = {s: p for s, (p, _) in results.items()}
        fills = {s: n for s, (_, n) in results.items()}
    out = {
        "engine": "backtrader",
        "version": bt.__version__,
        "python": sys.version.split()[0],
        "symbols": len(rows),
        "bars": n_bars,
        "repeats": repeats,
        "seconds": best,
        "cpu_seconds": cpu,
        "bars_per_second": n_bars / best,
        "pnl": pnl,
        "fills": fills,
    }
    sys.stdout.write(json.dumps(out) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
