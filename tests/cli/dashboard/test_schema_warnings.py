"""The dashboard says on its pages what its writes found changed in the schema and undid (``schema.guard``).

Before, the guard said it on the dashboard's stderr alone, which the operator
at a browser never sees: a sidecar's trigger refusing revocations was
dropped, the revocation went through, and nothing on the page said that a
bottle had tried.
"""

from __future__ import annotations

import sqlite3

from bot_bottle.decisions import decide
from bot_bottle.grants import GrantStore
from bot_bottle.records import TOOL_EGRESS_ALLOW
from tests.helpers.dashboard import DashboardCase

# A trigger name a sidecar chose, made to be markup where it is not escaped.
NAME = '<img src=x onerror="document.title=1">'


class SchemaWarningsTest(DashboardCase):

    def revoke_with_a_trigger_in_the_way(self) -> str:
        """A sidecar adds a trigger refusing revocations; the operator revokes a grant from the bottles page: the
        page the revocation leads to."""
        route = self.store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "pypi.org"}', "pip")
        decide(route.id, "approved", store=self.store)
        grant = GrantStore(database=self.store.db).for_proposal(route.id)
        assert grant is not None
        sidecar = sqlite3.connect(self.path, isolation_level=None)
        try:
            sidecar.execute(f'CREATE TRIGGER "{NAME.replace(chr(34), chr(34) * 2)}" BEFORE INSERT ON audit_log '
                            "WHEN NEW.action = 'grant-revoked' BEGIN SELECT RAISE(ABORT, 'nope'); END")
        finally:
            sidecar.close()
        body = self.revoke_posted(grant.id)
        self.assertIn(f"revoked grant {grant.short_id}", body)
        return body

    def test_a_page_says_what_the_dashboards_write_dropped_escaped(self) -> None:
        """BROKE before: the page said only "revoked grant ...", the guard's line went to stderr."""
        body = self.revoke_with_a_trigger_in_the_way()
        self.assertIn('data-part="warnings"', body)
        self.assertIn("dropped what no migration made", body)
        self.assertIn('trigger &quot;&lt;img src=x onerror=&quot;document.title=1&quot;&gt;&quot;', body)
        self.assertNotIn("<img", body)
        self.assertTrue(any(line.startswith("warning: dropped what no migration made") for line in self.logged),
                        self.logged)

    def test_every_page_of_the_operators_says_it_and_no_refusal_does(self) -> None:
        """It stays on every page while the dashboard runs (the inbox, the audit log), and a client without the
        session, which gets a refusal, learns nothing of it."""
        self.revoke_with_a_trigger_in_the_way()
        for path in ("/", "/audit", "/bottles"):
            status, _, body = self.call("GET", path)
            self.assertEqual(status, 200)
            self.assertIn("dropped what no migration made", body, path)
        status, _, body = self.call("GET", "/", session=False)
        self.assertNotEqual(status, 200)
        self.assertNotIn("dropped what no migration made", body)
        self.assertNotIn("warnings", body)

    def test_a_page_with_nothing_undone_says_nothing(self) -> None:
        status, _, body = self.call("GET", "/")
        self.assertEqual(status, 200)
        self.assertNotIn('data-part="warnings"', body)
        self.assertNotIn("schema", body.lower().split("<main>", 1)[1].split("</section>", 1)[0])
