"""Backtest and live are the same code: for every catalogued type, the long-running core replaying
the type's data set through Redis writes exactly the signals and fills of its backtest.

The backtest side is the engine :func:`core.backtest.runner.backtest` runs (``engine_for``), on
the events of the stream it runs on (``stream_for(..., fast=True)``) that the core's ingestion
boundary admits (``admitted_events``: the backtest screens them as the core does). The core gets
all the stream's events as a feed, the same deployment, and a venue and sizing set to the
backtest's (the core's own defaults are a live desk's: fees per venue, $10,000 per +1 target,
risk limits on).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from core.adapters.market_streams import FeedPublisher
from core.adapters.redis_server import RedisConnection
from core.adapters.redis_store import RedisStore
from core.backtest.runner import (
    NOTIONAL_PER_INSTANCE,
    admitted_events,
    engine_for,
    resolve_config,
)
from core.backtest.streams import stream_for
from core.ports import StrategyDeployment
from core.risk import RiskLimits
from core.runtime.service import CoreSettings
from core.strategies.base import Execution
from core.strategies.catalogue import strategy_type, strategy_types
from strategy_engine.core_process import run_core

pytestmark = pytest.mark.integration
FEED = "one-engine"
TYPES = sorted(cls.spec.name for cls in strategy_types())


@dataclass(frozen=True)
class _Deployed:
    """The active set of one deployment, as a registry would hand it to the core."""

    deployment: StrategyDeployment

    def load_active_set(self, alias: str = "champion") -> list[StrategyDeployment]:
        return [self.deployment]


def _core_settings(type_name: str, config: dict[str, Any], instances: int) -> CoreSettings:
    """A core whose venue and sizing are the backtest's for this type."""
    execution = strategy_type(type_name).spec.execution
    venue: dict[str, Any] = {"fee_bps": 0.0}
    if execution is Execution.TAKER:
        fee = float(config["fee_bps"])
        venue.update(taker_latency_ms=float(config["latency_ms"]),
                     taker_fee_bps={"spot": fee, "usdm": fee})  # fmt: skip
    elif execution is Execution.CARRY:
        venue["carry_fee_bps"] = float(config["round_trip_cost_bps"]) / 4.0
    elif execution is Execution.CYCLE:
        venue["cycle_fee_bps"] = float(config["fee_bps"])
    basket = execution is Execution.NEXT_OPEN and instances > 1
    return CoreSettings(
        feeds=(FEED,),
        until_end=True,
        tactical_cycle_s=0.2,
        units=0.0 if basket else 1.0,
        notional=NOTIONAL_PER_INSTANCE,
        risk=RiskLimits(),  # the backtest runs without limits: so must its reproduction
        **venue,
    )


@pytest.mark.parametrize("type_name", TYPES)
def test_a_core_replay_writes_the_backtests_signals_and_fills(
    redis_connection: RedisConnection, redis_namespace: str, type_name: str
):
    config = resolve_config(type_name, None)
    stream = stream_for(type_name, None, None, True, params=config)
    events, _ = admitted_events(stream)  # what the core's ingestion boundary lets through
    backtest, _, _ = engine_for(stream, config)
    backtest.run(events)
    deployment = backtest.applicator.deployments[0]
    FeedPublisher(redis_connection.client, redis_namespace).publish(FEED, stream.events)

    summary = run_core(
        _core_settings(type_name, config, len(stream.instances)),
        redis_connection,
        namespace=redis_namespace,
        source=_Deployed(deployment),
    )

    store = RedisStore(redis_connection.client, redis_namespace)
    assert summary["events_in"] == len(events)
    assert backtest.all_signals and backtest.all_fills, "every type trades on its data set"
    assert store.read_signals() == backtest.all_signals
    assert store.read_fills() == backtest.all_fills
