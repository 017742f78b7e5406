"""'grants revoke' names the rule that approves the same again as the keeper would find it (review 34).

Measured before the fix next to these tests, with the operator's real
command line and web-1's real sidecar:

- a grant the operator approved by hand, while an approving rule for the
  same host stood (a pattern, ``*.python.org``, typed afterwards): revoking
  it said only "revoked ID", and the agent's next ask was approved at once
  by that rule, the revocation undone without a word;
- a grant whose row a sidecar rewrote to name another, unrelated rule of
  the operator's as its maker: revoking it said that rule "still approves
  the same again ... the bottle's next ask is approved at once", and named
  it to revoke, while that rule approves nothing of what was revoked (the
  next ask waits for the operator).
"""

from __future__ import annotations

import json
import sqlite3

from bot_bottle.decisions import decide
from bot_bottle.paths import host_db_path
from bot_bottle.queue_store import QueueStore
from bot_bottle.records import STATUS_APPROVED, TOOL_EGRESS_ALLOW
from tests.attacks.test_address_forms import AddressFormsCase
from tests.attacks.test_standing_rejections import call

ASK = {"host": "docs.python.org", "justification": "the docs"}


class RevokedGrantRulesTest(AddressFormsCase):
    """A host database and web-1's real sidecar to file through (``AddressFormsCase``)."""

    def granted_by_hand(self) -> str:
        """The agent asks for docs.python.org through its sidecar; the operator approves it: the grant's id."""
        self.assertEqual(call(self.url, TOOL_EGRESS_ALLOW, ASK)["status"], "pending")
        with QueueStore() as store:
            (proposal,) = store.pending("web-1")
            decide(proposal.id, STATUS_APPROVED, store=store)
        (grant,) = json.loads(self.run_cli("grants", "list", "--json").stdout)
        self.assertIsNone(grant["rule_id"])
        return str(grant["id"])

    def rule(self, host: str) -> str:
        added = self.run_cli("rules", "add", "--bottle", "web-1", "--host", host, "--for", "1d", "--json")
        self.assertEqual(added.returncode, 0, added.stderr)
        return str(json.loads(added.stdout)["id"])

    def test_a_standing_rule_that_approves_it_again_is_named(self) -> None:
        grant = self.granted_by_hand()
        rule = self.rule("*.python.org")
        revoked = self.run_cli("grants", "revoke", grant[:8], "--reason", "enough")
        self.assertEqual(revoked.returncode, 0, revoked.stderr)
        self.assertIn(f"rule {rule[:8]}", revoked.stdout)
        self.assertIn("still approves the same again for web-1", revoked.stdout)
        self.assertIn(f"'rules revoke {rule[:8]}'", revoked.stdout)
        # As said: the agent's next ask is approved at once, by that rule.
        asked = call(self.url, TOOL_EGRESS_ALLOW, ASK)
        self.run_cli("proposals", "list")  # a host process applies the rules
        (again,) = json.loads(self.run_cli("grants", "list", "--json").stdout)
        self.assertEqual(again["rule_id"], rule, asked)
        as_json = self.run_cli("grants", "revoke", again["id"][:8], "--reason", "again", "--json")
        self.assertEqual(json.loads(as_json.stdout)["rule_in_force"], rule)

    def test_a_rule_a_forged_row_names_that_approves_nothing_of_it_is_not_named(self) -> None:
        grant = self.granted_by_hand()
        other = self.rule("pypi.org")
        with sqlite3.connect(host_db_path()) as sidecar:  # the sidecar's write: the grant "made" by that rule
            (trigger,) = sidecar.execute("SELECT sql FROM sqlite_master WHERE name = 'grants_immutable'").fetchone()
            sidecar.execute("DROP TRIGGER grants_immutable")
            sidecar.execute("UPDATE grants SET rule_id = ? WHERE id = ?", (other, grant))
            sidecar.execute(trigger)
        revoked = self.run_cli("grants", "revoke", grant[:8], "--reason", "enough")
        self.assertEqual(revoked.returncode, 0, revoked.stderr)
        self.assertNotIn("approves the same again", revoked.stdout)
        self.assertNotIn(other[:8], revoked.stdout)
        # True to what happens: the next ask waits for the operator.
        self.assertEqual(call(self.url, TOOL_EGRESS_ALLOW, ASK)["status"], "pending")
        listed = self.run_cli("proposals", "list", "--json")
        self.assertEqual([p["status"] for p in json.loads(listed.stdout)], ["pending"])
