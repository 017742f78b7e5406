"""A dashboard served in process for the tests, logged in with its token."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import ClassVar
from urllib.parse import urlencode

from bot_bottle.audit_store import AuditStore
from bot_bottle.cli.dashboard.server import DashboardServer
from bot_bottle.cli.dashboard.state import SESSION_COOKIE, Dashboard
from bot_bottle.cli.inbox import routes_base_of
from bot_bottle.decisions import decide
from bot_bottle.grant_records import Grant
from bot_bottle.grants import GrantStore
from bot_bottle.queue_reads import shown_digest
from bot_bottle.queue_store import QueueStore
from bot_bottle.records import STATUS_APPROVED, TOOL_EGRESS_ALLOW, Proposal
from tests.helpers.browser import Browser
from tests.helpers.support import REPO, TempDirTest


class DashboardCase(TempDirTest):
    """A dashboard server in this process over a database of this test's."""

    def setUp(self) -> None:
        super().setUp()
        self.path = self.tmp / "dash.db"
        self.store = QueueStore(self.path)
        self.addCleanup(self.store.close)
        self.logged: list[str] = []
        self.dashboard = Dashboard(self.path, self.logged.append)
        self.server = DashboardServer(("127.0.0.1", 0), self.dashboard)
        thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()
        self.addCleanup(self._stop, thread)
        self.port = int(self.server.server_address[1])
        self.origin = f"http://127.0.0.1:{self.port}"

    def _stop(self, thread: threading.Thread) -> None:
        self.server.shutdown()
        thread.join(10)
        self.server.server_close()
        self.dashboard.close()

    def call(self, method: str, path: str, *, headers: dict[str, str | None] | None = None, body: bytes = b"",
             session: bool = True, rooted: bool = True) -> tuple[int, dict[str, str], str]:
        """One request with our Host (and session cookie) for ``path`` under the dashboard's root (unless not
        ``rooted``); a header given as None is left out."""
        if rooted:
            path = self.dashboard.root + path
        sent: dict[str, str | None] = {"Host": f"127.0.0.1:{self.port}"}
        if session:
            sent["Cookie"] = f"{SESSION_COOKIE}={self.dashboard.session}"
        sent.update(headers or {})
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=20)
        try:
            conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
            for name, value in sent.items():
                if value is not None:
                    conn.putheader(name, value)
            if method == "POST":
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body or None)
            answer = conn.getresponse()
            data = answer.read().decode("utf-8")
            return answer.status, {k.lower(): v for k, v in answer.getheaders()}, data
        finally:
            conn.close()

    def post(self, proposal: Proposal, action: str, fields: dict[str, str], *,
             headers: dict[str, str | None] | None = None, session: bool = True,
             raw: bytes | None = None) -> tuple[int, dict[str, str], str]:
        """A form post as our page sends it, with its button (override any field or header to forge one)."""
        button = {"approved": "approve", "rejected": "reject", "modified": "record this modification"}.get(
            fields.get("status") or "")
        # "read": what the page's forms carry, the proposal's routes file read as a page would read it now.
        form = {"csrf": self.dashboard.csrf, "shown": shown_digest(proposal), "decision": button,
                "read": routes_base_of(self.store, proposal).digest(), **fields}
        body = raw if raw is not None else urlencode({k: v for k, v in form.items() if v is not None}).encode()
        sent: dict[str, str | None] = {"Origin": self.origin, "Sec-Fetch-Site": "same-origin",
                                       "Content-Type": "application/x-www-form-urlencoded", **(headers or {})}
        return self.call("POST", f"/proposal/{proposal.id}/{action}", headers=sent, body=body, session=session)

    def post_revoke(self, grant_id: str, reason: str) -> tuple[int, dict[str, str], str]:
        """POST the bottles page's revoke form for a grant, as the page posts it: (status, headers, body)."""
        form = urlencode({"csrf": self.dashboard.csrf, "reason": reason, "decision": "revoke"}).encode()
        return self.call("POST", f"/grant/{grant_id}/revoke", body=form, headers={
            "Origin": self.origin, "Sec-Fetch-Site": "same-origin",
            "Content-Type": "application/x-www-form-urlencoded"})

    def revoke_posted(self, grant_id: str, reason: str = "mirror down") -> str:
        """Revoke a grant with the bottles page's form, as the page posts it; the page the revocation leads to,
        which must be there."""
        status, headers, _ = self.post_revoke(grant_id, reason)
        self.assertEqual(status, 303)
        status, _, body = self.call("GET", headers["location"].removeprefix(self.dashboard.root))
        self.assertEqual(status, 200)
        return body

    def approved_grant(self, bottle: str, host: str) -> Grant:
        """The grant the operator's approval of ``bottle``'s route to ``host`` makes."""
        filed = self.store.submit(bottle, TOOL_EGRESS_ALLOW, json.dumps({"host": host}), "for the build")
        decide(filed.id, STATUS_APPROVED, "for today", store=self.store)
        with GrantStore(database=self.store.db) as grants:
            grant = grants.for_proposal(filed.id)
        assert grant is not None
        return grant

    def assert_unchanged(self, proposal: Proposal) -> None:
        self.assertIsNone(self.store.response(proposal.id))
        self.assertEqual(AuditStore(database=self.store.db).count(), 0)


# How long the page must have been still before a settled test acts: the page's guard (app.js's GUARD_MS, 800 ms)
# and a margin for the two clocks' rounding (the change clock's moment is never earlier than the guard's own:
# it is taken after the change, and the key or click reaches the page later still).
QUIET_MS = 900


class BrowserCase(DashboardCase):
    """A dashboard in headless Chromium (tests/helpers/browser.py): one browser for the whole class."""

    browser: ClassVar[Browser]

    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()
        cls.browser = Browser()

    @classmethod
    def tearDownClass(cls) -> None:
        cls.browser.close()
        super().tearDownClass()

    def log_in(self) -> None:
        """Open the URL the dashboard printed: the token becomes the session, the inbox opens."""
        landed = self.browser.get(self.server.url)
        self.assertEqual(landed, f"{self.origin}{self.dashboard.root}/")

    def open(self, path: str) -> str:
        """Open a page of the dashboard (``path`` under its root); the URL the browser ends at."""
        return self.browser.get(f"{self.origin}{self.dashboard.root}{path}")

    def revoke_grant_on_page(self, short_id: str, reason: str) -> None:
        """On the bottles page open, revoke the grant ``short_id`` with its row's own form and button, past the
        page's guard, and wait for the page that says it was revoked."""
        time.sleep(1.5)  # past the page's guard (a click within 800 ms of a change is dropped)
        self.browser.script(
            "const row = [...document.querySelectorAll('tr')].find(tr => tr.textContent.includes("
            "arguments[0]) && tr.querySelector('form'));"
            "const form = row.querySelector('form');"
            "form.querySelector('input[name=reason]').value = arguments[1];"
            "form.querySelector('button[value=revoke]').click(); return true;", short_id, reason)
        deadline = time.monotonic() + 30
        while f"revoked grant {short_id}" not in self.browser.text() and time.monotonic() < deadline:
            time.sleep(0.2)
        self.assertIn(f"revoked grant {short_id}", self.browser.text())

    def settle(self) -> None:
        """Wait out the page's guard: a click or key within it of a change is dropped, as meant for what was
        there before.

        Waits until the page has been still for ``QUIET_MS`` (its guard is 800 ms; the page's last change, as
        the browser client's change clock records it), so time already spent looking at the page counts; on a
        page without the clock, ``QUIET_MS`` from now."""
        self.browser.script(
            "const quiet = arguments[0];"
            "return new Promise(done => {"
            "  const check = () => {"
            "    const left = window.__bbChangedAt + quiet - performance.now();"
            "    if (left > 0) { setTimeout(check, left); } else { done(); }"
            "  };"
            "  if (window.__bbChangedAt === undefined) { setTimeout(done, quiet); } else { check(); }"
            "})", QUIET_MS)


def artifact_dir() -> Path:
    """Where tests keep what a person looks at afterwards (screenshots): $BOT_BOTTLE_ARTIFACTS, else a temporary
    folder. ``scripts/dashboard-screenshots`` points it at docs/."""
    chosen = os.environ.get("BOT_BOTTLE_ARTIFACTS")
    folder = Path(chosen) if chosen else Path(tempfile.gettempdir()) / "bot-bottle-artifacts"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def start_dashboard(test: TempDirTest, path: Path) -> subprocess.Popen[str]:
    """``bot-bottle dashboard --db PATH --json`` as the operator starts it, in a process of its own with the test's
    HOME, once it has printed its URL (so it listens, and its keeper looks); killed when the test ends."""
    process = subprocess.Popen([sys.executable, "-m", "bot_bottle", "dashboard", "--db", str(path), "--json"],
                               cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "HOME": str(test.home)})
    test.addCleanup(lambda: process.poll() is None and process.kill())
    assert process.stdout is not None
    test.assertIn("url", json.loads(process.stdout.readline()))
    return process
