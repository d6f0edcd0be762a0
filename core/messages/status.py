"""The status a core publishes every tactical cycle (``<ns>:reports`` field ``status:<core>``).

Operators' scripts, the dashboard, the API, the metrics exporter and the adaptation flow all
read it. Fields a core has published from the start are required; fields added since have
defaults, so a status an older core left in Redis still reads.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from core.messages.base import Message
from core.risk import RiskLimits


class ActiveDeployment(Message, frozen=True, kw_only=True):
    """A model the core runs: its registered name, version and the alias it was loaded by."""

    name: str
    version: str
    alias: str


class Histogram(Message, frozen=True, kw_only=True):
    """Cumulative bucket counts of a timing, as Prometheus histograms take them."""

    bounds_s: list[float]
    counts: list[int]
    count: int
    sum_s: float


class LatencySummary(Message, frozen=True, kw_only=True):
    """Count and percentiles in microseconds (null while nothing was recorded)."""

    count: int
    p50_us: float | None
    p99_us: float | None
    p999_us: float | None
    max_us: float | None
    histogram: Histogram | None = None


class CycleSummary(Message, frozen=True, kw_only=True):
    """A tier's cycle durations against its budget; a cycle over budget is an overrun."""

    count: int
    p50_us: float | None
    p99_us: float | None
    p999_us: float | None
    max_us: float | None
    budget_ms: float
    overruns: int
    histogram: Histogram | None = None


class StrategyNumbers(Message, frozen=True, kw_only=True):
    """One strategy's book: PnL, activity, recent Sharpe and the weight the composer gives it.

    ``weight`` is the weight the core trades with, set by an operator or the adaptation flow
    through the control channel (the deployment's own weight until then); null only in the
    status of a core older than the field.
    """

    strategy: str
    pnl: float
    signals: int
    fills: int
    # null when not a finite number (JSON has no NaN)
    sharpe: float | None
    periods: int
    weight: float | None = None


class WriterStats(Message, frozen=True, kw_only=True):
    """The core's buffered Redis writer: connection, backlog, reconnects."""

    connected: bool
    buffered: int
    buffer_bound: int
    dropped: int
    duplicates: int = 0
    saturated: bool = False
    reconnects: int
    last_error: str


class VariantProposal(Message, frozen=True, kw_only=True):
    """A shadow variant proposed to replace the live config, with its evidence."""

    strategy: str
    variant: int
    config: dict[str, Any]
    live_config: dict[str, Any]
    edge_log_return: float
    log_return: float
    live_log_return: float
    periods: int
    weight: float


class OnlineReport(Message, frozen=True, kw_only=True):
    """The shadow variants of one live model (:class:`core.online.OnlineGenerator`)."""

    strategy: str
    type: str
    variants: list[dict[str, Any]]
    leader: int
    weights: list[float]
    log_returns: list[float]
    fills: list[int]
    counters: dict[str, int]
    proposal: VariantProposal | None
    strategy_errors: list[str]
    records: list[dict[str, Any]]


class PublishedRiskLimits(RiskLimits, frozen=True, kw_only=True, forbid_unknown_fields=False):
    """The risk limits as a core publishes them; a limit added by a newer core is ignored
    here, as any field a reader does not know (a configuration refuses unknown fields)."""


class CoreStatus(Message, frozen=True, kw_only=True):
    """What a running core says about itself (see the module docstring)."""

    core: str
    heartbeat_ns: int
    state: Literal["running", "stopped"] = "running"
    active_set: list[ActiveDeployment]
    vectorized: list[str] = msgspec.field(default_factory=list)
    fast_cycle: CycleSummary
    tactical_cycle: CycleSummary
    tick_to_signal: LatencySummary
    events_in: int
    signals_out: int
    orders: int = 0
    fills: int = 0
    read_errors: int = 0
    positions: dict[str, float]
    per_strategy: list[StrategyNumbers] = msgspec.field(default_factory=list)
    events_rejected: int = 0
    rejected_by_reason: dict[str, int] = msgspec.field(default_factory=dict)
    events_skipped: int = 0
    shard: str = "all"
    equity: float
    drawdown: float = 0.0
    risk_mode: str
    halt_reason: str = ""
    risk_limits: PublishedRiskLimits | None = None
    redis: WriterStats
    reloads: int
    reloads_refused: int = 0  # registry sets the core would not load; it kept its own
    online: OnlineReport | None = None
    last_control: str = ""
    last_error: str
    restarts: int | None = None

    def weights(self) -> dict[str, float]:
        """The weight the core trades each strategy with, by name."""
        return {row.strategy: row.weight for row in self.per_strategy if row.weight is not None}
