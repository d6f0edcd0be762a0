"""The high-time-frame flow: the ``regime`` and ``macro`` contexts as of one replay date."""

from __future__ import annotations

from datetime import date
from typing import Any

from prefect import flow

from pipelines.strategic.common import namespace_or_default, parse_as_of, write_contexts
from pipelines.strategic.macro import decide_macro_stance
from pipelines.strategic.regime import fit_regime

HIGH_TIME_FRAME_DATA_END = date(2021, 3, 31)
"""The last SPY bar of ``etf_daily_lean``, which the macro strategies trade (the index goes on to
2022-12-28, the Treasury curve stops at 2017-03-29: a decision after that says so by its date)."""


@flow(name="high-time-frame-context", log_prints=False)
def high_time_frame_context(
    as_of: date | None = None, namespace: str | None = None
) -> dict[str, Any]:
    """Fit the regime and decide the macro stance as of ``as_of``; write ``regime`` and ``macro``.

    ``as_of`` is a replay date; None means :data:`HIGH_TIME_FRAME_DATA_END`.
    """
    day = parse_as_of(as_of, HIGH_TIME_FRAME_DATA_END)
    documents = {"regime": fit_regime(day), "macro": decide_macro_stance(day)}
    return write_contexts(namespace_or_default(namespace), documents)
