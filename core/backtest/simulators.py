"""The family simulators of the quote, funding and FX types, reported as standard results.

Each wrapper replays the stream through the strategy's own ``update`` (the live code), hands the
decisions to the family's fill model and turns its output into an equity curve (``capital +
PnL`` per sample) for :func:`core.backtest.runner.make_result`:

* market makers: :func:`core.engine.quote_fills.backtest_market_maker`; capital is
  ``max_inventory`` units at the first mid; equity marked to the mid once per second;
* latency: :func:`core.strategies.arbitrage.latency.simulate_latency_fills`; capital one unit
  at the first spot mid; equity marked to the lagger mid once per second;
* funding carry: a carry ledger on one unit of notional (see :func:`funding_backtest`);
* triangular: one cycle of one unit of notional per signal (see :func:`triangular_backtest`).
"""

from __future__ import annotations

import math
from array import array
from typing import Any

import numpy as np
import pandas as pd

from core.backtest.runner import make_result
from core.backtest.streams import Stream
from core.engine.quote_fills import backtest_market_maker
from core.errors import ConfigError, DataError
from core.model import FundingRate
from core.strategies.arbitrage.latency import LatencyConfig, simulate_latency_fills
from core.strategies.catalogue import build

_NS_PER_S = 1_000_000_000
_NS_PER_MS = 1_000_000
_MARKET_MAKERS = frozenset({"adaptive_quote", "spread_adjuster", "volatility_responsive"})


class _Curve:
    """Equity samples, one per distinct stamp (the last value given for a stamp stands)."""

    def __init__(self) -> None:
        self.ts = array("q")
        self.equity = array("d")

    def add(self, ts_event: int, equity: float) -> None:
        if self.ts and self.ts[-1] == ts_event:
            self.equity[-1] = equity
        else:
            self.ts.append(ts_event)
            self.equity.append(equity)

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        return np.frombuffer(self.ts, np.int64), np.frombuffer(self.equity, np.float64)


def simulate(stream: Stream, config: dict[str, Any]) -> dict[str, Any]:
    """Dispatch ``stream`` to its family's simulator; raise ConfigError for an unknown type."""
    name = stream.type_name
    if name in _MARKET_MAKERS:
        return market_maker_backtest(stream, config)
    if name == "latency":
        return latency_backtest(stream, config)
    if name == "funding_rate":
        return funding_backtest(stream, config)
    if name == "triangular":
        return triangular_backtest(stream, config)
    raise ConfigError(f"no simulator for strategy type '{name}'")


def market_maker_backtest(stream: Stream, config: dict[str, Any]) -> dict[str, Any]:
    """Replay quotes and trades through a quoting strategy and the queue-aware fill model."""
    frame = _frame(stream)
    strategy = build(stream.type_name, config, stream.instances[0])
    result = backtest_market_maker(strategy, stream.events)  # type: ignore[arg-type]
    capital = float(config["max_inventory"]) * stream.capital
    fills = result["fills"]
    clock = np.array([f["ts_recv"] for f in fills], dtype=np.int64)
    signed = np.array([f["quantity"] if f["side"] == "buy" else -f["quantity"] for f in fills])
    prices = np.array([f["price"] for f in fills], dtype=np.float64)
    fees = np.array([f["fee"] for f in fills], dtype=np.float64)
    mid = (0.5 * (frame["bid_price"] + frame["ask_price"])).ffill().to_numpy(np.float64)
    curve = _per_second_curve(
        frame["ts_recv"].to_numpy(np.int64), mid, clock, signed, -(signed * prices + fees), capital
    )
    curve[1][-1] = capital + result["pnl"]  # the simulator's own last mark stands
    return make_result(
        stream,
        config,
        events=len(stream.events),
        signals=result["quotes_posted"],
        trades=len(fills),
        curve=curve,
        traded_notional=float(np.sum(np.abs(signed) * prices)),
        final_position=result["inventory"],
        capital=capital,
        fill_model=(
            "quote_fills.backtest_market_maker: resting quotes filled by trade prints (a print "
            "through the quote fills it whole, a print at the quote fills touch_fill_fraction "
            "0.5 of its size), Binance maker fees, inventory capped at max_inventory; capital = "
            "max_inventory at the first mid; equity marked to the mid once per second"
        ),
        extra={
            "fees": result["fees"],
            "realized_pnl": result["realized_pnl"],
            "adverse_selection_bps": _finite(result["adverse_selection_bps"]),
        },
    )


def latency_backtest(stream: Stream, config: dict[str, Any]) -> dict[str, Any]:
    """Take the strategy's decisions from ``update`` and fill them with the latency model."""
    frame = _frame(stream)
    cfg = LatencyConfig.from_dict(config)
    strategy = build("latency", config, stream.instances[0])
    target = np.full(len(frame), np.nan)
    signals = 0
    for i, event in enumerate(stream.events):
        signal = strategy.update(event)
        if signal is not None:
            target[i] = signal.target_position
            signals += 1
    result = simulate_latency_fills(frame, pd.Series(target, index=frame.index), cfg)
    fills = _latency_fills(frame, target, cfg)
    lagger = (frame["venue"] == cfg.lagger_venue).to_numpy(bool)
    mid = 0.5 * (frame["bid_price"] + frame["ask_price"])
    lagger_mid = mid.where(lagger).ffill().to_numpy(np.float64)
    qty, price, arrival = fills
    cash = -(qty * price) - np.abs(qty) * price * cfg.fee_bps / 1e4
    curve = _per_second_curve(
        frame["ts_recv"].to_numpy(np.int64), lagger_mid, arrival, qty, cash, stream.capital
    )
    curve[1][-1] = stream.capital + result["net_pnl"]  # the simulator's own total stands
    held = pd.Series(target).ffill().fillna(0.0)
    return make_result(
        stream,
        config,
        events=len(stream.events),
        signals=signals,
        trades=int(result["trades"]),
        curve=curve,
        traded_notional=float(np.sum(np.abs(qty) * price)),
        final_position=float(held.iloc[-1]),
        fill_model=(
            f"simulate_latency_fills: each target change fills at the lagger's quote "
            f"{cfg.latency_ms:g} ms after the triggering event (buys at the ask, sells at the "
            f"bid), taker fee {cfg.fee_bps:g} bps; 1 unit; equity marked to the lagger mid "
            "once per second"
        ),
        extra={
            "stale_fills": int(result["stale_fills"]),
            "moved_fills": int(result["moved_fills"]),
        },
    )


def _latency_fills(
    frame: pd.DataFrame, target: np.ndarray, config: LatencyConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per fill: signed quantity, price and arrival time, as ``simulate_latency_fills`` fills.

    The simulator reports totals only; the equity curve needs each fill, so this repeats its
    rule (the last valid lagger quote at or before ``ts_recv + latency``).
    """
    recv = frame["ts_recv"].to_numpy(np.int64)
    bid = frame["bid_price"].to_numpy(np.float64)
    ask = frame["ask_price"].to_numpy(np.float64)
    lagger = frame["venue"].astype("str").to_numpy() == config.lagger_venue
    with np.errstate(invalid="ignore"):
        lagger &= (bid > 0) & (bid <= ask)
    rows = np.flatnonzero(lagger)
    held = pd.Series(target).ffill().fillna(0.0).to_numpy(np.float64)
    change = np.flatnonzero(np.diff(np.concatenate([[0.0], held])) != 0.0)
    arrival = recv[change] + round(config.latency_ms * _NS_PER_MS)
    filled = rows[np.searchsorted(recv[rows], arrival, side="right") - 1]
    qty = np.diff(np.concatenate([[0.0], held[change]]))
    return qty, np.where(qty > 0, ask[filled], bid[filled]), arrival


def funding_backtest(stream: Stream, config: dict[str, Any]) -> dict[str, Any]:
    """Carry ledger of a one-unit delta-neutral position.

    PnL = the funding the held position collected (the strategy's ``carry_collected``: at each
    settlement, position x rate, per unit of notional) minus costs: every change of the
    position by one unit costs half of ``round_trip_cost_bps`` (opening or closing both legs).
    An open position at the end is not charged its exit. Equity is sampled at every funding
    stamp; each position change is two fills (perp and hedge leg).
    """
    strategy = build("funding_rate", config, stream.instances[0])
    cost_per_unit = float(config["round_trip_cost_bps"]) / 2.0 / 1e4
    position, costs, traded, trades, signals = 0.0, 0.0, 0.0, 0, 0
    curve = _Curve()
    for event in stream.events:
        signal = strategy.update(event)
        if signal is not None:
            signals += 1
            change = abs(signal.target_position - position)
            if change:
                costs += change * cost_per_unit
                traded += 2.0 * change  # both legs, one unit of notional each
                trades += 2
            position = signal.target_position
        collected = getattr(strategy, "carry_collected", 0.0)
        if isinstance(event, FundingRate):
            curve.add(event.ts_event, stream.capital + collected - costs)
    return make_result(
        stream,
        config,
        events=len(stream.events),
        signals=signals,
        trades=trades,
        curve=curve.arrays(),
        traded_notional=traded,
        final_position=position,
        fill_model=(
            "carry ledger: 1 unit of notional delta-neutral (short perp / long hedge while "
            "+1), PnL = funding collected at each settlement minus round_trip_cost_bps/2 per "
            "unit of position change (an open position is not charged its exit); capital 1 "
            "unit of notional; equity sampled per funding stamp"
        ),
        extra={"carry_collected": getattr(strategy, "carry_collected", 0.0), "costs": costs},
    )


def triangular_backtest(stream: Stream, config: dict[str, Any]) -> dict[str, Any]:
    """One cycle of one unit of notional per signal, at the quotes that triggered it.

    A signal to +1 (-1) executes the forward (reverse) cycle once: PnL = cycle product - 1 -
    3 x fee_bps (the product is already executable: asks paid, bids received). A target that
    stays at +1 on later quotes executes nothing more (no new signal). Each cycle is three
    fills of about one unit of notional each.
    """
    strategy = build("triangular", config, stream.instances[0])
    cost = 3.0 * float(config["fee_bps"]) / 1e4
    pnl, cycles, signals = 0.0, 0, 0
    curve = _Curve()
    for event in stream.events:
        signal = strategy.update(event)
        if signal is not None:
            signals += 1
            if signal.target_position:
                side = "forward_product" if signal.target_position > 0 else "reverse_product"
                pnl += signal.reason[side] - 1.0 - cost
                cycles += 1
        curve.add(event.ts_event, stream.capital + pnl)
    return make_result(
        stream,
        config,
        events=len(stream.events),
        signals=signals,
        trades=3 * cycles,
        curve=curve.arrays(),
        traded_notional=3.0 * cycles,
        final_position=0.0,
        fill_model=(
            "assumption: each signal to +1/-1 executes one forward/reverse cycle of 1 unit of "
            "notional at the very quotes that triggered it (no latency, full size available), "
            "PnL = cycle product - 1 - 3 x fee_bps; capital 1 unit; equity per quote stamp"
        ),
        extra={"cycles": cycles, "rejected_crossed": getattr(strategy, "rejected_crossed", 0)},
    )


def _per_second_curve(
    clock: np.ndarray,
    mark: np.ndarray,
    fill_clock: np.ndarray,
    fill_qty: np.ndarray,
    fill_cash: np.ndarray,
    capital: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Equity at the last event of each second: capital + cash + inventory x mark.

    ``clock`` and ``mark`` are per event (the mark carried forward); fills change cash and
    inventory from their own clock on.
    """
    if len(clock) == 0:
        raise DataError("no events to simulate")
    second = clock // _NS_PER_S
    last = np.flatnonzero(np.append(second[1:] != second[:-1], True))
    stamps = clock[last]
    done = np.searchsorted(fill_clock, stamps, side="right")
    cash = np.concatenate([[0.0], np.cumsum(fill_cash)])[done]
    inventory = np.concatenate([[0.0], np.cumsum(fill_qty)])[done]
    marks = np.nan_to_num(mark[last], nan=0.0)
    equity = capital + cash + np.where(inventory != 0.0, inventory * marks, 0.0)
    return stamps.astype(np.int64), equity.astype(np.float64)


def _frame(stream: Stream) -> pd.DataFrame:
    if stream.frame is None:
        raise DataError(f"{stream.type_name} needs its data frame, the stream has none")
    return stream.frame


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None
