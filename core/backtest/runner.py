"""Backtest one strategy type on a stream and report it in one standard result.

Every type runs through :class:`core.engine.engine.TradingEngine`, the code the live core runs,
at a paper venue (:mod:`core.engine.venue`) whose fill model is the type's execution style: a
bar type's signal at bar t's close fills at the symbol's bar t+1 open; a latency arbitrage's
taker order takes the lagger's book as it stands when the order arrives; a market maker's
quotes rest until prints fill them; a funding carry fills at the decision and collects funding
at every settlement; a currency triangle runs its cycle at the legs' quotes. The result has the
same keys for every type (:data:`RESULT_KEYS`), its metrics come from
:func:`core.engine.tracker.performance_metrics`, and ``fill_model`` says how fills were
modelled. :func:`engine_for` gives the engine a core must run to reproduce a backtest.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import msgspec
import numpy as np

from core.backtest.streams import Stream, stream_for
from core.engine.analyzers import FillAnalyzer
from core.engine.engine import PositionSizing, TradingEngine
from core.engine.execution import BarFillModel, TakerFillModel
from core.engine.quote_fills import QuoteFillConfig
from core.engine.tracker import performance_metrics
from core.engine.venue import CarryFillModel, CycleFillModel, Venue
from core.errors import ConfigError, DataError
from core.messages import BacktestResult
from core.ports import StrategyDeployment
from core.runtime.ingest import IngestionBoundary, Rejection
from core.strategies.base import Execution
from core.strategies.catalogue import strategy_type

NOTIONAL_PER_INSTANCE = 10_000.0

RESULT_KEYS = (
    "strategy", "dataset", "symbol", "bars", "signals", "trades", "pnl", "total_return",
    "sharpe", "max_drawdown", "final_position", "turnover", "fill_model",
)  # fmt: skip
TURNOVER_DEFINITION = (
    "turnover = traded notional (sum of |quantity x fill price| over all fills) / average "
    "capital (mean of the equity curve, capital + PnL)"
)


def resolve_config(
    type_name: str, params: Mapping[str, Any] | None, *, allow_short: bool = False
) -> dict[str, Any]:
    """Validate ``params`` against the type's config; return it with canonical field names.

    Raises
    ------
    ConfigError
        If a parameter is unknown or out of range, or ``allow_short`` is asked of a type
        without a short side.
    """
    cls = strategy_type(type_name)
    config: dict[str, Any] = dict(params or {})
    if allow_short:
        if "allow_short" not in cls.config_type.__struct_fields__:
            raise ConfigError(
                f"strategy {type_name} has no short side (--allow-short not supported)"
            )
        config["allow_short"] = True
    return cls.config_type.from_dict(config).to_dict()


def backtest(
    type_name: str,
    *,
    dataset: str | None = None,
    symbols: Sequence[str] | None = None,
    params: Mapping[str, Any] | None = None,
    fast: bool = False,
    fee_bps: float = 0.0,
    allow_short: bool = False,
    watch: Callable[[list[Any]], Iterable[Any]] | None = None,
) -> dict[str, Any]:
    """Backtest ``type_name`` on a shipped data set (its own by default).

    Parameters
    ----------
    type_name
        A catalogued strategy type.
    dataset, symbols, fast
        Passed to :func:`core.backtest.streams.stream_for`.
    params
        Config overrides (validated before any data is read).
    fee_bps
        Fee in bps of traded notional of bar fills (quote, funding and FX venues use the costs of
        the strategy's own config).
    allow_short
        Turn on the type's short side.

    Returns
    -------
    dict
        The standard result (:data:`RESULT_KEYS` first, then ``params``, ``capital``).
    """
    config = resolve_config(type_name, params, allow_short=allow_short)
    stream = stream_for(type_name, dataset, symbols, fast, params=config)
    return backtest_stream(stream, config, fee_bps=fee_bps, watch=watch)


def backtest_stream(
    stream: Stream,
    config: dict[str, Any],
    *,
    fee_bps: float = 0.0,
    watch: Callable[[list[Any]], Iterable[Any]] | None = None,
) -> dict[str, Any]:
    """Backtest an already built stream through the engine (see :func:`engine_backtest`)."""
    return engine_backtest(stream, config, fee_bps=fee_bps, watch=watch)


def engine_for(
    stream: Stream,
    config: dict[str, Any],
    *,
    fee_bps: float = 0.0,
    analyzer: FillAnalyzer | None = None,
) -> tuple[TradingEngine, float, str]:
    """The engine that backtests ``stream`` with one deployment of its type, its capital and
    the description of its fill model.

    The venue follows the type's execution style; fees and latency of the quote, funding and
    FX styles are the strategy's own cost parameters (``fee_bps`` prices bar fills).
    """
    cls = strategy_type(stream.type_name)
    execution = cls.spec.execution
    deployment = StrategyDeployment(
        name=stream.type_name,
        version="backtest",
        type_name=stream.type_name,
        config=config,
        symbols=stream.instances,
    )
    sizing = PositionSizing()
    capital = stream.capital
    if execution is Execution.NEXT_OPEN:
        # One instrument trades one unit (the CSV contract); a basket gets equal money per
        # instance, or the priciest ticker (BRK-A at $126k) would be the whole portfolio.
        basket = len(stream.instances) > 1
        if basket:
            capital = NOTIONAL_PER_INSTANCE * len(stream.instances)
            sizing = PositionSizing(notional=NOTIONAL_PER_INSTANCE)
        venue = Venue(bars=BarFillModel(fee_bps=fee_bps))
        described = (
            "engine: signal at bar t's close, fill at the symbol's bar t+1 open; "
            + (
                f"{NOTIONAL_PER_INSTANCE:,.0f} of notional per instance and +1 target "
                "(at the first leg's price; a pair's B leg is hedge_ratio times A's units)"
                if basket
                else "1 unit per +1 target (pairs: 1 unit of A, hedge_ratio units of B)"
            )
            + f", fee {fee_bps:g} bps of traded notional; equity marked at every close"
        )
    elif execution is Execution.MAKER:
        venue = Venue(maker=QuoteFillConfig())
        capital = float(config["max_inventory"]) * stream.capital
        described = (
            "engine, maker venue: resting quotes filled by trade prints (a print through the "
            "quote fills it whole, a print at the quote fills touch_fill_fraction 0.5 of its "
            "size), Binance maker fees; capital = max_inventory at the first mid; equity "
            "marked to the mid at every event stamp"
        )
    elif execution is Execution.TAKER:
        latency_ms, taker_fee = float(config["latency_ms"]), float(config["fee_bps"])
        venue = Venue(
            taker=TakerFillModel(latency_ns=round(latency_ms * 1e6), default_fee_bps=taker_fee)
        )
        described = (
            f"engine, taker venue: each order reaches the lagger {latency_ms:g} ms after the "
            "event that decided it and takes the book standing then (buys at the ask, sells "
            f"at the bid, up to the quoted size; the rest takes later quotes), taker fee "
            f"{taker_fee:g} bps; 1 unit; equity marked to the mids at every event stamp"
        )
    elif execution is Execution.CARRY:
        fill_fee = float(config["round_trip_cost_bps"]) / 4.0
        venue = Venue(carry=CarryFillModel(fee_bps=fill_fee))
        described = (
            "engine, carry venue: 1 unit of notional per leg (short perp / long hedge while "
            "+1), filled at the decision, each fill paying round_trip_cost_bps/4 "
            f"({fill_fee:g} bps); every settlement pays position x rate on the perpetual; "
            "capital 1 unit of notional; equity sampled at every funding stamp"
        )
    elif execution is Execution.CYCLE:
        cycle_fee = float(config["fee_bps"])
        venue = Venue(cycle=CycleFillModel(fee_bps=cycle_fee))
        described = (
            "engine, FX cycle venue: each signal to +1/-1 runs one forward/reverse cycle of 1 "
            "unit of notional at once at the three pairs' standing quotes (no latency, full "
            f"size available), each pair traded paying {cycle_fee:g} bps of its notional; "
            "capital 1 unit; equity per quote stamp"
        )
    else:  # pragma: no cover - every style is handled above
        raise ConfigError(f"no venue for execution style {execution}")
    engine = TradingEngine(
        [deployment],
        venue=venue,
        initial_capital=capital,
        sizing=sizing,
        keep_history=True,
        analyzer=analyzer,
    )
    return engine, capital, described


def engine_backtest(
    stream: Stream,
    config: dict[str, Any],
    *,
    fee_bps: float = 0.0,
    watch: Callable[[list[Any]], Iterable[Any]] | None = None,
) -> dict[str, Any]:
    """Run ``stream`` through the trading engine with one deployment of ``stream.type_name``.

    Raises
    ------
    StrategyError
        If the strategy raised on an event (the engine quarantined it): a backtest of a
        quarantined strategy would silently report a truncated run.
    DataError
        If the stream has no events.
    """
    events, rejected = admitted_events(stream)
    if not events:
        raise DataError(f"no events to backtest {stream.type_name} on")
    analyzer = FillAnalyzer()
    engine, capital, described = engine_for(stream, config, fee_bps=fee_bps, analyzer=analyzer)
    # ``watch`` lets a caller see the replay go by (a progress bar) without touching the events.
    summary = engine.run(watch(events) if watch is not None else events)
    if engine.applicator.errors:  # each names its model and symbol
        raise engine.applicator.errors[0]
    ts, equity = engine.tracker.equity_curve()
    fills = engine.all_fills
    traded = {fill.symbol for fill in fills}
    positions = {s: engine.portfolio.quantity(s) for s in sorted(traded)}
    execution = strategy_type(stream.type_name).spec.execution
    return make_result(
        stream,
        config,
        events=summary["events"],
        signals=summary["signals"],
        trades=summary["fills"],
        curve=(ts, equity),
        traded_notional=math.fsum(abs(f.quantity * f.price) for f in fills),
        final_position=_final_position(stream, config, positions, execution),
        capital=capital,
        fill_model=described,
        extra={"rejected_events": rejected, **_family_numbers(engine, execution, analyzer)},
    )


def admitted_events(stream: Stream) -> tuple[list[Any], dict[str, int]]:
    """The stream's events a core would admit, and the count of the others by reason.

    A backtest replays what the live core would run on: every event passes the core's own
    ingestion boundary (its checks on a decoded message: the loaders' events are typed
    already), so a crossed quote or an implausible price is refused in both, and counted
    here, never silently dropped.
    """
    boundary = IngestionBoundary()
    admitted: list[Any] = []
    rejected: Counter[str] = Counter()
    admit = boundary.admit_event
    for event in stream.events:
        result = admit(stream.dataset, event)
        if isinstance(result, Rejection):
            rejected[result.code.value] += 1
        else:
            admitted.append(result)
    return admitted, dict(sorted(rejected.items()))


def _family_numbers(
    engine: TradingEngine, execution: Execution, analyzer: FillAnalyzer
) -> dict[str, Any]:
    """What a style's trader reads besides the standard numbers, from the ledger and fills."""
    fees = math.fsum(f.fee for f in engine.all_fills)
    numbers = analyzer.report()
    if execution is Execution.MAKER:
        realized = math.fsum(p.realized_pnl for p in engine.portfolio.positions())
        return {
            "fees": fees,
            "realized_pnl": realized,
            "adverse_selection_bps": numbers["adverse_selection_bps"],
            "markout": numbers["markout"],
            "markouts": numbers["markouts"],
        }
    if execution is Execution.TAKER:
        return {"stale_fills": numbers["stale_fills"], "moved_fills": numbers["moved_fills"]}
    if execution is Execution.CARRY:
        # Legs are held at the notional price, so the PnL is the carry less the fees.
        pnl = engine.portfolio.equity - engine.tracker.initial_capital
        return {"carry_collected": pnl + fees, "costs": fees}
    if execution is Execution.CYCLE:
        cycles = len({fill.order_id for fill in engine.all_fills})
        # Bad quotes are the strategy's own count, kept in its state.
        states = engine.applicator.states().values()
        rejected = sum(int(state.get("rejected_crossed", 0)) for state in states)
        return {"cycles": cycles, "rejected_crossed": rejected}
    return {}


def _final_position(
    stream: Stream, config: dict[str, Any], positions: dict[str, float], execution: Execution
) -> float | dict[str, float]:
    """One number for a one-instrument run, else the position of every traded instrument.

    A maker's is its inventory, a latency arbitrage's its position at the lagger, a carry's
    its hedge leg (+1 while collecting), a cycle's nothing (a cycle leaves no currency held).
    """
    instance = stream.instances[0]
    if execution is Execution.CYCLE:
        return 0.0
    if execution is Execution.MAKER:
        return positions.get(instance, 0.0)
    if execution is Execution.TAKER:
        return positions.get(f"{instance.split(':', 1)[0]}:{config['lagger_venue']}", 0.0)
    if execution is Execution.CARRY:
        return positions.get(f"{instance}:{config['hedge_venue'] or 'spot'}", 0.0)
    if len(stream.instances) == 1 and "/" not in instance:
        return positions.get(instance, 0.0)
    return positions


def make_result(
    stream: Stream,
    config: dict[str, Any],
    *,
    events: int,
    signals: int,
    trades: int,
    curve: tuple[np.ndarray, np.ndarray],
    traded_notional: float,
    final_position: float | dict[str, float],
    fill_model: str,
    capital: float | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Assemble the standard result from an equity curve (``capital + PnL`` per sample).

    ``capital`` defaults to ``stream.capital``; ``extra`` adds family-specific numbers after
    the standard keys.
    """
    base = stream.capital if capital is None else capital
    ts, equity = curve
    metrics = performance_metrics(ts, equity, base)
    result = {
        "strategy": stream.type_name,
        "dataset": stream.dataset,
        "symbol": ",".join(stream.instances),
        "bars": int(events),
        "signals": int(signals),
        "trades": int(trades),
        "pnl": metrics["pnl"],
        "total_return": metrics["total_return"],
        "sharpe": metrics["sharpe"],
        "max_drawdown": metrics["max_drawdown"],
        "final_position": final_position,
        "turnover": turnover(traded_notional, equity, base),
        "fill_model": fill_model,
        "params": config,
        "capital": base,
        "rejected_rows": stream.rejected_rows,
        **dict(extra or {}),
    }
    # The contract readers decode with: a key or type the runner gets wrong fails here.
    msgspec.convert(result, BacktestResult)
    return result


def turnover(traded_notional: float, equity: np.ndarray, capital: float) -> float:
    """Traded notional over average capital (the mean of the equity curve).

    A curve whose mean is not positive (a run that lost more than its capital) has no
    meaningful average capital; the initial capital stands in for it.
    """
    average = float(np.mean(equity)) if len(equity) else capital
    if not average > 0.0:
        average = capital
    return traded_notional / average if average > 0.0 else 0.0
