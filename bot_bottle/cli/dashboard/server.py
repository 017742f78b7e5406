"""The dashboard's HTTP server: the operator's browser view of every bottle, held to the TUI's rules.

Standard library only, on 127.0.0.1, on ``wire.guarded_server`` (the sidecar
server's hardened base: one deadline a request, capped connections and
bodies, only ``localhost``, ``127.0.0.1`` and ``[::1]`` as Host, a foreign
Origin refused). A page is served only to whoever holds the secret:

- **The token.** ``bot-bottle dashboard`` prints a URL with a random token
  (as Jupyter does). Visiting it swaps the token for a session cookie
  (``HttpOnly; SameSite=Strict``) and redirects to the same page without
  the token, so it leaves the address bar; every other request must carry
  the cookie. Both are compared in constant time.
- **The root.** Every page lives under a random path (``Dashboard.root``,
  in the printed URL), and the cookie's ``Path`` is that root. Browsers
  send a cookie to every port of its host, so without it a server on
  another port of 127.0.0.1 (an agent's app, published from its bottle)
  would be sent the session on the operator's visit, and a VM reaches the
  host's loopback (Docker Desktop's ``host.docker.internal``); with it the
  cookie goes only to paths under a root nobody else knows. A path outside
  the root is answered 404 before anything else is looked at.
- **Posts are the operator's own.** A decision is a POST with a form token
  (CSRF) only our pages carry, an ``Origin`` that is exactly this server's
  (port included: another local server's page is another origin), and
  ``Sec-Fetch-Site: same-origin`` where the browser sends it. The
  cookie's ``SameSite=Strict`` keeps it off every cross-site request too.
- **What is decided is what was shown.** Every form carries the digest of
  the proposal as its page showed it; a modification's confirmation also
  carries the digest of the file its diff showed. The decision is recorded
  (``decisions.decide(shown=...)``) only when both still match.
- **Headers.** A Content-Security-Policy allows only the package's own
  script and stylesheet (no inline script, no ``eval``, nothing from
  elsewhere, forms posting only here, never framed); ``no-store``;
  ``nosniff``; ``Referrer-Policy: same-origin`` (``no-referrer`` would make
  browsers send ``Origin: null`` on our own posts, which we refuse).
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable
from datetime import UTC, datetime
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from bot_bottle import __version__
from bot_bottle.cli.dashboard import pages
from bot_bottle.cli.dashboard.state import (
    AUDIT_SHOWN,
    FORM_FIELDS,
    HTML,
    LOCAL_PATH_RE,
    MAX_FORM_BYTES,
    MAX_FORM_FIELDS,
    SECURITY_HEADERS,
    SESSION_COOKIE,
    STATIC,
    Dashboard,
)
from bot_bottle.decisions import decide, shown_digest
from bot_bottle.errors import (
    AlreadyDecided,
    AnchorNotWritten,
    AuditTampered,
    BotBottleError,
    NotFound,
    ProposalExpired,
    Refused,
    ValidationError,
)
from bot_bottle.policy.routes import validate_final_file
from bot_bottle.records import (
    PROPOSAL_ID_RE,
    STATUS_MODIFIED,
    STATUSES,
    Proposal,
    sha256_text,
)
from bot_bottle.timestamps import parse_duration
from bot_bottle.wire.guarded_server import RETRY_AFTER_SEC, GuardedHandler, GuardedHTTPServer, response_bytes
from bot_bottle.wire.http_bounds import parse_content_length

DASHBOARD_HOSTS = ("localhost", "127.0.0.1", "::1")
REQUEST_TIMEOUT_SEC = 20.0
WRITE_TIMEOUT_SEC = 15.0
MAX_CONNECTIONS = 64
MAX_IN_FLIGHT = 16
BODY_BUDGET_BYTES = 16 * 1024 * 1024



class DashboardHandler(GuardedHandler):
    """The dashboard's routes; every answer carries the security headers."""

    server: DashboardServer
    server_version = f"bot-bottle-dashboard/{__version__}"

    @property
    def dashboard(self) -> Dashboard:
        """The served ``Dashboard``."""
        return self.server.dashboard

    @classmethod
    def error_body(cls, status: HTTPStatus, message: str, server_fault: bool) -> tuple[str, bytes]:
        """A small page saying why."""
        return HTML, pages.refusal_page(f"{status.value} {status.phrase}", message).encode("utf-8")

    def send_body(self, status: int, content_type: str | None, data: bytes,
                  extra: dict[str, str] | None = None) -> None:
        """Every answer, refusals included, with the security headers."""
        super().send_body(status, content_type, data, {**SECURITY_HEADERS, **(extra or {})})

    def _page(self, status: int, html: str, extra: dict[str, str] | None = None) -> None:
        self.send_body(status, HTML, html.encode("utf-8"), extra)

    def _redirect(self, location: str, extra: dict[str, str] | None = None) -> None:
        self.send_body(HTTPStatus.SEE_OTHER, None, b"", {"Location": location, **(extra or {})})

    # Who may ask -----------------------------------------------------------------

    def _has_session(self) -> bool:
        expected = self.dashboard.session.encode()
        found = False
        for header in self.headers.get_all("Cookie") or []:
            for part in header.split(";"):
                name, _, value = part.strip().partition("=")
                # Every candidate is compared, in constant time: no early exit tells how far one matched.
                if name == SESSION_COOKIE and hmac.compare_digest(value.encode("utf-8", "replace"), expected):
                    found = True
        return found

    def _require_session(self) -> None:
        if not self._has_session():
            raise Refused(HTTPStatus.FORBIDDEN, "This page needs the dashboard's token",
                          "Open the link 'bot-bottle dashboard' printed (it carries the token) in this browser.")

    # GET ---------------------------------------------------------------------------

    def do_GET(self) -> None:
        """Pages, the change marker and the static files, to the holder of the session (or the token)."""
        if self.headers.get("Content-Length", "0").strip() not in ("", "0") or self.headers.get("Transfer-Encoding"):
            self.refuse(HTTPStatus.BAD_REQUEST, "a GET carries no body")
            return
        try:
            self._get()
        except Refused as refused:
            self.close_connection = True
            self._page(refused.status, pages.refusal_page(refused.title, refused.explanation),
                       {"Connection": "close"})

    def _inner_path(self, path: str) -> str:
        """``path`` below the dashboard's root (``/`` at least); 404, learning nothing, for any path outside it."""
        first, _, rest = path[1:].partition("/")
        # In constant time, as the token: the root is a secret too.
        if not hmac.compare_digest(first.encode("utf-8", "replace"), self.dashboard.root[1:].encode()):
            raise Refused(HTTPStatus.NOT_FOUND, "Not found",
                          "there is no such page: open the link 'bot-bottle dashboard' printed")
        return "/" + rest

    def _get(self) -> None:
        url = urlsplit(self.path)
        path = self._inner_path(url.path)
        try:
            query = parse_qsl(url.query, keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS)
        except ValueError:
            raise Refused(HTTPStatus.BAD_REQUEST, "Bad request", "too many query parameters") from None
        tokens = [value for name, value in query if name == "token"]
        if tokens:
            self._log_in(path, tokens)
            return
        self._require_session()
        dashboard = self.dashboard
        if path in STATIC:
            data, kind = dashboard.static[path]
            self.send_body(HTTPStatus.OK, kind, data)
        elif path == "/":
            now = datetime.now(UTC)
            dashboard.keep()
            marker = dashboard.marker()
            self._page(HTTPStatus.OK, pages.overview(dashboard.bottles.overview(), now, marker, root=dashboard.root,
                                                     grants=dashboard.grants.listing(), csrf=dashboard.csrf))
        elif path == "/audit":
            marker = dashboard.marker()
            result = dashboard.verified()
            self._page(HTTPStatus.OK, pages.audit_page(dashboard.audit.entries(limit=AUDIT_SHOWN), result, marker,
                                                       root=dashboard.root))
        elif path == "/api/changes":
            body = json.dumps({"marker": dashboard.marker()}).encode("utf-8")
            self.send_body(HTTPStatus.OK, "application/json", body)
        elif path.startswith("/proposal/"):
            self._show(self._proposal(path.removeprefix("/proposal/")))
        else:
            raise Refused(HTTPStatus.NOT_FOUND, "Not found", "there is no such page")

    def _log_in(self, path: str, tokens: list[str]) -> None:
        """Swap the token in the URL for the session cookie, and send the browser to the page without it."""
        expected = self.dashboard.token.encode()
        if len(tokens) != 1 or not hmac.compare_digest(tokens[0].encode("utf-8", "replace"), expected):
            raise Refused(HTTPStatus.FORBIDDEN, "Wrong token",
                          "This is not the token 'bot-bottle dashboard' printed: open the link it printed.")
        # Path: sent only under our secret root, never to another server on this host (cookies ignore ports).
        cookie = f"{SESSION_COOKIE}={self.dashboard.session}; HttpOnly; SameSite=Strict; Path={self.dashboard.root}"
        # Back to the page asked for, if its path is plainly one of ours: "//host" or "/\\host" in a
        # Location would send the browser to another site (browsers read a backslash as a slash).
        target = path if LOCAL_PATH_RE.fullmatch(path) and not path.startswith("//") else "/"
        self._redirect(self.dashboard.root + target, {"Set-Cookie": cookie})

    def _proposal(self, proposal_id: str) -> Proposal:
        if not PROPOSAL_ID_RE.fullmatch(proposal_id):
            raise Refused(HTTPStatus.NOT_FOUND, "Not found", "a proposal's address holds its 32-digit id")
        try:
            return self.dashboard.queue.get(proposal_id)
        except NotFound:
            raise Refused(HTTPStatus.NOT_FOUND, "Not found", f"no proposal {proposal_id}") from None

    def _show(self, proposal: Proposal, status: int = HTTPStatus.OK, message: str = "") -> None:
        dashboard = self.dashboard
        response = dashboard.queue.response(proposal.id)
        unproven = dashboard.audit.decision_problem(response) if response is not None else None
        marker = dashboard.marker()
        self._page(status, pages.proposal_page(proposal, response, unproven, root=dashboard.root, csrf=dashboard.csrf,
                                               shown=shown_digest(proposal), marker=marker, message=message))

    # POST --------------------------------------------------------------------------

    def do_POST(self) -> None:
        """Decide (``/proposal/ID/decide``) or preview a modification (``/proposal/ID/preview``)."""
        url = urlsplit(self.path)
        try:
            parts = self._inner_path(url.path).split("/")
            self._require_session()
            self._require_same_origin()
            revoking = len(parts) == 4 and parts[1] == "grant" and parts[3] == "revoke"
            if not revoking and (len(parts) != 4 or parts[1] != "proposal" or parts[3] not in ("decide", "preview")):
                raise Refused(HTTPStatus.NOT_FOUND, "Not found", "there is no such form")
            form = self._read_form()
            if not hmac.compare_digest(form.get("csrf", "").encode("utf-8", "replace"), self.dashboard.csrf.encode()):
                raise Refused(HTTPStatus.FORBIDDEN, "Refused",
                              "the form's CSRF token is missing or wrong: decide from the dashboard's own page")
            if revoking:
                self._revoke(parts[2], form)
                return
            proposal = self._proposal(parts[2])
            if not hmac.compare_digest(form.get("shown", "").encode("utf-8", "replace"),
                                       shown_digest(proposal).encode()):
                raise Refused(HTTPStatus.CONFLICT, "Not recorded",
                              f"proposal {proposal.short_id} is not what the page showed (proposals are immutable: "
                              "it was rewritten in the database); nothing recorded. Check 'bot-bottle audit verify'")
        except Refused as refused:
            self.close_connection = True
            self._page(refused.status, pages.refusal_page(refused.title, refused.explanation),
                       {"Connection": "close"})
            return
        if parts[3] == "preview":
            self._preview(proposal, form)
        else:
            self._decide(proposal, form)

    def _require_same_origin(self) -> None:
        # The Host/Origin allowlist already refused a foreign Origin; a post must name one, so a
        # client that leaves it out (or a browser that sends "null") does not pass for ours.
        origins = self.headers.get_all("Origin") or []
        if len(origins) != 1:
            raise Refused(HTTPStatus.FORBIDDEN, "Refused", "a decision must come from the dashboard's own page "
                          "(it needs one Origin header)")
        # Exactly our origin, port included: a page another local server serves (localhost:other) is
        # another origin, though the Host allowlist (which ignores ports) would let it by.
        if origins[0].strip().lower() not in self.server.origins:
            raise Refused(HTTPStatus.FORBIDDEN, "Refused", "a decision must come from the dashboard's own page "
                          f"(Origin {origins[0][:80]!r})")
        site = self.headers.get("Sec-Fetch-Site")
        if site is not None and site != "same-origin":
            raise Refused(HTTPStatus.FORBIDDEN, "Refused", f"a decision must come from the dashboard's own page "
                          f"(Sec-Fetch-Site: {site[:40]})")

    def _read_form(self) -> dict[str, str]:
        if self.headers.get("Transfer-Encoding") is not None:
            raise Refused(HTTPStatus.NOT_IMPLEMENTED, "Refused", "send the form with a Content-Length")
        kind = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if kind != "application/x-www-form-urlencoded":
            raise Refused(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "Refused",
                          "a form must be application/x-www-form-urlencoded")
        try:
            length = parse_content_length(self.headers.get_all("Content-Length") or [])
        except ValueError as exc:
            raise Refused(HTTPStatus.BAD_REQUEST, "Bad request", str(exc)) from None
        if length is None:
            raise Refused(HTTPStatus.LENGTH_REQUIRED, "Refused", "Content-Length is required")
        if length > MAX_FORM_BYTES:
            raise Refused(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "Refused",
                          f"a form of {length} bytes is over the limit of {MAX_FORM_BYTES}")
        slots, bodies = self.server.slots, self.server.bodies
        assert slots is not None and bodies is not None  # the dashboard has one budget for all (see serve)
        if not slots.acquire(blocking=False):
            raise Refused(HTTPStatus.SERVICE_UNAVAILABLE, "Busy", "too many requests at once; retry")
        try:
            if not bodies.take(length):
                raise Refused(HTTPStatus.SERVICE_UNAVAILABLE, "Busy", "too many request bytes at once; retry")
            try:
                body = self.rfile.read(length)
            finally:
                bodies.give(length)
        finally:
            slots.release()
        if len(body) < length:
            raise Refused(HTTPStatus.BAD_REQUEST, "Bad request", f"the body ended after {len(body)} of {length} bytes")
        try:
            pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=True,
                              max_num_fields=MAX_FORM_FIELDS, errors="strict")
        except (UnicodeDecodeError, ValueError):
            raise Refused(HTTPStatus.BAD_REQUEST, "Bad request", "the form is not UTF-8 form data") from None
        form: dict[str, str] = {}
        for name, value in pairs:
            if name not in FORM_FIELDS or name in form:
                raise Refused(HTTPStatus.BAD_REQUEST, "Bad request", f"unexpected form field {name[:40]!r}")
            # Browsers send a textarea's newlines as CRLF; the file and notes are kept with LF, as written.
            form[name] = value.replace("\r\n", "\n")
        return form

    def _preview(self, proposal: Proposal, form: dict[str, str]) -> None:
        """The confirmation of a modification: the operator's own diff, or why the file cannot be taken."""
        final = form.get("final", "")
        problem: str | None = None
        if proposal.report_only:
            problem = f"{proposal.tool} proposals are report-only: approve them with a reason or reject them"
        elif final == proposal.payload:
            problem = "your file is the same as the proposal: approve it instead"
        else:
            try:
                validate_final_file(proposal.tool, final)
            except ValidationError as exc:
                problem = str(exc)
        if self.dashboard.queue.response(proposal.id) is not None:
            self._show(proposal, HTTPStatus.CONFLICT, "this proposal was decided meanwhile: nothing recorded")
            return
        html = pages.confirm_page(proposal, final, root=self.dashboard.root, csrf=self.dashboard.csrf,
                                  shown=shown_digest(proposal),
                                  final_sha256=sha256_text(final), problem=problem)
        self._page(HTTPStatus.OK if problem is None else HTTPStatus.BAD_REQUEST, html)

    def _decide(self, proposal: Proposal, form: dict[str, str]) -> None:
        """Record the decision the form carries, under ``decide``'s rules, for the proposal as shown."""
        status = form.get("status", "")
        if status not in STATUSES:
            self._show(proposal, HTTPStatus.BAD_REQUEST, "unknown decision: nothing recorded")
            return
        final: str | None = None
        if status == STATUS_MODIFIED:
            final = form.get("final", "")
            # Only the file whose diff the confirmation page showed is recorded.
            if not hmac.compare_digest(form.get("final_sha256", "").encode("utf-8", "replace"),
                                       sha256_text(final).encode()):
                self._show(proposal, HTTPStatus.CONFLICT,
                           "the file is not the one your confirmation showed: nothing recorded; modify it again")
                return
        notes = form.get("notes", "")
        try:
            duration = form.get("for", "").strip()
            grant_for = parse_duration("for", duration) if duration else None
            remember = form.get("remember", "") or None
            decide(proposal.id, status, notes, final, self.dashboard.decided_by, store=self.dashboard.queue,
                   shown=proposal, grant_for=grant_for, remember=remember)
        except AnchorNotWritten as exc:  # committed: the decision stands, with a warning about its proof
            self.dashboard.log(f"{status} {proposal.short_id} ({proposal.queue_key}, {proposal.tool}); {exc}")
            self._show(proposal, HTTPStatus.OK, f"{status}; but {exc}")
            return
        except ValidationError as exc:
            self._show(proposal, HTTPStatus.BAD_REQUEST, f"not recorded: {exc}")
            return
        except (AlreadyDecided, AuditTampered, ProposalExpired) as exc:
            self._show(proposal, HTTPStatus.CONFLICT, f"not recorded: {exc}")
            return
        except BotBottleError as exc:
            self._show(proposal, HTTPStatus.SERVICE_UNAVAILABLE, f"not recorded: {exc}")
            return
        self.dashboard.log(f"{status} {proposal.short_id} ({proposal.queue_key}, {proposal.tool})")
        self._redirect(f"{self.dashboard.root}/proposal/{proposal.id}")


    def _revoke(self, grant_prefix: str, form: dict[str, str]) -> None:
        """End a grant now, with the reason the form carries; back to the bottles."""
        if not PROPOSAL_ID_RE.fullmatch(grant_prefix):  # a grant id has the same form
            raise Refused(HTTPStatus.NOT_FOUND, "Not found", "there is no such grant")
        try:
            grant = self.dashboard.grants.revoke(grant_prefix, form.get("reason", ""),
                                                 revoked_by=self.dashboard.decided_by)
        except BotBottleError as exc:
            raise Refused(HTTPStatus.CONFLICT, "Not revoked", f"not revoked: {exc}") from None
        self.dashboard.log(f"revoked grant {grant.short_id} ({grant.queue_key}, {grant.tool})")
        self._redirect(f"{self.dashboard.root}/")


class DashboardServer(GuardedHTTPServer):
    """The guarded server carrying a ``Dashboard``."""

    def __init__(self, address: tuple[str, int], dashboard: Dashboard, *,
                 request_timeout: float = REQUEST_TIMEOUT_SEC) -> None:
        refusal = response_bytes(HTTPStatus.SERVICE_UNAVAILABLE, "text/plain; charset=utf-8",
                                 b"too many open connections; retry\n",
                                 {**SECURITY_HEADERS, "Retry-After": str(RETRY_AFTER_SEC), "Connection": "close"})
        super().__init__(address, DashboardHandler, allowed_hosts=DASHBOARD_HOSTS, connection_refusal=refusal,
                         log=dashboard.log, request_timeout=request_timeout, write_timeout=WRITE_TIMEOUT_SEC,
                         max_connections=MAX_CONNECTIONS, max_in_flight=MAX_IN_FLIGHT, body_budget=BODY_BUDGET_BYTES)
        self.dashboard = dashboard
        port = int(self.server_address[1])
        #: The origins of our own pages, as browsers send them on our forms' posts.
        self.origins = frozenset(f"http://{host}:{port}" for host in ("127.0.0.1", "localhost", "[::1]"))

    @property
    def url(self) -> str:
        """The URL to open, with the token."""
        host, port = str(self.server_address[0]), int(self.server_address[1])
        return f"http://{host}:{port}{self.dashboard.root}/?{urlencode({'token': self.dashboard.token})}"


def serve(db_path: str | Path | None, port: int, *, log: Callable[[str], None],
          ready: Callable[[DashboardServer], Any]) -> None:
    """Open the database, bind 127.0.0.1:``port`` (0: any free port), call ``ready``, serve until shut down."""
    dashboard = Dashboard(db_path, log)
    try:
        server = DashboardServer(("127.0.0.1", port), dashboard)
        try:
            ready(server)
            server.serve_forever(poll_interval=0.2)
        finally:
            server.server_close()
    finally:
        dashboard.close()
