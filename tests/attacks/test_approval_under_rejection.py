"""An operator's approval of what a standing rejection rejects from now on: refused, never a grant beside the rule.

A standing rejection ("never pastebin.com for web-1") decides every proposal
that asks for any of it, and ends every live grant that lets any of it
through, as it is made. But it decides a proposal only when a host process
looks (the relay's or the dashboard's keeper, a list): a sidecar on the
mount files without the key. Before the fix next to these tests, 'proposals
show ID' showed such a proposal as pending, with the command that approves
it, and 'proposals approve ID --digest D' recorded the approval without a
word of the rule: a grant of pastebin.com for 7 days, live beside "rejects
pastebin.com for web-1, for good" in 'rules list', and the sidecar let the
agent through. The same happened to a second operator whose approval
landed between the rule's commit and the first look after it (the
dashboard's page and the TUI read the queue before the rule was made).
Now an operator's approval or modification is refused, in its own
transaction, when a standing rejection the audit log proves rejects what it
would grant (``audit.rule_proofs.rejecting_rule``), naming the rule; the next
look lets the rule decide it.
"""

from __future__ import annotations

import json
import subprocess
import sys

from bot_bottle.decisions import decide
from bot_bottle.errors import AlreadyDecided
from bot_bottle.grant_records import rule_decider
from bot_bottle.records import EFFECT_REJECT, STATUS_APPROVED, STATUS_MODIFIED, STATUS_REJECTED, TOOL_EGRESS_ALLOW
from tests.helpers.host_grants import HostGrantsCase
from tests.helpers.support import REPO

PASTE = '{"host": "pastebin.com"}'


class ApprovalUnderRejectionTest(HostGrantsCase):
    def setUp(self) -> None:
        super().setUp()
        made = json.loads(self.cli("rules", "add", "--bottle", "web-1", "--host", "pastebin.com", "--method", "POST",
                                   "--reject", "--notes", "never post there", "--json"))
        self.rule = str((made.get("rule") or made)["id"] if isinstance(made, dict) else made[0]["id"])

    def sidecar_files(self, payload: str, bottle: str = "web-1") -> str:
        """What the bottle's sidecar on the mount files, in a process of its own (no audit key: no rule applied)."""
        done = subprocess.run(
            [sys.executable, "-c", "import sys\nfrom bot_bottle.queue_store import QueueStore\n"
             "with QueueStore(sys.argv[1], migrate_schema=False) as store:\n"
             "    print(store.for_bottle(sys.argv[2]).submit('egress-allow', sys.argv[3], 'to share a log').id)",
             str(self.db), bottle, payload],
            cwd=REPO, capture_output=True, text=True, timeout=60, check=True)
        return done.stdout.strip()

    def test_approving_by_id_what_a_standing_rejection_rejects_is_refused(self) -> None:
        asked = self.sidecar_files(PASTE)
        digest = json.loads(self.cli("proposals", "show", asked, "--json"))["digest"]
        done = self.run_cli("proposals", "approve", asked[:8], "--digest", digest)
        self.assertEqual(done.returncode, 1, done.stdout)
        self.assertIn(f"rule {self.rule[:8]} rejects", done.stderr)
        self.assertIsNone(self.grants.for_proposal(asked), "no grant beside the rule")
        self.assertFalse(self.lets_through("web-1", "pastebin.com", "POST", "/api"))
        listed = self.run_cli("proposals", "list")  # the next look: the rule decides it
        self.assertEqual(listed.returncode, 0, listed.stderr)
        response = self.store.response(asked)
        assert response is not None
        self.assertEqual((response.status, response.decided_by), (STATUS_REJECTED, rule_decider(self.rule)))

    def test_between_the_rules_commit_and_its_first_look(self) -> None:
        """A second operator's page (the dashboard's, the TUI's) read the proposal before another made the rule, and
        the approval lands before any look after it (``decide(shown=...)``, as they decide)."""
        asked = self.sidecar_files('{"host": "pastebin.com", "methods": ["GET", "POST"]}')
        shown = self.store.get(asked)  # the operator's page, read before the rule below
        self.grants.add_rule(queue_key=None, tool=TOOL_EGRESS_ALLOW, subject={"host": "pastebin.com",
                             "methods": ["GET"], "paths": []}, pattern=False, effect=EFFECT_REJECT,
                             notes="no reads either", ends_at=None, created_by="ann@elsewhere")
        with self.assertRaises(AlreadyDecided) as refused:
            decide(asked, STATUS_APPROVED, store=self.store, shown=shown)
        self.assertIn("rejects", str(refused.exception))
        self.assertIsNone(self.store.response(asked), "nothing recorded")
        self.assertIsNone(self.grants.for_proposal(asked))

    def test_what_no_rejection_rejects_is_approved_as_before(self) -> None:
        """A modification out of what the rule rejects, another bottle's ask, another host: approved."""
        asked = self.sidecar_files(PASTE)
        decide(asked, STATUS_MODIFIED, final_file='{"host": "pastebin.com", "methods": ["GET"]}', store=self.store,
               shown=self.store.get(asked))
        self.assertTrue(self.lets_through("web-1", "pastebin.com", "GET", "/raw/1"))
        self.assertFalse(self.lets_through("web-1", "pastebin.com", "POST", "/api"))
        for bottle, payload in (("web-2", PASTE), ("web-1", '{"host": "docs.python.org"}')):
            other = self.sidecar_files(payload, bottle)
            decide(other, STATUS_APPROVED, store=self.store, shown=self.store.get(other))
            self.assertIsNotNone(self.grants.for_proposal(other))

    def test_a_rejection_the_log_does_not_prove_refuses_nothing(self) -> None:
        """A rule row a sidecar wrote (no sealed entry) decides nothing, and so refuses no approval either."""
        self.cli("rules", "revoke", self.rule[:8], "--reason", "for now")
        self.raw("INSERT INTO rules (id, queue_key, tool, subject, subject_sha256, pattern, effect, notes, created_at, "
                 "ends_at, created_by, proposal_id, audit_seq) SELECT :id, queue_key, tool, subject, subject_sha256, "
                 "pattern, effect, notes, created_at, NULL, created_by, NULL, audit_seq + 1000 FROM rules "
                 "WHERE id = :old",
                 {"id": "ab" * 16, "old": self.rule}, unchecked=True)
        asked = self.sidecar_files(PASTE)
        decide(asked, STATUS_APPROVED, store=self.store, shown=self.store.get(asked))
        self.assertIsNotNone(self.grants.for_proposal(asked))
