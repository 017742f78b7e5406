"""Attack: entries a sidecar writes into a log no anchor covers yet get sealed by the host's next decision.

The host seals, at its next append, entries that have no seal when the log
has no seal and no anchor at all: that is how a log from before sealing
began is taken in. A sidecar on the mount could make its own entries look
like that: on a new database, before the operator's first decision, or
after ``audit retire-anchor`` (with every seal deleted). It wrote a rule row
and its ``rule-added`` entry (hash and all: it can compute those); the
operator's next decision sealed the entry, and the forged rule approved
``evil.example`` for every bottle, with ``audit verify`` calling the log
whole. Now the host records outside the database that it saw the log empty
(or retired its anchor), and from then on an entry without a seal is one it
did not write: every decision is refused, saying so, and the rule decides nothing.
"""

from __future__ import annotations

import sqlite3

from bot_bottle.decisions import decide
from bot_bottle.errors import AuditTampered
from bot_bottle.records import TOOL_EGRESS_ALLOW
from bot_bottle.standing import keep
from tests.attacks.test_forged_rules import forge_rule_and_entry
from tests.cli.test_proposals_cmds import CliTestCase


class UnsealedEntriesAtTheStartTest(CliTestCase):
    def sidecar(self) -> sqlite3.Connection:
        raw = sqlite3.connect(self.store.db.path, isolation_level=None)
        self.addCleanup(raw.close)
        return raw

    def assert_forgery_refused(self, rule_id: str) -> None:
        with self.assertRaises(AuditTampered) as refused:
            decide(self.store.submit("web-8", TOOL_EGRESS_ALLOW, '{"host": "x.org"}', "x").id, "rejected", "no",
                   store=self.store)
        self.assertIn("have no seal: they were written without the host's key", str(refused.exception))
        evil = self.store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "evil.example"}', "need it").id
        unproven: dict[str, str] = {}
        keep(self.store, unproven=unproven.__setitem__)
        self.assertIsNone(self.store.response(evil), "the forged rule decided")
        self.assertIn(rule_id, unproven)
        code, out, _ = self.cli("audit", "verify")
        self.assertNotEqual(code, 0, f"the forged entry was called whole: {out}")
    def test_a_new_database_before_its_first_decision(self) -> None:
        self.assert_forgery_refused(forge_rule_and_entry(self.sidecar())[0])

    def test_after_the_anchor_is_retired_and_the_seals_deleted(self) -> None:
        decide(self.store.submit("web-9", TOOL_EGRESS_ALLOW, '{"host": "pypi.org"}', "pip").id, "rejected", "no",
               store=self.store)
        code, _, err = self.cli("audit", "retire-anchor", "--yes")
        self.assertEqual(code, 0, err)
        raw = self.sidecar()
        raw.execute("DROP TRIGGER audit_seal_no_delete")
        raw.execute("DELETE FROM audit_seal")
        self.assert_forgery_refused(forge_rule_and_entry(raw)[0])
