"""Wake-up latency: from the operator's commit to the waiting caller's return.

Direct: a waiter process blocks in ``wait_for_response`` at a given poll
interval; this process commits a decision at a random moment and the waiter
reports when it returned. Through HTTP: an agent thread calls a filing tool
on the real supervise server (its own process, default poll interval) and
the time runs from the commit to the HTTP answer's arrival.
"""

from __future__ import annotations

import multiprocessing
import random
import threading
import time
from pathlib import Path
from typing import Any

from common import machine, parser, percentile, table, work_dir

from bot_bottle import audit_store
from bot_bottle.cli.demo import McpHttpAgent
from bot_bottle.decisions import decide
from bot_bottle.queue_store import QueueStore
from bot_bottle.records import DEFAULT_POLL_INTERVAL_SEC
from bot_bottle.sidecar.launcher import spawn

_SPAWN = multiprocessing.get_context("spawn")


def waiter(path: str, interval: float, ids: list[str], ready: Any, out: Any) -> None:
    with QueueStore(path) as store:
        for proposal_id in ids:
            ready.set()
            store.wait_for_response(proposal_id, 60, interval)
            out.put(time.time())


TARGET_P50_MS = 30
TARGET_P99_MS = 60


def decide_and_time(proposal_id: str, store: QueueStore) -> float:
    """Decide the proposal; the time its transaction committed.

    Taken when ``AuditStore.recording`` moves the anchor, which it does right
    after its COMMIT: waiters wake at the commit, and the anchor's write
    (a synced write of its own) is not part of what they wait for.
    """
    committed: list[float] = []
    advance = audit_store.advance_anchor

    def timed_advance(*args: Any) -> None:
        committed.append(time.time())
        advance(*args)

    audit_store.advance_anchor = timed_advance
    try:
        decide(proposal_id, "approved", decided_by="bench@host", store=store)
    finally:
        audit_store.advance_anchor = advance
    if not committed:
        raise SystemExit("latency: the decision moved no audit anchor, so its commit could not be timed")
    return committed[0]


def direct(folder: Path, interval: float, samples: int) -> list[float]:
    """Commit-to-return latencies, in seconds, for a waiter at ``interval``."""
    path = str(folder / f"direct-{interval}.db")
    rng = random.Random(7)
    with QueueStore(path) as store:
        ids = [store.submit("web", "egress-allow", f'{{"host": "d{i}"}}', "bench", quota=None).id
               for i in range(samples)]
        ready, out = _SPAWN.Event(), _SPAWN.Queue()
        process = _SPAWN.Process(target=waiter, args=(path, interval, ids, ready, out))
        process.start()
        latencies = []
        for proposal_id in ids:
            ready.wait(60)
            ready.clear()
            time.sleep(rng.uniform(0.01, interval + 0.01))  # any phase of the waiter's polling
            committed = decide_and_time(proposal_id, store)
            latencies.append(out.get(timeout=60) - committed)
        process.join(30)
    return latencies


def through_http(folder: Path, samples: int) -> list[float]:
    """Commit-to-HTTP-answer latencies through the supervise server at its default poll interval."""
    path = folder / "http.db"
    QueueStore(path).close()
    server, url = spawn("web", path, "--wait-seconds", "60")
    agent = McpHttpAgent(url, timeout=90)
    rng = random.Random(11)
    latencies = []
    try:
        with QueueStore(path) as store:
            for number in range(samples):
                answered: list[float] = []

                def call(number: int = number, answered: list[float] = answered) -> None:
                    agent.call("egress-allow", {"host": f"h{number}.example", "justification": "bench"})
                    answered.append(time.time())

                caller = threading.Thread(target=call)
                caller.start()
                while not store.pending("web"):
                    time.sleep(0.002)
                time.sleep(rng.uniform(0.01, DEFAULT_POLL_INTERVAL_SEC + 0.01))
                (proposal,) = store.pending("web")
                committed = decide_and_time(proposal.id, store)
                caller.join(90)
                latencies.append(answered[0] - committed)
    finally:
        server.terminate()
        server.communicate(timeout=10)
    return latencies


def main() -> None:
    args = parser(__doc__.splitlines()[0]).parse_args()
    folder = work_dir(args)
    samples = 5 if args.smoke else 200
    print(machine(folder))
    print(f"{samples} samples each; milliseconds from the decision's commit to the caller's return\n")
    rows = []
    for label, values in (
        (f"direct, defaults (commit watch, poll {DEFAULT_POLL_INTERVAL_SEC} s)",
         direct(folder, DEFAULT_POLL_INTERVAL_SEC, samples)),
        ("direct, poll 0.05 s", direct(folder, 0.05, samples)),
        ("HTTP tool call, defaults", through_http(folder, samples)),
    ):
        ms = [v * 1000 for v in values]
        p50, p99 = percentile(ms, 50), percentile(ms, 99)
        met = p50 <= TARGET_P50_MS and p99 <= TARGET_P99_MS
        rows.append([label, f"{p50:.1f}", f"{percentile(ms, 95):.1f}", f"{p99:.1f}", f"{max(ms):.1f}",
                     f"p50 <= {TARGET_P50_MS}, p99 <= {TARGET_P99_MS}", "met" if met else "MISSED"])
    print(table(["path", "p50", "p95", "p99", "max", "target (ms)", ""], rows))


if __name__ == "__main__":
    main()
