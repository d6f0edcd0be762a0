"""The ``macro`` context: the decisions of ``fed_policy``, ``global_liquidity`` and
``macro_trend`` at the last bar on or before ``as_of`` (each with the date it was taken), and
the overall stance.

FRED figures count from their assumed publication day, Treasury yields from the day after
their curve date (:mod:`core.data.macro`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from typing import Any

import msgspec
import pandas as pd
from prefect import task

from core.backtest.streams import stream_for
from core.messages import CONTEXT_SCHEMA_VERSION, MacroContext, MacroDecision
from core.model import Bar, Signal
from core.strategies.base import Strategy
from core.strategies.catalogue import build
from pipelines.strategic.common import day_end_ns, number

MACRO_TYPES = ("fed_policy", "global_liquidity", "macro_trend")
# A macro strategy decides at a bar, macro_trend only at the first bar of a month: re-emitting
# over the last two months of bars always finds the latest decision.
DECISION_REWIND_BARS = 45
MAX_DECISION_AGE_DAYS = 45
"""A macro decision older than this on ``as_of`` (its data stopped) is reported, marked
``stale``, and left out of the stance."""


def decision_as_of(
    strategy: Strategy[Any], events: Iterable[Any], as_of: date, rewind_bars: int
) -> Signal | None:
    """The strategy's latest decision from the events public by the end of ``as_of``.

    A strategy signals only when its target changes; to read its current reasoning, its
    "already emitted" flag is cleared (through ``to_state``/``restore``) before each of the last
    ``rewind_bars`` bars of its symbol, so the latest decision among them is emitted.
    """
    end = day_end_ns(as_of)
    public = [e for e in events if e.ts_event < end]
    mine = [i for i, e in enumerate(public) if isinstance(e, Bar) and e.symbol == strategy.symbol]
    rewind = set(mine[-rewind_bars:])
    latest = None
    for i, event in enumerate(public):
        if i in rewind:
            state = strategy.to_state()
            strategy.restore({**state, "emitted": False})
        signal = strategy.update(event)
        if signal is not None:
            latest = signal
    return latest


def _decision(signal: Signal | None, as_of: date) -> dict[str, Any]:
    if signal is None:
        return {"decided_at": None, "exposure": None, "stale": True, "reason": {}}
    decided = pd.Timestamp(signal.ts_event, tz="UTC").date()
    return {
        "decided_at": decided.isoformat(),
        "age_days": (as_of - decided).days,
        "stale": (as_of - decided).days > MAX_DECISION_AGE_DAYS,
        "exposure": signal.target_position,
        "reason": {k: number(v) for k, v in signal.reason.items()},
    }


def macro_stance(components: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Combine the macro decisions into one stance.

    Rule, over the components with a fresh decision (not ``stale``): the Fed tightening
    (``fed_policy`` risk-off) makes the stance ``risk_off`` by itself; otherwise it is
    ``risk_off`` when their mean equity exposure is below one half, ``risk_on`` at or above.
    No fresh decision at all: ``unknown``.
    """
    fresh = {k: c for k, c in components.items() if not c.get("stale", True)}
    exposures = [c["exposure"] for c in fresh.values()]
    if not exposures:
        return {"stance": "unknown", "equity_exposure": None, "why": "no fresh macro decision"}
    mean = math.fsum(exposures) / len(exposures)
    tightening = fresh.get("fed_policy", {}).get("reason", {}).get("risk_off") == 1.0
    if tightening:
        return {"stance": "risk_off", "equity_exposure": mean, "why": "fed policy is tightening"}
    stance = "risk_off" if mean < 0.5 else "risk_on"
    return {"stance": stance, "equity_exposure": mean, "why": f"mean equity exposure {mean:.2f}"}


def macro_document(
    as_of: date,
    events: Mapping[str, Sequence[Any]],
    symbol: str = "SPY",
    configs: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """Build the ``macro`` context from each macro strategy's event stream (see module doc).

    Parameters
    ----------
    events
        Per strategy type in :data:`MACRO_TYPES`: its macro points and ``symbol``'s bars in
        stream order (:func:`core.backtest.streams.stream_for`); events after ``as_of`` are dropped.
    configs
        Strategy parameters per type (defaults: each type's defaults).
    """
    components = {}
    for type_name in MACRO_TYPES:
        strategy = build(type_name, dict((configs or {}).get(type_name, {})), symbol)
        found = decision_as_of(strategy, events[type_name], as_of, DECISION_REWIND_BARS)
        components[type_name] = _decision(found, as_of)
    decisions = {k: msgspec.convert(c, MacroDecision) for k, c in components.items()}
    document = MacroContext(
        schema_version=CONTEXT_SCHEMA_VERSION,
        as_of=as_of.isoformat(),
        symbol=symbol,
        fed_policy=decisions["fed_policy"],
        global_liquidity=decisions["global_liquidity"],
        macro_trend=decisions["macro_trend"],
        **macro_stance(components),
    )
    return document.to_dict()


def shipped_macro_events() -> dict[str, list[Any]]:
    """Each macro strategy's shipped event stream (macro points at publication, SPY bars)."""
    return {t: stream_for(t).events for t in MACRO_TYPES}


@task(name="decide-macro-stance")
def decide_macro_stance(as_of: date) -> dict[str, Any]:
    return macro_document(as_of, shipped_macro_events())
