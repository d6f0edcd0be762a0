"""Printing results: JSON for machines (one object per line), plain text for people."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import Any

from core.codec import dumps

# While a ``--json`` command runs (:func:`json_stdout`), its documents wait here and go to the
# real stdout once the command is done, after whatever else it printed went to stderr.
_held: list[str] | None = None


def print_json(payload: Any) -> None:
    line = dumps(payload).decode() + "\n"
    if _held is not None:
        _held.append(line)
        return
    sys.stdout.write(line)


@contextlib.contextmanager
def json_stdout() -> Iterator[None]:
    """Keep stdout for the command's JSON document alone: everything else goes to stderr.

    Third parties print on stdout: MLflow writes "View run ... at: URL" with
    ``sys.stdout.write`` for every run it ends on an HTTP tracking server, and a child process
    (Prefect's temporary server, an embedded Redis) inherits file descriptor 1. Both are sent
    to stderr here: ``sys.stdout`` by :func:`contextlib.redirect_stdout`, and descriptor 1,
    when it is this process's own stdout, by pointing it at descriptor 2. The documents that
    :func:`print_json` held are written to the real stdout at the end, even if the command
    failed after printing one.
    """
    global _held
    real = sys.stdout
    real.flush()
    saved_fd = _divert_descriptor(real)
    _held, previous = [], _held
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        held, _held = _held, previous
        sys.stderr.flush()
        # Whatever a stale reference to the real stdout left buffered belongs to stderr too.
        with contextlib.suppress(OSError, ValueError):
            real.flush()
        if saved_fd is not None:
            os.dup2(saved_fd, 1)
            os.close(saved_fd)
        for line in held:
            real.write(line)
        real.flush()


def _divert_descriptor(stream: Any) -> int | None:
    """Point descriptor 1 at descriptor 2 if ``stream`` is the process's own stdout; return a
    copy of the old descriptor 1 to put back (None when ``stream`` is a capture, in tests)."""
    if stream is None or stream is not sys.__stdout__:
        return None
    try:
        if sys.__stdout__.fileno() != 1:
            return None
        saved = os.dup(1)
    except (OSError, ValueError, AttributeError):
        return None
    try:
        os.dup2(2, 1)
    except OSError:
        os.close(saved)
        return None
    return saved
