"""The database in WAL mode under real processes: no read holds up a writer, and kill -9 loses nothing.

A long read (``audit verify`` of the log, a backup, a listing) is held open in
one process for as long as the test likes, by stopping it midway (a verify's
progress callback, a backup's, a listing's cursor between rows); sidecar
processes file and an operator process decides meanwhile. Every filing and
decision must complete while the read is still open, which is only possible
if none of them waits for it; the reader's own result then shows the state
from before them all, so the read did span them. The same scenario in the
rollback journal's mode is the control: there the filing fails with
``DatabaseBusy`` after the busy timeout. No timing is asserted here; how long
a filing takes during a verify of a million entries is ``bench/scale.py``'s.

Crash safety: processes killed with SIGKILL while deciding (one decision a
commit, or several in one), and while checkpointing a large WAL into the file; the next open has every decision
that was reported, none twice, and an audit log that verifies.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bot_bottle.audit_store import AuditStore
from bot_bottle.connection import connect
from bot_bottle.db import open_db
from bot_bottle.decisions import decide
from bot_bottle.errors import AlreadyDecided, DatabaseBusy
from bot_bottle.queue_store import QueueStore
from bot_bottle.records import STATUS_APPROVED, TOOL_EGRESS_ALLOW, TOOL_EGRESS_BLOCK
from bot_bottle.schema.backups import backup_to
from bot_bottle.schema.state import integrity_problems
from tests.helpers.processes import SPAWN, entries_beyond_decisions, expected_decision
from tests.helpers.support import REPO, TempDirTest, wait_until

SIDECARS = 4
PER_SIDECAR = 10
SEEDED = 12


def _hold_read(path: str, kind: str, host: bool, holding: Any, release: Any, results: Any) -> None:
    """Start a read of ``kind``, stop midway until ``release`` is set; report what its snapshot saw."""
    def pause(*_: object) -> None:
        if not holding.is_set():
            holding.set()
            if not release.wait(300):
                raise RuntimeError("never released")

    try:
        if kind == "verify":
            with AuditStore(path, migrate_schema=host) as audit:
                result = audit.verify(batch=5, progress=lambda done, total: pause())
            results.put(("reader", result.ok, result.count))
        elif kind == "backup":
            with QueueStore(path, migrate_schema=host) as store, store.db.read() as conn:
                real = conn.backup

                def slow(copy: sqlite3.Connection) -> None:
                    # One snapshot for every step, as a large file's backup is one long step.
                    conn.execute("BEGIN")
                    conn.execute("SELECT count(*) FROM proposals").fetchone()
                    real(copy, pages=1, progress=pause)
                    conn.execute("COMMIT")

                wrapped = type("Slow", (), {"backup": staticmethod(slow), "execute": conn.execute})()
                target = Path(path).with_name("held.bak.db")
                backup_to(wrapped, target)  # type: ignore[arg-type]
            copy = sqlite3.connect(target)
            results.put(("reader", True, copy.execute("SELECT count(*) FROM proposals").fetchone()[0]))
            copy.close()
        else:
            with QueueStore(path, migrate_schema=host) as store, store.db.read() as conn:
                cursor = conn.execute("SELECT id, justification FROM proposals ORDER BY created_at")
                rows = [cursor.fetchone()]
                pause()
                rows += cursor.fetchall()
            results.put(("reader", True, len(rows)))
    except BaseException as exc:
        holding.set()
        results.put(("reader", False, repr(exc)))


def _sidecar(path: str, index: int, per: int, go: Any, results: Any) -> None:
    """A sidecar on the mount: file, wait for the decision, archive; every problem reported."""
    problems: list[str] = []
    try:
        with QueueStore(path, migrate_schema=False) as store:
            bottle = store.for_bottle(f"sidecar-{index}")
            go.wait(60)
            for number in range(per):
                payload = f"routes for {index}-{number}"
                proposal = bottle.submit(TOOL_EGRESS_BLOCK, payload, "while a long read runs")
                response = bottle.wait_for_response(proposal.id, timeout=120, poll_interval=0.05)
                if response is None or (response.status, response.notes, response.final_file) != \
                        expected_decision(payload):
                    problems.append(f"{payload}: {response}")
                    continue
                bottle.archive(proposal.id)
    except BaseException as exc:
        problems.append(f"sidecar {index}: {exc!r}")
    results.put(("sidecar", index, problems))


def _operator(path: str, total: int, host: bool, go: Any, stop: Any, results: Any) -> None:
    """The operator: decide each sidecar's proposal as it comes, as the TUI does, until ``total`` or told to stop."""
    problems: list[str] = []
    decided = 0
    try:
        with QueueStore(path, migrate_schema=host) as store:
            go.wait(60)
            while decided < total and not stop.is_set():
                for proposal in store.pending():
                    if proposal.queue_key.startswith("sidecar-"):
                        status, notes, final = expected_decision(proposal.payload)
                        decide(proposal.id, status, notes, final, "operator@test", store=store, shown=proposal)
                        decided += 1
                time.sleep(0.01)
    except BaseException as exc:
        problems.append(f"operator: {exc!r}")
    results.put(("operator", decided, problems))


class LongReadTest(TempDirTest):
    """A verify, a backup or a listing held open in one process; sidecars file and an operator decides."""

    def seeded(self, name: str, mode: str) -> str:
        path = self.tmp / name / "long.db"
        path.parent.mkdir()
        with QueueStore(path) as store:
            for number in range(SEEDED):
                proposal = store.submit("seed", TOOL_EGRESS_ALLOW, f'{{"host": "s{number}.example"}}', "seed")
                decide(proposal.id, STATUS_APPROVED, store=store)
        if mode != "wal":
            raw = sqlite3.connect(path)
            raw.execute(f"PRAGMA journal_mode = {mode}")
            raw.close()
        return str(path)

    def run_while_held(self, path: str, kind: str, host: bool, sidecars: int, per: int) -> tuple[list[Any], Any]:
        """The writers' reports while the read of ``kind`` is held, then the reader's (after release)."""
        holding, release, go, stop = SPAWN.Event(), SPAWN.Event(), SPAWN.Event(), SPAWN.Event()
        results = SPAWN.Queue()
        reader = SPAWN.Process(target=_hold_read, args=(path, kind, host, holding, release, results))
        reader.start()
        self.addCleanup(lambda: reader.is_alive() and reader.kill())
        self.assertTrue(holding.wait(60), "the read never got going")
        writers = [SPAWN.Process(target=_sidecar, args=(path, i, per, go, results)) for i in range(sidecars)]
        operator = SPAWN.Process(target=_operator, args=(path, sidecars * per, host, go, stop, results))
        for process in [*writers, operator]:
            process.start()
        go.set()
        reports = [results.get(timeout=300) for _ in writers]
        stop.set()
        reports.append(results.get(timeout=60))
        for process in [*writers, operator]:
            process.join(60)
        self.assertTrue(reader.is_alive(), "the read was still open when every writer had finished")
        release.set()
        read = results.get(timeout=120)
        reader.join(60)
        return reports, read

    def test_no_long_read_holds_up_a_filing_or_a_decision(self) -> None:
        for kind in ("verify", "backup", "listing"):
            with self.subTest(kind):
                path = self.seeded(kind, "wal")
                reports, read = self.run_while_held(path, kind, True, SIDECARS, PER_SIDECAR)
                self.assertEqual([p for report in reports for p in report[2]], [], kind)
                self.assertEqual([r[1] for r in reports if r[0] == "operator"], [SIDECARS * PER_SIDECAR])
                # The reader's snapshot is from before every filing (its entries, proposals or rows are the
                # seeded ones): the read spanned them all.
                self.assertEqual(read, ("reader", True, SEEDED), kind)
                with AuditStore(path) as audit:
                    verified = audit.verify()
                self.assertTrue(verified.ok, verified.problem)
                with QueueStore(path) as store, store.db.read() as conn:
                    beyond = entries_beyond_decisions(self, conn)
                self.assertEqual(verified.count, SEEDED + SIDECARS * PER_SIDECAR + beyond)

    def test_the_control_in_rollback_mode_fails(self) -> None:
        """Not a test that cannot fail: with the rollback journal the same filing waits out the busy timeout."""
        path = self.seeded("control", "delete")
        reports, read = self.run_while_held(path, "verify", False, 1, 1)
        problems = [p for report in reports for p in report[2]]
        self.assertTrue(any(DatabaseBusy.__name__ in p for p in problems), problems)
        self.assertEqual(read, ("reader", True, SEEDED))


_DECIDER = """
import sys
from bot_bottle.decisions import decide
from bot_bottle.queue_store import QueueStore
with QueueStore(sys.argv[1]) as store:
    number = int(sys.argv[2])  # each run files new requests: the same one again would be the same proposal
    while True:
        proposal = store.submit("crash", "egress-allow", '{"host": "c%d.example"}' % number, "crash test",
                                quota=None)
        print("filed", proposal.id, flush=True)
        decide(proposal.id, "approved", "ok", decided_by="operator@test", store=store, shown=proposal)
        print("decided", proposal.id, flush=True)
        number += 1
"""

_BATCH_DECIDER = """
import sys
from bot_bottle.decisions import record_decisions
from bot_bottle.queue_store import QueueStore
from bot_bottle.records import Decision
with QueueStore(sys.argv[1]) as store:
    number = int(sys.argv[2])
    approve = Decision("approved", "ok", None, "operator@test")
    while True:
        batch = [store.submit("crash", "egress-allow", '{"host": "b%d.example"}' % (number + n), "crash test",
                              quota=None) for n in range(5)]
        print("filed", *(proposal.id for proposal in batch), flush=True)
        record_decisions(store, [(proposal.id, approve, proposal) for proposal in batch])
        print("decided", *(proposal.id for proposal in batch), flush=True)
        number += 5
"""

_CHECKPOINTER = """
import sys
from bot_bottle.connection import connect, transaction
from bot_bottle.decisions import decide
from bot_bottle.queue_store import QueueStore
with QueueStore(sys.argv[1]) as store:
    with store.db.read() as conn:
        conn.execute("PRAGMA wal_autocheckpoint = 0")  # everything stays in the WAL until we say
    for number in range(int(sys.argv[2])):
        proposal = store.submit("crash", "egress-allow", '{"host": "k%d.example"}' % number, "crash test")
        decide(proposal.id, "approved", "ok", decided_by="operator@test", store=store, shown=proposal)
        print("decided", proposal.id, flush=True)
    with store.db.write() as conn:  # pages enough that copying them takes a while
        conn.execute("CREATE TABLE filler (b BLOB)")
        conn.execute("INSERT INTO filler WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c "
                     "LIMIT 40000) SELECT randomblob(2000) FROM c")
    print("checkpointing", flush=True)
    with store.db.read() as conn:
        print(conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone(), flush=True)
"""


class KilledWriterTest(TempDirTest):
    """SIGKILL in WAL mode: nothing reported lost, nothing decided twice, the log still proves itself."""

    def child(self, script: str, *args: str) -> subprocess.Popen[str]:
        process = subprocess.Popen([sys.executable, "-c", script, *args], cwd=REPO, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True, env={**os.environ, "HOME": str(self.home)})
        self.addCleanup(process.communicate)
        self.addCleanup(lambda: process.poll() is None and process.kill())
        return process

    def line_of(self, process: subprocess.Popen[str]) -> str:
        """The child's next line on stdout; the test fails with its stderr if it ended instead."""
        assert process.stdout is not None and process.stderr is not None
        line = process.stdout.readline()
        if not line:
            self.fail(f"the child ended: {process.stderr.read()[-2000:]}")
        return line

    def assert_whole(self, path: Path, reported: set[str]) -> None:
        """Every reported decision present, each proposal decided at most once, the log verified."""
        conn = connect(path)
        self.addCleanup(conn.close)
        self.assertEqual(integrity_problems(conn), [])
        decided = {row[0] for row in conn.execute("SELECT proposal_id FROM responses")}
        self.assertLessEqual(reported, decided, "a decision that was reported is missing")
        entries = [row[0] for row in conn.execute("SELECT proposal_id FROM audit_log WHERE action = 'approved'")]
        self.assertEqual(sorted(entries), sorted(decided), "one entry per decision, and no other")
        with QueueStore(path) as store:
            for proposal in store.pending():  # what was filed but not decided when it died: decide it now
                decide(proposal.id, STATUS_APPROVED, store=store)
            with self.assertRaises(AlreadyDecided):
                decide(next(iter(decided)), STATUS_APPROVED, store=store)
        with AuditStore(path) as audit:
            verified = audit.verify()
        self.assertTrue(verified.ok, verified.problem)

    def test_killed_while_deciding(self) -> None:
        """Three kills at moments of the decider's own choosing (after 10, 25 and 40 decisions)."""
        path = self.tmp / "deciding.db"
        open_db(path).close()
        reported: set[str] = set()
        for after in (10, 25, 40):
            process = self.child(_DECIDER, str(path), str(after * 1000))
            count = 0
            while count < after:
                line = self.line_of(process)
                word, proposal_id = line.split()
                if word == "decided":
                    reported.add(proposal_id)
                    count += 1
            os.kill(process.pid, signal.SIGKILL)
            process.communicate()
            self.assertEqual(process.returncode, -signal.SIGKILL)
        self.assertTrue(Path(f"{path}-wal").exists(), "the kills left the WAL for the next open to read")
        self.assert_whole(path, reported)

    def test_killed_while_deciding_several_at_once(self) -> None:
        """Five decisions in one commit, killed at once, 1 ms, ... 5 ms after the five are filed: all or none."""
        path = self.tmp / "batches.db"
        open_db(path).close()
        reported: set[str] = set()
        batches: list[list[str]] = []
        for kill in range(6):
            process = self.child(_BATCH_DECIDER, str(path), str(kill * 1000))
            while True:
                word, *ids = self.line_of(process).split()
                if word == "decided":
                    reported.update(ids)
                    continue
                batches.append(ids)
                if len(batches) % 4 == 0:  # every fourth batch of this child: kill it as it decides
                    time.sleep(kill / 1000)
                    os.kill(process.pid, signal.SIGKILL)
                    break
            process.communicate()
            self.assertEqual(process.returncode, -signal.SIGKILL)
        conn = connect(path)
        self.addCleanup(conn.close)
        decided = {row[0] for row in conn.execute("SELECT proposal_id FROM responses")}
        for ids in batches:
            self.assertIn(len(decided & set(ids)), (0, len(ids)), "a batch was recorded in part")
        self.assert_whole(path, reported)

    def test_killed_during_a_checkpoint(self) -> None:
        """A TRUNCATE checkpoint of ~80 MB of WAL, killed once it has written into the file and before it ends."""
        path = self.tmp / "checkpoint.db"
        open_db(path).close()
        process = self.child(_CHECKPOINTER, str(path), "30")
        reported: set[str] = set()
        while True:
            line = self.line_of(process)
            if line.startswith("checkpointing"):
                break
            reported.add(line.split()[1])
        self.assertEqual(len(reported), 30)
        size = path.stat().st_size
        wal = Path(f"{path}-wal")
        # Midway: the file has grown by pages copied out of the WAL, which is still whole (not yet truncated).
        wait_until(lambda: path.stat().st_size > size + 8 * 1024 * 1024 or process.poll() is not None,
                   timeout=60, interval=0.002, what="the checkpoint writing into the file")
        self.assertIsNone(process.poll(), "the checkpoint ended before it could be killed midway")
        os.kill(process.pid, signal.SIGKILL)
        process.communicate()
        self.assertGreater(wal.stat().st_size, 40 * 1024 * 1024, "the WAL outlived the checkpoint it was in")
        self.assert_whole(path, reported)
        with QueueStore(path) as store, store.db.read() as conn:
            self.assertEqual(conn.execute("SELECT count(*) FROM filler").fetchone()[0], 40000)
