"""The API's typed bodies: every answer and every request is one of these (the OpenAPI
document's schemas)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

MAX_EVENTS_PER_POST = 1000
MAX_WEIGHTS = 1000


class Problem(BaseModel):
    """An RFC 9457 problem document; ``code`` is stable (clients branch on it)."""

    type: str
    title: str
    status: int
    detail: str
    code: str


class Health(BaseModel):
    status: Literal["ok"]
    version: str


class Ready(BaseModel):
    ready: bool
    redis: str


class StrategyType(BaseModel):
    name: str
    family: str
    tier: str
    data_kind: str
    summary: str
    dataset: str
    parameters: dict[str, Any] = Field(description="the parameters' JSON Schema")
    defaults: dict[str, Any]


class RegisteredVersion(BaseModel):
    version: str
    run_id: str | None
    status: str
    created: str
    aliases: list[str]
    tags: dict[str, str] = Field(
        description="lineage and validation: data hash, validation run, code version, ..."
    )


class RegisteredStrategy(BaseModel):
    name: str
    aliases: dict[str, str]
    versions: list[RegisteredVersion]


class CoreStatus(BaseModel):
    core: str
    heartbeat_ns: int | None
    heartbeat_age_s: float | None
    state: str | None
    active_set: list[dict[str, Any]]
    status: dict[str, Any] = Field(description="the status the core published, as it is")


class Lineage(BaseModel):
    model_name: str = ""
    model_version: str = ""
    validation_run: str = ""


class SignalItem(BaseModel):
    id: str = Field(description="the Redis stream id (the cursor)")
    strategy: str
    symbol: str
    ts_event: int
    target_position: float
    strength: float
    reason: dict[str, float]
    lineage: Lineage
    bid_price: float | None
    ask_price: float | None
    quote_size: float


class OrderItem(BaseModel):
    id: str
    order_id: str
    symbol: str
    side: str
    quantity: float
    ts_event: int
    strategy: str
    limit_price: float | None


class FillItem(BaseModel):
    id: str
    fill_id: str
    order_id: str
    symbol: str
    side: str
    quantity: float
    price: float
    fee: float
    ts_event: int
    strategy: str


class SignalPage(BaseModel):
    items: list[SignalItem]
    next_cursor: str | None = Field(description="pass as ?cursor= for the next page; null: end")


class OrderPage(BaseModel):
    items: list[OrderItem]
    next_cursor: str | None


class FillPage(BaseModel):
    items: list[FillItem]
    next_cursor: str | None


class PositionItem(BaseModel):
    symbol: str
    quantity: float
    avg_price: float
    realized_pnl: float
    ts_event: int


class Positions(BaseModel):
    core: str
    positions: list[PositionItem]


class DeadLetter(BaseModel):
    id: str
    source: str
    code: str
    reason: str
    size: int
    ts: int


class DeadLetters(BaseModel):
    by_code: dict[str, int] = Field(description="every dead letter ever counted, by code")
    latest: list[DeadLetter] = Field(description="the newest entries, newest first")


class Contexts(BaseModel):
    contexts: dict[str, dict[str, Any]]


class RiskState(BaseModel):
    core: str
    risk_mode: str | None
    halt_reason: str | None
    drawdown: float | None
    equity: float | None
    risk_limits: dict[str, Any]
    heartbeat_ns: int | None


class Risk(BaseModel):
    cores: list[RiskState]


# --- act ---------------------------------------------------------------------------------------


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class HaltRequest(Strict):
    flatten: bool = False
    reason: str = Field(default="operator halt", max_length=200)


class EmptyRequest(Strict):
    pass


class WeightsRequest(Strict):
    weights: dict[str, float] = Field(min_length=1, max_length=MAX_WEIGHTS)


class ReloadRequest(Strict):
    model: str = Field(default="", max_length=200)
    version: str = Field(default="", max_length=64)


class ControlSent(BaseModel):
    action: str
    namespace: str
    cores_received: int = Field(description="how many cores were subscribed when it was sent")
    sender: str = Field(description="the signed sender, as the cores' audit records it")


# --- ingest ------------------------------------------------------------------------------------


class IngestRequest(BaseModel):
    events: list[Any] = Field(
        max_length=MAX_EVENTS_PER_POST,
        description='each a codec envelope: {"v": 1, "kind": "bar", "data": {...}} '
        "(kinds bar, quote, trade, funding, news, macro)",
    )


class IngestItem(BaseModel):
    index: int
    accepted: bool
    id: str | None = Field(default=None, description="the stream id it was written under")
    code: str | None = Field(default=None, description="the boundary's RejectCode if refused")
    reason: str | None = None


class IngestResult(BaseModel):
    feed: str
    stream: str
    accepted: int
    rejected: int
    items: list[IngestItem]


class PromoteRequest(Strict):
    version: str = Field(min_length=1, max_length=20, pattern=r"^[0-9]{1,20}$")


class RollbackRequest(Strict):
    reason: str = Field(default="", max_length=200)


class RegistryChange(BaseModel):
    name: str
    champion_before: str | None
    champion_after: str | None
    previous_before: str | None
    previous_after: str | None
    reload_sent_to: int = Field(description="cores that heard the reload (0 if nothing moved)")
    caller: str


class DeploymentItem(BaseModel):
    id: str
    name: str
    flow: str
    parameters: dict[str, Any] = Field(description="the deployment's default parameters")
    parameter_schema: dict[str, Any] | None = Field(
        description="the parameters' JSON Schema, when Prefect has one"
    )


class Deployments(BaseModel):
    deployments: list[DeploymentItem]


class RunRequest(Strict):
    parameters: dict[str, Any] = Field(
        default_factory=dict,
        description="the flow's parameters (JSON object, at most 64 KiB and 16 levels deep)",
    )


class FlowRun(BaseModel):
    id: str
    name: str
    deployment_id: str | None
    state_type: str | None = Field(description="Prefect's state type: SCHEDULED ... COMPLETED")
    state_name: str | None
    start_time: str | None
    end_time: str | None
    parameters: dict[str, Any]


class DashboardState(BaseModel):
    """What the dashboard page shows of one core (``DashboardReader.state()``).

    The top level is fixed; the records inside (``status``, rows of the ledger, context) are
    the core's own JSON as it publishes them, so they are free-form objects here: their fields
    follow the core's status and the ledger's messages, not this document.
    """

    namespace: str
    core: str
    now_ns: int
    status: dict[str, Any] | None = Field(
        description="the core's last status (with heartbeat_age_s); null if it never published"
    )
    active_set: list[dict[str, Any]]
    per_strategy: list[dict[str, Any]]
    streams: dict[str, int] = Field(description="lengths of signals, orders, fills, deadletter")
    positions: list[dict[str, Any]]
    targets: list[dict[str, Any]]
    signals: list[dict[str, Any]]
    fills: list[dict[str, Any]]
    dead_letters: list[dict[str, Any]]
    rejected_by_reason: dict[str, int]
    context: dict[str, dict[str, Any]]
    undecodable: int = Field(description="records this API process could not decode so far")
