"""Review 41: a sidecar rewrites an old, sealed audit entry into the ``rule-added`` entry of its own proposal.

The screens name the rule a remembered decision made (``proposals approve|reject --remember``, the TUI's
``+bottle``, the dashboard's remember) from the first ``rule-added`` entry naming the proposal, and what that
rule decided at once, and ended, from its id. A sidecar on the mount can drop the file's triggers and rewrite
any entry (it cannot seal one): an entry written long before the decision then comes first. Each test
performs the attack on the real database, then decides with the real command line in a process of its own.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path

from bot_bottle.records import ACTION_RULE_ADDED, TOOL_EGRESS_ALLOW
from tests.helpers.host_grants import HostGrantsCase


class RewrittenRuleEntryTest(HostGrantsCase):
    """The operator's standing rejection of pastebin.com stands; the agent's proposal waits, and an earlier
    decision's sealed entry is rewritten to claim, for that proposal, that rejection's id."""

    def setUp(self) -> None:
        super().setUp()
        self.paste = self.approve("web-2", {"host": "pastebin.com"})  # a grant the rejection below ends
        done = self.run_cli("rules", "add", "--all-bottles", "--host", "pastebin.com", "--reject", "--json")
        self.assertEqual(done.returncode, 0, done.stderr)
        self.rejection = json.loads(done.stdout)
        self.assertEqual(self.rejection["ended_grants"], [self.paste])
        self.old = self.store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "pypi.org"}', "pip")
        self.cli("proposals", "reject", self.old.short_id, "--reason", "not now")

    def claim(self, proposal_id: str) -> None:
        """What the sidecar writes with its own connection: the old decision's entry, rewritten (its hash too,
        which anyone can compute; never its seal) into a ``rule-added`` for ``proposal_id`` naming the
        operator's standing rejection."""
        raw = sqlite3.connect(Path(self.db), isolation_level=None)
        try:
            for (trigger,) in raw.execute("SELECT name FROM sqlite_master WHERE type = 'trigger' AND "
                                          "tbl_name = 'audit_log'").fetchall():
                raw.execute(f'DROP TRIGGER "{trigger}"')
            record = {"id": self.rejection["id"], "bottle": "web-1", "tool": TOOL_EGRESS_ALLOW, "effect": "approve",
                      "ends_at": "2999-01-01T00:00:00.000000Z", "subject": {"host": "docs.python.org"}}
            raw.execute("UPDATE audit_log SET action = :added, proposal_id = :proposal, details = :details "
                        "WHERE proposal_id = :old", {"added": ACTION_RULE_ADDED, "proposal": proposal_id,
                                                     "details": json.dumps({"rule": record}), "old": self.old.id})
        finally:
            raw.close()

    def test_an_approval_names_the_rule_it_made_and_what_that_decided(self) -> None:
        """Before the fix, 'proposals approve ID --remember all' named the operator's standing rejection as the
        rule it made ("'rules revoke <it>' ends it": following that ends the rejection, and leaves the new
        approval standing), and named none of the pending proposals the real rule approved at once."""
        asked = self.store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "docs.python.org"}', "the docs")
        other = self.store.submit("web-3", TOOL_EGRESS_ALLOW, '{"host": "docs.python.org"}', "the docs too")
        self.claim(asked.id)
        digest = json.loads(self.cli("proposals", "show", asked.id, "--json"))["digest"]
        said = self.decide_json("approve", asked.short_id, "--digest", digest, "--remember", "all", "--for", "1d")
        made = [rule for rule in self.grants.rules() if rule.proposal_id == asked.id]
        self.assertEqual(len(made), 1)
        rule = said["rule"]
        assert isinstance(rule, dict)
        self.assertEqual(rule["id"], made[0].id)
        self.assertNotEqual(rule["id"], self.rejection["id"])
        self.assertEqual(said["decided_now"], [other.id])

    def test_a_rejection_names_the_grants_it_ended_not_another_rules(self) -> None:
        """Before the fix, 'proposals reject ID --remember bottle' named, as its rule and the grants it ended, the
        standing rejection of pastebin.com and the grant that one ended (another bottle's), and not the grant
        of web-1's it did end."""
        mine = self.approve("web-1", {"host": "evil.example"})
        asked = self.store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "evil.example", "methods": ["POST"]}', "x")
        self.claim(asked.id)
        said = self.decide_json("reject", asked.short_id, "--reason", "no", "--remember", "bottle")
        rule = said["rule"]
        assert isinstance(rule, dict)
        self.assertNotEqual(rule["id"], self.rejection["id"])
        self.assertEqual(said["ended_grants"], [mine])
        self.assertEqual([grant.id for grant in self.grants.ended_by_decision(asked.id)], [mine])


class ForgedRuleResponseTest(HostGrantsCase):
    """A sidecar watches the file for the rule a remembered decision makes, and at once writes a response naming
    that rule for a proposal of its own the rule does not match (which then leaves the pending list)."""

    def test_decided_now_names_only_what_the_log_proves_the_rule_decided(self) -> None:
        """Before the fix, ``decided_now`` took a response row's ``decided_by`` (the file's word) for what the new
        rule decided: 'proposals reject ID --remember all' said it rejected the agent's other proposal, which
        no rule and no one had decided."""
        asked = self.store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "pastebin.com"}', "a paste")
        mine = self.store.submit("web-2", TOOL_EGRESS_ALLOW, '{"host": "evil.example"}', "something else")
        written: list[str] = []
        stop = threading.Event()

        def sidecar() -> None:
            raw = sqlite3.connect(Path(self.db), isolation_level=None, timeout=30)
            try:
                while not stop.is_set():
                    row = raw.execute("SELECT id FROM rules WHERE proposal_id = ?", (asked.id,)).fetchone()
                    if row is not None:
                        raw.execute("INSERT INTO responses (proposal_id, status, notes, final_file, decided_by, "
                                    "decided_at) VALUES (?, 'rejected', 'standing rule', NULL, ?, ?)",
                                    (mine.id, f"rule {row[0]}", "2026-01-01T00:00:00.000000Z"))
                        written.append(row[0])
                        return
                    time.sleep(0.001)
            finally:
                raw.close()

        thread = threading.Thread(target=sidecar)
        thread.start()
        try:
            done = self.run_cli("proposals", "reject", asked.short_id, "--reason", "no pastes", "--remember", "all",
                                "--json")
        finally:
            stop.set()
            thread.join(10)
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual(len(written), 1, "the sidecar did not see the rule")
        (said,) = json.loads(done.stdout)
        self.assertEqual(said["decided_now"], [])


class RewrittenRevocationEntryTest(HostGrantsCase):
    """After a standing rejection is made, the sidecar rewrites a later sealed entry into a ``grant-revoked``
    naming that rejection and a grant it did not end."""

    def test_a_rewritten_entry_cannot_name_a_live_grant_ended(self) -> None:
        """Before the fix, ``ended_by_rule_in`` took every ``grant-revoked`` entry after the rule's naming it, the
        file's word: the dashboard's page after the decision (read whenever it is loaded) and 'rules add' said the
        rejection ended web-2's grant of docs.python.org, which still lets that bottle through."""
        paste = self.approve("web-1", {"host": "pastebin.com"})
        asked = self.store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "pastebin.com", "methods": ["PUT"]}', "x")
        done = self.run_cli("proposals", "reject", asked.short_id, "--reason", "no", "--remember", "bottle", "--json")
        self.assertEqual(done.returncode, 0, done.stderr)
        (said,) = json.loads(done.stdout)
        self.assertEqual(said["ended_grants"], [paste])
        kept = self.approve("web-2", {"host": "docs.python.org"})  # an entry after the rule's, rewritten below
        raw = sqlite3.connect(Path(self.db), isolation_level=None)
        try:
            for (trigger,) in raw.execute("SELECT name FROM sqlite_master WHERE type = 'trigger' AND "
                                          "tbl_name = 'audit_log'").fetchall():
                raw.execute(f'DROP TRIGGER "{trigger}"')
            raw.execute("UPDATE audit_log SET action = 'grant-revoked', details = :details WHERE seq = "
                        "(SELECT max(seq) FROM audit_log)",
                        {"details": json.dumps({"grant": kept, "rule_id": said["rule"]["id"]})})
        finally:
            raw.close()
        self.assertIn(kept, {grant.id for grant in self.grants.listing()})  # still in force
        self.assertEqual([grant.id for grant in self.grants.ended_by_decision(asked.id)], [paste])
