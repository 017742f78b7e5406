"""A sidecar deletes its proposal's response, and the operator decides that proposal a second time.

A response row is the file's word: a sidecar on the mount can drop the
file's triggers and delete it. Its proposal then reads as pending again, and
before the fix the host decided it again: the audit log held two decisions
for one proposal, and the screens read the rule "the decision" made from the
first sealed ``rule-added`` entry naming it, the first decision's. So after
the operator had rejected the proposal ``--remember`` and later revoked that
rejection, approving it again ``--remember all`` answered that the rule it
made was the old standing rejection of web-1, for good (its id, to revoke),
with the grant that one had ended; the approving rule it did make was named
nowhere. Now a decision is refused where the audit log records one for the
proposal already, whatever the responses table says. Each test performs the
attack on the real database and decides with the real command line.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from bot_bottle.records import RESPONSE_STATUSES, TOOL_EGRESS_ALLOW
from tests.helpers.host_grants import HostGrantsCase

PASTE = '{"host": "pastebin.com", "methods": ["GET"]}'


class RedecidedProposalTest(HostGrantsCase):
    def setUp(self) -> None:
        super().setUp()
        self.paste = self.approve("web-1", {"host": "pastebin.com"})  # a grant the rejection below ends
        self.asked = self.store.submit("web-1", TOOL_EGRESS_ALLOW, PASTE, "to share a log")
        said = self.decide_json("reject", self.asked.short_id, "--remember", "bottle", "--reason", "no")
        rule = said["rule"]
        assert isinstance(rule, dict)
        self.rejection = str(rule["id"])
        self.assertEqual(said["ended_grants"], [self.paste])
        self.cli("rules", "revoke", self.rejection[:8], "--reason", "changed my mind")

    def delete_response(self) -> None:
        """What the sidecar does with its own connection: the triggers dropped, the response deleted."""
        raw = sqlite3.connect(Path(self.db), isolation_level=None)
        try:
            for (trigger,) in raw.execute("SELECT name FROM sqlite_master WHERE type = 'trigger' AND "
                                          "tbl_name = 'responses'").fetchall():
                raw.execute(f'DROP TRIGGER "{trigger}"')
            raw.execute("DELETE FROM responses WHERE proposal_id = :id", {"id": self.asked.id})
        finally:
            raw.close()

    def test_a_proposal_the_log_records_as_decided_is_not_decided_again(self) -> None:
        self.delete_response()
        digest = json.loads(self.cli("proposals", "show", self.asked.id, "--json"))["digest"]
        done = self.run_cli("proposals", "approve", self.asked.short_id, "--digest", digest, "--remember", "all",
                            "--for", "1d", "--json")
        self.assertNotEqual(done.returncode, 0, done.stdout)
        self.assertIn("already rejected", done.stderr)
        self.assertIn("response is gone", done.stderr)
        self.assertIsNone(self.grants.for_proposal(self.asked.id), "no grant was made")
        self.assertEqual([rule.id for rule in self.grants.rules() if rule.proposal_id == self.asked.id], [],
                         "no rule was made (the rejection it made first is revoked)")

    def test_where_the_log_is_rewritten_too_the_rule_named_is_the_one_this_decision_made(self) -> None:
        """The sidecar also rewrites the first decision's entry (dropping the log's triggers; it cannot seal it)
        so that no decision of the proposal reads in the log: the second decision is made, and its answer
        names the rule it made, not the first decision's sealed one."""
        self.delete_response()
        raw = sqlite3.connect(Path(self.db), isolation_level=None)
        try:
            for (trigger,) in raw.execute("SELECT name FROM sqlite_master WHERE type = 'trigger' AND "
                                          "tbl_name = 'audit_log'").fetchall():
                raw.execute(f'DROP TRIGGER "{trigger}"')
            raw.execute("UPDATE audit_log SET action = 'operator-edit' WHERE proposal_id = :id AND action = "
                        "'rejected'", {"id": self.asked.id})
        finally:
            raw.close()
        digest = json.loads(self.cli("proposals", "show", self.asked.id, "--json"))["digest"]
        done = self.run_cli("proposals", "approve", self.asked.short_id, "--digest", digest, "--remember", "all",
                            "--for", "1d", "--json")
        if done.returncode != 0:  # refused for the rewritten log: nothing decided, nothing misnamed
            self.assertIsNone(self.grants.for_proposal(self.asked.id))
            return
        (said,) = json.loads(done.stdout)
        made = [rule for rule in self.grants.rules() if rule.proposal_id == self.asked.id]
        self.assertEqual(len(made), 1)
        self.assertEqual(said["rule"]["id"], made[0].id)
        self.assertEqual(said["rule"]["effect"], "approve")
        self.assertEqual(said["ended_grants"], [])

    def test_nor_is_it_decided_again_by_a_standing_rule(self) -> None:
        """A standing rejection made now, which decides what is pending at once, does not decide it a second
        time either: before the fix the log held two decisions of it, the second naming the new rule."""
        self.delete_response()
        done = self.run_cli("rules", "add", "--bottle", "web-1", "--host", "pastebin.com", "--reject", "--yes",
                            "--json")
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual(json.loads(done.stdout)["decided_now"], [])
        statuses = ", ".join(f"'{status}'" for status in RESPONSE_STATUSES)
        raw = sqlite3.connect(Path(self.db))
        try:
            decisions = raw.execute(f"SELECT action FROM audit_log WHERE proposal_id = :id AND action IN ({statuses})",
                                    {"id": self.asked.id}).fetchall()
        finally:
            raw.close()
        self.assertEqual(decisions, [("rejected",)])
