"""``bot-bottle db ...`` as a user runs it, and the clear error each bad file gets."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

from bot_bottle.db import open_db
from bot_bottle.schema import migrate
from tests.helpers.support import MIGRATIONS, REPO, TempDirTest, digest, require_tool, write_migration

HEAD = len(migrate.discover())


class DbVerbsTest(TempDirTest):
    def test_status_on_fresh_home_creates_at_head(self) -> None:
        """'db status' on a fresh HOME creates the host database and reports it at head."""
        result = self.run_cli("db", "status", "--json")
        self.assertEqual(result.returncode, 0, result.stderr)
        report = json.loads(result.stdout)
        host = self.home / ".bot-bottle" / "db" / "bot-bottle.db"
        self.assertEqual(report["path"], str(host))
        self.assertEqual((report["current"], report["head"]), (HEAD, HEAD))
        self.assertEqual((report["pending"], report["drift"]), ([], []))
        self.assertEqual(stat.S_IMODE(host.stat().st_mode), 0o600)
        self.assertEqual(stat.S_IMODE(host.parent.stat().st_mode), 0o700)
        text = self.run_cli("db", "status")
        self.assertIn(f"{HEAD} of {HEAD} (up to date)", text.stdout)

    def test_status_reports_pending_without_migrating(self) -> None:
        """On an existing database, status lists what is pending and changes nothing."""
        path = self.tmp / "p.db"
        self.assertEqual(self.run_cli("db", "upgrade", "--to", "1", "--db", str(path)).returncode, 0)
        before = digest(path)
        report = json.loads(self.run_cli("db", "status", "--json", "--db", str(path)).stdout)
        self.assertEqual(report["current"], 1)
        self.assertEqual([p["version"] for p in report["pending"]], list(range(2, HEAD + 1)))
        self.assertEqual(digest(path), before)

    def test_path(self) -> None:
        """'db path' prints the host path, or the --db path, without creating anything."""
        result = self.run_cli("db", "path")
        self.assertEqual(result.stdout.strip(), str(self.home / ".bot-bottle" / "db" / "bot-bottle.db"))
        self.assertFalse((self.home / ".bot-bottle").exists())
        self.assertEqual(self.run_cli("db", "path", "--db", "/x/y.db").stdout.strip(), "/x/y.db")

    def test_upgrade_and_downgrade(self) -> None:
        """upgrade --to and downgrade --to move the version and report what they did, with a backup."""
        path = str(self.tmp / "u.db")
        up = json.loads(self.run_cli("db", "upgrade", "--to", "2", "--db", path, "--json").stdout)
        self.assertEqual((up["from"], up["to"], up["versions"]), (0, 2, [1, 2]))
        down = json.loads(self.run_cli("db", "downgrade", "--to", "1", "--db", path, "--json").stdout)
        self.assertEqual((down["from"], down["to"], down["versions"]), (2, 1, [2]))
        self.assertTrue(Path(down["backup"]).exists())
        again = self.run_cli("db", "upgrade", "--db", path)
        self.assertIn(f"to {HEAD}", again.stdout)
        self.assertIn("nothing to do", self.run_cli("db", "upgrade", "--db", path).stdout)

    def test_usage_errors_exit_2(self) -> None:
        """A missing or malformed argument is a usage error: exit 2."""
        self.assertEqual(self.run_cli("db", "downgrade").returncode, 2)
        self.assertEqual(self.run_cli("db", "upgrade", "--to", "x").returncode, 2)
        self.assertEqual(self.run_cli("db", "nonsense").returncode, 2)
        bare = self.run_cli()
        self.assertEqual(bare.returncode, 0)
        self.assertIn("usage: bot-bottle", bare.stdout)

    def test_a_version_the_command_cannot_go_to_is_refused_as_asked_exit_2(self) -> None:
        """BROKE before the fix: 'db upgrade --to 99', 'db downgrade --to 99' and 'db upgrade --to 3' on a
        database at the newest version failed, exit 1 ('failed'), for what was asked, not for anything that went
        wrong: exit 2 is a refusal of what the command asked for, nothing done."""
        path = str(self.tmp / "v.db")
        self.assertEqual(self.run_cli("db", "upgrade", "--db", path).returncode, 0)
        before = digest(Path(path))
        for argv, said in ((("upgrade", "--to", "99"), f"--to: cannot upgrade to version 99: the migrations go from "
                                                       f"0 to {HEAD}"),
                           (("downgrade", "--to", "99"), f"--to: cannot downgrade to version 99: the database is at "
                                                         f"version {HEAD}"),
                           (("upgrade", "--to", "3"), f"--to: the database is at version {HEAD}, past 3: use 'db "
                                                      "downgrade --to 3'")):
            self.assert_clean_error(self.run_cli("db", *argv, "--db", path), 2, said)
        self.assertEqual(digest(Path(path)), before)

    def test_backup(self) -> None:
        """'db backup FILE' writes a consistent copy and never overwrites an existing FILE."""
        path = self.tmp / "b.db"
        open_db(path).close()
        target = self.tmp / "copy.db"
        result = self.run_cli("db", "backup", str(target), "--db", str(path))
        self.assertEqual(result.returncode, 0, result.stderr)
        copy = sqlite3.connect(f"{target.as_uri()}?mode=ro", uri=True)
        self.addCleanup(copy.close)
        self.assertEqual(copy.execute("PRAGMA user_version").fetchone()[0], HEAD)
        # The database is in WAL mode; its backup is one file in the rollback journal's, read without a trace.
        self.assertEqual(copy.execute("PRAGMA journal_mode").fetchone()[0], "delete")
        self.assertEqual(sorted(p.name for p in self.tmp.glob("copy.db*")), ["copy.db"])
        before = digest(target)
        again = self.run_cli("db", "backup", str(target), "--db", str(path))
        self.assert_clean_error(again, 1, "already exists")
        self.assertEqual(digest(target), before)
        default = self.run_cli("db", "backup", "--db", str(path))
        self.assertEqual(default.returncode, 0)
        self.assertTrue(Path(default.stdout.strip()).name.startswith(f"b.db.v{HEAD:04d}.manual-"))
        # Another at once (within the same second, as a script does): a file of its own.
        second = self.run_cli("db", "backup", "--db", str(path))
        self.assertEqual(second.returncode, 0, second.stderr)
        self.assertNotEqual(second.stdout, default.stdout)
        self.assertTrue(Path(default.stdout.strip()).exists() and Path(second.stdout.strip()).exists())

    def test_check_healthy(self) -> None:
        """'db check' passes a healthy database."""
        path = self.tmp / "c.db"
        open_db(path).close()
        result = self.run_cli("db", "check", "--db", str(path), "--json")
        self.assertEqual(result.returncode, 0, result.stderr)
        report = json.loads(result.stdout)
        self.assertTrue(report["ok"])
        self.assertEqual({c["check"] for c in report["checks"]},
                         {"integrity", "foreign_keys", "schema_version", "drift", "live_schema"})

    def test_check_finds_damage_and_dangling_keys(self) -> None:
        """'db check' exits 1 for a damaged page and for a foreign-key violation."""
        path = self.tmp / "c.db"
        open_db(path).close()
        raw = sqlite3.connect(path)
        raw.execute("INSERT INTO responses VALUES (:id, 'approved', '', NULL, 'me', 'now')", {"id": "c" * 32})
        raw.commit()
        raw.close()
        result = self.run_cli("db", "check", "--db", str(path), "--json")
        self.assertEqual(result.returncode, 1)
        failed = {c["check"] for c in json.loads(result.stdout)["checks"] if not c["ok"]}
        self.assertEqual(failed, {"foreign_keys"})
        data = bytearray(path.read_bytes())
        data[2 * 4096 : 2 * 4096 + 64] = b"\xff" * 64
        path.write_bytes(bytes(data))
        result = self.run_cli("db", "check", "--db", str(path))
        self.assertEqual(result.returncode, 1)
        self.assertIn("ERROR  integrity", result.stdout)

    def test_check_missing_database(self) -> None:
        """'db check' on a path with no database fails clearly without creating one."""
        result = self.run_cli("db", "check", "--db", str(self.tmp / "none.db"))
        self.assertEqual(result.returncode, 1)
        self.assertFalse((self.tmp / "none.db").exists())


class BadFilesTest(TempDirTest):
    """Each bad file gets one clear line on stderr and exit 1, and is left byte for byte as it was."""

    def assert_refused(self, path: Path, *needles: str, cwd: Path = REPO) -> None:
        before = digest(path)
        for argv in (("db", "status"), ("db", "upgrade"), ("proposals", "list")):
            with self.subTest(argv=argv):
                result = self.run_cli(*argv, "--db", str(path), cwd=cwd)
                self.assertEqual(result.returncode, 1, result.stderr)
                self.assertNotIn("Traceback", result.stderr)
                errors = [line for line in result.stderr.splitlines() if line.startswith("bot-bottle: error:")]
                self.assertEqual(len(errors), 1, result.stderr)
                for needle in needles:
                    self.assertIn(needle, result.stderr)
                self.assertEqual(digest(path), before, "the file was changed")

    def test_not_a_database(self) -> None:
        """A text file in the database's place."""
        path = self.tmp / "notes.db"
        path.write_text("these are my notes, not a database\n" * 50)
        self.assert_refused(path, "not an SQLite database")

    def test_corrupt_database(self) -> None:
        """A database whose schema page is damaged."""
        path = self.tmp / "corrupt.db"
        open_db(path).close()
        data = bytearray(path.read_bytes())
        data[100:110] = b"\xff" * 10  # page 1's b-tree header, just past the file header
        path.write_bytes(bytes(data))
        self.assert_refused(path, "corrupt")

    def test_directory(self) -> None:
        """A directory where the file should be."""
        path = self.tmp / "dir.db"
        path.mkdir()
        self.assert_refused(path, "is a directory")

    def test_newer_than_code(self) -> None:
        """A database migrated by a newer bot-bottle (which recorded the migration it applied)."""
        path = self.tmp / "new.db"
        open_db(path).close()
        raw = sqlite3.connect(path)
        raw.execute("INSERT INTO schema_history (version, name, sha256, applied_at) "
                    "VALUES (99, 'from_the_future', :h, '2030-01-01T00:00:00.000000Z')", {"h": "a" * 64})
        raw.execute("PRAGMA user_version = 99")
        raw.commit()
        raw.close()
        self.assert_refused(path, "version 99", f"up to {HEAD}")

    def test_a_version_set_behind_our_back(self) -> None:
        """BROKE before the fix: 'db status' told a version no migration recorded (a sidecar set it) to "upgrade
        the sidecar image or run a newer bot-bottle", where every other verb says it was changed behind
        bot-bottle's back and how to restore it."""
        path = self.tmp / "set.db"
        open_db(path).close()
        raw = sqlite3.connect(path)
        raw.execute("PRAGMA user_version = 99")
        raw.commit()
        raw.close()
        self.assert_refused(path, "says schema version 99, but its migration history ends at", "behind bot-bottle's")

    def test_drift(self) -> None:
        """An applied migration whose file was edited afterwards (a checkout with an edited file)."""
        path = self.tmp / "drift.db"
        open_db(path).close()
        root = self.copy_package()
        edited = root / "migrations" / "0002_supervise_queue.up.sql"
        edited.write_text(edited.read_text().replace("proposals_by_bottle", "proposals_per_bottle"))
        self.assert_refused(path, "0002_supervise_queue", "edited", cwd=root)

    def test_missing_down_file(self) -> None:
        """An installation whose newest migration lacks its down file."""
        path = self.tmp / "m.db"
        open_db(path).close()
        folder = self.tmp / "m"
        shutil.copytree(MIGRATIONS, folder)
        write_migration(folder, HEAD + 1, "next", "CREATE TABLE n (x);", "DROP TABLE n;")
        (folder / f"{HEAD + 1:04d}_next.down.sql").unlink()
        root = self.copy_package(folder)
        self.assert_refused(path, "no down file", cwd=root)

    def test_gap_in_numbering(self) -> None:
        """An installation whose migrations skip a number."""
        path = self.tmp / "g.db"
        open_db(path).close()
        folder = self.tmp / "m"
        shutil.copytree(MIGRATIONS, folder)
        write_migration(folder, HEAD + 2, "later", "CREATE TABLE n (x);", "DROP TABLE n;")
        root = self.copy_package(folder)
        self.assert_refused(path, f"{HEAD + 1:04d} is missing", cwd=root)

    def test_read_only_location(self) -> None:
        """A database in a directory the user cannot write (SQLite could not write its journal)."""
        folder = self.tmp / "ro"
        folder.mkdir()
        path = folder / "ro.db"
        open_db(path).close()
        before = digest(path)
        if os.geteuid() == 0:
            # Root ignores permission bits, so make the location really read-only:
            # a read-only bind mount of the folder, in a mount namespace of its own.
            unshare = require_tool(self, "unshare")
            mount = (f"mount --bind {folder} {folder} && mount -o remount,ro,bind {folder} && exec \"$@\"")
            prefix = [unshare, "--mount", "--propagation", "private", "sh", "-c", mount, "sh"]
        else:
            os.chmod(path, 0o400)
            os.chmod(folder, 0o500)
            prefix = []
        for argv in (("db", "status"), ("proposals", "list")):
            with self.subTest(argv=argv):
                result = subprocess.run(
                    [*prefix, sys.executable, "-m", "bot_bottle", *argv, "--db", str(path)],
                    cwd=REPO, env={**os.environ, "HOME": str(self.home), "PYTHONDONTWRITEBYTECODE": "1"},
                    capture_output=True, text=True, timeout=60,
                )
                self.assert_clean_error(result, 1, "not writable")
        self.assertEqual(digest(path), before)
        self.assertEqual(sorted(os.listdir(folder)), ["ro.db"], "no journal or other file was left")
