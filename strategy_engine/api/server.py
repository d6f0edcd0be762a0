"""Serving the API with uvicorn: bounded connections, heads and keep-alive; a clean exit."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any

import uvicorn


class _Server(uvicorn.Server):
    """uvicorn's server, but SIGTERM and SIGINT end it with status 0.

    uvicorn raises a caught signal again once it has shut down, so a clean stop (``make down``,
    the supervisor) would look like a kill; here the signal only asks for the shutdown.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield  # signals reach the main thread only (a server in a test's thread)
            return
        previous = {s: signal.signal(s, self._stop) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)

    def _stop(self, number: int, frame: FrameType | None) -> None:
        if self.should_exit and number == signal.SIGINT:
            self.force_exit = True  # a second Ctrl-C: do not wait for open streams
        self.should_exit = True


def serve(app: Any, host: str, port: int) -> None:
    """Serve ``app`` with uvicorn until SIGTERM/SIGINT."""
    _Server(config(app, host, port)).run()


def config(app: Any, host: str, port: int) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        # Bounds: a few systems and their event streams, not thousands of browsers.
        limit_concurrency=128,
        timeout_keep_alive=5,
        h11_max_incomplete_event_size=16 * 1024,
        server_header=False,
        # Streams end on shutdown rather than holding it (they resume with Last-Event-ID).
        timeout_graceful_shutdown=3,
    )
