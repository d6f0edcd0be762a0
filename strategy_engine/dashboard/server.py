"""The former stand-alone dashboard server: the page, ``/api/state``, ``/metrics``, ``/healthz``.

``strategy-engine dashboard`` and ``up`` now serve the dashboard from the API's application
(:mod:`strategy_engine.api.dashboard`); this stdlib server stays for code that embeds
:func:`start_dashboard`, and answers the page's ``/v1/dashboard`` too, so the same page works
on both. It runs behind :mod:`strategy_engine.http_guard`, shared with the
metrics server: a deadline on each request, bounded heads, no bodies, GET and HEAD only, a
``Host`` allow-list against DNS rebinding, a bounded number of handler threads, loopback
unless a bearer token is set, and security headers on every answer. The page's
Content-Security-Policy lets it load only its own script and stylesheet and fetch only this
server, so it runs nothing it did not serve itself. Every GET only reads Redis.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from urllib.parse import urlsplit

import redis
from prometheus_client import CONTENT_TYPE_LATEST

from core import codec
from strategy_engine.dashboard.page import CSS, JS, PAGE, PAGE_CSP, STATE_PATH
from strategy_engine.dashboard.state import DashboardReader
from strategy_engine.http_guard import STRICT_CSP, GuardedHandler, GuardedHTTPServer, HttpGuard
from strategy_engine.metrics import exposition

TOKEN_HINT = "give --token-file PATH (mode 0600) or set STRATEGY_ENGINE_DASHBOARD_TOKEN"
_PAGE = (PAGE.encode(), "text/html; charset=utf-8", PAGE_CSP)
_STATIC = {
    "/": _PAGE,
    "/index.html": _PAGE,
    "/app.css": (CSS.encode(), "text/css; charset=utf-8", STRICT_CSP),
    "/app.js": (JS.encode(), "text/javascript; charset=utf-8", STRICT_CSP),
}
_TEXT = "text/plain; charset=utf-8"


class DashboardServer(GuardedHTTPServer):
    """Serve the dashboard of one core from one Redis namespace.

    Parameters
    ----------
    address : tuple of (str, int)
        Where to listen; a non-loopback address needs ``guard.token``.
    reader : DashboardReader
        What the page and ``/metrics`` show.
    guard : HttpGuard or None
        Timeouts, bounds, token and extra host names; the defaults when None.
    """

    def __init__(
        self, address: tuple[str, int], reader: DashboardReader, guard: HttpGuard | None = None
    ) -> None:
        self.reader = reader
        super().__init__(address, _Handler, guard, bind_hint=TOKEN_HINT)

    @property
    def url(self) -> str:
        return self.base_url


class _Handler(GuardedHandler):
    server: DashboardServer

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if path in _STATIC:
            body, content_type, csp = _STATIC[path]
            self.respond(200, body, content_type, csp=csp)
        elif path in ("/api/state", STATE_PATH):
            self._answer(lambda: codec.dumps(self.server.reader.state()), "application/json")
        elif path == "/metrics":
            self._answer(
                lambda: exposition(self.server.reader.metrics_summary()), CONTENT_TYPE_LATEST
            )
        elif path == "/healthz":
            self.respond(200, b"ok\n", _TEXT)
        else:
            self.respond(404, b"not found\n", _TEXT)

    def _answer(self, produce: Callable[[], bytes], content_type: str) -> None:
        try:
            body = produce()
        except redis.RedisError as exc:
            # Redis away: say so in one line; the page shows "unreachable" and keeps polling.
            self.respond(503, f"redis unavailable: {type(exc).__name__}\n".encode(), _TEXT)
            return
        self.respond(200, body, content_type)


def start_dashboard(
    client: redis.Redis,
    *,
    namespace: str = "se",
    core: str = "core-1",
    host: str = "127.0.0.1",
    port: int = 8050,
    guard: HttpGuard | None = None,
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
    guard : HttpGuard or None
        Timeouts, bounds, bearer token and extra host names; the defaults when None.
    """
    server = DashboardServer((host, port), DashboardReader(client, namespace, core), guard)
    threading.Thread(target=server.serve_forever, name="dashboard", daemon=True).start()
    return server
