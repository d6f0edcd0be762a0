"""Measure pre-trade risk checks per second over orders derived from the real AAPL bars.

Run: ``.venv/bin/python benchmarks/bench_risk.py [n]`` (prints JSON).

Each bar yields one candidate order: sized from the bar's volume, on the side of the bar's move,
priced at the close, against the position an ma_crossover(10, 30, shorts) flow of 100 shares holds
at that bar, with the gross exposure and equity that position implies. The limits are set so that
some of these orders breach them, so both the accept and the reject path are timed.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import numpy as np

from core.data.datasets import bars_path
from core.data.loaders import read_bars_frame
from core.model import Order, Side
from core.risk import RiskLimits, RiskManager
from core.strategies.trend.ma_crossover import MACrossover, MACrossoverConfig

UNITS = 100.0
CAPITAL = 100_000.0
BENCH_LIMITS = RiskLimits(
    max_position=150.0,
    max_gross_exposure=20_000.0,
    max_order_quantity=150.0,
    max_order_notional=15_000.0,
    max_orders_per_second=10,
    max_drawdown=0.5,
    allowed_symbols=("AAPL",),
)

Case = tuple[Order, float, float, float, float, int]


def aapl_cases() -> list[Case]:
    """Return one (order, price, position, gross, equity, ts_ns) per real AAPL bar."""
    frame = read_bars_frame(bars_path("equities_daily_stocknet88", "AAPL")).frame
    config = MACrossoverConfig(fast_period=10, slow_period=30, allow_short=True)
    target = MACrossover.vectorized(config, frame).fillna(0.0).to_numpy()
    held = np.concatenate([[0.0], target[:-1]]) * UNITS  # decided at close t, held from t+1
    close = frame["close"].to_numpy()
    pnl = np.concatenate([[0.0], np.cumsum(held[1:] * np.diff(close))])
    cases: list[Case] = []
    for i, row in enumerate(frame.itertuples(index=False)):
        quantity = float(max(1, round(row.volume / 1e6)))
        order = Order(
            order_id=f"AAPL-{row.ts_event}",
            symbol="AAPL",
            side=Side.BUY if row.close >= row.open else Side.SELL,
            quantity=quantity,
            ts_event=int(row.ts_event),
            strategy="ma_crossover",
        )
        position = float(held[i])
        gross = abs(position) * row.close
        equity = CAPITAL + float(pnl[i])
        cases.append((order, row.close, position, gross, equity, int(row.ts_event)))
    return cases


def measure_risk_checks(n: int = 1_000_000) -> dict[str, Any]:
    """Time ``n`` checks cycling over :func:`aapl_cases`; return checks per second and counts."""
    cases = aapl_cases()
    manager = RiskManager(BENCH_LIMITS)
    check = manager.check
    span = cases[-1][5] - cases[0][5] + 86_400_000_000_000
    rounds, rest = divmod(n, len(cases))
    start = time.perf_counter()
    for r in range(rounds + 1):
        offset = r * span  # keeps event time increasing across rounds, as a live feed would
        for order, price, position, gross, equity, ts in cases if r < rounds else cases[:rest]:
            check(
                order,
                price=price,
                position=position,
                gross_exposure=gross,
                equity=equity,
                ts_ns=ts + offset,
            )
    seconds = time.perf_counter() - start
    stats = manager.stats()
    return {
        "checks": n,
        "seconds": seconds,
        "checks_per_second": n / seconds,
        "ns_per_check": seconds / n * 1e9,
        "distinct_orders": len(cases),
        "accepted": stats["accepted"],
        "rejected_by_code": stats["rejected_by_code"],
        "mode": stats["mode"],
    }


if __name__ == "__main__":
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    print(json.dumps(measure_risk_checks(count), indent=2))
