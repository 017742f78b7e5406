"""The supervise server's MCP service, independent of HTTP: one JSON-RPC message in, one answer out.

Its tools file proposals through the bottle-bound queue handle and hold the
call until the operator decides, for at most the wait bound. When the bound
passes, the tool returns a normal result saying the proposal is still
pending, with its id, so the agent can call ``check-proposal`` later; the
proposal stays in the queue. ``TOOL_TABLE`` holds each tool's schema and
handler together.

Mistakes in a tool's arguments come back as tool results with ``isError``
(the model can read and correct them); protocol errors stay JSON-RPC errors,
as the MCP specification of 2025-11-25 separates them. The transport is
``wire.jsonrpc_server``; the process, ``sidecar.server``.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot_bottle import __version__
from bot_bottle.errors import (
    BotBottleError,
    NotFound,
    QuotaExceeded,
    RelayUnreachable,
    RpcError,
    ToolInputError,
    Unauthorized,
    ValidationError,
)
from bot_bottle.policy.routes import METHODS, make_route
from bot_bottle.records import (
    DEFAULT_POLL_INTERVAL_SEC,
    MAX_TEXT_BYTES,
    STATUS_MODIFIED,
    STATUS_PENDING,
    TOOL_EGRESS_ALLOW,
    TOOL_EGRESS_BLOCK,
    Response,
    validate_proposal_id,
)
from bot_bottle.wire.jsonrpc import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    rpc_error,
    safe_id,
)
from bot_bottle.wire.jsonrpc_server import SUPPORTED_PROTOCOL_VERSIONS

if TYPE_CHECKING:
    from bot_bottle.sidecar.transport import SidecarQueue

DEFAULT_WAIT_SECONDS = 30.0
TOOL_CHECK_PROPOSAL = "check-proposal"
SERVER_NAME = "bot-bottle-supervise"

_TEXT = {"type": "string"}
_TOOL_LISTINGS: list[dict[str, Any]] = [
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
                "methods": {
                    "type": "array",
                    "items": {"type": "string", "enum": list(METHODS)},
                    "description": "optional HTTP methods (default: every method)",
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


def route_payload(host: str, paths: list[str] | None, methods: list[str] | None = None) -> str:
    """The ``egress-allow`` payload: one route as a small, stable JSON document (``policy.routes.make_route``)."""
    try:
        return make_route(host, paths or None, methods or None).to_document()
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
        bottle: SidecarQueue,
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

    def authorize(self, headers: Message) -> None:
        """Every request is served: the sidecar is reached only from its own bottle's network."""
        return None

    def name(self, principal: object) -> str | None:
        """No name: the agent is the one caller, known by its address."""
        return None

    def admit(self, principal: object, length: int) -> str | None:
        """Every request may take a place (only the server's own caps apply: there is one caller)."""
        return None

    def leave(self, principal: object, length: int) -> None:
        """Nothing was taken."""

    def answering(self, principal: object) -> contextlib.AbstractContextManager[None]:
        """No turn to take: the server's own caps bound the one caller's answers."""
        return contextlib.nullcontext()

    def check_body(self, principal: object, body: bytes) -> None:
        """Every body is accepted as sent (nothing was signed)."""

    def sign(self, principal: object, status: int, body: bytes) -> dict[str, str]:
        """No signature: the agent reaches its own sidecar, on its own network."""
        return {}

    def health(self) -> dict[str, Any]:
        """The bottle this server files for, for ``GET /healthz``."""
        return {"bottle": self.bottle.queue_key}

    def handle(
        self, message: object, principal: object = None
    ) -> tuple[dict[str, Any] | None, Callable[[], None] | None]:
        """Answer one parsed JSON-RPC message (``principal`` is unused: see ``authorize``)."""
        if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
            return rpc_error(None, INVALID_REQUEST, "not a JSON-RPC 2.0 message"), None
        message_id = message.get("id")
        if "method" not in message:
            return None, None  # a response to a request we never send: accept and ignore
        method = message["method"]
        if not isinstance(method, str):
            return rpc_error(safe_id(message_id), INVALID_REQUEST, "method must be a string"), None
        if "id" not in message:
            return None, None  # a notification (notifications/initialized, cancelled, ...)
        if isinstance(message_id, bool) or not isinstance(message_id, str | int):
            return rpc_error(None, INVALID_REQUEST, "id must be a string or an integer"), None
        params = message.get("params", {})
        if not isinstance(params, dict):
            return rpc_error(message_id, INVALID_PARAMS, "params must be an object"), None
        try:
            result, after = self._dispatch(method, params)
        except RpcError as exc:
            return rpc_error(message_id, exc.code, exc.message), None
        except BotBottleError as exc:
            self.log(f"error: {exc}")
            return rpc_error(message_id, INTERNAL_ERROR, f"the supervise queue is unavailable: {exc}"), None
        except Exception as exc:  # never a traceback to the client, never a dead thread
            self.log(f"internal error in {method[:100]}: {exc!r}")
            return rpc_error(message_id, INTERNAL_ERROR, "internal error"), None
        return {"jsonrpc": "2.0", "id": message_id, "result": result}, after

    def _dispatch(self, method: str, params: dict[str, Any]) -> tuple[dict[str, Any], Callable[[], None] | None]:
        methods: dict[str, Callable[[dict[str, Any]], tuple[dict[str, Any], Callable[[], None] | None]]] = {
            "initialize": lambda p: (self._initialize(p), None),
            "ping": lambda p: ({}, None),
            "tools/list": lambda p: ({"tools": TOOLS}, None),
            "tools/call": self._call_tool,
        }
        if method not in methods:
            raise RpcError(METHOD_NOT_FOUND, f"method not found: {method[:100]}")
        return methods[method](params)

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
        tool = TOOL_TABLE.get(name)
        if tool is None:
            raise RpcError(INVALID_PARAMS, f"unknown tool: {name[:100]}")
        # From here on the request is well-formed: what is wrong is the
        # arguments, which the model can correct, so it gets a tool result.
        try:
            return self._run_tool(tool, arguments)
        except (ToolInputError, ValidationError, QuotaExceeded) as exc:
            return _tool_error(str(exc)), None
        except (RelayUnreachable, Unauthorized) as exc:
            # Nothing was filed or decided: the model is told so, and that it is the operator's to fix.
            self.log(f"error: {exc}")
            return _tool_error(str(exc)), None

    def _run_tool(
        self, tool: Tool, arguments: dict[str, Any]
    ) -> tuple[dict[str, Any], Callable[[], None] | None]:
        properties = tool.input_schema["properties"]
        unknown = sorted(set(arguments) - set(properties))
        if unknown:
            raise ToolInputError(f"unknown argument(s) for {tool.name}: {', '.join(unknown)[:200]}; it takes "
                                 f"{', '.join(properties)}")
        proposal_id = tool.run(self, arguments)
        response = self.bottle.wait_for_response(proposal_id, self.wait_seconds, self.poll_interval)
        return self._tool_result(proposal_id, response)

    def file(self, tool: str, payload: str, justification: str, current: str | None) -> str:
        """File a proposal for this bottle (within its quota); its id."""
        proposal = self.bottle.submit(tool, payload, justification, current_file=current)
        self.log(f"{tool}: filed {proposal.short_id}")
        return proposal.id

    def current_routes(self) -> str | None:
        """The bottle's current routes file (``--routes-file``), or None if there is none to read."""
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


def _file_routes_file(service: SuperviseService, arguments: dict[str, Any]) -> str:
    """egress-block: file the whole proposed routes file, diffed against the current one."""
    justification = _argument(arguments, "justification", str)
    payload = _argument(arguments, "routes_file", str)
    return service.file(TOOL_EGRESS_BLOCK, payload, justification, service.current_routes())


def _file_route(service: SuperviseService, arguments: dict[str, Any]) -> str:
    """egress-allow: file one route, built and checked by ``policy.routes.make_route``."""
    justification = _argument(arguments, "justification", str)
    paths = _argument(arguments, "paths", list, required=False)
    methods = _argument(arguments, "methods", list, required=False)
    payload = route_payload(_argument(arguments, "host", str), paths, methods)
    return service.file(TOOL_EGRESS_ALLOW, payload, justification, None)


def _check_proposal(service: SuperviseService, arguments: dict[str, Any]) -> str:
    """check-proposal: a proposal this bottle filed, to wait on again."""
    proposal_id: str = _argument(arguments, "proposal_id", str)
    try:
        validate_proposal_id(proposal_id)
        service.bottle.get(proposal_id)
    except (ValidationError, NotFound):
        raise ToolInputError(f"no proposal {proposal_id[:40]!r} in this bottle: give the proposal_id "
                             "a filing tool (egress-allow, egress-block) returned") from None
    return proposal_id


@dataclass(frozen=True)
class Tool:
    """One MCP tool: its name, what ``tools/list`` shows of it, and what a call runs.

    ``run`` files (or finds) the proposal a call is about and returns its id;
    the service then waits for the decision.
    """

    name: str
    description: str
    input_schema: dict[str, Any]
    run: Callable[[SuperviseService, dict[str, Any]], str]

    def listing(self) -> dict[str, Any]:
        """The tool as ``tools/list`` shows it."""
        return {"name": self.name, "description": self.description, "inputSchema": self.input_schema}


_RUNS: dict[str, Callable[[SuperviseService, dict[str, Any]], str]] = {
    TOOL_EGRESS_BLOCK: _file_routes_file,
    TOOL_EGRESS_ALLOW: _file_route,
    TOOL_CHECK_PROPOSAL: _check_proposal,
}
# One table: each tool's schema and handler together.
TOOL_TABLE: dict[str, Tool] = {
    listing["name"]: Tool(listing["name"], listing["description"], listing["inputSchema"], _RUNS[listing["name"]])
    for listing in _TOOL_LISTINGS
}
TOOLS: list[dict[str, Any]] = [tool.listing() for tool in TOOL_TABLE.values()]


def _tool_error(message: str) -> dict[str, Any]:
    """A tool result that reports an error to the model (``isError``), as MCP asks for input errors."""
    return {"content": [{"type": "text", "text": message[:MAX_TEXT_BYTES]}], "isError": True}

