"""A log whose tables a sidecar rebuilt or padded: every odd row is reported by audit verify, and none stops it.

Found by hostile reviews (helper-13, helper-14): a table rebuilt without its
INTEGER PRIMARY KEY can hold an entry numbered with text, with nothing, or
with a fraction; and a seal row for no entry made the seal count agree with
the entry count while a forged entry had no seal.
"""

from __future__ import annotations

from bot_bottle.audit.chain import compute_hash
from bot_bottle.audit_store import AuditStore
from bot_bottle.decisions import operator_edit
from bot_bottle.errors import AuditTampered
from tests.audit.test_proof import ProofTestCase

COLUMNS = "seq, ts, queue_key, action, tool, proposal_id, actor, notes, diff, details, prev_hash, hash"
FORGED = ("2026-12-05T10:00:00.000000Z", "web-1", "operator-edit", "routes", None, "op", "forged", "", "{}")


class RebuiltTablesTest(ProofTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.decide_some(6)
        for index in range(4):
            operator_edit(f"web-{index}", "routes", f"a{index}\n", f"b{index}\n", "edit", actor="op", db_path=self.db)
        self.last = 10

    def test_entries_numbered_with_text_nothing_or_a_fraction_are_reported(self) -> None:
        """The table rebuilt without types, a forged entry 11 numbered '11', 'eleven', NULL or 10.5: verify says
        which, with no traceback (a text number stopped it with a ValueError), and a decision on top refuses."""
        for number in ("11", "eleven", None, 10.5):
            with self.subTest(number=number):
                raw = self.raw()
                raw.execute("DROP TRIGGER IF EXISTS audit_seal_order")
                raw.execute(f"CREATE TABLE loose ({COLUMNS})")  # no types: a number stays what it was written as
                raw.execute(f"INSERT INTO loose SELECT {COLUMNS} FROM audit_log WHERE typeof(seq) = 'integer'")
                raw.execute("DROP TABLE audit_log")
                raw.execute("ALTER TABLE loose RENAME TO audit_log")
                last = raw.execute("SELECT hash FROM audit_log WHERE seq = :seq", {"seq": self.last}).fetchone()[0]
                raw.execute(f"INSERT INTO audit_log ({COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                            (number, *FORGED, last, compute_hash(self.last + 1, *FORGED, last)))
                raw.close()
                with AuditStore(self.db) as audit:
                    result = audit.verify()
                self.assertFalse(result.ok, result)
                self.assertIn("missing", result.problem)
                if isinstance(number, str):  # text sorts after every number: the next entry's number
                    with self.assertRaisesRegex(AuditTampered, "numbered"):
                        operator_edit("web-1", "routes", "c\n", "d\n", "on top", actor="op", db_path=self.db)

    def test_a_seal_row_for_no_entry_does_not_hide_an_unsealed_entry(self) -> None:
        """BROKE before: an unsealed forged entry 11 and a seal row for entry 1000 made the counts agree, and
        verify said whole. Now what the walk saw sealed is what counts."""
        raw = self.raw()
        raw.execute("DROP TRIGGER IF EXISTS audit_seal_order")
        last = raw.execute("SELECT hash FROM audit_log WHERE seq = :seq", {"seq": self.last}).fetchone()[0]
        row = (self.last + 1, *FORGED)
        raw.execute("INSERT INTO audit_log VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", (*row, last, compute_hash(*row, last)))
        raw.execute("INSERT INTO audit_seal (seq, mac) VALUES (1000, ?)", ("0" * 64,))
        raw.close()
        with AuditStore(self.db) as audit:
            result = audit.verify()
        self.assertFalse(result.ok, result)
        self.assertEqual(result.bad_seq, self.last + 1)
        self.assertIn("a seal was written for no entry", result.problem)
