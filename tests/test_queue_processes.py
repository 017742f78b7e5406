"""The queue under real concurrent processes: nothing lost, nothing decided twice, prompt wake-ups."""

from __future__ import annotations

import os
import signal
import statistics
import time
from typing import Any

from bot_bottle.audit_store import AuditStore
from bot_bottle.db import open_db
from bot_bottle.decisions import decide
from bot_bottle.errors import AlreadyDecided, QuotaExceeded
from bot_bottle.queue_store import QueueStore
from bot_bottle.records import (
    DEFAULT_POLL_INTERVAL_SEC,
    STATUS_APPROVED,
    STATUS_REJECTED,
    TOOL_EGRESS_ALLOW,
    TOOL_EGRESS_BLOCK,
    Quota,
)
from tests.helpers.processes import SPAWN, entries_beyond_decisions, expected_decision
from tests.helpers.support import TempDirTest

SUBMITTERS = 8
PER_SUBMITTER = 200
QUOTA_TRIES = 40


def _submitter(path: str, index: int, barrier: Any, results: Any) -> None:
    problems: list[str] = []
    try:
        with QueueStore(path) as store:
            bottle = store.for_bottle(f"bottle-{index}")
            barrier.wait()
            for number in range(PER_SUBMITTER):
                payload = f"routes for {index}-{number}"
                proposal = bottle.submit(TOOL_EGRESS_BLOCK, payload, "load test")
                response = bottle.wait_for_response(proposal.id, timeout=120, poll_interval=0.005)
                if response is None:
                    problems.append(f"{payload}: no decision")
                    continue
                want = expected_decision(payload)
                if (response.status, response.notes, response.final_file) != want:
                    problems.append(f"{payload}: got {response.status}/{response.notes}, want {want[:2]}")
                bottle.archive(proposal.id)
    except BaseException as exc:
        problems.append(f"submitter {index}: {exc!r}")
    results.put(("submitter", index, problems))


def _operator(path: str, total: int, barrier: Any, results: Any) -> None:
    problems: list[str] = []
    decided = 0
    try:
        with QueueStore(path) as store:
            barrier.wait()
            deadline = time.monotonic() + 300
            while decided < total and time.monotonic() < deadline:
                pending = store.pending()
                if not pending:
                    time.sleep(0.002)
                    continue
                for proposal in pending:
                    status, notes, final = expected_decision(proposal.payload)
                    decide(proposal.id, status, notes, final, "operator@test", store=store)
                    decided += 1
    except BaseException as exc:
        problems.append(f"operator: {exc!r}")
    results.put(("operator", decided, problems))


def _racing_decider(path: str, proposal_ids: list[str], name: str, barrier: Any, results: Any) -> None:
    outcomes: list[str] = []
    with QueueStore(path) as store:
        for proposal_id in proposal_ids:
            barrier.wait()
            try:
                decide(proposal_id, STATUS_REJECTED, f"no, says {name}", decided_by=name, store=store)
                outcomes.append("won")
            except AlreadyDecided:
                outcomes.append("already")
            except BaseException as exc:
                outcomes.append(repr(exc))
    results.put((name, outcomes))


def _quota_submitter(path: str, index: int, quota: Quota, barrier: Any, results: Any) -> None:
    filed = refused = 0
    problems: list[str] = []
    try:
        with QueueStore(path) as store:
            bottle = store.for_bottle("greedy", quota=quota)
            barrier.wait()
            for number in range(QUOTA_TRIES):
                try:
                    bottle.submit(TOOL_EGRESS_BLOCK, f"routes {index}-{number}", "fill the queue")
                    filed += 1
                except QuotaExceeded:
                    refused += 1
    except BaseException as exc:
        problems.append(f"submitter {index}: {exc!r}")
    results.put((filed, refused, problems))


def _waiter(path: str, proposal_ids: list[str], ready: Any, results: Any) -> None:
    with QueueStore(path) as store:
        for proposal_id in proposal_ids:
            ready.set()
            response = store.wait_for_response(proposal_id, timeout=30)
            results.put((proposal_id, time.time(), None if response is None else response.status))


def _archive_and_die(path: str, proposal_id: str) -> None:
    """A sidecar killed (SIGKILL) right after its archive, before any write carried it."""
    store = QueueStore(path)
    store.for_bottle("web-1").archive(proposal_id)
    os.kill(os.getpid(), signal.SIGKILL)


class ConcurrentQueueTest(TempDirTest):
    def test_a_sidecar_killed_after_its_archive_leaves_the_proposal_decided(self) -> None:
        """kill -9 between an archive and the write that would carry it: the proposal stays decided and
        unarchived (as a sidecar killed before archiving left it), its rejection still answers the same request,
        the file is whole, and the next sidecar's archive is written."""
        path = str(self.tmp / "killed.db")
        with QueueStore(path) as store:
            proposal = store.for_bottle("web-1").submit(TOOL_EGRESS_BLOCK, "routes: [a]\n", "j")
            decide(proposal.id, STATUS_REJECTED, "no", store=store)
        process = SPAWN.Process(target=_archive_and_die, args=(path, proposal.id))
        process.start()
        process.join(timeout=60)
        self.assertEqual(process.exitcode, -signal.SIGKILL)
        with QueueStore(path) as store:
            with store.db.read() as conn:
                self.assertEqual(conn.execute("PRAGMA integrity_check").fetchone()[0], "ok")
            self.assertIsNone(store.get(proposal.id).archived_at)
            self.assertEqual(store.response(proposal.id).status, STATUS_REJECTED)
            bottle = store.for_bottle("web-1")
            self.assertEqual(bottle.submit(TOOL_EGRESS_BLOCK, "routes: [a]\n", "j").id, proposal.id)
            bottle.archive(proposal.id)
        with QueueStore(path) as store:
            self.assertIsNotNone(store.get(proposal.id).archived_at)


    def test_many_submitters_and_an_operator(self) -> None:
        """8 submitter processes x 200 proposals, decided as they arrive: each stored, decided and answered once."""
        path = str(self.tmp / "load.db")
        open_db(path).close()
        total = SUBMITTERS * PER_SUBMITTER
        barrier = SPAWN.Barrier(SUBMITTERS + 1)
        results = SPAWN.Queue()
        processes = [SPAWN.Process(target=_submitter, args=(path, i, barrier, results)) for i in range(SUBMITTERS)]
        processes.append(SPAWN.Process(target=_operator, args=(path, total, barrier, results)))
        for process in processes:
            process.start()
        reports = [results.get(timeout=400) for _ in processes]
        for process in processes:
            process.join(timeout=60)
        problems = [p for _, _, found in reports for p in found]
        self.assertEqual(problems, [])
        self.assertEqual([d for kind, d, _ in reports if kind == "operator"], [total])
        with QueueStore(path) as store, store.db.read() as conn:
            proposals = conn.execute("SELECT count(*), count(DISTINCT payload) FROM proposals").fetchone()
            responses = conn.execute("SELECT count(*), count(DISTINCT proposal_id) FROM responses").fetchone()
            archived = conn.execute("SELECT count(*) FROM proposals WHERE archived_at IS NOT NULL").fetchone()[0]
        self.assertEqual(tuple(proposals), (total, total), "every proposal stored once")
        self.assertEqual(tuple(responses), (total, total), "every proposal decided once")
        self.assertEqual(archived, total)
        with QueueStore(path) as store, store.db.read() as conn:
            beyond = entries_beyond_decisions(self, conn)
        with AuditStore(path) as audit:
            self.assertEqual(audit.count(), total + beyond, "one audit entry per decision")
        with AuditStore(path) as audit:
            verified = audit.verify()
        self.assertTrue(verified.ok, verified.problem)

    def test_two_operators_at_the_same_moment(self) -> None:
        """Two operator processes deciding the same proposals together: exactly one wins each time."""
        path = str(self.tmp / "race.db")
        with QueueStore(path) as store:
            ids = [store.submit("web", TOOL_EGRESS_ALLOW, f'{{"host": "h{i}"}}', "j").id for i in range(30)]
        barrier = SPAWN.Barrier(2)
        results = SPAWN.Queue()
        deciders = [SPAWN.Process(target=_racing_decider, args=(path, ids, name, barrier, results))
                    for name in ("ann", "bob")]
        for process in deciders:
            process.start()
        outcomes = dict(results.get(timeout=120) for _ in deciders)
        for process in deciders:
            process.join(timeout=30)
        for index in range(len(ids)):
            pair = sorted([outcomes["ann"][index], outcomes["bob"][index]])
            self.assertEqual(pair, ["already", "won"], f"proposal {index}")
        with QueueStore(path) as store:
            for index, proposal_id in enumerate(ids):
                response = store.response(proposal_id)
                assert response is not None
                winner = "ann" if outcomes["ann"][index] == "won" else "bob"
                self.assertEqual(response.decided_by, winner)
        with AuditStore(path) as audit:
            self.assertEqual(audit.count(), len(ids))

    def test_commit_in_another_process_wakes_the_waiter(self) -> None:
        """At the default poll interval, a waiter returns within one interval of another process's commit."""
        path = str(self.tmp / "wake.db")
        samples = 6
        with QueueStore(path) as store:
            ids = [store.submit("web", TOOL_EGRESS_ALLOW, f'{{"host": "w{i}"}}', "j").id for i in range(samples)]
            ready = SPAWN.Event()
            results = SPAWN.Queue()
            waiter = SPAWN.Process(target=_waiter, args=(path, ids, ready, results))
            waiter.start()
            latencies = []
            for index, proposal_id in enumerate(ids):
                self.assertTrue(ready.wait(30))
                ready.clear()
                # Commit at a different phase of the waiter's polling each time.
                time.sleep(0.1 + index * DEFAULT_POLL_INTERVAL_SEC / samples)
                decide(proposal_id, STATUS_APPROVED, store=store)
                committed = time.time()
                woken_id, woke, status = results.get(timeout=30)
                self.assertEqual((woken_id, status), (proposal_id, STATUS_APPROVED))
                latencies.append(woke - committed)
            waiter.join(timeout=30)
        # Generous bounds: the precise figures are the benchmark's job.
        self.assertLess(max(latencies), DEFAULT_POLL_INTERVAL_SEC + 0.25, latencies)
        self.assertLess(statistics.median(latencies), DEFAULT_POLL_INTERVAL_SEC, latencies)

    def test_concurrent_submitters_do_not_overshoot_the_quota(self) -> None:
        """6 processes filing for one bottle at once: exactly max_pending are filed, every other try refused."""
        path = str(self.tmp / "quota.db")
        open_db(path).close()
        quota = Quota(max_pending=25, max_pending_bytes=1024 * 1024)
        count = 6
        barrier = SPAWN.Barrier(count)
        results = SPAWN.Queue()
        processes = [SPAWN.Process(target=_quota_submitter, args=(path, i, quota, barrier, results))
                     for i in range(count)]
        for process in processes:
            process.start()
        reports = [results.get(timeout=120) for _ in processes]
        for process in processes:
            process.join(timeout=30)
        self.assertEqual([p for _, _, found in reports for p in found], [])
        self.assertEqual(sum(filed for filed, _, _ in reports), quota.max_pending)
        self.assertEqual(sum(refused for _, refused, _ in reports), count * QUOTA_TRIES - quota.max_pending)
        with QueueStore(path) as store:
            self.assertEqual(len(store.pending("greedy")), quota.max_pending)
