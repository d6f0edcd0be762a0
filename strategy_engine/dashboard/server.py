"""The dashboard's HTTP server: the page, ``/api/state``, ``/metrics`` and ``/healthz``.

A stdlib :class:`ThreadingHTTPServer` on loopback: one thread per request, no dependency
beyond the project's. Every answer carries a strict Content-Security-Policy (scripts and
styles only from this server), so the page runs nothing it did not serve itself.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import redis

from core import codec
from strategy_engine.dashboard.page import CSS, HTML, JS
from strategy_engine.dashboard.state import DashboardReader
from strategy_engine.metrics import CONTENT_TYPE as METRICS_TYPE
from strategy_engine.metrics import render_metrics

_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}
_STATIC = {
    "/": (HTML.encode(), "text/html; charset=utf-8"),
    "/index.html": (HTML.encode(), "text/html; charset=utf-8"),
    "/app.css": (CSS.encode(), "text/css; charset=utf-8"),
    "/app.js": (JS.encode(), "text/javascript; charset=utf-8"),
}


class DashboardServer(ThreadingHTTPServer):
    """Serve the dashboard of one core from one Redis namespace."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], reader: DashboardReader) -> None:
        self.reader = reader
        super().__init__(address, _Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"

    def stop(self) -> None:
        """Stop serving (when started by :func:`start_dashboard`) and close the socket."""
        self.shutdown()
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    server: DashboardServer

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if path in _STATIC:
            body, content_type = _STATIC[path]
            self._send(200, body, content_type)
        elif path == "/api/state":
            self._answer(lambda: codec.dumps(self.server.reader.state()), "application/json")
        elif path == "/metrics":
            self._answer(
                lambda: render_metrics(self.server.reader.metrics_summary()).encode(),
                METRICS_TYPE,
            )
        elif path == "/healthz":
            self._send(200, b"ok\n", "text/plain; charset=utf-8")
        else:
            self._send(404, b"not found\n", "text/plain; charset=utf-8")

    def _answer(self, produce: Any, content_type: str) -> None:
        try:
            body = produce()
        except redis.RedisError as exc:
            # Redis away: say so in one line; the page shows "unreachable" and keeps polling.
            message = f"redis unavailable: {type(exc).__name__}\n".encode()
            self._send(503, message, "text/plain; charset=utf-8")
            return
        self._send(200, body, content_type)

    def _send(self, code: int, body: bytes, content_type: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in _HEADERS.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # a line per poll each second would drown the log


def start_dashboard(
    client: redis.Redis,
    *,
    namespace: str = "se",
    core: str = "core-1",
    host: str = "127.0.0.1",
    port: int = 8050,
) -> DashboardServer:
    """Start the dashboard on ``host:port`` in a daemon thread and return its server.

    Parameters
    ----------
    client : redis.Redis
        A client with ``decode_responses=False`` on the core's Redis.
    namespace, core : str
        The core's key prefix and name.
    host, port : str, int
        Where to listen (loopback by default); port 0 picks a free one (see ``server.url``).
    """
    server = DashboardServer((host, port), DashboardReader(client, namespace, core))
    threading.Thread(target=server.serve_forever, name="dashboard", daemon=True).start()
    return server
