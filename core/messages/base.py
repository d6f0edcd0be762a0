"""What every message between processes and tiers shares: frozen, typed, keyword-built."""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec

from core.errors import MessageError

T = TypeVar("T")


class Message(msgspec.Struct, frozen=True, kw_only=True):
    """A record one process writes and another reads.

    Unknown fields are ignored when reading, so a reader keeps working while a newer writer
    adds fields; a field it knows that is missing or of the wrong type fails the read.
    """

    def to_dict(self) -> dict[str, Any]:
        """The plain JSON-safe form the writer stores."""
        result: dict[str, Any] = msgspec.to_builtins(self)
        return result


def read_as(kind: type[T], value: Any, what: str) -> T:
    """Validate plain data (a decoded JSON object) as ``kind``.

    Raises
    ------
    MessageError
        With code ``contract_mismatch``, naming ``what`` and the offending field: the writer
        and this reader disagree on the contract.
    """
    try:
        return msgspec.convert(value, kind)
    except msgspec.ValidationError as exc:
        raise MessageError(
            f"{what} does not match its contract: {exc}", "contract_mismatch"
        ) from None
