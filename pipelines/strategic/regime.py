"""The ``regime`` context: the regime of the S&P 500 index on ``as_of``.

:mod:`core.strategies.macro.regime_shift`'s mixture is fitted once, at ``as_of``, on the
``fit_window`` feature vectors up to it (no later bar exists for it).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from typing import Any

import msgspec
from prefect import task

from core.backtest.streams import stream_for
from core.errors import DataError
from core.messages import CONTEXT_SCHEMA_VERSION, RegimeContext
from core.model import Bar
from core.strategies.macro.regime_shift import RegimeShift, RegimeShiftConfig
from pipelines.strategic.common import day_end_ns, iso_day


def regime_label(regime: int, n_components: int) -> str:
    """``calm`` for the lowest-volatility component, ``turbulent`` for the highest."""
    if regime == 0:
        return "calm"
    if regime == n_components - 1:
        return "turbulent"
    return "normal" if n_components == 3 else f"intermediate_{regime}"


def regime_document(
    bars: Iterable[Bar], as_of: date, config: RegimeShiftConfig | None = None
) -> dict[str, Any]:
    """Build the ``regime`` context: :class:`RegimeShift`'s mixture fitted once, at ``as_of``.

    The strategy is run over exactly the bars its first fit needs, the last one being the last
    bar on or before ``as_of``, with ``min_fit_samples = fit_window``: it fits on the
    ``fit_window`` feature vectors up to ``as_of`` and classifies that bar.

    Raises
    ------
    DataError
        If fewer bars than the fit needs precede ``as_of``.
    """
    base = config or RegimeShiftConfig()
    fit_now = msgspec.structs.replace(base, min_fit_samples=base.fit_window)
    end = day_end_ns(as_of)
    public = [b for b in bars if b.ts_event < end]
    if not public:
        raise DataError(f"no index bars on or before {as_of}")
    strategy = RegimeShift(fit_now, public[-1].symbol)
    needed = strategy.warmup
    if len(public) < needed:
        raise DataError(f"regime needs {needed} bars up to {as_of}, the data has {len(public)}")
    signal = None
    for bar in public[-needed:]:
        signal = strategy.update(bar)
    if signal is None:
        raise DataError(f"regime model produced no decision at {iso_day(public[-1].ts_event)}")
    reason = signal.reason
    regime = int(reason["regime"])
    document = RegimeContext(
        schema_version=CONTEXT_SCHEMA_VERSION,
        as_of=as_of.isoformat(),
        symbol=signal.symbol,
        decided_at=iso_day(signal.ts_event),
        regime=regime,
        label=regime_label(regime, base.n_components),
        turbulent=regime == base.n_components - 1,
        probability=reason["probability"],
        turbulent_probability=reason["turbulent_probability"],
        volatility=reason["volatility"],
        window_return=reason["window_return"],
        regime_volatility=reason["regime_volatility"],
        exposure=signal.target_position,
        fit_window=base.fit_window,
        component_volatility=[m[1] for m in (strategy.params or {}).get("means", [])],
    )
    return document.to_dict()


def shipped_index_bars() -> list[Bar]:
    """The S&P 500 index bars that ``regime_shift`` runs on."""
    return list(stream_for("regime_shift").events)


@task(name="fit-regime")
def fit_regime(as_of: date) -> dict[str, Any]:
    return regime_document(shipped_index_bars(), as_of)
