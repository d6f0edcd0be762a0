"""The result of one backtest (:func:`core.backtest.runner.backtest`), as the command line
prints it with ``--json`` and the API and reports read it."""

from __future__ import annotations

from typing import Any

from core.messages.base import Message


class BacktestResult(
    Message, frozen=True, kw_only=True, omit_defaults=True, forbid_unknown_fields=True
):
    """The standard keys (:data:`core.backtest.runner.RESULT_KEYS`), then ``params``,
    ``capital``, ``rejected_rows`` and ``rejected_events``, then the numbers only some families
    report.

    ``final_position`` is one number for a one-instrument run, else the position of every
    traded instrument. Unknown keys are refused: a key the runner adds must be added here.
    """

    strategy: str
    dataset: str
    symbol: str
    bars: int
    signals: int
    trades: int
    pnl: float
    total_return: float
    sharpe: float
    max_drawdown: float
    final_position: float | dict[str, float]
    turnover: float
    fill_model: str
    params: dict[str, Any]
    capital: float
    rejected_rows: int
    # events the core's ingestion boundary refuses, by reason code (the backtest screens its
    # events as the core does)
    rejected_events: dict[str, int]
    # market making (from the fill analyzer: None where no fill could be measured)
    fees: float | None = None
    realized_pnl: float | None = None
    adverse_selection_bps: float | None = None
    markout: float | None = None
    markouts: int | None = None
    # latency arbitrage
    stale_fills: int | None = None
    moved_fills: int | None = None
    # funding-rate carry
    carry_collected: float | None = None
    costs: float | None = None
    # triangular arbitrage
    cycles: int | None = None
    rejected_crossed: int | None = None
