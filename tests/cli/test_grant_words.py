"""A grant that keeps digests (a routes file's, a push's findings') is listed with what approving it granted, in
words, wherever grants are listed; never words its proposal no longer matches. ``bottles show`` lists the standing
rules that decide for the bottle too.

Before: 'grants list', 'bottles show', the TUI's grants view and the
dashboard listed such a grant as "routes file sha256 9b6634b9b78a" or "1
gitleaks finding marked allowed": nothing the operator deciding whether to
revoke it could recognise.
"""

from __future__ import annotations

import io
import json
import sqlite3
from contextlib import redirect_stdout
from datetime import UTC, datetime

from bot_bottle.cli import main
from bot_bottle.cli.dashboard.pages import grants_section
from bot_bottle.cli.in_force import grant_subjects
from bot_bottle.cli.launch_routes import record_launch_routes
from bot_bottle.decisions import decide
from bot_bottle.grants import GrantStore
from bot_bottle.queue_store import QueueStore
from bot_bottle.records import (
    STATUS_APPROVED,
    STATUS_MODIFIED,
    TOOL_EGRESS_ALLOW,
    TOOL_EGRESS_BLOCK,
    TOOL_GITLEAKS_ALLOW,
)
from bot_bottle.timestamps import later, utc_now
from tests.helpers.support import TempDirTest

FINDINGS = ('{"findings": [{"rule": "aws-key", "file": "tests/fixture.py", "line": 3, "fingerprint": '
            '"tests/fixture.py:aws-key:3"}]}')


class GrantWordsTest(TempDirTest):
    def setUp(self) -> None:
        super().setUp()
        self.store = QueueStore()
        self.addCleanup(self.store.close)

    def listed(self, *argv: str) -> str:
        out = io.StringIO()
        with redirect_stdout(out):
            self.assertEqual(main(list(argv)), 0)
        return out.getvalue()

    def test_routes_files_and_findings_are_listed_in_words(self) -> None:
        record_launch_routes(self.store, "web-1", "routes:\n- a.com\n")
        routes = self.store.submit("web-1", TOOL_EGRESS_BLOCK, "routes:\n- a.com\n- b.com\n", "docs",
                                   current_file="routes:\n- a.com\n")
        decide(routes.id, STATUS_APPROVED, store=self.store)
        record_launch_routes(self.store, "web-2", "routes:\n- a.com\n")
        edited = self.store.submit("web-2", TOOL_EGRESS_BLOCK, "routes:\n- a.com\n- evil.com\n", "more",
                                   current_file="routes:\n- a.com\n")
        decide(edited.id, STATUS_MODIFIED, final_file="routes:\n- a.com\n- c.com\n", store=self.store)
        push = self.store.submit("web-1", TOOL_GITLEAKS_ALLOW, FINDINGS, "a test fixture")
        decide(push.id, STATUS_APPROVED, "a fixture", store=self.store)
        route = self.store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "pypi.org"}', "pip")
        decide(route.id, STATUS_APPROVED, store=self.store)
        table = self.listed("grants", "list")
        self.assertIn("routes file: adds b.com (routes file sha256 ", table)
        self.assertIn("routes file: adds c.com (routes file sha256 ", table)  # what the operator's edit granted
        self.assertNotIn("evil.com", table)
        self.assertIn("1 finding let into the repository: aws-key in tests/fixture.py:3 (1 gitleaks finding", table)
        self.assertIn("pypi.org (any method; every path)", table)
        self.assertIn("routes file: adds b.com", self.listed("bottles", "show", "web-1"))
        grants = GrantStore(database=self.store.db)
        live = grants.listing()
        page = grants_section(live, datetime.now(UTC), root="/r", csrf="t", subjects=grant_subjects(grants, live))
        self.assertIn("routes file: adds c.com", page)

    def test_a_proposal_rewritten_since_adds_no_words(self) -> None:
        """A sidecar rewrites the approved proposal's payload in the file: the grant is listed by its digest."""
        record_launch_routes(self.store, "web-1", "routes:\n- a.com\n")
        routes = self.store.submit("web-1", TOOL_EGRESS_BLOCK, "routes:\n- a.com\n- b.com\n", "docs",
                                   current_file="routes:\n- a.com\n")
        decide(routes.id, STATUS_APPROVED, store=self.store)
        raw = sqlite3.connect(self.store.db.path, isolation_level=None)
        try:
            raw.execute("DROP TRIGGER proposals_immutable")
            raw.execute("UPDATE proposals SET payload = :payload WHERE id = :id",
                        {"payload": "routes:\n- a.com\n- innocent.example\n", "id": routes.id})
        finally:
            raw.close()
        table = self.listed("grants", "list")
        self.assertIn("routes file sha256 ", table)
        self.assertNotIn("innocent.example", table)
        self.assertNotIn("adds", table)
        (grant,) = GrantStore(database=self.store.db).listing()
        self.assertTrue(grant_subjects(self.store, [grant])[grant.id].startswith("routes file sha256 "))

    def test_approving_answers_with_the_grant_in_the_same_words(self) -> None:
        """BROKE before the fix: 'proposals approve' of a routes file answered "grant 1a2b3c4d: routes file sha256
        9b6634b9b78a until ...", and of a push "1 gitleaks finding marked allowed", where every list of grants
        names the same grant in words: the one moment the operator reads it first said the least."""
        record_launch_routes(self.store, "web-1", "routes:\n- a.com\n")
        routes = self.store.submit("web-1", TOOL_EGRESS_BLOCK, "routes:\n- a.com\n- b.com\n", "docs",
                                   current_file="routes:\n- a.com\n")
        push = self.store.submit("web-1", TOOL_GITLEAKS_ALLOW, FINDINGS, "a test fixture")
        for proposal, words in ((routes, "routes file: adds b.com (routes file sha256 "),
                                (push, "1 finding let into the repository: aws-key in tests/fixture.py:3 (")):
            digest = json.loads(self.listed("proposals", "show", proposal.id, "--json"))["digest"]
            said = self.listed("proposals", "approve", proposal.short_id, "--digest", digest, "--notes", "fine")
            self.assertIn(f": {words}", said)

    def test_revoking_names_the_grant_in_the_same_words(self) -> None:
        """BROKE before the fix: 'grants revoke' of a routes file's grant listed as 'routes file: adds b.com'
        answered "revoked 1a2b3c4d (web-1, egress-block: routes file sha256 9b6634b9b78a)"."""
        record_launch_routes(self.store, "web-1", "routes:\n- a.com\n")
        routes = self.store.submit("web-1", TOOL_EGRESS_BLOCK, "routes:\n- a.com\n- b.com\n", "docs",
                                   current_file="routes:\n- a.com\n")
        decide(routes.id, STATUS_APPROVED, store=self.store)
        (grant,) = GrantStore(database=self.store.db).listing()
        said = self.listed("grants", "revoke", grant.short_id, "--reason", "done")
        self.assertIn(f"revoked {grant.short_id} (web-1, egress-block: routes file: adds b.com (routes file sha256 ",
                      said)


class BottleRulesTest(TempDirTest):
    def test_bottles_show_lists_the_rules_deciding_for_it(self) -> None:
        """Before: 'bottles show' listed a bottle's grants but not the rules that decide its proposals without you."""
        with QueueStore() as store:
            store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "a.example"}', "filed: the host knows web-1")
            grants = GrantStore(database=store.db)
            now = utc_now()
            own = grants.add_rule(queue_key="web-1", tool=TOOL_EGRESS_ALLOW, pattern=False, effect="approve",
                                  subject={"host": "docs.python.org", "methods": [], "paths": []}, notes="the docs",
                                  ends_at=later(now, 3600), created_by="ann", now=now)
            every = grants.add_rule(queue_key=None, tool=TOOL_EGRESS_ALLOW, pattern=False, effect="reject",
                                    subject={"host": "pastebin.com", "methods": [], "paths": []}, notes="no paste",
                                    ends_at=None, created_by="ann", now=now)
            other = grants.add_rule(queue_key="web-2", tool=TOOL_EGRESS_ALLOW, pattern=False, effect="reject",
                                    subject={"host": "b.example", "methods": [], "paths": []}, notes="not web-1's",
                                    ends_at=None, created_by="ann", now=now)
        out = io.StringIO()
        with redirect_stdout(out):
            self.assertEqual(main(["bottles", "show", "web-1"]), 0)
        shown = out.getvalue()
        self.assertIn("rules      2 deciding for it", shown)
        self.assertRegex(shown, rf"{own.short_id}\tweb-1\tapprove\t\S+\tdocs.python.org")
        self.assertIn(f"{every.short_id}\t(every bottle)\treject\tfor good\tpastebin.com", shown)
        self.assertNotIn(other.short_id, shown)
