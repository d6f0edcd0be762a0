"""Every error the engine raises on purpose, each saying what happens operationally."""

from __future__ import annotations


class StrategyEngineError(Exception):
    """Base class of the engine's own errors."""


class ConfigError(StrategyEngineError, ValueError):
    """Invalid configuration: the component refuses to start and names the offending field."""


class DataError(StrategyEngineError, ValueError):
    """Input failed integrity checks: it is rejected and dead-lettered, and the run goes on."""


class MessageError(DataError):
    """A stored or received message is malformed or of an unknown schema version.

    The reader rejects that one message (dead-letter it) and carries on; nothing stored is changed.
    ``code`` is a stable reason code (a :class:`core.runtime.ingest.RejectCode` value) for
    counting rejections; the message is for people.
    """

    def __init__(self, message: str, code: str = "malformed_message") -> None:
        super().__init__(message)
        self.code = code


class StrategyError(StrategyEngineError):
    """A strategy raised (or its numbers broke) on an event: that model is quarantined on that
    symbol alone; ``model`` and ``symbol`` say which, when known."""

    def __init__(self, message: str, *, model: str = "", symbol: str = "") -> None:
        super().__init__(message)
        self.model = model
        self.symbol = symbol


class AdapterError(StrategyEngineError):
    """A transient failure talking to Redis, MLflow or Prefect.

    Retried with backoff; outputs are buffered meanwhile.
    """


class RegistryError(StrategyEngineError):
    """A registered version cannot be loaded (unknown type or config).

    The version is refused and the running strategy set stays as it is.
    """


class ValidationGateFailed(StrategyEngineError):
    """A Great Expectations gate failed: nothing is promoted, the champion is unchanged."""

    def __init__(self, message: str, report: dict | None = None) -> None:
        super().__init__(message)
        self.report = report or {}
