"""What the running system learns becomes a governed change: the learning loop closes.

Three parts of the platform learn while it runs, and none of them changes what trades by
itself:

- the core's **online generator** shadows variants of a live bar strategy and proposes the one
  whose shadow book leads the live config by its margin (``online.proposal`` in the core's
  status);
- the **adaptation engine** moves bounded strategy parameters with the strategic context
  (``params`` of the ``adaptation`` context);
- the **stacked model** of the ML composer weighs the rule strategies' signals.

A proposed *config* (the first two) goes through the lifecycle of every type
(:func:`pipelines.governance.govern`) as the challenger: the gate on the strategy's data,
challenger and champion evaluated on the same held-out window by the same engine,
registration with lineage (the version is tagged with the proposal's source, the decision run
records the proposal and its evidence), promotion only on the margin with the registry
checking the evidence, and the cores told to reload. *Weights* are not configs: the stacking
weights are recorded in MLflow (experiment ``stacking``) and in the Redis context
``stacking``, and become the adaptation engine's base weights, so the one path that moves a
core's weights (the adaptation, bounded by the core's own limits) moves them around the
stacked model's view instead of undoing it.
"""

from __future__ import annotations

import logging
import math
import tempfile
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import flow

from core import codec
from core.errors import ConfigError
from core.messages import (
    CONTEXT_SCHEMA_VERSION,
    CoreStatus,
    ProposalDecision,
    RetrainOutcome,
    StackingContext,
    read_as,
)
from core.strategies.catalogue import strategy_type
from pipelines import governance, learning
from registry.strategy_registry import CHAMPION, MODEL_PREFIX, StrategyRegistry

log = logging.getLogger(__name__)

SHADOW_SOURCE = "online_generator"
ADAPTATION_SOURCE = "adaptation"
STACKING_EXPERIMENT = "stacking"
# What of the generator's proposal is kept as the challenger's evidence.
SHADOW_EVIDENCE = (
    "core",
    "variant",
    "edge_log_return",
    "log_return",
    "live_log_return",
    "periods",
    "weight",
    "live_config",
)

Notify = Callable[[str, str], object]


# ---------------------------------------------------------------------------------------------
# One proposal through the lifecycle
# ---------------------------------------------------------------------------------------------


def govern_proposal(
    model: str,
    config: Mapping[str, Any],
    *,
    source: str,
    evidence: Mapping[str, Any],
    registry: StrategyRegistry,
    symbols: tuple[str, ...] | None = None,
    dataset: str | None = None,
    fast: bool = False,
    margin: float | None = None,
    notify: Notify | None = None,
) -> dict[str, Any]:
    """Run ``config`` of registered model ``model`` through the governed lifecycle as its
    challenger; return the retrain outcome (:class:`core.messages.RetrainOutcome`) with the
    proposal in it.

    ``symbols`` default to the champion's instruments, so the challenger is measured where
    the champion trades.
    """
    strategy = model.removeprefix(MODEL_PREFIX)
    chosen = strategy_type(strategy).config_type.from_dict(dict(config)).to_dict()
    settings = governance.GovernSettings(
        strategy=strategy,
        dataset=dataset,
        symbols=symbols if symbols is not None else champion_symbols(registry, model),
        fast=fast,
        margin=margin,
    )
    proposal = {"source": source, "config": chosen, "evidence": dict(evidence)}
    outcome = governance.govern(settings, registry, notify=notify, proposal=proposal)
    return read_as(RetrainOutcome, outcome, "the proposal's outcome").to_dict()


def champion_symbols(registry: StrategyRegistry, model: str) -> tuple[str, ...]:
    """The instruments the champion of ``model`` trades (empty: every one of its data)."""
    from registry import MlflowStrategySource

    if registry.get_alias(model, CHAMPION) is None:
        return ()
    return tuple(MlflowStrategySource(registry).load_version(model, CHAMPION).symbols)


def decision_of(model: str, source: str, outcome: Mapping[str, Any]) -> ProposalDecision:
    """The short record of what became of a proposal (kept in the ``adaptation`` context)."""
    challenger = outcome.get("challenger") or {}
    decision = outcome["decision"]
    return ProposalDecision(
        strategy=model,
        source=source,
        config=dict(challenger.get("config") or (outcome.get("proposal") or {}).get("config", {})),
        version=challenger.get("version"),
        promoted=bool(decision["promoted"]),
        reason=str(decision["reason"]),
        decision_run=outcome.get("decision_run"),
    )


# ---------------------------------------------------------------------------------------------
# The online generator's proposal
# ---------------------------------------------------------------------------------------------


def shadow_proposal(
    status: CoreStatus | None, registry: StrategyRegistry
) -> tuple[dict[str, Any] | None, str]:
    """The online generator's current proposal in ``status`` if it still applies, and why not.

    A proposal applies only while the config it was measured against is the champion's: a
    generator built around an older champion proposes a change to a config no longer live.
    """
    if status is None:
        return None, "the core has published no status"
    online = status.online
    if online is None:
        return None, f"core {status.core} runs no online generator (--shadow-of)"
    if online.proposal is None:
        return None, (
            f"no variant of {online.strategy} leads its live config by the generator's margin "
            f"({online.counters.get('periods', 0)} periods seen)"
        )
    proposal = online.proposal
    _, champion = learning.champion_config(registry, online.type)
    config_type = strategy_type(online.type).config_type
    live = config_type.from_dict(dict(proposal.live_config)).to_dict()
    if champion is None or config_type.from_dict(champion).to_dict() != live:
        return None, (
            f"the proposal was measured against {live}, the champion of {proposal.strategy} "
            f"is now {champion}"
        )
    return proposal.to_dict() | {"type": online.type, "core": status.core}, ""


def adopt_shadow_variant_once(
    status: CoreStatus | None,
    registry: StrategyRegistry,
    *,
    dataset: str | None = None,
    symbols: tuple[str, ...] | None = None,
    fast: bool = False,
    margin: float | None = None,
    notify: Notify | None = None,
) -> dict[str, Any]:
    """Govern the core's shadow proposal (see :func:`shadow_proposal`); the outcome, or
    ``{"skipped": reason}`` when there is nothing to govern."""
    proposal, why = shadow_proposal(status, registry)
    if proposal is None:
        log.info(why, extra={"event": "shadow_proposal_skipped", "reason": why})
        return {"skipped": why}
    evidence = {key: proposal[key] for key in SHADOW_EVIDENCE}
    outcome = govern_proposal(
        proposal["strategy"],
        proposal["config"],
        source=SHADOW_SOURCE,
        evidence=evidence,
        registry=registry,
        symbols=symbols,
        dataset=dataset,
        fast=fast,
        margin=margin,
        notify=notify,
    )
    decision = outcome["decision"]
    log.info(
        f"shadow variant {proposal['variant']} of {proposal['strategy']}: "
        f"{'promoted' if decision['promoted'] else 'kept the champion'}: {decision['reason']}",
        extra={"event": "shadow_proposal_governed", "model": proposal["strategy"],
               "promoted": decision["promoted"], "reason": decision["reason"][:1000],
               "version": (outcome.get("challenger") or {}).get("version")},
    )  # fmt: skip
    return outcome


@flow(name="adopt-shadow-variant", log_prints=False)
def adopt_shadow_variant(
    core: str = "core-1",
    namespace: str | None = None,
    dataset: str | None = None,
    symbols: list[str] | None = None,
    fast: bool = False,
    margin: float | None = None,
    notify: bool = True,
) -> dict[str, Any]:
    """Read ``status:<core>`` from Redis and govern its online generator's proposal: the
    variant becomes a registered challenger, is evaluated against the champion on the held-out
    window and promoted on the margin (the cores are then told to reload)."""
    from core.adapters.redis_server import connect
    from core.adapters.redis_store import RedisStore
    from pipelines.announce import notify_core
    from pipelines.strategic import namespace_or_default

    space = namespace_or_default(namespace)
    with connect() as connection:
        status = RedisStore(connection.client, space).read_status(core)

    def tell_cores(model: str, version: str) -> int:
        return notify_core(model, version, space)

    return adopt_shadow_variant_once(
        status,
        StrategyRegistry(),
        dataset=dataset,
        symbols=tuple(symbols) if symbols else None,
        fast=fast,
        margin=margin,
        notify=tell_cores if notify else None,
    )


# ---------------------------------------------------------------------------------------------
# The adaptation engine's parameters
# ---------------------------------------------------------------------------------------------


def adapted_config(champion: Mapping[str, Any], params: Mapping[str, float]) -> dict[str, Any]:
    """``champion`` with the adapted ``params``; an integer parameter stays an integer.

    Raises
    ------
    ConfigError
        If a parameter is not one of the config's numeric fields.
    """
    config = dict(champion)
    for name, value in params.items():
        current = config.get(name)
        if isinstance(current, bool) or not isinstance(current, int | float):
            raise ConfigError(f"adapted parameter {name!r} is not a numeric field of the config")
        config[name] = round(value) if isinstance(current, int) else float(value)
    return config


def propose_adapted_params(
    record: Mapping[str, Any],
    previous: Mapping[str, Any] | None,
    registry: StrategyRegistry,
    *,
    notify: Notify | None = None,
    fast: bool = False,
) -> list[dict[str, Any]]:
    """Govern each strategy's adapted parameters as a challenger; the decisions, as
    :class:`core.messages.ProposalDecision` dicts.

    A strategy is proposed when its adapted config differs from its champion's and was not
    already decided by the previous run (an adaptation runs every minute; a refused config is
    not evaluated again until the parameters move).
    """
    decided = {
        (d["strategy"], codec.dumps(d["config"])) for d in ((previous or {}).get("proposals") or [])
    }
    changes = [c for c in record.get("changes", []) if str(c["what"]).startswith("param:")]
    decisions = []
    for model, params in sorted((record.get("params") or {}).items()):
        if not params:
            continue
        strategy = model.removeprefix(MODEL_PREFIX)
        try:
            _, champion = learning.champion_config(registry, strategy)
        except ConfigError:
            champion = None
        if champion is None:
            continue  # nothing registered runs it: there is no version to change
        try:
            config = (
                strategy_type(strategy)
                .config_type.from_dict(adapted_config(champion, params))
                .to_dict()
            )
        except ConfigError as exc:
            decisions.append(ProposalDecision(
                strategy=model, source=ADAPTATION_SOURCE, config=dict(params), promoted=False,
                reason=f"adapted parameters do not make a valid config: {exc}", skipped=True,
            ).to_dict())  # fmt: skip
            continue
        if config == champion or (model, codec.dumps(config)) in decided:
            continue
        evidence = {
            "context": record.get("context"),
            "changes": [c for c in changes if c["strategy"] == model],
            "adaptation_computed_at": record.get("computed_at"),
        }
        outcome = govern_proposal(
            model, config, source=ADAPTATION_SOURCE, evidence=evidence, registry=registry,
            fast=fast, notify=notify,
        )  # fmt: skip
        decisions.append(decision_of(model, ADAPTATION_SOURCE, outcome).to_dict())
    return decisions


# ---------------------------------------------------------------------------------------------
# The stacked model's weights
# ---------------------------------------------------------------------------------------------


def stacking_context(stacking: Mapping[str, Any], run_id: str | None) -> StackingContext:
    """The ``stacking`` context of a fit (:func:`pipelines.stacking.fit_stack`'s result).

    The weights are worth using only if the out-of-sample evidence says the model knows
    something: a hit rate above the base rate and a positive information coefficient.
    """
    weights = {str(k): float(v) for k, v in stacking["weights"].items()}
    hit, base = float(stacking["hit_rate"]), float(stacking["base_rate"])
    ic = float(stacking["information_coefficient"])
    useful = math.isfinite(ic) and hit > base and ic > 0.0
    why = (
        f"out-of-sample hit rate {hit:.4f} vs base rate {base:.4f}, information coefficient "
        f"{ic:.4f}: " + ("the weights are used" if useful else "the weights are not used")
    )
    return StackingContext(
        schema_version=CONTEXT_SCHEMA_VERSION,
        computed_at=datetime.now(UTC).isoformat(timespec="seconds"),
        strategies=[str(s) for s in stacking["strategies"]],
        weights=weights,
        base_weights={k: v * len(weights) for k, v in weights.items()},
        useful=useful,
        why=why,
        hit_rate=hit,
        base_rate=base,
        information_coefficient=ic if math.isfinite(ic) else 0.0,
        out_of_sample_rows=int(stacking["out_of_sample_rows"]),
        run_id=run_id,
    )


def record_stacking(stacking: Mapping[str, Any], namespace: str | None = None) -> dict[str, Any]:
    """Record a stacking fit in MLflow (experiment ``stacking``: the weights as metrics,
    ``stacking.json``) and as the Redis context ``stacking``; return the context."""
    from mlflow.entities import Metric, RunStatus, RunTag

    from core.adapters.redis_server import connect
    from core.adapters.redis_store import RedisStore
    from pipelines.strategic import namespace_or_default
    from registry.store import MlflowStore

    store = MlflowStore()
    client = store.client
    run = client.create_run(
        store.experiment_id(STACKING_EXPERIMENT), run_name="stacking", tags={"kind": "stacking"}
    )
    run_id = str(run.info.run_id)
    context = stacking_context(stacking, run_id)
    now_ms = int(time.time() * 1000)
    metrics = [
        Metric(key, value, now_ms, 0)
        for key, value in {
            "hit_rate": context.hit_rate,
            "base_rate": context.base_rate,
            "information_coefficient": context.information_coefficient,
            **{f"weight.{k}": v for k, v in context.weights.items()},
        }.items()
    ]
    client.log_batch(run_id, metrics=metrics, tags=[RunTag("useful", str(context.useful))])
    with tempfile.TemporaryDirectory(prefix="stacking-") as tmp:
        path = Path(tmp) / "stacking.json"
        path.write_bytes(codec.dumps({"fit": dict(stacking), "context": context.to_dict()}))
        client.log_artifact(run_id, str(path))
    client.set_terminated(run_id, RunStatus.to_string(RunStatus.FINISHED))
    with connect() as connection:
        RedisStore(connection.client, namespace_or_default(namespace)).set_context(
            "stacking", context
        )
    log.info(
        context.why,
        extra={"event": "stacking_recorded", "run_id": run_id, "useful": context.useful},
    )
    return context.to_dict()


__all__ = [
    "ADAPTATION_SOURCE",
    "SHADOW_SOURCE",
    "STACKING_EXPERIMENT",
    "adapted_config",
    "adopt_shadow_variant",
    "adopt_shadow_variant_once",
    "champion_symbols",
    "decision_of",
    "govern_proposal",
    "propose_adapted_params",
    "record_stacking",
    "shadow_proposal",
    "stacking_context",
]
