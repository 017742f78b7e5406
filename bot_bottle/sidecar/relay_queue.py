"""The relay's protocol, and the sidecar's queue handle that speaks it (``RelayQueue``).

A sidecar in a VM must not open the host database (SQLite's locks do not
cross the VM's file sharing), so its queue handle sends each operation to
``bot-bottle relay`` on the host instead: one JSON-RPC 2.0 request per POST,
signed with the bottle's credential (``wire.signing.sign_request``; the
token itself never crosses the wire). The relay derives the bottle from the
credential; no request names a bottle in its params. An answer counts only
when it carries the relay's signature for that very request
(``answer_is_genuine``): whatever else answers at the relay's address (an
agent intercepting the VM's traffic) cannot make the sidecar believe a
decision. ``RelayQueue`` has ``BottleQueue``'s interface, so
the supervise server, git-gate and egress use either without knowing which.

Failing closed: an operation the relay does not answer is retried for a
short while (every operation is idempotent: a filing dedupes, archiving
twice is archiving once), then raises ``RelayUnreachable``; a wait keeps
retrying until its own deadline, so a relay restart costs a waiting call
nothing (the decision is in the database, and the next long poll finds it).
"""

from __future__ import annotations

import http.client
import json
import socket
import time
from typing import Any

from bot_bottle.errors import (
    RelayError,
    RelayUnreachable,
    RetryLater,
    Unauthorized,
    ValidationError,
)
from bot_bottle.grant_records import Grant
from bot_bottle.records import DEFAULT_POLL_INTERVAL_SEC, Proposal, Response, canonical_json
from bot_bottle.text.terminal import clean_line
from bot_bottle.wire.jsonrpc import BUSY, INVALID_FIELD
from bot_bottle.wire.relay_file import RelayEndpoint
from bot_bottle.wire.relay_protocol import (
    ARCHIVE,
    ERROR_CODES,
    GET,
    GRANTS,
    HEARTBEAT,
    HELLO,
    MAX_LONG_POLL_SEC,
    RESPONSE,
    STOPPED,
    SUBMIT,
    WAIT,
)
from bot_bottle.wire.signing import SIGNATURE_HEADER, answer_is_genuine, sign_request

RETRY_SEC = 10.0  # how long an operation other than a wait keeps trying an unreachable relay
CONNECT_TIMEOUT_SEC = 5.0
ANSWER_MARGIN_SEC = 15.0  # beyond a request's own wait, for the relay to answer
MAX_ANSWER_BYTES = 32 * 1024 * 1024
MAX_UNSIGNED_BYTES = 64 * 1024  # an unsigned answer is only ever a short refusal
MAX_UNSIGNED_REASON = 300
_BACKOFF_SEC = (0.05, 0.1, 0.2, 0.5, 1.0)




def _fields(document: object, names: tuple[str, ...], what: str) -> dict[str, Any]:
    if not isinstance(document, dict) or set(document) != set(names):
        raise RelayError(f"the relay answered a malformed {what}")
    for name in names:
        if document[name] is not None and not isinstance(document[name], str):
            raise RelayError(f"the relay answered a malformed {what} ({name})")
    return document


def proposal_from(document: object) -> Proposal:
    """A ``Proposal`` from the relay's answer, every field checked."""
    return Proposal(**_fields(document, tuple(Proposal.__dataclass_fields__), "proposal"))


def response_from(document: object) -> Response | None:
    """A ``Response`` (or ``None`` while pending) from the relay's answer, every field checked."""
    if document is None:
        return None
    return Response(**_fields(document, tuple(Response.__dataclass_fields__), "decision"))


_GRANT_FIELD_TYPES: dict[str, tuple[type, ...]] = {"audit_seq": (int,), "revoke_seq": (int, type(None))}


def grant_from(document: object) -> Grant:
    """A ``Grant`` from the relay's answer, every field checked (its subject is kept as canonical JSON)."""
    names = tuple(Grant.__dataclass_fields__)
    if not isinstance(document, dict) or set(document) != set(names) or not isinstance(document.get("subject"), dict):
        raise RelayError("the relay answered a malformed grant")
    fields = {**document, "subject": canonical_json(document["subject"])}
    for name in names:
        value = fields[name]
        expected = _GRANT_FIELD_TYPES.get(name, (str, type(None)))
        if isinstance(value, bool) or not isinstance(value, expected):
            raise RelayError(f"the relay answered a malformed grant ({name})")
    return Grant(**fields)


class RelayQueue:
    """One bottle's queue through the host relay: ``BottleQueue``'s interface, over HTTP."""

    def __init__(self, endpoint: RelayEndpoint, *, retry_for: float = RETRY_SEC) -> None:
        self.endpoint = endpoint
        self.retry_for = retry_for
        address = endpoint.url[len("http://"):-1]
        host, _, port = address.rpartition(":")
        self._host = host.strip("[]")
        self._port = int(port)
        self._next_id = 0

    @property
    def queue_key(self) -> str:
        """The bottle slug of this handle's credential."""
        return self.endpoint.bottle

    def hello(self, *, patient: bool = True) -> str:
        """Check the credential with the relay; the bottle it belongs to (one attempt unless ``patient``)."""
        bottle = self._call(HELLO, {}, deadline=None if patient else time.monotonic())
        if not isinstance(bottle, dict) or not isinstance(bottle.get("bottle"), str):
            raise RelayError("the relay answered a malformed hello")
        return str(bottle["bottle"])

    def submit(
        self,
        tool: str,
        payload: str,
        justification: str,
        current_file: str | None = None,
        current_file_hash: str | None = None,
    ) -> Proposal:
        """File a proposal for this bottle (the relay applies its quota); see ``QueueStore.submit``."""
        return proposal_from(self._call(SUBMIT, {
            "tool": tool, "payload": payload, "justification": justification,
            "current_file": current_file, "current_file_hash": current_file_hash,
        }))

    def get(self, proposal_id: str) -> Proposal:
        """This bottle's proposal with that id; ``NotFound`` for any other."""
        return proposal_from(self._call(GET, {"id": proposal_id}))

    def response(self, proposal_id: str) -> Response | None:
        """The decision on this bottle's proposal, or ``None`` while pending."""
        return response_from(self._call(RESPONSE, {"id": proposal_id}))

    def wait_for_response(
        self, proposal_id: str, timeout: float, poll_interval: float = DEFAULT_POLL_INTERVAL_SEC
    ) -> Response | None:
        """Wait up to ``timeout`` seconds for the decision, in long polls of at most ``MAX_LONG_POLL_SEC``.

        ``poll_interval`` is the relay's business (it waits as a direct
        waiter does); it is accepted for ``BottleQueue``'s interface. A relay
        that stops answering is retried until the deadline; if it is still
        unreachable then, ``RelayUnreachable``.
        """
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout < 0:
            raise ValidationError("timeout", "must be a number of seconds, 0 or more")
        deadline = time.monotonic() + timeout
        while True:
            remaining = max(0.0, deadline - time.monotonic())
            chunk = min(remaining, MAX_LONG_POLL_SEC)
            answer = self._call(WAIT, {"id": proposal_id, "timeout": chunk}, deadline=max(deadline, 0.0),
                                answer_within=chunk + ANSWER_MARGIN_SEC)
            response = response_from(answer)
            if response is not None or time.monotonic() >= deadline:
                return response

    def archive(self, proposal_id: str) -> Proposal:
        """Archive this bottle's decided proposal (idempotent; see ``QueueStore.archive``)."""
        return proposal_from(self._call(ARCHIVE, {"id": proposal_id}))

    def live_grants(self, tool: str) -> list[Grant]:
        """This bottle's grants of ``tool`` in force now (see ``BottleQueue.live_grants``)."""
        answer = self._call(GRANTS, {"tool": tool})
        if not isinstance(answer, list):
            raise RelayError("the relay answered a malformed list of grants")
        return [grant_from(item) for item in answer]

    def heartbeat(self) -> None:
        """Say this bottle's sidecar is alive (see ``BottleQueue.heartbeat``)."""
        self._call(HEARTBEAT, {})

    def stopped(self) -> None:
        """Say this bottle's sidecar stopped (one attempt: it is on its way out)."""
        self._call(STOPPED, {}, deadline=time.monotonic())

    def close(self) -> None:
        """Nothing to release: each call uses a connection of its own (calls may come from many threads)."""

    # The wire ------------------------------------------------------------------

    def _call(self, method: str, params: dict[str, Any], *, deadline: float | None = None,
              answer_within: float = ANSWER_MARGIN_SEC) -> Any:
        """The result of one relay method, retried while the relay is unreachable or busy."""
        give_up = deadline if deadline is not None else time.monotonic() + self.retry_for
        attempt = 0
        while True:
            try:
                return self._once(method, params, answer_within)
            except RetryLater as problem:
                if time.monotonic() >= give_up:
                    raise RelayUnreachable(
                        f"the operator's relay at {self.endpoint.url} is unreachable ({problem}); nothing was "
                        "decided: ask the operator to run 'bot-bottle relay'") from None
                time.sleep(min(_BACKOFF_SEC[min(attempt, len(_BACKOFF_SEC) - 1)],
                               max(0.0, give_up - time.monotonic())))
                attempt += 1

    def _once(self, method: str, params: dict[str, Any], answer_within: float) -> Any:
        self._next_id += 1
        body = json.dumps({"jsonrpc": "2.0", "id": self._next_id, "method": method, "params": params}).encode()
        connection = http.client.HTTPConnection(self._host, self._port, timeout=CONNECT_TIMEOUT_SEC)
        try:
            try:
                connection.connect()
                assert connection.sock is not None
                connection.sock.settimeout(answer_within)
                authorization, nonce = sign_request(self.endpoint, body)
                connection.request("POST", "/", body=body, headers={
                    "Content-Type": "application/json",
                    "Authorization": authorization,
                    "Connection": "close",
                })
                answer = connection.getresponse()
                data = answer.read(MAX_ANSWER_BYTES + 1)
            except (OSError, http.client.HTTPException) as exc:
                # Refused, reset, timed out, closed before answering: the relay is down or restarting.
                raise RetryLater(_describe(exc)) from None
        finally:
            connection.close()
        signature = answer.getheader(SIGNATURE_HEADER)
        if signature is None and answer.status != 200:
            # The relay signs every answer to a request it authorized; an unsigned one is a refusal before that
            # (or made up by whatever sits between): it may say only "retry" or "refused", never what happened.
            return _unsigned(answer.status, data)
        if not answer_is_genuine(self.endpoint, nonce, answer.status, data, signature):
            # Fail closed: something other than the operator's relay answered (or the answer was changed).
            raise RelayError(f"the answer from {self.endpoint.url} does not carry the relay's signature for this "
                             "request: something else answered at the relay's address; nothing was taken from it")
        return _result(answer.status, data)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, socket.timeout | TimeoutError):
        return "no answer in time"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return type(exc).__name__


def _unsigned(status: int, data: bytes) -> Any:
    """What an unsigned answer may mean: busy (retry), the credential refused, or nothing (``RelayError``).

    Its words are anyone's: they are shown only escaped and cut short, as a
    reason quoted, and never raise one of the relay's errors (already
    decided, not found, over quota...) that only a signed answer may carry.
    """
    try:
        document = json.loads(data[:MAX_UNSIGNED_BYTES])
        error = document.get("error") if isinstance(document, dict) else None
        message = error.get("message") if isinstance(error, dict) else None
    except (ValueError, RecursionError):
        message = None
    quoted = f"it said, unsigned: '{clean_line(message)[:MAX_UNSIGNED_REASON]}'" if isinstance(message, str) else ""
    if status == 503:  # (a relay that cannot read the credentials says why, which is all it can do unsigned)
        raise RetryLater(f"the relay is busy; {quoted}" if quoted else "the relay is busy")
    said = f" ({quoted})" if quoted else ""
    if status == 401:
        raise Unauthorized(f"the relay refused this bottle's credential{said}")
    raise RelayError(f"the relay answered HTTP {status} without its signature{said}; nothing was taken from it")


def _result(status: int, data: bytes) -> Any:
    """The ``result`` of a relay answer, or the error it carries raised as bot-bottle's own."""
    if len(data) > MAX_ANSWER_BYTES:
        raise RelayError(f"the relay's answer is over {MAX_ANSWER_BYTES} bytes")
    try:
        document = json.loads(data)
        error = document.get("error") if isinstance(document, dict) else None
    except (ValueError, RecursionError):
        raise RelayError(f"the relay answered HTTP {status} without JSON") from None
    if status == 503:
        raise RetryLater("the relay is busy")
    message = str(error.get("message", "")) if isinstance(error, dict) else ""
    if status == 401:
        raise Unauthorized(message or "the relay refused this bottle's credential")
    if isinstance(error, dict):
        code = error.get("code")
        if code == BUSY:
            raise RetryLater(message)
        if code == INVALID_FIELD:
            details = error.get("data")
            field = details.get("field") if isinstance(details, dict) else None
            field = field if isinstance(field, str) and field else "relay"
            raise ValidationError(field, message.removeprefix(f"{field}: "))
        kind = ERROR_CODES.get(code) if isinstance(code, int) else None
        raise (kind or RelayError)(message or f"the relay refused the request (HTTP {status})")
    if status != 200 or not isinstance(document, dict) or "result" not in document:
        raise RelayError(f"the relay answered HTTP {status} without a result")
    return document["result"]
