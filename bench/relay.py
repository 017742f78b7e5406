"""The relay beside the direct transport: wake-up after a decision, and file-decide-archive cycles per second.

``bot-bottle relay`` runs as its own process (in the HOME this script sets for the run, so its lock is
its own), over the database file this script decides in. Wake-up: a waiter
process blocks in ``wait_for_response`` (directly, or through ``RelayQueue``
and the relay's long poll); this process commits a decision at a random
moment and the waiter reports when it returned. Throughput: N sidecar
processes each file a proposal, wait for its decision and archive it, while
one operator process decides; the same cycle directly and through the relay,
side by side, median of the runs.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import REPO, machine, median, parser, percentile, table, work_dir
from latency import decide_and_time

from bot_bottle.db import open_db
from bot_bottle.decisions import decide
from bot_bottle.queue_store import QueueStore
from bot_bottle.records import DEFAULT_POLL_INTERVAL_SEC
from bot_bottle.relay.credentials import RelayCredentials
from bot_bottle.sidecar.relay_queue import RelayQueue
from bot_bottle.wire.relay_file import RelayEndpoint

_SPAWN = multiprocessing.get_context("spawn")
TARGET_P50_MS = 30
TARGET_P99_MS = 60


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Relay:
    """``bot-bottle relay`` over ``db`` in a process of its own, and credentials for its bottles."""

    def __init__(self, db: Path) -> None:
        self.db = db
        self.port = _free_port()
        # The host's own HOME (main sets one for the run): the relay holds to the audit log what the operator
        # here decides, with the key in this HOME, and verifies what is minted here.
        home = os.environ["HOME"]
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bot_bottle", "relay", "--host", "127.0.0.1", "--port", str(self.port),
             # A bottle's own share of writes (10 a second after a burst of 50) would be measured instead of the
             # relay: one sidecar's cycles, two writes each, fell to 5 a second after the first 25.
             "--db", str(db), "--max-pending", "100000", "--writes-per-bottle", "100000"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=REPO,
            env={**os.environ, "HOME": home, "PYTHONPATH": str(REPO)})
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line.startswith("relay listening on "):
            raise SystemExit(f"the relay did not start: {line!r}")

    def endpoint(self, slug: str) -> RelayEndpoint:
        with RelayCredentials(self.db) as credentials:
            return RelayEndpoint(url=f"http://127.0.0.1:{self.port}/", token=credentials.mint(slug), bottle=slug)

    def stop(self) -> None:
        self.process.terminate()
        self.process.communicate(timeout=20)


def _queue(path: str, endpoint: RelayEndpoint | None, slug: str) -> Any:
    if endpoint is not None:
        return RelayQueue(endpoint), None
    store = QueueStore(path)
    return store.for_bottle(slug, quota=None), store


def _waiter(path: str, endpoint: RelayEndpoint | None, ids: list[str], ready: Any, out: Any) -> None:
    queue, store = _queue(path, endpoint, "web")
    for proposal_id in ids:
        ready.set()
        queue.wait_for_response(proposal_id, 60, DEFAULT_POLL_INTERVAL_SEC)
        out.put(time.time())
    if store is not None:
        store.close()


def wake_up(folder: Path, samples: int, through_relay: bool) -> list[float]:
    """Commit-to-return latencies, in seconds, at the default settings."""
    path = folder / ("wake-relay.db" if through_relay else "wake-direct.db")
    open_db(path).close()
    relay = Relay(path) if through_relay else None
    rng = random.Random(7)
    try:
        endpoint = relay.endpoint("web") if relay is not None else None
        with QueueStore(path) as store:
            ids = [store.submit("web", "egress-allow", f'{{"host": "d{i}"}}', "bench", quota=None).id
                   for i in range(samples)]
            ready, out = _SPAWN.Event(), _SPAWN.Queue()
            process = _SPAWN.Process(target=_waiter, args=(str(path), endpoint, ids, ready, out))
            process.start()
            latencies = []
            for proposal_id in ids:
                ready.wait(60)
                ready.clear()
                time.sleep(rng.uniform(0.01, DEFAULT_POLL_INTERVAL_SEC + 0.01))
                committed = decide_and_time(proposal_id, store)  # from the COMMIT, as latency.py measures
                latencies.append(out.get(timeout=60) - committed)
            process.join(30)
    finally:
        if relay is not None:
            relay.stop()
    return latencies


def _sidecar(path: str, endpoint: RelayEndpoint | None, slug: str, seconds: float, barrier: Any, out: Any) -> None:
    queue, store = _queue(path, endpoint, slug)
    barrier.wait()
    done, number = 0, 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        proposal = queue.submit("egress-block", f"routes {slug}-{number}", "bench")
        number += 1
        if queue.wait_for_response(proposal.id, 60, 0.001) is not None:
            queue.archive(proposal.id)
            done += 1
    out.put(done)
    if store is not None:
        store.close()


def _operator(path: str, seconds: float, barrier: Any) -> None:
    with QueueStore(path) as store:
        barrier.wait()
        deadline = time.monotonic() + seconds + 5
        while time.monotonic() < deadline:
            pending = store.pending()
            if not pending:
                time.sleep(0.001)
                continue
            for proposal in pending:
                decide(proposal.id, "approved", decided_by="bench@host", store=store)


def cycles(folder: Path, sidecars: int, seconds: float, through_relay: bool, run: int) -> float:
    """File-decide-archive cycles per second for ``sidecars`` processes and one operator."""
    path = folder / f"cycles-{'relay' if through_relay else 'direct'}-{sidecars}-{run}.db"
    open_db(path).close()
    relay = Relay(path) if through_relay else None
    try:
        endpoints = [relay.endpoint(f"b{i}") if relay is not None else None for i in range(sidecars)]
        barrier, out = _SPAWN.Barrier(sidecars + 2), _SPAWN.Queue()
        processes = [_SPAWN.Process(target=_sidecar, args=(str(path), endpoints[i], f"b{i}", seconds, barrier, out))
                     for i in range(sidecars)]
        processes.append(_SPAWN.Process(target=_operator, args=(str(path), seconds, barrier)))
        for process in processes:
            process.start()
        barrier.wait()
        total = sum(out.get(timeout=seconds + 120) for _ in range(sidecars))
        for process in processes:
            process.join(seconds + 60)
    finally:
        if relay is not None:
            relay.stop()
    return total / seconds


def main() -> None:
    args = parser(__doc__.splitlines()[0]).parse_args()
    folder = work_dir(args)
    # One host for the run, in a HOME of its own: the relay, the operator and the sidecars all see its key and
    # its relay secrets (one relay at a time, so one lock is enough).
    os.environ["HOME"] = tempfile.mkdtemp(prefix="bb-relay-home-")
    samples = 5 if args.smoke else 200
    seconds = 1.0 if args.smoke else 5.0
    runs = args.runs or (1 if args.smoke else 3)
    print(machine(folder))
    print(f"load average before: {os.getloadavg()[0]:.2f}\n")
    print(f"wake-up, {samples} samples each; ms from the decision's commit to the waiter's return (defaults)")
    rows = []
    for label, through_relay in (("direct (file watch)", False), ("through the relay (long poll)", True)):
        ms = [v * 1000 for v in wake_up(folder, samples, through_relay)]
        p50, p99 = percentile(ms, 50), percentile(ms, 99)
        met = p50 <= TARGET_P50_MS and p99 <= TARGET_P99_MS
        rows.append([label, f"{p50:.1f}", f"{percentile(ms, 95):.1f}", f"{p99:.1f}", f"{max(ms):.1f}",
                     "met" if met else "MISSED"])
    print(table(["path", "p50", "p95", "p99", "max", f"p50 <= {TARGET_P50_MS}, p99 <= {TARGET_P99_MS}"], rows))
    print(f"\nfile-decide-archive cycles per second, {seconds:g} s each, median of {runs} run(s), one operator")
    rows = []
    for sidecars in (1, 4, 16):
        direct = median([cycles(folder, sidecars, seconds, False, run) for run in range(runs)])
        relayed = median([cycles(folder, sidecars, seconds, True, run) for run in range(runs)])
        rows.append([sidecars, f"{direct:.0f}", f"{relayed:.0f}", f"{relayed / direct:.2f}x" if direct else "-"])
    print(table(["sidecars", "direct", "through the relay", "relay / direct"], rows))
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
