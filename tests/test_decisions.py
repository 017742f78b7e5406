"""The operator's decisions: the rules of D6, the audit entry, and the diff."""

from __future__ import annotations

import getpass
import socket
import sqlite3

from bot_bottle.audit_store import AuditStore
from bot_bottle.decisions import decide, default_decider, render_diff
from bot_bottle.errors import AlreadyDecided, DatabaseError, NotFound, ValidationError
from bot_bottle.queue_store import QueueStore
from bot_bottle.records import (
    STATUS_APPROVED,
    STATUS_MODIFIED,
    STATUS_REJECTED,
    TOOL_EGRESS_BLOCK,
    TOOL_EGRESS_TOKEN_ALLOW,
    TOOL_GITLEAKS_ALLOW,
    Proposal,
)
from tests.helpers.support import TempDirTest, digest


class DecideTest(TempDirTest):
    def setUp(self) -> None:
        super().setUp()
        self.path = self.tmp / "s.db"
        self.queue = QueueStore(self.path)
        self.addCleanup(self.queue.close)
        self.audit = AuditStore(database=self.queue.db)

    def routes(self, payload: str = "routes:\n- a.com\n- b.com\n") -> Proposal:
        return self.queue.submit("web-1", TOOL_EGRESS_BLOCK, payload, "need b", current_file="routes:\n- a.com\n")

    def report(self, tool: str = TOOL_GITLEAKS_ALLOW) -> Proposal:
        return self.queue.submit("web-1", tool, '{"findings": []}', "test fixture")

    def test_approve_writes_response_and_audit_together(self) -> None:
        """Approving stores the response and one audit entry with the diff of current vs proposed."""
        proposal = self.routes()
        response = decide(proposal.id, STATUS_APPROVED, "fine", decided_by="ann@laptop", store=self.queue)
        self.assertEqual((response.status, response.decided_by), (STATUS_APPROVED, "ann@laptop"))
        (entry,) = self.audit.entries()
        self.assertEqual((entry.action, entry.proposal_id, entry.queue_key, entry.tool, entry.actor),
                         (STATUS_APPROVED, proposal.id, "web-1", TOOL_EGRESS_BLOCK, "ann@laptop"))
        self.assertIn("+- b.com", entry.diff)
        self.assertEqual(entry.details["justification"], "need b")

    def test_modify_records_the_final_file(self) -> None:
        """Modifying needs the final file; the audit diff is current vs final."""
        proposal = self.routes()
        with self.assertRaisesRegex(ValidationError, "final file"):
            decide(proposal.id, STATUS_MODIFIED, store=self.queue)
        with self.assertRaisesRegex(ValidationError, "approve it instead"):
            decide(proposal.id, STATUS_MODIFIED, final_file=proposal.payload, store=self.queue)
        response = decide(proposal.id, STATUS_MODIFIED, "only c", "routes:\n- a.com\n- c.com\n", store=self.queue)
        self.assertEqual(response.final_file, "routes:\n- a.com\n- c.com\n")
        (entry,) = self.audit.entries()
        self.assertIn("+- c.com", entry.diff)
        self.assertNotIn("b.com", entry.diff)

    def test_reject_needs_a_reason(self) -> None:
        """Rejecting without a reason (or a blank one) is refused and writes nothing."""
        proposal = self.routes()
        before = digest(self.path)
        for notes in ("", "   \n"):
            with self.assertRaisesRegex(ValidationError, "reason"):
                decide(proposal.id, STATUS_REJECTED, notes, store=self.queue)
        self.assertEqual(digest(self.path), before)
        decide(proposal.id, STATUS_REJECTED, "no new hosts", store=self.queue)
        self.assertEqual(self.queue.response(proposal.id).status, STATUS_REJECTED)  # type: ignore[union-attr]

    def test_report_only_tools(self) -> None:
        """gitleaks-allow and egress-token-allow: no modify; approving needs a reason."""
        for tool in (TOOL_GITLEAKS_ALLOW, TOOL_EGRESS_TOKEN_ALLOW):
            with self.subTest(tool=tool):
                proposal = self.report(tool)
                with self.assertRaisesRegex(ValidationError, "report-only"):
                    decide(proposal.id, STATUS_MODIFIED, "x", '{"findings": [1]}', store=self.queue)
                with self.assertRaisesRegex(ValidationError, "needs a reason"):
                    decide(proposal.id, STATUS_APPROVED, store=self.queue)
                decide(proposal.id, STATUS_APPROVED, "fixture key, not real", store=self.queue)
                entry = self.audit.entries(limit=1)[0]
                self.assertEqual(entry.diff, "")
                self.assertEqual(entry.details["report"], '{"findings": []}')

    def test_final_file_only_with_modify(self) -> None:
        """A final file given with approve or reject is a mistake, refused."""
        proposal = self.routes()
        with self.assertRaisesRegex(ValidationError, "only given when modifying"):
            decide(proposal.id, STATUS_APPROVED, final_file="x", store=self.queue)

    def test_first_decision_wins(self) -> None:
        """A second decision is refused naming who decided what and when; nothing changes."""
        proposal = self.routes()
        first = decide(proposal.id, STATUS_APPROVED, decided_by="ann@laptop", store=self.queue)
        before = digest(self.path)
        with self.assertRaises(AlreadyDecided) as caught:
            decide(proposal.id, STATUS_REJECTED, "changed my mind", decided_by="bob@desk", store=self.queue)
        message = str(caught.exception)
        for needle in ("approved", "ann@laptop", first.decided_at):
            self.assertIn(needle, message)
        self.assertEqual(digest(self.path), before)
        self.assertEqual(self.audit.count(), 1)

    def test_unknown_proposal_and_bad_status(self) -> None:
        """Deciding an unknown id or with an unknown status fails before writing."""
        with self.assertRaises(NotFound):
            decide("f" * 32, STATUS_APPROVED, store=self.queue)
        proposal = self.routes()
        with self.assertRaisesRegex(ValidationError, "status"):
            decide(proposal.id, "maybe", store=self.queue)

    def test_failed_audit_rolls_back_the_decision(self) -> None:
        """If the audit entry cannot be written, the response is not written either."""
        proposal = self.routes()
        raw = sqlite3.connect(self.path, isolation_level=None)
        self.addCleanup(raw.close)
        raw.execute("CREATE TRIGGER refuse BEFORE INSERT ON audit_log BEGIN SELECT RAISE(ABORT, 'audit down'); END")
        with self.assertRaisesRegex(DatabaseError, "audit down"):
            decide(proposal.id, STATUS_APPROVED, store=self.queue)
        self.assertIsNone(self.queue.response(proposal.id))
        raw.execute("DROP TRIGGER refuse")
        decide(proposal.id, STATUS_APPROVED, store=self.queue)
        self.assertEqual(self.audit.count(), 1)

    def test_decide_by_path(self) -> None:
        """decide() opens the database itself when given db_path, defaulting decided_by to user@host."""
        proposal = self.routes()
        response = decide(proposal.id, STATUS_APPROVED, db_path=self.path)
        self.assertEqual(response.decided_by, f"{getpass.getuser()}@{socket.gethostname()}")
        self.assertEqual(default_decider(), response.decided_by)


class RenderDiffTest(TempDirTest):
    def test_unified_diff(self) -> None:
        """render_diff is a unified diff with labels; equal texts give ''."""
        diff = render_diff("a\nb\n", "a\nc\n")
        self.assertTrue(diff.startswith("--- current\n+++ proposed\n"))
        self.assertIn("-b\n+c\n", diff)
        self.assertEqual(render_diff("same\n", "same\n"), "")

    def test_json_is_compared_as_json(self) -> None:
        """BROKE before: a one-line route edited as a pretty-printed one showed as a whole replacement. Compared
        as JSON (keys sorted, indented), only the changed value is a changed line; text that is not JSON, or
        JSON naming a key twice, is compared as written."""
        one_line = '{"host": "docs.python.org", "methods": ["GET"], "paths": ["/3/"]}'
        edited = '{\n  "paths": ["/3/"],\n  "host": "docs.python.org",\n  "methods": ["GET", "HEAD"]\n}\n'
        diff = render_diff(one_line, edited, json_aware=True)
        changed = [line for line in diff.splitlines()[2:] if line[:1] in "+-"]
        self.assertEqual(changed, ['-    "GET"', '+    "GET",', '+    "HEAD"'])
        self.assertEqual(render_diff(one_line, one_line.replace(", ", ",  "), json_aware=True), "")
        self.assertIn("-" + one_line, render_diff(one_line, edited))
        twice = '{"host": "a.example", "host": "b.example"}'
        self.assertIn("+" + twice, render_diff(one_line, twice, json_aware=True))
        self.assertIn("+not json", render_diff(one_line, "not json", json_aware=True))

    def test_missing_final_newline_is_marked(self) -> None:
        """A last line without a newline does not run into the next diff line."""
        diff = render_diff("a", "b")
        self.assertIn("-a\n\\ No newline at end of file\n+b\n", diff)
