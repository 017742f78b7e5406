"""audit verify of a long log walks its later part in a second process: the same report as one walk, always."""

from __future__ import annotations

import io
import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any
from unittest import mock

from bot_bottle.audit import walk_split
from bot_bottle.audit.forensics import VerifyResult
from bot_bottle.audit.seal import load_key
from bot_bottle.audit.walk import Proven
from bot_bottle.audit_store import AuditStore
from bot_bottle.decisions import operator_edit
from tests.audit.test_proof import ProofTestCase, rechain

ENTRIES = 40  # 20 decisions, then 20 operator edits
POINT = 17  # where the tests split the log: the helper walks 18-40


def copy_database(source: Path, target: Path) -> None:
    """``source``'s content into ``target`` through SQLite (the store's open connection sees it)."""
    with sqlite3.connect(source) as reading, sqlite3.connect(target) as writing:
        reading.backup(writing)
    reading.close()
    writing.close()


def split_at(point: int) -> Any:
    """Split every log from 10 entries on, at ``point`` (the product splits only past 100,000)."""
    return mock.patch.multiple(walk_split, SPLIT_FROM=10, split_point=lambda count, responses: point)


class WalkSplitTest(ProofTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.decide_some(ENTRIES // 2)
        for index in range(ENTRIES // 2):
            operator_edit(f"web-{index}", "routes", f"a{index}\n", f"b{index}\n", "edit", actor="op", db_path=self.db)
        self.pristine = self.tmp / "pristine.db"
        copy_database(self.db, self.pristine)

    def restore(self) -> None:
        copy_database(self.pristine, self.db)

    def raw(self) -> sqlite3.Connection:
        conn = super().raw()
        conn.execute("DROP TRIGGER IF EXISTS audit_seal_no_update")
        return conn

    def verify_split(self) -> tuple[VerifyResult, list[Any]]:
        """verify with the log split at POINT; the answers its helpers gave."""
        answers: list[Any] = []
        real = walk_split.Helper.answer

        def answer(helper: walk_split.Helper, waiting: Any) -> Any:
            answers.append(real(helper, waiting))
            return answers[-1]

        with split_at(POINT), mock.patch.object(walk_split.Helper, "answer", answer), AuditStore(self.db) as audit:
            return audit.verify(), answers

    def verify_whole(self) -> VerifyResult:
        with AuditStore(self.db) as audit:
            return audit.verify()

    def test_a_long_log_is_walked_in_two_processes_and_verifies(self) -> None:
        """A helper process walks entries 18-40, answers that they are whole, and progress adds up."""
        seen: list[tuple[int, int]] = []
        started = mock.Mock(wraps=walk_split.start)
        with split_at(POINT), mock.patch.object(walk_split, "start", started), AuditStore(self.db) as audit:
            result = audit.verify(batch=5, progress=lambda done, total: seen.append((done, total)))
        self.assertEqual((result.ok, result.count, result.anchored), (True, ENTRIES, ENTRIES), result.problem)
        self.assertEqual(started.call_args.args[3].seq, POINT)
        self.assertEqual(started.call_args.args[4], ENTRIES)
        self.assertTrue(seen)
        self.assertTrue(all(total == ENTRIES and done <= ENTRIES for done, total in seen), seen)
        self.assertEqual(self.verify_split()[1], [None])

    def test_every_tampering_is_reported_as_one_walk_reports_it(self) -> None:
        """Entries changed, removed or unsealed before, at, just after and well after the point: the same report."""
        raw_edits = {
            "an entry the helper walks rewritten and rechained": lambda raw: rechain(raw, 30, "notes", "fine"),
            "an entry this process walks rewritten and rechained": lambda raw: rechain(raw, 5, "notes", "fine"),
            "the entry at the point rewritten": lambda raw: rechain(raw, POINT, "actor", "someone"),
            "the entry after the point rewritten": lambda raw: rechain(raw, POINT + 1, "actor", "someone"),
            "an entry the helper walks changed in place": lambda raw: raw.execute(
                "UPDATE audit_log SET notes = 'x' WHERE seq = 33"),
            "a seal the helper checks replaced": lambda raw: raw.execute(
                "UPDATE audit_seal SET mac = (SELECT mac FROM audit_seal WHERE seq = 20) WHERE seq = 25"),
            "an entry after the point removed, seal and all (no split: a seal is missing)": lambda raw: (
                raw.execute("DELETE FROM audit_seal WHERE seq = 26"),
                raw.execute("DELETE FROM audit_log WHERE seq = 26")),
            "the last entry's hash link broken": lambda raw: raw.execute(
                "UPDATE audit_log SET prev_hash = hash WHERE seq = 40"),
        }
        for name, edit in raw_edits.items():
            with self.subTest(name):
                self.restore()
                raw = self.raw()
                edit(raw)
                raw.close()
                whole = self.verify_whole()
                split, answers = self.verify_split()
                self.assertFalse(whole.ok)
                self.assertEqual(split.to_dict(), whole.to_dict())
                if "helper" in name:  # the helper found it first, and its report was walked again here
                    self.assertEqual(len(answers), 1)
                    self.assertIsInstance(answers[0], tuple)

    def test_a_helper_that_does_not_answer_leaves_its_part_to_verify(self) -> None:
        """No interpreter, one that fails, or one that prints nonsense: the part is walked here, tampering found."""
        rechain(self.raw(), 30, "notes", "fine")
        whole = self.verify_whole()
        self.assertFalse(whole.ok)
        for executable in (str(self.tmp / "no-such-python"), shutil.which("false") or "/bin/false"):
            with self.subTest(executable), mock.patch.object(walk_split.sys, "executable", executable):
                self.assertEqual(self.verify_split()[0].to_dict(), whole.to_dict())

        def nonsense(database: Path, key: bytes, anchor: Any, after: Proven, until: int) -> walk_split.Helper:
            process = subprocess.Popen([sys.executable, "-c", "print(12); print('{\"problem\": 7}')"],
                                       stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            return walk_split.Helper(process)

        with mock.patch.object(walk_split, "start", nonsense):
            result, answers = self.verify_split()
        self.assertEqual(answers, [walk_split.UNANSWERED])
        self.assertEqual(result.to_dict(), whole.to_dict())

    def test_a_change_between_the_two_snapshots_is_judged_in_this_ones(self) -> None:
        """Rewritten after verify's snapshot, before the helper's: the helper sees it, verify walks its own again.

        Entries appended meanwhile are past the part the helper was given, and not walked.
        """
        real = walk_split.start

        def after_a_change(database: Path, key: bytes, anchor: Any, after: Proven, until: int) -> Any:
            raw = self.raw()
            rechain(raw, 35, "notes", "changed in between")
            raw.close()
            operator_edit("web-1", "routes", "c\n", "d\n", "meanwhile", actor="op", db_path=self.db)
            return real(database, key, anchor, after, until)

        with mock.patch.object(walk_split, "start", after_a_change):
            result, answers = self.verify_split()
        self.assertEqual((result.ok, result.count), (True, ENTRIES), result.problem)  # verify's own snapshot
        self.assertIsInstance(answers[0], tuple)
        self.assertEqual(answers[0][0], 35)
        self.assertFalse(self.verify_whole().ok)  # as the file is now

    def test_the_key_never_reaches_a_command_line_or_the_environment(self) -> None:
        """The helper gets the key on its standard input only."""
        key = load_key()
        assert key is not None
        popen = mock.Mock(wraps=subprocess.Popen)
        with mock.patch.object(walk_split.subprocess, "Popen", popen):
            result, _ = self.verify_split()
        self.assertTrue(result.ok, result.problem)
        args, kwargs = popen.call_args
        self.assertNotIn(key.hex(), " ".join(args[0]))
        self.assertNotIn(key.hex(), json.dumps(kwargs.get("env", {})))

    def test_the_helper_never_creates_a_database(self) -> None:
        """A database gone by the time the helper opens it is not made anew."""
        missing = self.tmp / "gone.db"
        request = {"database": str(missing), "key": "00" * 32, "anchor": None,
                   "after": {"seq": 1, "hash": "0" * 64, "seal": "0" * 64}, "until": 2}
        with self.assertRaises(FileNotFoundError):
            walk_split.walk_part(request, io.StringIO())
        self.assertFalse(missing.exists())

    def test_a_short_or_unsealed_log_is_walked_in_one_process(self) -> None:
        """Below the threshold, or with an entry not sealed, no helper starts."""
        started = mock.Mock(wraps=walk_split.start)
        with mock.patch.object(walk_split, "start", started), AuditStore(self.db) as audit:
            self.assertTrue(audit.verify().ok)
        started.assert_not_called()
        conn = sqlite3.connect(self.db)
        conn.execute("DROP TRIGGER IF EXISTS audit_seal_no_delete")
        conn.execute("DELETE FROM audit_seal WHERE seq = 40")
        conn.commit()
        conn.close()
        with split_at(POINT), mock.patch.object(walk_split, "start", started), AuditStore(self.db) as audit:
            result = audit.verify()
        started.assert_not_called()
        self.assertEqual(result.to_dict(), self.verify_whole().to_dict())
