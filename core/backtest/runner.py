"""Backtest one strategy type on a stream and report it in one standard result.

Types that consume bars (single bars, pair bars, news + bars, macro + bars) run through
:class:`core.engine.engine.TradingEngine`, the code the live core runs: a signal at bar t's close
becomes an order filled at the symbol's bar t+1 open, one unit per instance (a pair's legs from
:meth:`Strategy.legs`). Quote, funding and FX types run through their family simulators
(:mod:`core.backtest.simulators`). Either way the result has the same keys
(:data:`RESULT_KEYS`), its metrics come from :func:`core.engine.tracker.performance_metrics`, and
``fill_model`` says how fills were modelled.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from core.backtest.streams import Stream, stream_for
from core.engine.engine import PositionSizing, TradingEngine
from core.engine.execution import BarFillModel
from core.engine.tracker import performance_metrics
from core.errors import ConfigError, StrategyError
from core.ports import StrategyDeployment
from core.strategies.base import DataKind
from core.strategies.catalogue import strategy_type

NOTIONAL_PER_INSTANCE = 10_000.0

RESULT_KEYS = (
    "strategy", "dataset", "symbol", "bars", "signals", "trades", "pnl", "total_return",
    "sharpe", "max_drawdown", "final_position", "turnover", "fill_model",
)  # fmt: skip
ENGINE_KINDS = frozenset({DataKind.BARS, DataKind.PAIR_BARS, DataKind.NEWS, DataKind.MACRO})
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
        Passed to :func:`core.data.streams.stream_for`.
    params
        Config overrides (validated before any data is read).
    fee_bps
        Fee in bps of traded notional for engine-driven types (simulators use the costs of
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
    """Backtest an already built stream: the engine for bar kinds, else the family simulator."""
    kind = strategy_type(stream.type_name).spec.data_kind
    if kind in ENGINE_KINDS:
        return engine_backtest(stream, config, fee_bps=fee_bps, watch=watch)
    from core.backtest.simulators import simulate

    return simulate(stream, config)


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
    """
    deployment = StrategyDeployment(
        name=stream.type_name,
        version="backtest",
        type_name=stream.type_name,
        config=config,
        symbols=stream.instances,
    )
    # One instrument trades one unit (the CSV contract); a basket gets equal money per
    # instance, or the priciest ticker (BRK-A at $126k) would be the whole portfolio.
    basket = len(stream.instances) > 1
    capital = NOTIONAL_PER_INSTANCE * len(stream.instances) if basket else stream.capital
    engine = TradingEngine(
        [deployment],
        fill_model=BarFillModel(fee_bps=fee_bps),
        initial_capital=capital,
        sizing=PositionSizing(notional=NOTIONAL_PER_INSTANCE) if basket else PositionSizing(),
        keep_history=True,
    )
    # ``watch`` lets a caller see the replay go by (a progress bar) without touching the events.
    summary = engine.run(watch(stream.events) if watch is not None else stream.events)
    if summary["strategy_errors"]:
        raise StrategyError(summary["strategy_errors"][0])
    ts, equity = engine.tracker.equity_curve()
    traded = {fill.symbol for fill in engine.all_fills}
    positions = {s: engine.portfolio.quantity(s) for s in sorted(traded)}
    return make_result(
        stream,
        config,
        events=summary["events"],
        signals=summary["signals"],
        trades=summary["fills"],
        curve=(ts, equity),
        traded_notional=math.fsum(abs(f.quantity * f.price) for f in engine.all_fills),
        final_position=_final_position(stream, positions),
        capital=capital,
        fill_model=(
            "engine: signal at bar t's close, fill at the symbol's bar t+1 open; "
            + (
                f"{NOTIONAL_PER_INSTANCE:,.0f} of notional per instance and +1 target "
                "(at the first leg's price; a pair's B leg is hedge_ratio times A's units)"
                if basket
                else "1 unit per +1 target (pairs: 1 unit of A, hedge_ratio units of B)"
            )
            + f", fee {fee_bps:g} bps of traded notional; equity marked at every close"
        ),
    )


def _final_position(stream: Stream, positions: dict[str, float]) -> float | dict[str, float]:
    """One number for a one-instrument run, else the position of every traded instrument."""
    if len(stream.instances) == 1 and "/" not in stream.instances[0]:
        return positions.get(stream.instances[0], 0.0)
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
    return {
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


def turnover(traded_notional: float, equity: np.ndarray, capital: float) -> float:
    """Traded notional over average capital (the mean of the equity curve).

    A curve whose mean is not positive (a run that lost more than its capital) has no
    meaningful average capital; the initial capital stands in for it.
    """
    average = float(np.mean(equity)) if len(equity) else capital
    if not average > 0.0:
        average = capital
    return traded_notional / average if average > 0.0 else 0.0
