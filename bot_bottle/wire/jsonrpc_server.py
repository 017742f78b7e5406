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

import contextlib
import json
from collections.abc import Callable, Sequence
from email.message import Message
from http import HTTPStatus
from typing import Any, Protocol

from bot_bottle import __version__
from bot_bottle.errors import BotBottleError, DatabaseError, RetryLater, Unauthorized, ValidationError
from bot_bottle.wire.guarded_server import (
    RETRY_AFTER_SEC,
    GuardedHandler,
    GuardedHTTPServer,
    response_bytes,
)
from bot_bottle.wire.http_bounds import parse_authority, parse_content_length
from bot_bottle.wire.json_bounds import shape_problem
from bot_bottle.wire.jsonrpc import BUSY, INTERNAL_ERROR, INVALID_REQUEST, PARSE_ERROR, UNAUTHORIZED, rpc_error
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
# Values (arrays, objects, scalars) in one message: ours carry dozens. Each is a Python object of up to a
# few hundred bytes, so this bounds what parsing a body may take (some 3 MiB) whatever its shape.
MAX_JSON_VALUES = 10_000
SIDECAR_HOSTNAME = "supervise"  # the name backends give the sidecar on the bottle's network
# The names the server answers to unless --allowed-host adds more.
DEFAULT_ALLOWED_HOSTS = (SIDECAR_HOSTNAME, "localhost", "127.0.0.1", "::1")


class JsonRpcService(Protocol):
    """What the HTTP transport serves: one parsed JSON-RPC message in, one answer out."""

    def log(self, line: str) -> None:
        """Write one line to the server's log."""

    def authorize(self, headers: Message) -> object:
        """Who sent the request, from its headers, before its body is read.

        Raises ``Unauthorized`` (401), or ``RetryLater`` (503: the caller is
        genuine but must send the request again, freshly signed).
        """

    def name(self, principal: object) -> str | None:
        """Who ``principal`` is, for the log (``None``: the peer's address says it)."""

    def check_body(self, principal: object, body: bytes) -> None:
        """Accept the request's body as sent, or raise ``Unauthorized`` (it is not what was authorized)."""

    def sign(self, principal: object, status: int, body: bytes) -> dict[str, str]:
        """Headers that prove the answer comes from this server (none where nothing needs proving)."""

    def admit(self, principal: object, length: int) -> str | None:
        """Take one of ``principal``'s places for a request in flight and ``length`` bytes of its body budget:
        ``None``, or why it must retry (503)."""

    def leave(self, principal: object, length: int) -> None:
        """Give back what ``admit`` took."""

    def answering(self, principal: object) -> contextlib.AbstractContextManager[None]:
        """Held while ``principal``'s request is served and its answer written, so what answers hold in memory
        is bounded by how many of its requests are answered at once (``RetryLater``: none could be)."""

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

    Connections waiting to be authenticated are capped (``max_connections``,
    ``max_per_peer``; one thread each; the next is answered 503 by the accept
    loop itself, or with ``evict`` the oldest is cut), requests in flight are
    capped (``max_in_flight``, checked before a body is read), request bodies
    held in memory share a byte budget (both ``None`` where the service
    budgets each caller: the relay), and every request has one deadline for
    its headers and body (``request_timeout``).
    """

    def __init__(
        self,
        address: tuple[str, int],
        service: JsonRpcService,
        *,
        request_timeout: float = REQUEST_TIMEOUT_SEC,
        write_timeout: float = WRITE_TIMEOUT_SEC,
        max_connections: int = MAX_CONNECTIONS,
        max_in_flight: int | None = MAX_CONCURRENT_REQUESTS,
        body_budget: int | None = BODY_BUDGET_BYTES,
        max_per_peer: int | None = None,
        evict: bool = False,
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
            body_budget=body_budget, max_per_peer=max_per_peer, evict=evict,
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

    @classmethod
    def error_body(cls, status: HTTPStatus, message: str, server_fault: bool) -> tuple[str, bytes]:
        """A JSON-RPC error object: internal error for our side's failures, invalid request for the client's."""
        body = rpc_error(None, INTERNAL_ERROR if server_fault else INVALID_REQUEST, message)
        return "application/json", json.dumps(body, ensure_ascii=False).encode("utf-8")

    def _send_json(self, status: int, body: dict[str, Any] | None, extra: dict[str, str] | None = None) -> None:
        data = b"" if body is None else json.dumps(body, ensure_ascii=False).encode("utf-8")
        self.send_body(status, None if body is None else "application/json", data, extra)

    def _refuse(self, status: HTTPStatus, code: int, message: str, extra: dict[str, str] | None = None) -> None:
        """Answer a JSON-RPC error with ``code`` and close the connection, draining what the client still sends."""
        self.close_connection = True
        self.server.refusals.note(self.pool_entry.who, status, message)
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
        busy = {"Retry-After": str(RETRY_AFTER_SEC)}
        service = self.server.service
        try:
            # Before anything of the body is read or counted: a caller without credentials holds nothing
            # but its place among the connections waiting to be authenticated.
            principal = service.authorize(self.headers)
        except Unauthorized as exc:
            self._refuse(HTTPStatus.UNAUTHORIZED, INVALID_REQUEST, str(exc), {"WWW-Authenticate": AUTH_SCHEME})
            return
        except RetryLater as exc:
            self._refuse(HTTPStatus.SERVICE_UNAVAILABLE, INTERNAL_ERROR, str(exc), busy)
            return
        except DatabaseError as exc:  # the credentials could not be read (busy, or the file replaced): say why
            self._refuse(HTTPStatus.SERVICE_UNAVAILABLE, INTERNAL_ERROR, str(exc), busy)
            return
        name = service.name(principal)
        if name is not None:
            # From here the connection is the caller's, counted in its own budgets, not in the pool.
            self.server.pool.charge(self.pool_entry, principal, name)
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
        why = service.admit(principal, length)
        if why is not None:
            self._refuse(HTTPStatus.SERVICE_UNAVAILABLE, INTERNAL_ERROR, why, busy)
            return
        try:
            self._within_slots(length, principal, busy)
        finally:
            service.leave(principal, length)

    def _within_slots(self, length: int, principal: object, busy: dict[str, str]) -> None:
        """The server's own caps, where it has them (the relay's are each bottle's, taken by ``admit``)."""
        slots, bodies = self.server.slots, self.server.bodies
        if slots is not None and not slots.acquire(blocking=False):
            self._refuse(HTTPStatus.SERVICE_UNAVAILABLE, INTERNAL_ERROR, "too many requests in flight; retry", busy)
            return
        try:
            if bodies is not None and not bodies.take(length):
                self._refuse(HTTPStatus.SERVICE_UNAVAILABLE, INTERNAL_ERROR,
                             "too many request bytes in flight; retry", busy)
                return
            try:
                self._answer(length, principal)
            finally:
                if bodies is not None:
                    bodies.give(length)
        finally:
            if slots is not None:
                slots.release()

    def _read_message(self, length: int, principal: object) -> tuple[object, tuple[HTTPStatus, dict[str, Any]] | None]:
        """The body parsed as JSON, or the status and JSON-RPC error to answer instead (``Unauthorized`` is
        raised)."""
        body = self.rfile.read(length)
        if len(body) < length:
            if self.pool_entry.ended is not None:  # cut: its caller's credential was revoked meanwhile
                raise Unauthorized(self.pool_entry.ended[1])
            return None, (HTTPStatus.BAD_REQUEST,
                          rpc_error(None, INVALID_REQUEST, f"the body ended after {len(body)} of {length} bytes"))
        self.server.service.check_body(principal, body)
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            return None, (HTTPStatus.BAD_REQUEST, rpc_error(None, PARSE_ERROR, "parse error: the body is not UTF-8"))
        del body
        problem = shape_problem(text, MAX_JSON_DEPTH, MAX_JSON_VALUES)
        if problem is not None:
            # Refused before parsing; more values than a request may hold is a body too large to take.
            status = HTTPStatus.REQUEST_ENTITY_TOO_LARGE if problem.too_large else HTTPStatus.BAD_REQUEST
            return None, (status, rpc_error(None, PARSE_ERROR, f"parse error: {problem.message}"))
        try:
            return json.loads(text), None
        except (ValueError, RecursionError):
            return None, (HTTPStatus.BAD_REQUEST, rpc_error(None, PARSE_ERROR, "parse error: the body is not JSON"))

    def _answer(self, length: int, principal: object) -> None:
        try:
            message, refusal = self._read_message(length, principal)
        except Unauthorized as exc:
            self._refuse(HTTPStatus.UNAUTHORIZED, INVALID_REQUEST, str(exc))
            return
        if refusal is not None:
            self.close_connection = True
            self.server.refusals.note(self.pool_entry.who, refusal[0], str(refusal[1]["error"]["message"]))
            self._send_json(refusal[0], refusal[1], {"Connection": "close"})
            return
        if isinstance(message, list):
            self._send_json(HTTPStatus.BAD_REQUEST, rpc_error(None, INVALID_REQUEST, "batches are not supported"))
            return
        try:
            with self.server.service.answering(principal):
                after = self._respond(message, principal)
        except RetryLater as exc:
            self._refuse(HTTPStatus.SERVICE_UNAVAILABLE, INTERNAL_ERROR, str(exc),
                         {"Retry-After": str(RETRY_AFTER_SEC)})
            return
        if after is not None:
            try:
                after()
            except BotBottleError as exc:
                self.server.service.log(f"could not archive after answering: {exc}")

    def _respond(self, message: object, principal: object) -> Callable[[], None] | None:
        """Serve ``message`` and write its answer; what to run once it is sent."""
        response, after = self.server.service.handle(message, principal)
        if response is None:
            self._send_json(HTTPStatus.ACCEPTED, None)
            return None
        status = HTTPStatus.BAD_REQUEST if response.get("id") is None and "error" in response else HTTPStatus.OK
        error = response.get("error")
        if isinstance(error, dict) and error.get("code") in (BUSY, UNAUTHORIZED):
            # Told to retry, or refused as revoked: refusals too, though answered in JSON-RPC.
            self.server.refusals.note(self.pool_entry.who, status, str(error.get("message", "")))
        data = json.dumps(response, ensure_ascii=False).encode("utf-8")
        self.send_body(status, "application/json", data, self.server.service.sign(principal, status, data) or None)
        return after

