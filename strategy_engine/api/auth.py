"""API tokens and roles: who may call what, and how often.

A token is 256 random bits shown once when it is made (``strategy-engine api-token create``);
only its SHA-256 digest is kept, in an owner-only file (``var/api/tokens.json``), so a copy of
the file authorizes nothing. A request names its token with ``Authorization: Bearer <token>``;
the digest of what it sent is compared with each stored digest in constant time.

Roles: ``reader`` reads; ``operator`` reads and steers the cores (halt, resume, weights,
reload); ``producer`` reads and posts market data; ``admin`` may do everything. The file is
read again when it changes, so a revoked token stops working without a restart.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from core.adapters.private_files import check_private, read_private, write_private
from core.errors import ConfigError

FILE_VERSION = 1
MAX_TOKENS = 1000
MAX_FILE_BYTES = 1 << 20
TOKEN_BYTES = 32
NAME = re.compile(r"[A-Za-z0-9._@-]{1,64}")
"""A token's name: it is the caller's identity in the control audit, so short and printable."""


class Role(StrEnum):
    READER = "reader"
    OPERATOR = "operator"
    PRODUCER = "producer"
    ADMIN = "admin"


# What each role may do beyond its own name: every role reads, admin does everything.
_GRANTS: dict[Role, frozenset[Role]] = {
    Role.READER: frozenset({Role.READER}),
    Role.OPERATOR: frozenset({Role.READER, Role.OPERATOR}),
    Role.PRODUCER: frozenset({Role.READER, Role.PRODUCER}),
    Role.ADMIN: frozenset(Role),
}


def allows(held: Role, needed: Role) -> bool:
    """Whether a token of role ``held`` may call a route that needs ``needed``."""
    return needed in _GRANTS[held]


@dataclass(frozen=True)
class TokenRecord:
    name: str
    role: Role
    sha256: str
    created: str

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "role": str(self.role), "sha256": self.sha256,
                "created": self.created}  # fmt: skip


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", errors="surrogatepass")).hexdigest()


class TokenFile:
    """The stored tokens (digests, names, roles) at ``path``; read again when it changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._records: list[TokenRecord] = []

    # -- management (the api-token command) ---------------------------------------------------

    def create(self, name: str, role: Role | str) -> str:
        """Store a new token named ``name`` with ``role``; return the token (shown once)."""
        if not NAME.fullmatch(name):
            raise ConfigError(f"a token name is 1-64 of A-Z a-z 0-9 . _ @ -, was {name!r}")
        role = Role(role)
        records = self.records()
        if any(r.name == name for r in records):
            raise ConfigError(f"a token named {name!r} exists; revoke it first")
        if len(records) >= MAX_TOKENS:
            raise ConfigError(f"at most {MAX_TOKENS} tokens")
        token = secrets.token_urlsafe(TOKEN_BYTES)
        created = datetime.now(UTC).isoformat(timespec="seconds")
        self._write([*records, TokenRecord(name, role, digest(token), created)])
        return token

    def revoke(self, name: str) -> bool:
        records = self.records()
        kept = [r for r in records if r.name != name]
        if len(kept) == len(records):
            return False
        self._write(kept)
        return True

    def records(self) -> list[TokenRecord]:
        """The stored tokens (none if there is no file yet)."""
        with self._lock:
            self._refresh()
            return list(self._records)

    # -- checking (the API) --------------------------------------------------------------------

    def find(self, token: str) -> TokenRecord | None:
        """The record whose digest is ``token``'s, compared in constant time, or None."""
        if not token or len(token) > 256:
            return None
        wanted = digest(token).encode()
        found = None
        for record in self.records():
            # Every record is compared, so the time taken says nothing about which matched.
            if hmac.compare_digest(wanted, record.sha256.encode()):
                found = record
        return found

    def _refresh(self) -> None:
        try:
            info = self.path.stat()
        except FileNotFoundError:
            self._stamp, self._records = None, []
            return
        stamp = (info.st_mtime_ns, info.st_size)
        if stamp == self._stamp:
            return
        self._records = _parse(read_private(self.path, MAX_FILE_BYTES), self.path)
        self._stamp = stamp

    def _write(self, records: list[TokenRecord]) -> None:
        if self.path.exists():
            check_private(self.path)
        text = json.dumps(
            {"version": FILE_VERSION, "tokens": [r.to_dict() for r in records]}, indent=2
        )
        with self._lock:
            write_private(self.path, text + "\n")
            self._stamp = None


def _parse(raw: bytes, path: Path) -> list[TokenRecord]:
    try:
        data: Any = json.loads(raw)
    except ValueError as exc:
        raise ConfigError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict) or data.get("version") != FILE_VERSION:
        raise ConfigError(f"{path}: version must be {FILE_VERSION}")
    records = []
    for item in data.get("tokens", []):
        try:
            records.append(
                TokenRecord(str(item["name"]), Role(item["role"]), str(item["sha256"]),
                            str(item.get("created", "")))
            )  # fmt: skip
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"{path}: a token record is malformed ({exc})") from None
    return records


class RateLimiter:
    """A token bucket per caller: ``burst`` requests at once, refilled at ``rate`` per second.

    Memory is one small entry per token name, and names are bounded by the token file.
    """

    def __init__(self, rate: float, burst: int, *, clock: Any = time.monotonic) -> None:
        if rate <= 0 or burst < 1:
            raise ConfigError("the rate limit needs rate > 0 and burst >= 1")
        self.rate, self.burst, self._clock = rate, float(burst), clock
        self._buckets: dict[str, tuple[float, float]] = {}  # name -> (tokens, last refill)
        self._lock = threading.Lock()

    def take(self, name: str) -> float:
        """Take one request from ``name``'s bucket: 0 if allowed, else seconds to wait."""
        now = self._clock()
        with self._lock:
            tokens, last = self._buckets.get(name, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens >= 1:
                self._buckets[name] = (tokens - 1, now)
                return 0.0
            self._buckets[name] = (tokens, now)
            return (1 - tokens) / self.rate
