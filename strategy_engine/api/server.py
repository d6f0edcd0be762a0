"""Serving the API with uvicorn: bounded connections, heads and keep-alive."""

from __future__ import annotations

from typing import Any


def serve(app: Any, host: str, port: int) -> None:
    """Serve ``app`` with uvicorn until SIGTERM/SIGINT."""
    import uvicorn

    uvicorn.Server(config(app, host, port)).run()


def config(app: Any, host: str, port: int) -> Any:
    import uvicorn

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
