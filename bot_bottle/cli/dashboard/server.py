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
  (``decisions.decide(shown=...)``) only when both still match. A decision
  is sent only by its own button, and one that widens access is asked for
  twice (``posts``).
- **The file is the one opened.** A database removed or replaced at its
  path while the dashboard runs is a styled page saying so and what to do;
  so is one that stays locked (``handler``).
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
from urllib.parse import urlencode, urlsplit

from bot_bottle import __version__
from bot_bottle.cli.dashboard import pages
from bot_bottle.cli.dashboard.handler import DashboardHTTPServer
from bot_bottle.cli.dashboard.inbox_page import expired_said, inbox_page
from bot_bottle.cli.dashboard.posts import PostHandler
from bot_bottle.cli.dashboard.state import (
    AUDIT_SHOWN,
    LOCAL_PATH_RE,
    SECURITY_HEADERS,
    SESSION_COOKIE,
    STATIC,
    Dashboard,
)
from bot_bottle.cli.grants_cmds import (
    MAX_NAMED_ENDED,
    approving_again_line,
    remembered_rule,
    replaced_lines,
    rule_made_line,
)
from bot_bottle.cli.in_force import grant_subjects, grants_listed, revoked_rule_leaves
from bot_bottle.cli.inbox import Filters, decided_now_line
from bot_bottle.errors import BotBottleError, DatabaseReplaced, Refused, ValidationError
from bot_bottle.policy.subjects import describe_subject
from bot_bottle.records import PROPOSAL_ID_RE, validate_queue_key
from bot_bottle.standing import Keeper, approving_again, rules_in_force
from bot_bottle.wire.guarded_server import RETRY_AFTER_SEC, response_bytes

DASHBOARD_HOSTS = ("localhost", "127.0.0.1", "::1")
REQUEST_TIMEOUT_SEC = 20.0
WRITE_TIMEOUT_SEC = 15.0
MAX_CONNECTIONS = 64
MAX_IN_FLIGHT = 16
BODY_BUDGET_BYTES = 16 * 1024 * 1024
MAX_SEARCH_CHARS = 200
# How a rule named on a page is ended here: its row's button (the rules table shows each rule's id), not a shell.
RULE_ENDS = "the revoke button in its row under 'Standing rules' on the 'bottles, grants, rules' page"


class DashboardHandler(PostHandler):
    """The dashboard's routes: the pages and the change feed here, the forms in ``posts``."""

    server_version = f"bot-bottle-dashboard/{__version__}"

    def do_GET(self) -> None:
        """Pages, the change feed and the static files, to the holder of the session (or the token)."""
        if self.headers.get("Content-Length", "0").strip() not in ("", "0") or self.headers.get("Transfer-Encoding"):
            self.refuse(HTTPStatus.BAD_REQUEST, "a GET carries no body")
            return
        try:
            self._get()
        except Refused as refused:
            self.refused(refused)
        except BotBottleError as exc:
            self.unavailable(exc)

    def _get(self) -> None:
        path = self.inner_path(urlsplit(self.path).path)
        pairs = self.query()
        tokens = [value for name, value in pairs if name == "token"]
        if tokens:
            self._log_in(path, tokens)
            return
        query = dict(pairs)
        self.require_session()
        dashboard = self.dashboard
        if path in STATIC:
            data, kind = dashboard.static[path]
            self.send_body(HTTPStatus.OK, kind, data)
            return
        if path == "/api/changes":
            self._changes()
            return
        self.check_file()
        after = self._after(query.get("after", ""))
        if path == "/":
            self._inbox(query, after)
        elif path == "/bottles":
            now = datetime.now(UTC)
            dashboard.keep()
            message = self._revoked(query.get("revoked", "")) or self._revoked_rule(query.get("revoked_rule", ""))
            listed = grants_listed(dashboard.grants)
            self.page(HTTPStatus.OK, pages.bottles_page(dashboard.bottles.overview(), now, dashboard.marker(),
                                                        root=dashboard.root, grants=listed.grants, listed=listed,
                                                        subjects=grant_subjects(dashboard.grants, listed.grants),
                                                        rules=rules_in_force(dashboard.grants), csrf=dashboard.csrf,
                                                        message=message))
        elif path == "/audit":
            marker = dashboard.marker()
            result = dashboard.verified()
            self.page(HTTPStatus.OK, pages.audit_page(dashboard.audit.entries(limit=AUDIT_SHOWN), result, marker,
                                                      root=dashboard.root,
                                                      pending=len(dashboard.queue.pending_summaries())))
        elif path.startswith("/proposal/"):
            proposal = self.proposal(path.removeprefix("/proposal/"))
            message = f"{after}; this is the next pending proposal" if after else ""
            self.show(proposal, message=message, asked=query.get("shown", ""))
        else:
            raise Refused(HTTPStatus.NOT_FOUND, "Not found", "there is no such page")

    def _inbox(self, query: dict[str, str], after: str) -> None:
        """The inbox, narrowed by the query's filters (bottle, tool, warning, q)."""
        dashboard = self.dashboard
        try:
            bottle = query.get("bottle") or None
            filters = Filters(bottle=validate_queue_key(bottle, "bottle") if bottle else None,
                              tool=query.get("tool") or None, caution=query.get("warning") or None,
                              words=query.get("q", "")[:MAX_SEARCH_CHARS].strip() or None)
        except ValidationError as exc:
            raise Refused(HTTPStatus.BAD_REQUEST, "Bad request", str(exc)) from None
        now = datetime.now(UTC)
        dashboard.keep()
        marker = dashboard.marker()
        left = dashboard.queue.pending_summaries()
        message = f"{after}; no pending proposal is left" if after and not left else after
        self.page(HTTPStatus.OK, inbox_page(dashboard.pending(filters), filters, dashboard.bottles.overview(), now,
                                            marker, root=dashboard.root, message=message,
                                            expired_html=expired_said(dashboard.queue, filters.bottle,
                                                                      root=dashboard.root)))

    def _after(self, proposal_id: str) -> str:
        """What was recorded on the proposal decided just before (``?after=ID``), from its response alone."""
        if not PROPOSAL_ID_RE.fullmatch(proposal_id):
            return ""
        response = self.dashboard.queue.response(proposal_id)
        if response is None:
            return ""
        proposal = self.dashboard.queue.get(proposal_id)
        ended = self.dashboard.grants.ended_by_decision(proposal_id)
        more = len(ended) - MAX_NAMED_ENDED
        rule = remembered_rule(self.dashboard.grants, proposal_id, response.decided_at)
        said = [f"{response.status} {proposal.short_id} ({proposal.queue_key}, {proposal.tool}) by "
                f"{response.decided_by}", *replaced_lines(self.dashboard.replaced.get(proposal_id, ()))]
        if rule is not None:
            said.append(rule_made_line(rule, RULE_ENDS))
            said += decided_now_line(rule["effect"], self.dashboard.ruled.get(proposal_id, []), MAX_NAMED_ENDED)
        said += [f"ended grant {grant.short_id} ({grant.queue_key}: {describe_subject(grant.tool, grant.subject_value)}"
                 "), which let it through" for grant in ended[:MAX_NAMED_ENDED]]
        if more > 0:
            said.append(f"and {more} more grants ('grants list --all' shows them)")
        return "; ".join(said)

    def _revoked(self, grant_id: str) -> str:
        """What the revocation just before (``?revoked=ID``) left: that it is revoked, and the approving rule that
        still approves the same again at the bottle's next ask, if one does. The grant as this dashboard's
        revocation returned it (``Dashboard.revoked_now``), else its row."""
        if not PROPOSAL_ID_RE.fullmatch(grant_id):  # a grant id has the same form
            return ""
        try:
            grant = self.dashboard.revoked.get(grant_id) or self.dashboard.grants.find(grant_id)
        except BotBottleError:
            return ""
        if grant.revoked_at is None:
            return ""
        again = approving_again(self.dashboard.grants, grant)
        said = grant_subjects(self.dashboard.grants, [grant])[grant.id]  # as its row in the table said it
        return "; ".join([f"revoked grant {grant.short_id} ({grant.queue_key}: {said}) by {grant.revoked_by}",
                          *([approving_again_line(again, grant, RULE_ENDS)] if again is not None else [])])

    def _revoked_rule(self, rule_id: str) -> str:
        """What the rule's revocation just before (``?revoked_rule=ID``) left, from the rule's row alone: that it is
        revoked, and that the grants it made stay."""
        if not PROPOSAL_ID_RE.fullmatch(rule_id):  # a rule id has the same form
            return ""
        try:
            rule = self.dashboard.grants.find_rule(rule_id)
        except BotBottleError:  # a standing rejection the log kept had no row: its revocation says nothing here
            return ""
        if rule.revoked_at is None:
            return ""
        return (f"revoked rule {rule.short_id} ({rule.queue_key or 'every bottle'}: {rule.effect} "
                f"{describe_subject(rule.tool, rule.subject_value)}) by {rule.revoked_by}; "
                f"{revoked_rule_leaves(rule, 'revoke them above')}")

    def _changes(self) -> None:
        """The change feed the pages poll: the marker, the pending proposals (id, bottle), or what is wrong."""
        dashboard = self.dashboard
        try:
            self.check_file()
            pending = dashboard.queue.pending_summaries()
            answer: dict[str, Any] = {"marker": dashboard.marker(), "pending": len(pending),
                                      "ids": [[p.id, p.queue_key] for p in pending]}
            status = HTTPStatus.OK
        except DatabaseReplaced as exc:
            answer, status = {"problem": f"{exc.title}: {exc.todo}"}, HTTPStatus.SERVICE_UNAVAILABLE
        except BotBottleError as exc:
            answer, status = {"problem": f"the database cannot be used now ({exc}); retrying"}, \
                HTTPStatus.SERVICE_UNAVAILABLE
        self.send_body(status, "application/json", json.dumps(answer).encode("utf-8"),
                       {"Retry-After": str(RETRY_AFTER_SEC)} if status != HTTPStatus.OK else None)

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
        self.redirect(self.dashboard.root + target, {"Set-Cookie": cookie})


class DashboardServer(DashboardHTTPServer):
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
        self.origins = frozenset(f"http://{host}:{port}" for host in ("127.0.0.1", "localhost", "[::1]"))

    @property
    def url(self) -> str:
        """The URL to open, with the token."""
        host, port = str(self.server_address[0]), int(self.server_address[1])
        return f"http://{host}:{port}{self.dashboard.root}/?{urlencode({'token': self.dashboard.token})}"


def serve(db_path: str | Path | None, port: int, *, log: Callable[[str], None],
          ready: Callable[[DashboardServer], Any]) -> None:
    """Open the database, bind 127.0.0.1:``port`` (0: any free port), call ``ready``, serve until shut down.

    While it serves, the standing rules and expiry are applied the moment a
    proposal is committed (``standing.Keeper``), whether or not a page is
    open: a sidecar on the mount whose proposal a rule decides is answered
    with no relay running and no page to load.
    """
    dashboard = Dashboard(db_path, log)
    try:
        server = DashboardServer(("127.0.0.1", port), dashboard)
        keeper = Keeper(dashboard.queue, log).start()
        try:
            ready(server)
            server.serve_forever(poll_interval=0.2)
        finally:
            keeper.stop()
            server.server_close()
    finally:
        dashboard.close()
