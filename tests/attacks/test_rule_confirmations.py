"""An approving host pattern approves only the names under it that need no confirmation beyond what the operator
confirmed when making it, as recorded then, not as the badges are read later.

The hole (left in the twelfth sitting's note): what a pattern was confirmed
for was read again from the pattern with each version's code. ``*.staging``,
added plain before ``.staging`` was read as a name only a private resolver
answers, counted afterwards as confirmed for ``internal``, and approved
``db.staging`` (a host inside the operator's network) at once, grant and
all, though nobody was ever asked about it. Now the rule's sealed entry and
its row record the kinds it was confirmed for (migration 0009), a name that
needs more waits for the operator, a rule made before that record fails
closed and says so, and a row a sidecar rewrote to widen them decides
nothing.
"""

from __future__ import annotations

import json
from typing import Any
from unittest import mock

from bot_bottle.audit import forensics
from bot_bottle.connection import connect
from bot_bottle.grant_records import Rule
from bot_bottle.queue_store import QueueStore
from bot_bottle.records import EFFECT_APPROVE, STATUS_APPROVED, TOOL_EGRESS_ALLOW
from bot_bottle.schema import migrate
from bot_bottle.standing import keep, rules_in_force
from bot_bottle.timestamps import later, utc_now
from tests.helpers.host_grants import HostGrantsCase


class RuleConfirmationsTest(HostGrantsCase):
    def setUp(self) -> None:
        super().setUp()
        self.asked = 0

    def decided(self, host: str) -> str | None:
        """The status a rule gave web-1's ask for ``host`` at the next look, or None: it waits for the operator."""
        self.asked += 1  # each ask its own path: an identical pending one would be the same proposal
        proposal = self.store.submit("web-1", TOOL_EGRESS_ALLOW,
                                     json.dumps({"host": host, "paths": [f"/p{self.asked}/"]}), "for the build")
        keep(self.store)
        response = self.store.response(proposal.id)
        return response.status if response is not None else None

    def add_pattern(self, host: str, kinds: Any) -> Rule:
        """An approving pattern for every bottle as a bot-bottle that read its subject's kinds as ``kinds`` made it
        (None: one from before what a rule was confirmed for was recorded, whose entry and row hold nothing)."""
        now = utc_now()
        with mock.patch("bot_bottle.grants.subject_kinds", return_value=kinds):
            return self.grants.add_rule(queue_key=None, tool=TOOL_EGRESS_ALLOW, pattern=True, effect=EFFECT_APPROVE,
                                        subject={"host": host, "methods": [], "paths": []}, notes="staging hosts",
                                        ends_at=later(now, 86400), created_by="ann", now=now)

    def listed(self) -> dict[str, dict[str, Any]]:
        return {str(item["id"]): item for item in json.loads(self.cli("rules", "list", "--json"))}

    def test_a_pattern_made_plain_does_not_approve_a_name_read_as_internal_later(self) -> None:
        rule = self.add_pattern("*.staging", [])  # plain, as the badges were read when it was made
        self.assertEqual(rule.confirmed_kinds, [])
        self.assertIsNone(self.decided("db.staging"), "BROKE before the fix: the rule approved db.staging")
        self.assertTrue(self.listed()[rule.id]["decides"])
        # Made today, it is asked about as reaching inside (a typed yes, or --yes), and approves such names.
        added = json.loads(self.cli("rules", "add", "--all-bottles", "--host", "*.staging", "--for", "1d",
                                    "--yes", "--json"))
        self.assertEqual(added["confirmed"], ["widens", "internal"])
        self.assertEqual(self.decided("cache.staging"), STATUS_APPROVED)

    def test_a_pattern_from_before_the_record_fails_closed_and_says_so(self) -> None:
        rule = self.add_pattern("*.corp.internal", None)
        self.assertIsNone(rule.confirmed_kinds)
        self.assertIsNone(self.decided("db.corp.internal"))  # before: approved, as today's badges read the pattern
        shown = self.listed()[rule.id]
        self.assertTrue(shown["decides"])
        self.assertIn("wait for you", str(shown["unconfirmed"]))
        self.assertIn(f"note: rule {rule.short_id}: made before what a rule was confirmed for was recorded",
                      self.cli("rules", "list"))
        plain = self.add_pattern("*.example.com", None)  # a pattern with no badge of its own: nothing to say
        self.assertEqual(self.listed()[plain.id]["unconfirmed"], "")
        self.assertEqual(self.decided("docs.example.com"), STATUS_APPROVED)

    def test_a_row_rewritten_to_widen_what_it_was_confirmed_for_decides_nothing(self) -> None:
        added = json.loads(self.cli("rules", "add", "--all-bottles", "--host", "*.example.com", "--for", "1d",
                                    "--json"))
        self.assertEqual(added["confirmed"], [])
        self.assertEqual(self.decided("docs.example.com"), STATUS_APPROVED)
        # A sidecar on the mount drops the guard and widens the row (the sealed entry it cannot change).
        self.raw("DROP TRIGGER rules_immutable")
        self.raw("UPDATE rules SET confirmed = :wide WHERE id = :id",
                 {"wide": '["internal","look-alike","widens"]', "id": added["id"]})
        self.assertIsNone(self.decided("10-0-0-5.example.com"), "the widened row approved a look-alike inside")
        self.assertIsNone(self.decided("docs.example.com"), "a rule its entry does not prove decides nothing")
        shown = self.listed()[added["id"]]
        self.assertFalse(shown["decides"])
        self.assertIn("differs from audit entry", str(shown["note"]))
        verify = self.run_cli("audit", "verify")
        self.assertNotEqual(verify.returncode, 0)
        self.assertIn(f"rule {added['id']} differs from audit entry", verify.stdout + verify.stderr)

    def test_a_downgrade_and_upgrade_keep_what_each_rule_was_confirmed_for(self) -> None:
        added = json.loads(self.cli("rules", "add", "--all-bottles", "--host", "*.corp.internal", "--for", "1d",
                                    "--yes", "--json"))
        self.store.close()
        self.cli("db", "downgrade", "--to", "8")
        self.cli("db", "upgrade")
        shown = self.listed()[added["id"]]
        self.assertEqual((shown["decides"], shown["confirmed"]), (True, ["internal"]))
        self.assertEqual(self.run_cli("audit", "verify").returncode, 0)
        self.store = QueueStore(self.db)  # the file was upgraded under the one setUp opened
        self.addCleanup(self.store.close)
        self.assertEqual(self.decided("db.corp.internal"), STATUS_APPROVED)


class HostileFileTest(HostGrantsCase):
    """What a sidecar prepares in the file for the proof and the 0009 migration (review 19)."""

    def test_an_entry_larger_than_any_rules_is_never_read_for_a_proof(self) -> None:
        """A thousand forged rows naming one 5 MB entry held every look for 8 s, each row parsing and hashing it."""
        added = json.loads(self.cli("rules", "add", "--all-bottles", "--host", "pastebin.com", "--reject", "--json"))
        seq = int(added["audit_seq"])
        self.raw("DROP TRIGGER audit_log_chain")
        self.raw("INSERT INTO audit_log (ts, queue_key, action, tool, proposal_id, actor, notes, diff, details, "
                 "prev_hash, hash) SELECT ts, queue_key, action, tool, proposal_id, actor, notes, diff, :big, "
                 "hash, lower(hex(randomblob(32))) FROM audit_log WHERE seq = :seq",
                 {"big": json.dumps({"rule": {"padding": "x" * 300_000}}), "seq": seq}, unchecked=True)
        read: list[int] = []
        real = forensics.stored_details

        def counted(text: object) -> Any:
            read.append(len(text) if isinstance(text, str) else 0)
            return real(text)

        with mock.patch.object(forensics, "stored_details", counted):
            # (In a table rebuilt without UNIQUE(audit_seq), a thousand such rows: each one is a look's work.)
            self.raw("INSERT INTO rules (id, queue_key, tool, subject, subject_sha256, pattern, effect, notes, "
                     "created_at, ends_at, created_by, audit_seq) SELECT :id, queue_key, tool, subject, "
                     "subject_sha256, pattern, effect, notes, created_at, ends_at, created_by, "
                     "(SELECT max(seq) FROM audit_log) FROM rules WHERE id = :real",
                     {"id": "f" * 32, "real": added["id"]}, unchecked=True)
            for _ in range(3):  # three looks
                keep(self.store)
        self.assertTrue(read, "the proof ran")
        # Read once by the log's index of what it records (each entry once a process), never by a look's proof.
        self.assertLessEqual(sum(1 for size in read if size > 4 * 65536), 1, "the proof parsed an oversized entry")
        shown = {item.rule.id: item for item in rules_in_force(self.store)}
        self.assertTrue(shown[added["id"]].decides)
        self.assertFalse(shown["f" * 32].decides)
        self.assertIn("differs from audit entry", shown["f" * 32].note)

    def test_a_dropped_guard_does_not_stop_the_upgrade(self) -> None:
        """A sidecar dropped 'rules_immutable' at version 8: the upgrade to 9 failed at its DROP TRIGGER."""
        path = self.tmp / "old.db"
        conn = connect(path)
        try:
            migrate.upgrade(conn, 8, backup=False)
            conn.execute("DROP TRIGGER rules_immutable")
            migrate.upgrade(conn, backup=False)
            self.assertEqual(conn.execute("PRAGMA user_version").fetchone()[0], len(migrate.discover()))
            self.assertIsNotNone(conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'trigger' "
                                              "AND name = 'rules_immutable'").fetchone())
        finally:
            conn.close()
