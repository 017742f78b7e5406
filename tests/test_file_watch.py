"""The file watch and the pool of watches a store lends its waiters."""

from __future__ import annotations

import sqlite3
import threading

from bot_bottle.audit_store import AuditStore
from bot_bottle.connection import checkpoint, connect, transaction
from bot_bottle.decisions import decide, expire_in
from bot_bottle.file_watch import FileWatch, WatchPool
from bot_bottle.queue_store import QueueStore
from tests.helpers.support import TempDirTest, wait_until


class WatchPoolTest(TempDirTest):
    def setUp(self) -> None:
        super().setUp()
        self.path = self.tmp / "watched"
        self.path.write_text("0")
        probe = FileWatch.open(self.path)
        if probe is None:
            self.skipTest("no inotify here: waiters poll, and there is nothing to pool")
        probe.close()

    def test_a_returned_watch_is_lent_again_drained(self) -> None:
        pool = WatchPool(self.path, opener=FileWatch.open)
        self.addCleanup(pool.close)
        with pool.watch() as first:
            assert first is not None
            fd = first.fd
        self.path.write_text("1")  # an event queued while nobody waits
        with pool.watch() as again:
            assert again is not None
            self.assertEqual(again.fd, fd, "the same watch, not a new one")
            self.assertFalse(again.wait(0.05), "events from before the wait were drained")
            self.path.write_text("2")
            self.assertTrue(again.wait(5), "a change during the wait wakes it")

    def test_concurrent_waiters_each_have_their_own_watch(self) -> None:
        pool = WatchPool(self.path, opener=FileWatch.open)
        self.addCleanup(pool.close)
        inside = threading.Barrier(2)
        fds: list[int] = []
        woke: list[bool] = []

        def wait() -> None:
            with pool.watch() as watch:
                assert watch is not None
                fds.append(watch.fd)
                inside.wait(5)
                woke.append(watch.wait(5))

        threads = [threading.Thread(target=wait) for _ in range(2)]
        for thread in threads:
            thread.start()
        wait_until(lambda: len(fds) == 2, what="both waiters holding a watch")
        self.path.write_text("3")
        for thread in threads:
            thread.join(10)
        self.assertEqual(len(set(fds)), 2)
        self.assertEqual(woke, [True, True], "one waiter draining its events does not steal the other's")

    def test_closing_the_pool_closes_idle_and_returned_watches(self) -> None:
        pool = WatchPool(self.path, keep=1, opener=FileWatch.open)
        with pool.watch() as lent, pool.watch() as second:
            assert lent is not None and second is not None
        # keep=1: one went back to the pool, the other was closed on return.
        self.assertEqual(sorted(w.fd >= 0 for w in (lent, second)), [False, True])
        with pool.watch() as during:
            assert during is not None
            pool.close()
            self.assertGreaterEqual(during.fd, 0, "a lent watch stays usable until it comes back")
        self.assertEqual((lent.fd, second.fd, during.fd), (-1, -1, -1))


class CommitWatchTest(TempDirTest):
    """``FileWatch.commits`` wakes when a write transaction has ended, not while it is under way, nor for reads."""

    def setUp(self) -> None:
        super().setUp()
        self.db = self.tmp / "queue.db"
        self.writer = sqlite3.connect(self.db, isolation_level=None)
        self.addCleanup(self.writer.close)
        self.writer.execute("PRAGMA journal_mode = DELETE")
        self.writer.execute("CREATE TABLE t (x)")
        watch = FileWatch.commits(self.db)
        if watch is None:
            self.skipTest("no inotify here: waiters poll")
        self.watch = watch
        self.addCleanup(watch.close)

    def test_a_commit_wakes_it_once_it_is_over(self) -> None:
        self.writer.execute("BEGIN IMMEDIATE")
        self.writer.execute("INSERT INTO t VALUES (1)")
        self.writer.execute("SELECT * FROM t").fetchall()
        self.assertFalse(self.watch.wait(0.05), "nothing has been committed yet")
        self.writer.execute("COMMIT")
        self.assertTrue(self.watch.wait(5))
        reader = sqlite3.connect(self.db, isolation_level=None, timeout=0)
        self.addCleanup(reader.close)
        self.assertEqual(reader.execute("SELECT x FROM t").fetchall(), [(1,)], "readable at once, no lock held")

    def test_a_rollback_wakes_it_too(self) -> None:
        self.writer.execute("BEGIN IMMEDIATE")
        self.writer.execute("INSERT INTO t VALUES (1)")
        self.writer.execute("ROLLBACK")
        self.assertTrue(self.watch.wait(5), "the journal was removed: look (and find nothing new)")

    def test_reads_and_other_files_do_not_wake_it(self) -> None:
        self.writer.execute("SELECT * FROM t").fetchall()
        other = self.tmp / "other.txt"
        other.write_text("x")
        other.rename(self.tmp / "moved.txt")
        (self.tmp / "moved.txt").unlink()
        self.assertFalse(self.watch.wait(0.1))

    def test_the_database_replaced_wakes_it(self) -> None:
        replacement = self.tmp / "new.db"
        replacement.write_bytes(self.db.read_bytes())
        replacement.rename(self.db)
        self.assertTrue(self.watch.wait(5))


class WalCommitWatchTest(TempDirTest):
    """In WAL mode the watch wakes at the end of each commit made through ``transaction``, and only then."""

    def setUp(self) -> None:
        super().setUp()
        self.db = self.tmp / "queue.db"
        self.writer = connect(self.db)
        self.addCleanup(self.writer.close)
        self.assertEqual(self.writer.execute("PRAGMA journal_mode").fetchone()[0], "wal")
        with transaction(self.writer):
            self.writer.execute("CREATE TABLE t (x)")
        # Every connection has opened the WAL before the watch starts: SQLite run as root gives a WAL it
        # opens to the database's owner, which is an IN_ATTRIB too (a look too many, nothing worse).
        self.reader = connect(self.db, busy_timeout=0)
        self.addCleanup(self.reader.close)
        self.raw = sqlite3.connect(self.db, isolation_level=None)
        self.addCleanup(self.raw.close)
        for conn in (self.reader, self.raw):
            conn.execute("SELECT count(*) FROM t").fetchone()
        watch = FileWatch.commits(self.db)
        if watch is None:
            self.skipTest("no inotify here: waiters poll")
        self.watch = watch
        self.addCleanup(watch.close)

    def test_a_commit_wakes_it_once_it_is_readable(self) -> None:
        self.writer.execute("BEGIN IMMEDIATE")
        self.writer.execute("INSERT INTO t VALUES (1)")
        self.assertFalse(self.watch.wait(0.05), "nothing has been committed yet")
        self.writer.execute("ROLLBACK")
        self.assertFalse(self.watch.wait(0.05), "nor after a rollback")
        with transaction(self.writer):
            self.writer.execute("INSERT INTO t VALUES (2)")
        self.assertTrue(self.watch.wait(5))
        self.assertEqual(self.reader.execute("SELECT x FROM t").fetchall(), [(2,)], "visible at once")

    def test_frames_written_without_the_signal_and_checkpoints_do_not_wake_it(self) -> None:
        """A commit's frames alone (a writer that does not signal) and a checkpoint are not the end of ours."""
        self.raw.execute("INSERT INTO t VALUES (3)")
        self.raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self.assertFalse(self.watch.wait(0.1))
        with transaction(self.writer):
            self.writer.execute("INSERT INTO t VALUES (4)")
        self.assertTrue(self.watch.wait(5))


class DecisionWatchTest(TempDirTest):
    """``FileWatch.decisions``, what a store's waiters sleep on, wakes for a decision's commit and not for
    a filing's, an archive's or a checkpoint's: with many sidecars waiting, the others' filings and
    archives would wake every one of them to find nothing."""

    def setUp(self) -> None:
        super().setUp()
        self.path = self.tmp / "queue.db"
        self.store = QueueStore(self.path)
        self.addCleanup(self.store.close)
        self.bottle = self.store.for_bottle("web-1")
        # Every connection has opened the WAL before the watch starts (see WalCommitWatchTest).
        self.bottle.submit("egress-allow", '{"host": "warm.example"}', "open the files first")
        watch = FileWatch.decisions(self.path)
        if watch is None:
            self.skipTest("no inotify here: waiters poll")
        self.watch = watch
        self.addCleanup(watch.close)
        self.commits = FileWatch.commits(self.path)
        assert self.commits is not None
        self.addCleanup(self.commits.close)

    def test_a_decision_wakes_it_and_is_readable_at_once(self) -> None:
        proposal = self.bottle.submit("egress-allow", '{"host": "docs.python.org"}', "read the docs")
        self.assertTrue(self.commits.wait(5), "the filing is a commit")
        self.assertFalse(self.watch.wait(0.1), "but not a decision")
        decide(proposal.id, "approved", decided_by="op@host", store=self.store)
        self.assertTrue(self.watch.wait(5))
        reader = QueueStore(self.path)
        self.addCleanup(reader.close)
        response = reader.for_bottle("web-1").response(proposal.id)
        self.assertIsNotNone(response, "visible at once")
        self.bottle.archive(proposal.id)
        with self.store.db.read() as conn:
            self.assertEqual(checkpoint(conn)[0], 0, "the checkpoint ran")
        self.assertTrue(self.commits.wait(5), "the archive is a commit")
        self.assertFalse(self.watch.wait(0.1), "but not a decision, nor is a checkpoint")

    def test_an_expiry_and_a_rejection_wake_it(self) -> None:
        proposal = self.bottle.submit("egress-allow", '{"host": "a.example"}', "a")
        decide(proposal.id, "rejected", "too broad", decided_by="op@host", store=self.store)
        self.assertTrue(self.watch.wait(5))
        self.watch.drain()
        with AuditStore.recording(self.store.db) as log:
            self.assertEqual(expire_in(log, "9999-01-01T00:00:00.000000Z"), 1)
        self.assertTrue(self.watch.wait(5), "the expiry of the proposal filed in setUp")
