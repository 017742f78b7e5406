"""What a sidecar and the host relay say to each other: the methods, their bounds, and errors as codes.

One JSON-RPC 2.0 request per POST, signed (``wire.signing``). No method
names a bottle: the relay takes it from the credential. An error the relay
answers with a code from ``ERROR_CODES`` is raised again by the client as
the same bot-bottle error, so a sidecar handles a relayed queue exactly as
a direct one.
"""

from __future__ import annotations

from bot_bottle.errors import (
    AlreadyDecided,
    BotBottleError,
    NotFound,
    QuotaExceeded,
    RelayError,
    StillPending,
    Unauthorized,
    ValidationError,
)
from bot_bottle.wire.jsonrpc import (
    ALREADY_DECIDED,
    DATABASE_UNAVAILABLE,
    INVALID_FIELD,
    NOT_FOUND,
    QUOTA_EXCEEDED,
    STILL_PENDING,
    UNAUTHORIZED,
)

# Methods of the relay (each takes an object of params; none names a bottle).
HELLO, SUBMIT, GET, RESPONSE, WAIT, ARCHIVE = "hello", "submit", "get", "response", "wait", "archive"
HEARTBEAT, STOPPED = "heartbeat", "stopped"
GRANTS = "grants"  # the bottle's grants of one tool in force now
MAX_LONG_POLL_SEC = 25.0  # one wait request's bound; a longer wait is several of them
# The errors each code carries (INVALID_FIELD carries a ValidationError with its field; BUSY means retry).
ERROR_CODES: dict[int, type[BotBottleError]] = {
    NOT_FOUND: NotFound,
    QUOTA_EXCEEDED: QuotaExceeded,
    STILL_PENDING: StillPending,
    ALREADY_DECIDED: AlreadyDecided,
    DATABASE_UNAVAILABLE: RelayError,  # the message says why
    UNAUTHORIZED: Unauthorized,
}


def code_of(error: BotBottleError) -> int:
    """The error code the relay answers ``error`` with (the client raises the same class again)."""
    if isinstance(error, ValidationError):
        return INVALID_FIELD
    for code, kind in ERROR_CODES.items():
        if type(error) is kind:
            return code
    return DATABASE_UNAVAILABLE
