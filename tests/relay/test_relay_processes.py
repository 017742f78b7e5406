"""The relay under real concurrent processes: 16 relay-backed sidecars filing and waiting, two operators deciding.

Nothing lost, nothing decided twice, every waiter answered with its own
decision, and the audit log whole afterwards. The sidecars never open the
database: they reach it only through ``bot-bottle relay``, a process of its own.
"""

from __future__ import annotations

import time
from typing import Any

from bot_bottle.audit_store import AuditStore
from bot_bottle.db import open_db
from bot_bottle.decisions import decide
from bot_bottle.errors import AlreadyDecided
from bot_bottle.queue_store import QueueStore
from bot_bottle.records import TOOL_EGRESS_BLOCK
from bot_bottle.relay.credentials import RelayCredentials
from bot_bottle.sidecar.relay_queue import RelayQueue
from bot_bottle.wire.relay_file import RelayEndpoint
from tests.helpers.processes import SPAWN, entries_beyond_decisions, expected_decision
from tests.helpers.relay_fixture import free_port, start_relay_process, stop_process
from tests.helpers.support import TempDirTest, wait_until

SIDECARS = 16
PER_SIDECAR = 25


def _sidecar(endpoint: RelayEndpoint, barrier: Any, results: Any) -> None:
    problems: list[str] = []
    answered = 0
    try:
        queue = RelayQueue(endpoint)
        barrier.wait()
        for number in range(PER_SIDECAR):
            payload = f"routes for {endpoint.bottle}-{number}"
            proposal = queue.submit(TOOL_EGRESS_BLOCK, payload, "relay load test")
            if proposal.queue_key != endpoint.bottle:
                problems.append(f"{payload}: filed into {proposal.queue_key}")
            response = queue.wait_for_response(proposal.id, timeout=120)
            if response is None:
                problems.append(f"{payload}: no decision")
                continue
            if response.proposal_id != proposal.id:
                problems.append(f"{payload}: answered with another proposal's decision")
            want = expected_decision(payload)
            if (response.status, response.notes, response.final_file) != want:
                problems.append(f"{payload}: got {response.status}/{response.notes}, want {want[:2]}")
            queue.archive(proposal.id)
            answered += 1
    except BaseException as exc:
        problems.append(f"{endpoint.bottle}: {exc!r}")
    results.put(("sidecar", answered, problems))


def _operator(path: str, name: str, total: int, barrier: Any, results: Any) -> None:
    problems: list[str] = []
    won = lost = 0
    try:
        with QueueStore(path) as store:
            barrier.wait()
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                with store.db.read() as conn:
                    decided = conn.execute("SELECT count(*) FROM responses").fetchone()[0]
                if decided >= total:
                    break
                pending = store.pending()
                if not pending:
                    time.sleep(0.005)
                    continue
                for proposal in pending:
                    status, notes, final = expected_decision(proposal.payload)
                    try:
                        decide(proposal.id, status, notes, final, name, store=store)
                        won += 1
                    except AlreadyDecided:
                        lost += 1
    except BaseException as exc:
        problems.append(f"{name}: {exc!r}")
    results.put(("operator", (won, lost), problems))


class RelayLoadTest(TempDirTest):
    def test_sixteen_relay_backed_sidecars_and_two_operators(self) -> None:
        """16 sidecar processes x 25 proposals through one relay, two operator processes racing to decide."""
        db = self.home / ".bot-bottle" / "db" / "bot-bottle.db"
        open_db(db).close()
        port = free_port()
        relay = start_relay_process(self.home, port)
        self.addCleanup(stop_process, relay)
        with RelayCredentials(db) as credentials:
            endpoints = [RelayEndpoint(url=f"http://127.0.0.1:{port}/", token=credentials.mint(f"bottle-{i}"),
                                       bottle=f"bottle-{i}") for i in range(SIDECARS)]
        total = SIDECARS * PER_SIDECAR
        barrier = SPAWN.Barrier(SIDECARS + 2)
        results = SPAWN.Queue()
        processes = [SPAWN.Process(target=_sidecar, args=(e, barrier, results)) for e in endpoints]
        processes += [SPAWN.Process(target=_operator, args=(str(db), name, total, barrier, results))
                      for name in ("ann", "bob")]
        for process in processes:
            process.start()
        reports = [results.get(timeout=400) for _ in processes]
        for process in processes:
            process.join(timeout=60)
        self.assertEqual([p for _, _, found in reports for p in found], [])
        self.assertEqual(sum(n for kind, n, _ in reports if kind == "sidecar"), total, "every waiter answered")
        wins = sum(n[0] for kind, n, _ in reports if kind == "operator")
        self.assertEqual(wins, total, "each proposal decided by exactly one operator")
        with QueueStore(db) as store, store.db.read() as conn:
            proposals = conn.execute("SELECT count(*), count(DISTINCT payload) FROM proposals").fetchone()
            responses = conn.execute("SELECT count(*), count(DISTINCT proposal_id) FROM responses").fetchone()
            # The relay writes the last archives with its next write, or a moment later (db.later).
            wait_until(lambda: conn.execute("SELECT count(*) FROM proposals WHERE archived_at IS NOT NULL")
                       .fetchone()[0] == total, 5, 0.02, "every proposal archived")
            per_bottle = conn.execute("SELECT count(DISTINCT queue_key) FROM proposals").fetchone()[0]
        self.assertEqual(tuple(proposals), (total, total), "every proposal stored once")
        self.assertEqual(tuple(responses), (total, total), "every proposal decided once")
        self.assertEqual(per_bottle, SIDECARS)
        with QueueStore(db) as store, store.db.read() as conn:
            beyond = entries_beyond_decisions(self, conn)
        with AuditStore(db) as audit:
            self.assertEqual(audit.count(), total + beyond, "one audit entry per decision")
            verified = audit.verify()
        self.assertTrue(verified.ok, verified.problem)
