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

from bot_bottle.grants import GrantStore
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
                grant = self.approved_grant("web-1", "pastebin.com")
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
                self.revoke_grant_on_page(grant.short_id, "no pastes")
                with GrantStore(database=self.store.db) as grants:
                    self.assertEqual(grants.against_log().kept, [])
