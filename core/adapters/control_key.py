"""The control key: the shared secret that signs control messages (HMAC-SHA256).

``STRATEGY_ENGINE_CONTROL_KEY`` (hex, at least 32 digits) if set; else the file
``control.key`` in the run-time folder (``STRATEGY_ENGINE_VAR_DIR``, default ``<repo>/var``),
created on first use with owner-only permissions. A key file that others can read is refused:
anyone who can read it can steer every core.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from core.adapters.private_files import read_private, write_private
from core.errors import ConfigError

ENV = "STRATEGY_ENGINE_CONTROL_KEY"
FILE_NAME = "control.key"
MIN_HEX_DIGITS = 32


def default_var_dir() -> Path:
    return Path(
        os.environ.get("STRATEGY_ENGINE_VAR_DIR", Path(__file__).resolve().parents[2] / "var")
    )


def control_key(var_dir: Path | None = None) -> bytes:
    """The key, from the environment or the key file (made if there is none)."""
    value = os.environ.get(ENV, "").strip()
    if value:
        return _parse(value, ENV)
    path = (var_dir or default_var_dir()) / FILE_NAME
    if not path.exists():
        # Another process may make it first: then its key is used (exclusive write).
        write_private(path, secrets.token_hex(32) + "\n", exclusive=True)
    text = read_private(path, 1024).decode("ascii", errors="replace").strip()
    return _parse(text, str(path))


def _parse(text: str, where: str) -> bytes:
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise ConfigError(f"the control key in {where} is not hex") from None
    if len(text) < MIN_HEX_DIGITS:
        raise ConfigError(f"the control key in {where} needs at least {MIN_HEX_DIGITS} hex digits")
    return key
