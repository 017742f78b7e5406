"""The sidecar's supervise server: MCP over streamable HTTP, filing proposals and awaiting decisions.

An agent in a bottle registers this server as an MCP server (for Claude Code:
``claude mcp add --transport http supervise http://supervise:9100/``). Its
tools file proposals through the bottle-bound queue handle and hold the call
until the operator decides, for at most the wait bound (30 s by default, under
the 60 s MCP clients commonly allow). When the bound passes, the tool returns
a normal result saying the proposal is still pending, with its id, so the
agent can call ``check-proposal`` later; the proposal stays in the queue.

Transport: each POST carries one JSON-RPC 2.0 message and is answered with
``application/json`` (requests) or ``202 Accepted`` (notifications). The
server keeps no session and opens no server-to-client stream (GET and DELETE
answer 405), which the streamable-HTTP transport allows.

The agent is the party we do not trust, so every request gets a well-formed
HTTP answer whatever its bytes, and no pace of requests holds the server's
threads or memory unbounded (``http_guard`` holds the pieces): one deadline
per request, capped connections, requests in flight and body bytes, only the
allowed Host names served, a per-bottle quota of pending proposals. Mistakes
in a tool's arguments come back as tool results with ``isError`` (the model
can read and correct them); protocol errors stay JSON-RPC errors, as the MCP
specification of 2025-11-25 separates them.

Run as the sidecar: ``python -m bot_bottle.supervise_server --bottle SLUG``;
the database is the constant ``DB_PATH_IN_CONTAINER``, which must be the
host's file on its mount: the server refuses to start rather than create one.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any

from bot_bottle import __version__
from bot_bottle.db import DB_DIR_IN_CONTAINER, DB_PATH_IN_CONTAINER
from bot_bottle.errors import BotBottleError, NotFound, QuotaExceeded, ValidationError
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
from bot_bottle.mount_safety import check_mount, require_sidecar_database
from bot_bottle.queue_store import BottleQueue, QueueStore
from bot_bottle.records import (
    DEFAULT_MAX_PENDING,
    DEFAULT_MAX_PENDING_BYTES,
    DEFAULT_POLL_INTERVAL_SEC,
    MAX_TEXT_BYTES,
    STATUS_MODIFIED,
    STATUS_PENDING,
    TOOL_EGRESS_ALLOW,
    TOOL_EGRESS_BLOCK,
    Quota,
    Response,
    validate_proposal_id,
    validate_queue_key,
)
from bot_bottle.routes import make_route

DEFAULT_HOST = "0.0.0.0"
DEFAULT_PORT = 9100
DEFAULT_WAIT_SECONDS = 30.0
MAX_WAIT_SECONDS = 3600.0
WAIT_SECONDS_ENV = "BOT_BOTTLE_SUPERVISE_WAIT_SECONDS"
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
TOOL_CHECK_PROPOSAL = "check-proposal"
SUPPORTED_PROTOCOL_VERSIONS = ("2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05")  # newest first
SERVER_NAME = "bot-bottle-supervise"

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603


_TEXT = {"type": "string"}
TOOLS: list[dict[str, Any]] = [
    {
        "name": TOOL_EGRESS_BLOCK,
        "description": (
            "Propose a whole new egress routes file for this bottle (replacing the current one). "
            "Waits for the operator's decision; answers {status, notes, proposal_id} and, when the "
            "operator modified it, final_file. status 'pending' means the operator has not decided "
            "yet: call check-proposal with the proposal_id later."
        ),
        "inputSchema": {
            "type": "object",
            "properties": {
                "routes_file": {**_TEXT, "description": "the complete proposed routes file"},
                "justification": {**_TEXT, "description": "why the agent needs this, for the operator"},
            },
            "required": ["routes_file", "justification"],
            "additionalProperties": False,
        },
    },
    {
        "name": TOOL_EGRESS_ALLOW,
        "description": (
            "Propose one new egress route: a host, optionally limited to some path prefixes. "
            "Waits for the operator's decision like egress-block."
        ),
        "inputSchema": {
            "type": "object",
            "properties": {
                "host": {**_TEXT, "description": "host name, e.g. docs.python.org or *.pythonhosted.org"},
                "paths": {
                    "type": "array",
                    "items": {**_TEXT, "description": "a path prefix starting with /"},
                    "description": "optional allowlist of path prefixes (default: the whole host)",
                },
                "justification": {**_TEXT, "description": "why the agent needs this, for the operator"},
            },
            "required": ["host", "justification"],
            "additionalProperties": False,
        },
    },
    {
        "name": TOOL_CHECK_PROPOSAL,
        "description": (
            "Wait again (bounded) for the operator's decision on a proposal this bottle filed; "
            "answers the decision, or status 'pending' if there is still none."
        ),
        "inputSchema": {
            "type": "object",
            "properties": {"proposal_id": {**_TEXT, "description": "the proposal_id a filing tool returned"}},
            "required": ["proposal_id"],
            "additionalProperties": False,
        },
    },
]


class RpcError(Exception):
    """A JSON-RPC error to answer with: its code and a message for the client."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class ToolInputError(Exception):
    """A tool call whose arguments cannot be acted on: answered as a tool result with ``isError``.

    The message is for the agent's model, which reads it and tries again, so
    it says what was wrong and what is expected.
    """


def normalize_allowed_host(name: str) -> str:
    """An ``--allowed-host`` value as the Host check compares it; ``ValidationError`` if it is no host name."""
    text = name.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        return parse_authority(f"[{text}]" if ":" in text else text)
    except ValueError:
        raise ValidationError("--allowed-host", f"{name[:80]!r} is not a host name or IP address (no port)") from None


def wait_seconds_from(argument: float | None, environ: dict[str, str] | os._Environ[str]) -> float:
    """The wait bound: the argument, else ``$BOT_BOTTLE_SUPERVISE_WAIT_SECONDS``, else 30 s."""
    source = "--wait-seconds"
    value: object = argument
    if value is None:
        raw = environ.get(WAIT_SECONDS_ENV)
        if raw is None or not raw.strip():
            return DEFAULT_WAIT_SECONDS
        source = WAIT_SECONDS_ENV
        try:
            value = float(raw)
        except ValueError:
            raise ValidationError(source, f"{raw!r} is not a number of seconds") from None
    assert isinstance(value, float | int)
    if not 0 <= value <= MAX_WAIT_SECONDS or value != value:
        raise ValidationError(source, f"must be between 0 and {MAX_WAIT_SECONDS:g} seconds")
    return float(value)


_KIND_NAMES: dict[type, str] = {str: "a string", list: "an array of strings"}


def _argument(arguments: dict[str, Any], name: str, kind: type, required: bool = True) -> Any:
    if name not in arguments:
        if required:
            raise ToolInputError(f"missing argument: {name} (required: see the tool's inputSchema)")
        return None
    value = arguments[name]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ToolInputError(f"argument {name} must be {_KIND_NAMES.get(kind, kind.__name__)}, "
                             f"not {type(value).__name__}")
    return value


def route_payload(host: str, paths: list[str] | None) -> str:
    """The ``egress-allow`` payload: one route as a small, stable JSON document (rules: ``routes.make_route``)."""
    try:
        return make_route(host, paths or None).to_document()
    except ValidationError as exc:
        raise ToolInputError(f"argument {exc}") from None


class SuperviseService:
    """The MCP side of the server, independent of HTTP: one JSON-RPC message in, one answer out.

    ``handle`` returns ``(response, after)``: the response (``None`` for a
    notification) and a callable to run once the response has reached the
    client (archiving the decision it carried), or ``None``.
    """

    def __init__(
        self,
        bottle: BottleQueue,
        *,
        wait_seconds: float = DEFAULT_WAIT_SECONDS,
        poll_interval: float = DEFAULT_POLL_INTERVAL_SEC,
        routes_file: Path | None = None,
        log: Callable[[str], None] = lambda line: None,
    ) -> None:
        self.bottle = bottle
        self.wait_seconds = wait_seconds
        self.poll_interval = poll_interval
        self.routes_file = routes_file
        self.log = log

    def handle(self, message: object) -> tuple[dict[str, Any] | None, Callable[[], None] | None]:
        """Answer one parsed JSON-RPC message."""
        if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
            return _error(None, INVALID_REQUEST, "not a JSON-RPC 2.0 message"), None
        message_id = message.get("id")
        if "method" not in message:
            return None, None  # a response to a request we never send: accept and ignore
        method = message["method"]
        if not isinstance(method, str):
            return _error(_safe_id(message_id), INVALID_REQUEST, "method must be a string"), None
        if "id" not in message:
            return None, None  # a notification (notifications/initialized, cancelled, ...)
        if isinstance(message_id, bool) or not isinstance(message_id, str | int):
            return _error(None, INVALID_REQUEST, "id must be a string or an integer"), None
        params = message.get("params", {})
        if not isinstance(params, dict):
            return _error(message_id, INVALID_PARAMS, "params must be an object"), None
        try:
            result, after = self._dispatch(method, params)
        except RpcError as exc:
            return _error(message_id, exc.code, exc.message), None
        except BotBottleError as exc:
            self.log(f"error: {exc}")
            return _error(message_id, INTERNAL_ERROR, f"the supervise queue is unavailable: {exc}"), None
        except Exception as exc:  # never a traceback to the client, never a dead thread
            self.log(f"internal error in {method[:100]}: {exc!r}")
            return _error(message_id, INTERNAL_ERROR, "internal error"), None
        return {"jsonrpc": "2.0", "id": message_id, "result": result}, after

    def _dispatch(self, method: str, params: dict[str, Any]) -> tuple[dict[str, Any], Callable[[], None] | None]:
        if method == "initialize":
            return self._initialize(params), None
        if method == "ping":
            return {}, None
        if method == "tools/list":
            return {"tools": TOOLS}, None
        if method == "tools/call":
            return self._call_tool(params)
        raise RpcError(METHOD_NOT_FOUND, f"method not found: {method[:100]}")

    @staticmethod
    def _initialize(params: dict[str, Any]) -> dict[str, Any]:
        requested = params.get("protocolVersion")
        if not isinstance(requested, str):
            raise RpcError(INVALID_PARAMS, "initialize needs protocolVersion (a string)")
        version = requested if requested in SUPPORTED_PROTOCOL_VERSIONS else SUPPORTED_PROTOCOL_VERSIONS[0]
        return {
            "protocolVersion": version,
            "capabilities": {"tools": {"listChanged": False}},
            "serverInfo": {"name": SERVER_NAME, "version": __version__},
            "instructions": (
                "Ask the bottle's operator for what you may not do on your own: egress-allow for one new "
                "host, egress-block for a whole routes file. Calls wait for the decision; if one answers "
                "status 'pending', call check-proposal with its proposal_id later."
            ),
        }

    def _call_tool(self, params: dict[str, Any]) -> tuple[dict[str, Any], Callable[[], None] | None]:
        name = params.get("name")
        if not isinstance(name, str):
            raise RpcError(INVALID_PARAMS, "tools/call needs name (a string)")
        arguments = params.get("arguments", {})
        if not isinstance(arguments, dict):
            raise RpcError(INVALID_PARAMS, "arguments must be an object")
        schema = next((tool["inputSchema"] for tool in TOOLS if tool["name"] == name), None)
        if schema is None:
            raise RpcError(INVALID_PARAMS, f"unknown tool: {name[:100]}")
        # From here on the request is well-formed: what is wrong is the
        # arguments, which the model can correct, so it gets a tool result.
        try:
            return self._run_tool(name, schema, arguments)
        except (ToolInputError, ValidationError, QuotaExceeded) as exc:
            return _tool_error(str(exc)), None

    def _run_tool(
        self, name: str, schema: dict[str, Any], arguments: dict[str, Any]
    ) -> tuple[dict[str, Any], Callable[[], None] | None]:
        unknown = sorted(set(arguments) - set(schema["properties"]))
        if unknown:
            raise ToolInputError(f"unknown argument(s) for {name}: {', '.join(unknown)[:200]}; it takes "
                                 f"{', '.join(schema['properties'])}")
        if name == TOOL_CHECK_PROPOSAL:
            proposal_id = _argument(arguments, "proposal_id", str)
            try:
                validate_proposal_id(proposal_id)
                self.bottle.get(proposal_id)
            except (ValidationError, NotFound):
                raise ToolInputError(f"no proposal {proposal_id[:40]!r} in this bottle: give the proposal_id "
                                     "a filing tool (egress-allow, egress-block) returned") from None
        else:
            justification = _argument(arguments, "justification", str)
            if name == TOOL_EGRESS_BLOCK:
                payload = _argument(arguments, "routes_file", str)
                current = self._current_routes()
            else:
                paths = _argument(arguments, "paths", list, required=False)
                payload = route_payload(_argument(arguments, "host", str), paths)
                current = None
            proposal = self.bottle.submit(name, payload, justification, current_file=current)
            proposal_id = proposal.id
            self.log(f"{name}: filed {proposal.short_id}")
        response = self.bottle.wait_for_response(proposal_id, self.wait_seconds, self.poll_interval)
        return self._tool_result(proposal_id, response)

    def _current_routes(self) -> str | None:
        if self.routes_file is None:
            return None
        try:
            return self.routes_file.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            self.log(f"cannot read the current routes file {self.routes_file}: {exc}")
            return None

    def _tool_result(
        self, proposal_id: str, response: Response | None
    ) -> tuple[dict[str, Any], Callable[[], None] | None]:
        if response is None:
            answer: dict[str, Any] = {
                "status": STATUS_PENDING,
                "notes": "",
                "proposal_id": proposal_id,
                "message": (
                    f"The operator has not decided yet (waited {self.wait_seconds:g} s). The proposal stays "
                    "in the queue: call check-proposal with this proposal_id to wait again."
                ),
            }
            after = None
        else:
            answer = {"status": response.status, "notes": response.notes, "proposal_id": proposal_id}
            if response.status == STATUS_MODIFIED:
                answer["final_file"] = response.final_file
            self.log(f"{proposal_id[:8]}: answered {response.status}")

            def after() -> None:
                self.bottle.archive(proposal_id)

        content = [{"type": "text", "text": json.dumps(answer, indent=2, ensure_ascii=False)}]
        return {"content": content, "structuredContent": answer, "isError": False}, after


def _tool_error(message: str) -> dict[str, Any]:
    """A tool result that reports an error to the model (``isError``), as MCP asks for input errors."""
    return {"content": [{"type": "text", "text": message[:MAX_TEXT_BYTES]}], "isError": True}


def _safe_id(value: object) -> str | int | None:
    return value if isinstance(value, str | int) and not isinstance(value, bool) else None


def _error(message_id: str | int | None, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": message_id, "error": {"code": code, "message": message[:MAX_TEXT_BYTES]}}


def _response_bytes(status: int, body: dict[str, Any], extra: dict[str, str]) -> bytes:
    """A whole HTTP/1.1 response with a JSON body, for the accept loop's refusals (no handler there)."""
    data = json.dumps(body).encode("utf-8")
    head = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}", "Content-Type: application/json",
            f"Content-Length: {len(data)}", *(f"{k}: {v}" for k, v in extra.items()), "", ""]
    return "\r\n".join(head).encode("ascii") + data


class SuperviseHTTPServer(ThreadingHTTPServer):
    """A threaded HTTP server that carries a ``SuperviseService`` and bounds what clients can hold.

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
        service: SuperviseService,
        *,
        request_timeout: float = REQUEST_TIMEOUT_SEC,
        write_timeout: float = WRITE_TIMEOUT_SEC,
        max_connections: int = MAX_CONNECTIONS,
        max_in_flight: int = MAX_CONCURRENT_REQUESTS,
        body_budget: int = BODY_BUDGET_BYTES,
        allowed_hosts: Sequence[str] = (),
    ) -> None:
        super().__init__(address, SuperviseHandler)
        self.service = service
        self.request_timeout = request_timeout
        self.write_timeout = write_timeout
        self.max_connections = max_connections
        self.slots = threading.BoundedSemaphore(max_in_flight)
        self.bodies = ByteBudget(body_budget)
        self.allowed_hosts = frozenset(DEFAULT_ALLOWED_HOSTS) | {normalize_allowed_host(h) for h in allowed_hosts}
        self.lingerer = Lingerer()
        self.connections = 0
        self._connections_lock = threading.Lock()
        self._refusal = _response_bytes(
            HTTPStatus.SERVICE_UNAVAILABLE,
            _error(None, INTERNAL_ERROR, "too many open connections; retry"),
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
    """HTTP framing of the streamable-HTTP transport around ``SuperviseService.handle``.

    Whatever the bytes, each request gets one well-formed HTTP answer (a
    JSON-RPC error body for every refusal) or, past its deadline, 408; an
    unexpected exception is answered 500 without a traceback.
    """

    server: SuperviseHTTPServer
    protocol_version = "HTTP/1.1"
    # A request line without a version is not answered HTTP/0.9-style (a body without a status line).
    default_request_version = "HTTP/1.0"
    server_version = f"bot-bottle-supervise/{__version__}"
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
        self._send_json(status, _error(None, code, message), {**(extra or {}), "Connection": "close"})

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
            self._send_json(HTTPStatus.OK, {"status": "ok", "bottle": self.server.service.bottle.queue_key},
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
                self._answer(length)
            finally:
                self.server.bodies.give(length)
        finally:
            self.server.slots.release()

    def _read_message(self, length: int) -> tuple[object, dict[str, Any] | None]:
        """The body parsed as JSON, or the JSON-RPC error to answer instead."""
        body = self.rfile.read(length)
        if len(body) < length:
            return None, _error(None, INVALID_REQUEST, f"the body ended after {len(body)} of {length} bytes")
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            return None, _error(None, PARSE_ERROR, "parse error: the body is not UTF-8")
        del body
        if nesting_exceeds(text, MAX_JSON_DEPTH):
            return None, _error(None, PARSE_ERROR, f"parse error: JSON nested deeper than {MAX_JSON_DEPTH} levels")
        try:
            return json.loads(text), None
        except (ValueError, RecursionError):
            return None, _error(None, PARSE_ERROR, "parse error: the body is not JSON")

    def _answer(self, length: int) -> None:
        message, refusal = self._read_message(length)
        if refusal is not None:
            self.close_connection = True
            self._send_json(HTTPStatus.BAD_REQUEST, refusal, {"Connection": "close"})
            return
        if isinstance(message, list):
            self._send_json(HTTPStatus.BAD_REQUEST, _error(None, INVALID_REQUEST, "batches are not supported"))
            return
        response, after = self.server.service.handle(message)
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


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value <= MAX_WAIT_SECONDS:
        raise argparse.ArgumentTypeError(f"must be more than 0 and at most {MAX_WAIT_SECONDS:g} seconds")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The sidecar's command line."""
    parser = argparse.ArgumentParser(
        prog="python -m bot_bottle.supervise_server",
        description="The bottle sidecar's supervise server: MCP (streamable HTTP) tools that file "
        "proposals for the operator and wait for the decision.",
        epilog=(
            "examples:\n"
            "  python -m bot_bottle.supervise_server --bottle web-1\n"
            "      in the sidecar: database at " + DB_PATH_IN_CONTAINER + ", listening on 0.0.0.0:9100\n"
            "  python -m bot_bottle.supervise_server --bottle demo --db /tmp/demo.db --host 127.0.0.1 --port 0\n"
            "      on a workstation: any free port, printed as 'listening on http://H:N/'\n"
            "\nThe agent registers it with: claude mcp add --transport http supervise http://supervise:9100/\n"
            "\nWithout --db the database must be the host's, bind-mounted at " + DB_DIR_IN_CONTAINER + " by the\n"
            "backend (docker, smolmachines, macos-container): if " + DB_PATH_IN_CONTAINER + " is missing or\n"
            "not on a mount, the server exits 1 instead of creating a database the operator never sees."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--bottle", required=True, metavar="SLUG", help="this bottle's slug (the queue key)")
    parser.add_argument("--db", type=Path, metavar="PATH", default=None,
                        help=f"database file (default: {DB_PATH_IN_CONTAINER}, the sidecar's mount, which "
                        "must exist); for tests and workstations")
    parser.add_argument("--host", default=DEFAULT_HOST, help=f"address to listen on (default: {DEFAULT_HOST})")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT,
                        help=f"port, 0 for any free one (default: {DEFAULT_PORT})")
    parser.add_argument("--wait-seconds", type=float, default=None, metavar="S",
                        help=f"how long a tool call waits for the decision (default: ${WAIT_SECONDS_ENV} "
                        f"or {DEFAULT_WAIT_SECONDS:g})")
    parser.add_argument("--routes-file", type=Path, metavar="PATH", default=None,
                        help="the bottle's current routes file, diffed against egress-block proposals")
    parser.add_argument("--allowed-host", action="append", default=[], metavar="NAME",
                        help="another name the server is reached by (repeatable); only Host headers naming "
                        f"{', '.join(DEFAULT_ALLOWED_HOSTS)} or these are served, and an Origin must name one too")
    parser.add_argument("--max-pending", type=_positive_int, default=DEFAULT_MAX_PENDING, metavar="N",
                        help=f"proposals this bottle may have waiting at once (default: {DEFAULT_MAX_PENDING}); "
                        "the next filing is refused with a tool error")
    parser.add_argument("--max-pending-bytes", type=_positive_int, default=DEFAULT_MAX_PENDING_BYTES, metavar="B",
                        help="bytes of payloads, justifications and current files this bottle may have waiting "
                        f"at once (default: {DEFAULT_MAX_PENDING_BYTES}, 16 MiB)")
    parser.add_argument("--request-timeout", type=_seconds, default=REQUEST_TIMEOUT_SEC, metavar="S",
                        help="deadline for a whole request's headers and body, and for an idle connection "
                        f"(default: {REQUEST_TIMEOUT_SEC:g}); a slower client is answered 408 and dropped")
    parser.add_argument("--max-connections", type=_positive_int, default=MAX_CONNECTIONS, metavar="N",
                        help=f"open connections at once, one thread each (default: {MAX_CONNECTIONS}); more are "
                        "answered 503 with Retry-After")
    return parser


def start(args: argparse.Namespace, log: Callable[[str], None]) -> tuple[SuperviseHTTPServer, QueueStore]:
    """Check the database (the host's, on its mount, unless ``--db``), open it, and bind the server (not yet serving).

    Raises ``BotBottleError`` (``ValidationError`` for bad arguments,
    ``MissingMount`` for a sidecar without the host's database) or ``OSError`` (cannot listen).
    """
    validate_queue_key(args.bottle, "--bottle")
    wait = wait_seconds_from(args.wait_seconds, os.environ)
    if not 0 <= args.port <= 65535:
        raise ValidationError("--port", "must be between 0 and 65535")
    allowed = [normalize_allowed_host(name) for name in args.allowed_host]
    quota = Quota(args.max_pending, args.max_pending_bytes)
    if args.db is None:
        # Never create the host's database: a fresh file here would collect
        # proposals the operator never sees.
        require_sidecar_database(DB_PATH_IN_CONTAINER)
    db_file = Path(args.db if args.db is not None else DB_PATH_IN_CONTAINER)
    store = QueueStore(db_file)
    try:
        # SQLite's locks are only as good as the filesystem under the mount: say so once, at start.
        warning = check_mount(db_file.parent).warning()
        if warning:
            log(f"warning: {warning}")
        service = SuperviseService(store.for_bottle(args.bottle, quota=quota), wait_seconds=wait,
                                   routes_file=args.routes_file, log=log)
        server = SuperviseHTTPServer((args.host, args.port), service, request_timeout=args.request_timeout,
                                     max_connections=args.max_connections, allowed_hosts=allowed)
        return server, store
    except BaseException:
        store.close()
        raise


def spawn(
    bottle: str, db_path: str | os.PathLike[str], *options: str, ready_timeout: float = 20.0
) -> tuple[subprocess.Popen[str], str]:
    """Start the server as its own process on a free loopback port, as a workstation tool would.

    Waits for its ``listening on`` line and returns the process and its URL;
    ``options`` are more command-line arguments (``--wait-seconds``, ...). The
    child imports this same ``bot_bottle``, wherever the caller was started
    from. Raises ``BotBottleError`` (and stops the child) if it is not ready in time.
    """
    server = subprocess.Popen(
        [sys.executable, "-m", "bot_bottle.supervise_server", "--bottle", bottle, "--db", os.fspath(db_path),
         "--host", "127.0.0.1", "--port", "0", *options],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(p or os.getcwd() for p in sys.path)},
    )
    assert server.stdout is not None
    stdout = server.stdout
    ready: list[str] = []
    reader = threading.Thread(target=lambda: ready.append(stdout.readline()), daemon=True)
    reader.start()
    reader.join(ready_timeout)
    line = ready[0] if ready else ""
    if not line.startswith("listening on "):
        server.kill()
        server.communicate()
        raise BotBottleError("the supervise server did not start (run it alone to see why: "
                             "python3 -m bot_bottle.supervise_server --help)")
    return server, line.split()[-1]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the server until SIGTERM or Ctrl-C; returns the exit status."""
    args = build_parser().parse_args(argv)

    def log(line: str) -> None:
        print(f"supervise[{args.bottle}]: {line}", file=sys.stderr, flush=True)

    try:
        server, store = start(args, log)
    except BotBottleError as exc:
        print(f"supervise-server: error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, ValidationError) else 1
    except OSError as exc:
        print(f"supervise-server: error: cannot listen on {args.host}:{args.port}: {exc.strerror}", file=sys.stderr)
        return 1

    def stop(signum: int, frame: FrameType | None) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    host, port = str(server.server_address[0]), int(server.server_address[1])
    print(f"listening on http://{host}:{port}/", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
