"""The hardening shared by the dashboard's and the core's stdlib HTTP servers.

Both servers are a stdlib :class:`~http.server.ThreadingHTTPServer` because no ASGI server is
the project's HTTP layer yet; the HTTP API work replaces both with one application. Until
then each of them is a :class:`GuardedHTTPServer` with a :class:`GuardedHandler`, which

* gives every connection one deadline to deliver its request line and headers (a client that
  trickles bytes is dropped as surely as an idle one) and a timeout on every write;
* bounds the request line and the whole head well below the stdlib's 64 KiB per line, and
  refuses any body (no handler takes one): ``Content-Length`` > 0 or a ``Transfer-Encoding``
  is answered 413;
* serves GET and HEAD only (405 with ``Allow`` otherwise); every GET only reads;
* answers only requests whose ``Host`` names this server: ``localhost``, ``127.0.0.1``,
  ``[::1]``, the bound address, the address the connection arrived on, or a name allowed
  explicitly, with the server's port; anything else gets 421. A page on another site that
  rebinds its own name to this machine (DNS rebinding) sends its own name, so it is refused;
* runs at most a fixed number of handler threads; a connection past that bound is answered
  503 at once by the accepting thread instead of getting a thread of its own;
* listens on loopback unless a bearer token is set, and once one is set every request must
  carry ``Authorization: Bearer <token>`` (401 otherwise);
* puts ``X-Content-Type-Options: nosniff``, ``Cache-Control: no-store``, a
  Content-Security-Policy with ``frame-ancestors 'none'`` and their kin on every answer.

Connections are HTTP/1.0, one request each, so a thread's life is bounded by the read
deadline, the handler's work and the write timeout.
"""

from __future__ import annotations

import hmac
import io
import ipaddress
import re
import socket
import sys
import threading
import time
from collections.abc import Iterable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import msgspec

from core.adapters.private_files import read_private
from core.config import FrozenConfig, require
from core.errors import ConfigError

TIMEOUT_S = 10.0
"""Seconds a connection has to deliver its request head, and the timeout of each write."""
MAX_HANDLERS = 32
"""Handler threads running at once; a connection past this bound is answered 503."""
MAX_REQUEST_LINE = 8 * 1024
"""Longest request line (method, target, version) accepted; longer is answered 414."""
MAX_HEAD = 16 * 1024
"""Most bytes of request line and headers together; more is answered 431."""
MIN_TOKEN_CHARS = 16
"""Shortest bearer token accepted, so a token cannot be guessed in a few requests."""
STRICT_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
"""The Content-Security-Policy of every answer that is not a page: nothing may load or run."""

_LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")
_HOST = re.compile(r"^(\[[0-9a-f:.]+\]|[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?)(?::([0-9]{1,5}))?$")
_DIGITS = re.compile(r"^[0-9]+$")  # ASCII only: str.isdigit() also takes "²"
_TOKEN = re.compile(r"^[\x21-\x7e]+$")  # visible ASCII: fits a header, nothing to trim
_LINGER_S = 1.0  # how long a refused client may take to finish sending what it sent
_LINGER_BYTES = 64 * 1024
_SECURITY_HEADERS = (
    ("X-Content-Type-Options", "nosniff"),
    ("Cache-Control", "no-store"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
    ("Cross-Origin-Resource-Policy", "same-origin"),
)


class HttpGuard(FrozenConfig, frozen=True, kw_only=True):
    """The limits and credentials one server enforces.

    Parameters
    ----------
    timeout_s : float
        Seconds a connection has to send its whole request head; also each write's timeout.
    max_handlers : int
        Handler threads allowed at once; a connection past it is answered 503.
    token : str or None
        Bearer token every request must carry; required to listen off loopback.
    allow_hosts : tuple of str
        Extra names (or addresses) the ``Host`` header may carry, without a port.
    max_request_line, max_head : int
        Byte bounds of the request line and of the request line plus headers.
    """

    timeout_s: float = TIMEOUT_S
    max_handlers: int = MAX_HANDLERS
    token: str | None = None
    allow_hosts: tuple[str, ...] = ()
    max_request_line: int = MAX_REQUEST_LINE
    max_head: int = MAX_HEAD

    def __post_init__(self) -> None:
        require(self.timeout_s > 0, f"timeout_s must be positive, was {self.timeout_s!r}")
        require(
            self.max_handlers >= 1, f"max_handlers must be at least 1, was {self.max_handlers!r}"
        )
        require(0 < self.max_request_line <= self.max_head, "need 0 < max_request_line <= max_head")
        if self.token is not None:
            check_token(self.token, "the bearer token")
        names = tuple(_host_name(name) for name in self.allow_hosts)
        msgspec.structs.force_setattr(self, "allow_hosts", names)

    def __repr__(self) -> str:
        # The token is a credential: a guard in a log line or a traceback must not show it.
        shown = ", ".join(
            f"{name}={getattr(self, name)!r}" for name in self.__struct_fields__ if name != "token"
        )
        return f"{type(self).__name__}({shown})"

    def check_bind(self, host: str, hint: str = "configure a bearer token") -> None:
        """Raise :class:`ConfigError` if ``host`` is not loopback and no token is set.

        Parameters
        ----------
        host : str
            The address to listen on; names other than ``localhost`` count as not loopback.
        hint : str
            How the caller's user sets a token, appended to the one-line error.
        """
        if self.token is None and not is_loopback(host):
            raise ConfigError(
                f"refusing to listen on {host or '*'}: not a loopback address and no bearer "
                f"token is set ({hint}); every request must then carry "
                "'Authorization: Bearer <token>'"
            )


def is_loopback(host: str) -> bool:
    """True when ``host`` is ``localhost`` or a loopback IP address (``127.0.0.0/8``, ``::1``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name (or "", all interfaces) may resolve anywhere


def check_token(token: str, what: str) -> str:
    """Return ``token`` if it can serve as a bearer token; else raise :class:`ConfigError`."""
    if not _TOKEN.match(token):
        raise ConfigError(f"{what} must be visible ASCII characters only (no spaces)")
    if len(token) < MIN_TOKEN_CHARS:
        raise ConfigError(f"{what} must be at least {MIN_TOKEN_CHARS} characters long")
    return token


def read_token_file(path: Path) -> str:
    """Read a bearer token from ``path``, which only its owner may read or write (e.g. 0600).

    Raises
    ------
    ConfigError
        If others may access the file, or its content is not a usable token.
    """
    raw = read_private(path, 4096)
    try:
        text = raw.decode("ascii").strip()
    except UnicodeDecodeError:
        raise ConfigError(f"token file {path} is not ASCII") from None
    return check_token(text, f"the token in {path}")


def _host_name(name: str) -> str:
    """The form a ``Host`` header carries ``name`` in: lower case, IPv6 in brackets."""
    lowered = name.strip().lower()
    try:
        address = ipaddress.ip_address(lowered.strip("[]"))
    except ValueError:
        if not _HOST.match(lowered) or ":" in lowered:
            raise ConfigError(f"not a host name: {name!r} (give it without a port)") from None
        return lowered
    return f"[{address.compressed}]" if address.version == 6 else address.compressed


def _header_lines(pairs: Iterable[tuple[str, str]]) -> bytes:
    return b"".join(f"{name}: {value}\r\n".encode("latin-1") for name, value in pairs)


class GuardedHTTPServer(ThreadingHTTPServer):
    """A :class:`ThreadingHTTPServer` enforcing an :class:`HttpGuard`.

    Parameters
    ----------
    address : tuple of (str, int)
        Where to listen; an address with ``:`` is IPv6. Port 0 picks a free port.
    handler : type of GuardedHandler
        The request handler.
    guard : HttpGuard or None
        The limits; the defaults (loopback only, no token) when None.
    bind_hint : str
        How to set a token, said in the error when ``address`` is not loopback and none is set.

    Attributes
    ----------
    active_handlers, peak_handlers : int
        Handler threads running now, and the most that ever ran at once.
    """

    daemon_threads = True
    request_queue_size = 64  # a burst is accepted and answered (maybe 503), not left in SYN

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[GuardedHandler],
        guard: HttpGuard | None = None,
        bind_hint: str = "configure a bearer token",
    ) -> None:
        self.guard = guard or HttpGuard()
        self.guard.check_bind(address[0], bind_hint)
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self._slots = threading.BoundedSemaphore(self.guard.max_handlers)
        self._count_lock = threading.Lock()
        self.active_handlers = 0
        self.peak_handlers = 0
        super().__init__(address, handler)
        self.allowed_names = frozenset(
            (*_LOOPBACK_NAMES, *self.guard.allow_hosts, *self._bound_names())
        )

    @property
    def base_url(self) -> str:
        """``http://host:port`` of this server (IPv6 in brackets)."""
        host, port = str(self.server_address[0]), self.server_address[1]
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}"

    def _bound_names(self) -> tuple[str, ...]:
        host = str(self.server_address[0])
        try:
            if ipaddress.ip_address(host).is_unspecified:
                return ()  # 0.0.0.0 or ::; the address each connection arrived on counts
        except ValueError:
            pass
        return (_host_name(host),)

    def process_request(self, request: Any, client_address: Any) -> None:
        # Past the bound, refuse here rather than start a thread: threads stay bounded.
        if not self._slots.acquire(blocking=False):
            _refuse_busy(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        with self._count_lock:
            self.active_handlers += 1
            self.peak_handlers = max(self.peak_handlers, self.active_handlers)
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._count_lock:
                self.active_handlers -= 1
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], OSError):
            return  # the client went away or stalled: nothing to report
        super().handle_error(request, client_address)

    def stop(self) -> None:
        """Stop serving (when :meth:`serve_forever` runs) and close the socket."""
        self.shutdown()
        self.server_close()


def _refuse_busy(request: socket.socket) -> None:
    """Answer 503 on the accepting thread without waiting for anything."""
    body = b"busy: too many connections at once, retry shortly\n"
    head = (
        b"HTTP/1.0 503 Service Unavailable\r\n"
        + _header_lines(
            (
                ("Content-Type", "text/plain; charset=utf-8"),
                ("Content-Length", str(len(body))),
                ("Retry-After", "1"),
                ("Connection", "close"),
                ("Content-Security-Policy", STRICT_CSP),
                *_SECURITY_HEADERS,
            )
        )
        + b"\r\n"
    )
    try:
        # Non-blocking: a client that never reads cannot stall the accepting thread. A fresh
        # socket's send buffer takes these few hundred bytes whole.
        request.setblocking(False)
        request.send(head + body)
        request.shutdown(socket.SHUT_WR)
        # Read what already arrived, so the close is a FIN, not a reset that may discard
        # the answer before the client reads it.
        while request.recv(_LINGER_BYTES):
            pass
    except OSError:
        pass
    finally:
        request.close()


class _HeadTooLarge(Exception):
    """The request line or head went past its bound."""

    def __init__(self, in_request_line: bool) -> None:
        super().__init__("request head too large")
        self.in_request_line = in_request_line


class _DeadlineReader(io.RawIOBase):
    """The socket's input, where every receive waits at most until one deadline."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self._sock = sock
        self._deadline = deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("request head not received in time")
        self._sock.settimeout(left)
        return self._sock.recv_into(buffer)


class _HeadReader:
    """Lines of the request head, refused once they pass a byte budget.

    The stdlib reads the request line and each header line up to 64 KiB and up to 100
    headers; this bounds the first line and the whole head instead.
    """

    def __init__(
        self, inner: io.BufferedReader[_DeadlineReader], max_line: int, budget: int
    ) -> None:
        self._inner = inner
        self._max_line = max_line
        self._left = budget
        self._lines = 0

    def readline(self, size: int = -1) -> bytes:
        first = self._lines == 0
        cap = min(self._left, self._max_line) if first else self._left
        if size >= 0:
            cap = min(cap, size - 1)
        line = self._inner.readline(cap + 1)
        self._lines += 1
        if len(line) > cap:
            raise _HeadTooLarge(in_request_line=first)
        self._left -= len(line)
        return line

    def read(self, size: int = -1) -> bytes:
        return b""  # no handler reads a body: bodies are refused

    @property
    def closed(self) -> bool:
        return self._inner.closed

    def close(self) -> None:
        self._inner.close()


class _SocketWriter(io.BufferedIOBase):
    """Writes with ``sendall``, whose timeout bounds each whole write, not each chunk."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self._sock.sendall(data)
        with memoryview(data) as view:
            return view.nbytes


class GuardedHandler(BaseHTTPRequestHandler):
    """A request handler that checks each request against its server's :class:`HttpGuard`.

    Subclasses implement ``do_GET`` and answer with :meth:`respond`; a HEAD request runs the
    same method and gets no body. Every answer carries the security headers.
    """

    server: GuardedHTTPServer
    protocol_version = "HTTP/1.0"  # one request per connection: no idle keep-alive to bound
    # A request line without a version still gets a status line in its answer.
    default_request_version = "HTTP/1.0"
    _csp = STRICT_CSP
    _linger = False

    def setup(self) -> None:
        guard = self.server.guard
        self.connection = self.request
        reader = io.BufferedReader(
            _DeadlineReader(self.connection, time.monotonic() + guard.timeout_s)
        )
        self.rfile = _HeadReader(reader, guard.max_request_line, guard.max_head)  # type: ignore[assignment]
        self.wfile = _SocketWriter(self.connection)

    def handle_one_request(self) -> None:
        self.close_connection = True
        self.raw_requestline = b""
        self.requestline = self.request_version = ""
        self.command = ""
        try:
            self.raw_requestline = self.rfile.readline()
            if not self.raw_requestline:
                return
            if not self.parse_request():
                self._linger = True  # the stdlib answered (400 and the like) mid-request
                return
            if self.request_version == "HTTP/0.9":
                return  # no status line to answer with; a browser never sends one
            refusal = self._refusal()
            if refusal is not None:
                self.refuse(*refusal)
                return
            self.do_GET()  # for HEAD too: respond() leaves the body out
            self.wfile.flush()
        except _HeadTooLarge as exc:
            if exc.in_request_line:
                self.refuse(HTTPStatus.REQUEST_URI_TOO_LONG, "request line too long")
            else:
                self.refuse(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "request head too large")
        except TimeoutError:
            return  # too slow to send its request (or to read the answer): drop it

    def do_GET(self) -> None:
        raise NotImplementedError

    def _refusal(self) -> tuple[int, str, tuple[tuple[str, str], ...]] | None:
        """Why this request is refused (status, reason, extra headers), or None."""
        hosts = self.headers.get_all("Host") or []
        if len(hosts) != 1:
            return HTTPStatus.BAD_REQUEST, "exactly one Host header is required", ()
        if not self._host_allowed(hosts[0]):
            return HTTPStatus.MISDIRECTED_REQUEST, "this server does not answer for that host", ()
        token = self.server.guard.token
        if token is not None and not _bearer_matches(self.headers.get_all("Authorization"), token):
            challenge = (("WWW-Authenticate", 'Bearer realm="strategy-engine"'),)
            return HTTPStatus.UNAUTHORIZED, "a bearer token is required", challenge
        if self.command not in ("GET", "HEAD"):
            allow = (("Allow", "GET, HEAD"),)
            return HTTPStatus.METHOD_NOT_ALLOWED, "only GET and HEAD are served", allow
        if self.headers.get("Transfer-Encoding") is not None:
            return HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "request bodies are not accepted", ()
        lengths = self.headers.get_all("Content-Length") or []
        if any(not _DIGITS.match(value.strip()) for value in lengths):
            return HTTPStatus.BAD_REQUEST, "malformed Content-Length", ()
        if any(value.strip().lstrip("0") for value in lengths):  # a length other than 0
            return HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "request bodies are not accepted", ()
        if not self.path.startswith("/"):
            return HTTPStatus.BAD_REQUEST, "only origin-form targets (/path) are served", ()
        return None

    def _host_allowed(self, value: str) -> bool:
        found = _HOST.match(value.strip().lower())
        if found is None:
            return False
        name, port = found.group(1), int(found.group(2) or 80)
        if port != self.server.server_address[1]:
            return False
        if name in self.server.allowed_names:
            return True
        # The literal address this connection arrived on: only this machine's own address,
        # which a rebinding page cannot send (it sends its own name).
        local = str(self.connection.getsockname()[0])
        return name == _host_name(local)

    def respond(self, code: int, body: bytes, content_type: str, *, csp: str = STRICT_CSP) -> None:
        """Send ``body`` (none for HEAD) with ``code``, its type and the security headers."""
        self._csp = csp
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def refuse(self, code: int, reason: str, headers: Iterable[tuple[str, str]] = ()) -> None:
        """Answer ``code`` with ``reason`` as plain text and close, reading no more."""
        self._linger = True
        body = f"{reason}\n".encode()
        self.send_response(code)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Connection", "close")
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        # The stdlib's own refusals (bad request line, bad version) in the same plain form.
        self.refuse(code, message or HTTPStatus(code).phrase)

    def send_response(self, code: int, message: str | None = None) -> None:
        # Reading is over: from here on the socket's timeout bounds each write.
        self.connection.settimeout(self.server.guard.timeout_s)
        super().send_response(code, message)

    def end_headers(self) -> None:
        self.send_header("Content-Security-Policy", self._csp)
        for name, value in _SECURITY_HEADERS:
            self.send_header(name, value)
        super().end_headers()

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            if self._linger:
                _linger(self.connection)

    def version_string(self) -> str:
        return "strategy-engine"  # no Python version to look up known flaws by

    def log_message(self, format: str, *args: Any) -> None:
        pass  # a line per request (a poll each second, a scrape) would drown the log


def _bearer_matches(values: list[str] | None, token: str) -> bool:
    if not values or len(values) != 1:
        return False
    scheme, _, given = values[0].strip().partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode("utf-8", "replace"), token.encode())


def _linger(sock: socket.socket) -> None:
    """Close our side, then read (bounded) what the client still sends before closing.

    A refused client may still be sending its head or body; closing with unread input
    makes the kernel send a reset, which can discard the answer before the client reads it.
    """
    try:
        sock.shutdown(socket.SHUT_WR)
        deadline = time.monotonic() + _LINGER_S
        left = _LINGER_BYTES
        while left > 0:
            wait = deadline - time.monotonic()
            if wait <= 0:
                return
            sock.settimeout(wait)
            chunk = sock.recv(min(left, 16 * 1024))
            if not chunk:
                return
            left -= len(chunk)
    except OSError:
        pass
