"""Strategy state in JSON: NaN written as null and read back as NaN, in one place."""

from __future__ import annotations

import math
from typing import Any

import msgspec

from core.state import (
    StrategyState,
    decode_float,
    decode_floats,
    encode_float,
    encode_floats,
    encode_state,
)


class _Sample(StrategyState):
    level: float
    ring: list[float]
    count: int
    rows: list[list[float]]
    parts: dict[str, Any]
    fit: dict[str, Any] | None = None
    filter: list[float] | None = None


def _sample() -> _Sample:
    return _Sample(
        level=math.nan,
        ring=[1.5, math.nan, math.inf],
        count=3,
        rows=[[0.25, math.nan]],
        parts={"value": -math.inf, "items": [[1, 2.0]]},
        filter=[math.nan, 0.5],
    )


def test_non_finite_floats_are_null_and_null_is_nan():
    assert encode_float(2.5) == 2.5
    assert encode_float(math.nan) is None and encode_float(-math.inf) is None
    assert math.isnan(decode_float(None)) and decode_float(3) == 3.0
    assert encode_floats([1.0, math.nan, 2.0]) == [1.0, None, 2.0]
    assert encode_floats([1e308, 1e308]) == [1e308, 1e308]  # their sum overflows, they do not
    assert [math.isnan(v) for v in decode_floats([None, 1.0])] == [True, False]
    assert encode_state({"a": [math.nan, {"b": math.inf}], "c": (1, 2.0)}) == {
        "a": [None, {"b": None}],
        "c": [1, 2.0],
    }


def test_a_typed_state_writes_json_and_reads_it_back_with_its_nans():
    state = _sample().to_dict()

    assert state == {
        "level": None,
        "ring": [1.5, None, None],
        "count": 3,
        "rows": [[0.25, None]],
        "parts": {"value": None, "items": [[1, 2.0]]},
        "fit": None,
        "filter": [None, 0.5],
    }
    for form in (state, msgspec.json.decode(msgspec.json.encode(state))):
        back = _Sample.from_dict(form)
        assert math.isnan(back.level) and back.count == 3
        assert back.ring[0] == 1.5 and math.isnan(back.ring[1]) and math.isnan(back.ring[2])
        assert back.rows[0][0] == 0.25 and math.isnan(back.rows[0][1])
        assert back.filter is not None and math.isnan(back.filter[0]) and back.filter[1] == 0.5
        assert back.to_dict() == state


def test_keys_a_state_does_not_declare_are_ignored_and_raw_nans_are_taken():
    saved = {**_sample().to_dict(), "emitted": True, "from_a_later_version": 1, "level": math.nan}

    back = _Sample.from_dict(saved)

    assert math.isnan(back.level)
    assert "emitted" not in back.to_dict()
