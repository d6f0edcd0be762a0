"""Promotion evidence for the versions tests register, from a real look-ahead check and a real
evaluation (what the pipelines record; see :mod:`registry.evidence`).

A rule version's evidence is what register-and-promote records, on the shipped AAPL bars
(:func:`pipelines.governance.bars_version_evidence`, margin 0): the config run on the bars
before the held-out window and on all bars, and scored with the champion's config (when
given) on the same held-out window. A version promoted over a champion therefore needs a
config that truly scores at least as well as the champion's there.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import pandas as pd

from core.backtest.streams import Stream
from core.features.direction import FeatureParams
from core.strategies.catalogue import strategy_type
from pipelines import governance, learning, lifecycle
from pipelines.ml_composer import features_lookahead
from registry.evidence import evaluation_evidence, promotion_evidence
from tests.fixtures_mlflow import PASSED

DATASET = "equities_daily_stocknet88"
SYMBOL = "AAPL"


@cache
def _aapl() -> lifecycle.AdmittedBars:
    return lifecycle.admit_bars(DATASET, [SYMBOL])


@cache
def _rule_evidence(type_name: str, config: str, champion: str | None, version: str | None) -> str:
    config_type = strategy_type(type_name).config_type
    candidate = config_type.from_dict(json.loads(config)).to_dict()
    theirs = config_type.from_dict(json.loads(champion)).to_dict() if champion else None
    _, evidence = governance.bars_version_evidence(
        type_name, DATASET, _aapl().frames, candidate,
        (version or "", theirs) if theirs is not None else None, margin=0.0,
    )  # fmt: skip
    return json.dumps(evidence)


def rule_evidence(
    config: dict[str, Any],
    *,
    type_name: str = "ma_crossover",
    champion: tuple[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The ``lookahead`` and ``evaluation`` sections of a single-asset bar version with
    ``config``, evaluated against ``champion`` (its version and config) when given."""
    version, theirs = champion if champion is not None else (None, None)
    key = json.dumps(config, sort_keys=True)
    against = json.dumps(theirs, sort_keys=True) if theirs is not None else None
    result: dict[str, Any] = json.loads(_rule_evidence(type_name, key, against, version))
    return result


def validated(
    config: dict[str, Any],
    *,
    type_name: str = "ma_crossover",
    champion: tuple[str, dict[str, Any]] | None = None,
    report: dict[str, Any] = PASSED,
) -> dict[str, Any]:
    """A passed gate report with the version's promotion evidence (:func:`rule_evidence`)."""
    return {**report, **rule_evidence(config, type_name=type_name, champion=champion)}


def sample_evidence(type_name: str, config: dict[str, Any], events: list[Any], symbol: str) -> dict:
    """The sections of any type's version, from its engine run on ``events`` (a strategy
    sample): the replay cut at the held-out window against the whole replay, and its objective
    on the window; no champion met."""
    canonical = strategy_type(type_name).config_type.from_dict(config).to_dict()
    stream = Stream(type_name, "sample", events, (symbol,), 1.0)
    start = governance.split(events, 0.3).test_start
    cut = next(i for i, event in enumerate(events) if event.ts_event >= start)
    prefix = governance.evaluate_run(stream, canonical, events[:cut], start=None)
    full = governance.evaluate_run(stream, canonical, events, start=start)
    return promotion_evidence(
        learning.prefix_lookahead(prefix.signals, full.signals),
        evaluation_evidence(
            governance.objective_of(type_name),
            challenger=full.metrics["objective"],
            champion=None,
            champion_version=None,
            margin=0.0,
            window={"test_start_ns": start},
        ),
    )


def direction_evidence(bars: pd.DataFrame, metrics: dict[str, float]) -> dict[str, Any]:
    """The sections of a direction model trained on ``bars`` with the default features: the
    features' look-ahead check on those bars, and its out-of-sample Sharpe (``metrics``)
    meeting no champion."""
    _, lookahead = features_lookahead({SYMBOL: bars}, FeatureParams())
    return promotion_evidence(
        lookahead,
        evaluation_evidence(
            "sharpe", challenger=metrics["sharpe"], champion=None, champion_version=None,
            margin=0.05,
        ),
    )  # fmt: skip
