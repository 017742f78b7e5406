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

Run as the sidecar: ``python -m bot_bottle.supervise_server --bottle SLUG``;
the database is the constant ``DB_PATH_IN_CONTAINER``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import urlsplit

from bot_bottle import __version__
from bot_bottle.db import DB_PATH_IN_CONTAINER
from bot_bottle.errors import BotBottleError, NotFound, ValidationError
from bot_bottle.mount_safety import check_mount
from bot_bottle.queue_store import BottleQueue, QueueStore
from bot_bottle.records import (
    DEFAULT_POLL_INTERVAL_SEC,
    MAX_TEXT_BYTES,
    STATUS_MODIFIED,
    STATUS_PENDING,
    TOOL_EGRESS_ALLOW,
    TOOL_EGRESS_BLOCK,
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
SOCKET_TIMEOUT_SEC = 15.0
MAX_CONCURRENT_REQUESTS = 128
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


def _argument(arguments: dict[str, Any], name: str, kind: type, required: bool = True) -> Any:
    if name not in arguments:
        if required:
            raise RpcError(INVALID_PARAMS, f"missing argument: {name}")
        return None
    value = arguments[name]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise RpcError(INVALID_PARAMS, f"argument {name} must be a {kind.__name__}")
    return value


def route_payload(host: str, paths: list[str] | None) -> str:
    """The ``egress-allow`` payload: one route as a small, stable JSON document (rules: ``routes.make_route``)."""
    try:
        return make_route(host, paths or None).to_document()
    except ValidationError as exc:
        raise RpcError(INVALID_PARAMS, f"argument {exc}") from None


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
        except ValidationError as exc:
            return _error(message_id, INVALID_PARAMS, str(exc)), None
        except BotBottleError as exc:
            self.log(f"error: {exc}")
            return _error(message_id, INTERNAL_ERROR, f"the supervise queue is unavailable: {exc}"), None
        except Exception as exc:  # never a traceback to the client, never a dead thread
            self.log(f"internal error in {method}: {exc!r}")
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
        unknown = sorted(set(arguments) - set(schema["properties"]))
        if unknown:
            raise RpcError(INVALID_PARAMS, f"unknown argument(s) for {name}: {', '.join(unknown)[:200]}")
        if name == TOOL_CHECK_PROPOSAL:
            proposal_id = _argument(arguments, "proposal_id", str)
            try:
                validate_proposal_id(proposal_id)
                self.bottle.get(proposal_id)
            except (ValidationError, NotFound):
                raise RpcError(INVALID_PARAMS, f"no proposal {proposal_id[:40]!r} in this bottle") from None
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


def _safe_id(value: object) -> str | int | None:
    return value if isinstance(value, str | int) and not isinstance(value, bool) else None


def _error(message_id: str | int | None, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": message_id, "error": {"code": code, "message": message[:MAX_TEXT_BYTES]}}


class SuperviseHTTPServer(ThreadingHTTPServer):
    """A threaded HTTP server that carries a ``SuperviseService`` and caps concurrent requests."""

    daemon_threads = True
    allow_reuse_address = True
    # socketserver's default backlog of 5 resets connections when many agents
    # call at once (seen with 50 concurrent tool calls).
    request_queue_size = MAX_CONCURRENT_REQUESTS

    def __init__(
        self, address: tuple[str, int], service: SuperviseService, *, socket_timeout: float = SOCKET_TIMEOUT_SEC
    ) -> None:
        super().__init__(address, SuperviseHandler)
        self.service = service
        self.socket_timeout = socket_timeout
        self.slots = threading.BoundedSemaphore(MAX_CONCURRENT_REQUESTS)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """One log line instead of socketserver's traceback (a client that vanished mid-answer)."""
        error = sys.exc_info()[1]
        self.service.log(f"connection from {client_address[0]} failed: {error!r}")


class SuperviseHandler(BaseHTTPRequestHandler):
    """HTTP framing of the streamable-HTTP transport around ``SuperviseService.handle``."""

    server: SuperviseHTTPServer
    protocol_version = "HTTP/1.1"
    server_version = f"bot-bottle-supervise/{__version__}"

    def setup(self) -> None:
        """Set the socket timeout: a client that stalls mid-request is dropped, not waited on forever."""
        super().setup()
        self.connection.settimeout(self.server.socket_timeout)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the service logs what matters (filings and decisions) itself."""

    def _send_json(self, status: int, body: dict[str, Any] | None, extra: dict[str, str] | None = None) -> None:
        data = b"" if body is None else json.dumps(body, ensure_ascii=False).encode("utf-8")
        self.send_response(status)
        if body is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if data:
            self.wfile.write(data)
        self.wfile.flush()

    def _refuse(self, status: HTTPStatus, code: int, message: str, close: bool = False) -> None:
        if close:
            self.close_connection = True
        self._send_json(status, _error(None, code, message), {"Connection": "close"} if close else None)

    def _origin_allowed(self) -> bool:
        # DNS rebinding: a browser page may POST here with its own Origin.
        # Agents send none; a browser on this machine sends a loopback one.
        origin = self.headers.get("Origin")
        if origin is None:
            return True
        host = urlsplit(origin).hostname or ""
        own_host = urlsplit(f"//{self.headers.get('Host', '')}").hostname
        return host in ("localhost", "127.0.0.1", "::1") or host == own_host

    def do_GET(self) -> None:
        """Health check at /healthz; no server-to-client stream otherwise (405)."""
        if self.path.split("?")[0] == "/healthz":
            self._send_json(HTTPStatus.OK, {"status": "ok", "bottle": self.server.service.bottle.queue_key})
            return
        self._send_json(HTTPStatus.METHOD_NOT_ALLOWED, None, {"Allow": "POST"})

    def do_DELETE(self) -> None:
        """There are no sessions to end (405)."""
        self._send_json(HTTPStatus.METHOD_NOT_ALLOWED, None, {"Allow": "POST"})

    def do_POST(self) -> None:
        """One JSON-RPC message in, its answer out; the decision it carried archived afterwards."""
        if not self._origin_allowed():
            self._refuse(HTTPStatus.FORBIDDEN, INVALID_REQUEST, "origin not allowed", close=True)
            return
        content_type = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if content_type != "application/json":
            self._refuse(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, INVALID_REQUEST, "Content-Type must be application/json",
                         close=True)
            return
        version = self.headers.get("MCP-Protocol-Version")
        if version is not None and version not in SUPPORTED_PROTOCOL_VERSIONS:
            self._refuse(HTTPStatus.BAD_REQUEST, INVALID_REQUEST, f"unsupported MCP-Protocol-Version {version[:40]}",
                         close=True)
            return
        raw_length = self.headers.get("Content-Length")
        if raw_length is None or not raw_length.strip().isdigit():
            self._refuse(HTTPStatus.LENGTH_REQUIRED, INVALID_REQUEST, "Content-Length is required", close=True)
            return
        length = int(raw_length)
        if length > MAX_BODY_BYTES:
            # Answer before reading it, then drop the connection with the rest unread.
            self._refuse(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, INVALID_REQUEST,
                         f"body of {length} bytes is over the limit of {MAX_BODY_BYTES}", close=True)
            return
        body = self.rfile.read(length)
        if len(body) < length:
            self.close_connection = True
            return
        if not self.server.slots.acquire(blocking=False):
            self._refuse(HTTPStatus.SERVICE_UNAVAILABLE, INTERNAL_ERROR, "too many requests in flight; retry")
            return
        try:
            self._answer(body)
        finally:
            self.server.slots.release()

    def _answer(self, body: bytes) -> None:
        try:
            message = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            self._send_json(HTTPStatus.BAD_REQUEST, _error(None, PARSE_ERROR, "parse error: the body is not JSON"))
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

    def handle_one_request(self) -> None:
        """As the base class, but a client that times out or resets is simply dropped."""
        try:
            super().handle_one_request()
        except (TimeoutError, ConnectionError):
            self.close_connection = True


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
            "\nThe agent registers it with: claude mcp add --transport http supervise http://supervise:9100/"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--bottle", required=True, metavar="SLUG", help="this bottle's slug (the queue key)")
    parser.add_argument("--db", type=Path, metavar="PATH", default=None,
                        help=f"database file (default: {DB_PATH_IN_CONTAINER}, the sidecar's mount)")
    parser.add_argument("--host", default=DEFAULT_HOST, help=f"address to listen on (default: {DEFAULT_HOST})")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT,
                        help=f"port, 0 for any free one (default: {DEFAULT_PORT})")
    parser.add_argument("--wait-seconds", type=float, default=None, metavar="S",
                        help=f"how long a tool call waits for the decision (default: ${WAIT_SECONDS_ENV} "
                        f"or {DEFAULT_WAIT_SECONDS:g})")
    parser.add_argument("--routes-file", type=Path, metavar="PATH", default=None,
                        help="the bottle's current routes file, diffed against egress-block proposals")
    return parser


def start(args: argparse.Namespace, log: Callable[[str], None]) -> tuple[SuperviseHTTPServer, QueueStore]:
    """Open the database, check the mount under it, and bind the server (not yet serving).

    Raises ``BotBottleError`` (``ValidationError`` for bad arguments) or ``OSError`` (cannot listen).
    """
    validate_queue_key(args.bottle, "--bottle")
    wait = wait_seconds_from(args.wait_seconds, os.environ)
    if not 0 <= args.port <= 65535:
        raise ValidationError("--port", "must be between 0 and 65535")
    db_file = Path(args.db if args.db is not None else DB_PATH_IN_CONTAINER)
    store = QueueStore(db_file)
    try:
        # SQLite's locks are only as good as the filesystem under the mount: say so once, at start.
        warning = check_mount(db_file.parent).warning()
        if warning:
            log(f"warning: {warning}")
        service = SuperviseService(store.for_bottle(args.bottle), wait_seconds=wait, routes_file=args.routes_file,
                                   log=log)
        return SuperviseHTTPServer((args.host, args.port), service), store
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
