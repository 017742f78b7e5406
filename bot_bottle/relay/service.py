"""The relay's JSON-RPC methods, each served for the bottle whose credential signed the request.

Each request is authorized by its signature before its body is read
(``RelayService.authorize``: a MAC keyed with the bottle's credential over
its bottle, time, nonce and body digest; ``wire.signing``), its body checked
against that digest once it is in, and the credential checked again then
(one revoked while its body trickled in is served nothing); a bottle's nonce
is served once (``nonces``). Every answer is signed for the request's nonce,
so a sidecar believes no one but the relay. The bottle is the credential's.
Waits are long polls of at most ``MAX_LONG_POLL_SEC``, woken as a direct
waiter is. Every budget a request takes after its signature is checked is
its bottle's own (``shares``: requests and body bytes in flight, waits,
writes per second), so no bottle can shut another out; a revoked
credential's waits and places are released at once (``revocations``).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path
from typing import Any

from bot_bottle.errors import BotBottleError, DatabaseReplaced, RpcError, Unauthorized, ValidationError
from bot_bottle.queue_store import QueueStore
from bot_bottle.records import DEFAULT_POLL_INTERVAL_SEC, DEFAULT_QUOTA, Quota
from bot_bottle.relay.credentials import RelayCredentials
from bot_bottle.relay.nonces import NonceLedger
from bot_bottle.relay.proofs import Proofs
from bot_bottle.relay.shares import DEFAULT_WRITES_PER_SEC, Share, Shares
from bot_bottle.standing import rule_decision_in
from bot_bottle.wire.jsonrpc import (
    DATABASE_UNAVAILABLE,
    INTERNAL_ERROR,
    INVALID_FIELD,
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    rpc_error,
    safe_id,
)
from bot_bottle.wire.relay_protocol import (
    ARCHIVE,
    GET,
    GRANTS,
    HEARTBEAT,
    HELLO,
    MAX_LONG_POLL_SEC,
    RESPONSE,
    STOPPED,
    SUBMIT,
    WAIT,
    code_of,
)
from bot_bottle.wire.signing import AUTH_SCHEME, SIGNATURE_HEADER, SignedRequest, sign_answer

DEFAULT_MAX_WAITS_PER_BOTTLE = 32
# How long a request waits for its bottle's turn to be answered (``Shares.answering``): longer than one answer
# whose client does not read it may hold a turn (the write timeout), so an honest retry is rarely needed.
ANSWER_TURN_TIMEOUT_SEC = 20.0


MIN_HEARTBEAT_GAP_SEC = 5.0  # a third of the sidecar's interval: a late beat is never dropped


_SUBMIT_FIELDS = ("tool", "payload", "justification", "current_file", "current_file_hash")


_REQUIRED_SUBMIT_FIELDS = ("tool", "payload", "justification")


class RelayService:
    """The relay's JSON-RPC methods over one host ``QueueStore``, each for the bottle of the caller's token."""

    def __init__(
        self,
        store: QueueStore,
        credentials: RelayCredentials,
        *,
        quota: Quota = DEFAULT_QUOTA,
        poll_interval: float = DEFAULT_POLL_INTERVAL_SEC,
        max_waits_per_bottle: int = DEFAULT_MAX_WAITS_PER_BOTTLE,
        writes_per_bottle: int = DEFAULT_WRITES_PER_SEC,
        share: Share | None = None,
        log: Callable[[str], None] = lambda line: None,
        nonce_journal: Path | None = None,
    ) -> None:
        self.store = store
        self.credentials = credentials
        self.quota = quota
        self.poll_interval = poll_interval
        self.share = share if share is not None else Share.for_waits(max_waits_per_bottle, writes_per_bottle)
        self.shares = Shares(self.share)
        self.proofs = Proofs(store.db, log)
        self._replaced_told = False
        self._log = log
        self._lock = threading.Lock()
        self._nonces = NonceLedger(journal=nonce_journal)
        self._beats: dict[str, float] = {}
        # The requests in flight, each with the event that ends its wait when its credential is revoked.
        self._in_flight: dict[Caller, threading.Event] = {}

    def log(self, line: str) -> None:
        """One line to the relay's log."""
        self._log(line)

    def authorize(self, headers: Message) -> Caller:
        """The caller of a request signed with its bottle's live credential; ``Unauthorized`` otherwise.

        ``RetryLater`` when its nonce was spent already (or the bottle's
        share of the ledger is full): the sidecar signs its next attempt
        afresh.
        """
        values = headers.get_all("Authorization") or []
        if len(values) != 1:
            raise Unauthorized(f"a relay request needs exactly one 'Authorization: {AUTH_SCHEME} ...' header, "
                               "signed with the key of the bottle's relay.json")
        request = SignedRequest.parse(values[0])
        with self._in_the_relays_words():  # a replaced file vouches for no one (db.Database refuses to read it)
            key = self.credentials.verify(request)
        # After the MAC, and the bottle's own: only B's signature can spend B's nonces.
        self._nonces.spend(request.bottle, request.nonce, int(request.ts))
        return Caller(bottle=request.bottle, key=key, nonce=request.nonce, body_sha256=request.body_sha256)

    def name(self, principal: object) -> str | None:
        """The caller's bottle, for the log."""
        assert isinstance(principal, Caller)
        return f"bottle {principal.bottle}"

    def check_body(self, principal: object, body: bytes) -> None:
        """The body must be the one the signature covers; ``Unauthorized`` otherwise."""
        assert isinstance(principal, Caller)
        if not hmac.compare_digest(hashlib.sha256(body).hexdigest(), principal.body_sha256):
            raise Unauthorized("the request's body is not the one its signature covers")

    def sign(self, principal: object, status: int, body: bytes) -> dict[str, str]:
        """The answer's signature, for the request's nonce, so the sidecar knows the relay sent it."""
        assert isinstance(principal, Caller)
        return {SIGNATURE_HEADER: sign_answer(principal.key, principal.nonce, status, body)}

    def admit(self, principal: object, length: int) -> str | None:
        """Take a place in flight and ``length`` body bytes of the caller's bottle's share; why it must retry
        when it has no room (its own requests fill it: other bottles' never do)."""
        assert isinstance(principal, Caller)
        why = self.shares.admit(principal.bottle, length)
        if why is None:
            with self._lock:
                self._in_flight[principal] = threading.Event()
        return why

    def answering(self, principal: object) -> contextlib.AbstractContextManager[None]:
        """Hold one of the caller's bottle's answering places while its request is served and answered (a wait
        gives it back while it waits); ``RetryLater`` when its own requests hold them all for too long."""
        assert isinstance(principal, Caller)
        with self._lock:
            cancelled = self._in_flight.get(principal)
        return self.shares.answering(principal.bottle, ANSWER_TURN_TIMEOUT_SEC, cancelled)

    def leave(self, principal: object, length: int) -> None:
        """Give back what ``admit`` took."""
        assert isinstance(principal, Caller)
        with self._lock:
            self._in_flight.pop(principal, None)
        self.shares.leave(principal.bottle, length)

    def in_flight(self) -> list[Caller]:
        """The callers with a request in flight now."""
        with self._lock:
            return list(self._in_flight)

    def revoked(self, callers: list[Caller]) -> None:
        """These callers' credentials were revoked: end their waits now (their answer says so)."""
        with self._lock:
            for caller in callers:
                event = self._in_flight.get(caller)
                if event is not None:
                    event.set()
        self.shares.wake()  # those waiting for their bottle's turn to be answered let go too

    def close(self) -> None:
        """Close the nonce journal (the relay is stopping)."""
        self._nonces.close()

    def health(self) -> dict[str, Any]:
        """What ``GET /healthz`` says: that this is the relay (nothing of any bottle)."""
        return {"service": "relay"}

    def handle(self, message: object, principal: object) -> tuple[dict[str, Any] | None, Callable[[], None] | None]:
        """Answer one relay request for ``principal``, the ``Caller`` that ``authorize`` found."""
        if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
            return rpc_error(None, INVALID_REQUEST, "not a JSON-RPC 2.0 message"), None
        message_id = message.get("id")
        method, params = message.get("method"), message.get("params", {})
        if isinstance(message_id, bool) or not isinstance(message_id, str | int):
            return rpc_error(safe_id(message_id), INVALID_REQUEST, "a relay request needs an id "
                             "(a string or an integer)"), None
        if not isinstance(method, str):
            return rpc_error(message_id, INVALID_REQUEST, "method must be a string"), None
        if not isinstance(params, dict):
            return rpc_error(message_id, INVALID_PARAMS, "params must be an object"), None
        assert isinstance(principal, Caller)
        try:
            with self._in_the_relays_words():
                result = self._dispatch(principal, method, params)
        except RpcError as exc:
            return rpc_error(message_id, exc.code, exc.message), None
        except ValidationError as exc:
            answer = rpc_error(message_id, INVALID_FIELD, str(exc))
            answer["error"]["data"] = {"field": exc.field}
            return answer, None
        except BotBottleError as exc:
            code = code_of(exc)
            if code == DATABASE_UNAVAILABLE:
                self.log(f"error for {principal.bottle}: {exc}")
                return rpc_error(message_id, code, f"the host database is unavailable: {exc}"), None
            return rpc_error(message_id, code, str(exc)), None
        except Exception as exc:  # never a traceback to the client, never a dead thread
            self.log(f"internal error in {method[:40]!r} for {principal.bottle}: {exc!r}")
            return rpc_error(message_id, INTERNAL_ERROR, "internal error"), None
        return {"jsonrpc": "2.0", "id": message_id, "result": result}, None

    def _still_valid(self, caller: Caller) -> None:
        """Raise ``Unauthorized`` unless the caller's key is still its bottle's live credential."""
        if not self.credentials.is_live(caller.bottle, caller.key):
            raise Unauthorized(f"bottle {caller.bottle}'s relay credential was revoked or replaced during the "
                               "request: prepare the bottle again")

    def _dispatch(self, caller: Caller, method: str, params: dict[str, Any]) -> Any:
        # The signature was checked on the headers; its body may have arrived long after (up to the request
        # deadline), so it is checked again once the body is in: a revocation meanwhile serves nothing.
        self._still_valid(caller)
        bottle_slug = caller.bottle
        # The relay holds the host's key: a standing rule decides a new proposal in its filing transaction.
        bottle = self.store.for_bottle(bottle_slug, quota=self.quota, standing=rule_decision_in)
        if method in (HELLO, HEARTBEAT, STOPPED):
            _only(params, (), ())
            if method == HEARTBEAT and self._heartbeat_due(bottle_slug):
                self.shares.write(bottle_slug)
                bottle.heartbeat()
            elif method == STOPPED:
                self.shares.write(bottle_slug)
                bottle.stopped()
            return {"bottle": bottle_slug}
        if method == SUBMIT:
            _only(params, _SUBMIT_FIELDS, _REQUIRED_SUBMIT_FIELDS)
            self.shares.write(bottle_slug)
            # The store validates every field's type and size before anything is written.
            proposal = bottle.submit(params["tool"], params["payload"], params["justification"],
                                     params.get("current_file"), params.get("current_file_hash"))
            self.log(f"{bottle_slug}: filed {proposal.tool} {proposal.short_id}")
            return proposal.to_dict()
        if method == GRANTS:
            _only(params, ("tool",), ("tool",))
            return [grant.to_dict() for grant in self.proofs.grants(bottle_slug, bottle.live_grants(params["tool"]))]
        if method in (GET, RESPONSE, ARCHIVE):
            _only(params, ("id",), ("id",))
            if method == GET:
                return bottle.get(params["id"]).to_dict()
            if method == ARCHIVE:
                self.shares.write(bottle_slug)
                return bottle.archive(params["id"]).to_dict()
            response = self.proofs.response(bottle_slug, bottle.response(params["id"]))
            return None if response is None else response.to_dict()
        if method == WAIT:
            _only(params, ("id", "timeout"), ("id", "timeout"))
            timeout = params["timeout"]
            if (isinstance(timeout, bool) or not isinstance(timeout, int | float)
                    or not 0 <= timeout <= MAX_LONG_POLL_SEC):
                raise ValidationError("timeout", f"must be a number of seconds from 0 to {MAX_LONG_POLL_SEC:g}")
            cancelled = self._in_flight.get(caller) or threading.Event()
            with self.shares.waiting(bottle_slug), self.shares.set_aside(bottle_slug, ANSWER_TURN_TIMEOUT_SEC):
                started = time.monotonic()
                response = self.proofs.response(bottle_slug, bottle.wait_for_response(
                    params["id"], float(timeout), self.poll_interval, cancelled=cancelled))
                if response is None:
                    # Undecided, or an approval the log does not prove: either way the long poll runs its
                    # course, so a caller whose proposal a sidecar "approved" in the file is not answered
                    # at once, over and over, for as long as it waits.
                    cancelled.wait(max(0.0, float(timeout) - (time.monotonic() - started)))
            # A credential revoked while the call waited gets nothing more, not even the decision.
            self._still_valid(caller)
            return None if response is None else response.to_dict()
        raise RpcError(METHOD_NOT_FOUND, f"method not found: {method[:100]}")

    @contextlib.contextmanager
    def _in_the_relays_words(self) -> Iterator[None]:
        """A database file replaced since the relay opened it, said in the relay's words (and in its log, once).

        ``db.Database`` refuses every read and write once the database, its
        ``-wal`` or its ``-shm`` at the path is another file (a sidecar on the
        mount can rename a copy over any of them): the relay's connection
        keeps the old ones, and answers from them would miss every decision
        and revocation made since. It answers nothing until it is restarted.
        """
        try:
            yield
        except DatabaseReplaced:
            path = self.store.db.path
            if not self._replaced_told:
                self._replaced_told = True
                self.log(f"the database file {path} was removed or replaced since the relay opened it "
                         f"({self.store.db.replaced()}): every request is refused until the relay is restarted "
                         "('bot-bottle relay stop', then 'bot-bottle relay start')")
            raise DatabaseReplaced("The database file was replaced",
                                   f"{path} is not the file the relay opened, so it answers nothing from it.",
                                   "Restart the relay ('bot-bottle relay stop', then 'bot-bottle relay start')."
                                   ) from None

    def _heartbeat_due(self, bottle_slug: str) -> bool:
        """Whether to record this bottle's heartbeat: at most one write per ``MIN_HEARTBEAT_GAP_SEC``.

        A sidecar that beats as fast as it can would otherwise turn each beat
        into a database write, and every open dashboard into a page reloading
        under the operator's pointer.
        """
        now = time.monotonic()
        with self._lock:
            last = self._beats.get(bottle_slug)
            if last is not None and now - last < MIN_HEARTBEAT_GAP_SEC:
                return False
            self._beats[bottle_slug] = now
        return True


@dataclass(frozen=True)
class Caller:
    """Who sent a relay request: its bottle, the credential's key it signed with, its nonce and body digest."""

    bottle: str
    key: str = field(repr=False)
    nonce: str = ""
    body_sha256: str = ""


def _only(params: dict[str, Any], allowed: tuple[str, ...], required: tuple[str, ...]) -> None:
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        # A bottle is never a parameter: the token names it.
        raise RpcError(INVALID_PARAMS, f"unknown parameter(s): {', '.join(unknown)[:200]}")
    missing = [name for name in required if name not in params]
    if missing:
        raise RpcError(INVALID_PARAMS, f"missing parameter(s): {', '.join(missing)}")
