"""The user-facing settings are FrozenConfigs: validated, JSON both ways, with a schema."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from core.errors import ConfigError
from core.risk import RiskLimits
from core.runtime.ingest import IngestLimits
from core.runtime.service import CoreSettings
from core.runtime.shard import SymbolShard
from pipelines.stacking import StackingSettings
from strategy_engine.logs import LogSettings
from strategy_engine.monitoring import AlertTiming
from strategy_engine.stack_cores import CoreSpec

SETTINGS = (CoreSettings, IngestLimits, SymbolShard, StackingSettings, AlertTiming, LogSettings,
            CoreSpec)  # fmt: skip


@pytest.mark.parametrize("kind", SETTINGS, ids=lambda kind: kind.__name__)
def test_defaults_survive_a_json_round_trip(kind):
    default = kind()
    assert kind.from_dict(msgspec.json.decode(msgspec.json.encode(default.to_dict()))) == default
    schema = kind.json_schema()
    assert schema["type"] == "object"
    assert set(schema["properties"]) == set(default.to_dict())


def test_core_settings_nest_their_configs_and_paths():
    settings = CoreSettings(
        feeds=("bars",),
        risk=RiskLimits(max_position=5.0),
        shard=SymbolShard(index=1, count=2),
        ingest=IngestLimits(universe=frozenset({"KO"})),
        checkpoint_marker=Path("state") / "core-1.marker",
    )
    data = msgspec.json.decode(msgspec.json.encode(settings.to_dict()))
    assert data["checkpoint_marker"] == str(Path("state") / "core-1.marker")
    assert CoreSettings.from_dict(data) == settings
    assert settings.replace(read_count=10).read_count == 10
    moved = settings.replace(checkpoint_marker=Path("elsewhere.marker"))
    assert moved.checkpoint_marker == Path("elsewhere.marker") and moved.risk == settings.risk
    refs = {"RiskLimits", "SymbolShard", "IngestLimits"}
    assert refs <= set(CoreSettings.json_schema()["$defs"])


@pytest.mark.parametrize(
    ("kind", "fields", "message"),
    [
        (CoreSettings, {"read_count": 0}, "read_count must be >= 1"),
        (CoreSettings, {"tactical_cycle_s": float("nan")}, "tactical_cycle_s must be > 0"),
        (CoreSettings, {"batch_forms": "sometimes"}, "batch_forms"),
        (AlertTiming, {"scrape_interval_s": 0.0}, "scrape_interval_s must be > 0"),
        (AlertTiming, {"group_wait_s": -1.0}, "group_wait_s must be >= 0"),
        (LogSettings, {"level": "LOUD"}, "level must be one of"),
        (SymbolShard, {"index": 2, "count": 2}, "shard must be K/N"),
    ],
)
def test_bad_values_are_config_errors_built_directly_or_from_data(kind, fields, message):
    with pytest.raises(ConfigError, match=message):
        kind(**fields)
    with pytest.raises(ConfigError, match=message):
        kind.from_dict(fields)


def test_unknown_or_mistyped_fields_are_config_errors():
    with pytest.raises(ConfigError, match="IngestLimits"):
        IngestLimits.from_dict({"max_prize": 10.0})
    with pytest.raises(ConfigError, match="CoreSpec"):
        CoreSpec.from_dict({"name": "core-2", "args": "--live"})
