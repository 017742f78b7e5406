"""What one running dashboard holds: its stores, its secrets (token, root, form key) and its fixed texts."""

from __future__ import annotations

import re
import secrets
import threading
from collections.abc import Callable
from importlib import resources
from pathlib import Path

from bot_bottle.audit.forensics import VerifyResult
from bot_bottle.audit_store import AuditStore
from bot_bottle.bottles import BottleStore
from bot_bottle.decisions import default_decider
from bot_bottle.errors import BotBottleError
from bot_bottle.grants import GrantStore
from bot_bottle.queue_store import QueueStore
from bot_bottle.standing import keep

SESSION_COOKIE = "bot_bottle_dashboard"


# A 1 MiB file, percent-encoded (up to 3 bytes a byte), with a note and the form's other fields.
MAX_FORM_BYTES = 4 * 1024 * 1024


MAX_FORM_FIELDS = 16


FORM_FIELDS = frozenset({"csrf", "shown", "status", "notes", "final", "final_sha256", "decision", "for",
                         "remember", "reason"})


AUDIT_SHOWN = 50


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


class Dashboard:
    """What the server serves: the stores, the secrets, and the decisions' rules."""

    def __init__(self, db_path: str | Path | None, log: Callable[[str], None]) -> None:
        self.queue = QueueStore(db_path)
        self.bottles = BottleStore(database=self.queue.db)
        self.audit = AuditStore(database=self.queue.db)
        self.grants = GrantStore(database=self.queue.db)
        self._kept = 0
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

    def close(self) -> None:
        """Close the database."""
        self.queue.close()

    def keep(self) -> None:
        """Apply standing rules and close expired proposals before a page shows them (``standing.keep``).

        A problem here (the audit key missing, the database busy) is logged,
        never shown as a page's failure: the page shows what is there.
        """
        try:
            self._kept = keep(self.queue, after=self._kept)
        except BotBottleError as exc:
            self.log(f"standing rules and expiry not applied: {exc}")

    def marker(self) -> str:
        """Changes whenever anyone commits to the database (the pages reload on it)."""
        version, changes = self.queue.changes_marker()
        return f"{version}.{changes}"

    def verified(self) -> VerifyResult:
        """``audit verify``'s result, recomputed only when the database changed since the last one."""
        with self._verify_lock:
            marker = self.marker()
            if self._verified is None or self._verified[0] != marker:
                self._verified = (marker, self.audit.verify())
            return self._verified[1]
