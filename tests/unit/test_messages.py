"""The contracts between processes and tiers: schemas committed, real writers' output read back."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from core.backtest.runner import RESULT_KEYS, backtest
from core.errors import MessageError
from core.messages import (
    SCHEMAS,
    AdaptationRecord,
    BacktestResult,
    ControlBody,
    CoreStatus,
    CycleSummary,
    HaltControl,
    LatencySummary,
    PublishedRiskLimits,
    ReloadControl,
    WeightsControl,
    WriterStats,
    read_as,
    stale_schemas,
)
from core.messages.__main__ import main as schemas_main
from core.strategies.catalogue import strategy_types
from strategy_engine.cli import main

DOCS_SCHEMAS = Path(__file__).resolve().parents[2] / "docs" / "schemas"
TYPES = sorted(cls.spec.name for cls in strategy_types())


def test_the_committed_schemas_are_the_ones_the_code_generates():
    assert stale_schemas(DOCS_SCHEMAS) == []
    assert sorted(p.stem for p in DOCS_SCHEMAS.glob("*.json")) == sorted(SCHEMAS)


@pytest.mark.parametrize("run", [schemas_main, lambda argv: main(["schemas", *argv])])
def test_the_schema_command_writes_every_schema_and_its_check_finds_a_changed_one(
    run, tmp_path, capsys
):
    assert run(["--write", str(tmp_path)]) == 0
    assert run(["--check", str(tmp_path)]) == 0
    (tmp_path / "core-status.json").write_text("{}\n")

    assert run(["--check", str(tmp_path)]) == 1
    assert "core-status.json is out of date" in capsys.readouterr().err


@pytest.mark.parametrize("name", TYPES)
def test_a_real_backtest_result_is_a_backtest_result_with_its_keys_in_order(name):
    result = backtest(name, fast=True)

    typed = msgspec.convert(result, BacktestResult)

    assert list(result)[: len(RESULT_KEYS)] == list(RESULT_KEYS)
    fields = list(BacktestResult.__struct_fields__)
    assert list(result) == [f for f in fields if f in result]  # the struct's order
    assert typed.to_dict() == {k: v for k, v in result.items() if v is not None}


def test_a_backtest_result_with_a_key_the_contract_does_not_know_is_refused():
    result = backtest("ma_crossover", fast=True)

    with pytest.raises(msgspec.ValidationError, match="unknown field `surprise`"):
        msgspec.convert({**result, "surprise": 1.0}, BacktestResult)


def test_control_bodies_are_told_apart_by_action_and_keep_unknown_fields_out_of_the_way():
    bodies = msgspec.convert(
        [
            {"action": "reload", "model": "strategy.breakout", "version": "3", "extra": 1},
            {"action": "weights", "weights": {"strategy.breakout": 0.5}, "caller": "ops"},
            {"action": "halt", "flatten": True, "reason": "fat finger"},
        ],
        list[ControlBody],
    )

    assert bodies == [
        ReloadControl(model="strategy.breakout", version="3"),
        WeightsControl(weights={"strategy.breakout": 0.5}, caller="ops"),
        HaltControl(flatten=True, reason="fat finger"),
    ]
    assert WeightsControl(weights={"a": 1.0}).to_dict() == {
        "action": "weights",
        "weights": {"a": 1.0},
    }


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"action": "sell_everything"}, "Invalid value 'sell_everything' - at `$.action`"),
        ({"action": "weights", "weights": {"a": "0.5"}}, "Expected `float`, got `str`"),
        ({"action": "halt", "flatten": "yes"}, "Expected `bool`, got `str` - at `$.flatten`"),
    ],
)
def test_a_control_body_that_breaks_the_contract_names_the_field(body, reason):
    with pytest.raises(MessageError, match="does not match its contract") as caught:
        read_as(ControlBody, body, "the control message")  # type: ignore[arg-type]

    assert reason in str(caught.value)
    assert caught.value.code == "contract_mismatch"


def test_an_adaptation_record_without_a_field_it_always_had_is_a_contract_mismatch():
    record = {"schema_version": 1, "core": "core-1", "computed_at": "2026-01-01T00:00:00+00:00",
              "context": {}, "context_as_of": {}, "weights": {}, "params": {}}  # fmt: skip

    with pytest.raises(MessageError, match="missing required field `changes`"):
        read_as(AdaptationRecord, record, "the adaptation record")


def _status() -> CoreStatus:
    cycle = CycleSummary(count=0, p50_us=None, p99_us=None, p999_us=None, max_us=None,
                         budget_ms=100.0, overruns=0)  # fmt: skip
    latency = LatencySummary(count=0, p50_us=None, p99_us=None, p999_us=None, max_us=None)
    stats = WriterStats(connected=True, buffered=0, buffer_bound=10, dropped=0, reconnects=0,
                        last_error="")  # fmt: skip
    return CoreStatus(
        core="core-1", heartbeat_ns=1, active_set=[], fast_cycle=cycle, tactical_cycle=cycle,
        tick_to_signal=latency, events_in=0, signals_out=0, positions={}, equity=1e6,
        risk_mode="normal", risk_limits=PublishedRiskLimits(max_drawdown=0.2), redis=stats,
        reloads=0, last_error="",
    )  # fmt: skip


def test_a_status_from_a_newer_core_with_fields_this_reader_does_not_know_still_reads():
    plain = _status().to_dict()
    plain["risk_limits"]["max_leverage"] = 3.0
    newer = {**plain, "gpu_temperature": 41}

    status = read_as(CoreStatus, newer, "status:core-1")

    assert status == _status()
