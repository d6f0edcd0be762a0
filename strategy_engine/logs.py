"""Structured logs: one configuration for every ``strategy-engine`` command.

The library packages (``core``, ``registry``, ``pipelines``) only ever do
``log = logging.getLogger(__name__)`` and ``log.warning("...", extra={"event": "...", ...})``;
this module decides where those records go and how they look. Every record carries ``time``,
``level``, ``logger``, ``event`` (a stable snake_case name, the key to alert on) and the
event's own fields.

Only the project's own loggers get the handler (and stop propagating): Prefect replaces the
root logger's handlers whenever it is imported, and third-party records (MLflow, Prefect,
urllib3) keep their own handlers on stderr, so they never enter this stream without an
``event``.
"""

from __future__ import annotations

import logging
import math
import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal, TextIO

from pythonjsonlogger.json import JsonFormatter

from core.config import FrozenConfig, require
from core.errors import ConfigError

LEVEL_ENV = "STRATEGY_ENGINE_LOG_LEVEL"
FILE_ENV = "STRATEGY_ENGINE_LOG_FILE"
FORMAT_ENV = "STRATEGY_ENGINE_LOG_FORMAT"
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
FORMATS = ("json", "text")
DEFAULT_EVENT = "log"
"""The ``event`` of a record logged without one (never the project's own events)."""
PROJECT_LOGGERS = ("core", "registry", "pipelines", "strategy_engine")

LogFormat = Literal["json", "text"]

# Attributes every LogRecord has: whatever else a record holds came in through ``extra``.
_RECORD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}


class EventJsonFormatter(JsonFormatter):
    """One JSON object per line: time, level, logger, event, message, then the fields."""

    def __init__(self) -> None:
        super().__init__(
            ["levelname", "name", "message"],
            rename_fields={"levelname": "level", "name": "logger"},
            timestamp="time",
            defaults={"event": DEFAULT_EVENT},
        )

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        # json.dumps writes NaN and Infinity, which JSON parsers refuse: a metric that broke
        # (equity of a bad price, say) must not make the whole line unreadable.
        return {key: _finite(value) for key, value in log_data.items()}


class EventTextFormatter(logging.Formatter):
    """``time level logger event: message key=value ...`` for people at a terminal."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(event)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        if not hasattr(record, "event"):
            record.event = DEFAULT_EVENT
        line = super().format(record)
        fields = [
            f"{key}={value}"
            for key, value in vars(record).items()
            if key not in _RECORD_ATTRS and key != "event"
        ]
        return " ".join([line, *fields]) if fields else line


class LogSettings(FrozenConfig, frozen=True, kw_only=True):
    """Where the project's logs go, resolved from options, then the environment."""

    level: str = "INFO"
    destination: Path | None = None  # None: stderr
    fmt: LogFormat = "text"

    def __post_init__(self) -> None:
        require(
            self.level in LEVELS, f"level must be one of {', '.join(LEVELS)}, was {self.level!r}"
        )
        require(self.fmt in FORMATS, f"fmt must be one of {', '.join(FORMATS)}, was {self.fmt!r}")


def resolve(
    level: str | None = None,
    destination: str | Path | None = None,
    fmt: str | None = None,
    *,
    default_fmt: LogFormat = "text",
    environ: Mapping[str, str] | None = None,
) -> LogSettings:
    """Options first, then ``STRATEGY_ENGINE_LOG_LEVEL|FILE|FORMAT``, then the defaults
    (INFO, stderr, ``default_fmt``); a bad value is a ConfigError naming where it came from."""
    env = os.environ if environ is None else environ
    raw_level = level or env.get(LEVEL_ENV) or "INFO"
    chosen_level = raw_level.strip().upper()
    if chosen_level not in LEVELS:
        source = "--log-level" if level else LEVEL_ENV
        raise ConfigError(f"{source} must be one of {', '.join(LEVELS)}, was {raw_level!r}")
    raw_fmt = fmt or env.get(FORMAT_ENV) or default_fmt
    chosen_fmt = raw_fmt.strip().lower()
    if chosen_fmt not in FORMATS:
        source = "--log-format" if fmt else FORMAT_ENV
        raise ConfigError(f"{source} must be one of {', '.join(FORMATS)}, was {raw_fmt!r}")
    path = destination or env.get(FILE_ENV) or None
    return LogSettings(
        level=chosen_level,
        destination=Path(path) if path else None,
        fmt=chosen_fmt,  # type: ignore[arg-type]  # checked against FORMATS just above
    )


def configure_logging(
    level: str = "INFO", destination: str | Path | None = None, fmt: str = "json"
) -> logging.Handler:
    """Send the project's records at ``level`` and above to ``destination`` (a file, appended
    to, or stderr when None) as ``fmt`` (``json`` lines or ``text``); return the handler.

    Replaces a handler an earlier call installed, so calling it twice does not log twice.
    """
    settings = resolve(level, destination, fmt, environ={})
    handler: logging.Handler
    if settings.destination is None:
        handler = _StderrHandler()
    else:
        settings.destination.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(settings.destination, encoding="utf-8")
    handler.setFormatter(EventJsonFormatter() if settings.fmt == "json" else EventTextFormatter())
    handler.set_name(_HANDLER_NAME)
    for name in PROJECT_LOGGERS:
        logger = logging.getLogger(name)
        for old in [h for h in logger.handlers if h.get_name() == _HANDLER_NAME]:
            logger.removeHandler(old)
            old.close()
        logger.addHandler(handler)
        logger.setLevel(settings.level)
        logger.propagate = False
    return handler


@contextmanager
def logging_configured(
    level: str = "INFO", destination: str | Path | None = None, fmt: str = "json"
) -> Iterator[logging.Handler]:
    """:func:`configure_logging` for the length of a block, then the loggers as they were
    (a command run in-process, by a test or an embedding application, leaves no trace)."""
    loggers = [logging.getLogger(name) for name in PROJECT_LOGGERS]
    saved = [(lg, list(lg.handlers), lg.level, lg.propagate) for lg in loggers]
    handler = configure_logging(level, destination, fmt)
    try:
        yield handler
    finally:
        for logger, handlers, lvl, propagate in saved:
            logger.handlers = handlers
            logger.setLevel(lvl)
            logger.propagate = propagate
        handler.close()


_HANDLER_NAME = "strategy_engine.logs"


class _StderrHandler(logging.StreamHandler):
    """A stream handler on whatever ``sys.stderr`` is at each record (a test's capture, or
    the stream a caller redirected), not the one there was when it was made."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        pass


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value
