"""The promotion evidence a version's validation report carries, beside its data gate.

Two sections, written by whoever registers the version and pinned with the rest of
``validation.json`` (:meth:`registry.strategy_registry.StrategyRegistry.register_document`):

``lookahead``
    ``{"method": str, "checked": int, "violations": int, "passed": bool}``: what was checked
    for the use of future data (``prefix`` for a strategy run on the engine: the signals it
    emits on the events cut at a point equal those it emits before that point on all events;
    ``features`` for a learned model's features cut the same way), how many comparisons were
    made and how many differed.
``evaluation``
    ``{"objective": str, "challenger": float, "champion": float | null,
    "champion_version": str | null, "margin": float, "window": {...}}``: the challenger's and
    the champion's objective on one held-out window, and the lead the decision asked for.
    ``champion`` and ``champion_version`` are null together: there was no champion to meet.

:func:`lookahead_evidence` and :func:`evaluation_evidence` build the sections (every
registration path uses them); :func:`evidence_problem` is the registry's check of them.
"""

from __future__ import annotations

import math
from typing import Any

LOOKAHEAD = "lookahead"
EVALUATION = "evaluation"
BEFORE_EVIDENCE = (
    "registered before look-ahead/evaluation evidence (its validation.json has neither a "
    "'lookahead' nor an 'evaluation' section); retrain it"
)


def lookahead_evidence(method: str, *, checked: int, violations: int) -> dict[str, Any]:
    """The ``lookahead`` section: passed when something was checked and nothing differed."""
    return {
        "method": method,
        "checked": int(checked),
        "violations": int(violations),
        "passed": checked > 0 and violations == 0,
    }


def evaluation_evidence(
    objective: str,
    *,
    challenger: float,
    champion: float | None,
    champion_version: str | None,
    margin: float,
    window: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``evaluation`` section: both objectives on one held-out window and the margin.

    ``champion`` and ``champion_version`` are both given (the champion met) or both None.
    """
    if (champion is None) != (champion_version is None):
        raise ValueError(
            f"champion {champion!r} and champion_version {champion_version!r} must be given "
            "together or not at all"
        )
    section: dict[str, Any] = {
        "objective": objective,
        "challenger": float(challenger),
        "champion": None if champion is None else float(champion),
        "champion_version": None if champion_version is None else str(champion_version),
        "margin": float(margin),
    }
    if window is not None:
        section["window"] = dict(window)
    return section


def promotion_evidence(lookahead: dict[str, Any], evaluation: dict[str, Any]) -> dict[str, Any]:
    """The two sections as they are merged into a validation report."""
    return {LOOKAHEAD: lookahead, EVALUATION: evaluation}


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:  # an integer too large for a float
        return None
    return number if math.isfinite(number) else None


def lookahead_problem(section: Any) -> str | None:
    """Why the ``lookahead`` section does not show a passed check, or None if it does."""
    if section is None:
        return "it records no look-ahead check (no 'lookahead' section in validation.json)"
    if not isinstance(section, dict):
        return f"its 'lookahead' section is a {type(section).__name__}, not an object"
    method = section.get("method")
    if not isinstance(method, str) or not method:
        return "its look-ahead check names no method"
    checked, violations = _count(section.get("checked")), _count(section.get("violations"))
    if checked is None or violations is None:
        return (
            f"its look-ahead check ({method[:80]}) has no counts "
            "('checked' and 'violations' must be integers >= 0)"
        )
    if violations > 0:
        return f"its look-ahead check ({method[:80]}) found {violations} of {checked} differing"
    if checked == 0:
        return f"its look-ahead check ({method[:80]}) compared nothing"
    if section.get("passed") is not True:
        return f"its look-ahead check ({method[:80]}) did not pass"
    return None


def evaluation_problem(section: Any) -> str | None:
    """Why the ``evaluation`` section does not show the challenger beating the champion by
    its margin (or meeting no champion), or None if it does."""
    if section is None:
        return "it records no evaluation against the champion (no 'evaluation' section)"
    if not isinstance(section, dict):
        return f"its 'evaluation' section is a {type(section).__name__}, not an object"
    objective = section.get("objective")
    if not isinstance(objective, str) or not objective:
        return "its evaluation names no objective"
    what = objective[:80]
    ours, margin = _number(section.get("challenger")), _number(section.get("margin"))
    if ours is None or margin is None:
        return f"its evaluation ({what}) needs finite numbers 'challenger' and 'margin'"
    if margin < 0:
        return f"its evaluation ({what}) has a negative margin {margin:g}"
    theirs_raw, against = section.get("champion"), section.get("champion_version")
    if against is not None and not isinstance(against, str):
        return f"its evaluation ({what}) names the champion version as a non-string"
    if theirs_raw is None:
        if against is not None:
            return f"its evaluation ({what}) names champion version {against[:40]!r} but no score"
        return None
    theirs = _number(theirs_raw)
    if theirs is None:
        return f"its evaluation ({what}) needs a finite 'champion' score or null"
    if against is None:
        return f"its evaluation ({what}) scores a champion but names no champion version"
    if ours < theirs + margin:
        return (
            f"its evaluation ({what}) does not beat champion version {against[:40]} by the "
            f"margin: challenger {ours:.6g} < champion {theirs:.6g} + margin {margin:g}"
        )
    return None


def evidence_problem(report: dict[str, Any]) -> str | None:
    """Why a validation report's promotion evidence fails, or None if both sections hold."""
    if LOOKAHEAD not in report and EVALUATION not in report:
        return BEFORE_EVIDENCE
    return lookahead_problem(report.get(LOOKAHEAD)) or evaluation_problem(report.get(EVALUATION))


def evaluated_against(report: dict[str, Any]) -> str | None:
    """The champion version a (checked) report's evaluation met, or None if it met none."""
    section = report.get(EVALUATION)
    against = section.get("champion_version") if isinstance(section, dict) else None
    return against if isinstance(against, str) else None


__all__ = [
    "BEFORE_EVIDENCE",
    "EVALUATION",
    "LOOKAHEAD",
    "evaluated_against",
    "evaluation_evidence",
    "evidence_problem",
    "lookahead_evidence",
    "promotion_evidence",
]
