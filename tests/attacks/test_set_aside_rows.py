"""``audit set-aside`` against a sidecar that wrote rows beside the entries it forged.

A sidecar on the mount can append entries the host never sealed (every
decision is then refused until ``audit set-aside`` moves them out) and can
write, beside them, the grants, rules and settings those entries claim to
record. Before the fix next to these tests, such a row stopped set-aside
with SQLite's bare "FOREIGN KEY constraint failed" and the operator had no
way out but a backup. Now the rows only those entries recorded go with
them (removing one takes something away, never adds), and set-aside
refuses, in its own words and before it writes anything, where removing an
entry would undo a revocation.
"""

from __future__ import annotations

import json
import secrets
import sqlite3

from bot_bottle.audit.chain import GENESIS_HASH, compute_hash
from bot_bottle.decisions import decide
from bot_bottle.grants import GrantStore
from bot_bottle.policy.subjects import subject_sha256
from bot_bottle.records import STATUS_APPROVED, TOOL_EGRESS_ALLOW
from tests.attacks.test_forged_rules import EVIL, ForgedRuleCase, forge_rule_and_entry

WHEN = "2020-01-02T00:00:00.000000Z"


def forge_entry(raw: sqlite3.Connection, action: str, details: dict[str, object], proposal_id: str | None = None,
                queue_key: str = "web-1") -> int:
    """An entry chained to the last one, hash and all (a sidecar can compute those, never a seal); its number."""
    seq, prev_hash = raw.execute("SELECT seq + 1, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone() or (
        1, GENESIS_HASH)
    text = json.dumps(details, sort_keys=True, separators=(",", ":"))
    digest = compute_hash(seq, WHEN, queue_key, action, TOOL_EGRESS_ALLOW, proposal_id, "ann", "ok", "", text,
                          prev_hash)
    raw.execute("INSERT INTO audit_log (seq, ts, queue_key, action, tool, proposal_id, actor, notes, diff, details, "
                "prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, 'ann', 'ok', '', ?, ?, ?)",
                (seq, WHEN, queue_key, action, TOOL_EGRESS_ALLOW, proposal_id, text, prev_hash, digest))
    return int(seq)


class SetAsideRowsTest(ForgedRuleCase):
    def set_aside(self, name: str = "forged.jsonl") -> tuple[int, str, str]:
        return self.cli("audit", "set-aside", "--export", str(self.tmp / name), "--yes")

    def entries(self) -> int:
        return int(self.raw.execute("SELECT count(*) FROM audit_log").fetchone()[0])

    def forge_grant(self) -> str:
        """A grant of evil.example for web-1's own proposal, and the approval entry claiming to record it."""
        proposal = self.store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "evil.example"}', "need it")
        seq = forge_entry(self.raw, STATUS_APPROVED, {"grant": {"host": "evil.example"}}, proposal.id)
        grant_id = secrets.token_hex(16)
        self.raw.execute(
            "INSERT INTO grants (id, queue_key, tool, subject, subject_sha256, starts_at, ends_at, proposal_id, "
            "rule_id, decided_by, audit_seq) VALUES (?, 'web-1', ?, ?, ?, ?, '2999-01-01T00:00:00.000000Z', ?, "
            "NULL, 'ann', ?)",
            (grant_id, TOOL_EGRESS_ALLOW, json.dumps(EVIL, sort_keys=True, separators=(",", ":")),
             subject_sha256(TOOL_EGRESS_ALLOW, EVIL), WHEN, proposal.id, seq))
        return grant_id

    def test_the_rows_a_sidecar_wrote_go_with_its_entries(self) -> None:
        rule_id, _ = forge_rule_and_entry(self.raw)
        grant_id = self.forge_grant()
        seq = forge_entry(self.raw, "setting-changed", {"setting": {"name": "pending-ttl", "value": "1y"}})
        self.raw.execute("INSERT OR REPLACE INTO settings (name, value, set_at, set_by, audit_seq) "
                         "VALUES ('pending-ttl', '365d', ?, 'ann', ?)", (WHEN, seq))
        code, out, err = self.set_aside()
        self.assertEqual(code, 0, err)
        self.assertIn("3 audit entries past entry 3", out)
        self.assertIn(f"rule {rule_id}", out)
        self.assertIn(f"grant {grant_id}", out)
        self.assertIn("setting pending-ttl", out)
        for table, column, value in (("rules", "id", rule_id), ("grants", "id", grant_id),
                                     ("settings", "name", "pending-ttl")):
            self.assertIsNone(self.raw.execute(f"SELECT 1 FROM {table} WHERE {column} = ?", (value,)).fetchone())
        exported = [json.loads(line)["seq"] for line in (self.tmp / "forged.jsonl").read_text().splitlines()]
        self.assertEqual(exported, [4, 5, 6])
        # The operator's own two rules stay, with the triggers that keep rules and grants from being deleted.
        self.assertEqual(self.raw.execute("SELECT count(*) FROM rules").fetchone()[0], 2)
        with self.assertRaises(sqlite3.IntegrityError):
            self.raw.execute("DELETE FROM rules")
        decide(self.store.submit("web-2", TOOL_EGRESS_ALLOW, '{"host": "pypi.org"}', "pip").id, STATUS_APPROVED,
               "fine", store=self.store)
        code, out, err = self.cli("audit", "verify")
        self.assertEqual(code, 0, out + err)

    def test_a_revocation_past_the_proof_is_never_undone(self) -> None:
        """The sidecar revokes a real grant in the file, with an entry of its own: set-aside leaves it be."""
        proposal = self.store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "docs.example"}', "docs")
        decide(proposal.id, STATUS_APPROVED, "fine", store=self.store)
        (grant,) = GrantStore(database=self.store.db).listing()
        seq = forge_entry(self.raw, "grant-revoked", {"grant": grant.id}, proposal.id)
        self.raw.execute("UPDATE grants SET revoked_at = ?, revoked_by = 'ann', revoke_reason = 'x', revoke_seq = ? "
                         "WHERE id = ?", (WHEN, seq, grant.id))
        before = self.entries()
        code, out, err = self.set_aside()
        self.assertEqual(code, 1, out)
        self.assertIn(f"the revocation of grant {grant.id} is recorded by entry {seq}", err)
        self.assertIn("would bring the grant back", err)
        self.assertNotIn("Traceback", err)
        self.assertFalse((self.tmp / "forged.jsonl").exists(), "refused before anything was written")
        self.assertEqual(self.entries(), before)
        self.assertEqual(self.raw.execute("SELECT revoke_seq FROM grants WHERE id = ?", (grant.id,)).fetchone(),
                         (seq,))

    def test_a_table_of_the_sidecars_own_pointing_at_its_entries_is_dropped_and_said(self) -> None:
        """A table no migration made declaring a foreign key is the schema guard's to drop (hostile review 61:
        one such table made every host write to the log fail), so it no longer stops the set-aside: it goes,
        said, and the forged entries with it. (Before the guard took such tables, set-aside refused in words.)"""
        _, seq = forge_rule_and_entry(self.raw)
        self.raw.execute("CREATE TABLE pins (seq INTEGER REFERENCES audit_log (seq))")
        self.raw.execute("INSERT INTO pins VALUES (?)", (seq,))
        before = self.entries()
        code, out, err = self.set_aside()
        self.assertEqual(code, 0, out + err)
        self.assertIn('dropped what no migration made', err)
        self.assertIn('table "pins"', err)
        self.assertNotIn("Traceback", err)
        self.assertEqual(self.entries(), before - 1)

    def test_a_kept_grant_naming_a_forged_rule_keeps_the_rule(self) -> None:
        """A real grant pointed at the sidecar's rule (its triggers dropped): refused, before the export."""
        proposal = self.store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "docs.example"}', "docs")
        decide(proposal.id, STATUS_APPROVED, "fine", store=self.store)
        (grant,) = GrantStore(database=self.store.db).listing()
        rule_id, _ = forge_rule_and_entry(self.raw)
        self.raw.execute("DROP TRIGGER grants_immutable")
        self.raw.execute("UPDATE grants SET rule_id = ? WHERE id = ?", (rule_id, grant.id))
        before = self.entries()
        code, out, err = self.set_aside()
        self.assertEqual(code, 1, out)
        self.assertIn(f"grant {grant.id} is proven but names rule {rule_id}", err)
        self.assertFalse((self.tmp / "forged.jsonl").exists(), "refused before anything was written")
        self.assertEqual(self.entries(), before)
