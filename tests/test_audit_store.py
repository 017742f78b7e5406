"""The audit log: appending, filtering, the append-only schema and the hash chain."""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import sqlite3
import unittest
from unittest import mock

from bot_bottle.audit import walk as audit_walk
from bot_bottle.audit.chain import GENESIS_HASH, compute_hash, hash_material
from bot_bottle.audit.seal import Sealer, seal_of
from bot_bottle.audit_store import AuditStore
from bot_bottle.decisions import decide, operator_edit
from bot_bottle.errors import ValidationError
from bot_bottle.queue_store import QueueStore
from bot_bottle.records import STATUS_APPROVED, STATUS_REJECTED, TOOL_EGRESS_ALLOW, AuditEntry
from tests.helpers.support import TempDirTest, digest, query_plans


class AuditTestCase(TempDirTest):
    def setUp(self) -> None:
        super().setUp()
        self.path = self.tmp / "a.db"
        self.audit = AuditStore(self.path)
        self.addCleanup(self.audit.close)

    def add(self, queue_key: str = "web-1", **kw: object) -> AuditEntry:
        return self.audit.append(AuditEntry(queue_key=queue_key, action=str(kw.pop("action", "operator-edit")),
                                            actor="op@host", **kw))  # type: ignore[arg-type]

    def raw(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None)
        self.addCleanup(conn.close)
        return conn


class AppendTest(AuditTestCase):
    def test_append_assigns_sequence_time_and_chain(self) -> None:
        """Entries get 1, 2, 3..., a UTC time, and each links to the previous hash."""
        first = self.add(tool="routes", notes="n", diff="-a\n+b\n", details={"k": [1, "ü"]})
        second = self.add()
        self.assertEqual((first.seq, second.seq), (1, 2))
        self.assertEqual(first.prev_hash, GENESIS_HASH)
        self.assertEqual(second.prev_hash, first.hash)
        self.assertRegex(first.ts or "", r"Z$")
        self.assertEqual(self.audit.entries(limit=None), [second, first])
        self.assertEqual(self.audit.entries()[1].details, {"k": [1, "ü"]})

    def test_bad_entries_are_refused(self) -> None:
        """Unknown actions, bad keys, non-JSON details and oversize notes are refused; nothing is written."""
        self.add()
        before = digest(self.path)
        for bad in (
            {"action": "deleted"},
            {"queue_key": "../x"},
            {"details": {"x": object()}},
            {"notes": "x" * 70000},
            {"proposal_id": "123"},
        ):
            with self.subTest(bad=list(bad)), self.assertRaises(ValidationError):
                self.add(**bad)  # type: ignore[arg-type]
        self.assertEqual(digest(self.path), before)


class FilterTest(AuditTestCase):
    def test_filters_and_limit(self) -> None:
        """entries() filters by bottle, tool and time, newest first, up to the limit."""
        a = self.add("a", tool="routes")
        b = self.add("b", tool="dlp")
        c = self.add("a", tool="dlp")
        self.assertEqual([e.seq for e in self.audit.entries("a")], [c.seq, a.seq])
        self.assertEqual([e.seq for e in self.audit.entries(tool="dlp")], [c.seq, b.seq])
        self.assertEqual([e.seq for e in self.audit.entries(limit=1)], [c.seq])
        self.assertEqual([e.seq for e in self.audit.entries(since=b.ts)], [c.seq, b.seq])
        self.assertEqual([e.seq for e in self.audit.entries(until=b.ts)], [a.seq])
        self.assertEqual(self.audit.entries(since="2999-01-01"), [])
        with self.assertRaises(ValidationError):
            self.audit.entries(since="last tuesday")
        with self.assertRaises(ValidationError):
            self.audit.entries(limit=0)

    def test_newest_of_one_bottle_uses_the_index(self) -> None:
        """The newest entries of one bottle, as entries() queries them, come from the (queue_key, seq) index."""
        self.add()
        with self.audit.db.read() as conn:
            plans = query_plans(conn, lambda: self.audit.entries("web-1", limit=50), "audit_log")
        self.assertEqual(len(plans), 1)
        self.assertIn("audit_log_by_bottle", plans[0])

    def test_export_is_oldest_first_and_complete(self) -> None:
        """export() yields every entry in order, across batches."""
        for i in range(25):
            self.add(notes=str(i))
        self.assertEqual([e.seq for e in self.audit.export(batch=7)], list(range(1, 26)))


class AppendOnlyTest(AuditTestCase):
    def test_update_and_delete_are_refused_by_the_database(self) -> None:
        """The schema's triggers refuse UPDATE and DELETE, and out-of-order inserts."""
        entry = self.add()
        raw = self.raw()
        with self.assertRaisesRegex(sqlite3.IntegrityError, "append-only"):
            raw.execute("UPDATE audit_log SET notes = 'rewritten'")
        with self.assertRaisesRegex(sqlite3.IntegrityError, "append-only"):
            raw.execute("DELETE FROM audit_log")
        with self.assertRaisesRegex(sqlite3.IntegrityError, "in order"):
            raw.execute(
                "INSERT INTO audit_log VALUES (5, 't', 'web-1', 'operator-edit', NULL, NULL, 'x', '', '', '{}', "
                ":prev, :hash)", {"prev": entry.hash, "hash": "f" * 64})
        self.assertTrue(self.audit.verify().ok)


class VerifyTest(AuditTestCase):
    def fill(self, count: int = 5) -> None:
        for i in range(count):
            self.add(notes=f"entry {i}")

    def test_whole_chain(self) -> None:
        """A whole chain verifies, with its count; an empty log too."""
        self.assertEqual(self.audit.verify().to_dict(), {"ok": True, "count": 0, "bad_seq": None, "problem": "",
                                                          "unsealed": 0, "anchored": None})
        self.fill()
        result = self.audit.verify(batch=2)
        self.assertTrue(result.ok)
        self.assertEqual(result.count, 5)

    def test_changed_entry_is_found(self) -> None:
        """An entry edited after dropping the trigger is named by verify."""
        self.fill()
        raw = self.raw()
        raw.execute("DROP TRIGGER audit_log_no_update")
        raw.execute("UPDATE audit_log SET notes = 'nothing to see' WHERE seq = 3")
        result = self.audit.verify()
        self.assertFalse(result.ok)
        self.assertEqual(result.bad_seq, 3)
        self.assertIn("changed", result.problem)

    def test_an_entry_is_reported_only_after_the_definition_agrees(self) -> None:
        """The fast text (SQLite's json_array) only ever accepts; a mismatch is recomputed by compute_hash first."""
        self.fill()
        with mock.patch.object(audit_walk, "hash_of", wraps=audit_walk.hash_of) as definition:
            self.assertTrue(self.audit.verify().ok)
            self.assertEqual(definition.call_count, 0, "a whole log never needs the slow path")
            raw = self.raw()
            raw.execute("DROP TRIGGER audit_log_no_update")
            raw.execute("UPDATE audit_log SET notes = 'nothing to see' WHERE seq = 4")
            result = self.audit.verify()
        self.assertEqual((result.ok, result.bad_seq), (False, 4))
        self.assertEqual([c.args[1] for c in definition.call_args_list], [4])

    def test_rehashed_entry_fails_its_seal(self) -> None:
        """A forger who also recomputes the changed entry's hash is caught by its seal (no key to redo it)."""
        self.fill()
        raw = self.raw()
        raw.execute("DROP TRIGGER audit_log_no_update")
        row = raw.execute("SELECT * FROM audit_log WHERE seq = 2").fetchone()
        forged = compute_hash(2, row[1], row[2], row[3], row[4], row[5], row[6], "forged", row[8],
                                         row[9], row[10])
        raw.execute("UPDATE audit_log SET notes = 'forged', hash = :h WHERE seq = 2", {"h": forged})
        result = self.audit.verify()
        self.assertEqual((result.ok, result.bad_seq), (False, 2))
        self.assertIn("seal", result.problem)

    def test_removed_entry_is_found(self) -> None:
        """A deleted middle entry leaves a gap that verify names."""
        self.fill()
        raw = self.raw()
        raw.execute("DROP TRIGGER audit_log_no_delete")
        raw.execute("DELETE FROM audit_log WHERE seq = 4")
        result = self.audit.verify()
        self.assertEqual((result.ok, result.bad_seq), (False, 4))
        self.assertIn("missing", result.problem)

    def test_removed_last_decision_entry_is_found(self) -> None:
        """Deleting the newest entry leaves a whole chain, but the anchor says it existed."""
        with QueueStore(database=self.audit.db) as queue:
            proposal = queue.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "a"}', "j")
            decide(proposal.id, STATUS_REJECTED, "no", store=queue)
            raw = self.raw()
            raw.execute("DROP TRIGGER audit_log_no_delete")
            raw.execute("DROP TRIGGER audit_seal_no_delete")
            raw.execute("DELETE FROM audit_seal")
            raw.execute("DELETE FROM audit_log")
            result = self.audit.verify()
        self.assertFalse(result.ok)
        self.assertIn("entries 1-1 were removed", result.problem)

    def test_operator_edit_is_audited(self) -> None:
        """operator_edit() appends an operator-edit entry with the diff of before and after."""
        entry = operator_edit("web-1", "routes", "a\n", "a\nb\n", "added b", actor="me", store=self.audit)
        self.assertEqual((entry.action, entry.tool, entry.actor), ("operator-edit", "routes", "me"))
        self.assertIn("+b", entry.diff)
        self.assertTrue(self.audit.verify().ok)
        self.assertEqual(self.audit.entries()[0], entry)

    def test_decisions_count_matches(self) -> None:
        """Every decision adds exactly one entry for its proposal."""
        with QueueStore(database=self.audit.db) as queue:
            for i in range(3):
                proposal = queue.submit("web-1", TOOL_EGRESS_ALLOW, f'{{"host": "{i}"}}', "j")
                decide(proposal.id, STATUS_APPROVED, store=queue)
        self.assertEqual(self.audit.count(), 3)
        self.assertTrue(self.audit.verify().ok)


class HashTextTest(unittest.TestCase):
    """The faster hash material and seal are byte for byte what the entries were hashed and sealed with."""

    FIELDS = (7, "2026-11-30T06:00:00.000000Z", "web-1", "modified", "egress-block",
              "0123456789abcdef0123456789abcdef", "op@host", 'n\u00f6tes "q" \\ \x1b[31m \u2028 \U0001F600',
              "--- a\n+++ b\n", '{"decided_at": "x"}', "0" * 64)

    @staticmethod
    def dumps(fields: tuple[object, ...]) -> str:
        """The definition: what compute_hash hashed before hash_material existed."""
        return json.dumps(list(fields), separators=(",", ":"), ensure_ascii=False)

    def test_known_answers(self) -> None:
        """Computed with json.dumps and hmac.new: entries already written keep verifying."""
        self.assertEqual(compute_hash(*self.FIELDS),
                         "77842d047c1725010a2553bf12fcc398722698d480003b0f9745353da961262d")
        self.assertEqual(seal_of(b"k" * 32, 7, "1" * 64, "2" * 64),
                         "4aafd9e61145f3a617578a1d45bff46747657ec91350499673c036c00062c5fc")

    def test_material_is_json_dumps_for_any_text(self) -> None:
        rng = random.Random(16)
        alphabet = ['"', "\\", "/", "\b", "\f", "\n", "\r", "\t", "\x00", "\x1f", "\x7f", "\x80", "\u00e9",
                    "\u2028", "\u2029", "\ufeff", "\u202e", "\U0001F600", "a", " ", "{", "}", "[", "]", ",", ":"]
        for _ in range(3000):
            texts = ["".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 12))) for _ in range(9)]
            fields = (rng.randrange(1, 10**12), texts[0], texts[1], texts[2],
                      rng.choice([None, texts[3]]), rng.choice([None, texts[4]]),
                      texts[5], texts[6], texts[7], texts[8], "f" * 64)
            self.assertEqual(hash_material(*fields), self.dumps(fields), fields)  # type: ignore[arg-type]
            key = rng.randbytes(32)
            self.assertEqual(seal_of(key, fields[0], "a" * 64, "b" * 64),  # type: ignore[arg-type]
                             hmac.new(key, f"{fields[0]}:{'a' * 64}:{'b' * 64}".encode(), hashlib.sha256).hexdigest())

    def test_other_types_take_json_dumps(self) -> None:
        """Not what a row holds, but never a different text: a bool, a float, a number where text belongs, bytes."""
        for odd in ((True, *self.FIELDS[1:]), (7.0, *self.FIELDS[1:]), (*self.FIELDS[:2], 3, *self.FIELDS[3:]),
                    (*self.FIELDS[:4], 1.5, *self.FIELDS[5:])):
            self.assertEqual(hash_material(*odd), self.dumps(odd))  # type: ignore[arg-type]
        with self.assertRaises(TypeError):
            hash_material(*self.FIELDS[:2], b"bytes", *self.FIELDS[3:])  # type: ignore[arg-type]

    def test_sealer_is_hmac_sha256(self) -> None:
        rng = random.Random(12)
        for length in (0, 1, 31, 32, 33, 63, 64, 65, 100, 200):
            key = rng.randbytes(length)
            sealer = Sealer(key)
            for seq in (1, 2, 10**9):
                previous, entry = rng.randbytes(32).hex(), rng.randbytes(32).hex()
                want = hmac.new(key, f"{seq}:{previous}:{entry}".encode("ascii"), hashlib.sha256).hexdigest()
                self.assertEqual(sealer.seal(seq, previous, entry), want)
                self.assertEqual(seal_of(key, seq, previous, entry), want)

    def test_sqlite_json_array_writes_the_same_text_for_every_character(self) -> None:
        """verify takes each entry's text from SQLite's json_array: the same as hash_material, for every character."""
        conn = sqlite3.connect(":memory:")
        self.addCleanup(conn.close)
        points = [*range(0, 0xD800), *range(0xE000, 0x10000), 0x10000, 0x1F600, 0x10FFFF]
        for start in range(0, len(points), 4096):
            text = "".join(chr(p) for p in points[start:start + 4096])
            fields = (start + 1, text, "q", "a", None, text[::-1], "x", "", text[:7], "{}", "0" * 64)
            row = conn.execute("SELECT json_array(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", fields).fetchone()
            self.assertEqual(row[0], hash_material(*fields))  # type: ignore[arg-type]
        for single in ("\x00", "\x1f", "\x7f", "\u2028", '"', "\\", "a\x00b"):
            row = conn.execute("SELECT json_quote(?)", (single,)).fetchone()
            self.assertEqual(row[0], json.dumps(single, ensure_ascii=False))
