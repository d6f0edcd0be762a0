"""Backtests of every strategy type on the shipped data, reported in one standard result."""

from core.backtest.runner import (
    RESULT_KEYS,
    TURNOVER_DEFINITION,
    backtest,
    backtest_stream,
    engine_backtest,
    resolve_config,
)

__all__ = [
    "RESULT_KEYS",
    "TURNOVER_DEFINITION",
    "backtest",
    "backtest_stream",
    "engine_backtest",
    "resolve_config",
]
