"""Hostile review 60 in Chromium: the dashboard's bottles page against rows sharing a live grant's id.

A sidecar rebuilt the grants table without its primary key. A second row of the
grant's id saying a harmless host and ending later had the page (one line an id)
show that host, unmarked, while the first row kept pastebin.com in force; a copy
of the row had the revoke button say "matches several grants" and record
nothing. The page now lists the grant as its sealed approval records it, and the
button revokes it (``queue_reads.one_by_id_prefix`` counts ids, not rows).
"""

from __future__ import annotations

import sqlite3

from bot_bottle.grants import GrantStore
from tests.helpers.dashboard import BrowserCase

# What the sidecar writes into the rebuilt table (``rebuilt``, empty) before and after the grant's own row.
SECOND_ROWS = {
    "a copy of its row": ("", "INSERT INTO rebuilt SELECT * FROM grants WHERE id = :id"),
    "a harmless host ending later": (
        "INSERT INTO rebuilt SELECT id, queue_key, tool, '{\"host\":\"docs.python.org\",\"methods\":[],\"paths\":[]}', "
        "subject_sha256, starts_at, strftime('%Y-%m-%dT%H:%M:%S.000000Z', ends_at, '+1 hour'), proposal_id, rule_id, "
        "decided_by, audit_seq, revoked_at, revoked_by, revoke_reason, revoke_seq FROM grants WHERE id = :id", ""),
}


class DuplicateGrantRowsDashboardTest(BrowserCase):
    def test_the_page_shows_the_log_grant_and_its_button_revokes_it(self) -> None:
        self.log_in()
        for name, (before, after) in SECOND_ROWS.items():
            with self.subTest(second_row=name):
                grant = self.approved_grant("web-1", "pastebin.com")
                self.rebuild(before, after, grant.id)
                self.open("/bottles")
                page = self.browser.text()
                self.assertRegex(page, f"{grant.short_id} web-1 egress-allow [0-9dhm]+ pastebin.com")
                self.assertNotIn("docs.python.org", page)
                self.revoke_grant_on_page(grant.short_id, "no pastes")
                with GrantStore(database=self.store.db) as grants:
                    self.assertEqual([g.id for g in grants.listing() if g.id == grant.id], [])

    def rebuild(self, before: str, after: str, grant_id: str) -> None:
        """The sidecar rebuilds the grants table without its key: ``before``, the rows as they were, ``after``."""
        conn = sqlite3.connect(self.path, isolation_level=None)
        try:
            for (trigger,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
                conn.execute(f'DROP TRIGGER "{trigger}"')
            conn.execute("CREATE TABLE rebuilt AS SELECT * FROM grants WHERE 0")
            for sql in (before, "INSERT INTO rebuilt SELECT * FROM grants", after):
                if sql:
                    conn.execute(sql, {"id": grant_id})
            conn.execute("DROP TABLE grants")
            conn.execute("ALTER TABLE rebuilt RENAME TO grants")
        finally:
            conn.close()
