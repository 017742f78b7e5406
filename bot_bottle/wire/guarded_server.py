"""A threaded HTTP server that holds against a hostile client: the sidecar's and the dashboard's base.

``GuardedHTTPServer`` caps open connections (the next is answered 503 by
the accept loop itself), requests in flight and request bodies in memory,
and closes refused connections without a reset (``http_guard.Lingerer``).
``GuardedHandler`` reads each request under one deadline with bounded
headers (``http_guard.DeadlineReader``), serves only the allowed ``Host``
names (and an ``Origin``, when present, only among them), and gives every
request one well-formed answer whatever its bytes: a refusal, 408 past its
deadline, 500 without a traceback. What a refusal's body looks like is the
subclass's (``error_body``): JSON-RPC for the sidecar, text for the dashboard.
"""

from __future__ import annotations

import contextlib
import io
import socket
import sys
import threading
from collections.abc import Callable, Iterable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from bot_bottle.errors import DeadlineExceeded, HeadersTooLarge
from bot_bottle.wire.http_bounds import ByteBudget, DeadlineReader, Lingerer, parse_authority, parse_origin

MAX_REQUEST_LINE = 8192
MAX_HEADER_BYTES = 64 * 1024  # the request line and every header together
MAX_EMPTY_LINES = 8
RETRY_AFTER_SEC = 1


def response_bytes(status: int, content_type: str, data: bytes, extra: dict[str, str]) -> bytes:
    """A whole HTTP/1.1 response, for the accept loop's refusals (no handler there)."""
    head = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}", f"Content-Type: {content_type}",
            f"Content-Length: {len(data)}", *(f"{k}: {v}" for k, v in extra.items()), "", ""]
    return "\r\n".join(head).encode("ascii") + data


class GuardedHTTPServer(ThreadingHTTPServer):
    """A threaded HTTP server that bounds what clients can hold.

    Open connections are capped (``max_connections``, one thread each; the
    next is answered ``connection_refusal`` by the accept loop itself),
    requests in flight are capped (``slots``, which handlers take before
    reading a body), request bodies held in memory share a byte budget
    (``bodies``), and every request has one deadline for its headers and
    body (``request_timeout``). Only ``allowed_hosts`` are served.
    """

    daemon_threads = True
    allow_reuse_address = True
    # socketserver's default backlog of 5 resets connections when many clients
    # call at once; the connection cap, not the backlog, is what bounds us.
    request_queue_size = 1024

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[GuardedHandler],
        *,
        allowed_hosts: Iterable[str],
        connection_refusal: bytes,
        log: Callable[[str], None],
        request_timeout: float,
        write_timeout: float,
        max_connections: int,
        max_in_flight: int,
        body_budget: int,
    ) -> None:
        # Before binding: socketserver calls server_close when the bind fails, which closes the lingerer.
        self.lingerer = Lingerer()
        super().__init__(address, handler)
        self.log = log
        self.request_timeout = request_timeout
        self.write_timeout = write_timeout
        self.max_connections = max_connections
        self.slots = threading.BoundedSemaphore(max_in_flight)
        self.bodies = ByteBudget(body_budget)
        self.allowed_hosts = frozenset(allowed_hosts)
        self.connections = 0
        self._connections_lock = threading.Lock()
        self._refusal = connection_refusal

    def process_request(self, request: Any, client_address: Any) -> None:
        """Start a thread for the connection, or, at the cap, answer 503 from here and let it go."""
        with self._connections_lock:
            refuse = self.connections >= self.max_connections
            if not refuse:
                self.connections += 1
        if refuse:
            self._refuse_connection(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            with self._connections_lock:
                self.connections -= 1
            raise

    def _refuse_connection(self, request: socket.socket) -> None:
        # A fresh socket's send buffer takes these few hundred bytes at once;
        # the timeout is only there so the accept loop can never block here.
        try:
            request.settimeout(1.0)
            request.sendall(self._refusal)
            request.shutdown(socket.SHUT_WR)
        except OSError:
            request.close()
            return
        self.lingerer.adopt(request)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        """As the base class; the connection's place under the cap is given back when it ends."""
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._connections_lock:
                self.connections -= 1

    def server_close(self) -> None:
        """Close the listening socket and every connection still lingering."""
        super().server_close()
        self.lingerer.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """One log line instead of socketserver's traceback (a client that vanished mid-answer)."""
        error = sys.exc_info()[1]
        self.log(f"connection from {client_address[0]} failed: {error!r}")


class GuardedHandler(BaseHTTPRequestHandler):
    """One connection's requests, each read under its deadline and answered exactly once.

    Subclasses give ``error_body`` (what a refusal carries) and their
    ``do_METHOD`` handlers, which run only for an allowed Host and Origin.
    """

    server: GuardedHTTPServer
    protocol_version = "HTTP/1.1"
    # A request line without a version is not answered HTTP/0.9-style (a body without a status line).
    default_request_version = "HTTP/1.0"
    #: The Allow header of the answer to a method without a handler.
    allowed_methods = "GET, POST"
    _headers_buffer: list[bytes]  # the base class's status line and headers, not yet written

    def error_body(self, status: HTTPStatus, message: str, server_fault: bool) -> tuple[str, bytes]:
        """A refusal's content type and body; ``server_fault`` for our side's failures (busy, internal)."""
        return "text/plain; charset=utf-8", (message + "\n").encode("utf-8")

    def setup(self) -> None:
        """Read the socket through a ``DeadlineReader``: one deadline per request, bounded headers."""
        super().setup()
        self.rfile.close()
        self.reader = DeadlineReader(self.connection)
        self.buffered = io.BufferedReader(self.reader)
        self.rfile = self.buffered
        self.responded = False
        self.linger = False

    def finish(self) -> None:
        """Close the streams; a connection refused with input unread lingers until the client has read why."""
        try:
            super().finish()
        finally:
            if self.linger:
                with contextlib.suppress(OSError):
                    self.server.lingerer.adopt(self.connection.dup())

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: what matters is logged where it happens."""

    def handle_expect_100(self) -> bool:
        """Send ``100 Continue`` as the base class does; it is not yet the request's answer."""
        result = super().handle_expect_100()
        self.responded = False
        return result

    def flush_headers(self) -> None:
        """Write the buffered status line and headers, under the write timeout (the read deadline is spent)."""
        self.responded = True
        self.connection.settimeout(self.server.write_timeout)
        super().flush_headers()

    def send_body(self, status: int, content_type: str | None, data: bytes,
                  extra: dict[str, str] | None = None) -> None:
        """Answer with ``data``: status line, headers and body in one write."""
        if extra is not None and extra.get("Connection") == "close":
            # Bytes the client sent beyond what we read (a body on a GET, more
            # than the declared length) would turn our close into a reset.
            self.linger = True
        self.send_response(status)
        if content_type is not None:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        if self.request_version == "HTTP/0.9":  # no status line or headers: the body alone
            self.flush_headers()
            self.wfile.write(data)
        else:
            # Status line, headers and body in one write: a client's single read gets the whole answer,
            # never the headers alone.
            self._headers_buffer.append(b"\r\n" + data)
            self.flush_headers()
        self.wfile.flush()

    def refuse(self, status: HTTPStatus, message: str, extra: dict[str, str] | None = None, *,
               server_fault: bool = False) -> None:
        """Answer an error and close the connection, draining what the client may still be sending."""
        self.close_connection = True
        content_type, data = self.error_body(status, message, server_fault)
        self.send_body(status, content_type, data, {**(extra or {}), "Connection": "close"})

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The base class's refusals (bad request line, headers too long, ...) as ours, and close."""
        self.refuse(HTTPStatus(code), message or HTTPStatus(code).phrase)

    def handle_one_request(self) -> None:
        """Read and answer one request under its deadline; never leave a request unanswered by an exception."""
        self.reader.start(self.server.request_timeout, MAX_HEADER_BYTES)
        self.responded = False
        self.close_connection = True
        begun = False
        try:
            # Bytes of this request may sit in the buffer already (sent in one go behind the last one),
            # where the socket reader's count does not see them: peek tells them from an idle connection.
            begun = bool(self.buffered.peek(1))
            self._one_request()
        except DeadlineExceeded:
            # Nothing of a next request arrived: an idle keep-alive connection, closed quietly.
            if begun or self.reader.received:
                self._last_word(HTTPStatus.REQUEST_TIMEOUT,
                                f"the request was not sent within {self.server.request_timeout:g} s")
        except HeadersTooLarge:
            self._last_word(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE,
                            f"the request line and headers are over {MAX_HEADER_BYTES} bytes")
        except (ConnectionError, TimeoutError):
            self.close_connection = True  # the client went away, or would not read our answer
        except Exception as exc:  # never a traceback to the client, never a request without an answer
            self.server.log(f"internal error answering a request: {exc!r}")
            self._last_word(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error")

    def _last_word(self, status: HTTPStatus, message: str) -> None:
        self.close_connection = True
        if self.responded:
            return  # part of an answer is out already: closing is all that is left
        with contextlib.suppress(OSError):
            self.refuse(status, message, server_fault=status >= 500)

    def _one_request(self) -> None:
        # What parse_request would have set: a refusal before it runs still logs and answers.
        self.command, self.requestline, self.request_version = "", "", self.default_request_version
        line = self.rfile.readline(MAX_REQUEST_LINE + 1)
        # RFC 9112 2.2: a server should ignore empty lines before a request line; a few of them.
        for _ in range(MAX_EMPTY_LINES):
            if line not in (b"\r\n", b"\n"):
                break
            line = self.rfile.readline(MAX_REQUEST_LINE + 1)
        if not line:
            return  # the client closed without a (further) request
        if len(line) > MAX_REQUEST_LINE:
            self.send_error(HTTPStatus.REQUEST_URI_TOO_LONG, f"the request line is over {MAX_REQUEST_LINE} bytes")
            return
        if not line.endswith(b"\n"):
            self.send_error(HTTPStatus.BAD_REQUEST, "the request ended before its request line did")
            return
        if not line.strip(b" \t\r\n"):
            self.send_error(HTTPStatus.BAD_REQUEST, "no request line")
            return
        self.raw_requestline = line
        if not self.parse_request():
            return
        self.reader.headers_done()
        if not self.path.startswith("/"):
            # The absolute form (http://host/...) would name a host beside the Host header.
            self.refuse(HTTPStatus.BAD_REQUEST, "the request target must be a path such as /")
            return
        method = getattr(self, f"do_{self.command}", None)
        if method is None:
            self.refuse(HTTPStatus.NOT_IMPLEMENTED, f"method {self.command[:20]!r} is not supported",
                        {"Allow": self.allowed_methods})
            return
        if not self._host_and_origin_allowed():
            return
        method()
        self.wfile.flush()

    def _host_and_origin_allowed(self) -> bool:
        """Serve only the names the server is reached by; a browser's Origin must be one of them too.

        DNS rebinding lets a web page choose both the Host and the Origin it
        sends (``Origin: http://evil.example:9100``, ``Host:
        evil.example:9100``), so neither is compared with the other: both
        are checked against the allowlist.
        """
        hosts = self.headers.get_all("Host") or []
        if len(hosts) != 1:
            self.refuse(HTTPStatus.BAD_REQUEST, "exactly one Host header is required")
            return False
        try:
            host = parse_authority(hosts[0])
        except ValueError as exc:
            self.refuse(HTTPStatus.BAD_REQUEST, f"unparsable Host header: {exc}")
            return False
        if host not in self.server.allowed_hosts:
            self.refuse(HTTPStatus.FORBIDDEN, f"Host {host[:80]!r} is not a name this server answers to")
            return False
        origins = self.headers.get_all("Origin") or []
        if not origins:
            return True
        try:
            origin = parse_origin(origins[0]) if len(origins) == 1 else None
        except ValueError as exc:
            self.refuse(HTTPStatus.BAD_REQUEST, f"unparsable Origin header: {exc}")
            return False
        if origin is None or origin[0] not in ("http", "https") or origin[1] not in self.server.allowed_hosts:
            self.refuse(HTTPStatus.FORBIDDEN, "origin not allowed")
            return False
        return True
