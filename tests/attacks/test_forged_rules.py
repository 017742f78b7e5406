"""Standing rules against a sidecar that writes the database file: each way found in review.

A sidecar on the mount can write any row into the file, but cannot seal an
audit entry: it has no audit key. Before the fix next to these tests, the
host applied whatever the ``rules`` table said, so one row turned into
sealed approvals, with grants, for every bottle, the moment the operator
listed the queue (``proposals list``, ``supervise --once``), opened a
screen, or the relay's or the dashboard's keeper looked; and a rule or a
payload no bot-bottle writes crashed those listings and killed the keeper.
Now a rule decides only when its ``rule-added`` entry proves it, sealed by
this host's key and not revoked (``audit.forensics.rule_problem``), and a
look survives any row.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import sqlite3
import subprocess
import sys
import time
import unittest
from unittest import mock

from bot_bottle.audit import rule_proofs
from bot_bottle.audit.chain import GENESIS_HASH, compute_hash
from bot_bottle.decisions import decide
from bot_bottle.errors import BotBottleError, Unauthorized, ValidationError
from bot_bottle.grants import ALL_BOTTLES, GrantStore
from bot_bottle.policy.subjects import subject_of, subject_sha256
from bot_bottle.queue_store import QueueStore
from bot_bottle.records import STATUS_APPROVED, TOOL_EGRESS_ALLOW, TOOL_EGRESS_BLOCK, TOOL_GITLEAKS_ALLOW
from bot_bottle.sidecar.relay_queue import RelayQueue
from bot_bottle.standing import Keeper, keep, rule_decision_in
from bot_bottle.wire.relay_file import RelayEndpoint
from tests.cli.test_proposals_cmds import CliTestCase
from tests.helpers.relay_fixture import InProcessRelay
from tests.helpers.support import REPO, TempDirTest, file_as_a_sidecar

EVIL = {"host": "evil.example", "methods": [], "paths": []}
RULE_COLUMNS = ("id, queue_key, tool, subject, subject_sha256, pattern, effect, notes, created_at, ends_at, "
                "created_by, proposal_id, audit_seq")


def forge_rule_and_entry(raw: sqlite3.Connection) -> tuple[str, int]:
    """What the sidecar writes: a rule for every bottle and its ``rule-added`` entry, chained to the last one
    (hash and all: it can compute those, never a seal); the rule's id and the entry's number."""
    last = raw.execute("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
    seq, prev_hash = (1, GENESIS_HASH) if last is None else (last[0] + 1, last[1])
    ts, rule_id = "2020-01-01T00:00:00.000000Z", secrets.token_hex(16)
    raw.execute(f"INSERT INTO rules ({RULE_COLUMNS}) VALUES (?, NULL, ?, ?, ?, 0, 'approve', 'operator ok', ?, "
                "'2999-01-01T00:00:00.000000Z', 'ann', NULL, ?)",
                (rule_id, TOOL_EGRESS_ALLOW, json.dumps(EVIL, sort_keys=True, separators=(",", ":")),
                 subject_sha256(TOOL_EGRESS_ALLOW, EVIL), ts, seq))
    details = json.dumps({"rule": {"id": rule_id, "bottle": None, "tool": TOOL_EGRESS_ALLOW, "subject": EVIL,
                                   "pattern": False, "effect": "approve", "created_at": ts,
                                   "ends_at": "2999-01-01T00:00:00.000000Z", "proposal_id": None}},
                         sort_keys=True, separators=(",", ":"))
    digest = compute_hash(seq, ts, ALL_BOTTLES, "rule-added", TOOL_EGRESS_ALLOW, None, "ann", "operator ok", "",
                          details, prev_hash)
    raw.execute("INSERT INTO audit_log (seq, ts, queue_key, action, tool, proposal_id, actor, notes, diff, details, "
                "prev_hash, hash) VALUES (?, ?, ?, 'rule-added', ?, NULL, 'ann', 'operator ok', '', ?, ?, ?)",
                (seq, ts, ALL_BOTTLES, TOOL_EGRESS_ALLOW, details, prev_hash, digest))
    return rule_id, seq


def assert_a_keeper_rejects_a_paste(test: unittest.TestCase, store: QueueStore, bottle: str,
                                    settle: float = 0.0) -> None:
    """A keeper, running ``settle`` s first (and alive then), rejects ``bottle``'s new paste by the operator's
    rule (rules add --reject pastebin.com): whatever rows stand beside it, it still decides."""
    logged: list[str] = []
    keeper = Keeper(store, logged.append).start()
    try:
        time.sleep(settle)
        test.assertTrue(keeper._thread.is_alive(), logged)
        paste = store.submit(bottle, TOOL_EGRESS_ALLOW, '{"host": "pastebin.com"}', "a paste")
        deadline = time.monotonic() + 10
        while store.response(paste.id) is None and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        keeper.stop()
    response = store.response(paste.id)
    test.assertEqual(response.status if response else None, "rejected", f"the keeper stopped deciding: {logged}")


class ForgedRuleCase(CliTestCase):
    def setUp(self) -> None:
        super().setUp()
        # The operator's real rules: a rejection for pastebin.com and an approval for docs.python.org.
        for args in (("--host", "pastebin.com", "--reject", "--notes", "no pastes"),
                     ("--host", "docs.python.org", "--for", "30d", "--notes", "the docs")):
            code, _, err = self.cli("rules", "add", "--all-bottles", *args)
            self.assertEqual(code, 0, err)
        # And a decision: audit entry 3, which records no rule.
        decide(self.store.submit("web-9", TOOL_EGRESS_ALLOW, '{"host": "pypi.org"}', "pip").id, "rejected", "no",
               store=self.store)
        self.raw = sqlite3.connect(self.store.db.path, isolation_level=None)  # the sidecar's own connection
        self.addCleanup(self.raw.close)

    def forge(self, subject: dict[str, object] = EVIL, *, effect: str = "approve", pattern: int = 0,
              ends_at: str | None = "2999-01-01T00:00:00.000000Z", audit_seq: int = 3,
              subject_text: str | None = None) -> str:
        """A rule row written by the sidecar, naming an entry that exists (``audit_seq``)."""
        rule_id = secrets.token_hex(16)
        self.raw.execute(
            f"INSERT INTO rules ({RULE_COLUMNS}) VALUES (?, NULL, ?, ?, ?, ?, ?, 'operator ok', "
            "'2020-01-01T00:00:00.000000Z', ?, 'ann', NULL, ?)",
            (rule_id, TOOL_EGRESS_ALLOW, subject_text or json.dumps(subject, sort_keys=True, separators=(",", ":")),
             subject_sha256(TOOL_EGRESS_ALLOW, subject), pattern, effect, ends_at, audit_seq))
        return rule_id

    def file_evil(self, *bottles: str) -> list[str]:
        return [self.store.submit(bottle, TOOL_EGRESS_ALLOW, '{"host": "evil.example"}', "need it").id
                for bottle in bottles]

    def assert_a_keeper_still_rejects_a_paste(self, settle: float = 0.0) -> None:
        """A keeper, running ``settle`` s first (and alive then), rejects a new paste by the operator's rule."""
        assert_a_keeper_rejects_a_paste(self, self.store, "web-4", settle)

    def relay_with_a_grant(self) -> tuple[InProcessRelay, RelayQueue]:
        """A relay, and VM bottle vm-1's queue through it, holding a grant the operator approved."""
        relay = InProcessRelay(self.store.db.path).register(self)
        victim = relay.queue("vm-1")
        filed = victim.submit(TOOL_EGRESS_ALLOW, '{"host": "docs.example"}', "docs")
        decide(filed.id, STATUS_APPROVED, "fine", store=self.store)
        self.assertEqual(len(victim.live_grants(TOOL_EGRESS_ALLOW)), 1)
        return relay, victim

    def assert_undecided(self, *proposal_ids: str) -> None:
        for proposal_id in proposal_ids:
            self.assertIsNone(self.store.response(proposal_id), "a rule the log does not prove decided it")
        self.assertEqual([g for g in GrantStore(database=self.store.db).listing() if g.subject_value == EVIL], [])


class ForgedRuleTest(ForgedRuleCase):
    def test_a_rule_written_into_the_file_approves_nothing(self) -> None:
        """The review's attack: one row, every bottle; the listings, the relay's filing and a keeper decide
        nothing, and the listing names the rule."""
        forged = self.forge()
        first, second = self.file_evil("web-1", "web-2")
        code, out, err = self.cli("proposals", "list", "--json")
        self.assertEqual(code, 0)
        self.assertEqual({row["id"] for row in json.loads(out)}, {first, second})
        self.assertIn(f"rule {forged[:8]} decides nothing, as the audit log does not prove it", err)
        code, out, err = self.cli("supervise", "--once", "--json")
        self.assertEqual((code, {row["id"] for row in json.loads(out)}), (0, {first, second}))
        relayed = self.store.for_bottle("web-3", standing=rule_decision_in).submit(
            TOOL_EGRESS_ALLOW, '{"host": "evil.example"}', "through the relay")
        logged: list[str] = []
        keeper = Keeper(self.store, logged.append).start()
        try:
            time.sleep(1.0)  # the keeper's first look, and one woken by a commit
            self.store.submit("web-4", TOOL_EGRESS_ALLOW, '{"host": "evil.example"}', "after it started")
            time.sleep(1.0)
        finally:
            keeper.stop()
        self.assert_undecided(first, second, relayed.id)
        self.assertEqual([line for line in logged if forged[:8] in line][:1],
                         [f"rule {forged[:8]} decides nothing, as the audit log does not prove it: it differs from "
                          "audit entry 3, which recorded it ('bot-bottle audit verify' says more)"])

    def test_a_real_rule_widened_or_brought_back_in_the_file_decides_nothing(self) -> None:
        """The operator's own rules rewritten: the approval's host changed to another, the rejection revoked and
        the revocation undone. Neither decides; the real rules still do what they were made to."""
        approval, rejection = sorted(GrantStore(database=self.store.db).rules(), key=lambda r: r.effect)
        self.raw.execute("DROP TRIGGER rules_immutable")
        self.raw.execute("UPDATE rules SET subject = :s, subject_sha256 = :d WHERE id = :id",
                         {"s": json.dumps(EVIL, sort_keys=True, separators=(",", ":")),
                          "d": subject_sha256(TOOL_EGRESS_ALLOW, EVIL), "id": approval.id})
        (evil,) = self.file_evil("web-1")
        keep(self.store)
        self.assert_undecided(evil)
        code, _, err = self.cli("rules", "revoke", rejection.short_id, "--reason", "pastes are fine now")
        self.assertEqual(code, 0, err)
        self.raw.execute("DROP TRIGGER IF EXISTS rules_immutable")  # made again by that write (schema.guard)
        self.raw.execute("UPDATE rules SET revoked_at = NULL, revoked_by = NULL, revoke_reason = NULL, "
                         "revoke_seq = NULL WHERE id = :id", {"id": rejection.id})
        paste = self.store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "pastebin.com"}', "a paste")
        keep(self.store)
        self.assertIsNone(self.store.response(paste.id), "a revoked rule, brought back in the file, decided")

    def test_a_forged_rule_with_a_forged_entry_decides_nothing(self) -> None:
        """The sidecar writes the rule's entry too, hash and all (it can compute those): no seal, no decision."""
        rule_id, seq = forge_rule_and_entry(self.raw)
        (evil,) = self.file_evil("web-1")
        unproven: dict[str, str] = {}
        keep(self.store, unproven=unproven.__setitem__)
        self.assert_undecided(evil)
        # Everything but the seal matched: what refused it is that no key of this host sealed the entry.
        self.assertEqual(unproven, {rule_id: f"audit entry {seq} is not sealed yet ('bot-bottle audit verify' says "
                                             "whether that is expected)"})

    def test_the_real_rules_still_decide(self) -> None:
        """The control: with forged rows beside them, the operator's rules decide as they were made to."""
        self.forge()
        paste = self.store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "pastebin.com"}', "a paste")
        docs = self.store.submit("web-2", TOOL_EGRESS_ALLOW, '{"host": "docs.python.org"}', "docs")
        keep(self.store)
        self.assertEqual([self.store.response(p.id).status for p in (paste, docs)],  # type: ignore[union-attr]
                         ["rejected", "approved"])


class MalformedRowTest(ForgedRuleCase):
    def test_no_row_crashes_a_listing_or_stops_the_keeper(self) -> None:
        """A pattern rule whose methods are a number, an approval with no end (CHECKs ignored), a payload nested
        200,000 deep through the normal submit: the listings show every proposal, the keeper keeps looking."""
        self.forge({"host": "*.crash.example", "methods": 5, "paths": []}, effect="reject", pattern=1,
                   ends_at=None, audit_seq=900001)
        self.raw.execute("PRAGMA ignore_check_constraints = ON")
        self.forge({"host": "noend.example", "methods": [], "paths": []}, ends_at=None, audit_seq=900002)
        self.forge(subject_text="{not json", audit_seq=900003)
        filed = [self.store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "a.crash.example", "methods": ["GET"]}',
                                   "crash").id,
                 self.store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "noend.example"}', "no end").id,
                 self.store.submit("web-2", TOOL_GITLEAKS_ALLOW, "[" * 200_000, "deep").id,
                 file_as_a_sidecar(self.store.db.path, "web-3", TOOL_EGRESS_BLOCK, "{" * 200_000, "deeper",
                                   created_at="2026-12-05T00:00:00.000000Z").id,
                 self.store.submit("web-2", TOOL_EGRESS_ALLOW, '{"host": "pypi.org"}', "honest").id]
        for verb in (("proposals", "list", "--json"), ("supervise", "--once", "--json")):
            code, out, err = self.cli(*verb)
            self.assertEqual(code, 0, err)
            self.assertNotIn("Traceback", err)
            self.assertEqual({row["id"] for row in json.loads(out)}, set(filed), verb)
        self.assert_a_keeper_still_rejects_a_paste(settle=1.0)
        # What a rule would match such a report by: nothing, said as for any report that is not JSON.
        with self.assertRaises(ValidationError):
            subject_of(TOOL_GITLEAKS_ALLOW, "[" * 200_000)


class ForgedRuleFloodTest(ForgedRuleCase):
    def test_each_rule_is_proven_once_a_look_however_many_rows(self) -> None:
        """200 forged rules and 1,000 forged pending rows: one proof per rule in a look, not one per pair (the
        listing took 28 s for 200 x 20,000 in review)."""
        for number in range(200):
            self.forge({"host": f"*.n{number}.example", "methods": [], "paths": []}, pattern=1,
                       audit_seq=1_000_000 + number)
        for number in range(1000):
            file_as_a_sidecar(self.store.db.path, f"web-{number % 50}", TOOL_EGRESS_ALLOW,
                              f'{{"host": "h{number}.example"}}', "flood", created_at="2026-12-05T00:00:00.000000Z")
        with mock.patch.object(rule_proofs, "rule_problem", wraps=rule_proofs.rule_problem) as proved:
            keep(self.store)
        self.assertEqual(proved.call_count, 202)  # the 200 forged, and the operator's 2


class ForgedAnswerThroughTheRelayTest(TempDirTest):
    """A mount bottle's sidecar writes an approval and a grant for a relay-backed bottle into the file: the relay,
    which holds the audit key, passes on neither, and the operator's real decision still reaches the caller."""

    def test_an_approval_or_a_grant_a_sidecar_wrote_is_not_passed_on(self) -> None:
        db = self.tmp / "relay.db"
        relay = InProcessRelay(db).register(self)
        victim = relay.queue("vm-1")
        pending = victim.submit(TOOL_EGRESS_ALLOW, '{"host": "evil.example"}', "wants it")
        with QueueStore(db) as store:  # a real decision first: the log is sealed, the key exists
            decide(store.submit("mount-1", TOOL_EGRESS_ALLOW, '{"host": "pypi.org"}', "pip").id, "rejected",
                   "no", store=store)
        raw = sqlite3.connect(db, isolation_level=None)
        self.addCleanup(raw.close)
        raw.execute("INSERT INTO responses (proposal_id, status, notes, decided_by, decided_at) VALUES "
                    "(?, 'approved', 'ok', 'ann@host', '2026-12-05T00:00:00.000000Z')", (pending.id,))
        raw.execute("INSERT INTO grants (id, queue_key, tool, subject, subject_sha256, starts_at, ends_at, "
                    "proposal_id, rule_id, decided_by, audit_seq) VALUES (?, 'vm-1', ?, ?, ?, "
                    "'2020-01-01T00:00:00.000000Z', '2999-01-01T00:00:00.000000Z', ?, NULL, 'ann@host', 1)",
                    (secrets.token_hex(16), TOOL_EGRESS_ALLOW, json.dumps(EVIL, sort_keys=True, separators=(",", ":")),
                     subject_sha256(TOOL_EGRESS_ALLOW, EVIL), pending.id))
        started = time.monotonic()
        self.assertIsNone(victim.wait_for_response(pending.id, 1.0), "the relay passed on a forged approval")
        self.assertGreaterEqual(time.monotonic() - started, 0.9, "an unproven approval is waited out, not repeated")
        self.assertIsNone(victim.response(pending.id))
        self.assertEqual(victim.live_grants(TOOL_EGRESS_ALLOW), [])
        self.assertTrue(any("is not passed on: the audit log does not prove it" in line for line in relay.logged),
                        relay.logged)
        # The control: the operator's own approval of another proposal, and its grant, pass through.
        real = victim.submit(TOOL_EGRESS_ALLOW, '{"host": "docs.python.org"}', "docs")
        with QueueStore(db) as store:
            decide(real.id, STATUS_APPROVED, "fine", store=store)
        answer = victim.wait_for_response(real.id, 10)
        self.assertEqual(answer.status if answer else None, STATUS_APPROVED)
        self.assertEqual([g.subject_value["host"] for g in victim.live_grants(TOOL_EGRESS_ALLOW)], ["docs.python.org"])


class SecondReviewTest(ForgedRuleCase):
    """The second review's attacks on the proofs themselves."""

    def relay(self) -> InProcessRelay:
        return InProcessRelay(self.store.db.path).register(self)

    def loosen(self, table: str) -> None:
        """``table`` rebuilt as a sidecar can: the same columns and rows, no types, keys or constraints."""
        columns = [row[1] for row in self.raw.execute(f"PRAGMA table_info({table})")]
        self.raw.execute(f"ALTER TABLE {table} RENAME TO {table}_real")
        self.raw.execute(f"CREATE TABLE {table} ({', '.join(columns)})")
        self.raw.execute(f"INSERT INTO {table} SELECT * FROM {table}_real")

    def test_a_real_grant_moved_to_another_bottle_is_not_passed_on_and_verify_names_it(self) -> None:
        """The operator approves the hostile bottle's own request; its sidecar moves the grant to a VM bottle."""
        own = self.store.submit("mount-1", TOOL_EGRESS_ALLOW, '{"host": "evil.example"}', "mine")
        decide(own.id, STATUS_APPROVED, "yours", store=self.store)
        self.raw.execute("DROP TRIGGER grants_immutable")
        self.raw.execute("UPDATE grants SET queue_key = 'vm-1' WHERE queue_key = 'mount-1'")
        relay = self.relay()
        self.assertEqual(relay.queue("vm-1").live_grants(TOOL_EGRESS_ALLOW), [])
        code, out, err = self.cli("audit", "verify")
        self.assertEqual(code, 1)
        self.assertIn("differs from audit entry", out + err)

    def test_an_audit_log_view_cannot_lend_one_proposals_seal_to_another(self) -> None:
        """The log replaced by a view whose proposal id is chosen at random per evaluation: the WHERE sees the
        forged proposal, the checked columns another's sealed approval. Never passed on (40 tries)."""
        relay = self.relay()
        victim = relay.queue("vm-1")
        pending = victim.submit(TOOL_EGRESS_ALLOW, '{"host": "evil.example"}', "wants it")
        other = self.store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "pypi.org"}', "pip")
        decide(other.id, STATUS_APPROVED, "fine", store=self.store)
        (status, notes, decided_by, decided_at), = self.raw.execute(
            "SELECT status, notes, decided_by, decided_at FROM responses WHERE proposal_id = ?", (other.id,))
        self.raw.execute("INSERT INTO responses (proposal_id, status, notes, decided_by, decided_at) "
                         "VALUES (?, ?, ?, ?, ?)", (pending.id, status, notes, decided_by, decided_at))
        columns = [row[1] for row in self.raw.execute("PRAGMA table_info(audit_log)")]
        shown = ", ".join(f"CASE WHEN proposal_id = '{other.id}' AND (random() & 1) THEN '{pending.id}' "
                          "ELSE proposal_id END AS proposal_id" if name == "proposal_id" else name
                          for name in columns)
        self.raw.execute("ALTER TABLE audit_log RENAME TO audit_real")
        self.raw.execute(f"CREATE VIEW audit_log AS SELECT {shown} FROM audit_real")
        for _ in range(40):
            self.assertIsNone(victim.response(pending.id), "the relay passed on another proposal's approval")

    def test_copies_of_a_real_rule_or_grant_are_proven_once(self) -> None:
        """300 copies of a real rule and of a real grant, differing only where no proof reads: one proof each."""
        own = self.store.submit("vm-1", TOOL_EGRESS_ALLOW, '{"host": "docs.example"}', "docs")
        decide(own.id, STATUS_APPROVED, "fine", store=self.store)
        for table in ("rules", "grants"):
            self.loosen(table)
            for number in range(300):
                self.raw.execute(f"INSERT INTO {table} SELECT * FROM {table} LIMIT 1")
                self.raw.execute(f"UPDATE {table} SET revoke_reason = ? WHERE rowid = last_insert_rowid()",
                                 (f"copy {number}",))
        from bot_bottle.audit import forensics
        with mock.patch.object(rule_proofs, "rule_problem", wraps=rule_proofs.rule_problem) as proved:
            keep(self.store)
        self.assertLessEqual(proved.call_count, 3)  # the copied rule once, and the operator's other rule
        relay = self.relay()
        with mock.patch("bot_bottle.relay.proofs.grant_problem", wraps=forensics.grant_problem) as proved:
            grants = relay.queue("vm-1").live_grants(TOOL_EGRESS_ALLOW)
            relay.queue("vm-1").live_grants(TOOL_EGRESS_ALLOW)
        self.assertEqual([g.subject_value["host"] for g in grants], ["docs.example"], "one grant, not 301")
        self.assertEqual(proved.call_count, 1)

    def test_a_rule_row_with_a_huge_number_does_not_stop_the_keeper(self) -> None:
        """revoke_seq 9e999 (infinity) in a rebuilt table: the keeper still decides by the real rules."""
        self.loosen("rules")
        self.forge(audit_seq=900001)
        self.raw.execute("UPDATE rules SET revoke_seq = 9e999 WHERE audit_seq = 900001")
        self.assert_a_keeper_still_rejects_a_paste()


class ThirdReviewTest(ForgedRuleCase):
    """The third review's attacks."""

    def test_a_revocation_at_a_number_the_cache_had_read_is_not_missed(self, copy_the_hash: bool = False) -> None:
        """A junk entry at the next number is read by a look, then deleted; the operator's revocation lands at
        that number, and the rule row is brought back: the look after still finds the revocation."""
        rejection = next(rule for rule in GrantStore(database=self.store.db).rules() if rule.effect == "reject")
        (last,), = self.raw.execute("SELECT max(seq) FROM audit_log")
        triggers = self.raw.execute("SELECT name, sql FROM sqlite_master WHERE type = 'trigger' "
                                    "AND tbl_name = 'audit_log'").fetchall()
        for name, _ in triggers:
            self.raw.execute(f'DROP TRIGGER "{name}"')
        self.raw.execute("INSERT INTO audit_log (seq, ts, queue_key, action, actor, notes, diff, details, prev_hash, "
                         "hash) VALUES (?, 'x', 'x', 'rejected', 'x', '', '', '{}', ?, ?)",
                         (last + 1, "0" * 64, "0" * 64))
        keep(self.store)  # this process's look: it has read the log to the junk entry
        self.raw.execute("DELETE FROM audit_log WHERE seq = ?", (last + 1,))
        for _, sql in triggers:
            self.raw.execute(sql)
        code, _, err = self.cli("rules", "revoke", rejection.short_id, "--reason", "pastes are fine now")
        self.assertEqual(code, 0, err)
        self.raw.execute("DROP TRIGGER rules_immutable")
        self.raw.execute("UPDATE rules SET revoked_at = NULL, revoked_by = NULL, revoke_reason = NULL, "
                         "revoke_seq = NULL WHERE id = ?", (rejection.id,))
        if copy_the_hash:  # the junk entry's stored hash copied onto the revocation: only a recomputed one differs
            for name, _ in triggers:
                self.raw.execute(f'DROP TRIGGER "{name}"')
            self.raw.execute("UPDATE audit_log SET hash = ? WHERE seq = ?", ("0" * 64, last + 1))
        paste = self.store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "pastebin.com"}', "a paste")
        keep(self.store)
        self.assertIsNone(self.store.response(paste.id), "the revoked rule decided again")

    def test_a_revocation_given_the_junk_entrys_hash_is_not_missed(self) -> None:
        """As above, and the junk entry's stored hash then copied onto the revocation that took its number."""
        self.test_a_revocation_at_a_number_the_cache_had_read_is_not_missed(copy_the_hash=True)

    def test_what_the_file_holds_of_a_relay_credential_signs_nothing(self) -> None:
        """A mount sidecar reads a VM bottle's stored credential and signs with it: every request is refused, and
        the operator's approval and grant for that bottle reach only the bottle itself."""
        relay = InProcessRelay(self.store.db.path).register(self)
        victim = relay.queue("vm-1")
        filed = victim.submit(TOOL_EGRESS_ALLOW, '{"host": "docs.example"}', "docs")
        decide(filed.id, STATUS_APPROVED, "fine", store=self.store)
        (stored,), = self.raw.execute("SELECT token_sha256 FROM relay_credentials WHERE queue_key = 'vm-1'")
        # As wire.signing signs: with the token's sha256, which is what the column held before it was masked.
        with mock.patch("bot_bottle.wire.signing.token_sha256", return_value=stored):
            impostor = RelayQueue(RelayEndpoint(url=relay.url, token="A" * 43, bottle="vm-1"), retry_for=0)
            for call in (lambda: impostor.live_grants(TOOL_EGRESS_ALLOW), lambda: impostor.response(filed.id),
                         lambda: impostor.submit(TOOL_EGRESS_ALLOW, '{"host": "evil.example"}', "me")):
                with self.assertRaises(Unauthorized):
                    call()
        self.assertEqual([g.subject_value["host"] for g in victim.live_grants(TOOL_EGRESS_ALLOW)], ["docs.example"])
        self.assertEqual([p.id for p in self.store.pending("vm-1")], [])

    def test_a_database_swapped_at_its_path_is_answered_from_by_no_relay(self) -> None:
        """A copy renamed over the database: the relay, whose connection keeps the old file, refuses every request
        (naming why, once, in its log) instead of passing on a grant the operator then revoked in the new one."""
        relay, victim = self.relay_with_a_grant()
        path = self.store.db.path
        copy = path.with_name("copy.db")
        self.raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self.raw.execute("VACUUM INTO ?", (str(copy),))
        for suffix in ("-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.rename(f"{path}{suffix}", path.with_name(f"old{suffix}"))
        os.rename(copy, path)
        with GrantStore(path) as grants:
            (grant,) = grants.listing()
            grants.revoke(grant.id, "no more", revoked_by="op@host")
        with self.assertRaises(BotBottleError) as refused:  # retried for 0.5 s; the sidecar's 10 s end the same
            RelayQueue(victim.endpoint, retry_for=0.5).live_grants(TOOL_EGRESS_ALLOW)
        self.assertIn("not the file the relay opened", str(refused.exception))
        self.assertEqual(sum("was removed or replaced since the relay opened it" in line for line in relay.logged), 1)


class FourthReviewTest(ForgedRuleCase):
    """The fourth review's attacks."""

    def test_a_revoked_or_replaced_credential_written_back_into_the_file_signs_nothing(self) -> None:
        """Revoked, then the row's revocation undone; replaced by a new mint, then the old row written back: the
        old token is refused both times (which mint is live is kept outside the database)."""
        relay = InProcessRelay(self.store.db.path).register(self)
        old = relay.queue("vm-1")
        old.heartbeat()
        (stored, created_at), = self.raw.execute(
            "SELECT token_sha256, created_at FROM relay_credentials WHERE queue_key = 'vm-1'")
        self.assertTrue(relay.credentials.revoke("vm-1"))
        self.raw.execute("UPDATE relay_credentials SET revoked_at = NULL WHERE queue_key = 'vm-1'")
        with self.assertRaises(Unauthorized):
            RelayQueue(old.endpoint, retry_for=0).heartbeat()
        new = relay.queue("vm-1")  # the bottle prepared again: a new mint
        new.heartbeat()
        self.raw.execute("UPDATE relay_credentials SET token_sha256 = ?, created_at = ?, revoked_at = NULL "
                         "WHERE queue_key = 'vm-1'", (stored, created_at))
        with self.assertRaises(Unauthorized):
            RelayQueue(old.endpoint, retry_for=0).heartbeat()

    def test_a_wal_swapped_under_the_relay_is_answered_from_by_no_relay(self) -> None:
        """The database stays, its -wal is replaced by a copy and its -shm moved away; the operator revokes the
        grant in another process, into the copy: the relay refuses every request instead of passing it on."""
        _, victim = self.relay_with_a_grant()
        path = self.store.db.path
        shutil.copyfile(f"{path}-wal", path.with_name("copy-wal"))
        os.rename(f"{path}-shm", path.with_name("old-shm"))
        os.rename(path.with_name("copy-wal"), f"{path}-wal")
        revoked = subprocess.run(
            [sys.executable, "-c", "import sys\nfrom bot_bottle.grants import GrantStore\n"
             "with GrantStore(sys.argv[1]) as grants:\n    (grant,) = grants.listing()\n"
             "    grants.revoke(grant.id, 'no more', revoked_by='op@host')\n", str(path)],
            cwd=REPO, capture_output=True, text=True, timeout=60)
        self.assertEqual(revoked.returncode, 0, revoked.stderr)
        with self.assertRaises(BotBottleError) as refused:  # retried for 0.5 s; the sidecar's 10 s end the same
            RelayQueue(victim.endpoint, retry_for=0.5).live_grants(TOOL_EGRESS_ALLOW)
        self.assertIn("not the file the relay opened", str(refused.exception))
