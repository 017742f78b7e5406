"""JSON-RPC 2.0 as every server here speaks it: the error codes, by name, and the shape of an error.

The codes from -32768 to -32000 are JSON-RPC's own; -32000 to -32099 are
left to the server, and bot-bottle's are named here once, for the sidecar's
MCP service, the relay and the relay's client alike.
"""

from __future__ import annotations

from typing import Any

from bot_bottle.records import MAX_TEXT_BYTES

# JSON-RPC's own codes.
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603

# bot-bottle's (the server's range): what the relay answers, and its client raises again as bot-bottle's errors.
NOT_FOUND = -32001  # no such proposal in the caller's bottle
QUOTA_EXCEEDED = -32002  # the bottle has as much pending as it may
STILL_PENDING = -32003  # archiving a proposal without a decision
ALREADY_DECIDED = -32004  # the first decision stands
DATABASE_UNAVAILABLE = -32005  # the host database is unavailable to the relay (the message says why)
INVALID_FIELD = -32006  # a field refused before anything was written; data.field names it
BUSY = -32007  # too many calls of this bottle at once: retry
UNAUTHORIZED = -32008  # the credential was revoked or replaced while the call waited


def safe_id(value: object) -> str | int | None:
    """A message id fit to echo back (a string or an integer), else None."""
    return value if isinstance(value, str | int) and not isinstance(value, bool) else None


def rpc_error(message_id: str | int | None, code: int, message: str) -> dict[str, Any]:
    """A JSON-RPC error response (the message cut to a bounded size)."""
    return {"jsonrpc": "2.0", "id": message_id, "error": {"code": code, "message": message[:MAX_TEXT_BYTES]}}
