"""Files only their owner may read: secrets (the control key, the stack's credentials, tokens).

One place decides what such a file must be, for every secret of the project: a regular file
(a link could point anywhere), of this user, that nobody else can read or write; written
0600 from the first byte and atomically; read with a bound on its size.
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

from core.errors import ConfigError


def check_private(path: Path) -> None:
    """Refuse ``path`` unless it is a regular file only its owner may read or write.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ConfigError
        Otherwise, naming the mode found and the command that fixes it.
    """
    info = path.lstat()  # a symlink is refused, not followed: it could point anywhere
    if not stat.S_ISREG(info.st_mode):
        raise ConfigError(f"{path} must be a regular file (not a link or a folder)")
    if info.st_mode & 0o077:
        raise ConfigError(
            f"{path} can be read or written by others (mode {stat.S_IMODE(info.st_mode):04o}): "
            f"refusing to use it; run: chmod 600 {path}"
        )
    if hasattr(os, "getuid") and info.st_uid != os.getuid():
        raise ConfigError(
            f"{path} belongs to uid {info.st_uid}, not to this user ({os.getuid()}); "
            "run the stack as the user who owns it"
        )


def write_private(path: Path, text: str, *, exclusive: bool = False) -> bool:
    """Write ``text`` to ``path`` with mode 0600, atomically (readers see old or new, whole).

    The content goes to a temporary file created 0600 in the same folder, so the secret is
    never readable by others, not even for an instant, whatever the umask.

    Parameters
    ----------
    exclusive : bool
        Do not replace an existing file: return False if ``path`` exists by then.

    Returns
    -------
    bool
        Whether ``path`` now holds ``text``.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        if not exclusive:
            os.replace(temporary, path)
            return True
        try:
            os.link(temporary, path)  # fails if the file exists: first writer wins
        except FileExistsError:
            return False
        return True
    finally:
        temporary.unlink(missing_ok=True)


def read_private(path: Path, max_bytes: int = 4096) -> bytes:
    """The content of ``path`` after :func:`check_private`, refused past ``max_bytes``."""
    check_private(path)
    with path.open("rb") as handle:
        raw = handle.read(max_bytes + 1)
    if len(raw) > max_bytes:
        raise ConfigError(f"{path} is larger than {max_bytes} bytes")
    return raw
