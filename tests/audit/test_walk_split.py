"""audit verify of a long log walks its later part in a second process: one file, one snapshot, one walk's report.

The attacks are the ones a hostile review (helper-13) made work against the
first version: a helper that saw fewer rows, or another file, or another
snapshot, than verify; a planted module in the current directory; rows
numbered with text; a seal row for no entry; a helper that never answers.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any
from unittest import mock

from bot_bottle.audit import walk_split
from bot_bottle.audit.chain import compute_hash
from bot_bottle.audit.forensics import VerifyResult
from bot_bottle.audit.seal import load_key
from bot_bottle.audit_store import AuditStore
from bot_bottle.decisions import operator_edit
from bot_bottle.errors import AuditTampered
from tests.audit.test_proof import ProofTestCase, rechain

ENTRIES = 40  # 20 decisions, then 20 operator edits
POINT = 17  # where the tests split the log: the helper walks 18-40


def copy_database(source: Path, target: Path) -> None:
    """``source``'s content into ``target`` through SQLite (open connections see it)."""
    with sqlite3.connect(source) as reading, sqlite3.connect(target) as writing:
        reading.backup(writing)
    reading.close()
    writing.close()


def split_at(point: int) -> Any:
    """Split every log from 10 entries on, at ``point`` (the product splits only from 100,000)."""
    return mock.patch.multiple(walk_split, SPLIT_FROM=10, split_point=lambda count, responses: point)


class SplitCase(ProofTestCase):
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

    def verify_split(self, audit: AuditStore | None = None) -> tuple[VerifyResult, list[Any]]:
        """verify with the log split at POINT; the answers its helper gave (none: it was not asked)."""
        answers: list[Any] = []
        real = walk_split.Helper.answer

        def answer(helper: walk_split.Helper, waiting: Any) -> Any:
            answers.append(real(helper, waiting))
            return answers[-1]

        with split_at(POINT), mock.patch.object(walk_split.Helper, "answer", answer):
            if audit is not None:
                return audit.verify(), answers
            with AuditStore(self.db) as store:
                return store.verify(), answers

    def verify_whole(self) -> VerifyResult:
        with AuditStore(self.db) as audit:
            return audit.verify()


class WalkSplitTest(SplitCase):
    def test_a_long_log_is_walked_in_two_processes_and_verifies(self) -> None:
        """A helper process walks entries 18-40 and answers that they end at the log's last; progress adds up."""
        seen: list[tuple[int, int]] = []
        with split_at(POINT), AuditStore(self.db) as audit:
            result = audit.verify(batch=5, progress=lambda done, total: seen.append((done, total)))
        self.assertEqual((result.ok, result.count, result.anchored), (True, ENTRIES, ENTRIES), result.problem)
        self.assertTrue(seen and all(total == ENTRIES and done <= ENTRIES for done, total in seen), seen)
        self.assertEqual(seen[-1], (ENTRIES, ENTRIES))
        _, answers = self.verify_split()
        self.assertEqual(len(answers), 1)
        self.assertIsNone(answers[0].problem)
        self.assertEqual(answers[0].last.seq, ENTRIES)

    def test_every_tampering_is_reported_as_one_walk_reports_it(self) -> None:
        """Entries changed, removed or unsealed before, at, just after and well after the point: the same report."""
        edits = {
            "an entry the helper walks, rewritten and rechained": lambda raw: rechain(raw, 30, "notes", "fine"),
            "an entry verify walks, rewritten and rechained": lambda raw: rechain(raw, 5, "notes", "fine"),
            "the entry at the point, rewritten": lambda raw: rechain(raw, POINT, "actor", "someone"),
            "the entry after the point, rewritten": lambda raw: rechain(raw, POINT + 1, "actor", "someone"),
            "an entry the helper walks, changed in place": lambda raw: raw.execute(
                "UPDATE audit_log SET notes = 'x' WHERE seq = 33"),
            "a seal the helper checks, replaced": lambda raw: raw.execute(
                "UPDATE audit_seal SET mac = (SELECT mac FROM audit_seal WHERE seq = 20) WHERE seq = 25"),
            "an entry past the point removed, seal and all": lambda raw: (
                raw.execute("DELETE FROM audit_seal WHERE seq = 26"),
                raw.execute("DELETE FROM audit_log WHERE seq = 26")),
            "the last entry's link, broken": lambda raw: raw.execute(
                "UPDATE audit_log SET prev_hash = hash WHERE seq = 40"),
            "the last entries removed, seals and all": lambda raw: (
                raw.execute("DELETE FROM audit_seal WHERE seq > 30"),
                raw.execute("DELETE FROM audit_log WHERE seq > 30")),
        }
        for name, edit in edits.items():
            with self.subTest(name):
                self.restore()
                raw = self.raw()
                edit(raw)
                raw.close()
                whole = self.verify_whole()
                split, answers = self.verify_split()
                self.assertFalse(whole.ok)
                self.assertEqual(split.to_dict(), whole.to_dict())
                if "the helper" in name:  # the helper found it, and verify walked the log again for its report
                    self.assertIsNotNone(answers[0].problem)

    def test_rows_numbered_with_text_or_nothing_are_reported_as_one_walk_reports_them(self) -> None:
        """BROKE the first version: a table rebuilt without its INTEGER PRIMARY KEY, and a forged entry numbered
        '41' (text): the parts' ranges skipped it and verify said whole. Now the parts must hold every row, or
        one walk reports (a number that is not a number at all no longer stops verify with a traceback)."""
        columns = "seq, ts, queue_key, action, tool, proposal_id, actor, notes, diff, details, prev_hash, hash"
        forged = ("2026-12-05T10:00:00.000000Z", "web-1", "operator-edit", "routes", None, "op", "forged", "", "{}")
        for number in ("41", "forty-one", None, 40.5):
            with self.subTest(number=number):
                self.restore()
                raw = self.raw()
                raw.execute("DROP TRIGGER IF EXISTS audit_seal_order")
                raw.execute(f"CREATE TABLE loose ({columns})")  # no types: a number stays what it was written as
                raw.execute(f"INSERT INTO loose SELECT {columns} FROM audit_log")
                raw.execute("DROP TABLE audit_log")
                raw.execute("ALTER TABLE loose RENAME TO audit_log")
                last = raw.execute("SELECT hash FROM audit_log WHERE seq = 40").fetchone()[0]
                raw.execute(f"INSERT INTO audit_log ({columns}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                            (number, *forged, last, compute_hash(41, *forged, last)))
                raw.close()
                whole = self.verify_whole()
                split, answers = self.verify_split()
                self.assertEqual(len(answers), 1)  # split, the helper whole: the count of rows says otherwise
                self.assertFalse(whole.ok, whole)
                self.assertEqual(split.to_dict(), whole.to_dict())
                if isinstance(number, str):  # a decision on top refuses with the reason, not a traceback
                    with self.assertRaisesRegex(AuditTampered, "numbered"):
                        operator_edit("web-1", "routes", "c\n", "d\n", "on top", actor="op", db_path=self.db)

    def test_a_seal_row_for_no_entry_does_not_hide_an_unsealed_entry(self) -> None:
        """BROKE before (since seals were counted): an unsealed forged entry 41 and a seal row for entry 1000 made
        the counts agree and verify said whole. Now what the walk saw sealed is what counts."""
        raw = self.raw()
        raw.execute("DROP TRIGGER IF EXISTS audit_seal_order")
        last = raw.execute("SELECT hash FROM audit_log WHERE seq = 40").fetchone()[0]
        row = (41, "2026-12-05T10:00:00.000000Z", "web-1", "operator-edit", "routes", None, "op", "forged", "", "{}")
        raw.execute("INSERT INTO audit_log VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", (*row, last, compute_hash(*row, last)))
        raw.execute("INSERT INTO audit_seal (seq, mac) VALUES (1000, ?)", ("0" * 64,))
        raw.close()
        for result in (self.verify_whole(), self.verify_split()[0]):
            self.assertFalse(result.ok, result)
            self.assertEqual(result.bad_seq, 41)


class HelperFailureTest(SplitCase):
    def test_a_helper_that_does_not_answer_leaves_the_log_to_verify(self) -> None:
        """No interpreter, one that fails, one that talks nonsense or one that stalls: the same report, found."""
        rechain(self.raw(), 30, "notes", "fine")
        whole = self.verify_whole()
        self.assertFalse(whole.ok)
        for executable in (str(self.tmp / "no-such-python"), "/bin/false"):
            with self.subTest(executable), mock.patch.object(walk_split.sys, "executable", executable):
                self.assertEqual(self.verify_split()[0].to_dict(), whole.to_dict())
        # Helpers that take the snapshot as the real one does, then stall, lie about where their part ends, or
        # answer nonsense.
        root = str(Path(walk_split.__file__).resolve().parents[2])
        preamble = ("import sys, time; sys.path.insert(0, sys.argv[1]); from bot_bottle.audit import walk_split; "
                    "from bot_bottle.audit.walk import Proven, Walked; ")
        fakes = {
            "stalls": preamble + "walk_split.walk = lambda *a, **k: time.sleep(60); walk_split.main()",
            "ends early": preamble + "walk_split.walk = lambda *a, **k: Walked(None, {}, Proven(29, 'h', 's'), None); "
                          "walk_split.main()",
            "says nonsense": preamble + "walk_split.json.dumps = lambda *a, **k: '{not json'; walk_split.main()",
        }
        for name, program in fakes.items():
            def spawn(program: str = program) -> walk_split.Helper:
                return walk_split.Helper(subprocess.Popen([sys.executable, "-c", program, root], stdin=subprocess.PIPE,
                                                          stdout=subprocess.PIPE, text=True))

            with self.subTest(name), mock.patch.object(walk_split, "_spawn", spawn), \
                    mock.patch.object(walk_split, "STALL_SEC", 1.0):
                result, answers = self.verify_split()
                self.assertEqual(result.to_dict(), whole.to_dict())
                self.assertEqual(len(answers), 1)  # it was asked, and not believed

    def test_a_module_planted_in_the_current_directory_is_not_run(self) -> None:
        """BROKE the first version: verify run from a directory a sidecar can write (the database's) ran a
        planted bot_bottle/audit/walk_split.py as the helper, which read the key and answered 'whole'. Neither
        that nor a planted json.py runs now, from the current directory or PYTHONPATH."""
        planted = self.tmp / "cwd" / "bot_bottle" / "audit"
        planted.mkdir(parents=True)
        stolen = self.tmp / "stolen-key"
        for folder in (planted.parent, planted):
            (folder / "__init__.py").write_text("")
        thief = f"import sys\nopen({str(stolen)!r}, 'w').write(sys.stdin.read())\n"
        (planted / "walk_split.py").write_text(thief + "def main():\n    pass\n")
        (planted.parent.parent / "json.py").write_text(thief)  # a module the helper imports from the library
        rechain(self.raw(), 30, "notes", "fine")
        whole = self.verify_whole()
        previous = os.getcwd()
        os.chdir(planted.parent.parent)
        self.addCleanup(os.chdir, previous)
        with mock.patch.dict(os.environ, {"PYTHONPATH": str(planted.parent.parent)}):
            self.assertEqual(self.verify_split()[0].to_dict(), whole.to_dict())
        self.assertFalse(stolen.exists())

    def test_the_key_never_reaches_a_command_line_or_the_environment(self) -> None:
        """The helper gets the key on its standard input only."""
        key = load_key()
        assert key is not None
        popen = mock.Mock(wraps=subprocess.Popen)
        with mock.patch.object(walk_split.subprocess, "Popen", popen):
            result, answers = self.verify_split()
        self.assertTrue(result.ok, result.problem)
        self.assertEqual(len(answers), 1)
        args, kwargs = popen.call_args
        self.assertNotIn(key.hex(), " ".join(args[0]))
        self.assertNotIn(key.hex(), repr(kwargs.get("env")))
        self.assertIn("-I", args[0])
        self.assertEqual(kwargs.get("cwd"), "/")

    def test_the_helper_never_creates_a_database(self) -> None:
        """A database gone by the time the helper opens it is not made anew."""
        missing = self.tmp / "gone.db"
        with self.assertRaises(FileNotFoundError):
            walk_split.open_file(str(missing), timeout=1.0)
        self.assertFalse(missing.exists())


class OneSnapshotTest(SplitCase):
    def test_no_commit_lands_between_the_two_snapshots(self) -> None:
        """BROKE the first version: rows taken away after verify's snapshot and put back after the helper's
        left the helper a shorter log, and verify said whole. Now both start under the write lock: a writer
        trying to commit in between waits until both have their snapshot."""
        rechain(self.raw(), 30, "notes", "forged")
        real_send = walk_split.Helper.send
        tried: list[str] = []

        def send(helper: walk_split.Helper, message: str) -> bool:
            if message == "snapshot":  # verify holds the write lock now: a sidecar tries to hide its forgery
                raw = sqlite3.connect(self.db, timeout=0, isolation_level=None)
                try:
                    raw.execute("DELETE FROM audit_seal WHERE seq > 17")
                    tried.append("committed")
                except sqlite3.OperationalError as exc:
                    tried.append(str(exc))
                finally:
                    raw.close()
            return real_send(helper, message)

        with mock.patch.object(walk_split.Helper, "send", send):
            result, answers = self.verify_split()
        self.assertEqual(tried, ["database is locked"])
        self.assertFalse(result.ok)
        self.assertEqual(result.bad_seq, 30)
        self.assertEqual(len(answers), 1)

    def test_a_commit_after_the_lock_before_verifys_read_means_no_split(self) -> None:
        """PRAGMA data_version catches a commit between the lock's end and verify's own read: no split then."""
        class Racing(sqlite3.Connection):
            def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:  # type: ignore[override]
                result = super().execute(sql, *args)
                if sql == "ROLLBACK":
                    operator_edit("web-1", "routes", "c\n", "d\n", "in between", actor="op", db_path=self.database)
                return result

        conn = sqlite3.connect(self.db, isolation_level=None, factory=Racing)
        conn.database = self.db  # type: ignore[attr-defined]
        self.addCleanup(conn.close)
        helper = walk_split._spawn()
        assert helper is not None
        self.addCleanup(helper.stop)
        self.assertTrue(helper.send(f'{{"database": "{self.db.resolve()}"}}'))
        self.assertIsNotNone(helper.expect("open", 15))
        self.assertFalse(walk_split._one_snapshot(conn, helper))

    def test_writers_keep_committing_while_a_split_verify_runs(self) -> None:
        """Real processes: a writer committing all along; every verify whole, the writer never refused."""
        stop = threading.Event()
        script = ("import sys, time\nfrom bot_bottle.decisions import operator_edit\n"
                  "n = 0\nwhile True:\n"
                  "    operator_edit('web-1', 'routes', 'a\\n', 'b\\n', f'w{n}', actor='op', db_path=sys.argv[1])\n"
                  "    n += 1\n    time.sleep(0.005)\n")
        writer = subprocess.Popen([sys.executable, "-c", script, str(self.db)], stderr=subprocess.PIPE)
        self.addCleanup(writer.kill)
        time.sleep(0.3)
        try:
            for _ in range(5):
                result, _answers = self.verify_split()
                self.assertTrue(result.ok, result.problem)
        finally:
            stop.set()
            writer.kill()
            _, errors = writer.communicate()
        self.assertNotIn(b"Traceback", errors)

    def test_a_file_renamed_over_the_database_is_not_walked_by_halves(self) -> None:
        """BROKE the first version: a long-lived store, then another file renamed over the path; the helper
        walked that file. Now the caller's own connection must be on the file the two open, or no split."""
        rechain(self.raw(), 30, "notes", "forged")
        with AuditStore(self.db) as audit:
            whole = audit.verify()
            self.assertFalse(whole.ok)
            os.replace(self.pristine, self.db)  # a copy from before the forgery, where every opener now looks
            result, answers = self.verify_split(audit)
        self.assertEqual(answers, [])
        self.assertEqual(result.to_dict(), whole.to_dict())
