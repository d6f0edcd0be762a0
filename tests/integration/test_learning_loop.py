"""The learning loop closes: what the running system learns becomes a governed change.

A real core shadows variants of its champion on a real replay; the ``adopt-shadow-variant``
flow reads the core's proposal from Redis, governs it (gate, evaluation against the champion
on the held-out window, registration, promotion on the margin) and the running core reloads
the new champion. The adaptation engine's parameters and the stacked model's weights go the
same governed ways.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from core.adapters.market_streams import FeedPublisher
from core.adapters.redis_store import RedisStore
from core.data.feeds import replay_events
from core.messages import AdaptationRecord, StackingContext, read_as
from core.runtime.service import CoreService, CoreSettings
from pipelines import governance
from pipelines.adaptation import (
    AdaptationEngine,
    Context,
    default_bounds,
    performance_from_status,
    plan_adaptation,
    weights_from_status,
)
from pipelines.proposals import (
    ADAPTATION_SOURCE,
    SHADOW_SOURCE,
    STACKING_EXPERIMENT,
    adopt_shadow_variant,
    propose_adapted_params,
    record_stacking,
    stacking_context,
)
from pipelines.stacking import StackingSettings, fit_stack
from pipelines.strategic import regime_document, shipped_index_bars
from registry import MlflowStore, MlflowStrategySource
from registry.strategy_registry import CHAMPION, StrategyRegistry
from strategy_engine.core_process import LocalStrategies, run_core
from tests.core_runs import run_core_beside, wait_until

pytestmark = pytest.mark.integration

FEED = "equities_daily_stocknet88"
SYMBOLS = ("AAPL", "KO", "XOM")
MODEL = "strategy.ma_crossover"


@pytest.fixture
def redis_env(redis_connection, monkeypatch):
    """Point the flows (which connect through ``REDIS_URL``) at the session's Redis."""
    monkeypatch.setenv("REDIS_URL", redis_connection.url)


def _champion(registry: StrategyRegistry, config: dict[str, Any]) -> str:
    """Make ``config`` the champion the governed way (no champion yet: it is promoted)."""
    outcome = governance.govern(
        governance.GovernSettings(strategy="ma_crossover", symbols=SYMBOLS),
        registry,
        proposal={"source": "operator", "config": config, "evidence": {}},
    )
    assert outcome["decision"]["promoted"], outcome["decision"]
    return str(outcome["challenger"]["version"])


def _shadowing_core(**overrides: Any) -> CoreSettings:
    return CoreSettings(
        feeds=(FEED,), tactical_cycle_s=0.2, registry_check_s=3600.0, shadow_of=MODEL,
        shadow_variants=8, **overrides,
    )  # fmt: skip


def _status(store: RedisStore) -> Any:
    return store.read_status("core-1")


def test_a_shadow_variant_reaches_champion_through_the_flow_and_the_running_core_reloads_it(
    prefect_harness, registry, redis_env, redis_connection, redis_namespace, tmp_path
):
    first = _champion(registry, {"fast_period": 10, "slow_period": 30})
    bars = replay_events(FEED, symbols=list(SYMBOLS))
    FeedPublisher(redis_connection.client, redis_namespace).publish(FEED, bars)
    store = RedisStore(redis_connection.client, redis_namespace)
    seen: dict[str, Any] = {}

    def drive(service: CoreService) -> None:
        def replayed() -> bool:
            status = _status(store)
            return status is not None and status.events_in == len(bars)

        # The whole replay read: the proposal stands on all of it.
        wait_until(replayed, "the core's read of the whole replay", timeout_s=90)
        seen["proposal"] = _status(store).online.proposal
        seen["outcome"] = adopt_shadow_variant(core="core-1", namespace=redis_namespace)
        version = seen["outcome"]["challenger"]["version"]
        wait_until(
            lambda: any(d.version == version for d in _status(store).active_set),
            "the core's reload of the promoted variant",
            timeout_s=60,
        )
        seen["after"] = _status(store)
        service.request_stop()

    run_core_beside(
        redis_connection,
        _shadowing_core(),
        redis_namespace,
        MlflowStrategySource(registry),
        drive,
        timeout_s=150,
    )

    proposal, outcome = seen["proposal"], seen["outcome"]
    assert proposal.live_config["slow_period"] == 30
    assert proposal.config != proposal.live_config and proposal.edge_log_return >= 0.05
    # The variant was the challenger itself (no parameter selection), measured against the
    # champion on the held-out window of the same data, and beat it by the margin.
    assert outcome["proposal"]["source"] == SHADOW_SOURCE
    assert outcome["proposal"]["evidence"]["variant"] == proposal.variant
    assert [c["config"] for c in outcome["candidates"]] == [outcome["challenger"]["config"]]
    assert outcome["challenger"]["config"] == {**proposal.live_config, **proposal.config}
    assert outcome["champion"]["version"] == first
    lead = outcome["challenger"]["test"]["objective"] - outcome["champion"]["test"]["objective"]
    assert outcome["decision"]["promoted"] and lead > governance.margin_for("ma_crossover", None)
    version = outcome["challenger"]["version"]
    assert registry.get_alias(MODEL, CHAMPION) == version
    assert registry.model_version(MODEL, version).tags["proposal_source"] == SHADOW_SOURCE
    # The decision is recorded in MLflow with the generator's evidence.
    path = registry.client.download_artifacts(outcome["decision_run"], "decision.json", tmp_path)
    recorded = json.loads(Path(path).read_text())
    assert recorded["proposal"]["evidence"]["edge_log_return"] == proposal.edge_log_return
    # The running core was told, reloaded and runs the variant.
    (active,) = seen["after"].active_set
    assert (active.name, active.version) == (MODEL, version)
    assert any(m.get("action") == "reload" for m in store.read_control_log())

    # The same proposal again is stale: it was measured against a config no longer live.
    again = adopt_shadow_variant(core="core-1", namespace=redis_namespace)
    assert again.get("skipped", "").startswith("the proposal was measured against")


def test_a_proposal_that_loses_on_the_held_out_window_is_recorded_and_not_promoted(
    prefect_harness, registry, redis_env, redis_connection, redis_namespace
):
    first = _champion(registry, {"fast_period": 20, "slow_period": 50})
    FeedPublisher(redis_connection.client, redis_namespace).publish(
        FEED, replay_events(FEED, symbols=list(SYMBOLS))
    )
    run_core(
        _shadowing_core(until_end=True),
        redis_connection,
        namespace=redis_namespace,
        source=MlflowStrategySource(registry),
    )
    status = RedisStore(redis_connection.client, redis_namespace).read_status("core-1")
    assert status is not None and status.online is not None and status.online.proposal

    outcome = adopt_shadow_variant(core="core-1", namespace=redis_namespace, notify=False)

    decision = outcome["decision"]
    assert not decision["promoted"] and "does not beat champion" in decision["reason"]
    assert registry.get_alias(MODEL, CHAMPION) == first
    assert registry.get_alias(MODEL, "challenger") == outcome["challenger"]["version"]
    assert outcome["decision_run"]


def test_adapted_parameters_become_a_challenger_and_are_not_proposed_twice(registry, redis_env):
    _champion(registry, {"fast_period": 20, "slow_period": 50})
    bounds = {
        "strategies": {
            MODEL: {"params": {"slow_period": {"min": 20, "max": 60, "base": 50, "turbulent": 30}}}
        }
    }
    # Mid-October 2008 the S&P 500 was turbulent: the adapted slow period is 30.
    regime = regime_document(shipped_index_bars(), date(2008, 10, 15))
    record = plan_adaptation({"regime": regime}, bounds, "core-1")
    assert record["params"] == {MODEL: {"slow_period": 30.0}}

    decisions = propose_adapted_params(record, None, registry)

    (decision,) = decisions
    assert decision["source"] == ADAPTATION_SOURCE and decision["version"]
    assert decision["config"]["slow_period"] == 30
    assert isinstance(decision["config"]["slow_period"], int)
    tags = registry.model_version(MODEL, decision["version"]).tags
    assert tags["proposal_source"] == ADAPTATION_SOURCE
    assert decision["promoted"] == (registry.get_alias(MODEL, CHAMPION) == decision["version"])
    assert decision["decision_run"]
    # The record keeps what became of it (its contract holds it), and the next run evaluates
    # it again neither when it was promoted (it is the champion) nor when it was refused.
    kept = read_as(AdaptationRecord, record | {"proposals": decisions}, "the record")
    assert propose_adapted_params(record, kept.to_dict(), registry) == []


STACKED = ("ma_crossover", "breakout", "momentum", "mean_reversion")


def test_the_stacking_weights_are_recorded_and_become_the_adaptations_base_weights(
    mlflow_dir, redis_env, redis_connection, redis_store, redis_namespace
):
    fitted = fit_stack(StackingSettings(strategies=STACKED, symbols=SYMBOLS))

    context = record_stacking(fitted, redis_namespace)

    stored = redis_store.read_context("stacking", StackingContext)
    assert stored is not None and stored.to_dict() == context
    assert sum(stored.weights.values()) == pytest.approx(1.0)
    assert sum(stored.base_weights.values()) == pytest.approx(len(STACKED))
    store = MlflowStore()
    run = store.client.get_run(stored.run_id)
    assert run.info.experiment_id == store.experiment_id(STACKING_EXPERIMENT)
    assert run.data.metrics["hit_rate"] == pytest.approx(fitted["hit_rate"])

    # A real core runs the four strategies; the adaptation plans from its status.
    FeedPublisher(redis_connection.client, redis_namespace).publish(
        FEED, replay_events(FEED, symbols=list(SYMBOLS))
    )
    run_core(
        CoreSettings(feeds=(FEED,), until_end=True, tactical_cycle_s=0.2),
        redis_connection,
        namespace=redis_namespace,
        source=LocalStrategies(STACKED),
    )
    status = redis_store.read_status("core-1")
    active = [d.name for d in status.active_set]
    useful = stacking_context(
        fitted | {"hit_rate": 0.6, "base_rate": 0.5, "information_coefficient": 0.1}, "r1"
    )
    useless = stacking_context(fitted | {"hit_rate": 0.4, "base_rate": 0.5}, "r2")
    assert useful.useful and not useless.useful

    with_weights = plan_adaptation({"status": status, "stacking": useful}, None, "core-1")
    without = plan_adaptation({"status": status}, None, "core-1")
    ignored = plan_adaptation({"status": status, "stacking": useless}, None, "core-1")

    assert with_weights["base_weights_from"] == "stacking run r1"
    expected = AdaptationEngine(default_bounds(active, useful.base_weights)).adapt(
        weights_from_status(status, None),
        Context.from_documents(None, None, None),
        performance_from_status(status),
        {},
    )
    assert with_weights["changes"] == [c.to_dict() for c in expected]
    assert with_weights["weights"] != without["weights"]
    assert (ignored["weights"], ignored["changes"]) == (without["weights"], without["changes"])
    assert "base_weights_from" not in ignored


def test_default_bounds_take_base_weights_within_the_weight_range():
    bounds = default_bounds(
        ["strategy.breakout", "strategy.momentum"],
        {"strategy.breakout": 3.5, "strategy.momentum": 0.4, "strategy.unknown": 1.5},
    )

    assert bounds.strategies["strategy.breakout"].base_weight == 2.0  # clamped to max_weight
    assert bounds.strategies["strategy.momentum"].base_weight == 0.4
    assert "strategy.unknown" not in bounds.strategies
