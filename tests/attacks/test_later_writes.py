"""A trigger a sidecar on the mount adds that rolls back the host's write transaction carrying a kept archive.

The relay files for many bottles through one store, and a bottle's archive
rides on that store's next write, whichever bottle's it is
(``db.later.LaterWrites``). A row a trigger refuses with ``RAISE(ABORT)`` is
dropped and the write goes on. A trigger that says ``RAISE(ROLLBACK)`` ends
the whole transaction, and the error was swallowed the same way: before the
fix the carrying write went on with no transaction at all, so another
bottle's filing committed its dedupe, its quota count and its insert one
statement at a time, outside the write lock, and then failed ("cannot commit
- no transaction is active") with its proposal written; and the refused row
was given back, so every later write of that store (every bottle's filing,
heartbeat, stop) did the same, for as long as the process ran. Measured: a
bottle with a quota of 2 was told its first two filings failed, and both
were in the file, filling its quota; its heartbeat failed too.
A trigger that fails the archive's UPDATE with any error other than a
refusal (``json('x')``: "malformed JSON") was not dropped at all: every
write of the relay's store failed, for every bottle, with a message calling
the database corrupt and pointing at a backup to restore. Through the
relay's standing rules, a rule's rejection and its sealed audit entry were
committed, one statement at a time, for a filing the relay reported failed.

The relay is a host process, and the host's writes now drop a trigger no
migration made before anything else (``schema.guard``): such a trigger
never runs in them. A sidecar's own store carries its bottle's archive the
same way, unguarded, so the carrying is tested on one of those, with two
bottles to show that no other write is touched.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from unittest import mock

from bot_bottle import queue_store
from bot_bottle.decisions import decide
from bot_bottle.errors import DatabaseError
from bot_bottle.paths import host_db_path
from bot_bottle.queue_store import BottleQueue, QueueStore
from bot_bottle.records import STATUS_APPROVED, TOOL_EGRESS_ALLOW, TOOL_EGRESS_BLOCK, Proposal, Quota
from bot_bottle.standing import rule_decision_in
from tests.helpers.support import TempDirTest, digest


class RollbackTriggerTest(TempDirTest):
    def setUp(self) -> None:
        patcher = mock.patch.object(queue_store, "ARCHIVE_WRITE_DELAY_SEC", 600.0)  # the next write carries it
        patcher.start()
        self.addCleanup(patcher.stop)
        super().setUp()
        self.path = self.tmp / "q.db"
        self.relay = QueueStore(self.path)  # one store, many bottles, as the relay's
        self.addCleanup(self.relay.close)
        self.sidecar_store = QueueStore(self.path, migrate_schema=False)  # unguarded, as a sidecar's
        self.addCleanup(self.sidecar_store.close)

    def sidecar_adds_trigger(self, sql: str) -> None:
        """The sidecar on the mount, a process of its own, writes the schema directly."""
        script = "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.execute(sys.argv[2]); c.commit()"
        subprocess.run([sys.executable, "-c", script, str(self.path), sql], check=True, timeout=60)

    def count(self, queue_key: str) -> int:
        with sqlite3.connect(self.path) as raw:
            return int(raw.execute("SELECT count(*) FROM proposals WHERE queue_key = ?", (queue_key,)).fetchone()[0])

    def archived_behind_trigger(self, store: QueueStore, bottle: BottleQueue, body: str) -> Proposal:
        """``bottle`` files and is approved; the sidecar adds a trigger on that proposal's archive running
        ``body``; the bottle archives it, kept for the store's next write."""
        proposal = bottle.submit(TOOL_EGRESS_BLOCK, "routes: [a]\n", "j")
        decide(proposal.id, STATUS_APPROVED, store=store)
        self.sidecar_adds_trigger(
            f"CREATE TRIGGER t BEFORE UPDATE OF archived_at ON proposals WHEN NEW.id = '{proposal.id}' "
            f"BEGIN {body}; END")
        bottle.archive(proposal.id)
        return proposal

    def test_a_rolled_back_archive_fails_one_write_whole_and_no_other(self) -> None:
        a = self.sidecar_store.for_bottle("vm-a")
        b = self.sidecar_store.for_bottle("vm-b", quota=Quota(max_pending=2, max_pending_bytes=10_000))
        proposal = self.archived_behind_trigger(self.sidecar_store, a, "SELECT RAISE(ROLLBACK, 'no')")
        before = digest(self.path)
        with self.assertRaises(DatabaseError) as caught:
            b.submit(TOOL_EGRESS_BLOCK, "routes: [b0]\n", "j")
        self.assertIn("rolled back", str(caught.exception))
        self.assertEqual(self.count("vm-b"), 0, "a filing that failed wrote nothing")
        self.assertEqual(digest(self.path), before)
        self.assertIsNone(self.sidecar_store.unwritten_archive(proposal.id), "the refused row is dropped")
        b.heartbeat()
        first = b.submit(TOOL_EGRESS_BLOCK, "routes: [b1]\n", "j")
        second = b.submit(TOOL_EGRESS_BLOCK, "routes: [b2]\n", "j")
        self.assertEqual(self.count("vm-b"), 2)
        self.assertNotEqual(first.id, second.id)
        self.assertIsNone(self.sidecar_store.get(proposal.id).archived_at)

    def test_the_relays_filing_drops_the_trigger_and_its_rule_decides(self) -> None:
        """The relay's filings run its standing rules in the filing's transaction. Before the guard, a trigger
        rolling that transaction back failed the filing (with nothing of it committed); now the relay's write
        drops the trigger first: the archive it carries is written, and the rule decides the filing."""
        self.assertEqual(self.run_cli("db", "upgrade").returncode, 0)
        added = self.run_cli("rules", "add", "--all-bottles", "--host", "pastebin.com", "--reject", "--notes", "no")
        self.assertEqual(added.returncode, 0, added.stderr)
        self.path = host_db_path()
        relay = QueueStore()
        self.addCleanup(relay.close)
        a = relay.for_bottle("vm-a", standing=rule_decision_in)
        b = relay.for_bottle("vm-b", standing=rule_decision_in)
        proposal = self.archived_behind_trigger(relay, a, "SELECT RAISE(ROLLBACK, 'no')")
        filed = b.submit(TOOL_EGRESS_ALLOW, '{"host": "pastebin.com"}', "j")
        self.assertEqual(relay.response(filed.id).status, "rejected", "the filing is decided by the rule")
        self.assertIsNotNone(relay.get(proposal.id).archived_at)
        with sqlite3.connect(self.path) as raw:
            self.assertEqual(raw.execute("SELECT count(*) FROM sqlite_master WHERE name = 't'").fetchone()[0], 0)

    def test_an_archive_a_trigger_fails_otherwise_is_dropped_too(self) -> None:
        """Any error of the archive's row drops that row: the write carrying it goes on, and the next ones."""
        a = self.sidecar_store.for_bottle("vm-a")
        b = self.sidecar_store.for_bottle("vm-b")
        proposal = self.archived_behind_trigger(self.sidecar_store, a, "SELECT json('x')")
        b.submit(TOOL_EGRESS_BLOCK, "routes: [b0]\n", "j")
        b.heartbeat()
        b.submit(TOOL_EGRESS_BLOCK, "routes: [b1]\n", "j")
        self.assertEqual(self.count("vm-b"), 2)
        self.assertIsNone(self.sidecar_store.unwritten_archive(proposal.id))
        self.assertIsNone(self.sidecar_store.get(proposal.id).archived_at)
