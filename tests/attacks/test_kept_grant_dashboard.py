"""Hostile review 59 in Chromium: the dashboard's bottles page against a grant whose row a sidecar rewrote.

The sidecar ended the row of a live grant and pointed its ``audit_seq`` at
another entry, or rewrote its subject to a harmless host. The page lists the
grant as its sealed approval entry records it, marked kept by the log, and its
revoke button ends that grant for good (``grants._named_grant``; before, the
button said "nothing to revoke" for the first, and the page showed the
harmless host, unmarked, for the second).
"""

from __future__ import annotations

import sqlite3
import time

from bot_bottle.decisions import decide
from bot_bottle.grants import GrantStore
from bot_bottle.records import STATUS_APPROVED, TOOL_EGRESS_ALLOW
from tests.helpers.dashboard import BrowserCase

REWRITES = {
    "ended, its audit_seq elsewhere": "UPDATE grants SET starts_at = '2026-01-01T00:00:00.000000Z', "
                                      "ends_at = '2026-01-02T00:00:00.000000Z', audit_seq = 0 WHERE id = :id",
    "its subject a harmless host": "UPDATE grants SET subject = '{\"host\":\"docs.python.org\",\"methods\":[],"
                                   "\"paths\":[]}' WHERE id = :id",
}


class KeptGrantDashboardTest(BrowserCase):
    def test_the_page_shows_the_log_grant_and_its_button_revokes_it(self) -> None:
        self.log_in()
        for name, sql in REWRITES.items():
            with self.subTest(rewrite=name):
                filed = self.store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "pastebin.com"}', "paste the logs")
                decide(filed.id, STATUS_APPROVED, "for today", store=self.store)
                with GrantStore(database=self.store.db) as grants:
                    grant = grants.for_proposal(filed.id)
                assert grant is not None
                conn = sqlite3.connect(self.path, isolation_level=None)
                try:
                    for (trigger,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
                        conn.execute(f'DROP TRIGGER "{trigger}"')
                    conn.execute(sql, {"id": grant.id})
                finally:
                    conn.close()
                self.open("/bottles")
                page = self.browser.text()
                self.assertRegex(page, f"{grant.short_id} web-1 egress-allow [0-9dhm]+ pastebin.com")
                self.assertIn("kept by the audit log", page)
                self.assertNotIn("docs.python.org", page)
                time.sleep(1.5)  # past the page's guard (a click within 800 ms of a change is dropped)
                self.browser.script(
                    "const row = [...document.querySelectorAll('tr')].find(tr => tr.textContent.includes("
                    "arguments[0]) && tr.querySelector('form'));"
                    "const form = row.querySelector('form');"
                    "form.querySelector('input[name=reason]').value = 'no pastes';"
                    "form.querySelector('button[value=revoke]').click(); return true;", grant.short_id)
                deadline = time.monotonic() + 30
                while f"revoked grant {grant.short_id}" not in self.browser.text() and time.monotonic() < deadline:
                    time.sleep(0.2)
                self.assertIn(f"revoked grant {grant.short_id}", self.browser.text())
                with GrantStore(database=self.store.db) as grants:
                    self.assertEqual(grants.against_log().kept, [])
