"""Great Expectations data gates: validate a frame of one data kind and report every rule."""

from pipelines.validation.gates import (
    ExpectationResult,
    GateReport,
    count_rejected_rows,
    validate,
    validate_bars,
    validate_funding,
    validate_macro,
    validate_quotes,
    validate_text,
    validate_trades,
)

__all__ = [
    "ExpectationResult",
    "GateReport",
    "count_rejected_rows",
    "validate",
    "validate_bars",
    "validate_funding",
    "validate_macro",
    "validate_quotes",
    "validate_text",
    "validate_trades",
]
