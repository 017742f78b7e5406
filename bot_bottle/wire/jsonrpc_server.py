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
threads or memory unbounded (``wire.guarded_server`` and ``wire.http_bounds`` hold the pieces): one deadline
per request, capped connections, requests in flight and body bytes, and only
the allowed Host names served.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from email.message import Message
from http import HTTPStatus
from typing import Any, Protocol

from bot_bottle import __version__
from bot_bottle.errors import BotBottleError, Unauthorized, ValidationError
from bot_bottle.wire.guarded_server import (
    RETRY_AFTER_SEC,
    GuardedHandler,
    GuardedHTTPServer,
    response_bytes,
)
from bot_bottle.wire.http_bounds import nesting_exceeds, parse_authority, parse_content_length
from bot_bottle.wire.jsonrpc import INTERNAL_ERROR, INVALID_REQUEST, PARSE_ERROR, rpc_error
from bot_bottle.wire.signing import AUTH_SCHEME

# MCP's protocol versions this transport serves, newest first (the MCP-Protocol-Version header).
SUPPORTED_PROTOCOL_VERSIONS = ("2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05")
MAX_BODY_BYTES = 4 * 1024 * 1024  # a 1 MiB routes file, JSON-escaped, with room to spare
# One deadline for a request's line, headers and body (and for an idle
# keep-alive connection's next request): an agent on the same host sends
# 4 MiB in milliseconds, so only a stalling client ever meets it.
REQUEST_TIMEOUT_SEC = 20.0
WRITE_TIMEOUT_SEC = 15.0  # for writing one answer to a client that does not read it
MAX_CONNECTIONS = 256  # open connections, one thread each; more are answered 503 by the accept loop
MAX_CONCURRENT_REQUESTS = 128  # requests read or waiting for a decision at once; more are answered 503
BODY_BUDGET_BYTES = 32 * 1024 * 1024  # request bodies in memory at once (8 of the largest)
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

    def check_body(self, principal: object, body: bytes) -> None:
        """Accept the request's body as sent, or raise ``Unauthorized`` (it is not what was authorized)."""

    def sign(self, principal: object, status: int, body: bytes) -> dict[str, str]:
        """Headers that prove the answer comes from this server (none where nothing needs proving)."""

    def admit(self, principal: object) -> str | None:
        """Take one of ``principal``'s places for a request in flight: ``None``, or why it must retry (503)."""

    def leave(self, principal: object) -> None:
        """Give back the place ``admit`` took."""

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


class SuperviseHTTPServer(GuardedHTTPServer):
    """The guarded threaded server (``wire.guarded_server``) carrying a ``JsonRpcService``.

    Open connections are capped (``max_connections``, one thread each; the
    next is answered 503 by the accept loop itself), requests in flight are
    capped (``max_in_flight``, checked before a body is read), request bodies
    held in memory share a byte budget, and every request has one deadline
    for its headers and body (``request_timeout``).
    """

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
        refusal = response_bytes(
            HTTPStatus.SERVICE_UNAVAILABLE, "application/json",
            json.dumps(rpc_error(None, INTERNAL_ERROR, "too many open connections; retry")).encode("utf-8"),
            {"Retry-After": str(RETRY_AFTER_SEC), "Connection": "close"},
        )
        super().__init__(
            address, SuperviseHandler,
            allowed_hosts=frozenset(DEFAULT_ALLOWED_HOSTS) | {normalize_allowed_host(h) for h in allowed_hosts},
            connection_refusal=refusal, log=service.log, request_timeout=request_timeout,
            write_timeout=write_timeout, max_connections=max_connections, max_in_flight=max_in_flight,
            body_budget=body_budget,
        )
        self.service = service
        self.software = f"{software}/{__version__}"


class SuperviseHandler(GuardedHandler):
    """HTTP framing of the streamable-HTTP transport around ``JsonRpcService.handle``.

    Whatever the bytes, each request gets one well-formed HTTP answer (a
    JSON-RPC error body for every refusal) or, past its deadline, 408; an
    unexpected exception is answered 500 without a traceback.
    """

    server: SuperviseHTTPServer
    allowed_methods = "GET, POST, DELETE"

    def version_string(self) -> str:
        """The Server header: which of bot-bottle's servers answers."""
        return self.server.software

    def error_body(self, status: HTTPStatus, message: str, server_fault: bool) -> tuple[str, bytes]:
        """A JSON-RPC error object: internal error for our side's failures, invalid request for the client's."""
        body = rpc_error(None, INTERNAL_ERROR if server_fault else INVALID_REQUEST, message)
        return "application/json", json.dumps(body, ensure_ascii=False).encode("utf-8")

    def _send_json(self, status: int, body: dict[str, Any] | None, extra: dict[str, str] | None = None) -> None:
        data = b"" if body is None else json.dumps(body, ensure_ascii=False).encode("utf-8")
        self.send_body(status, None if body is None else "application/json", data, extra)

    def _refuse(self, status: HTTPStatus, code: int, message: str, extra: dict[str, str] | None = None) -> None:
        """Answer a JSON-RPC error with ``code`` and close the connection, draining what the client still sends."""
        self.close_connection = True
        self._send_json(status, rpc_error(None, code, message), {**(extra or {}), "Connection": "close"})

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
            self._refuse(HTTPStatus.UNAUTHORIZED, INVALID_REQUEST, str(exc), {"WWW-Authenticate": AUTH_SCHEME})
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
        # Every limit is taken before the body is read, so refused bodies never reach memory. The
        # principal's own first: one caller trickling bodies cannot hold every place in flight.
        busy = {"Retry-After": str(RETRY_AFTER_SEC)}
        why = self.server.service.admit(principal)
        if why is not None:
            self._refuse(HTTPStatus.SERVICE_UNAVAILABLE, INTERNAL_ERROR, why, busy)
            return
        try:
            self._within_slots(length, principal, busy)
        finally:
            self.server.service.leave(principal)

    def _within_slots(self, length: int, principal: object, busy: dict[str, str]) -> None:
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

    def _read_message(self, length: int, principal: object) -> tuple[object, dict[str, Any] | None]:
        """The body parsed as JSON, or the JSON-RPC error to answer instead (``Unauthorized`` is raised)."""
        body = self.rfile.read(length)
        if len(body) < length:
            return None, rpc_error(None, INVALID_REQUEST, f"the body ended after {len(body)} of {length} bytes")
        self.server.service.check_body(principal, body)
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
        try:
            message, refusal = self._read_message(length, principal)
        except Unauthorized as exc:
            self._refuse(HTTPStatus.UNAUTHORIZED, INVALID_REQUEST, str(exc))
            return
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
        data = json.dumps(response, ensure_ascii=False).encode("utf-8")
        self.send_body(status, "application/json", data, self.server.service.sign(principal, status, data) or None)
        if after is not None:
            try:
                after()
            except BotBottleError as exc:
                self.server.service.log(f"could not archive after answering: {exc}")

