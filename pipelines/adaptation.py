"""Strategy Adaptation Engine: move live strategies' weights and parameters within bounds.

:class:`AdaptationEngine` is pure: current weights, the strategic context and each strategy's
recent performance in, a list of :class:`Change` out (what, old, new, why). The :func:`adapt`
flow reads the context and the core's status from Redis, runs it, records every change (an
MLflow run in experiment ``adaptation`` with ``changes.json``, and the ``adaptation`` context)
and sends the new weights to the core on the control channel.

Rules (stateless: each run computes a *target* from the base weight, so running every minute in
the same conditions converges and then changes nothing):

1. target weight = the strategy's ``base_weight`` times every factor that applies:

   * turbulent regime (the ``regime`` context's turbulent probability at least
     ``turbulent_probability``): trend-following strategies x ``turbulent_trend_scale``,
     mean-reversion strategies x ``turbulent_reversion_scale``;
   * losing strategy (recent Sharpe below ``sharpe_floor`` over at least ``min_periods``
     periods): x ``losing_scale``;
   * risk-off (the ``macro`` stance is ``risk_off``, or the market sentiment of the ``news``
     context is at or below ``bearish_sentiment``): equity-exposed strategies x
     ``risk_off_scale``;

2. the target is clamped to ``[min_weight, max_weight]``;
3. the weight moves toward it by at most ``max_step`` per run;
4. a bounded parameter moves to its ``turbulent`` value in a turbulent regime and back to its
   ``base`` otherwise, clamped to its range and by at most its ``max_step``.

No change is made for a move smaller than ``1e-9``. Every change says why.
"""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

import msgspec
from prefect import flow, task

from core import codec
from core.errors import ConfigError
from core.messages import (
    AdaptationChange,
    AdaptationContext,
    AdaptationRecord,
    CoreStatus,
    MacroContext,
    NewsContext,
    RegimeContext,
    StackingContext,
    StrategyPerformance,
    WeightsControl,
    read_as,
)

Style = Literal["trend_following", "mean_reversion", "other"]
T = TypeVar("T")
ADAPTATION_EXPERIMENT = "adaptation"
ADAPTATION_SCHEMA_VERSION = 1
_EPS = 1e-9
INPUT_CONTEXTS: dict[str, type[RegimeContext | NewsContext | MacroContext]] = {
    "regime": RegimeContext,
    "news": NewsContext,
    "macro": MacroContext,
}


def _finite(value: float, name: str) -> None:
    if not math.isfinite(value):
        raise ConfigError(f"{name} must be finite, was {value}")


class ParamBounds(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The allowed range of one numeric parameter and where the rules move it."""

    min: float
    max: float
    base: float
    turbulent: float | None = None
    max_step: float | None = None

    def check(self, where: str) -> None:
        for field in ("min", "max", "base"):
            _finite(getattr(self, field), f"{where}.{field}")
        if self.min > self.max:
            raise ConfigError(f"{where}: min must be <= max, was {self.min} > {self.max}")
        if not self.min <= self.base <= self.max:
            raise ConfigError(
                f"{where}.base must be within [{self.min}, {self.max}], was {self.base}"
            )
        if self.turbulent is not None and not self.min <= self.turbulent <= self.max:
            raise ConfigError(
                f"{where}.turbulent must be within [{self.min}, {self.max}], was {self.turbulent}"
            )
        if self.max_step is not None and not self.max_step > 0.0:
            raise ConfigError(f"{where}.max_step must be > 0, was {self.max_step}")


class StrategyBounds(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """How far the engine may move one strategy."""

    base_weight: float = 1.0
    min_weight: float = 0.0
    max_weight: float = 2.0
    max_step: float = 0.25
    style: Style = "other"
    equity: bool = True
    params: dict[str, ParamBounds] = msgspec.field(default_factory=dict)

    def check(self, where: str) -> None:
        for field in ("base_weight", "min_weight", "max_weight", "max_step"):
            _finite(getattr(self, field), f"{where}.{field}")
        if self.min_weight < 0.0:
            raise ConfigError(f"{where}.min_weight must be >= 0, was {self.min_weight}")
        if self.min_weight > self.max_weight:
            raise ConfigError(
                f"{where}: min_weight must be <= max_weight, "
                f"was {self.min_weight} > {self.max_weight}"
            )
        if not self.min_weight <= self.base_weight <= self.max_weight:
            raise ConfigError(
                f"{where}.base_weight must be within [{self.min_weight}, {self.max_weight}], "
                f"was {self.base_weight}"
            )
        if not self.max_step > 0.0:
            raise ConfigError(f"{where}.max_step must be > 0, was {self.max_step}")
        for name, param in self.params.items():
            param.check(f"{where}.params.{name}")


class AdaptationBounds(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The validated configuration of the adaptation engine (see the module's rules)."""

    strategies: dict[str, StrategyBounds]
    turbulent_probability: float = 0.5
    turbulent_trend_scale: float = 0.5
    turbulent_reversion_scale: float = 1.5
    sharpe_floor: float = -0.5
    min_periods: int = 20
    losing_scale: float = 0.5
    risk_off_scale: float = 0.5
    bearish_sentiment: float = -0.2

    def __post_init__(self) -> None:
        if not self.strategies:
            raise ConfigError("adaptation bounds name no strategy")
        for name, bounds in self.strategies.items():
            bounds.check(f"strategies.{name}")
        if not 0.0 < self.turbulent_probability <= 1.0:
            raise ConfigError(
                f"turbulent_probability must be in (0, 1], was {self.turbulent_probability}"
            )
        for field in ("turbulent_trend_scale", "turbulent_reversion_scale", "losing_scale"):
            self._positive(field)
        self._positive("risk_off_scale")
        _finite(self.sharpe_floor, "sharpe_floor")
        _finite(self.bearish_sentiment, "bearish_sentiment")
        if self.min_periods < 1:
            raise ConfigError(f"min_periods must be >= 1, was {self.min_periods}")

    def _positive(self, field: str) -> None:
        value = getattr(self, field)
        if not (math.isfinite(value) and value > 0.0):
            raise ConfigError(f"{field} must be a finite number > 0, was {value}")

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> AdaptationBounds:
        """Validate a plain dict (JSON); errors name the offending field and value.

        Raises
        ------
        ConfigError
            On an unknown field, a wrong type or a value out of range.
        """
        try:
            return msgspec.convert(dict(raw), cls)
        except msgspec.ValidationError as exc:
            raise ConfigError(f"adaptation bounds: {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = msgspec.to_builtins(self)
        return result


# The records this engine exchanges with the other tiers are the shared messages.
Change = AdaptationChange
Context = AdaptationContext
Performance = StrategyPerformance


def _optional_float(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


class AdaptationEngine:
    """Apply the module's rules within ``bounds``; pure (no I/O, no clock)."""

    def __init__(self, bounds: AdaptationBounds) -> None:
        self.bounds = bounds

    def adapt(
        self,
        current_weights: Mapping[str, float],
        context: Context,
        recent_performance: Mapping[str, Performance],
        current_params: Mapping[str, Mapping[str, float]] | None = None,
    ) -> list[Change]:
        """Return the changes for every bounded strategy, weights first, in name order.

        A strategy missing from ``current_weights`` is taken at its ``base_weight``; one missing
        from ``recent_performance`` is not judged on performance. Parameters missing from
        ``current_params`` are taken at their ``base``.
        """
        changes = []
        for name in sorted(self.bounds.strategies):
            bounds = self.bounds.strategies[name]
            old = float(current_weights.get(name, bounds.base_weight))
            change = self._weight(name, bounds, old, context, recent_performance.get(name))
            if change is not None:
                changes.append(change)
            params = (current_params or {}).get(name, {})
            changes.extend(self._params(name, bounds, params, context))
        return changes

    def turbulent(self, context: Context) -> bool:
        p = context.turbulent_probability
        return p is not None and p >= self.bounds.turbulent_probability

    def _weight(
        self,
        name: str,
        bounds: StrategyBounds,
        old: float,
        context: Context,
        performance: Performance | None,
    ) -> Change | None:
        factor, reasons = self._factors(bounds, context, performance)
        if not reasons:
            reasons.append(f"no adverse condition: toward base weight {bounds.base_weight:g}")
        wanted = bounds.base_weight * factor
        target = min(max(wanted, bounds.min_weight), bounds.max_weight)
        if target != wanted:
            reasons.append(
                f"target {wanted:.4g} clamped to [{bounds.min_weight:g}, {bounds.max_weight:g}]"
            )
        new = _step(old, target, bounds.max_step)
        if abs(new - old) <= _EPS:
            return None
        if new != target:
            reasons.append(f"step limited to {bounds.max_step:g} (target {target:.4g})")
        return Change(strategy=name, what="weight", old=old, new=new, why="; ".join(reasons))

    def _factors(
        self, bounds: StrategyBounds, context: Context, performance: Performance | None
    ) -> tuple[float, list[str]]:
        cfg = self.bounds
        factor, reasons = 1.0, []
        if self.turbulent(context):
            scale = {
                "trend_following": cfg.turbulent_trend_scale,
                "mean_reversion": cfg.turbulent_reversion_scale,
            }.get(bounds.style)
            if scale is not None:
                factor *= scale
                reasons.append(
                    f"turbulent regime (p={context.turbulent_probability:.2f}): "
                    f"{bounds.style} x{scale:g}"
                )
        if (
            performance is not None
            and performance.periods >= cfg.min_periods
            and performance.sharpe < cfg.sharpe_floor
        ):
            factor *= cfg.losing_scale
            reasons.append(
                f"recent Sharpe {performance.sharpe:.2f} < {cfg.sharpe_floor:g} over "
                f"{performance.periods} periods: x{cfg.losing_scale:g}"
            )
        risk_off = self._risk_off(context)
        if bounds.equity and risk_off:
            factor *= cfg.risk_off_scale
            reasons.append(f"risk-off ({risk_off}): equity exposure x{cfg.risk_off_scale:g}")
        return factor, reasons

    def _risk_off(self, context: Context) -> str:
        why = []
        if context.macro_stance == "risk_off":
            why.append("macro stance risk_off")
        sentiment = context.market_sentiment
        if sentiment is not None and sentiment <= self.bounds.bearish_sentiment:
            why.append(f"market sentiment {sentiment:.2f} <= {self.bounds.bearish_sentiment:g}")
        return ", ".join(why)

    def _params(
        self, name: str, bounds: StrategyBounds, current: Mapping[str, float], context: Context
    ) -> list[Change]:
        turbulent = self.turbulent(context)
        changes = []
        for param, rule in sorted(bounds.params.items()):
            old = float(current.get(param, rule.base))
            wanted = rule.turbulent if turbulent and rule.turbulent is not None else rule.base
            target = min(max(wanted, rule.min), rule.max)
            new = target if rule.max_step is None else _step(old, target, rule.max_step)
            if abs(new - old) <= _EPS:
                continue
            why = (
                f"turbulent regime (p={context.turbulent_probability:.2f}): toward {target:g}"
                if turbulent and rule.turbulent is not None
                else f"not turbulent: back toward base {target:g}"
            )
            if new != target:
                why += f"; step limited to {rule.max_step}"
            changes.append(Change(strategy=name, what=f"param:{param}", old=old, new=new, why=why))
        return changes


def _step(old: float, target: float, max_step: float) -> float:
    """Move from ``old`` toward ``target`` by at most ``max_step``."""
    if abs(target - old) <= max_step:
        return target
    return old + math.copysign(max_step, target - old)


def apply_changes(
    weights: Mapping[str, float], params: Mapping[str, Mapping[str, float]], changes: list[Change]
) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """Weights and parameters after ``changes``."""
    new_weights = dict(weights)
    new_params = {k: dict(v) for k, v in params.items()}
    for change in changes:
        if change.what == "weight":
            new_weights[change.strategy] = change.new
        else:
            new_params.setdefault(change.strategy, {})[change.what.removeprefix("param:")] = (
                change.new
            )
    return new_weights, new_params


# ---------------------------------------------------------------------------------------------
# Reading what the core publishes
# ---------------------------------------------------------------------------------------------


def default_bounds(
    strategies: list[str], base_weights: Mapping[str, float] | None = None
) -> AdaptationBounds:
    """Bounds for registered model names ``strategy.<type>``, styled by the type's catalogue spec.

    Trend-following types are ``trend_following``, statistical-arbitrage types
    ``mean_reversion``; a type trading one instrument's direction (bars, news, macro) is
    equity-exposed, a pair, quote or funding type (market-neutral by construction) is not. A
    name the catalogue does not know gets neutral bounds. ``base_weights`` (the stacked
    model's, on the core's scale) replace the base weight of 1 of the strategies they name,
    clamped to the default weight range.
    """
    from core.strategies.base import DataKind, Family
    from core.strategies.catalogue import strategy_type

    styles: dict[Family, Style] = {
        Family.TREND_FOLLOWING: "trend_following",
        Family.STATISTICAL_ARBITRAGE: "mean_reversion",
    }
    directional = {DataKind.BARS, DataKind.NEWS, DataKind.MACRO}
    found = {}
    for name in strategies:
        try:
            spec = strategy_type(name.removeprefix("strategy.")).spec
        except ConfigError:
            found[name] = StrategyBounds(equity=False)
            continue
        found[name] = StrategyBounds(
            style=styles.get(spec.family, "other"), equity=spec.data_kind in directional
        )
    for name, weight in (base_weights or {}).items():
        if name in found and math.isfinite(weight):
            bounds = found[name]
            base = min(max(weight, bounds.min_weight), bounds.max_weight)
            found[name] = msgspec.structs.replace(bounds, base_weight=base)
    return AdaptationBounds(strategies=found)


def performance_from_status(
    status: CoreStatus | Mapping[str, Any] | None,
) -> dict[str, Performance]:
    """Per-strategy ``sharpe`` and ``periods`` from a core's status, where it has them.

    A plain status (a dict) is read leniently: rows without both numbers are skipped.
    """
    if isinstance(status, CoreStatus):
        return {
            row.strategy: Performance(sharpe=row.sharpe, periods=row.periods)
            for row in status.per_strategy
            if row.sharpe is not None and math.isfinite(row.sharpe)
        }
    found = {}
    for row in (status or {}).get("per_strategy") or []:
        if not isinstance(row, Mapping):
            continue
        sharpe, periods = _optional_float(row.get("sharpe")), row.get("periods")
        if isinstance(row.get("strategy"), str) and sharpe is not None and isinstance(periods, int):
            found[row["strategy"]] = Performance(sharpe=sharpe, periods=periods)
    return found


def weights_from_status(
    status: CoreStatus | Mapping[str, Any] | None,
    previous: AdaptationRecord | Mapping[str, Any] | None,
) -> dict[str, float]:
    """The weights the core trades with, from the first source that has them.

    In order: a ``weights`` object in the status (an older form), the weight of each
    ``per_strategy`` row (what a core publishes: an operator's or an adaptation's weights as
    the core applied them), the last adaptation's weights, each active deployment's own
    ``weight`` (an older form; 1.0 when absent).
    """
    plain = status if isinstance(status, Mapping) else {}
    published = plain.get("weights")
    if isinstance(published, Mapping):
        return _finite_weights(published)
    if isinstance(status, CoreStatus):
        applied = status.weights()
    else:
        rows = plain.get("per_strategy") or []
        applied = _finite_weights(
            {
                r["strategy"]: r.get("weight")
                for r in rows
                if isinstance(r, Mapping) and "strategy" in r
            }
        )
    if applied:
        return applied
    earlier = (
        previous.weights
        if isinstance(previous, AdaptationRecord)
        else (previous or {}).get("weights")
    )
    if isinstance(earlier, Mapping):
        return _finite_weights(earlier)
    active = plain.get("active_set") or []
    return {
        str(d["name"]): float(d.get("weight", 1.0))
        for d in active
        if isinstance(d, Mapping) and "name" in d
    }


def _finite_weights(raw: Mapping[Any, Any]) -> dict[str, float]:
    return {str(k): float(v) for k, v in raw.items() if _optional_float(v) is not None}


# ---------------------------------------------------------------------------------------------
# Prefect flow
# ---------------------------------------------------------------------------------------------


@task(name="read-adaptation-inputs", retries=2, retry_delay_seconds=1)
def read_inputs(namespace: str, core: str) -> dict[str, Any]:
    """Read the three contexts, the core's status and the last adaptation from Redis.

    Each is decoded with its contract (:mod:`core.messages`): one that does not match fails
    the run, naming the field, rather than being read as missing.
    """
    from core.adapters.redis_server import connect
    from core.adapters.redis_store import RedisStore

    with connect() as connection:
        store = RedisStore(connection.client, namespace=namespace)
        return {name: store.read_context(name, kind) for name, kind in INPUT_CONTEXTS.items()} | {
            "stacking": store.read_context("stacking", StackingContext),
            "previous": store.read_context("adaptation", AdaptationRecord),
            "status": store.read_status(core),
        }


@task(name="log-adaptation", retries=2, retry_delay_seconds=1)
def log_adaptation(record: dict[str, Any]) -> str:
    """Record the run in MLflow experiment ``adaptation`` with ``changes.json``."""
    from mlflow.entities import Metric, RunStatus, RunTag

    from registry.store import MlflowStore

    store = MlflowStore()
    client = store.client
    run = client.create_run(
        store.experiment_id(ADAPTATION_EXPERIMENT),
        run_name=f"adapt {record['core']}",
        tags={"kind": "adaptation", "core": record["core"]},
    )
    run_id = str(run.info.run_id)
    now_ms = int(time.time() * 1000)
    metrics = [Metric("changes", float(len(record["changes"])), now_ms, 0)]
    metrics += [Metric(f"weight.{k}", float(v), now_ms, 0) for k, v in record["weights"].items()]
    client.log_batch(run_id, metrics=metrics, tags=[RunTag("sent", str(record["sent"]))])
    with tempfile.TemporaryDirectory(prefix="adaptation-") as tmp:
        path = Path(tmp) / "changes.json"
        path.write_bytes(codec.dumps(record))
        client.log_artifact(run_id, str(path))
    client.set_terminated(run_id, RunStatus.to_string(RunStatus.FINISHED))
    return run_id


@task(name="send-adaptation", retries=2, retry_delay_seconds=1)
def send_adaptation(namespace: str, record: dict[str, Any], send: bool) -> int:
    """Store the ``adaptation`` context; publish the weights on the control channel if ``send``."""
    from core.adapters.redis_server import connect
    from core.adapters.redis_store import RedisStore

    adaptation = read_as(AdaptationRecord, record, "the adaptation record")
    with connect() as connection:
        store = RedisStore(connection.client, namespace=namespace)
        store.set_context("adaptation", adaptation)
        if not (send and adaptation.changes):
            return 0
        message = WeightsControl(weights=adaptation.weights, changes=adaptation.changes)
        return store.publish_control(message)


@task(name="propose-adapted-parameters")
def propose_parameters(
    record: dict[str, Any], previous: AdaptationRecord | None, namespace: str, notify: bool
) -> list[dict[str, Any]]:
    """Govern the adapted parameters as challengers (see :mod:`pipelines.proposals`); a
    promotion is announced to the cores of ``namespace`` when ``notify``."""
    from pipelines.announce import notify_core
    from pipelines.proposals import propose_adapted_params
    from registry.strategy_registry import StrategyRegistry

    def tell_cores(model: str, version: str) -> int:
        return notify_core(model, version, namespace)

    return propose_adapted_params(
        record,
        previous.to_dict() if previous is not None else None,
        StrategyRegistry(),
        notify=tell_cores if notify else None,
    )


def plan_adaptation(
    inputs: Mapping[str, Any], bounds: Mapping[str, Any] | None, core: str
) -> dict[str, Any]:
    """The adaptation record for ``inputs`` (what :func:`read_inputs` returns); pure.

    Inputs given as plain data (dicts) are decoded with their contracts first. With no
    ``bounds``, :func:`default_bounds` over the active set in the core's status; with neither,
    nothing is adapted and ``skipped`` says why.
    """
    regime = _decoded(inputs.get("regime"), RegimeContext, "context 'regime'")
    news = _decoded(inputs.get("news"), NewsContext, "context 'news'")
    macro = _decoded(inputs.get("macro"), MacroContext, "context 'macro'")
    status = _decoded(inputs.get("status"), CoreStatus, f"status:{core}")
    previous = _decoded(inputs.get("previous"), AdaptationRecord, "the previous adaptation")
    active = [d.name for d in status.active_set] if status is not None else []
    context = Context.from_documents(regime, news, macro)
    docs = {"regime": regime, "news": news, "macro": macro}
    record = AdaptationRecord(
        schema_version=ADAPTATION_SCHEMA_VERSION,
        core=core,
        computed_at=datetime.now(UTC).isoformat(timespec="seconds"),
        context=context,
        context_as_of={k: d.as_of if d is not None else None for k, d in docs.items()},
        weights={},
        params={},
        changes=[],
    )
    if not bounds and not active:
        why = f"no bounds given and no active set in status:{core}"
        return msgspec.structs.replace(record, skipped=why).to_dict()
    stacking = _decoded(inputs.get("stacking"), StackingContext, "context 'stacking'")
    # The stacked model's weights are the base the default bounds move around, when its
    # out-of-sample evidence says they mean something; an operator's bounds are kept as given.
    stacked = stacking if stacking is not None and stacking.useful and not bounds else None
    config = (
        AdaptationBounds.from_dict(bounds)
        if bounds
        else default_bounds(active, stacked.base_weights if stacked else None)
    )
    if stacked is not None:
        record = msgspec.structs.replace(
            record, base_weights_from=f"stacking run {stacked.run_id or '?'}"
        )
    weights = weights_from_status(status, previous)
    params = previous.params if previous is not None else {}
    performance = performance_from_status(status)
    changes = AdaptationEngine(config).adapt(weights, context, performance, params)
    start = {n: weights.get(n, b.base_weight) for n, b in config.strategies.items()}
    new_weights, new_params = apply_changes(start, params, changes)
    planned = msgspec.structs.replace(
        record,
        performance=performance,
        performance_missing=sorted(set(config.strategies) - set(performance)),
        weights=new_weights,
        params=new_params,
        changes=changes,
    )
    return planned.to_dict()


def _decoded(value: Any, kind: type[T], what: str) -> T | None:
    """``value`` as ``kind``: None stays None, plain data is decoded with the contract."""
    if value is None or isinstance(value, kind):
        return value
    return read_as(kind, value, what)


@flow(name="adapt", log_prints=False)
def adapt(
    namespace: str | None = None,
    core: str = "core-1",
    bounds: dict[str, Any] | None = None,
    send: bool = True,
    propose_params: bool = True,
) -> dict[str, Any]:
    """Adjust the core's strategy weights (and bounded parameters) from context and performance.

    Reads the ``regime``, ``news`` and ``macro`` contexts and ``status:<core>`` from Redis
    (``$REDIS_URL`` or the embedded server), applies :class:`AdaptationEngine` with ``bounds``
    (defaults: :func:`default_bounds` over the core's active set), records every change (MLflow
    experiment ``adaptation``, ``changes.json``; context ``adaptation``) and, with ``send`` and
    at least one change, publishes ``{"action": "weights", "weights", "changes"}`` on the
    control channel for :func:`core.runtime.control.apply_control`.

    With ``propose_params``, the adapted parameters of each registered strategy are governed
    as a challenger of its champion (:func:`pipelines.proposals.propose_adapted_params`):
    they reach the core only as a version promoted on evidence; ``proposals`` records what
    became of each.
    """
    from pipelines.strategic import namespace_or_default

    space = namespace_or_default(namespace)
    inputs = read_inputs(space, core)
    record = plan_adaptation(inputs, bounds, core)
    if propose_params and record["params"]:
        record["proposals"] = propose_parameters(record, inputs.get("previous"), space, send)
    record["sent"] = bool(send and record["changes"])
    record["run_id"] = log_adaptation(record)
    record["received_by"] = send_adaptation(space, record, send)
    return record


__all__ = [
    "ADAPTATION_EXPERIMENT",
    "AdaptationBounds",
    "AdaptationEngine",
    "Change",
    "Context",
    "ParamBounds",
    "Performance",
    "StrategyBounds",
    "adapt",
    "apply_changes",
    "default_bounds",
    "performance_from_status",
    "plan_adaptation",
    "weights_from_status",
]
