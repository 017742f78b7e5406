"""What one running dashboard holds: its stores, its secrets (token, root, form key), its fixed texts, and what
it remembers between requests: the inbox's reading of each proposal, the proposals its pages showed (to say
how one changed), and which database file it opened (to tell when it was removed or replaced)."""

from __future__ import annotations

import re
import secrets
import threading
from collections import OrderedDict, deque
from collections.abc import Callable
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

from bot_bottle.audit.forensics import VerifyResult
from bot_bottle.audit_store import AuditStore
from bot_bottle.bottles import BottleStore
from bot_bottle.cli.inbox import Entry, Filters, Inbox
from bot_bottle.decisions import default_decider
from bot_bottle.errors import BotBottleError
from bot_bottle.grant_records import Grant
from bot_bottle.grants import GrantStore
from bot_bottle.policy.approval import Approval
from bot_bottle.queue_reads import shown_digest
from bot_bottle.queue_store import QueueStore
from bot_bottle.records import Proposal, canonical_json, sha256_text
from bot_bottle.standing import describe_failure, keep
from bot_bottle.timestamps import format_timestamp

SESSION_COOKIE = "bot_bottle_dashboard"


# A 1 MiB file, percent-encoded (up to 3 bytes a byte), with a note and the form's other fields.
MAX_FORM_BYTES = 4 * 1024 * 1024


MAX_FORM_FIELDS = 16


FORM_FIELDS = frozenset({"csrf", "shown", "status", "notes", "final", "final_sha256", "decision", "for",
                         "remember", "reason", "confirm", "read"})
# The proposals pages showed, by digest, to say how one changed since (each up to 2 MiB).
SHOWN_KEPT = 16


AUDIT_SHOWN = 50


SCHEMA_WARNINGS_KEPT = 8


CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}


HTML = "text/html; charset=utf-8"


LOCAL_PATH_RE = re.compile(r"/[A-Za-z0-9/_.-]*")


STATIC = {"/static/app.js": ("app.js", "text/javascript; charset=utf-8"),
          "/static/style.css": ("style.css", "text/css; charset=utf-8")}


def static_files() -> dict[str, tuple[bytes, str]]:
    folder = resources.files("bot_bottle.cli.dashboard") / "static"
    return {path: ((folder / name).read_bytes(), kind) for path, (name, kind) in STATIC.items()}


def confirm_token(shown: str, approval: Approval) -> str:
    """What the second ask of a widening approval carries: the proposal as shown and the grant it named."""
    return sha256_text(canonical_json({"shown": shown, "grants": approval.to_dict()}))


class Dashboard:
    """What the server serves: the stores, the secrets, and the decisions' rules."""

    def __init__(self, db_path: str | Path | None, log: Callable[[str], None]) -> None:
        self.queue = QueueStore(db_path)
        self.inbox = Inbox(self.queue)
        self._inbox_lock = threading.Lock()
        self._shown: OrderedDict[str, Proposal] = OrderedDict()
        self.bottles = BottleStore(database=self.queue.db)
        self.audit = AuditStore(database=self.queue.db)
        self.grants = GrantStore(database=self.queue.db)
        self._kept = 0
        self.ruled: OrderedDict[str, list[str]] = OrderedDict()  # by a decision that made a rule: what it decided
        self.revoked: OrderedDict[str, Grant] = OrderedDict()  # by id: a grant as its revocation here left it
        self.replaced: OrderedDict[str, tuple[Grant, ...]] = OrderedDict()  # by decision: the routes grants it ended
        self.log = log
        self.token = secrets.token_urlsafe(32)
        #: The secret path every page lives under (and the session cookie's Path), without a trailing slash.
        self.root = "/" + secrets.token_urlsafe(24)
        self.session = secrets.token_urlsafe(32)
        self.csrf = secrets.token_urlsafe(32)
        self.decided_by = f"{default_decider()} (dashboard)"
        self.static = static_files()
        self._verified: tuple[str, VerifyResult] | None = None
        self._verify_lock = threading.Lock()
        self._schema_changes: deque[tuple[str, str]] = deque(maxlen=SCHEMA_WARNINGS_KEPT)
        self.queue.db.say_schema_changes_with(self._schema_changed)

    def _schema_changed(self, line: str) -> None:
        """A write of this dashboard's found the schema changed behind it and undid it: logged, and said on every
        page (``schema_warnings``), where the operator at the browser sees it."""
        self.log(f"warning: {line}")
        self._schema_changes.append((format_timestamp(datetime.now(UTC).replace(microsecond=0)), line))

    def schema_warnings(self) -> list[tuple[str, str]]:
        """What this dashboard's writes undid in the schema, ``(when, what)``, the newest few."""
        return list(self._schema_changes)

    def close(self) -> None:
        """Close the database."""
        self.queue.close()

    def ruled_now(self, proposal_id: str, decided: list[str]) -> None:
        """Keep, for the next page, what the rule the decision on ``proposal_id`` made decided at once
        (``inbox.decided_now``; the last few decisions' only)."""
        self.ruled[proposal_id] = decided
        while len(self.ruled) > 16:
            self.ruled.popitem(last=False)

    def replaced_now(self, proposal_id: str, ended: tuple[Grant, ...]) -> None:
        """Keep, for the next page, the routes grants the decision on ``proposal_id`` ended, read in its transaction
        (``decisions.record_replacing_in``: the files it replaced); the last few decisions' only."""
        self.replaced[proposal_id] = ended
        while len(self.replaced) > 16:
            self.replaced.popitem(last=False)

    def revoked_now(self, grant: Grant) -> None:
        """Keep, for the next page, ``grant`` as its revocation here returned it (who revoked it, what it granted):
        its row is the file's word, and after a sidecar had marked it revoked (or deleted it) the page named the
        sidecar's revoker (or nothing); the last few revocations' only."""
        self.revoked[grant.id] = grant
        while len(self.revoked) > 16:
            self.revoked.popitem(last=False)

    def keep(self) -> None:
        """Apply standing rules and close expired proposals before a page shows them (``standing.keep``).

        A problem here (the audit key missing, the database busy) is logged,
        never shown as a page's failure: the page shows what is there.
        """
        try:  # (a rule the log does not prove is logged once, by the dashboard's keeper)
            self._kept = keep(self.queue, after=self._kept)
        except Exception as exc:  # whatever a row in the file does, the page shows what is there
            self.log(f"standing rules and expiry not applied: {describe_failure(exc)}")

    def _behind_anchor(self) -> tuple[str, str, str] | None:
        """Why the database's audit log does not reach the host's anchor, as ``file_problem`` says it.

        An older copy of the database put in its place (a sidecar on the
        mount can rename one over it while no host process has it open)
        still lists the grants and rules revoked since: the dashboard shows
        nothing from it, as it shows nothing from a replaced file.
        """
        try:
            problem = self.audit.anchor_problem()
        except BotBottleError as exc:
            problem = str(exc)
        if problem is None:
            return None
        return ("The database does not reach its audit anchor",
                f"{self.queue.db.path}: {problem}. It may be an older copy of the database, whose grants and rules "
                "include ones revoked since; nothing is shown or decided from it.",
                "Run 'bot-bottle audit verify' to see what is missing; put the database back from your backups, "
                "or, for a database you replaced on purpose, 'bot-bottle audit retire-anchor --yes'. Then reload.")

    def marker(self) -> str:
        """Changes whenever anyone commits to the database (the pages reload on it)."""
        version, changes = self.queue.changes_marker()
        return f"{version}.{changes}"

    def file_problem(self) -> tuple[str, str, str] | None:
        """Why this dashboard's database cannot be trusted to be the one at its path: (title, what, what to do).

        A connection keeps the file it opened: removed or replaced at its
        path (a backup restored, ``mv``), the dashboard would go on showing
        and deciding on the old one, which no sidecar sees any more.
        """
        path = self.queue.db.path
        change = self.queue.db.replaced()
        if change is None:
            return self._behind_anchor()
        if change.removed and change.path == path:
            return ("The database file is gone",
                    f"{path} was removed or moved while this dashboard ran; it still has the old file open, which no "
                    "sidecar sees, so it shows nothing and decides nothing.",
                    f"Put the database back (or run 'bot-bottle db upgrade --db {path}' for a new one), then stop "
                    "this dashboard (Ctrl-C) and start 'bot-bottle dashboard' again.")
        return ("The database file was replaced",
                f"{path} is another file than the one this dashboard opened (a backup restored, a copy moved in; "
                f"here, {change}): it shows nothing and decides nothing from the old one.",
                "Stop this dashboard (Ctrl-C) and start 'bot-bottle dashboard' again to open the file there now.")

    def pending(self, filters: Filters | None = None) -> list[Entry]:
        """The inbox: every bottle's pending proposals, oldest first, with what each grants (``cli.inbox``)."""
        with self._inbox_lock:
            return self.inbox.pending(filters)

    def neighbours(self, proposal_id: str) -> tuple[str | None, str | None]:
        """The pending proposals before and after this one in the queue (after: the first after it filed, or
        the oldest when it is not pending)."""
        ids = [summary.id for summary in self.queue.pending_summaries()]
        if proposal_id not in ids:
            return None, ids[0] if ids else None
        at = ids.index(proposal_id)
        return ids[at - 1] if at else None, ids[at + 1] if at + 1 < len(ids) else None

    def remember_shown(self, proposal: Proposal) -> str:
        """Keep the proposal a page shows, by its digest (the newest ``SHOWN_KEPT``); the digest."""
        digest = shown_digest(proposal)
        with self._inbox_lock:
            self._shown[digest] = proposal
            self._shown.move_to_end(digest)
            while len(self._shown) > SHOWN_KEPT:
                self._shown.popitem(last=False)
        return digest

    def shown_before(self, digest: str) -> Proposal | None:
        """The proposal a page showed with this digest, if this dashboard still has it."""
        with self._inbox_lock:
            return self._shown.get(digest)

    def verified(self) -> VerifyResult:
        """``audit verify``'s result, recomputed only when the database changed since the last one."""
        with self._verify_lock:
            marker = self.marker()
            if self._verified is None or self._verified[0] != marker:
                self._verified = (marker, self.audit.verify())
            return self._verified[1]
