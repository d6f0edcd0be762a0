"""Strategy Applicator: the hot path that turns each event into the active set's signals.

Events are routed by symbol: each strategy instance subscribes to the symbols it consumes (one
for most, two legs for a pair, three pairs for a triangle), and instances of strategies that
read symbol-less context (macro series) receive those events too. Routing is a dict lookup, so
an event costs O(strategies on its symbol).

A deployment that runs on many symbols, of a type with a batch form (``core.strategies.batch``),
keeps all its symbols as rows of numpy arrays instead of one object each. :meth:`prepare` hands
a whole batch of events to those forms at once (every symbol in a few array operations); the
events are then fed through :meth:`on_event` in the same order and each picks up the signals
prepared for it, in the same place among the other strategies' signals as one at a time. An
event that was not prepared updates the batch forms alone, so results never depend on batching.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import repeat
from operator import attrgetter
from typing import Any

import numpy as np

from core.errors import StrategyError
from core.model import InstanceKey, Lineage, Signal
from core.ports import StrategyDeployment
from core.strategies.base import EVENT_KINDS, DataKind, Strategy
from core.strategies.batch import BatchMode, BatchStrategy
from core.strategies.catalogue import build, strategy_type

log = logging.getLogger(__name__)

_TS = attrgetter("ts_event")
_CLOSE = attrgetter("close")

# Message kinds that carry no symbol and go to every instance that consumes the kind.
BROADCAST_KINDS = frozenset({"macro"})


@dataclass
class _Slot:
    deployment: StrategyDeployment
    event_kinds: frozenset[str]
    instances: dict[str, Strategy[Any]] = field(default_factory=dict)
    # Symbols on which this model is quarantined, with the reason; their instance or row
    # stays (so nothing re-creates it) but is routed no more events and checkpointed no more.
    quarantined_symbols: dict[str, str] = field(default_factory=dict)
    batch: BatchStrategy[Any] | None = None  # the batch form, when the slot runs as one
    promote_at: int | None = None  # instances from which it switches to its batch form
    rows: dict[str, int] = field(default_factory=dict)  # symbol -> row of the batch form
    # The applicator's symbol id -> this slot's row (-1: not run here), for numpy lookups.
    row_by_id: np.ndarray = field(default_factory=lambda: np.full(16, -1, dtype=np.int64))

    def runs(self, symbol: str) -> bool:
        return symbol in self.instances or symbol in self.rows

    def map_row(self, symbol_id: int, row: int) -> None:
        self.cover(symbol_id + 1)
        self.row_by_id[symbol_id] = row

    def cover(self, ids: int) -> None:
        """Make ``row_by_id`` long enough for symbol ids below ``ids``."""
        if ids > self.row_by_id.size:
            grown = np.full(max(2 * self.row_by_id.size, ids), -1, dtype=np.int64)
            grown[: self.row_by_id.size] = self.row_by_id
            self.row_by_id = grown


# (slot, instance or None for a batch form's row, "<model name>|<symbol>", row or -1)
_Route = tuple[_Slot, Strategy[Any] | None, InstanceKey, int]
# What :meth:`StrategyApplicator.prepare` computed for one event: signals by instance key.
_Prepared = dict[InstanceKey, "Routed"]
_NOTHING: _Prepared = {}


@dataclass(frozen=True)
class Routed:
    """A signal with the instrument positions that realise it, keyed for the composer."""

    signal: Signal
    instance_key: InstanceKey
    legs: dict[str, float]
    strategy: Strategy[Any] | None = None  # the instance, for what must call it back (fills)


class StrategyApplicator:
    """Apply every active strategy to the events of its symbols.

    A deployment that names its symbols gets its instances at start; one that names none gets
    an instance per symbol on that symbol's first event. A strategy that raises, or whose signal
    is not finite, is quarantined on that symbol (its error kept): the same model goes on on
    its other symbols, and the other models everywhere.

    ``batch_forms``: "auto" runs a type's batch form once its deployment runs on the form's
    ``auto_from`` symbols (a deployment that names none switches when its symbols reach that
    many, its instances' states moved over exactly); "always" wherever a batch form exists and
    the deployment is not pinned to one symbol; "never" one instance per symbol throughout.
    """

    def __init__(
        self, deployments: list[StrategyDeployment], *, batch_forms: BatchMode = "auto"
    ) -> None:
        self._slots = [self._slot(d, batch_forms) for d in deployments]
        self._routes: dict[str, list[_Route]] = defaultdict(list)
        self._broadcast: list[_Route] = []
        self._lazy = [slot for slot in self._slots if not slot.deployment.symbols]
        self._batched = [slot for slot in self._slots if slot.batch is not None]
        self._seen: set[str] = set()
        self._symbol_ids: dict[str, int] = {}  # symbols of batch-form rows, numbered once
        self.errors: list[StrategyError] = []
        self.restore_problems: list[str] = []
        # The prepared batch: its events, what each got, and how many were consumed.
        self._plan_events: Sequence[Any] = ()
        self._plan: list[_Prepared] = []
        self._plan_next = 0
        for slot in self._slots:
            for symbol in slot.deployment.symbols:
                self._add_instance(slot, symbol)

    @property
    def deployments(self) -> list[StrategyDeployment]:
        return [slot.deployment for slot in self._slots]

    @property
    def vectorized(self) -> list[str]:
        """Names of the models running as batch forms."""
        return [slot.deployment.name for slot in self._batched]

    def prepare(self, events: Sequence[Any]) -> None:
        """Run the batch forms over ``events`` now; feed the same events to :meth:`on_event`
        next, in order (it raises if they come otherwise, as state has moved on)."""
        self._check_plan_consumed()
        if not (self._batched or any(slot.promote_at is not None for slot in self._lazy)):
            return
        # Columns of the batch's bars, built by comprehensions (no per-event branches).
        positions = [i for i, event in enumerate(events) if event.kind == "bar"]
        bars = events if len(positions) == len(events) else [events[i] for i in positions]
        symbols = [bar.symbol for bar in bars]
        # Every instance the batch needs exists (and every switch to a batch form is made)
        # before any event is fed: one made midway would miss the batch's prepared bars.
        named = symbols if len(bars) == len(events) else _symbols_named(events)
        for symbol in [s for s in dict.fromkeys(named) if s not in self._seen]:
            self._targets(symbol)
        if not self._batched:
            return
        plan: list[_Prepared] = [_NOTHING] * len(events)
        if bars:
            n = len(bars)
            ids = np.fromiter(map(self._symbol_ids.get, symbols, repeat(-1)), np.int64, n)
            ts = np.fromiter(map(_TS, bars), np.int64, n)
            close = np.fromiter(map(_CLOSE, bars), np.float64, n)
            at = np.asarray(positions, dtype=np.int64)
            if ids.min() < 0:  # symbols no batch form runs
                ours = ids >= 0
                ids, at, ts, close = ids[ours], at[ours], ts[ours], close[ours]
            for slot in self._batched:
                self._prepare_slot(slot, plan, ids, at, ts, close)
        self._plan_events, self._plan, self._plan_next = events, plan, 0

    def on_event(self, event: Any) -> list[Routed]:
        """Feed one event to every instance subscribed to it; return the signals it caused."""
        prepared = self._prepared_for(event) if self._plan_events else None
        kind = event.kind
        if kind in BROADCAST_KINDS:
            return self._dispatch(event, kind, self._broadcast)
        if kind == "news":
            out: list[Routed] = []
            for symbol in event.symbols:
                out += self._dispatch(event, kind, self._targets(symbol))
            return out
        # The per-event hot path: _targets and _dispatch inlined (a call costs as much as a
        # strategy's whole indicator update).
        symbol = event.symbol
        if symbol not in self._seen:
            self._targets(symbol)
        out = []
        for slot, strategy, key, row in self._routes.get(symbol, ()):
            if kind not in slot.event_kinds:
                continue
            if strategy is None:  # a batch form's row: prepared, or updated alone now
                routed = (
                    prepared.get(key)
                    if prepared is not None
                    else self._update_row(slot, row, key, event)
                )
                if routed is not None:
                    out.append(routed)
                continue
            try:
                signal = strategy.update(event)
                if signal is not None:
                    _check_finite(signal)
                    out.append(Routed(signal, key, strategy.legs(signal), strategy))
            except Exception as exc:  # a strategy's bug must not stop the others
                self._quarantine_instance(slot, strategy, exc)
        return out

    def instances(self) -> dict[InstanceKey, Strategy[Any]]:
        """The per-symbol instances keyed ``<model name>|<symbol>`` (a batch form's rows are
        not objects: :meth:`states` covers both)."""
        return {
            _key(slot, symbol): strategy
            for slot in self._slots
            for symbol, strategy in slot.instances.items()
        }

    def states(self) -> dict[InstanceKey, dict[str, Any]]:
        """Every instance's ``to_state`` keyed ``<model name>|<symbol>``."""
        self._check_plan_consumed()
        out: dict[InstanceKey, dict[str, Any]] = {}
        for slot in self._slots:
            # A quarantined instance's state is what failed: a restart starts it fresh.
            skip = slot.quarantined_symbols
            for symbol, strategy in slot.instances.items():
                if symbol not in skip:
                    out[_key(slot, symbol)] = strategy.to_state()
            if slot.batch is not None:
                for symbol, row in slot.rows.items():
                    if symbol not in skip:
                        out[_key(slot, symbol)] = slot.batch.row_state(row)
        return out

    def restore(self, states: dict[InstanceKey, dict[str, Any]] | dict[str, dict[str, Any]]) -> int:
        """Rebuild the instances named in ``states`` (``<model>|<symbol>``) and restore them.

        Snapshots of models no longer in the set are ignored. A snapshot that does not
        validate leaves that instance fresh, with the reason in :attr:`restore_problems`; the
        others restore. Returns how many were restored.
        """
        slots = {slot.deployment.name: slot for slot in self._slots}
        restored = 0
        for key, state in states.items():
            try:
                instance = InstanceKey.parse(key)
            except ValueError:
                continue
            symbol = instance.symbol
            slot = slots.get(instance.model)
            if slot is None:
                continue
            if not slot.runs(symbol):
                self._add_instance(slot, symbol)
            try:
                self._restore_one(slot, symbol, state)
                restored += 1
            except Exception as exc:
                self._start_fresh(slot, symbol)
                problem = (
                    f"{key}: saved state not restored ({type(exc).__name__}: {exc}); started fresh"
                )[:400]
                self.restore_problems.append(problem)
                log.warning(
                    problem,
                    extra={"event": "state_not_restored", "model": instance.model, "symbol": symbol,
                           "version": slot.deployment.version, "reason": problem},
                )  # fmt: skip
        return restored

    def _restore_one(self, slot: _Slot, symbol: str, state: dict[str, Any]) -> None:
        if not isinstance(state, dict):
            raise TypeError(f"a state is a JSON object, was {type(state).__name__}")
        if slot.batch is not None:
            slot.batch.restore_row(slot.rows[symbol], state)
        else:
            slot.instances[symbol].restore(state)

    def _start_fresh(self, slot: _Slot, symbol: str) -> None:
        """Put an instance (or batch row) back to the state a new one starts from."""
        fresh = self._build(slot, symbol)
        if slot.batch is not None:
            slot.batch.restore_row(slot.rows[symbol], fresh.to_state())
        else:
            slot.instances[symbol].restore(fresh.to_state())

    # -- batch forms --------------------------------------------------------------------------

    def _prepare_slot(
        self,
        slot: _Slot,
        plan: list[_Prepared],
        ids: np.ndarray,
        positions: np.ndarray,
        ts: np.ndarray,
        close: np.ndarray,
    ) -> None:
        """Run one batch form over the bars (symbol ids, event positions, times, closes)."""
        batch = slot.batch
        if batch is None:
            return
        slot.cover(len(self._symbol_ids))
        rows = slot.row_by_id[ids]  # -1: a symbol this slot does not run (pinned slots)
        if rows.size and rows.min() < 0:
            mine = rows >= 0
            rows, positions, ts, close = rows[mine], positions[mine], ts[mine], close[mine]
        try:
            emitted = batch.update_in_rounds(rows, ts, close, positions)
        except Exception as exc:
            # The rows of one array call fail together and may be half-updated: each of
            # those symbols stops for this model; its other symbols and the others go on.
            for symbol in dict.fromkeys(batch.symbols[r] for r in rows.tolist()):
                self._quarantine_row(slot, symbol, exc)
            return
        name = slot.deployment.name
        for position, signal in emitted:
            if not _finite(signal):
                self._quarantine_row(slot, signal.symbol, _not_finite(signal))
                continue
            if signal.symbol in slot.quarantined_symbols:
                continue
            if plan[position] is _NOTHING:
                plan[position] = {}
            symbol = signal.symbol
            key = InstanceKey(name, symbol)
            plan[position][key] = Routed(signal, key, {symbol: signal.target_position})

    def _update_row(self, slot: _Slot, row: int, key: InstanceKey, bar: Any) -> Routed | None:
        """A batch form's row advanced by one unprepared bar."""
        batch = slot.batch
        assert batch is not None
        try:
            emitted = batch.update(
                np.array([row], dtype=np.int64),
                np.array([bar.ts_event], dtype=np.int64),
                np.array([bar.close], dtype=np.float64),
            )
        except Exception as exc:
            self._quarantine_row(slot, bar.symbol, exc)
            return None
        if not emitted:
            return None
        signal = emitted[0][1]
        if not _finite(signal):
            self._quarantine_row(slot, signal.symbol, _not_finite(signal))
            return None
        return Routed(signal, key, {signal.symbol: signal.target_position})

    def _prepared_for(self, event: Any) -> _Prepared:
        at = self._plan_next
        if self._plan_events[at] is not event:
            raise RuntimeError(
                f"event {at} of a prepared batch was not the one prepared; batch forms are ahead"
            )
        prepared = self._plan[at]
        if at + 1 == len(self._plan_events):
            self._plan_events, self._plan, self._plan_next = (), [], 0
        else:
            self._plan_next = at + 1
        return prepared

    def _check_plan_consumed(self) -> None:
        if self._plan_events:
            left = len(self._plan_events) - self._plan_next
            raise RuntimeError(f"{left} prepared events were not fed to the applicator")

    # -- instances ----------------------------------------------------------------------------

    def _slot(self, deployment: StrategyDeployment, mode: BatchMode) -> _Slot:
        cls = strategy_type(deployment.type_name)
        slot = _Slot(deployment, EVENT_KINDS[cls.spec.data_kind])
        form, symbols = cls.batch_type, len(deployment.symbols)
        if form is None or symbols == 1 or mode == "never":
            return slot
        if mode == "always" or symbols >= form.auto_from:
            slot.batch = self._batch_form(deployment)
        elif symbols == 0:
            slot.promote_at = form.auto_from
        return slot

    @staticmethod
    def _batch_form(deployment: StrategyDeployment) -> BatchStrategy[Any]:
        cls = strategy_type(deployment.type_name)
        assert cls.batch_type is not None and cls.spec.data_kind is DataKind.BARS
        config = cls.config_type.from_dict(deployment.config)
        return cls.batch_type(config, deployment.name, _lineage(deployment))

    def _promote(self, slot: _Slot) -> None:
        """Move a slot's instances into its batch form, state for state (exactly)."""
        batch = slot.batch = self._batch_form(slot.deployment)
        slot.promote_at = None
        for symbol, strategy in slot.instances.items():
            row = batch.add_symbol(symbol)
            batch.restore_row(row, strategy.to_state())
            slot.rows[symbol] = row
            slot.map_row(self._symbol_ids.setdefault(symbol, len(self._symbol_ids)), row)
            routes = self._routes[symbol]
            routes[:] = [(s, None, key, row) if s is slot else (s, i, key, r)
                         for s, i, key, r in routes]  # fmt: skip
        slot.instances.clear()
        self._batched = [s for s in self._slots if s.batch is not None]

    def _targets(self, symbol: str) -> list[_Route]:
        if symbol not in self._seen:
            self._seen.add(symbol)
            for slot in self._lazy:
                if not slot.runs(symbol):  # restored instances exist already
                    self._add_instance(slot, symbol)
        return self._routes.get(symbol, [])

    def _dispatch(self, event: Any, kind: str, targets: list[_Route]) -> list[Routed]:
        out: list[Routed] = []
        for slot, strategy, _, _ in targets:
            if kind not in slot.event_kinds:
                continue
            assert strategy is not None  # batch forms read bars, which are never dispatched
            try:
                signal = strategy.update(event)
                if signal is not None:
                    _check_finite(signal)
                    out.append(
                        Routed(signal, _key(slot, strategy.symbol), strategy.legs(signal), strategy)
                    )
            except Exception as exc:  # a strategy's bug must not stop the others
                self._quarantine_instance(slot, strategy, exc)
        return out

    def _build(self, slot: _Slot, symbol: str) -> Strategy[Any]:
        deployment = slot.deployment
        strategy = build(
            deployment.type_name, deployment.config, symbol, instance_name=deployment.name
        )
        strategy.lineage = _lineage(deployment)
        if deployment.predictor is not None:
            strategy.attach_predictor(deployment.predictor)  # type: ignore[attr-defined]
        return strategy

    def _add_instance(self, slot: _Slot, symbol: str) -> None:
        if slot.batch is not None:
            row = slot.batch.add_symbol(symbol)
            slot.rows[symbol] = row
            slot.map_row(self._symbol_ids.setdefault(symbol, len(self._symbol_ids)), row)
            self._routes[symbol].append((slot, None, _key(slot, symbol), row))
            return
        strategy = self._build(slot, symbol)
        slot.instances[symbol] = strategy
        route = (slot, strategy, _key(slot, strategy.symbol), -1)
        for subscribed in strategy.subscriptions():
            self._routes[subscribed].append(route)
        if slot.event_kinds & BROADCAST_KINDS:
            self._broadcast.append(route)
        if slot.promote_at is not None and len(slot.instances) >= slot.promote_at:
            self._promote(slot)

    def _quarantine_instance(self, slot: _Slot, strategy: Strategy[Any], exc: Exception) -> None:
        """Stop routing events to one instance (one model on one symbol, or a pair's legs)."""
        symbol = strategy.symbol
        if symbol in slot.quarantined_symbols:
            return
        self._record(slot, symbol, exc)
        # New lists, not edits in place: the event being dispatched iterates the old ones.
        for subscribed in strategy.subscriptions():
            self._routes[subscribed] = [r for r in self._routes[subscribed] if r[1] is not strategy]
        self._broadcast = [r for r in self._broadcast if r[1] is not strategy]

    def _quarantine_row(self, slot: _Slot, symbol: str, exc: Exception) -> None:
        """Stop one symbol's row of a batch form: unrouted, and left out of its array calls."""
        if symbol in slot.quarantined_symbols:
            return
        self._record(slot, symbol, exc)
        symbol_id = self._symbol_ids.get(symbol)
        if symbol_id is not None and symbol_id < slot.row_by_id.size:
            slot.row_by_id[symbol_id] = -1
        if symbol in self._routes:  # a new list: the event being dispatched iterates the old
            routes = self._routes[symbol]
            self._routes[symbol] = [r for r in routes if not (r[0] is slot and r[1] is None)]

    def _record(self, slot: _Slot, symbol: str, exc: Exception) -> None:
        reason = f"{slot.deployment.name} raised on {symbol}: {type(exc).__name__}: {exc}"
        slot.quarantined_symbols[symbol] = reason
        self.errors.append(StrategyError(reason, model=slot.deployment.name, symbol=symbol))
        # Once per model and symbol (callers return early for one already quarantined).
        log.error(
            reason,
            extra={"event": "strategy_quarantined", "model": slot.deployment.name,
                   "version": slot.deployment.version, "symbol": symbol, "reason": reason},
        )  # fmt: skip


def _lineage(deployment: StrategyDeployment) -> Lineage:
    return Lineage(
        model_name=deployment.name,
        model_version=deployment.version,
        validation_run=deployment.validation_run,
    )


def _finite(signal: Signal) -> bool:
    return math.isfinite(signal.target_position) and math.isfinite(signal.strength)


def _not_finite(signal: Signal) -> FloatingPointError:
    return FloatingPointError(
        f"non-finite signal: target {signal.target_position}, strength {signal.strength}"
    )


def _check_finite(signal: Signal) -> None:
    """A strategy whose numbers broke (inf, NaN) is quarantined, not traded on."""
    if not _finite(signal):
        raise _not_finite(signal)


def _symbols_named(events: Sequence[Any]) -> list[str]:
    """Every symbol the events name (a news item's several; none for macro), in order."""
    named: list[str] = []
    for event in events:
        if event.kind == "news":
            named += event.symbols
        elif event.kind not in BROADCAST_KINDS:
            named.append(event.symbol)
    return named


def _key(slot: _Slot, symbol: str) -> InstanceKey:
    return InstanceKey(slot.deployment.name, symbol)
