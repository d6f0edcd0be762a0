"""The ``backtest`` command: one strategy over one CSV of bars, through the trading engine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.data.loaders import iter_bars, read_bars_frame
from core.engine.engine import TradingEngine
from core.engine.execution import BarFillModel
from core.errors import ConfigError, DataError
from core.ports import StrategyDeployment
from core.strategies.catalogue import strategy_type


def parse_params(pairs: list[str]) -> dict[str, str]:
    """Turn ``["fast=10", "slow=30"]`` into a dict; a pair without ``=`` is a ConfigError."""
    params: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--param must look like name=value, was {pair!r}")
        params[key.strip()] = value.strip()
    return params


def backtest_csv(
    strategy: str,
    csv: Path,
    *,
    params: dict[str, Any],
    fee_bps: float = 0.0,
    allow_short: bool = False,
    skip_bad_rows: bool = False,
) -> dict[str, Any]:
    """Backtest ``strategy`` on one symbol's bars: signal at a close, fill at the next open.

    The position is one unit; ``pnl`` is in price units marked to the last close, net of fees;
    returns are on a capital of the first bar's open (the cost of that one unit).
    """
    cls = strategy_type(strategy)
    config: dict[str, Any] = dict(params)
    if allow_short:
        if "allow_short" not in cls.config_type.__struct_fields__:
            raise ConfigError(
                f"strategy {strategy} has no short side (--allow-short not supported)"
            )
        config["allow_short"] = True
    # Validate before reading data, so a bad flag fails fast; keep the canonical field names.
    config = cls.config_type.from_dict(config).to_dict()

    loaded = read_bars_frame(csv)
    if loaded.rejected and not skip_bad_rows:
        first = loaded.rejected[0]
        raise DataError(
            f"{csv.name}: {len(loaded.rejected)} bad row(s), first at line {first.line}: "
            f"{first.reason} (fix them or pass --skip-bad-rows)"
        )
    frame = loaded.frame
    if frame.empty:
        raise DataError(f"{csv.name}: no bars to backtest")
    symbol = csv.stem
    deployment = StrategyDeployment(
        name=strategy, version="local", type_name=strategy, config=config
    )
    engine = TradingEngine(
        [deployment],
        fill_model=BarFillModel(fee_bps=fee_bps),
        initial_capital=float(frame["open"].iloc[0]),
    )
    summary = engine.run(iter_bars(frame, symbol))
    return {
        "strategy": strategy,
        "symbol": symbol,
        "params": config,
        "fee_bps": fee_bps,
        "bars": summary["events"],
        "signals": summary["signals"],
        "trades": summary["fills"],
        "pnl": summary["pnl"],
        "total_return": summary["total_return"],
        "sharpe": summary["sharpe"],
        "max_drawdown": summary["max_drawdown"],
        "final_position": engine.portfolio.quantity(symbol),
        "rejected_rows": len(loaded.rejected),
    }
