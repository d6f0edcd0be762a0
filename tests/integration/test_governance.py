"""One lifecycle for every type, in a real MLflow store: gate, challenger, evaluation on the
engine, registration with evidence, promotion on the margin."""

from __future__ import annotations

import pytest

from core.strategies.catalogue import strategy_types
from pipelines.governance import GovernSettings, govern
from pipelines.learning import CHALLENGER
from registry import MlflowStrategySource, StrategyRegistry
from registry.strategy_registry import CHAMPION, model_name

pytestmark = pytest.mark.integration
TYPES = sorted(cls.spec.name for cls in strategy_types())


@pytest.mark.parametrize("type_name", TYPES)
def test_every_type_is_gated_evaluated_registered_and_promoted_on_its_data_set(
    registry: StrategyRegistry, type_name: str
):
    told: list[tuple[str, str]] = []

    outcome = govern(
        GovernSettings(strategy=type_name, fast=True, max_variants=3),
        registry,
        notify=lambda model, version: told.append((model, version)),
    )

    name = model_name(type_name)
    assert outcome["gate"]["success"], outcome["gate"]
    challenger = outcome["challenger"]
    assert challenger["test"]["periods"] > 0
    assert challenger["test"]["objective"] is not None
    assert outcome["decision"]["promoted"] and outcome["champion"] is None
    assert registry.get_alias(name, CHAMPION) == challenger["version"]
    assert registry.get_alias(name, CHALLENGER) == challenger["version"]
    assert told == [(name, challenger["version"])]
    # What the core loads is the version registered, with the instruments it was tested on.
    deployment = MlflowStrategySource(registry).load_version(name, challenger["version"])
    assert deployment.config == challenger["config"]
    assert deployment.symbols


def test_a_challenger_that_does_not_beat_the_champion_by_the_margin_is_kept_out(
    registry: StrategyRegistry,
):
    settings = GovernSettings(strategy="funding_rate", fast=True, max_variants=3)
    first = govern(settings, registry)

    # The same data, and a margin no variant can clear: the champion stays, the refusal says why.
    second = govern(settings.replace(margin=10.0), registry)

    name = model_name("funding_rate")
    assert first["decision"]["promoted"]
    assert not second["decision"]["promoted"]
    assert "does not beat champion" in second["decision"]["reason"]
    assert second["champion"]["version"] == first["challenger"]["version"]
    assert registry.get_alias(name, CHAMPION) == first["challenger"]["version"]
    assert registry.get_alias(name, CHALLENGER) == second["challenger"]["version"]
    # Both were measured by the same engine on the same held-out window.
    assert second["champion"]["test"]["periods"] == second["challenger"]["test"]["periods"]


def test_the_fx_set_passes_only_with_its_documented_crossed_quotes(registry: StrategyRegistry):
    strict = govern(
        GovernSettings(strategy="triangular", fast=True, tolerate={"bid_price <= ask_price": 0}),
        registry,
    )

    assert not strict["gate"]["success"]
    assert strict["challenger"] is None and not strict["decision"]["promoted"]
    failed = {f["expectation"]: f["unexpected_count"] for f in strict["gate"]["failed"]}
    assert failed["bid_price <= ask_price"] > 0
    assert strict["gate"]["run_id"]  # the failure is on record in MLflow
    assert registry.get_alias(model_name("triangular"), CHAMPION) is None
