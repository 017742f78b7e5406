"""The hardened JSON-RPC-over-HTTP transport of the supervise server and the relay.

Each POST carries one JSON-RPC 2.0 message and is answered with
``application/json`` (requests) or ``202 Accepted`` (notifications). The
server keeps no session and opens no server-to-client stream (GET and DELETE
answer 405), which MCP's streamable-HTTP transport allows. What the messages
mean is the service's business (``JsonRpcService``): the sidecar's MCP tools
(``mcp_service.SuperviseService``) or the host relay's queue operations
(``relay.RelayService``), which also authorizes each request from its headers
before its body is read.

The agent is the party we do not trust, so every request gets a well-formed
HTTP answer whatever its bytes, and no pace of requests holds the server's
threads or memory unbounded (``http_guard`` holds the pieces): one deadline
per request, capped connections, requests in flight and body bytes, and only
the allowed Host names served.
"""

from __future__ import annotations

import contextlib
import io
import json
import socket
import sys
import threading
from collections.abc import Callable, Sequence
from email.message import Message
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

from bot_bottle import __version__
from bot_bottle.errors import BotBottleError, Unauthorized, ValidationError
from bot_bottle.http_guard import (
    ByteBudget,
    DeadlineExceeded,
    DeadlineReader,
    HeadersTooLarge,
    Lingerer,
    nesting_exceeds,
    parse_authority,
    parse_content_length,
    parse_origin,
)
from bot_bottle.mcp_service import (
    INTERNAL_ERROR,
    INVALID_REQUEST,
    PARSE_ERROR,
    SUPPORTED_PROTOCOL_VERSIONS,
    rpc_error,
)

MAX_BODY_BYTES = 4 * 1024 * 1024  # a 1 MiB routes file, JSON-escaped, with room to spare
# One deadline for a request's line, headers and body (and for an idle
# keep-alive connection's next request): an agent on the same host sends
# 4 MiB in milliseconds, so only a stalling client ever meets it.
REQUEST_TIMEOUT_SEC = 20.0
WRITE_TIMEOUT_SEC = 15.0  # for writing one answer to a client that does not read it
MAX_CONNECTIONS = 256  # open connections, one thread each; more are answered 503 by the accept loop
MAX_CONCURRENT_REQUESTS = 128  # requests read or waiting for a decision at once; more are answered 503
BODY_BUDGET_BYTES = 32 * 1024 * 1024  # request bodies in memory at once (8 of the largest)
RETRY_AFTER_SEC = 1
MAX_REQUEST_LINE = 8192
MAX_HEADER_BYTES = 64 * 1024  # the request line and every header together
MAX_EMPTY_LINES = 8
MAX_JSON_DEPTH = 32  # MCP messages nest a handful of levels; json.loads recurses once per level
SIDECAR_HOSTNAME = "supervise"  # the name backends give the sidecar on the bottle's network
# The names the server answers to unless --allowed-host adds more.
DEFAULT_ALLOWED_HOSTS = (SIDECAR_HOSTNAME, "localhost", "127.0.0.1", "::1")


class JsonRpcService(Protocol):
    """What the HTTP transport serves: one parsed JSON-RPC message in, one answer out."""

    def log(self, line: str) -> None:
        """Write one line to the server's log."""

    def authorize(self, headers: Message) -> object:
        """Who sent the request, from its headers, before its body is read; raises ``Unauthorized``."""

    def handle(self, message: object, principal: object) -> tuple[dict[str, Any] | None, Callable[[], None] | None]:
        """The answer to ``message`` (``None`` for a notification) and what to run once it is sent."""

    def health(self) -> dict[str, Any]:
        """What ``GET /healthz`` reports besides ``status: ok``."""


def normalize_allowed_host(name: str) -> str:
    """An ``--allowed-host`` value as the Host check compares it; ``ValidationError`` if it is no host name."""
    text = name.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        return parse_authority(f"[{text}]" if ":" in text else text)
    except ValueError:
        raise ValidationError("--allowed-host", f"{name[:80]!r} is not a host name or IP address (no port)") from None


def _response_bytes(status: int, body: dict[str, Any], extra: dict[str, str]) -> bytes:
    """A whole HTTP/1.1 response with a JSON body, for the accept loop's refusals (no handler there)."""
    data = json.dumps(body).encode("utf-8")
    head = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}", "Content-Type: application/json",
            f"Content-Length: {len(data)}", *(f"{k}: {v}" for k, v in extra.items()), "", ""]
    return "\r\n".join(head).encode("ascii") + data


class SuperviseHTTPServer(ThreadingHTTPServer):
    """A threaded HTTP server that carries a ``JsonRpcService`` and bounds what clients can hold.

    Open connections are capped (``max_connections``, one thread each; the
    next is answered 503 by the accept loop itself), requests in flight are
    capped (``max_in_flight``, checked before a body is read), request bodies
    held in memory share a byte budget, and every request has one deadline
    for its headers and body (``request_timeout``).
    """

    daemon_threads = True
    allow_reuse_address = True
    # socketserver's default backlog of 5 resets connections when many agents
    # call at once; the connection cap, not the backlog, is what bounds us.
    request_queue_size = 1024

    def __init__(
        self,
        address: tuple[str, int],
        service: JsonRpcService,
        *,
        request_timeout: float = REQUEST_TIMEOUT_SEC,
        write_timeout: float = WRITE_TIMEOUT_SEC,
        max_connections: int = MAX_CONNECTIONS,
        max_in_flight: int = MAX_CONCURRENT_REQUESTS,
        body_budget: int = BODY_BUDGET_BYTES,
        allowed_hosts: Sequence[str] = (),
        software: str = "bot-bottle-supervise",
    ) -> None:
        # Before binding: socketserver calls server_close when the bind fails, which closes the lingerer.
        self.lingerer = Lingerer()
        super().__init__(address, SuperviseHandler)
        self.service = service
        self.software = f"{software}/{__version__}"
        self.request_timeout = request_timeout
        self.write_timeout = write_timeout
        self.max_connections = max_connections
        self.slots = threading.BoundedSemaphore(max_in_flight)
        self.bodies = ByteBudget(body_budget)
        self.allowed_hosts = frozenset(DEFAULT_ALLOWED_HOSTS) | {normalize_allowed_host(h) for h in allowed_hosts}
        self.connections = 0
        self._connections_lock = threading.Lock()
        self._refusal = _response_bytes(
            HTTPStatus.SERVICE_UNAVAILABLE,
            rpc_error(None, INTERNAL_ERROR, "too many open connections; retry"),
            {"Retry-After": str(RETRY_AFTER_SEC), "Connection": "close"},
        )

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
        self.service.log(f"connection from {client_address[0]} failed: {error!r}")


class SuperviseHandler(BaseHTTPRequestHandler):
    """HTTP framing of the streamable-HTTP transport around ``JsonRpcService.handle``.

    Whatever the bytes, each request gets one well-formed HTTP answer (a
    JSON-RPC error body for every refusal) or, past its deadline, 408; an
    unexpected exception is answered 500 without a traceback.
    """

    server: SuperviseHTTPServer
    protocol_version = "HTTP/1.1"
    # A request line without a version is not answered HTTP/0.9-style (a body without a status line).
    default_request_version = "HTTP/1.0"
    _headers_buffer: list[bytes]  # the base class's status line and headers, not yet written

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

    def version_string(self) -> str:
        """The Server header: which of bot-bottle's servers answers."""
        return self.server.software

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the service logs what matters (filings and decisions) itself."""

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

    def _send_json(self, status: int, body: dict[str, Any] | None, extra: dict[str, str] | None = None) -> None:
        if extra is not None and extra.get("Connection") == "close":
            # Bytes the client sent beyond what we read (a body on a GET, more
            # than the declared length) would turn our close into a reset.
            self.linger = True
        data = b"" if body is None else json.dumps(body, ensure_ascii=False).encode("utf-8")
        self.send_response(status)
        if body is not None:
            self.send_header("Content-Type", "application/json")
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

    def _refuse(self, status: HTTPStatus, code: int, message: str, extra: dict[str, str] | None = None) -> None:
        """Answer an error and close the connection, draining what the client may still be sending."""
        self.close_connection = True
        self._send_json(status, rpc_error(None, code, message), {**(extra or {}), "Connection": "close"})

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The base class's refusals (bad request line, headers too long, ...) as JSON, and close."""
        self._refuse(HTTPStatus(code), INVALID_REQUEST, message or HTTPStatus(code).phrase)

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
            self.server.service.log(f"internal error answering a request: {exc!r}")
            self._last_word(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error")

    def _last_word(self, status: HTTPStatus, message: str) -> None:
        self.close_connection = True
        if self.responded:
            return  # part of an answer is out already: closing is all that is left
        with contextlib.suppress(OSError):
            self._refuse(status, INVALID_REQUEST if status < 500 else INTERNAL_ERROR, message)

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
            self._refuse(HTTPStatus.BAD_REQUEST, INVALID_REQUEST, "the request target must be a path such as /")
            return
        method = getattr(self, f"do_{self.command}", None)
        if method is None:
            self._refuse(HTTPStatus.NOT_IMPLEMENTED, INVALID_REQUEST, f"method {self.command[:20]!r} is not supported",
                         {"Allow": "GET, POST, DELETE"})
            return
        if not self._host_and_origin_allowed():
            return
        method()
        self.wfile.flush()

    def _host_and_origin_allowed(self) -> bool:
        """Serve only the names the sidecar is reached by; a browser's Origin must be one of them too.

        DNS rebinding lets a web page choose both the Host and the Origin it
        sends (``Origin: http://evil.example:9100``, ``Host:
        evil.example:9100``), so neither is compared with the other: both
        are checked against the allowlist. Agents send no Origin.
        """
        hosts = self.headers.get_all("Host") or []
        if len(hosts) != 1:
            self._refuse(HTTPStatus.BAD_REQUEST, INVALID_REQUEST, "exactly one Host header is required")
            return False
        try:
            host = parse_authority(hosts[0])
        except ValueError as exc:
            self._refuse(HTTPStatus.BAD_REQUEST, INVALID_REQUEST, f"unparsable Host header: {exc}")
            return False
        if host not in self.server.allowed_hosts:
            self._refuse(HTTPStatus.FORBIDDEN, INVALID_REQUEST,
                         f"Host {host[:80]!r} is not a name this server answers to")
            return False
        origins = self.headers.get_all("Origin") or []
        if not origins:
            return True
        try:
            origin = parse_origin(origins[0]) if len(origins) == 1 else None
        except ValueError as exc:
            self._refuse(HTTPStatus.BAD_REQUEST, INVALID_REQUEST, f"unparsable Origin header: {exc}")
            return False
        if origin is None or origin[0] not in ("http", "https") or origin[1] not in self.server.allowed_hosts:
            self._refuse(HTTPStatus.FORBIDDEN, INVALID_REQUEST, "origin not allowed")
            return False
        return True

    def do_GET(self) -> None:
        """Health check at /healthz; no server-to-client stream otherwise (405)."""
        self.close_connection = True  # a body we did not read must not be taken for the next request
        if self.path.split("?")[0] == "/healthz":
            self._send_json(HTTPStatus.OK, {"status": "ok", **self.server.service.health()},
                            {"Connection": "close"})
            return
        self._refuse(HTTPStatus.METHOD_NOT_ALLOWED, INVALID_REQUEST, "no server-to-client stream: POST instead",
                     {"Allow": "POST"})

    def do_DELETE(self) -> None:
        """There are no sessions to end (405)."""
        self._refuse(HTTPStatus.METHOD_NOT_ALLOWED, INVALID_REQUEST, "there are no sessions to end",
                     {"Allow": "POST"})

    def do_POST(self) -> None:
        """One JSON-RPC message in, its answer out; the decision it carried archived afterwards."""
        if self.headers.get("Transfer-Encoding") is not None:
            self._refuse(HTTPStatus.NOT_IMPLEMENTED, INVALID_REQUEST,
                         "Transfer-Encoding is not supported: send the body with a Content-Length")
            return
        content_type = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if content_type != "application/json":
            self._refuse(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, INVALID_REQUEST, "Content-Type must be application/json")
            return
        version = self.headers.get("MCP-Protocol-Version")
        if version is not None and version not in SUPPORTED_PROTOCOL_VERSIONS:
            self._refuse(HTTPStatus.BAD_REQUEST, INVALID_REQUEST, f"unsupported MCP-Protocol-Version {version[:40]!r}")
            return
        try:
            # Before anything of the body is read or counted: a caller without credentials holds nothing.
            principal = self.server.service.authorize(self.headers)
        except Unauthorized as exc:
            self._refuse(HTTPStatus.UNAUTHORIZED, INVALID_REQUEST, str(exc), {"WWW-Authenticate": "Bearer"})
            return
        try:
            length = parse_content_length(self.headers.get_all("Content-Length") or [])
        except ValueError as exc:
            self._refuse(HTTPStatus.BAD_REQUEST, INVALID_REQUEST, str(exc))
            return
        if length is None:
            self._refuse(HTTPStatus.LENGTH_REQUIRED, INVALID_REQUEST, "Content-Length is required")
            return
        if length > MAX_BODY_BYTES:
            # Answer before reading it, then drop the connection with the rest unread.
            self._refuse(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, INVALID_REQUEST,
                         f"body of {length} bytes is over the limit of {MAX_BODY_BYTES}")
            return
        # Both limits are taken before the body is read, so refused bodies never reach memory.
        busy = {"Retry-After": str(RETRY_AFTER_SEC)}
        if not self.server.slots.acquire(blocking=False):
            self._refuse(HTTPStatus.SERVICE_UNAVAILABLE, INTERNAL_ERROR, "too many requests in flight; retry", busy)
            return
        try:
            if not self.server.bodies.take(length):
                self._refuse(HTTPStatus.SERVICE_UNAVAILABLE, INTERNAL_ERROR,
                             "too many request bytes in flight; retry", busy)
                return
            try:
                self._answer(length, principal)
            finally:
                self.server.bodies.give(length)
        finally:
            self.server.slots.release()

    def _read_message(self, length: int) -> tuple[object, dict[str, Any] | None]:
        """The body parsed as JSON, or the JSON-RPC error to answer instead."""
        body = self.rfile.read(length)
        if len(body) < length:
            return None, rpc_error(None, INVALID_REQUEST, f"the body ended after {len(body)} of {length} bytes")
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            return None, rpc_error(None, PARSE_ERROR, "parse error: the body is not UTF-8")
        del body
        if nesting_exceeds(text, MAX_JSON_DEPTH):
            return None, rpc_error(None, PARSE_ERROR, f"parse error: JSON nested deeper than {MAX_JSON_DEPTH} levels")
        try:
            return json.loads(text), None
        except (ValueError, RecursionError):
            return None, rpc_error(None, PARSE_ERROR, "parse error: the body is not JSON")

    def _answer(self, length: int, principal: object) -> None:
        message, refusal = self._read_message(length)
        if refusal is not None:
            self.close_connection = True
            self._send_json(HTTPStatus.BAD_REQUEST, refusal, {"Connection": "close"})
            return
        if isinstance(message, list):
            self._send_json(HTTPStatus.BAD_REQUEST, rpc_error(None, INVALID_REQUEST, "batches are not supported"))
            return
        response, after = self.server.service.handle(message, principal)
        if response is None:
            self._send_json(HTTPStatus.ACCEPTED, None)
            return
        status = HTTPStatus.BAD_REQUEST if response.get("id") is None and "error" in response else HTTPStatus.OK
        self._send_json(status, response)
        if after is not None:
            try:
                after()
            except BotBottleError as exc:
                self.server.service.log(f"could not archive after answering: {exc}")

