"""The log configuration: levels, destinations, JSON lines that parse, the fields every record
carries, and the command line's options and environment variables."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from core.errors import ConfigError
from strategy_engine.cli import build_parser, main
from strategy_engine.logs import (
    DEFAULT_EVENT,
    EventJsonFormatter,
    EventTextFormatter,
    logging_configured,
    resolve,
)


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_json_lines_parse_and_carry_time_level_logger_event_and_the_fields(tmp_path: Path):
    target = tmp_path / "logs" / "core.jsonl"  # its folder is made
    with logging_configured("INFO", target, "json"):
        logging.getLogger("core.runtime.service").warning(
            "a strategy raised",
            extra={"event": "strategy_quarantined", "model": "strategy.x", "symbol": "KO",
                   "equity": float("nan"), "counts": {"bad": 2}},
        )  # fmt: skip
        logging.getLogger("registry.strategy_registry").info("no event given")

    first, second = _lines(target)
    assert first["event"] == "strategy_quarantined"
    assert first["level"] == "WARNING"
    assert first["logger"] == "core.runtime.service"
    assert first["message"] == "a strategy raised"
    assert first["time"].endswith("+00:00")  # ISO 8601, UTC
    assert (first["model"], first["symbol"], first["counts"]) == ("strategy.x", "KO", {"bad": 2})
    assert first["equity"] is None  # NaN is not JSON: written as null
    assert second["event"] == DEFAULT_EVENT and second["logger"] == "registry.strategy_registry"


def test_the_level_filters_and_the_configuration_is_undone_after_the_block(tmp_path: Path):
    target = tmp_path / "warn.jsonl"
    package = logging.getLogger("pipelines")
    before = (list(package.handlers), package.level, package.propagate)
    with logging_configured("WARNING", target, "json"):
        logging.getLogger("pipelines.flows").info("dropped", extra={"event": "retrain_finished"})
        logging.getLogger("pipelines.flows").error("kept", extra={"event": "retrain_failed"})
        assert package.propagate is False  # Prefect's root handler must not print it twice
    assert [r["event"] for r in _lines(target)] == ["retrain_failed"]
    assert (list(package.handlers), package.level, package.propagate) == before


def test_configuring_twice_does_not_log_twice(tmp_path: Path):
    target = tmp_path / "once.jsonl"
    with logging_configured("INFO", target, "json"), logging_configured("INFO", target, "json"):
        logging.getLogger("core").warning("x", extra={"event": "dead_letters"})
    assert len(_lines(target)) == 1


def test_text_format_shows_event_message_and_fields(capsys):
    with logging_configured("DEBUG", None, "text"):
        logging.getLogger("core.risk.manager").warning(
            "halted: operator", extra={"event": "risk_halted", "reason": "operator"}
        )
    err = capsys.readouterr().err.strip()
    assert "WARNING core.risk.manager risk_halted: halted: operator" in err
    assert err.endswith("reason=operator")


def test_formatters_work_on_records_without_extra_fields():
    record = logging.makeLogRecord({"name": "core", "levelno": 20, "levelname": "INFO",
                                    "msg": "hello"})  # fmt: skip
    assert json.loads(EventJsonFormatter().format(record))["event"] == DEFAULT_EVENT
    assert "core log: hello" in EventTextFormatter().format(record)


def test_settings_come_from_options_then_environment_then_defaults():
    env = {"STRATEGY_ENGINE_LOG_LEVEL": "debug", "STRATEGY_ENGINE_LOG_FILE": "/x/y.log"}
    from_env = resolve(environ=env)
    assert (from_env.level, str(from_env.destination), from_env.fmt) == (
        "DEBUG",
        "/x/y.log",
        "text",
    )
    chosen = resolve("error", "z.log", "json", environ=env)
    assert (chosen.level, str(chosen.destination), chosen.fmt) == ("ERROR", "z.log", "json")
    default = resolve(environ={}, default_fmt="json")
    assert (default.level, default.destination, default.fmt) == ("INFO", None, "json")
    with pytest.raises(ConfigError, match="STRATEGY_ENGINE_LOG_LEVEL"):
        resolve(environ={"STRATEGY_ENGINE_LOG_LEVEL": "loud"})
    with pytest.raises(ConfigError, match="STRATEGY_ENGINE_LOG_FORMAT"):
        resolve(environ={"STRATEGY_ENGINE_LOG_FORMAT": "xml"})


def test_log_options_go_before_or_after_the_command():
    parser = build_parser()
    before = parser.parse_args(["--log-level", "debug", "--log-format", "json", "status"])
    assert (before.log_level, before.log_format, before.log_file) == ("DEBUG", "json", None)
    after = parser.parse_args(["status", "--log-file", "a.log"])
    assert (after.log_level, after.log_file) == (None, "a.log")


def test_a_command_logs_to_the_file_it_is_given_and_keeps_stdout_for_its_json(
    tmp_path: Path, capsys, monkeypatch
):
    target = tmp_path / "cli.jsonl"
    monkeypatch.setenv("STRATEGY_ENGINE_LOG_FORMAT", "json")

    def handler(args) -> int:
        print("third-party chatter on stdout")
        logging.getLogger("strategy_engine.commands").warning("w", extra={"event": "probe"})
        from strategy_engine.output import print_json

        print_json({"ok": True})
        return 0

    parser = build_parser()
    real_parse = parser.parse_args

    def parse(argv=None):
        args = real_parse(argv)
        args.handler, args.json = handler, True
        return args

    monkeypatch.setattr(parser, "parse_args", parse)
    monkeypatch.setattr("strategy_engine.cli.build_parser", lambda: parser)

    assert main(["--log-file", str(target), "status"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out) == {"ok": True} and out.count("\n") == 1
    assert "third-party chatter on stdout" in err
    assert [r["event"] for r in _lines(target)] == ["probe"]
