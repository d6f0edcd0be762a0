"""The control key: the shared secret that signs control messages (HMAC-SHA256).

``STRATEGY_ENGINE_CONTROL_KEY`` (hex, at least 32 digits) if set; else the file
``control.key`` in the run-time folder (``STRATEGY_ENGINE_VAR_DIR``, default ``<repo>/var``),
created on first use with owner-only permissions. A key file that others can read is refused:
anyone who can read it can steer every core.
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

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
        _create(path)
    info = path.lstat()
    if not stat.S_ISREG(info.st_mode):
        raise ConfigError(f"{path} must be a regular file")
    if info.st_mode & 0o077:
        raise ConfigError(
            f"{path} can be read by others (mode {stat.S_IMODE(info.st_mode):o}); "
            f"run: chmod 600 {path}"
        )
    with path.open("rb") as handle:
        text = handle.read(1024).decode("ascii", errors="replace").strip()
    return _parse(text, str(path))


def _create(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first: use theirs
        return
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_hex(32) + "\n")


def _parse(text: str, where: str) -> bytes:
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise ConfigError(f"the control key in {where} is not hex") from None
    if len(text) < MIN_HEX_DIGITS:
        raise ConfigError(f"the control key in {where} needs at least {MIN_HEX_DIGITS} hex digits")
    return key
