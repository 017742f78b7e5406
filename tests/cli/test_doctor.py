"""``bot-bottle doctor`` and the sidecar's mount warning at start."""

from __future__ import annotations

import json
import os
import shlex
import sqlite3
import subprocess
import sys
from unittest import mock

from bot_bottle import filesystems
from bot_bottle.cli import doctor
from bot_bottle.db import open_db
from bot_bottle.errors import UnsafeMount
from bot_bottle.filesystems import LOCAL, SHARED, MountEntry
from bot_bottle.sidecar import server as supervise_server
from bot_bottle.sidecar.mount_check import LockProbe, MountReport
from bot_bottle.sidecar.transport import MOUNT, Transport
from tests.helpers.support import REPO, TempDirTest, digest


class DoctorTest(TempDirTest):
    def doctor(self, path: str, cwd: object = None) -> tuple[int, dict[str, object]]:
        kwargs = {"cwd": cwd} if cwd is not None else {}
        result = self.run_cli("doctor", "--db", path, "--json", **kwargs)  # type: ignore[arg-type]
        return result.returncode, json.loads(result.stdout)

    def levels(self, report: dict[str, object]) -> dict[str, str]:
        return {c["check"]: c["level"] for c in report["checks"]}  # type: ignore[attr-defined]

    def test_healthy(self) -> None:
        """A fresh database on a local disk: every line ok, exit 0, and the file untouched."""
        path = self.tmp / "db" / "ok.db"
        open_db(path).close()
        before = digest(path)
        code, report = self.doctor(str(path))
        self.assertEqual(code, 0, report)
        levels = self.levels(report)
        for check in ("python", "sqlite", "database", "directory", "file", "journal_mode", "schema_version", "drift",
                      "integrity", "foreign_keys", "filesystem", "locking"):
            self.assertEqual(levels[check], "ok", check)
        self.assertEqual(digest(path), before)
        text = self.run_cli("doctor", "--db", str(path)).stdout
        self.assertIn("ok       locking", text)

    def test_corrupt(self) -> None:
        """A damaged database: an error line and exit 1."""
        path = self.tmp / "bad.db"
        open_db(path).close()
        data = bytearray(path.read_bytes())
        data[2 * 4096 : 2 * 4096 + 64] = b"\xff" * 64
        path.write_bytes(bytes(data))
        code, report = self.doctor(str(path))
        self.assertEqual(code, 1)
        self.assertIn("error", self.levels(report).values())

    def test_a_link_in_place_of_the_database_is_an_error_and_not_read(self) -> None:
        """What every other command refuses (tests/attacks/test_db_link_swap.py) is no healthy database here."""
        kept = self.tmp / "kept.db"
        open_db(kept).close()
        path = self.tmp / "linked.db"
        path.symlink_to(kept.name)
        code, report = self.doctor(str(path))
        self.assertEqual(code, 1)
        self.assertEqual(self.levels(report).get("file"), "error")
        self.assertNotIn("integrity", self.levels(report), "the file the link points to was read")

    def test_drift(self) -> None:
        """A checkout whose applied migration's SQL was edited: drift is an error."""
        path = self.tmp / "drift.db"
        open_db(path).close()
        root = self.copy_package()
        edited = root / "migrations" / "0003_audit_log.up.sql"
        edited.write_text(edited.read_text() + "\nCREATE INDEX edited ON audit_log (actor);\n")
        code, report = self.doctor(str(path), cwd=root)
        self.assertEqual(code, 1)
        self.assertEqual(self.levels(report)["drift"], "error")

    def test_loose_modes_and_the_rollback_journal_are_warnings(self) -> None:
        """A world-readable file and a rollback journal where WAL is safe are warnings, not errors."""
        path = self.tmp / "loose.db"
        open_db(path).close()
        path.chmod(0o644)
        raw = sqlite3.connect(path)
        raw.execute("PRAGMA journal_mode=DELETE")
        raw.close()
        code, report = self.doctor(str(path))
        self.assertEqual(code, 0)
        levels = self.levels(report)
        self.assertEqual((levels["file"], levels["journal_mode"]), ("warning", "warning"))
        journal = next(c for c in report["checks"] if c["check"] == "journal_mode")  # type: ignore[attr-defined]
        self.assertIn("the next host-side open switches it to WAL", journal["detail"])

    def test_wal_on_a_local_disk_is_ok_and_named(self) -> None:
        path = self.tmp / "wal.db"
        open_db(path).close()
        checks = {c["check"]: c for c in doctor.diagnose(path)}
        self.assertEqual(checks["journal_mode"]["level"], "ok")
        self.assertRegex(checks["journal_mode"]["detail"], r"^wal \(.* is local")

    def test_wal_where_memory_may_not_be_shared_is_refused(self) -> None:
        """WAL on a filesystem that may cross a VM boundary, or where the lock probe fails: an error each."""
        path = self.tmp / "shared.db"
        open_db(path).close()
        shared = MountReport(str(self.tmp), "virtiofs", "/run/supervise", SHARED, LockProbe(True, "seen"))
        with mock.patch.object(doctor, "check_mount", return_value=shared), \
                mock.patch.object(filesystems, "filesystem_of", return_value=MountEntry("/", "virtiofs", "m")):
            checks = {c["check"]: c for c in doctor.diagnose(path)}
        self.assertEqual(checks["journal_mode"]["level"], "error")
        self.assertIn("virtiofs", checks["journal_mode"]["detail"])
        broken = MountReport(str(self.tmp), "ext4", "/", LOCAL, LockProbe(False, "locks here lock nothing"))
        with mock.patch.object(doctor, "check_mount", return_value=broken):
            checks = {c["check"]: c for c in doctor.diagnose(path)}
        self.assertEqual(checks["journal_mode"]["level"], "error")
        self.assertIn("lock probe failed (locks here lock nothing)", checks["journal_mode"]["detail"])

    def test_the_rollback_journal_where_wal_is_unsafe_is_ok(self) -> None:
        path = self.tmp / "nfs.db"
        with mock.patch.object(filesystems, "filesystem_of", return_value=MountEntry("/", "nfs4", "filer:/")):
            open_db(path).close()
            checks = {c["check"]: c for c in doctor.diagnose(path)}
        self.assertEqual(checks["journal_mode"]["level"], "ok")
        self.assertIn("delete, the rollback journal (nfs4 (shared) may cross", checks["journal_mode"]["detail"])

    def test_named_missing_database(self) -> None:
        """A --db that names no file is an error; the place is still checked, and nothing is created."""
        code, report = self.doctor(str(self.tmp / "none" / "x.db"))
        self.assertEqual(code, 1)
        levels = self.levels(report)
        self.assertEqual(levels["database"], "error")
        self.assertEqual((levels["filesystem"], levels["locking"]), ("ok", "ok"))
        self.assertFalse((self.tmp / "none").exists())
        self.assertEqual(sorted(p.name for p in self.tmp.iterdir()), ["home"])

    def test_the_error_comes_after_the_report_it_points_at(self) -> None:
        """BROKE before the fix: 'doctor > report.txt 2>&1' began with "doctor found errors (see above)" and
        the report came after it (stdout is buffered in a file, stderr is not)."""
        env = {name: value for name, value in os.environ.items() if name != "PYTHONUNBUFFERED"}  # as a shell runs it
        result = subprocess.run([sys.executable, "-m", "bot_bottle", "doctor", "--db", str(self.tmp / "x.db")],
                                cwd=REPO, env={**env, "HOME": str(self.home)}, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, timeout=60)
        self.assertEqual(result.returncode, 1)
        lines = result.stdout.splitlines()
        self.assertTrue(lines[0].startswith("ok       python"), lines[0])
        self.assertIn("doctor found errors (see above)", lines[-1])
        # And a failure stays one when the reader went away: 'doctor | true' was 0.
        gone = subprocess.run(["bash", "-o", "pipefail", "-c", f"{shlex.quote(sys.executable)} -m bot_bottle doctor "
                               f"--db {shlex.quote(str(self.tmp / 'x.db'))} | true"], cwd=REPO,
                              env={**env, "HOME": str(self.home)}, capture_output=True, text=True, timeout=60)
        self.assertEqual(gone.returncode, 1, gone.stderr)
        self.assertNotIn("Traceback", gone.stderr)

    def test_fresh_home_checks_the_place(self) -> None:
        """On a fresh HOME the host database is still to come: a warning, and the filesystem and lock
        probe run in the nearest directory that exists, leaving nothing behind."""
        result = self.run_cli("doctor", "--json")
        self.assertEqual(result.returncode, 0, result.stderr)
        report = json.loads(result.stdout)
        levels = self.levels(report)
        self.assertEqual(levels["database"], "warning")
        self.assertEqual((levels["filesystem"], levels["locking"]), ("ok", "ok"))
        self.assertEqual(list(self.home.iterdir()), [])

    def test_a_directory_as_the_database(self) -> None:
        """doctor --db DIR is an error, exit 1."""
        code, report = self.doctor(str(self.tmp))
        self.assertEqual(code, 1)
        self.assertEqual(self.levels(report)["database"], "error")


class SidecarWarningTest(TempDirTest):
    def start(self) -> list[str]:
        lines: list[str] = []
        args = supervise_server.build_parser().parse_args(
            ["--bottle", "web-1", "--db", str(self.tmp / "s.db"), "--host", "127.0.0.1", "--port", "0"])
        server, store = supervise_server.start(args, lines.append)
        server.server_close()
        store.close()
        return lines

    def test_local_mount_is_quiet(self) -> None:
        """On a local filesystem the sidecar starts without a warning."""
        self.assertEqual(self.start(), [])

    def test_shared_mount_is_named(self) -> None:
        """A --db file (a workstation's) on a shared filesystem: one warning naming the type and the risk."""
        shared = MountReport(str(self.tmp), "virtiofs", "/run/supervise", SHARED, LockProbe(True, "seen"))
        with mock.patch.object(supervise_server, "check_mount", return_value=shared):
            lines = self.start()
        self.assertEqual(len(lines), 1)
        self.assertIn("warning:", lines[0])
        self.assertIn("virtiofs", lines[0])
        self.assertIn("corrupt", lines[0])

    def test_the_hosts_database_on_an_unsafe_mount_is_never_opened(self) -> None:
        """The mounted database where the lock probe fails, or on virtiofs: UnsafeMount, the file left alone."""
        path = self.tmp / "mounted.db"
        open_db(path).close()
        before = sorted(p.name for p in self.tmp.iterdir())
        reports = [MountReport(str(self.tmp), "ext4", "/", LOCAL, LockProbe(False, "locks here lock nothing")),
                   MountReport(str(self.tmp), "virtiofs", "/run/supervise", SHARED, LockProbe(True, "seen"))]
        args = supervise_server.build_parser().parse_args(["--bottle", "web-1", "--host", "127.0.0.1", "--port", "0"])
        for report in reports:
            with self.subTest(report.fstype), \
                    mock.patch.object(supervise_server, "find_transport", return_value=Transport(MOUNT, path)), \
                    mock.patch.object(supervise_server, "check_mount", return_value=report), \
                    mock.patch.object(Transport, "open", side_effect=AssertionError("opened")), \
                    self.assertRaises(UnsafeMount) as caught:
                supervise_server.start(args, lambda line: None)
            self.assertIn(report.probe.detail if not report.probe.works else "virtiofs", str(caught.exception))
        self.assertEqual(sorted(p.name for p in self.tmp.iterdir()), before)
