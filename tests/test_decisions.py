"""The operator's decisions: the rules of D6, the audit entry, and the diff."""

from __future__ import annotations

import dataclasses
import getpass
import socket
import sqlite3
from unittest import mock

from bot_bottle.audit.anchor import advance_anchor, read_anchor
from bot_bottle.audit_store import AuditStore
from bot_bottle.decisions import decide, default_decider, record_decisions
from bot_bottle.errors import AlreadyDecided, AuditTampered, DatabaseError, NotFound, ValidationError
from bot_bottle.grant_records import Grant
from bot_bottle.grants import GrantStore
from bot_bottle.queue_store import QueueStore
from bot_bottle.records import (
    STATUS_APPROVED,
    STATUS_MODIFIED,
    STATUS_REJECTED,
    TOOL_EGRESS_ALLOW,
    TOOL_EGRESS_BLOCK,
    TOOL_EGRESS_TOKEN_ALLOW,
    TOOL_GITLEAKS_ALLOW,
    Decision,
    Proposal,
)
from bot_bottle.text.diffs import render_diff
from tests.helpers.support import TempDirTest, digest


class DecideTest(TempDirTest):
    def setUp(self) -> None:
        super().setUp()
        self.path = self.tmp / "s.db"
        self.queue = QueueStore(self.path)
        self.addCleanup(self.queue.close)
        self.audit = AuditStore(database=self.queue.db)

    def unguarded(self) -> QueueStore:
        """A store on the same file whose writes leave a trigger no migration made in place, as the host's do
        not (a sidecar's store is opened so)."""
        store = QueueStore(self.path, migrate_schema=False)
        self.addCleanup(store.close)
        return store

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
        """If the audit entry cannot be written, the response is not written either. (A trigger stands in for the
        failure, through a store that does not drop it as the host's do: ``schema.guard``.)"""
        proposal = self.routes()
        raw = sqlite3.connect(self.path, isolation_level=None)
        self.addCleanup(raw.close)
        raw.execute("CREATE TRIGGER refuse BEFORE INSERT ON audit_log BEGIN SELECT RAISE(ABORT, 'audit down'); END")
        with self.assertRaisesRegex(DatabaseError, "audit down"):
            decide(proposal.id, STATUS_APPROVED, store=self.unguarded())
        self.assertIsNone(self.queue.response(proposal.id))
        raw.execute("DROP TRIGGER refuse")
        decide(proposal.id, STATUS_APPROVED, store=self.queue)
        self.assertEqual(self.audit.count(), 1)

    def test_several_decisions_share_one_commit(self) -> None:
        """record_decisions: every response, entry and grant in one commit; the chain and the anchor follow it."""
        proposals = [self.queue.submit(f"web-{n}", TOOL_EGRESS_ALLOW, f'{{"host": "h{n}.example"}}', "j")
                     for n in range(3)]
        before = self.audit.count()
        with mock.patch("bot_bottle.audit_store.advance_anchor", wraps=advance_anchor) as moved:
            responses = record_decisions(self.queue, [(p.id, Decision(STATUS_APPROVED, "", None, "ann@laptop"), p)
                                                      for p in proposals])
        self.assertEqual([r.proposal_id for r in responses], [p.id for p in proposals])
        entries = sorted(self.audit.entries(), key=lambda entry: entry.seq or 0)[before:]  # (newest first)
        self.assertEqual([e.proposal_id for e in entries], [p.id for p in proposals])
        self.assertEqual([e.seq for e in entries], list(range(before + 1, before + 4)))
        self.assertEqual([e.prev_hash for e in entries[1:]], [e.hash for e in entries[:-1]])
        moved.assert_called_once()  # once, to the last of them
        anchor = read_anchor(self.path)
        assert anchor is not None
        self.assertEqual((anchor.seq, anchor.seal), (entries[-1].seq, entries[-1].seal))
        grants = GrantStore(database=self.queue.db)
        self.assertTrue(all(grants.for_proposal(p.id) is not None for p in proposals))
        verified = self.audit.verify()
        self.assertTrue(verified.ok, verified.problem)

    def test_one_refused_among_several_records_none(self) -> None:
        """Decided meanwhile, rewritten since shown, or a decision the rules refuse: none of the batch is recorded."""
        first, second, third = (self.queue.submit("web-1", TOOL_EGRESS_ALLOW, f'{{"host": "r{n}.example"}}', "j")
                                for n in range(3))
        decide(second.id, STATUS_REJECTED, "no", decided_by="bob@desk", store=self.queue)
        approve = Decision(STATUS_APPROVED, "", None, "ann@laptop")
        cases: list[tuple[list[tuple[str, Decision, Proposal | None]], type[Exception]]] = [
            ([(first.id, approve, first), (second.id, approve, second), (third.id, approve, third)], AlreadyDecided),
            ([(first.id, approve, first), (third.id, approve, dataclasses.replace(third, justification="other"))],
             AuditTampered),
            ([(first.id, approve, first), (third.id, Decision(STATUS_REJECTED, "", None, "ann@laptop"), third)],
             ValidationError),
            ([(first.id, approve, first), ("0" * 32, approve, None)], NotFound),
        ]
        for asked, refusal in cases:
            with self.subTest(refusal=refusal.__name__):
                before = digest(self.path)
                with self.assertRaises(refusal):
                    record_decisions(self.queue, asked)
                self.assertEqual(digest(self.path), before)
                self.assertIsNone(self.queue.response(first.id))
                self.assertIsNone(self.queue.response(third.id))
        self.assertEqual([e.proposal_id for e in self.audit.entries()], [second.id])

    def test_an_entry_slipped_in_mid_batch_is_refused_whole(self) -> None:
        """A trigger a sidecar made writes an entry of its own, linked in order, after the batch's first: the next
        decision of the batch finds the log is no longer where its own entry left it, and nothing is recorded.
        (The host's writes drop such a trigger first, ``schema.guard``; this check is the one behind it, held
        here through a store that does not.)"""
        first, second = (self.queue.submit("web-1", TOOL_EGRESS_ALLOW, f'{{"host": "t{n}.example"}}', "j")
                         for n in range(2))
        raw = sqlite3.connect(self.path, isolation_level=None)
        self.addCleanup(raw.close)
        raw.execute("CREATE TRIGGER slip AFTER INSERT ON audit_seal WHEN NEW.seq = (SELECT max(seq) FROM audit_log) "
                    "AND (SELECT count(*) FROM audit_log) < 2 BEGIN INSERT INTO audit_log (seq, ts, queue_key, "
                    "action, tool, proposal_id, actor, notes, diff, details, prev_hash, hash) SELECT seq + 1, ts, "
                    "queue_key, 'approved', tool, proposal_id, 'sidecar', '', '', details, hash, "
                    "lower(hex(randomblob(32))) FROM audit_log WHERE seq = NEW.seq; END")
        before = digest(self.path)
        approve = Decision(STATUS_APPROVED, "", None, "ann@laptop")
        with self.assertRaisesRegex(AuditTampered, "changed inside the host's own transaction, after its entry 1"):
            record_decisions(self.unguarded(), [(first.id, approve, first), (second.id, approve, second)])
        self.assertEqual(digest(self.path), before)
        self.assertIsNone(self.queue.response(first.id))

    def test_only_an_approval_replaces_a_routes_file(self) -> None:
        """BROKE before the fix (review 69): 'replaced' took every routes grant the decision ended, and a standing
        rejection of the routes file in force (filed again, --remember) ends that file's own grant: the rejection
        was said to replace it ('it replaces the routes file approved on proposal P'), beside the rule's own word
        that it ended it. Only an approval (or modification) replaces a file; approving the next one names it."""
        first = self.routes()
        replaced: dict[str, tuple[Grant, ...]] = {}
        decide(first.id, STATUS_APPROVED, "", store=self.queue, replaced=replaced)
        self.assertEqual(replaced, {first.id: ()}, "none in force: nothing replaced")
        grant = GrantStore(database=self.queue.db).for_proposal(first.id)
        assert grant is not None
        self.queue.archive(first.id)
        again = self.routes()
        decide(again.id, STATUS_REJECTED, "never this", store=self.queue, remember="bottle", replaced=replaced)
        self.assertEqual(replaced[again.id], (), "a rejection replaces nothing")
        self.assertEqual([each.id for each in GrantStore(database=self.queue.db).ended_by_decision(again.id)],
                         [grant.id], "its rule ended it, as the rule's answer says")
        third = self.routes("routes:\n- c.com\n")
        other = self.routes("routes:\n- d.com\n")
        decide(third.id, STATUS_APPROVED, "", store=self.queue)
        made = GrantStore(database=self.queue.db).for_proposal(third.id)
        decide(other.id, STATUS_MODIFIED, "", "routes:\n- e.com\n", store=self.queue, replaced=replaced)
        self.assertEqual([each.id for each in replaced[other.id]], [made.id if made else ""])

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
