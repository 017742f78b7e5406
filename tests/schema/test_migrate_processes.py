"""Migrations across real processes: racing migrators, and a migrator killed midway."""

from __future__ import annotations

import multiprocessing
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bot_bottle.connection import connect
from bot_bottle.db import open_db
from bot_bottle.schema import migrate
from tests.helpers.support import MIGRATIONS, REPO, TempDirTest, write_migration

SPAWN = multiprocessing.get_context("spawn")


def _open_db_at_once(path: str, barrier: Any, results: Any) -> None:
    barrier.wait()
    try:
        conn = open_db(path)
        results.put(("ok", migrate.current_version(conn)))
        conn.close()
    except BaseException as exc:
        results.put(("error", repr(exc)))


def _upgrade_at_once(path: str, folder: str, barrier: Any, results: Any) -> None:
    known = migrate.discover(Path(folder))
    barrier.wait()
    try:
        conn = connect(path)
        result = migrate.upgrade(conn, migrations=known)
        results.put(("ok", result.versions))
        conn.close()
    except BaseException as exc:
        results.put(("error", repr(exc)))


def _collect(results: Any, count: int) -> list[tuple[str, Any]]:
    return [results.get(timeout=120) for _ in range(count)]


class RacingMigratorsTest(TempDirTest):
    def run_workers(self, target: Any, args: tuple[Any, ...], count: int) -> list[tuple[str, Any]]:
        barrier = SPAWN.Barrier(count)
        results = SPAWN.Queue()
        workers = [SPAWN.Process(target=target, args=(*args, barrier, results)) for _ in range(count)]
        for worker in workers:
            worker.start()
        collected = _collect(results, count)
        for worker in workers:
            worker.join(timeout=60)
            self.assertEqual(worker.exitcode, 0)
        return collected

    def test_processes_open_a_fresh_file_at_once(self) -> None:
        """2 and 8 processes calling open_db on a fresh file together all end at head, without errors."""
        head = len(migrate.discover())
        for count in (2, 8):
            with self.subTest(processes=count):
                path = self.tmp / f"fresh{count}.db"
                outcomes = self.run_workers(_open_db_at_once, (str(path),), count)
                self.assertEqual(outcomes, [("ok", head)] * count)
                conn = sqlite3.connect(path)
                self.addCleanup(conn.close)
                versions = [v for (v,) in conn.execute("SELECT version FROM schema_history ORDER BY version")]
                self.assertEqual(versions, list(range(1, head + 1)))

    def test_each_migration_is_applied_exactly_once(self) -> None:
        """8 racing upgrades: every migration applied by exactly one process, its side effect once."""
        folder = self.tmp / "m"
        shutil.copytree(MIGRATIONS, folder)
        head = len(migrate.discover(folder))
        write_migration(folder, head + 1, "tally", "CREATE TABLE tally (n INTEGER);\nINSERT INTO tally VALUES (1);",
                        "DROP TABLE tally;")
        write_migration(folder, head + 2, "tally_more", "INSERT INTO tally VALUES (2);",
                        "DELETE FROM tally WHERE n = 2;")
        path = self.tmp / "race.db"
        outcomes = self.run_workers(_upgrade_at_once, (str(path), str(folder)), 8)
        errors = [detail for kind, detail in outcomes if kind != "ok"]
        self.assertEqual(errors, [])
        applied = sorted(v for _, versions in outcomes for v in versions)
        self.assertEqual(applied, list(range(1, head + 3)), "each version applied by exactly one process")
        conn = sqlite3.connect(path)
        self.addCleanup(conn.close)
        self.assertEqual(conn.execute("SELECT n FROM tally ORDER BY n").fetchall(), [(1,), (2,)])


_SLOW_MIGRATOR = """
import sys
from pathlib import Path
from bot_bottle.schema import migrate
from bot_bottle.connection import connect
conn = connect(sys.argv[1], switch_journal=sys.argv[3] == "wal")
migrate.upgrade(conn, migrations=migrate.discover(Path(sys.argv[2])))
print("finished", flush=True)
"""


class KilledMigratorTest(TempDirTest):
    def test_sigkill_mid_migration_leaves_previous_version(self) -> None:
        """SIGKILL while a slow migration has written pages, in WAL and in rollback mode: the next open
        ignores (WAL) or rolls back (a hot journal) what it wrote, checks clean, and migrates."""
        for mode in ("wal", "delete"):
            with self.subTest(mode):
                self.killed_midway(mode)

    def killed_midway(self, mode: str) -> None:
        folder = self.tmp / f"m-{mode}"
        shutil.copytree(MIGRATIONS, folder)
        head = len(migrate.discover(folder))
        path = self.tmp / f"killed-{mode}.db"
        conn = open_db(path)
        conn.execute(f"PRAGMA journal_mode = {mode}")
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(
            "INSERT INTO proposals (id, queue_key, tool, payload, payload_sha256, justification, created_at) "
            "VALUES (:id, 'web', 'egress-allow', 'x', :sha, 'j', '2026-01-01T00:00:00.000000Z')",
            {"id": "a" * 32, "sha": "b" * 64},
        )
        conn.execute("COMMIT")
        conn.close()
        slow_up = (
            "CREATE TABLE big (x INTEGER, b BLOB);\n"
            "INSERT INTO big WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 10000000)"
            " SELECT x, randomblob(32) FROM c;\n"
        )
        write_migration(folder, head + 1, "slow", slow_up, "DROP TABLE big;")
        size_before = path.stat().st_size
        journal = Path(str(path) + "-journal")
        wal = Path(str(path) + "-wal")
        child = subprocess.Popen(
            [sys.executable, "-c", _SLOW_MIGRATOR, str(path), str(folder), mode],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        self.addCleanup(lambda: child.poll() is None and child.kill())

        def midway() -> bool:
            # Really midway: uncommitted pages have spilled out of the cache, into the WAL or, with the
            # rollback journal, into the file itself (the old pages kept in the journal).
            if mode == "wal":
                return wal.exists() and wal.stat().st_size > size_before + 4 * 1024 * 1024
            return journal.exists() and path.stat().st_size > size_before + 4 * 1024 * 1024

        deadline = time.monotonic() + 60
        while not midway():
            if child.poll() is not None:
                self.fail(f"the migrator ended early: {child.communicate()}")
            self.assertLess(time.monotonic(), deadline, "the slow migration never got going")
            time.sleep(0.01)
        os.kill(child.pid, signal.SIGKILL)
        child.communicate()
        if mode == "delete":
            self.assertTrue(journal.exists(), "a hot journal is left behind")
        else:
            self.assertGreater(wal.stat().st_size, 4 * 1024 * 1024, "frames of no commit are left in the WAL")

        # Make the migration quick for the retry; it was never applied, so this is no drift.
        (folder / f"{head + 1:04d}_slow.up.sql").write_text(slow_up.replace("10000000", "1000"))
        conn = connect(path, switch_journal=mode == "wal")
        self.addCleanup(conn.close)
        self.assertEqual(conn.execute("PRAGMA journal_mode").fetchone()[0], mode)
        self.assertEqual(migrate.current_version(conn), head)
        self.assertEqual(conn.execute("PRAGMA integrity_check").fetchall(), [("ok",)])
        self.assertIsNone(conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'big'").fetchone())
        self.assertEqual(conn.execute("SELECT count(*) FROM proposals").fetchone()[0], 1)
        result = migrate.upgrade(conn, migrations=migrate.discover(folder))
        self.assertEqual(result.versions, (head + 1,))
        self.assertEqual(conn.execute("SELECT count(*) FROM big").fetchone()[0], 1000)
