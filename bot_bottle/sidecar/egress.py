"""Helpers the egress proxy calls when its DLP scanner blocks a request that carries a token.

Where the route's policy is ``supervise``, the proxy files an
``egress-token-allow`` proposal (host, method, path, which detector matched,
and a short context snippet) and holds the request. An approval lets that
token through to that host with that method for the rest of the proxy's life:
the same token to another host, or with another method, files a new proposal,
because the operator's report named one. Methods are compared exactly, as
HTTP compares them (RFC 9110, section 9.1: method names are case-sensitive):
an approval for ``POST`` does not cover ``post``, which a server may route
elsewhere, and the report shows the method as the request spelt it. Anything else keeps it blocked (fail
closed), and so does any bad argument: every helper here that answers yes or
no answers False (and logs why) for ``None``, bytes or any other wrong type,
and never raises.

The token itself is never stored: every piece of it (six or more of its
characters, raw or base64-, base32-, hex- or percent-encoded) is replaced by
``********`` wherever it appears in what is filed (host, method, path and
query, detector, the snippet of headers or body, the justification), in time
linear in their length. The proposal carries a keyed fingerprint that only
this process can recompute, and the approved set holds keyed fingerprints of
(host, method, token).

A proxy's call looks like this::

    from bot_bottle.sidecar.egress import ApprovedTokens, request_token_override
    from bot_bottle.sidecar.transport import find_transport

    # What the backend mounted at /run/supervise: the host's database, or the relay file.
    bottle = find_transport().open("web-1")
    approved = ApprovedTokens()          # one per proxy process
    ...
    if approved.allows(token, host="api.example.com", method="POST") or request_token_override(
        bottle, approved, host="api.example.com", method="POST", path="/v1/upload?x=1",
        detector="github-pat", context=request_headers_and_body_text, value=token,
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
import math
import re
import secrets
import threading
from typing import Any

from bot_bottle.queue_store import BottleQueue
from bot_bottle.records import DEFAULT_POLL_INTERVAL_SEC, STATUS_APPROVED, TOOL_EGRESS_TOKEN_ALLOW
from bot_bottle.sidecar.relay_queue import RelayQueue
from bot_bottle.text.redaction import REDACTED, Masker

DEFAULT_TIMEOUT_SEC = 300.0
SNIPPET_RADIUS = 40  # characters of context kept on each side of the value
MAX_FIELD_CHARS = 512
MASK_MARGIN_CHARS = 4096  # masked past what a field shows, so a piece crossing the cut is seen whole

log = logging.getLogger("bot_bottle.egress")


def _is_text(*values: object) -> bool:
    return all(isinstance(v, str) for v in values)


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
MAX_HOST_CHARS = 253  # DNS's limit on a whole name
# A host as a proxy sees it on the wire: ASCII DNS labels (internationalized names travel as
# xn-- A-labels), or an IPv4 or bracketed IPv6 address; an optional port.
_HOST_RE = re.compile(r"(?:[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
                      r"(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\.?"
                      r"|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{1,5})?")
_METHOD_RE = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}")  # an HTTP token (RFC 9110's tchar)


def _scope(host: str, method: str) -> tuple[str, str] | None:
    """The (host, method) an approval is for, compared as DNS and HTTP do; None if unusable.

    Only ASCII letters are folded and one trailing dot (the DNS root) dropped:
    ``str.lower`` would fold other characters too (the Kelvin sign into
    ``k``), making another host equal to the approved one. A host must be what
    a request names on the wire: ASCII labels, an IPv4 or a bracketed IPv6
    address, an optional port. Anything else is no usable scope, because the
    operator reads the host to decide: a Cyrillic a (U+0430) in ``api.github.com``
    looks like the real host, ``api.github.com@evil.example`` reads like a
    URL whose host is another one. A method must be an HTTP token, and is
    kept as it is: HTTP methods are case-sensitive (RFC 9110, section 9.1),
    so ``post`` is another method than the ``POST`` the operator approved.
    """
    if len(host) > MAX_HOST_CHARS + 7 or not _HOST_RE.fullmatch(host) or not _METHOD_RE.fullmatch(method):
        return None
    host_key = host.translate(_ASCII_LOWER)
    host_key = host_key[:-1] if host_key.endswith(".") else host_key
    return host_key, method


class ApprovedTokens:
    """The tokens approved during this proxy's life, each for one host and method, held as keyed hashes.

    The key is random and lives only in this object, so the fingerprints in
    memory and in the database cannot be brute-forced back into tokens
    elsewhere. Safe to share between threads.
    """

    def __init__(self) -> None:
        self._key = secrets.token_bytes(32)
        self._approved: set[str] = set()
        self._lock = threading.Lock()

    def _fingerprint(self, *parts: str) -> str:
        """The keyed sha256 (HMAC) of ``parts`` (unambiguously joined), as hex."""
        message = json.dumps(list(parts), ensure_ascii=False)
        return hmac.new(self._key, message.encode("utf-8", errors="surrogatepass"), hashlib.sha256).hexdigest()

    def _scoped(self, value: object, host: object, method: object) -> str | None:
        if not (isinstance(value, str) and isinstance(host, str) and isinstance(method, str)) or not value:
            return None
        scope = _scope(host, method)
        return None if scope is None else self._fingerprint(*scope, value)

    def add(self, value: str, *, host: str | None = None, method: str | None = None) -> bool:
        """Remember ``value`` as approved for ``host`` and ``method``; False (nothing kept) on a bad argument."""
        key = self._scoped(value, host, method)
        if key is None:
            log.error("egress approved tokens: add() needs a token, a host and a method as text; nothing kept")
            return False
        with self._lock:
            self._approved.add(key)
        return True

    def allows(self, value: str, *, host: str | None = None, method: str | None = None) -> bool:
        """True if ``value`` was approved earlier in this process's life for this ``host`` and ``method``."""
        key = self._scoped(value, host, method)
        if key is None:
            return False
        with self._lock:
            return key in self._approved

    def __len__(self) -> int:
        with self._lock:
            return len(self._approved)


def _field(masker: Masker, text: str) -> str:
    """A report field: the token masked, on one line, printable, bounded.

    Only the start that can be shown is masked (with a margin, so a piece of
    the token that crosses the cut is still whole): masking a path of ten
    million characters took 20 s and a gigabyte, per request, in the proxy.
    """
    text = masker.mask(text[: MAX_FIELD_CHARS + MASK_MARGIN_CHARS])
    if masker.reveals_decoded(text):  # the token two or more encodings deep: no window matched it
        return "(not shown: it holds the token in an encoded form)"
    text = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)
    return text if len(text) <= MAX_FIELD_CHARS else text[: MAX_FIELD_CHARS - 1] + "…"


def redact_snippet(context: str, value: str, radius: int = SNIPPET_RADIUS) -> str:
    """A bounded snippet of ``context`` around the first ``value``, with every piece of it masked.

    Control characters are escaped so the snippet stays on one line. If the
    value does not occur in the context, or an argument is bad (not text, an
    empty value, a radius that is not a small whole number), the snippet is
    just the mask.
    """
    if not _is_text(context, value) or not value or type(radius) is not int or not 0 <= radius <= MAX_FIELD_CHARS:
        return REDACTED
    where = context.find(value)
    if where < 0:
        return REDACTED
    start = max(0, where - radius)
    end = min(len(context), where + len(value) + radius)
    masker = Masker([value])
    piece = masker.mask(context[start:end])
    if masker.reveals_decoded(piece):
        return REDACTED
    piece = piece.encode("unicode_escape", errors="backslashreplace").decode("ascii")
    return ("…" if start > 0 else "") + piece + ("…" if end < len(context) else "")


def _token_allow_payload(
    masker: Masker, *, host: str, method: str, path: str, detector: str, context: str, value: str, fingerprint: str
) -> str:
    """The ``egress-token-allow`` report as JSON: where the request went, what matched, a masked snippet."""
    document: dict[str, Any] = {
        "host": _field(masker, host),
        "method": _field(masker, method),  # as the request spelt it: that is what an approval covers
        "path": _field(masker, path),
        "detector": _field(masker, detector),
        "snippet": redact_snippet(context, value),
        "value_length": len(value),
        "value_fingerprint": fingerprint[:32],
    }
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _bad_arguments(
    bottle: object, approved: object, fields: dict[str, object], timeout: object, poll_interval: object
) -> str | None:
    """Which argument of ``request_token_override`` is unusable, or None. Never names a value (it may be the token)."""
    if not isinstance(bottle, BottleQueue | RelayQueue):
        return f"bottle is a {type(bottle).__name__}, not a BottleQueue or RelayQueue"
    if not isinstance(approved, ApprovedTokens):
        return f"approved is a {type(approved).__name__}, not ApprovedTokens"
    for name, field in fields.items():
        if not isinstance(field, str):
            return f"{name} is a {type(field).__name__}, not text"
    if not fields["value"]:
        return "value is empty"
    if _scope(str(fields["host"]), str(fields["method"])) is None:
        return "host is not an ASCII host name or address (with an optional port), or method not an HTTP token"
    for name, number, least in (("timeout", timeout, 0.0), ("poll_interval", poll_interval, 1e-3)):
        if isinstance(number, bool) or not isinstance(number, int | float) or not math.isfinite(number) \
                or number < least:
            return f"{name} is not a number of seconds >= {least:g}"
    return None


def request_token_override(
    bottle: BottleQueue | RelayQueue,
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
    """Ask the operator to let ``value`` through to ``host`` with ``method``; True only on approval.

    A token approved earlier in this process for the same host and method is
    allowed at once, without a proposal. Rejection, the timeout, a bad
    argument and any error (the database unavailable, the relay unreachable
    or refusing this bottle's token, ...) return False, and the reason is
    logged (never the token).
    """
    try:
        problem = _bad_arguments(bottle, approved, {"host": host, "method": method, "path": path,
                                                    "detector": detector, "context": context, "value": value},
                                 timeout, poll_interval)
        if problem:
            log.error("egress token override: bad argument (%s); request blocked", problem)
            return False
        if approved.allows(value, host=host, method=method):
            return True
        masker = Masker([value])
        payload = _token_allow_payload(
            masker, host=host, method=method, path=path, detector=detector, context=context, value=value,
            fingerprint=approved._fingerprint(value),
        )
        where = f"{_field(masker, method)} to {_field(masker, host)}{_field(masker, path)}"
        proposal = bottle.submit(
            TOOL_EGRESS_TOKEN_ALLOW, payload,
            f"the egress DLP ({_field(masker, detector)}) blocked a {where}: let this token through to this host?",
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
        approved.add(value, host=host, method=method)
        bottle.archive(proposal.id)
        log.info("egress token override: %s approved (%s)", proposal.short_id, response.notes)
        return True
    except Exception as exc:  # fail closed on anything, with the reason in the log
        log.error("egress token override failed, request blocked: %s", exc)
        return False
