"""What every dashboard request does, whatever it asks: who may ask, the answer's headers, a proposal's page.

``DashboardBase`` is the dashboard's handler without its routes: the
session and the secret root (``server`` has the GETs, ``posts`` the forms),
every answer with the security headers, refusals as small pages, and a
database that cannot be used (busy, removed, replaced) as a styled page
that says what to do, never an unstyled "internal error".
"""

from __future__ import annotations

import hmac
from http import HTTPStatus
from urllib.parse import parse_qsl, urlsplit

from bot_bottle.cli.dashboard import pages
from bot_bottle.cli.dashboard.proposal_page import changed_block, proposal_page
from bot_bottle.cli.dashboard.state import HTML, MAX_FORM_FIELDS, SECURITY_HEADERS, SESSION_COOKIE, Dashboard
from bot_bottle.cli.inbox import approval_for, routes_base_of, unproven_decision
from bot_bottle.cli.render import describe, marked_diff
from bot_bottle.errors import BotBottleError, DatabaseBusy, DatabaseReplaced, NotFound, Refused
from bot_bottle.records import PROPOSAL_ID_RE, SHA256_RE, Proposal
from bot_bottle.text.diffs import render_diff
from bot_bottle.wire.guarded_server import RETRY_AFTER_SEC, GuardedHandler, GuardedHTTPServer


class DashboardHTTPServer(GuardedHTTPServer):
    """The guarded server as the dashboard's handlers see it: it carries the ``Dashboard`` and our origins."""

    dashboard: Dashboard
    #: The origins of our own pages, as browsers send them on our forms' posts.
    origins: frozenset[str]


class DashboardBase(GuardedHandler):
    """The dashboard's handler without its routes; every answer carries the security headers."""

    server: DashboardHTTPServer

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

    def page(self, status: int, html: str, extra: dict[str, str] | None = None) -> None:
        """Answer with an HTML page of ours, with what this dashboard's writes undid in the schema where the page
        has a place for it (a signed-in operator's: a refusal has none)."""
        html = html.replace(pages.WARNINGS_SLOT, pages.warnings_html(self.dashboard.schema_warnings()), 1)
        self.send_body(status, HTML, html.encode("utf-8"), extra)

    def redirect(self, location: str, extra: dict[str, str] | None = None) -> None:
        """See other: ``location``, a path of ours."""
        self.send_body(HTTPStatus.SEE_OTHER, None, b"", {"Location": location, **(extra or {})})

    def refused(self, refused: Refused) -> None:
        """Answer a refusal with its page and close the connection."""
        self.close_connection = True
        self.page(refused.status, pages.refusal_page(refused.title, refused.explanation), {"Connection": "close"})

    # Who may ask -----------------------------------------------------------------

    def has_session(self) -> bool:
        """Whether the request carries this dashboard's session cookie (every candidate compared in constant time)."""
        expected = self.dashboard.session.encode()
        found = False
        for header in self.headers.get_all("Cookie") or []:
            for part in header.split(";"):
                name, _, value = part.strip().partition("=")
                # Every candidate is compared, in constant time: no early exit tells how far one matched.
                if name == SESSION_COOKIE and hmac.compare_digest(value.encode("utf-8", "replace"), expected):
                    found = True
        return found

    def require_session(self) -> None:
        """``Refused`` (403) without the session cookie."""
        if not self.has_session():
            raise Refused(HTTPStatus.FORBIDDEN, "This page needs the dashboard's token",
                          "Open the link 'bot-bottle dashboard' printed (it carries the token) in this browser.")

    def inner_path(self, path: str) -> str:
        """``path`` below the dashboard's root (``/`` at least); 404, learning nothing, for any path outside it."""
        first, _, rest = path[1:].partition("/")
        # In constant time, as the token: the root is a secret too.
        if not hmac.compare_digest(first.encode("utf-8", "replace"), self.dashboard.root[1:].encode()):
            raise Refused(HTTPStatus.NOT_FOUND, "Not found",
                          "there is no such page: open the link 'bot-bottle dashboard' printed")
        return "/" + rest

    def query(self) -> list[tuple[str, str]]:
        """The request's query parameters, in order; ``Refused`` for too many."""
        try:
            return parse_qsl(urlsplit(self.path).query, keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS)
        except ValueError:
            raise Refused(HTTPStatus.BAD_REQUEST, "Bad request", "too many query parameters") from None

    # What the database allows ------------------------------------------------------

    def check_file(self) -> None:
        """Raise ``DatabaseReplaced`` when the database at the path is not the one this dashboard opened."""
        problem = self.dashboard.file_problem()
        if problem is not None:
            raise DatabaseReplaced(*problem)

    def unusable(self, title: str, explanation: str, todo: str) -> None:
        """The styled page for a database that cannot be used (503): what happened and what to do.

        For a client with the session (it knows the root): the page keeps
        its stylesheet and script, which looks again and comes back by
        itself when the problem has passed.
        """
        if not self.has_session():
            self.refused(Refused(HTTPStatus.SERVICE_UNAVAILABLE, title, f"{explanation} {todo}"))
            return
        self.close_connection = True
        html = pages.problem_page(title, explanation, todo, root=self.dashboard.root, marker="unusable")
        self.page(HTTPStatus.SERVICE_UNAVAILABLE, html, {"Retry-After": str(RETRY_AFTER_SEC), "Connection": "close"})

    def unavailable(self, exc: BotBottleError) -> None:
        """A database error while answering, as ``unusable`` says it: replaced, busy (retry), or unusable."""
        if isinstance(exc, DatabaseReplaced):
            self.unusable(exc.title, exc.explanation, exc.todo)
        elif isinstance(exc, DatabaseBusy):
            self.unusable("The database is busy",
                          f"Another process holds the database's lock longer than the busy timeout ({exc}): a "
                          "migration, a backup or a stuck writer. Nothing was recorded.",
                          "This page looks again by itself. If it lasts, 'bot-bottle doctor' names the file and "
                          "runs a lock probe.")
        else:
            self.unusable("The database cannot be used", f"{exc}. Nothing was recorded.",
                          "Run 'bot-bottle doctor' to see what is wrong with it; this page looks again by itself.")

    # A proposal ----------------------------------------------------------------------

    def proposal(self, proposal_id: str) -> Proposal:
        """The proposal with this whole id; 404 for anything else."""
        if not PROPOSAL_ID_RE.fullmatch(proposal_id):
            raise Refused(HTTPStatus.NOT_FOUND, "Not found", "a proposal's address holds its 32-digit id")
        try:
            return self.dashboard.queue.get(proposal_id)
        except NotFound:
            raise Refused(HTTPStatus.NOT_FOUND, "Not found", f"no proposal {proposal_id}") from None

    def show(self, proposal: Proposal, status: int = HTTPStatus.OK, message: str = "", asked: str = "") -> None:
        """A proposal's page. ``asked`` is the digest of what a page showed before (its script asks with it):
        when the proposal is not that any more, the page says so first, with the difference."""
        dashboard = self.dashboard
        response = dashboard.queue.response(proposal.id)
        unproven = unproven_decision(dashboard.audit, proposal, response)
        marker = dashboard.marker()
        digest = dashboard.remember_shown(proposal)
        changed = ""
        base = routes_base_of(dashboard.queue, proposal, response)
        if SHA256_RE.fullmatch(asked) and asked != digest:
            before = dashboard.shown_before(asked)
            # Both read against what the page reads the proposal against, as the page below does: read against
            # the sidecar's current file, a routes file rewritten to name a new host, sent as its own current
            # file, read 'routes file: unchanged' under 'as it is now' (hostile review 56).
            difference = None if before is None else marked_diff(render_diff(
                "\n".join(describe(before, None, full=True, base=routes_base_of(dashboard.queue, before))),
                "\n".join(describe(proposal, response, full=True, base=base)),
                before_name="as the page showed it", after_name="as it is now"))
            changed = changed_block(difference)
        pending = len(dashboard.queue.pending_summaries())
        self.page(status, proposal_page(proposal, response, unproven, approval_for(proposal, response, base),
                                        root=dashboard.root, csrf=dashboard.csrf, shown=digest, marker=marker,
                                        message=message, pending=pending,
                                        neighbours=dashboard.neighbours(proposal.id), changed=changed, base=base))
