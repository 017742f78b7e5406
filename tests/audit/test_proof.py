"""The audit log proves what happened, and no command can erase it: seals, anchor, bindings, downgrades."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any
from unittest import mock

from bot_bottle.audit.anchor import ANCHOR_SLOT, advance_anchor, anchor_path, read_anchor
from bot_bottle.audit.chain import GENESIS_HASH, compute_hash
from bot_bottle.audit.seal import create_key, key_path, load_key
from bot_bottle.audit_store import AuditStore
from bot_bottle.cli import main as cli_main
from bot_bottle.connection import connect
from bot_bottle.decisions import decide, operator_edit
from bot_bottle.errors import AuditTampered, BotBottleError
from bot_bottle.queue_store import QueueStore
from bot_bottle.records import STATUS_APPROVED, STATUS_MODIFIED, STATUS_REJECTED, TOOL_EGRESS_BLOCK
from bot_bottle.schema import migrate
from tests.helpers.support import REPO, TempDirTest, digest, wait_until

HEAD = len(migrate.discover())


class ProofTestCase(TempDirTest):
    def setUp(self) -> None:
        super().setUp()
        self.db = self.tmp / "proof.db"
        self.store = QueueStore(self.db)
        self.addCleanup(self.store.close)

    def decide_some(self, count: int = 3) -> list[str]:
        ids = []
        for index in range(count):
            proposal = self.store.submit(f"web-{index}", TOOL_EGRESS_BLOCK, f"routes: [{index}]\n", "why",
                                         current_file="routes: []\n")
            status = (STATUS_APPROVED, STATUS_REJECTED, STATUS_MODIFIED)[index % 3]
            final = f"routes: [{index}, x]\n" if status == STATUS_MODIFIED else None
            decide(proposal.id, status, f"notes {index}", final, decided_by="op@host", store=self.store)
            ids.append(proposal.id)
        return ids

    def raw(self) -> sqlite3.Connection:
        """A plain connection, as a sidecar with the file mounted read-write has: triggers can be dropped."""
        conn = sqlite3.connect(self.db, isolation_level=None)
        self.addCleanup(conn.close)
        for trigger in ("audit_log_no_update", "audit_log_no_delete", "audit_seal_no_delete", "audit_log_chain",
                        "responses_immutable", "responses_no_delete"):
            conn.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        return conn

    def verify(self) -> tuple[bool, str]:
        with AuditStore(self.db) as audit:
            result = audit.verify()
        return result.ok, result.problem


def rechain(raw: sqlite3.Connection, seq: int, column: str, value: str) -> None:
    """As a forger without the key: set one entry's ``column`` and recompute every sha256 and link after it."""
    columns = ("seq", "ts", "queue_key", "action", "tool", "proposal_id", "actor", "notes", "diff", "details")
    prev = GENESIS_HASH
    for row in raw.execute(f"SELECT {', '.join(columns)} FROM audit_log ORDER BY seq").fetchall():
        entry = dict(zip(columns, row, strict=True))
        if entry["seq"] == seq:
            entry[column] = value
        new = compute_hash(*entry.values(), prev)
        raw.execute(f"UPDATE audit_log SET {column} = :v, prev_hash = :p, hash = :h WHERE seq = :s",
                    {"v": entry[column], "p": prev, "h": new, "s": entry["seq"]})
        prev = new


class SealTest(ProofTestCase):
    def test_whole_log_verifies_sealed_and_anchored(self) -> None:
        """Decisions and operator edits are sealed, and the anchor outside the database follows the head."""
        self.decide_some()
        operator_edit("web-1", "routes", "a\n", "b\n", "fixed", actor="op", db_path=self.db)
        with AuditStore(self.db) as audit:
            result = audit.verify()
            head = audit.head()
        self.assertTrue(result.ok, result.problem)
        self.assertEqual((result.count, result.unsealed, result.anchored), (4, 0, 4))
        anchor = read_anchor(self.db)
        assert anchor is not None
        self.assertEqual((anchor.seq, anchor.seal), (head["seq"], head["seal"]))
        self.assertNotEqual(key_path().parent, self.db.parent)
        self.assertEqual(key_path().parent, self.home / ".bot-bottle")
        self.assertEqual(key_path().stat().st_mode & 0o777, 0o600)

    def test_tail_operator_edit_removed(self) -> None:
        """The last entry (an operator edit) deleted with its seal: the anchor says it existed."""
        self.decide_some(2)
        operator_edit("web-1", "routes", "a\n", "b\n", "fixed", actor="op", db_path=self.db)
        raw = self.raw()
        raw.execute("DELETE FROM audit_seal WHERE seq = 3")
        raw.execute("DELETE FROM audit_log WHERE seq = 3")
        ok, problem = self.verify()
        self.assertFalse(ok)
        self.assertIn("entries 3-3 were removed", problem)

    def test_tail_decision_removed_with_its_response(self) -> None:
        """The last decision deleted with its response and seal: caught by the anchor."""
        ids = self.decide_some(3)
        raw = self.raw()
        raw.execute("DELETE FROM audit_seal WHERE seq = 3")
        raw.execute("DELETE FROM audit_log WHERE seq = 3")
        raw.execute("DELETE FROM responses WHERE proposal_id = :id", {"id": ids[2]})
        ok, problem = self.verify()
        self.assertFalse(ok)
        self.assertIn("were removed", problem)

    def test_response_fields_changed(self) -> None:
        """A response's final file, notes, decider or time changed: named against its entry."""
        ids = self.decide_some(3)
        for column, value, proposal in (("final_file", "routes: ['*']\n", ids[2]), ("notes", "fine", ids[0]),
                                        ("decided_by", "someone@else", ids[1]),
                                        ("decided_at", "2020-01-01T00:00:00.000000Z", ids[0])):
            with self.subTest(column):
                raw = self.raw()
                before = raw.execute(f"SELECT {column} FROM responses WHERE proposal_id = :id",
                                     {"id": proposal}).fetchone()[0]
                raw.execute(f"UPDATE responses SET {column} = :v WHERE proposal_id = :id",
                            {"v": value, "id": proposal})
                ok, problem = self.verify()
                self.assertFalse(ok)
                self.assertIn(column, problem)
                raw.execute(f"UPDATE responses SET {column} = :v WHERE proposal_id = :id",
                            {"v": before, "id": proposal})
                self.assertTrue(self.verify()[0])

    def test_response_removed_entry_kept(self) -> None:
        """A decision entry whose response is gone is named."""
        ids = self.decide_some(2)
        self.raw().execute("DELETE FROM responses WHERE proposal_id = :id", {"id": ids[0]})
        ok, problem = self.verify()
        self.assertFalse(ok)
        self.assertIn("response is gone", problem)

    def test_recomputed_plain_chain_without_the_key(self) -> None:
        """A forger rewrites entry 1 and recomputes every sha256 and link: the seals do not follow."""
        self.decide_some(3)
        rechain(self.raw(), 1, "notes", "approved, all fine")
        with AuditStore(self.db) as audit:
            result = audit.verify()
        self.assertEqual((result.ok, result.bad_seq), (False, 1))
        self.assertIn("without the host's key", result.problem)

    def test_unsealed_entries_appended_by_a_sidecar(self) -> None:
        """Entries a sidecar appends with a correct sha256 chain but no seal: verify names them, deciding stops."""
        self.decide_some(2)
        raw = self.raw()
        last = raw.execute("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
        args = (last[0] + 1, "2026-01-01T00:00:00.000000Z", "web-1", "approved", "egress-block", None, "op",
                "ok", "", "{}", last[1])
        raw.execute("INSERT INTO audit_log VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                    (*args, compute_hash(*args)))
        ok, problem = self.verify()
        self.assertFalse(ok)
        self.assertIn("written without the host's key", problem)
        proposal = self.store.submit("web-9", TOOL_EGRESS_BLOCK, "routes: [z]\n", "why")
        with self.assertRaises(AuditTampered):
            decide(proposal.id, STATUS_APPROVED, store=self.store)
        self.assertIsNone(self.store.response(proposal.id))

    def test_missing_key_is_named(self) -> None:
        """Seals without the key that made them cannot be checked, and verify says so."""
        self.decide_some(1)
        key_path().unlink()
        ok, problem = self.verify()
        self.assertFalse(ok)
        self.assertIn("audit key", problem)

    def test_head_kept_elsewhere(self) -> None:
        """audit head > FILE, then verify --head FILE: holds while the log holds it, fails once it is rewritten."""
        self.decide_some(2)
        head = self.run_cli("audit", "head", "--db", str(self.db))
        kept = self.tmp / "head.json"
        kept.write_text(head.stdout)
        self.assertEqual(self.run_cli("audit", "verify", "--head", str(kept), "--db", str(self.db)).returncode, 0)
        data = json.loads(head.stdout)
        data["seal"] = "f" * 64
        kept.write_text(json.dumps(data))
        self.assert_clean_error(self.run_cli("audit", "verify", "--head", str(kept), "--db", str(self.db)), 1,
                                "head you kept")


class DowngradeTest(ProofTestCase):
    def test_downgrade_that_drops_entries_is_refused(self) -> None:
        """db downgrade past the audit log without --export: one line, nothing changed, no backup."""
        self.decide_some(3)
        self.store.close()
        before = digest(self.db)
        listing = sorted(os.listdir(self.tmp))
        result = self.run_cli("db", "downgrade", "--to", "2", "--db", str(self.db))
        self.assert_clean_error(result, 1, "would drop 3 audit entries", "--export")
        self.assertEqual(digest(self.db), before)
        self.assertEqual(sorted(os.listdir(self.tmp)), listing)

    def test_library_downgrade_refuses_too(self) -> None:
        """migrate.downgrade itself refuses, whatever calls it."""
        self.decide_some(1)
        conn = connect(self.db)
        self.addCleanup(conn.close)
        with self.assertRaises(migrate.WouldDropProtected):
            migrate.downgrade(conn, 2, backup=False)
        self.assertEqual(migrate.current_version(conn), HEAD)

    def test_the_anchor_is_retired_before_the_drop_commits(self) -> None:
        """A drop that fails once the log was exported leaves it whole and unanchored (it proves less); a power
        cut between the drop and the retirement can no longer leave an anchor ahead of an emptied log."""
        self.decide_some(2)
        self.store.close()
        target = self.tmp / "kept.jsonl"

        def failing(conn: sqlite3.Connection, *args: object, export: Any = None, **kwargs: object) -> None:
            export(conn)
            self.assertIsNone(read_anchor(self.db), "retired once the export is written, before the drop")
            raise BotBottleError("the drop failed")

        with mock.patch.object(migrate, "downgrade", failing), \
                contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
            status = cli_main(["db", "downgrade", "--to", "2", "--export", str(target), "--db", str(self.db)])
        self.assertNotEqual(status, 0)
        self.assertEqual(len(target.read_text().splitlines()), 2)
        self.assertEqual(self.verify(), (True, ""), "the whole log, sealed, without its anchor")

    def test_export_round_trip(self) -> None:
        """--export writes every entry with hash and seal, exactly as audit export; then the log starts anew."""
        self.decide_some(4)
        exported = self.run_cli("audit", "export", "--db", str(self.db)).stdout.splitlines()
        self.store.close()
        target = self.tmp / "kept.jsonl"
        result = self.run_cli("db", "downgrade", "--to", "2", "--export", str(target), "--db", str(self.db))
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(target.read_text().splitlines(), exported)
        entries = [json.loads(line) for line in exported]
        self.assertTrue(all(e["hash"] and e["seal"] for e in entries))
        self.assertEqual(target.stat().st_mode & 0o777, 0o600)
        self.assertIsNone(read_anchor(self.db), "the anchor was retired with the log")
        # A second export never overwrites the first.
        again = self.run_cli("db", "downgrade", "--to", "1", "--export", str(target), "--db", str(self.db))
        self.assertEqual(again.returncode, 0, again.stderr)  # nothing left to drop: no export needed
        with QueueStore(self.db) as store:
            proposal = store.submit("web-1", TOOL_EGRESS_BLOCK, "routes: [n]\n", "why")
            decide(proposal.id, STATUS_APPROVED, store=store)
        ok, problem = self.verify()
        self.assertTrue(ok, problem)

    def test_an_export_stopped_part_way_leaves_nothing_under_its_name(self) -> None:
        """Ctrl-C during --export: no file under the name asked for, nothing dropped, and the same name works next.

        BROKE before: the file held the entries written so far (21,203 of a million, measured with a real
        Ctrl-C), read as the log written out, and the next try was refused as 'already exists'."""
        self.decide_some(3)
        self.store.close()
        target = self.tmp / "kept.jsonl"
        real = AuditStore.export_lines

        def interrupted(conn: sqlite3.Connection, after: int = 0) -> Any:
            lines = real(conn, after=after)
            yield next(iter(lines))
            raise KeyboardInterrupt

        with mock.patch.object(AuditStore, "export_lines", interrupted), \
                contextlib.redirect_stderr(io.StringIO()) as said, contextlib.redirect_stdout(io.StringIO()):
            status = cli_main(["db", "downgrade", "--to", "2", "--export", str(target), "--db", str(self.db)])
        self.assertEqual(status, 130, said.getvalue())
        self.assertFalse(target.exists(), "no half export under the name asked for")
        self.assertEqual([name for name in os.listdir(self.tmp) if "kept" in name], [], "nor beside it")
        with AuditStore(self.db) as audit:
            self.assertEqual(audit.count(), 3, "nothing dropped")
        result = self.run_cli("db", "downgrade", "--to", "2", "--export", str(target), "--db", str(self.db))
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(len(target.read_text().splitlines()), 3)

    def test_a_killed_exports_partial_file_is_removed_by_the_next(self) -> None:
        """kill -9 during --export leaves its hidden partial file; the next export into the folder removes it."""
        self.decide_some(1)
        self.store.close()
        gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True, check=True)
        folder = self.tmp / "exports"  # not the database's: its backup there removes partial files of its own
        folder.mkdir()
        left = folder / f".kept.jsonl.{gone.stdout.strip()}.partial"
        left.write_text("{}\n")
        result = self.run_cli("db", "downgrade", "--to", "2", "--export", str(folder / "kept.jsonl"),
                              "--db", str(self.db))
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertFalse(left.exists())

    def test_export_to_an_existing_file_is_refused(self) -> None:
        """--export never overwrites a file; nothing is dropped."""
        self.decide_some(1)
        self.store.close()
        target = self.tmp / "exists.jsonl"
        target.write_text("keep me\n")
        result = self.run_cli("db", "downgrade", "--to", "2", "--export", str(target), "--db", str(self.db))
        self.assert_clean_error(result, 1, "already exists")
        self.assertEqual(target.read_text(), "keep me\n")
        with AuditStore(self.db) as audit:
            self.assertEqual(audit.count(), 1)

    def test_dropping_only_the_seals_keeps_the_proof(self) -> None:
        """Down to 3 drops the seals, not the entries; back up, the anchor proves them and the next decision seals."""
        self.decide_some(3)
        self.store.close()
        self.assertEqual(self.run_cli("db", "downgrade", "--to", "3", "--db", str(self.db)).returncode, 0)
        self.assertEqual(self.run_cli("db", "upgrade", "--db", str(self.db)).returncode, 0)
        with AuditStore(self.db) as audit:
            result = audit.verify()
        self.assertTrue(result.ok, result.problem)
        self.assertEqual((result.unsealed, result.anchored), (3, 3))
        with QueueStore(self.db) as store:
            proposal = store.submit("web-1", TOOL_EGRESS_BLOCK, "routes: [n]\n", "why")
            decide(proposal.id, STATUS_APPROVED, store=store)
        with AuditStore(self.db) as audit:
            result = audit.verify()
        self.assertTrue(result.ok, result.problem)
        self.assertEqual((result.count, result.unsealed), (4, 0))

    def test_seals_dropped_and_entries_rewritten(self) -> None:
        """A sidecar that drops the seals and rewrites an entry (sha256 redone) is caught by the anchor."""
        self.decide_some(3)
        raw = self.raw()
        raw.execute("DELETE FROM audit_seal")
        rechain(raw, 2, "diff", "+  - host: '*'\n")
        ok, problem = self.verify()
        self.assertFalse(ok)
        self.assertIn("anchor", problem)
        proposal = self.store.submit("web-9", TOOL_EGRESS_BLOCK, "routes: [z]\n", "why")
        with self.assertRaises(AuditTampered):
            decide(proposal.id, STATUS_APPROVED, store=self.store)

    def test_backups_with_entries_found_nowhere_else_are_kept(self) -> None:
        """After an exported downgrade, the backup that holds the old log survives every later prune."""
        self.decide_some(2)
        self.store.close()
        result = self.run_cli("db", "downgrade", "--to", "2", "--export", str(self.tmp / "e.jsonl"),
                              "--db", str(self.db))
        self.assertEqual(result.returncode, 0, result.stderr)
        holding = [p for p in self.tmp.glob("proof.db.v*.bak") if _audit_count(p)]
        self.assertEqual(len(holding), 1)
        for _ in range(migrate.BACKUPS_KEPT + 2):
            self.assertEqual(self.run_cli("db", "upgrade", "--db", str(self.db)).returncode, 0)
            self.assertEqual(self.run_cli("db", "downgrade", "--to", "2", "--db", str(self.db)).returncode, 0)
        self.assertTrue(holding[0].exists(), "the only other copy of the old log was pruned")


def _audit_count(path: Path) -> int:
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        return int(conn.execute("SELECT count(*) FROM audit_log").fetchone()[0])
    except sqlite3.Error:
        return 0
    finally:
        conn.close()


class BackupFailuresTest(ProofTestCase):
    def test_no_hard_links(self) -> None:
        """A filesystem without hard links: the backup is written by reserve-and-rename, not a traceback."""
        self.decide_some(1)
        target = self.tmp / "copy.db"
        with mock.patch("os.link", side_effect=PermissionError(1, "Operation not permitted")), \
                self.store.db.read() as conn:
            migrate.backup_to(conn, target)
        copy = sqlite3.connect(target)
        self.addCleanup(copy.close)
        self.assertEqual(copy.execute("SELECT count(*) FROM audit_log").fetchone()[0], 1)
        self.assertEqual(target.stat().st_mode & 0o777, 0o600)
        self.assertEqual([p for p in os.listdir(self.tmp) if p.endswith(".partial")], [])

    def test_partial_left_by_a_killed_backup_is_removed(self) -> None:
        """kill -9 during a backup leaves a hidden partial file; the next backup removes it."""
        with self.store.db.write() as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS filler (x BLOB)")
        big = sqlite3.connect(self.db, isolation_level=None)
        big.execute("BEGIN IMMEDIATE")
        for _ in range(400):
            big.execute("INSERT INTO filler VALUES (randomblob(100000))")
        big.execute("COMMIT")
        big.close()
        code = ("import sqlite3, sys, time\nfrom pathlib import Path\nfrom bot_bottle.schema import migrate\n"
                "conn = sqlite3.connect(sys.argv[1])\n"
                "real = conn.backup\n"
                "def slow(target, **kw):\n"
                "    real(target, pages=1, progress=lambda *a: time.sleep(0.01))\n"
                "conn = type('C', (), {'backup': staticmethod(slow), 'execute': conn.execute})()\n"
                "migrate.backup_to(conn, Path(sys.argv[2]))\n")
        child = subprocess.Popen([sys.executable, "-c", code, str(self.db), str(self.tmp / "slow.bak.db")],
                                 cwd=REPO)
        wait_until(lambda: list(self.tmp.glob(".slow.bak.db.*.partial")), 20, 0.02, "the slow backup's partial file")
        time.sleep(0.2)
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        self.assertTrue(list(self.tmp.glob(".slow.bak.db.*.partial")), "the kill left a partial file")
        self.assertTrue(list(self.tmp.glob(".slow.bak.db.*.partial-journal")), "and the copy's journal")
        result = self.run_cli("db", "backup", str(self.tmp / "next.db"), "--db", str(self.db))
        self.assertEqual(result.returncode, 0, result.stderr)
        # BROKE before: the partial's -journal was left, one more with each killed backup.
        self.assertEqual(list(self.tmp.glob(".*.partial*")), [])


class BadInputTest(ProofTestCase):
    def test_out_of_range_numbers_and_dates(self) -> None:
        """Each as a process: exit 2, one line, no traceback."""
        db = str(self.db)
        for args, needle in (
            (("audit", "list", "--limit", "99999999999999999999"), "--limit"),
            (("proposals", "list", "--all", "--limit", "99999999999999999999"), "--limit"),
            (("audit", "list", "--since", "0001-01-01T00:00:00+01:00"), "since"),
            (("audit", "list", "--until", "9999-12-31T23:59:59-01:00"), "until"),
            (("db", "downgrade", "--to", "99999999999999999999999"), "--to"),
        ):
            with self.subTest(args):
                self.assert_clean_error(self.run_cli(*args, "--db", db), 2, needle)

    def test_malformed_stored_report(self) -> None:
        """A gitleaks-allow report whose fields are malformed reads as 'unreadable report', escaped."""
        for pushed in ('"main"', "5", '[{"no-ref": 1}]', "[[1]]", '"\\u001b[2J"'):
            with self.subTest(pushed):
                payload = '{"findings": [], "pushed": ' + pushed + "}"
                proposal = self.store.submit("web-1", "gitleaks-allow", payload, "why")
                result = self.run_cli("proposals", "show", proposal.id, "--db", str(self.db))
                self.assertEqual(result.returncode, 0, result.stderr)
                self.assertIn("unreadable report", result.stdout)
                self.assertNotIn("\x1b", result.stdout)

    def test_a_backup_is_never_opened_in_place(self) -> None:
        """--db naming a pre-migration backup is refused with the way out; the file is untouched."""
        self.decide_some(1)
        with self.store.db.read() as conn:
            backup = migrate.backup_before_migration(conn, HEAD)
        assert backup is not None
        before = digest(backup)
        self.assert_clean_error(self.run_cli("proposals", "list", "--db", str(backup)), 1, "is a backup", "cp ")
        self.assertEqual(digest(backup), before)

    def test_edited_down_file_is_drift(self) -> None:
        """An applied migration whose down file changed is reported, like an edited up file."""
        folder = self.tmp / "migrations"
        folder.mkdir()
        for path in (REPO / "migrations").iterdir():
            (folder / path.name).write_bytes(path.read_bytes())
        self.store.close()
        conn = connect(self.db)
        self.addCleanup(conn.close)
        self.assertEqual(migrate.status(conn, migrate.discover(folder)).drift, ())
        down = folder / "0002_supervise_queue.down.sql"
        down.write_text(down.read_text() + "\n-- an edit\nSELECT 1;\n")
        drift = migrate.status(conn, migrate.discover(folder)).drift
        self.assertEqual([d.summary for d in drift], ["0002_supervise_queue: its down file was edited after it "
                                                      "was applied"])




class RetireAnchorTest(ProofTestCase):
    def test_a_database_replaced_on_purpose(self) -> None:
        """A fresh file at the same path is refused until the operator retires the anchor, with --yes."""
        self.decide_some(2)
        self.store.close()
        self.db.unlink()
        with QueueStore(self.db) as store:
            proposal = store.submit("web-1", TOOL_EGRESS_BLOCK, "routes: [n]\n", "why")
            with self.assertRaises(AuditTampered) as caught:
                decide(proposal.id, STATUS_APPROVED, store=store)
            self.assertIn("retire-anchor", str(caught.exception))
            self.assert_clean_error(self.run_cli("audit", "retire-anchor", "--db", str(self.db)), 2, "--yes")
            self.assertEqual(self.run_cli("audit", "retire-anchor", "--yes", "--db", str(self.db)).returncode, 0)
            decide(proposal.id, STATUS_APPROVED, store=store)
        self.assertTrue(self.verify()[0])


class AnchorFileTest(ProofTestCase):
    """The anchor's two slots: written in place, never backwards, and a torn write leaves the one before."""

    def decide_more(self, count: int) -> None:
        for _ in range(count):
            proposal = self.store.submit("web-more", TOOL_EGRESS_BLOCK, f"routes: [{os.urandom(4).hex()}]\n", "why")
            decide(proposal.id, STATUS_APPROVED, "", decided_by="op@host", store=self.store)

    def test_decisions_alternate_slots_and_the_newest_is_read(self) -> None:
        """Each record synced (as at most every ANCHOR_SYNC_INTERVAL_SEC): the two newest, one per slot."""
        with mock.patch("bot_bottle.audit.anchor.ANCHOR_SYNC_INTERVAL_SEC", 0):
            self.decide_some(3)
        content = anchor_path(self.db).read_bytes()
        seqs = sorted(json.loads(content[i * ANCHOR_SLOT:].split(b"\n", 1)[0])["seq"] for i in (0, 1))
        self.assertEqual(seqs, [2, 3], "the two newest anchors, one per slot")
        anchor = read_anchor(self.db)
        assert anchor is not None
        self.assertEqual(anchor.seq, 3)
        self.assertEqual(self.verify(), (True, ""))

    def test_never_moved_backwards(self) -> None:
        self.decide_some(3)
        anchor = read_anchor(self.db)
        assert anchor is not None
        assert anchor.key is not None
        advance_anchor(self.db, 2, "0" * 64, anchor.key)
        advance_anchor(self.db, 3, "1" * 64, anchor.key)
        self.assertEqual(read_anchor(self.db), anchor)

    def test_a_torn_write_leaves_the_anchor_before_it(self) -> None:
        """A crash mid-write: the slot being written fails its check; the other slot's anchor is read, and verifies."""
        self.decide_some(3)
        path = anchor_path(self.db)
        content = bytearray(path.read_bytes())
        newest = 0 if json.loads(bytes(content).split(b"\n", 1)[0])["seq"] == 3 else 1
        # Decisions in quick succession write one slot and sync the other at most every 50 ms: seq 1 or 2.
        before = json.loads(bytes(content[(1 - newest) * ANCHOR_SLOT:]).split(b"\n", 1)[0])["seq"]
        self.assertIn(before, (1, 2))
        start = newest * ANCHOR_SLOT
        torn = content[start:start + 60] + b"\0" * 40  # the first sector made it, the rest did not
        for cut in (torn, content[start:start + 90] + b'"}\n'):  # ... or a cut that still parses as JSON
            content[start:start + len(cut)] = cut
            path.write_bytes(bytes(content))
            anchor = read_anchor(self.db)
            assert anchor is not None
            self.assertEqual(anchor.seq, before, "the record in the other slot")
            self.assertEqual(self.verify(), (True, ""))
        self.decide_more(1)  # the next decision writes over the torn slot, never over the good one
        anchor = read_anchor(self.db)
        assert anchor is not None
        self.assertEqual(anchor.seq, 4)
        self.assertEqual(self.verify(), (True, ""))

    def test_no_whole_record_is_damage(self) -> None:
        self.decide_some(2)
        path = anchor_path(self.db)
        for content in (b"", b"garbage", b"\0" * (2 * ANCHOR_SLOT)):
            path.write_bytes(content)
            with self.assertRaisesRegex(AuditTampered, "cannot be read"):
                read_anchor(self.db)
            with self.assertRaisesRegex(AuditTampered, "cannot be read"):
                self.verify()
            with self.assertRaisesRegex(AuditTampered, "cannot be read"):
                self.decide_more(1)

    def test_an_anchor_written_by_an_earlier_version_is_read_and_advanced(self) -> None:
        """One JSON record, no check, renamed into place: read as it is; the next decision writes the other slot."""
        self.decide_some(2)
        anchor = read_anchor(self.db)
        assert anchor is not None
        path = anchor_path(self.db)
        path.write_text(json.dumps(anchor.to_dict()) + "\n")
        self.assertEqual(read_anchor(self.db), anchor)
        self.decide_more(1)
        newer = read_anchor(self.db)
        assert newer is not None
        self.assertEqual(newer.seq, 3)
        self.assertEqual(json.loads(path.read_text().split("\n", 1)[0]), anchor.to_dict(), "the old record stays")
        self.assertEqual(self.verify(), (True, ""))

    def test_truncation_past_an_old_slot_is_still_caught(self) -> None:
        """The log cut back to the older slot's entry: the newest slot says more existed."""
        self.decide_some(3)
        raw = self.raw()
        raw.execute("DELETE FROM audit_seal WHERE seq = 3")
        raw.execute("DELETE FROM audit_log WHERE seq = 3")
        ok, problem = self.verify()
        self.assertFalse(ok)
        self.assertIn("entries 3-3 were removed", problem)


class KeyReadTest(ProofTestCase):
    """The key is kept between decisions, and read again when the file is replaced or removed."""

    def test_a_replaced_or_removed_key_is_seen(self) -> None:
        self.assertIsNone(load_key())
        first = create_key()
        self.assertEqual(load_key(), first)
        replacement = key_path().with_name("new.key")
        replacement.write_text(os.urandom(32).hex() + "\n")
        replacement.replace(key_path())
        second = load_key()
        self.assertNotEqual(second, first)
        self.assertEqual(second, bytes.fromhex(key_path().read_text().strip()))
        key_path().unlink()
        self.assertIsNone(load_key())
        key_path().write_text("not hex\n")
        with self.assertRaisesRegex(BotBottleError, "damaged"):
            load_key()


class KeyCreationRaceTest(ProofTestCase):
    def test_threads_making_the_first_key_at_once_share_one_undamaged_key(self) -> None:
        """Six threads of one process make the host's first key at the same moment, 40 times over: each
        gets the key the file holds, and the file is whole (the temporary was shared, and rewritten in place)."""
        for trial in range(40):
            home = self.tmp / f"home-{trial}"
            home.mkdir()
            with mock.patch.dict(os.environ, {"HOME": str(home)}):
                keys, errors = self.make_keys_at_once(6)
                self.assertEqual(errors, [])
                on_disk = load_key()
                assert on_disk is not None
                self.assertEqual(set(keys), {on_disk}, f"trial {trial}")
                self.assertEqual(key_path().read_text(), on_disk.hex() + "\n")

    @staticmethod
    def make_keys_at_once(count: int) -> tuple[list[bytes], list[BaseException]]:
        barrier = threading.Barrier(count)
        keys: list[bytes] = []
        errors: list[BaseException] = []

        def make() -> None:
            barrier.wait()
            try:
                keys.append(create_key())
            except BaseException as exc:  # reported by the test
                errors.append(exc)

        threads = [threading.Thread(target=make) for _ in range(count)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        return keys, errors


class TamperedVersionTest(ProofTestCase):
    def test_a_version_set_behind_our_back_is_named_as_such(self) -> None:
        """user_version raised by a sidecar (no migration history behind it) is not blamed on an old bot-bottle."""
        self.decide_some(1)
        self.store.close()
        raw = sqlite3.connect(self.db, isolation_level=None)
        raw.execute("PRAGMA user_version = 99")
        raw.close()
        result = self.run_cli("proposals", "list", "--db", str(self.db))
        self.assert_clean_error(result, 1, "says schema version 99", f"history ends at {HEAD}", "user_version")


class HostBackupsTest(TempDirTest):
    def test_host_database_backups_live_outside_the_mounted_directory(self) -> None:
        """The host database's pre-migration and manual backups go to ~/.bot-bottle/backups, not beside it."""
        host = self.home / ".bot-bottle" / "db" / "bot-bottle.db"
        conn = connect(host)
        migrate.upgrade(conn, 3)
        conn.close()
        with QueueStore() as store:  # the host database: opening migrates it to the newest version
            proposal = store.submit("web-1", TOOL_EGRESS_BLOCK, "routes: [a]\n", "why")
            decide(proposal.id, STATUS_APPROVED, store=store)
        backups = self.home / ".bot-bottle" / "backups"
        self.assertEqual(len(list(backups.glob("bot-bottle.db.v0003.*.bak"))), 1)
        self.assertEqual(list(host.parent.glob("*.bak")), [], "nothing a sidecar could delete")
        self.assertEqual(backups.stat().st_mode & 0o777, 0o700)
        manual = self.run_cli("db", "backup")
        self.assertEqual(manual.returncode, 0, manual.stderr)
        self.assertEqual(Path(manual.stdout.strip()).parent, backups)
