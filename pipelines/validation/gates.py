"""Run the data gates: validate a frame with Great Expectations and report each rule's outcome.

Usage::

    report = validate_bars(frame, name="AAPL daily")
    report.raise_if_failed()   # core.errors.ValidationGateFailed: nothing is promoted

One ephemeral GX context (in memory: nothing is written to disk) is created on first use and
reused by every later validation in the process, which keeps a call at about 0.1 s
after the first. A lock serialises the calls, because the context's single pandas batch
definition keeps the frame being validated in a shared cache.
"""

from __future__ import annotations

import inspect
import logging
import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from core.errors import ConfigError, DataError, ValidationGateFailed
from pipelines.validation.suites import HELPER_PREFIX, SPECS, TIME_COLUMNS, Rule, freshness

MAX_EXAMPLES = 5
MAX_LISTED_REJECTS = 100
"""Rejected rows a report lists in full (the count is always complete)."""

log = logging.getLogger(__name__)

_lock = threading.Lock()
_batch_definition: Any = None
_datasource: Any = None


@dataclass(frozen=True)
class ExpectationResult:
    """The outcome of one rule: how many rows broke it and up to five of them."""

    expectation: str
    columns: tuple[str, ...]
    success: bool
    unexpected_count: int
    examples: tuple[dict[str, Any], ...] = ()
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "expectation": self.expectation,
            "columns": list(self.columns),
            "success": self.success,
            "unexpected_count": self.unexpected_count,
            "examples": [dict(e) for e in self.examples],
            "detail": self.detail,
        }

    def headline(self) -> str:
        """Return ``rule: N rows`` (or the rule's detail, for table-level rules)."""
        if self.detail:
            return f"{self.expectation}: {self.detail}"
        noun = "row" if self.unexpected_count == 1 else "rows"
        return f"{self.expectation}: {self.unexpected_count} {noun}"


@dataclass(frozen=True)
class GateReport:
    """What a gate found in one frame; ``success`` only if every rule held.

    ``rows`` counts the rows checked; ``rejected`` holds the rows the loader could not parse
    (``symbol``, ``line``, ``reason``), which never reached the frame.
    """

    suite: str
    success: bool
    rows: int
    results: list[ExpectationResult] = field(default_factory=list)
    rejected: tuple[dict[str, Any], ...] = ()

    def failed(self) -> list[ExpectationResult]:
        return [r for r in self.results if not r.success]

    def to_dict(self) -> dict[str, Any]:
        """Return the report as plain JSON-safe types."""
        return {
            "suite": self.suite,
            "success": self.success,
            "rows": self.rows,
            "results": [r.to_dict() for r in self.results],
            "rows_rejected": len(self.rejected),
            "rejected_rows": [dict(r) for r in self.rejected[:MAX_LISTED_REJECTS]],
        }

    def message(self) -> str:
        """Return one line naming the outcome and each failed rule with its count."""
        failed = self.failed()
        head = f"gate '{self.suite}' on {self.rows} rows"
        if not failed:
            return f"{head} passed all {len(self.results)} expectations"
        listed = "; ".join(r.headline() for r in failed)
        return f"{head} failed {len(failed)} of {len(self.results)} expectations: {listed}"

    def summary_text(self) -> str:
        """Return a readable multi-line report: each failed rule, its count and example rows."""
        lines = [self.message()]
        for result in self.failed():
            lines.append(f"  FAILED {result.headline()}")
            lines.extend(f"    e.g. {_example_text(e)}" for e in result.examples)
        return "\n".join(lines)

    def raise_if_failed(self) -> None:
        """Raise ``ValidationGateFailed`` (carrying ``to_dict()``) unless every rule held."""
        if not self.success:
            raise ValidationGateFailed(self.message(), report=self.to_dict())


def count_rejected_rows(
    report: GateReport,
    rejected: Sequence[Mapping[str, Any]],
    *,
    allowed: int = 0,
    kind: str = "bars",
) -> GateReport:
    """Add the rule that the loader rejected at most ``allowed`` rows to ``report``.

    A loader sets aside rows it cannot parse; without this rule the gate would pass on what is
    left and nobody would learn that data was missing.

    Parameters
    ----------
    report
        The gate's report on the rows that parsed.
    rejected
        One mapping per rejected row, with ``symbol``, ``line`` and ``reason``.
    allowed
        Rejected rows the operator accepts; more fail the gate.
    kind
        The data kind, as the failure is logged.
    """
    if isinstance(allowed, bool) or not isinstance(allowed, int) or allowed < 0:
        raise ConfigError(f"allowed rejected rows must be an integer >= 0, was {allowed!r}")
    count = len(rejected)
    held = count <= allowed
    detail = ""
    if not held:
        first = rejected[0]
        noun = "row" if count == 1 else "rows"
        detail = (
            f"{count} {noun}, first {first.get('symbol')} line {first.get('line')}: "
            f"{first.get('reason')}"
        )
    rule = ExpectationResult(
        expectation=f"loader rejected rows <= {allowed}",
        columns=(),
        success=held,
        unexpected_count=count,
        examples=tuple(dict(r) for r in rejected[:MAX_EXAMPLES]),
        detail=detail,
    )
    counted = replace(
        report,
        success=report.success and held,
        results=[*report.results, rule],
        rejected=tuple(dict(r) for r in rejected),
    )
    # A report that failed already was logged where its rules were checked.
    return _logged(kind, counted) if report.success else counted


def validate_bars(
    frame: pd.DataFrame,
    *,
    name: str = "bars",
    min_rows: int = 1,
    as_of_ns: int | None = None,
    max_age_s: float | None = None,
) -> GateReport:
    """Validate OHLCV bars.

    Parameters
    ----------
    frame
        Columns ``ts_event`` (int64 ns UTC), ``open, high, low, close, volume`` and optionally
        ``symbol`` (then time order and uniqueness are checked per symbol).
    name
        Suite name shown in the report.
    min_rows
        Fewest rows the frame must have.
    as_of_ns, max_age_s
        Freshness, on every gate: given both, the newest ``ts_event`` must be at most
        ``max_age_s`` seconds older than ``as_of_ns`` (int ns UTC). Without them no freshness
        rule is added.

    Returns
    -------
    GateReport
        One result per rule: nulls, positive prices, ``volume >= 0``,
        ``high >= max(open, close)``, ``low <= min(open, close)``, strictly increasing and
        unique timestamps, row count (and freshness if asked).
    """
    return _run("bars", frame, name, min_rows, _fresh(as_of_ns, max_age_s))


def validate_quotes(
    frame: pd.DataFrame,
    *,
    name: str = "quotes",
    min_rows: int = 1,
    as_of_ns: int | None = None,
    max_age_s: float | None = None,
) -> GateReport:
    """Validate quotes (``ts_event, bid_price, bid_size, ask_price, ask_size``, opt. ``symbol``)."""
    return _run("quotes", frame, name, min_rows, _fresh(as_of_ns, max_age_s))


def validate_trades(
    frame: pd.DataFrame,
    *,
    name: str = "trades",
    min_rows: int = 1,
    as_of_ns: int | None = None,
    max_age_s: float | None = None,
) -> GateReport:
    """Validate trades (``ts_event, price, size``, optionally ``symbol``)."""
    return _run("trades", frame, name, min_rows, _fresh(as_of_ns, max_age_s))


def validate_funding(
    frame: pd.DataFrame,
    *,
    name: str = "funding",
    min_rows: int = 1,
    max_abs_rate: float = 0.01,
    as_of_ns: int | None = None,
    max_age_s: float | None = None,
) -> GateReport:
    """Validate funding rates (``ts_event, rate``); ``max_abs_rate`` bounds one 8 h interval."""
    if not _positive_finite(max_abs_rate):
        raise ConfigError(f"max_abs_rate must be a positive finite number, was {max_abs_rate!r}")
    fresh = _fresh(as_of_ns, max_age_s)
    return _run("funding", frame, name, min_rows, fresh, max_abs_rate=float(max_abs_rate))


def validate_text(
    frame: pd.DataFrame,
    *,
    name: str = "text",
    min_rows: int = 1,
    as_of_ns: int | None = None,
    max_age_s: float | None = None,
) -> GateReport:
    """Validate text items (``ts_event, text``): a timestamp and a non-blank text on every row."""
    return _run("text", frame, name, min_rows, _fresh(as_of_ns, max_age_s))


def validate_macro(
    frame: pd.DataFrame,
    *,
    name: str = "macro",
    min_rows: int = 1,
    as_of_ns: int | None = None,
    max_age_s: float | None = None,
) -> GateReport:
    """Validate macro points (``ts_event`` = publication day, ``period_start, series, value``).

    Returns
    -------
    GateReport
        One result per rule: nulls (a publication date on every row), ``ts_event >=
        period_start``, per series strictly increasing ``period_start`` and non-decreasing
        ``ts_event``, row count (and freshness if asked).
    """
    return _run("macro", frame, name, min_rows, _fresh(as_of_ns, max_age_s))


_GATES = {
    "bars": validate_bars,
    "quotes": validate_quotes,
    "trades": validate_trades,
    "funding": validate_funding,
    "text": validate_text,
    "macro": validate_macro,
}


def validate(kind: str, frame: pd.DataFrame, **options: Any) -> GateReport:
    """Validate ``frame`` with the gate for ``kind`` (bars, quotes, trades, funding, text, macro).

    Raises
    ------
    ConfigError
        If ``kind`` is unknown or an option does not belong to that gate.
    """
    gate = _GATES.get(kind)
    if gate is None:
        raise ConfigError(
            f"unknown data kind {kind!r}; expected one of {', '.join(sorted(_GATES))}"
        )
    accepted = set(inspect.signature(gate).parameters) - {"frame"}
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise ConfigError(
            f"the {kind} gate takes no option(s) {', '.join(unknown)}; "
            f"it takes {', '.join(sorted(accepted))}"
        )
    return gate(frame, **options)


def _positive_finite(value: Any) -> bool:
    return isinstance(value, float | int) and not isinstance(value, bool) and 0 < value < math.inf


def _fresh(as_of_ns: int | None, max_age_s: float | None) -> Rule | None:
    """Return the freshness rule, or None when no ``as_of_ns`` is given; check both options."""
    if as_of_ns is None and max_age_s is None:
        return None
    if as_of_ns is None or max_age_s is None:
        raise ConfigError(
            f"freshness needs both as_of_ns and max_age_s, got as_of_ns={as_of_ns!r}, "
            f"max_age_s={max_age_s!r}"
        )
    if isinstance(as_of_ns, bool) or not isinstance(as_of_ns, int | np.integer):
        raise ConfigError(f"as_of_ns must be integer nanoseconds UTC, was {as_of_ns!r}")
    if not _positive_finite(max_age_s):
        raise ConfigError(f"max_age_s must be a positive finite number, was {max_age_s!r}")
    return freshness(int(as_of_ns), float(max_age_s))


def _run(
    kind: str,
    frame: pd.DataFrame,
    name: str,
    min_rows: int,
    fresh: Rule | None,
    **options: Any,
) -> GateReport:
    if not isinstance(frame, pd.DataFrame):
        raise DataError(f"the {kind} gate needs a pandas DataFrame, got {type(frame).__name__}")
    if isinstance(min_rows, bool) or not isinstance(min_rows, int) or min_rows < 0:
        raise ConfigError(f"min_rows must be an integer >= 0, was {min_rows!r}")
    spec = SPECS[kind]
    missing = [c for c in spec.required if c not in frame.columns]
    if missing:
        return _logged(kind, _missing_columns_report(name, frame, missing))
    # A private copy with a 0..n-1 index: helper columns never touch the caller's frame, and GX's
    # unexpected index labels are row positions.
    work = frame.reset_index(drop=True)
    rules = spec.build(work, min_rows=min_rows, **options)
    if fresh is not None:
        rules.append(fresh)
    report = _report(name, work, list(frame.columns), rules, _validate_with_gx(name, work, rules))
    return _logged(kind, report)


def _logged(kind: str, report: GateReport) -> GateReport:
    """Log a failed gate once, where it is decided (every caller of every gate passes here)."""
    if not report.success:
        log.warning(
            report.message()[:1000],
            extra={
                "event": "data_gate_failed",
                "suite": report.suite,
                "kind": kind,
                "rows": report.rows,
                "failed_expectations": [
                    {"expectation": r.expectation, "unexpected_count": r.unexpected_count}
                    for r in report.failed()
                ],
            },
        )
    return report


def _missing_columns_report(name: str, frame: pd.DataFrame, missing: list[str]) -> GateReport:
    results = [
        ExpectationResult(f"column {c} exists", (c,), False, 0, detail=f"column {c} is missing")
        for c in missing
    ]
    return GateReport(suite=name, success=False, rows=len(frame), results=results)


def _validate_with_gx(name: str, work: pd.DataFrame, rules: list[Rule]) -> list[Any]:
    import great_expectations as gx

    for index, rule in enumerate(rules):
        rule.expectation.meta = {"rule": index}
    suite = gx.ExpectationSuite(name=name, expectations=[r.expectation for r in rules])
    result_format = {"result_format": "SUMMARY", "partial_unexpected_count": MAX_EXAMPLES}
    with _lock:
        batch = _get_batch_definition().get_batch(batch_parameters={"dataframe": work})
        try:
            outcome = batch.validate(suite, result_format=result_format)
        finally:
            # The execution engine caches the last batch: drop it so the frame can be freed.
            _datasource.get_execution_engine().batch_manager.reset_batch_cache()
    ordered: list[Any] = [None] * len(rules)
    for result in outcome.results:
        ordered[result.expectation_config.meta["rule"]] = result
    return ordered


def _get_batch_definition() -> Any:
    """Create the process's ephemeral context and its one dataframe batch definition once."""
    global _batch_definition, _datasource
    if _batch_definition is None:
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        # GX logs the temporary docs folder of every ephemeral context at INFO (on a logger
        # whose level GX sets itself): not news to anyone reading a report.
        logging.getLogger("great_expectations.data_context.types.base").setLevel(logging.WARNING)
        context = gx.get_context(mode="ephemeral")
        # GX prints tqdm progress bars to stderr on every validation otherwise.
        context.variables.progress_bars = ProgressBarsConfig(
            globally=False, metric_calculations=False
        )
        _datasource = context.data_sources.add_pandas("strategy_engine_gates")
        asset = _datasource.add_dataframe_asset("frame")
        _batch_definition = asset.add_batch_definition_whole_dataframe("whole_frame")
    return _batch_definition


def _report(
    name: str, work: pd.DataFrame, columns: list[str], rules: list[Rule], outcomes: list[Any]
) -> GateReport:
    results = [_result(work, columns, r, o) for r, o in zip(rules, outcomes, strict=True)]
    return GateReport(
        suite=name, success=all(r.success for r in results), rows=len(work), results=results
    )


def _result(work: pd.DataFrame, columns: list[str], rule: Rule, outcome: Any) -> ExpectationResult:
    if outcome is None:  # GX returned no result for this expectation
        return ExpectationResult(rule.name, rule.columns, False, 0, detail="no result from GX")
    raw = outcome.result or {}
    error = _exception_message(outcome.exception_info)
    if error:
        return ExpectationResult(rule.name, rule.columns, False, 0, detail=f"GX error: {error}")
    if "unexpected_count" not in raw:  # a single-value rule (row count, newest ts_event)
        observed = raw.get("observed_value")
        if len(rule.columns) == 1:
            observed = _plain(rule.columns[0], observed)
        detail = "" if outcome.success else f"observed {observed}"
        return ExpectationResult(rule.name, rule.columns, bool(outcome.success), 0, detail=detail)
    positions = list(raw.get("partial_unexpected_index_list") or [])[:MAX_EXAMPLES]
    return ExpectationResult(
        expectation=rule.name,
        columns=rule.columns,
        success=bool(outcome.success),
        unexpected_count=int(raw["unexpected_count"]),
        examples=_examples(work, columns, positions),
    )


def _exception_message(info: Any) -> str:
    if not isinstance(info, dict):
        return ""
    # GX gives one dict, or one per metric keyed by the metric's id.
    entries = [info] if "raised_exception" in info else list(info.values())
    messages = [
        str(e.get("exception_message"))
        for e in entries
        if isinstance(e, dict) and e.get("raised_exception")
    ]
    return "; ".join(messages)


def _examples(
    work: pd.DataFrame, columns: list[str], positions: list[Any]
) -> tuple[dict[str, Any], ...]:
    shown = [c for c in columns if not str(c).startswith(HELPER_PREFIX)]
    rows = work.loc[positions, shown]
    return tuple(
        {str(c): _plain(c, v) for c, v in zip(shown, row, strict=True)}
        for row in rows.itertuples(index=False, name=None)
    )


def _plain(column: Any, value: Any) -> Any:
    """Turn a cell into a JSON-safe value; timestamp nanoseconds become an ISO string."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, np.generic):
        value = value.item()
        if isinstance(value, float) and math.isnan(value):
            return None
    if column in TIME_COLUMNS and isinstance(value, int | float):
        return pd.Timestamp(int(value), unit="ns", tz="UTC").isoformat()
    if isinstance(value, bool | int | float | str):
        return value
    return str(value)


def _example_text(example: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in example.items())
