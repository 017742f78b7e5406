"""A sidecar in a mount namespace of its own writes the host's database through WAL, the host reading it.

The sidecar's process runs in a private mount namespace (``unshare``) with
the host's database directory bind-mounted at ``/run/supervise``, as Docker on
Linux does: another mount table, the same kernel. It files through the mount
transport (``find_transport``) while the host, outside the namespace, sleeps
on its commit watch and decides. What crosses the bind mount is WAL's whole
mechanism: the sidecar's commits reach the host from the WAL alone (the host
reads them before any checkpoint has copied them into the file), through the
index both processes map from ``bot-bottle.db-shm``, and each commit's signal
wakes the host's watch.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from bot_bottle.audit_store import AuditStore
from bot_bottle.db import open_db
from bot_bottle.decisions import decide
from bot_bottle.file_watch import FileWatch
from bot_bottle.queue_store import QueueStore
from bot_bottle.records import STATUS_APPROVED
from tests.helpers.support import TempDirTest, in_mount_namespace

FILINGS = 5

_SIDECAR = f"""
from bot_bottle.connection import connect
from bot_bottle.sidecar.transport import MOUNT, find_transport
transport = find_transport()
assert transport.kind == MOUNT, transport
queue = transport.open("web-1")
look = connect(transport.database, switch_journal=False)
print("journal", look.execute("PRAGMA journal_mode").fetchone()[0], flush=True)
look.close()
for number in range({FILINGS}):
    proposal = queue.submit("egress-allow", '{{"host": "w%d.example"}}' % number, "through the bind mount")
    response = queue.wait_for_response(proposal.id, 60)
    print("decided", proposal.id, response.status if response else None, flush=True)
    queue.archive(proposal.id)
queue.close()
"""


class WalThroughTheMountTest(TempDirTest):
    def test_a_sidecar_in_its_own_mount_namespace_files_through_wal(self) -> None:
        host_dir = self.tmp / "host-db"
        database = host_dir / "bot-bottle.db"
        open_db(database).close()
        watch = FileWatch.commits(database)
        if watch is not None:
            self.addCleanup(watch.close)
        seen_in_wal_only: list[bool] = []
        decided: list[str] = []
        failures: list[BaseException] = []

        def operator() -> None:
            try:
                with QueueStore(database) as store:
                    while len(decided) < FILINGS:
                        if watch is not None:
                            watch.wait(0.5)  # the sidecar's commits wake it, from the other namespace
                        for proposal in store.pending("web-1"):
                            seen_in_wal_only.append(not _in_the_file_itself(database, proposal.id))
                            decide(proposal.id, STATUS_APPROVED, "seen from the host", store=store)
                            decided.append(proposal.id)
            except BaseException as exc:
                failures.append(exc)

        thread = threading.Thread(target=operator, daemon=True)
        thread.start()
        script = """
            mount -t tmpfs tmpfs /run || exit 90
            mkdir /run/supervise
            mount --bind "$HOSTDB" /run/supervise || exit 91
            "$PY" -c "$SIDECAR"
        """
        result = in_mount_namespace(self, script, {"HOSTDB": str(host_dir), "SIDECAR": _SIDECAR})
        decided_at_all = len(decided)
        thread.join(30)
        self.assertEqual(failures, [])
        self.assertEqual(result.returncode, 0, result.stderr)
        lines = result.stdout.splitlines()
        self.assertEqual(lines[0], "journal wal", "the sidecar writes through the host's WAL")
        self.assertEqual(lines[1:], [f"decided {pid} approved" for pid in decided], result.stderr)
        self.assertEqual(decided_at_all, FILINGS)
        self.assertIn(True, seen_in_wal_only, "the host read a filing that was in the WAL alone")
        with QueueStore(database) as store, store.db.read() as conn:
            self.assertEqual(conn.execute("PRAGMA journal_mode").fetchone()[0], "wal")
            self.assertEqual(conn.execute("SELECT count(*) FROM proposals WHERE archived_at IS NOT NULL")
                             .fetchone()[0], FILINGS)
            self.assertEqual(conn.execute("PRAGMA integrity_check").fetchone()[0], "ok")
        with AuditStore(database) as audit:
            verified = audit.verify()
        self.assertTrue(verified.ok, verified.problem)


def _in_the_file_itself(database: Path, proposal_id: str) -> bool:
    """Whether the proposal is in the database file proper (checkpointed), leaving the WAL aside."""
    raw = sqlite3.connect(f"{database.as_uri()}?immutable=1", uri=True)
    try:
        return raw.execute("SELECT 1 FROM proposals WHERE id = ?", (proposal_id,)).fetchone() is not None
    finally:
        raw.close()
