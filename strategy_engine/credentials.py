"""The local stack's credentials: one owner-only JSON file under ``var/``, made on first ``up``.

``strategy-engine up`` generates every secret the services need the first time it runs (random,
from :mod:`secrets`) and writes them to ``var/credentials.json`` with mode 0600:

- Redis ACL users: ``admin`` (operations), ``core`` and ``flows`` (read and write, no admin or
  dangerous commands), ``readonly`` (read commands only); the ``default`` user is disabled;
- MLflow's basic-auth admin user and the secret key its login forms need;
- Prefect's API auth string (``user:password``, sent as HTTP basic auth);
- the alert receiver's bearer token (Alertmanager and Prefect send it with each notification).

A file made before the alert token existed gets one added on the next ``up``.

A file that anyone but its owner may read or write is refused, never silently used or fixed:
whoever can read it controls every service. The Redis ACL file and the MLflow auth
configuration derived from it are written owner-only too, and hold no plain-text password.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.adapters.private_files import check_private, write_private
from core.errors import ConfigError

FILE_NAME = "credentials.json"
SCHEMA_VERSION = 1
REDIS_USERS = ("admin", "core", "flows", "readonly")
MLFLOW_ADMIN = "admin"
PREFECT_USER = "admin"
SECRET_BYTES = 32  # 256 bits; token_urlsafe gives 43 characters that need no escaping in URLs

# What each Redis user may do. Rules are applied left to right, so a later "-" removes commands
# an earlier "+" granted. @dangerous covers CONFIG, KEYS, FLUSHALL, SHUTDOWN, DEBUG, CLIENT,
# INFO and the like: the engine needs none of them, and they would let one leaked password wipe
# or reconfigure the server.
# redis-py sends these two CLIENT subcommands on connecting and ignores an error; allowing them
# (Redis 6.2 answers "unknown subcommand") keeps every connection out of the ACL LOG, which
# should list only real refusals.
_HANDSHAKE = "+client|setinfo +client|maint_notifications"
REDIS_RULES: Mapping[str, str] = {
    "admin": "~* &* +@all",
    # CONFIG GET only: a core checks that the server persists (appendonly, save) before it
    # places orders; CONFIG SET stays refused.
    "core": f"~* &* +@all -@dangerous +config|get {_HANDSHAKE}",
    "flows": f"~* &* +@all -@dangerous {_HANDSHAKE}",
    # The dashboard and status readers: every @read command (GET, HGET, HGETALL, HKEYS, EXISTS,
    # SCAN, XRANGE, XREVRANGE, XLEN, XINFO, ...) plus PING/AUTH/HELLO, never a write or publish.
    "readonly": f"~* resetchannels -@all +@read +@connection +select -@dangerous {_HANDSHAKE}",
}


@dataclass(frozen=True)
class Credentials:
    """The secrets of one stack.

    Attributes
    ----------
    redis : Mapping[str, str]
        Password of each Redis ACL user in :data:`REDIS_USERS`.
    mlflow_password : str
        Password of MLflow's admin user (:data:`MLFLOW_ADMIN`).
    mlflow_secret_key : str
        Flask secret key of MLflow's basic-auth app (signs its CSRF tokens).
    prefect_auth_string : str
        ``user:password`` the Prefect server requires and its clients send.
    alerts_token : str
        Bearer token of the alert receiver (empty in a file older than the receiver, until
        :func:`ensure` adds one).
    created : str
        When the file was made (ISO 8601, UTC).
    """

    redis: Mapping[str, str]
    mlflow_password: str
    mlflow_secret_key: str
    prefect_auth_string: str
    created: str = ""
    mlflow_username: str = MLFLOW_ADMIN
    alerts_token: str = ""

    def redis_url(self, user: str, host: str, port: int, db: int = 0) -> str:
        """Return ``redis://user:password@host:port/db``; it holds a secret, so never log it."""
        return f"redis://{user}:{self.redis[user]}@{_url_host(host)}:{port}/{db}"

    def redis_acl(self) -> str:
        """Return the text of the Redis ACL file: passwords as SHA-256 digests, default off."""
        lines = ["user default off resetkeys resetchannels -@all"]
        for user in REDIS_USERS:
            digest = hashlib.sha256(self.redis[user].encode()).hexdigest()
            lines.append(f"user {user} on #{digest} {REDIS_RULES[user]}")
        return "\n".join(lines) + "\n"

    def prefect_authorization(self) -> str:
        """Return the ``Authorization`` header value Prefect's server expects."""
        return basic_authorization(self.prefect_auth_string)

    def mlflow_authorization(self) -> str:
        """Return the ``Authorization`` header value of MLflow's admin user."""
        return basic_authorization(f"{self.mlflow_username}:{self.mlflow_password}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": SCHEMA_VERSION,
            "created": self.created,
            "redis": {user: self.redis[user] for user in REDIS_USERS},
            "mlflow": {
                "username": self.mlflow_username,
                "password": self.mlflow_password,
                "flask_secret_key": self.mlflow_secret_key,
            },
            "prefect": {"auth_string": self.prefect_auth_string},
            "alerts": {"token": self.alerts_token},
        }

    @classmethod
    def from_dict(cls, data: Any, where: str) -> Credentials:
        """Read :meth:`to_dict`'s layout; a missing or empty field is refused, naming it."""

        def text(section: str, key: str) -> str:
            part = data.get(section) if isinstance(data, dict) else None
            value = part.get(key) if isinstance(part, dict) else None
            if not isinstance(value, str) or not value:
                raise ConfigError(
                    f"{where}: {section}.{key} is missing or empty; stop the stack "
                    "(strategy-engine down), move the file aside and run strategy-engine up "
                    "to make new credentials"
                )
            return value

        version = data.get("version") if isinstance(data, dict) else None
        if version != SCHEMA_VERSION:
            raise ConfigError(f"{where}: version must be {SCHEMA_VERSION}, was {version!r}")
        return cls(
            redis={user: text("redis", user) for user in REDIS_USERS},
            mlflow_username=text("mlflow", "username"),
            mlflow_password=text("mlflow", "password"),
            mlflow_secret_key=text("mlflow", "flask_secret_key"),
            prefect_auth_string=text("prefect", "auth_string"),
            created=str(data.get("created", "")),
            alerts_token=_optional_text(data, "alerts", "token"),
        )


def generate() -> Credentials:
    """Return new random credentials (nothing is written)."""
    return Credentials(
        redis={user: secrets.token_urlsafe(SECRET_BYTES) for user in REDIS_USERS},
        mlflow_password=secrets.token_urlsafe(SECRET_BYTES),
        mlflow_secret_key=secrets.token_urlsafe(SECRET_BYTES),
        prefect_auth_string=f"{PREFECT_USER}:{secrets.token_urlsafe(SECRET_BYTES)}",
        alerts_token=secrets.token_urlsafe(SECRET_BYTES),
        created=datetime.now(UTC).isoformat(timespec="seconds"),
    )


def path_in(var_dir: Path) -> Path:
    """Return where the credentials of the stack whose state lives in ``var_dir`` are."""
    return var_dir / FILE_NAME


def load(path: Path) -> Credentials:
    """Read the credentials file at ``path``.

    Raises
    ------
    FileNotFoundError
        If there is no file (no stack was ever started here).
    ConfigError
        If the file is not a regular file, may be read or written by group or others (the
        message says how to fix it), or is not valid credentials JSON.
    """
    check_private(path)
    try:
        data = json.loads(path.read_text())
    except ValueError as exc:
        raise ConfigError(f"{path} is not valid JSON: {exc}") from exc
    return Credentials.from_dict(data, str(path))


def ensure(path: Path) -> tuple[Credentials, bool]:
    """Load the credentials at ``path``, generating and writing them first if there are none.

    Returns
    -------
    tuple
        The credentials, and whether this call created the file.
    """
    if not path.exists():
        fresh = generate()
        text = json.dumps(fresh.to_dict(), indent=2) + "\n"
        if write_private(path, text, exclusive=True):
            return fresh, True
        # Another `up` made the file between the check and the write: use theirs.
    creds = load(path)
    if not creds.alerts_token:
        # A file from before the alert receiver: add its token, keep every other secret.
        creds = replace(creds, alerts_token=secrets.token_urlsafe(SECRET_BYTES))
        write_private(path, json.dumps(creds.to_dict(), indent=2) + "\n")
    return creds, False


def _optional_text(data: Any, section: str, key: str) -> str:
    part = data.get(section) if isinstance(data, dict) else None
    value = part.get(key) if isinstance(part, dict) else None
    return value if isinstance(value, str) else ""


def basic_authorization(user_and_password: str) -> str:
    """Return the HTTP basic ``Authorization`` header value of ``user:password``."""
    return f"Basic {base64.b64encode(user_and_password.encode()).decode()}"


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host
