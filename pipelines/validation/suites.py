"""What each data gate checks: one list of readable rules per data kind.

A rule pairs a readable name (``high >= max(open, close)``) with one Great Expectations
expectation. Where GX has no built-in expectation for a rule, the suite builder derives a helper
column in the gate's private copy of the frame and puts a standard expectation on it, so the
report still names the rule rather than the helper.

Missing values: every input column gets its own not-null rule, and every other rule ignores rows
with a missing input (GX column-map expectations skip nulls; the column-pair check says so with
``ignore_row_if="either_value_is_missing"``; helper columns propagate NaN). A missing value is
therefore never passed silently and is reported exactly once, by the rule that names it.

``great_expectations`` is imported inside the builders: its import costs 2-3 s.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

TS = "ts_event"
SYMBOL = "symbol"
VENUE = "venue"
# Helper columns carry this prefix so they never collide with, or show up as, input columns.
HELPER_PREFIX = "__gate_"

BAR_COLUMNS = (TS, "open", "high", "low", "close", "volume")
QUOTE_COLUMNS = (TS, "bid_price", "bid_size", "ask_price", "ask_size")
TRADE_COLUMNS = (TS, "price", "size")
FUNDING_COLUMNS = (TS, "rate")
TEXT_COLUMNS = (TS, "text")
MACRO_COLUMNS = (TS, "period_start", "series", "value")
# Columns holding int64 ns UTC stamps: report examples show them as ISO times.
TIME_COLUMNS = frozenset({TS, "period_start"})


@dataclass(frozen=True)
class Rule:
    """One named check: the readable rule, the input columns it reads, its GX expectation."""

    name: str
    columns: tuple[str, ...]
    expectation: Any


@dataclass(frozen=True)
class GateSpec:
    """A data kind: the columns it needs and how to build its rules on a working copy."""

    kind: str
    required: tuple[str, ...]
    build: Callable[..., list[Rule]]


def _gxe() -> Any:
    import great_expectations.expectations as gxe

    return gxe


def not_null(columns: tuple[str, ...]) -> list[Rule]:
    gxe = _gxe()
    return [
        Rule(f"{c} is not null", (c,), gxe.ExpectColumnValuesToNotBeNull(column=c)) for c in columns
    ]


def positive(column: str) -> Rule:
    expectation = _gxe().ExpectColumnValuesToBeBetween(column=column, min_value=0, strict_min=True)
    return Rule(f"{column} > 0", (column,), expectation)


def non_negative(column: str) -> Rule:
    expectation = _gxe().ExpectColumnValuesToBeBetween(column=column, min_value=0)
    return Rule(f"{column} >= 0", (column,), expectation)


def row_count(min_rows: int) -> Rule:
    expectation = _gxe().ExpectTableRowCountToBeBetween(min_value=min_rows)
    return Rule(f"row count >= {min_rows}", (), expectation)


def freshness(as_of_ns: int, max_age_s: float) -> Rule:
    """Bound the newest ``ts_event``: no older than ``max_age_s`` seconds before ``as_of_ns``.

    GX has no freshness expectation; the newest timestamp is the column's maximum, so a
    single-value check on it says whether the feed is stale.
    """
    oldest_allowed = as_of_ns - round(max_age_s * 1_000_000_000)
    expectation = _gxe().ExpectColumnMaxToBeBetween(column=TS, min_value=oldest_allowed)
    return Rule(f"newest {TS} within {_duration(max_age_s)} of as_of", (TS,), expectation)


def _duration(seconds: float) -> str:
    """Return ``3 days``, ``1 hour``, ``90 s``: the largest whole unit, else seconds."""
    for unit, size in (("day", 86_400), ("hour", 3_600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = int(seconds // size)
            return f"{count} {unit}{'' if count == 1 else 's'}"
    return f"{seconds:g} s"


def _per_symbol(work: pd.DataFrame) -> str:
    return " per symbol" if SYMBOL in work.columns else ""


def _step_signs(ts: pd.Series, symbol: pd.Series | None) -> np.ndarray:
    """Return the sign of each row's step from the previous row of its symbol (NaN for a first).

    The steps are taken on int64 nanoseconds and only their sign is kept: ns since 1970 do not
    fit a float64 exactly, so a float difference (pandas' groupby ``diff`` casts to float) could
    turn a 1 ns step into 0.
    """
    values = ts.to_numpy(dtype="int64") if ts.notna().all() else ts.to_numpy(dtype="float64")
    codes = np.zeros(len(ts), dtype=np.int64) if symbol is None else pd.factorize(symbol)[0]
    order = np.argsort(codes, kind="stable")  # groups the symbols, keeps each one's row order
    sorted_values, sorted_codes = values[order], codes[order]
    signs = np.full(len(ts), np.nan)
    if len(ts) > 1:
        same = sorted_codes[1:] == sorted_codes[:-1]
        step = np.sign(np.diff(sorted_values)).astype("float64")
        signs[order[1:]] = np.where(same, step, np.nan)
    return signs


def ts_order(work: pd.DataFrame, *, strictly: bool) -> Rule:
    """Add the sign of the step to the previous timestamp (per symbol if any) and bound it.

    GX's ``ExpectColumnValuesToBeIncreasing`` cannot group by symbol, and a frame of several
    symbols stacked together is ordered only within each symbol. The first row of each symbol
    has no step (NaN) and passes, as in GX's own increasing check.
    """
    symbol = work[SYMBOL] if SYMBOL in work.columns else None
    if symbol is not None and VENUE in work.columns:
        # One symbol on two venues (spot and perpetual) is two feeds, each ordered on its own.
        symbol = symbol.astype(str) + "@" + work[VENUE].astype(str)
    return _ordered(work, TS, symbol, strictly=strictly, suffix=_per_symbol(work))


def _ordered(
    work: pd.DataFrame, column: str, group: pd.Series | None, *, strictly: bool, suffix: str
) -> Rule:
    """Add the sign of each row's step in ``column`` (within its group) and bound it at 0."""
    helper = f"{HELPER_PREFIX}{column}_step_sign"
    work[helper] = _step_signs(work[column], group)
    word = "strictly increasing" if strictly else "non-decreasing"
    expectation = _gxe().ExpectColumnValuesToBeBetween(
        column=helper, min_value=0, strict_min=strictly
    )
    return Rule(f"{column} {word}{suffix}", (column,), expectation)


def ts_unique(work: pd.DataFrame) -> Rule:
    gxe = _gxe()
    if SYMBOL in work.columns:
        expectation = gxe.ExpectCompoundColumnsToBeUnique(column_list=[SYMBOL, TS])
        return Rule(f"no duplicate {TS} per symbol", (SYMBOL, TS), expectation)
    return Rule(f"no duplicate {TS}", (TS,), gxe.ExpectColumnValuesToBeUnique(column=TS))


def bars_rules(work: pd.DataFrame, *, min_rows: int = 1) -> list[Rule]:
    """Build the bar rules, adding helper columns to ``work`` (the gate's private copy)."""
    gxe = _gxe()
    # np.maximum / np.minimum propagate NaN (DataFrame.max(axis=1) would skip it), so a missing
    # price leaves the helper missing and only its not-null rule reports it.
    work[f"{HELPER_PREFIX}high_headroom"] = work["high"] - np.maximum(work["open"], work["close"])
    work[f"{HELPER_PREFIX}low_headroom"] = np.minimum(work["open"], work["close"]) - work["low"]
    columns = (*BAR_COLUMNS, SYMBOL) if SYMBOL in work.columns else BAR_COLUMNS
    return [
        *not_null(columns),
        *(positive(c) for c in ("open", "high", "low", "close")),
        non_negative("volume"),
        Rule(
            "high >= max(open, close)",
            ("high", "open", "close"),
            gxe.ExpectColumnValuesToBeBetween(column=f"{HELPER_PREFIX}high_headroom", min_value=0),
        ),
        Rule(
            "low <= min(open, close)",
            ("low", "open", "close"),
            gxe.ExpectColumnValuesToBeBetween(column=f"{HELPER_PREFIX}low_headroom", min_value=0),
        ),
        ts_order(work, strictly=True),
        ts_unique(work),
        row_count(min_rows),
    ]


def quotes_rules(work: pd.DataFrame, *, min_rows: int = 1) -> list[Rule]:
    """Build the quote rules: no crossed quotes, positive prices, sizes >= 0, ordered time."""
    crossed = _gxe().ExpectColumnPairValuesAToBeGreaterThanB(
        column_A="ask_price",
        column_B="bid_price",
        or_equal=True,
        # A missing price is reported by its not-null rule; GX's default ("neither") would
        # count it a second time here as a crossed quote.
        ignore_row_if="either_value_is_missing",
    )
    return [
        *not_null(QUOTE_COLUMNS),
        positive("bid_price"),
        positive("ask_price"),
        non_negative("bid_size"),
        non_negative("ask_size"),
        Rule("bid_price <= ask_price", ("bid_price", "ask_price"), crossed),
        ts_order(work, strictly=False),
        row_count(min_rows),
    ]


def trades_rules(work: pd.DataFrame, *, min_rows: int = 1) -> list[Rule]:
    """Build the trade rules: positive price and size, ordered time (ties allowed)."""
    return [
        *not_null(TRADE_COLUMNS),
        positive("price"),
        positive("size"),
        ts_order(work, strictly=False),
        row_count(min_rows),
    ]


def funding_rules(
    work: pd.DataFrame, *, min_rows: int = 1, max_abs_rate: float = 0.01
) -> list[Rule]:
    """Build the funding rules: ``|rate| <= max_abs_rate`` per funding interval (0.01 = 1 %)."""
    in_range = _gxe().ExpectColumnValuesToBeBetween(
        column="rate", min_value=-max_abs_rate, max_value=max_abs_rate
    )
    return [
        *not_null(FUNDING_COLUMNS),
        Rule(f"|rate| <= {max_abs_rate:g}", ("rate",), in_range),
        row_count(min_rows),
    ]


def text_rules(work: pd.DataFrame, *, min_rows: int = 1) -> list[Rule]:
    """Build the text rules: a timestamp and a text with at least one non-blank character."""
    not_blank = _gxe().ExpectColumnValuesToMatchRegex(column="text", regex=r"\S")
    return [
        *not_null(TEXT_COLUMNS),
        Rule("text is not blank", ("text",), not_blank),
        row_count(min_rows),
    ]


def macro_rules(work: pd.DataFrame, *, min_rows: int = 1) -> list[Rule]:
    """Build the macro rules: publication date present, not before the period, ordered series.

    ``ts_event`` is the day a figure was published, ``period_start`` the start of the period it
    measures. A figure cannot be public before its period begins; within a series each period
    comes once and in order, and publications do not go back in time.
    """
    published = _gxe().ExpectColumnPairValuesAToBeGreaterThanB(
        column_A=TS,
        column_B="period_start",
        or_equal=True,
        # A missing date is reported by its not-null rule, not a second time here.
        ignore_row_if="either_value_is_missing",
    )
    series = work["series"]
    return [
        *not_null(MACRO_COLUMNS),
        Rule(f"{TS} >= period_start", (TS, "period_start"), published),
        _ordered(work, "period_start", series, strictly=True, suffix=" per series"),
        _ordered(work, TS, series, strictly=False, suffix=" per series"),
        row_count(min_rows),
    ]


SPECS: dict[str, GateSpec] = {
    "bars": GateSpec("bars", BAR_COLUMNS, bars_rules),
    "quotes": GateSpec("quotes", QUOTE_COLUMNS, quotes_rules),
    "trades": GateSpec("trades", TRADE_COLUMNS, trades_rules),
    "funding": GateSpec("funding", FUNDING_COLUMNS, funding_rules),
    "text": GateSpec("text", TEXT_COLUMNS, text_rules),
    "macro": GateSpec("macro", MACRO_COLUMNS, macro_rules),
}
