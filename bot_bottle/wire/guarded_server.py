"""A threaded HTTP server that holds against a hostile client: the sidecar's, the relay's and the dashboard's base.

``GuardedHTTPServer`` caps the connections waiting to be authenticated, in
all and per peer (``wire.connection_pool``: at the cap the next is answered
503 by the accept loop itself, or the oldest waiting one of the peer holding
the most is cut to make room), requests in flight and request bodies in
memory where the server has one budget for all (the relay's are each
bottle's: ``relay.shares``), logs every refusal (``wire.refusals``) and
closes refused connections without a reset (``http_bounds.Lingerer``).
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
from bot_bottle.wire.connection_pool import Connection, ConnectionPool
from bot_bottle.wire.http_bounds import ByteBudget, DeadlineReader, Lingerer, parse_authority, parse_origin
from bot_bottle.wire.parking import Parking
from bot_bottle.wire.refusals import RefusalLog

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

    Connections waiting to be authenticated are capped (``max_connections``
    in all, ``max_per_peer`` from one peer; one thread each): at a cap the
    next is answered ``connection_refusal`` by the accept loop itself, or,
    with ``evict``, the oldest waiting connection of the peer holding the
    most is cut to make room (new connections are parked, ``wire.parking``,
    until their headers are in, so only those that sent none are cut).
    Requests in flight are capped (``slots``,
    which handlers take before reading a body) and request bodies held in
    memory share a byte budget (``bodies``), unless ``max_in_flight`` and
    ``body_budget`` are ``None`` (the service budgets each caller's own).
    Every request has one deadline for its headers and body
    (``request_timeout``). Only ``allowed_hosts`` are served.
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
        max_in_flight: int | None,
        body_budget: int | None,
        max_per_peer: int | None = None,
        evict: bool = False,
    ) -> None:
        # Before binding: socketserver calls server_close when the bind fails, which closes the lingerer.
        self.lingerer = Lingerer()
        self.handler_class = handler
        self.parking: Parking | None = None
        if evict:
            # A listen queue long enough for a burst while the accept loop catches up (the kernel caps it).
            self.request_queue_size = 4096
        super().__init__(address, handler)
        self.log = log
        self.request_timeout = request_timeout
        self.write_timeout = write_timeout
        self.refusals = RefusalLog(log)
        self.pool = ConnectionPool(max_connections, max_per_peer, evict=evict, on_cut=self._cut)
        self.slots = None if max_in_flight is None else threading.BoundedSemaphore(max_in_flight)
        self.bodies = None if body_budget is None else ByteBudget(body_budget)
        self.allowed_hosts = frozenset(allowed_hosts)
        self._refusal = connection_refusal
        if evict:
            # Eviction needs to know which connections have sent their headers: they are parked until then.
            self.parking = Parking(timeout=request_timeout, header_limit=MAX_HEADER_BYTES, ready=self._start_handler,
                                   answer=self._answer_parked, forget=self._forget_parked, trim=self.pool.trim,
                                   try_read=self.pool.try_read)
            self.pool.on_room = self.parking.wake

    def process_request(self, request: Any, client_address: Any) -> None:
        """Start a thread for the connection, or, at the cap, answer 503 from here and let it go."""
        connection = self.pool.enter(request, str(client_address[0]), parked=self.parking is not None)
        if connection is None:
            self.refusals.note(f"peer {client_address[0]}", HTTPStatus.SERVICE_UNAVAILABLE,
                               "too many connections waiting to be authenticated")
            self._refuse_connection(request)
            return
        if self.parking is not None:
            self.parking.park(connection, client_address)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.pool.leave(request)
            raise

    def _start_handler(self, connection: Connection, client_address: Any) -> None:
        """A parked connection's headers are in (and it has a reader's place): its handler thread from here on."""
        try:
            super().process_request(connection.sock, client_address)
        except Exception as exc:  # no thread to be had: the connection goes, the server stays
            self.log(f"could not start a handler: {exc!r}")
            self._forget_parked(connection)

    def _answer_parked(self, connection: Connection, status: int, message: str) -> None:
        """Refuse a parked connection (it has no handler): one answer, then it lingers until read."""
        content_type, data = self.handler_class.error_body(HTTPStatus(status), message, status >= 500)
        extra = {"Connection": "close"}
        if status == HTTPStatus.SERVICE_UNAVAILABLE:
            extra["Retry-After"] = str(RETRY_AFTER_SEC)
        else:
            self.refusals.note(connection.who, status, message)  # a cut was noted when it was made
        self.pool.leave(connection.sock)
        try:
            # A fresh socket's send buffer takes these few hundred bytes at once.
            connection.sock.send(response_bytes(status, content_type, data, extra))
            connection.sock.shutdown(socket.SHUT_WR)
        except OSError:
            connection.sock.close()
            return
        self.lingerer.adopt(connection.sock)

    def _forget_parked(self, connection: Connection) -> None:
        self.pool.leave(connection.sock)
        connection.sock.close()

    def _cut(self, connection: Connection) -> None:
        status, message = connection.ended or (0, "")
        self.refusals.note(connection.who, status, message)

    def service_actions(self) -> None:
        """Between accepts (``serve_forever`` calls it): log the refusals counted in the last minute."""
        self.refusals.flush()

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

    def shutdown_request(self, request: Any) -> None:
        """Forget the connection, then close it (in that order: see ``ConnectionPool.leave``)."""
        self.pool.leave(request)
        super().shutdown_request(request)

    def server_close(self) -> None:
        """Close the listening socket and every connection still parked or lingering."""
        super().server_close()
        if self.parking is not None:
            self.parking.close()
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

    @classmethod
    def error_body(cls, status: HTTPStatus, message: str, server_fault: bool) -> tuple[str, bytes]:
        """A refusal's content type and body; ``server_fault`` for our side's failures (busy, internal)."""
        return "text/plain; charset=utf-8", (message + "\n").encode("utf-8")

    def setup(self) -> None:
        """Read the socket through a ``DeadlineReader``: one deadline per request, bounded headers."""
        super().setup()
        self.rfile.close()
        # The pool's record of this connection (a handler made outside the accept loop has its own).
        self.pool_entry = self.server.pool.of(self.request) or Connection(self.request, str(self.client_address[0]))
        self.reader = DeadlineReader(self.connection, self.pool_entry.prefix)
        self.pool_entry.prefix = b""
        self.buffered = io.BufferedReader(self.reader)
        self.rfile = self.buffered
        self.responded = False
        self.linger = False
        self.requests_begun = 0

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
        """Answer an error and close the connection, draining what the client may still be sending.

        A connection the pool cut is answered why it was cut, whatever its
        handler was about to say (its read ended because of the cut).
        """
        self.close_connection = True
        if self.pool_entry.ended is not None:
            cut_status, message = self.pool_entry.ended
            status = HTTPStatus(cut_status)
            server_fault = status >= 500
            extra = {"Retry-After": str(RETRY_AFTER_SEC)} if status == HTTPStatus.SERVICE_UNAVAILABLE else {}
        else:
            self.server.refusals.note(self.pool_entry.who, status, message)
        content_type, data = self.error_body(status, message, server_fault)
        self.send_body(status, content_type, data, {**(extra or {}), "Connection": "close"})

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The base class's refusals (bad request line, headers too long, ...) as ours, and close."""
        self.refuse(HTTPStatus(code), message or HTTPStatus(code).phrase)

    def handle_one_request(self) -> None:
        """Read and answer one request under its deadline; never leave a request unanswered by an exception."""
        self.responded = False
        self.close_connection = True
        self.requests_begun += 1
        if self.requests_begun > 1 and not self.server.pool.wait_again(self.pool_entry):
            return  # a kept-alive connection finds the pool full: closed, as an idle one would be
        # The first request of a parked connection keeps the deadline it had while parked.
        self.reader.start(self.server.request_timeout, MAX_HEADER_BYTES,
                          self.pool_entry.deadline if self.requests_begun == 1 else None)
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
        if self.pool_entry.ended is not None and not self.responded:
            # Cut while waiting for a request (its read ended at once): told why, if the client still reads.
            self._last_word(HTTPStatus(self.pool_entry.ended[0]), self.pool_entry.ended[1])

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
