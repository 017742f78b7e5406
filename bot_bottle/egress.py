"""Helpers the egress proxy calls when its DLP scanner blocks a request that carries a token.

Where the route's policy is ``supervise``, the proxy files an
``egress-token-allow`` proposal (host, method, path, which detector matched,
and a short context snippet with the value replaced by ``********``) and holds
the request. An approval lets that token through for the rest of the proxy's
life; anything else keeps it blocked (fail closed). The token itself is never
stored: the proposal carries the redacted snippet and a keyed fingerprint
that only this process can recompute, and the approved set holds the same
fingerprints.

A proxy's call looks like this::

    from bot_bottle.egress import ApprovedTokens, request_token_override
    from bot_bottle.queue_store import QueueStore

    bottle = QueueStore(DB_PATH_IN_CONTAINER).for_bottle("web-1")
    approved = ApprovedTokens()          # one per proxy process
    ...
    if approved.allows(token) or request_token_override(
        bottle, approved, host="api.example.com", method="POST", path="/v1/upload",
        detector="github-pat", context=request_body_text, value=token,
    ):
        forward(request)
    else:
        refuse(request)
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import threading
from typing import Any

from bot_bottle.errors import BotBottleError
from bot_bottle.queue_store import BottleQueue
from bot_bottle.records import DEFAULT_POLL_INTERVAL_SEC, STATUS_APPROVED, TOOL_EGRESS_TOKEN_ALLOW

DEFAULT_TIMEOUT_SEC = 300.0
REDACTED = "********"
SNIPPET_RADIUS = 40  # characters of context kept on each side of the value
MIN_FRAGMENT = 6  # pieces of the value this long or longer are masked too
MAX_FIELD_CHARS = 512

log = logging.getLogger("bot_bottle.egress")


class ApprovedTokens:
    """The tokens approved during this proxy's life, held as keyed hashes, never as values.

    The key is random and lives only in this object, so the fingerprints in
    memory and in the database cannot be brute-forced back into tokens
    elsewhere. Safe to share between threads.
    """

    def __init__(self) -> None:
        self._key = secrets.token_bytes(32)
        self._approved: set[str] = set()
        self._lock = threading.Lock()

    def fingerprint(self, value: str) -> str:
        """The keyed sha256 (HMAC) of ``value``, as hex."""
        return hmac.new(self._key, value.encode("utf-8", errors="surrogatepass"), hashlib.sha256).hexdigest()

    def add(self, value: str) -> None:
        """Remember ``value`` as approved (by its fingerprint)."""
        with self._lock:
            self._approved.add(self.fingerprint(value))

    def allows(self, value: str) -> bool:
        """True if ``value`` was approved earlier in this process's life."""
        with self._lock:
            return self.fingerprint(value) in self._approved

    def __len__(self) -> int:
        with self._lock:
            return len(self._approved)


def _clip(text: str) -> str:
    text = str(text)
    return text if len(text) <= MAX_FIELD_CHARS else text[: MAX_FIELD_CHARS - 1] + "…"


def _mask_fragments(text: str, value: str, shortest: int = MIN_FRAGMENT) -> str:
    """``text`` with every run of ``shortest`` or more characters that also occurs in ``value`` masked.

    This catches whole copies and also pieces of the value: one cut by the
    snippet's edge, or a prefix pasted elsewhere in the request.
    """
    shortest = min(shortest, len(value))
    out: list[str] = []
    index = 0
    while index < len(text):
        # Grow the run from the shortest piece: once a run is not in the value,
        # no longer run from here is either (one pass instead of trying every length).
        longest = 0
        if index + shortest <= len(text) and text[index : index + shortest] in value:
            longest = shortest
            while index + longest < len(text) and text[index : index + longest + 1] in value:
                longest += 1
        if longest:
            if not out or out[-1] != REDACTED:
                out.append(REDACTED)
            index += longest
        else:
            out.append(text[index])
            index += 1
    return "".join(out)


def redact_snippet(context: str, value: str, radius: int = SNIPPET_RADIUS) -> str:
    """A bounded snippet of ``context`` around the first ``value``, with every occurrence masked.

    Control characters are escaped so the snippet stays on one line. If the
    value does not occur in the context, the snippet is just the mask.
    """
    if not value:
        raise ValueError("value must not be empty")
    where = context.find(value)
    if where < 0:
        return REDACTED
    start = max(0, where - radius)
    end = min(len(context), where + len(value) + radius)
    piece = _mask_fragments(context[start:end], value)
    piece = piece.encode("unicode_escape").decode("ascii")
    return ("…" if start > 0 else "") + piece + ("…" if end < len(context) else "")


def build_token_allow_payload(
    *, host: str, method: str, path: str, detector: str, context: str, value: str, fingerprint: str
) -> str:
    """The ``egress-token-allow`` report as JSON: where the request went, what matched, a masked snippet."""
    document: dict[str, Any] = {
        "host": _clip(host),
        "method": _clip(method.upper()),
        "path": _clip(path),
        "detector": _clip(detector),
        "snippet": redact_snippet(context, value),
        "value_length": len(value),
        "value_fingerprint": fingerprint[:32],
    }
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def request_token_override(
    bottle: BottleQueue,
    approved: ApprovedTokens,
    *,
    host: str,
    method: str,
    path: str,
    detector: str,
    context: str,
    value: str,
    timeout: float = DEFAULT_TIMEOUT_SEC,
    poll_interval: float = DEFAULT_POLL_INTERVAL_SEC,
) -> bool:
    """Ask the operator to let ``value`` through; True only on approval.

    A token approved earlier in this process is allowed at once, without a
    proposal. Rejection, the timeout, and any error (the database unavailable,
    bad input) return False, and the reason is logged.
    """
    try:
        if approved.allows(value):
            return True
        payload = build_token_allow_payload(
            host=host, method=method, path=path, detector=detector, context=context, value=value,
            fingerprint=approved.fingerprint(value),
        )
        proposal = bottle.submit(
            TOOL_EGRESS_TOKEN_ALLOW, payload,
            f"the egress DLP ({detector}) blocked a {method.upper()} to {host}{path}: let this token through?",
        )
        log.info("egress token override: waiting up to %g s on proposal %s", timeout, proposal.short_id)
        response = bottle.wait_for_response(proposal.id, timeout, poll_interval)
        if response is None:
            log.warning("egress token override: no decision within %g s on %s; blocked", timeout, proposal.short_id)
            return False
        if response.status != STATUS_APPROVED:
            log.warning("egress token override: %s %s (%s); blocked", proposal.short_id, response.status,
                        response.notes)
            bottle.archive(proposal.id)
            return False
        approved.add(value)
        bottle.archive(proposal.id)
        log.info("egress token override: %s approved (%s)", proposal.short_id, response.notes)
        return True
    except (BotBottleError, ValueError, OSError) as exc:
        log.error("egress token override failed, request blocked: %s", exc)
        return False
