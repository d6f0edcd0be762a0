"""The registry's check of the look-ahead and evaluation sections, on any JSON a hostile or
broken validation report could hold: a reason or None, never an exception."""

from __future__ import annotations

import math
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from registry.evidence import (
    BEFORE_EVIDENCE,
    evaluation_evidence,
    evidence_problem,
    lookahead_evidence,
)

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**400), max_value=10**400)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
FIELDS = ("method", "checked", "violations", "passed", "objective", "challenger", "champion",
          "champion_version", "margin", "window")  # fmt: skip
SECTION = st.dictionaries(st.sampled_from(FIELDS), JSON, max_size=len(FIELDS)) | JSON


def _honest(challenger: float = 1.2, champion: float | None = 1.0) -> dict[str, Any]:
    return {
        "lookahead": lookahead_evidence("prefix", checked=40, violations=0),
        "evaluation": evaluation_evidence(
            "sharpe",
            challenger=challenger,
            champion=champion,
            champion_version=None if champion is None else "3",
            margin=0.05,
        ),
    }


@settings(max_examples=400, deadline=None)
@given(lookahead=SECTION, evaluation=SECTION, present=st.sampled_from(["both", "one", "other"]))
def test_any_shape_of_the_sections_gives_a_reason_or_passes_never_an_exception(
    lookahead: Any, evaluation: Any, present: str
) -> None:
    report: dict[str, Any] = {"success": True}
    if present in ("both", "one"):
        report["lookahead"] = lookahead
    if present in ("both", "other"):
        report["evaluation"] = evaluation

    problem = evidence_problem(report)

    assert problem is None or (isinstance(problem, str) and problem and "\n" not in problem)
    if problem is None:  # what passes is exactly what the registry's rules allow
        assert report["lookahead"]["passed"] is True and report["lookahead"]["violations"] == 0
        ours, margin = report["evaluation"]["challenger"], report["evaluation"]["margin"]
        assert math.isfinite(ours) and math.isfinite(margin) and margin >= 0


@settings(max_examples=200, deadline=None)
@given(
    challenger=st.floats(allow_nan=False, allow_infinity=False, min_value=-1e6, max_value=1e6),
    champion=st.none() | st.floats(allow_nan=False, allow_infinity=False, min_value=-1e6,
                                   max_value=1e6),
)  # fmt: skip
def test_an_honest_report_passes_exactly_when_the_challenger_beats_the_champion_by_the_margin(
    challenger: float, champion: float | None
) -> None:
    problem = evidence_problem(_honest(challenger, champion))

    beats = champion is None or challenger >= champion + 0.05
    assert (problem is None) is beats
    if not beats:
        assert problem is not None and "does not beat champion version 3 by the margin" in problem


def test_a_report_without_either_section_was_registered_before_the_evidence() -> None:
    assert evidence_problem({"success": True}) == BEFORE_EVIDENCE
    assert "retrain it" in BEFORE_EVIDENCE


def test_each_broken_section_is_named() -> None:
    honest = _honest()
    cases = {
        "no look-ahead check": {**honest, "lookahead": None},
        "found 2 of 40 differing": {
            **honest, "lookahead": {**honest["lookahead"], "violations": 2, "passed": False}},
        "compared nothing": {**honest, "lookahead": lookahead_evidence("prefix", checked=0,
                                                                       violations=0)},
        "no evaluation": {**honest, "evaluation": None},
        "negative margin": {**honest, "evaluation": {**honest["evaluation"], "margin": -0.1}},
        "finite numbers": {**honest, "evaluation": {**honest["evaluation"],
                                                    "challenger": float("nan")}},
        "names no champion version": {**honest, "evaluation": {**honest["evaluation"],
                                                               "champion_version": None}},
    }  # fmt: skip
    for reason, report in cases.items():
        problem = evidence_problem(report)
        assert problem is not None and reason in problem, (reason, problem)
