"""Helpers the egress proxy calls: what this bottle's grants let through, and asking for a token to pass.

Where the route's policy is ``supervise``, the proxy asks ``EgressGrants``
before it forwards: ``allows_route(host, method, path, headers)`` (an
approved ``egress-allow``, covering the method and any the request's
headers or query ask the server to read it as: ``sidecar.method_override``)
and ``allows_token(token, host=..., method=..., path=..., headers=...)`` (an approved
``egress-token-allow``). Grants are the bottle's, read through its
queue handle (the mounted database or the relay) and kept at most 5 seconds,
so a grant the operator revokes, or one that ends, stops being honoured
within 5 seconds; a lookup that fails answers no (fail closed).

When its DLP scanner blocks a request that carries a token and no grant
covers it, the proxy calls ``request_token_override``: it files an
``egress-token-allow`` proposal (host, method, path, which detector matched,
a short context snippet and the token's fingerprint) and holds the request.
An approval answers this request, and its grant (that token, to that host,
with that method: HTTP methods are case-sensitive, so ``post`` is not
``POST``) lets the next ones through until it ends. Anything else keeps it
blocked (fail closed), and so does any bad argument: every helper here that
answers yes or no answers False (and logs why) for ``None``, bytes or any
other wrong type, and never raises.

The token itself is never stored: every piece of it (six or more of its
characters, raw or base64-, base32-, hex- or percent-encoded) is replaced by
``********`` wherever it appears in what is filed (host, method, path and
query, detector, the snippet of headers or body, the justification), in time
linear in their length. What is stored is its fingerprint, a slow salted hash
(``policy.subjects.token_fingerprint``).

A proxy's call looks like this::

    from bot_bottle.sidecar.egress import EgressGrants, request_token_override
    from bot_bottle.sidecar.transport import find_transport

    # What the backend mounted at /run/supervise: the host's database, or the relay file.
    bottle = find_transport().open("web-1")
    grants = EgressGrants(bottle)        # one per proxy process
    ...
    # A route whose policy is supervise: a grant of it, for every method the request may be read as.
    if not grants.allows_route("api.example.com", "POST", "/v1/upload?x=1", request_headers):
        refuse(request)
    # The DLP found a token in it: a grant of the token to that host and method, or the operator's yes now.
    elif grants.allows_token(token, host="api.example.com", method="POST", path="/v1/upload?x=1",
                             headers=request_headers) or request_token_override(
        bottle, grants, host="api.example.com", method="POST", path="/v1/upload?x=1",
        detector="github-pat", context=request_headers_and_body_text, value=token, headers=request_headers,
    ):
        forward(request)
    else:
        refuse(request)

The logger is ``bot_bottle.egress`` (a proxy configures it by that name).
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
import time
from typing import Any

from bot_bottle.grant_records import Grant
from bot_bottle.policy.subjects import normal_host, route_covers, token_covers, token_fingerprint
from bot_bottle.queue_store import BottleQueue
from bot_bottle.records import (
    DEFAULT_POLL_INTERVAL_SEC,
    STATUS_APPROVED,
    TOOL_EGRESS_ALLOW,
    TOOL_EGRESS_TOKEN_ALLOW,
    Proposal,
)
from bot_bottle.sidecar.method_override import Headers, methods_read_as
from bot_bottle.sidecar.relay_queue import RelayQueue
from bot_bottle.text.redaction import REDACTED, Masker

DEFAULT_TIMEOUT_SEC = 300.0
GRANT_CACHE_SEC = 5.0  # how long a lookup of the grants stands: a revocation or an end is honoured within this
MAX_FINGERPRINTS = 4096
SNIPPET_RADIUS = 40  # characters of context kept on each side of the value
MAX_FIELD_CHARS = 512
MASK_MARGIN_CHARS = 4096  # masked past what a field shows, so a piece crossing the cut is seen whole

log = logging.getLogger("bot_bottle.egress")


def _is_text(*values: object) -> bool:
    return all(isinstance(v, str) for v in values)


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
    kept as written: HTTP methods are case-sensitive.
    """
    if len(host) > MAX_HOST_CHARS + 7 or not _HOST_RE.fullmatch(host) or not _METHOD_RE.fullmatch(method):
        return None
    return normal_host(host), method


class EgressGrants:
    """What this bottle may let through now: its live grants, asked for through its queue handle.

    Each tool's grants are kept at most ``ttl`` seconds (``GRANT_CACHE_SEC``),
    then asked for again; a failed lookup keeps nothing and answers no.
    Token fingerprints (slow by design) are kept per token, host and method.
    Safe to share between threads.
    """

    def __init__(self, bottle: object, *, ttl: float = GRANT_CACHE_SEC) -> None:
        self.bottle = bottle
        self.ttl = ttl
        self._cached: dict[str, tuple[float, list[Grant]]] = {}
        # Fingerprints by a keyed hash of (token, host, method): this object never holds a token itself.
        self._fingerprints: dict[str, str] = {}
        self._key = secrets.token_bytes(32)
        self._lock = threading.Lock()

    def grants(self, tool: str) -> list[Grant]:
        """The bottle's live grants of ``tool``, as looked up at most ``ttl`` seconds ago; [] when the lookup fails."""
        now = time.monotonic()
        with self._lock:
            cached = self._cached.get(tool)
            if cached is not None and now - cached[0] < self.ttl:
                return cached[1]
        if not isinstance(self.bottle, BottleQueue | RelayQueue):
            log.error("egress grants: the bottle is a %s, not a BottleQueue or RelayQueue", type(self.bottle).__name__)
            return []
        try:
            found = self.bottle.live_grants(tool)
        except Exception as exc:  # fail closed: no grant is honoured that could not be looked up
            log.error("egress grants: cannot look up %s grants (%s); nothing is let through on a grant", tool, exc)
            with self._lock:
                self._cached.pop(tool, None)
            return []
        with self._lock:
            # Kept from when it was asked, not answered: the grants were read in between, so an answer that
            # came late (a slow relay) is not honoured past ``ttl`` after a revocation that followed the read.
            self._cached[tool] = (now, found)
        return found

    def refresh(self) -> None:
        """Forget what was looked up: the next question asks the bottle's grants again."""
        with self._lock:
            self._cached.clear()

    def fingerprint(self, value: str, host: str, method: str) -> str:
        """``value``'s fingerprint for ``host`` and ``method`` (computed once, then kept)."""
        key = hmac.new(self._key, json.dumps([value, host, method]).encode("utf-8", errors="surrogatepass"),
                       hashlib.sha256).hexdigest()
        with self._lock:
            known = self._fingerprints.get(key)
        if known is not None:
            return known
        queue_key = getattr(self.bottle, "queue_key", "")
        found = token_fingerprint(str(queue_key), host, method, value)
        with self._lock:
            if len(self._fingerprints) >= MAX_FINGERPRINTS:
                self._fingerprints.pop(next(iter(self._fingerprints)))
            self._fingerprints[key] = found
        return found

    def allows_token(self, value: str, *, host: str | None = None, method: str | None = None,
                     path: str | None = None, headers: Headers | None = None) -> bool:
        """True if live grants let ``value`` through to ``host`` with ``method``, and with every method the
        request's ``headers`` or ``path``'s query ask a server to read it as (``sidecar.method_override``: a
        token approved for POST is not one for a POST read as DELETE); False for a bad argument."""
        methods = _token_methods(value, host, method, path, headers)
        return methods is not None and not self.token_methods_missing(str(value), str(host), methods)

    def token_methods_missing(self, value: str, host: str, methods: list[str]) -> list[str]:
        """Which of ``methods`` no live grant lets ``value`` through to ``host`` with. A fingerprint (slow by
        design) is taken only for a method some grant names for the host: an agent naming methods by the
        dozen makes none."""
        subjects = [grant.subject_value for grant in self.grants(TOOL_EGRESS_TOKEN_ALLOW)]
        name = normal_host(host)
        missing = []
        for each in methods:
            named = [subject for subject in subjects if subject.get("method") == each and subject.get("host") == name]
            if not (named and any(token_covers(subject, host, each, self.fingerprint(value, host, each))
                                  for subject in named)):
                missing.append(each)
        return missing

    def allows_route(self, host: str, method: str, path: str, headers: Headers | None = None) -> bool:
        """True if live ``egress-allow`` grants cover a request to ``host`` (a port is ignored) with ``method``
        for ``path``, and with every method the request's ``headers`` or query ask a server to read it as
        (``sidecar.method_override``: ``X-HTTP-Method-Override: DELETE`` on an approved POST); False for a bad
        argument. Pass the request's headers: without them only the query's override is seen."""
        if not (isinstance(host, str) and isinstance(method, str) and isinstance(path, str)):
            return False
        name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
        methods = _read_as(name, method, path, headers)
        if methods is None:
            return False
        grants = self.grants(TOOL_EGRESS_ALLOW)
        return all(any(route_covers(grant.subject_value, name, each, path) for grant in grants) for each in methods)


def _token_methods(value: object, host: object, method: object, path: object, headers: object) -> list[str] | None:
    """The methods a request carrying the token ``value`` to ``host`` may be read as (``methods_read_as``; a
    missing ``path`` has no query), or None for a bad argument."""
    if not (isinstance(value, str) and isinstance(host, str) and isinstance(method, str)) or not value:
        return None
    if path is not None and not isinstance(path, str):
        return None
    return _read_as(host, method, path or "/", headers)  # type: ignore[arg-type]  # checked inside


def _read_as(host: str, method: str, path: str, headers: Headers | None) -> list[str] | None:
    """Every method a request to ``host`` for ``path`` may be read as (``methods_read_as``), each a usable scope
    with the host (``_scope``); None when one is not, the path does not start with '/' or the headers are
    unusable."""
    methods = methods_read_as(method, path, headers) if path.startswith("/") else None
    if methods is None or any(_scope(host, each) is None for each in methods):
        return None
    return methods


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
        "method": _field(masker, method),
        "path": _field(masker, path),
        "detector": _field(masker, detector),
        "snippet": redact_snippet(context, value),
        "value_length": len(value),
        "fingerprint": fingerprint,
    }
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _bad_arguments(
    bottle: object, grants: object, fields: dict[str, object], timeout: object, poll_interval: object
) -> str | None:
    """Which argument of ``request_token_override`` is unusable, or None. Never names a value (it may be the token)."""
    if not isinstance(bottle, BottleQueue | RelayQueue):
        return f"bottle is a {type(bottle).__name__}, not a BottleQueue or RelayQueue"
    if not isinstance(grants, EgressGrants):
        return f"grants is a {type(grants).__name__}, not EgressGrants"
    if grants.bottle is not bottle:
        return "grants are another bottle handle's (give the EgressGrants made for this bottle)"
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
    grants: EgressGrants,
    *,
    host: str,
    method: str,
    path: str,
    detector: str,
    context: str,
    value: str,
    timeout: float = DEFAULT_TIMEOUT_SEC,
    poll_interval: float = DEFAULT_POLL_INTERVAL_SEC,
    headers: Headers | None = None,
) -> bool:
    """Ask the operator to let ``value`` through to ``host`` with ``method``; True only on approval.

    A token live grants let through to this host with this method, and with
    every method the request's ``headers`` or ``path``'s query ask the server
    to read it as (``sidecar.method_override``), is allowed at once, without
    a proposal. Otherwise a proposal is filed for each method no grant
    covers, each naming that method (a POST read as DELETE asks about
    DELETE), and the request waits: approvals of all of them answer it (and
    their grants cover the next ones until they end). Rejection, expiry, the
    timeout, a bad argument and any error (the database unavailable, the
    relay unreachable or refusing this bottle's token, ...) return False, and
    the reason is logged (never the token).
    """
    try:
        problem = _bad_arguments(bottle, grants, {"host": host, "method": method, "path": path,
                                                    "detector": detector, "context": context, "value": value},
                                 timeout, poll_interval)
        methods = None if problem else _token_methods(value, host, method, path, headers)
        if problem or methods is None:
            log.error("egress token override: bad argument (%s); request blocked",
                      problem or "headers or the query name a method that is not an HTTP token, or too many")
            return False
        missing = grants.token_methods_missing(value, host, methods)
        if not missing:
            return True
        masker = Masker([value])
        asked = [_ask_token(bottle, grants, masker, host=host, method=method, read_as=each, path=path,
                            detector=detector, context=context, value=value) for each in missing]
        deadline = time.monotonic() + timeout
        for proposal in asked:
            if not _approved(bottle, proposal, max(0.0, deadline - time.monotonic()), timeout, poll_interval):
                return False
        grants.refresh()  # their grants cover the next requests: look them up afresh
        return True
    except Exception as exc:  # fail closed on anything, with the reason in the log
        log.error("egress token override failed, request blocked: %s", exc)
        return False


def _ask_token(bottle: BottleQueue | RelayQueue, grants: EgressGrants, masker: Masker, *, host: str, method: str,
               read_as: str, path: str, detector: str, context: str, value: str) -> Proposal:
    """File the ``egress-token-allow`` report for ``value`` to ``host`` with ``read_as``, the method the request
    (a ``method``) may be read as; the proposal filed (or the same one already filed)."""
    payload = _token_allow_payload(masker, host=host, method=read_as, path=path, detector=detector,
                                   context=context, value=value, fingerprint=grants.fingerprint(value, host, read_as))
    where = f"{_field(masker, method)} to {_field(masker, host)}{_field(masker, path)}"
    if read_as != method:
        where += f", which asks the server to read it as {_field(masker, read_as)}"
    return bottle.submit(
        TOOL_EGRESS_TOKEN_ALLOW, payload,
        f"the egress DLP ({_field(masker, detector)}) blocked a {where}: let this token through to this host?",
    )


def _approved(bottle: BottleQueue | RelayQueue, proposal: Proposal, wait: float, timeout: float,
              poll_interval: float) -> bool:
    """Wait up to ``wait`` seconds (what is left of ``timeout``) for the decision on ``proposal``: True when it
    is approved; else False, the reason logged. A decided proposal is archived."""
    log.info("egress token override: waiting up to %g s on proposal %s", wait, proposal.short_id)
    response = bottle.wait_for_response(proposal.id, wait, poll_interval)
    if response is None:
        log.warning("egress token override: no decision within %g s on %s; blocked", timeout, proposal.short_id)
        return False
    bottle.archive(proposal.id)
    if response.status != STATUS_APPROVED:
        log.warning("egress token override: %s %s (%s); blocked", proposal.short_id, response.status,
                    response.notes)
        return False
    log.info("egress token override: %s approved (%s)", proposal.short_id, response.notes)
    return True
