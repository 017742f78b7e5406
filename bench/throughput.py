"""Throughput: file -> decide -> read decision -> archive, per second, against SQLite queue peers.

N submitting processes and one deciding process share one database file.
bot-bottle's cycle is: a submitter files a proposal and waits for its
decision, the decider decides it (response + audit entry in one
transaction), the submitter reads the decision and archives the proposal (as a
sidecar's, its row is written by the submitter's next filing: db.later).
The peers do the same cycle with N producers and one consumer, each producer
polling every millisecond until its item is acknowledged and the consumer
every 0.5 ms while idle (they have no way to be woken; bot-bottle's waiters
and decider sleep on its commit watch at its defaults, and a second
bot-bottle row polls as the peers do):
persist-queue's SQLiteAckQueue put/get/ack, litequeue put/pop/done, and a
bare sqlite3 loop of one INSERT (producer) and one UPDATE (consumer) per item
in BEGIN IMMEDIATE transactions, the ceiling for this durability on this
disk. "equal" rows run every peer with bot-bottle's settings (WAL,
synchronous=FULL: every commit synced before it returns); "defaults" rows
with the peer's own settings.
The decider decides each proposal as it was shown (``shown=``), as the TUI
and ``proposals approve ID`` do, one commit each; in the "one commit" row it
records everything pending at each look in one commit, as ``proposals
approve ID ID...`` does (``decisions.record_decisions``); the submitters open the file as a sidecar on
the mount does (``migrate_schema=False``), the decider as the host does. Every worker sets up first and the clock
starts when all are ready; repetitions take turns across systems.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import queue as queue_module
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import persistqueue
from common import load, machine, median, parser, table, work_dir
from litequeue import LiteQueue, MessageStatus
from persistqueue import SQLiteAckQueue
from persistqueue.sqlackqueue import AckStatus

from bot_bottle.db import open_db
from bot_bottle.decisions import decide, record_decisions
from bot_bottle.file_watch import FileWatch
from bot_bottle.queue_store import QueueStore
from bot_bottle.records import DEFAULT_POLL_INTERVAL_SEC, Decision

_SPAWN = multiprocessing.get_context("spawn")
POLL = 0.001  # the peers' waiters (and bot-bottle's in its "poll every 1 ms" row) look this often


def _equalise(conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")


class EqualDurability(sqlite3.Connection):
    """A connection that turns a peer's own journal and sync pragmas into bot-bottle's."""

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:  # type: ignore[override]
        words = sql.strip().upper()
        if words.startswith("PRAGMA JOURNAL_MODE"):
            sql = "PRAGMA journal_mode = WAL"
        elif words.startswith("PRAGMA SYNCHRONOUS"):
            sql = "PRAGMA synchronous = FULL"
        return super().execute(sql, *args)


class EqualAckQueue(SQLiteAckQueue):
    """persist-queue's SQLiteAckQueue on WAL, synchronous=FULL connections (bot-bottle's settings)."""

    def _new_db_connection(self, path: str, multithreading: bool, timeout: float) -> sqlite3.Connection:
        conn = sqlite3.connect(f"{path}/{self.db_file_name}", timeout=timeout,
                               check_same_thread=not multithreading, factory=EqualDurability)
        _equalise(conn)
        return conn


def ack_queue(path: str, equal: bool) -> SQLiteAckQueue:
    """persist-queue's ack queue, with bot-bottle's durability or its own defaults."""
    kind = EqualAckQueue if equal else SQLiteAckQueue
    return kind(path, multithreading=True, auto_resume=False, timeout=30)


def lite_queue(path: str, equal: bool) -> LiteQueue:
    """litequeue, with bot-bottle's durability or its own defaults."""
    if equal:
        return LiteQueue(sqlite3.connect(path, timeout=30, factory=EqualDurability, isolation_level=None))
    return LiteQueue(path, timeout=30)


# Each worker sets up (store, connections), waits at the start line with the others, then runs until
# `stop_at` (time.time()) and reports how many items it finished. The clock starts only when every worker
# is ready: on a busy machine spawning seventeen interpreters can take longer than the run itself.

def go(start: Any) -> float:
    """Wait at the start line until every worker is ready; the time to stop at."""
    barrier, stop = start
    barrier.wait()  # everyone ready; the parent sets the clock
    barrier.wait()  # the clock is set
    return float(stop.value)


def bb_submitter(path: str, index: int, start: Any, out: Any, poll: float) -> None:
    done = 0
    # Opened as a sidecar on the mount opens it (no migration; SQLite's busy handler for the write lock),
    # the decider as the operator's tools do (connection.begin_immediate).
    with QueueStore(path, migrate_schema=False) as store:
        bottle = store.for_bottle(f"bottle-{index}")
        stop_at = go(start)
        while time.time() < stop_at:
            proposal = bottle.submit("egress-allow", f'{{"host": "h{index}-{done}.example"}}', "bench")
            if bottle.wait_for_response(proposal.id, max(0.0, stop_at - time.time()) + 2, poll) is None:
                break
            bottle.archive(proposal.id)
            done += 1
    out.put(done)


def bb_decider(path: str, start: Any, out: Any, watched: bool, batched: bool) -> None:
    decided = 0
    approve = Decision("approved", "", None, "bench@host")
    with QueueStore(path) as store:
        # As the TUI does, the operator's side sleeps until a commit (here: FileWatch.commits) when it
        # watches; otherwise it polls every 0.5 ms, as the peers' consumers do.
        watch = FileWatch.commits(path) if watched else None
        stop_at = go(start)
        while time.time() < stop_at + 2:
            pending = store.pending()
            decided_now = bool(pending)
            if batched and pending:
                # As `proposals approve ID ID...` does: everything shown, recorded in one commit.
                decided += len(record_decisions(store, [(proposal.id, approve, proposal) for proposal in pending]))
                pending = []
            for proposal in pending:
                # As the TUI and `proposals approve ID` do: the decision holds the proposal as it was shown.
                decide(proposal.id, "approved", "", decided_by="bench@host", store=store, shown=proposal)
                decided += 1
            if not decided_now:
                if watch is not None:
                    watch.wait(0.05)
                else:
                    time.sleep(0.0005)
        if watch is not None:
            watch.close()
    out.put(-1)


def closed_loop(put: Any, is_done: Any, stop_at: float) -> int:
    """Put an item, poll until it is done, repeat until ``stop_at``; the number of completed cycles."""
    done = 0
    while time.time() < stop_at:
        item = put(done)
        while not is_done(item):
            if time.time() > stop_at + 2:  # the consumer has stopped: this one will never be done
                return done
            time.sleep(POLL)
        done += 1
    return done


def bare_producer(path: str, index: int, start: Any, out: Any) -> None:
    conn = sqlite3.connect(path, isolation_level=None, timeout=30)
    _equalise(conn)

    def put(number: int) -> int:
        conn.execute("BEGIN IMMEDIATE")
        item = conn.execute("INSERT INTO items (data, done) VALUES (:d, 0)", {"d": f"{index}-{number}"}).lastrowid
        conn.execute("COMMIT")
        return int(item or 0)

    def is_done(item: int) -> bool:
        return bool(conn.execute("SELECT done FROM items WHERE id = :id", {"id": item}).fetchone()[0])

    out.put(closed_loop(put, is_done, go(start)))


def bare_consumer(path: str, start: Any, out: Any) -> None:
    conn = sqlite3.connect(path, isolation_level=None, timeout=30)
    _equalise(conn)
    done = 0
    stop_at = go(start)
    while time.time() < stop_at:
        conn.execute("BEGIN IMMEDIATE")
        row = conn.execute("SELECT id FROM items WHERE done = 0 ORDER BY id LIMIT 1").fetchone()
        if row:
            conn.execute("UPDATE items SET done = 1 WHERE id = :id", {"id": row[0]})
            done += 1
        conn.execute("COMMIT")
        if not row:
            time.sleep(0.0005)
    out.put(0)


def pq_producer(path: str, index: int, start: Any, out: Any, equal: bool) -> None:
    queue = ack_queue(path, equal)
    # Poll on a connection of our own in autocommit mode: persist-queue's may sit in a stale read.
    watcher = sqlite3.connect(f"{path}/{queue.db_file_name}", isolation_level=None, timeout=30)
    status = f"SELECT status FROM {queue._table_name} WHERE {queue._key_column} = ?"
    out.put(closed_loop(lambda number: queue.put(f"{index}-{number}"),
                        lambda item: str(watcher.execute(status, (item,)).fetchone()[0]) == AckStatus.acked,
                        go(start)))


def pq_consumer(path: str, start: Any, out: Any, equal: bool) -> None:
    queue = ack_queue(path, equal)
    done = 0
    stop_at = go(start)
    while time.time() < stop_at:
        try:
            # Not qsize(): persist-queue counts items per instance, so it misses other processes' puts.
            item = queue.get(block=False, raw=True)
        except persistqueue.Empty:
            time.sleep(0.0005)
            continue
        queue.ack(id=item["pqid"])
        done += 1
    out.put(0)


def lq_producer(path: str, index: int, start: Any, out: Any, equal: bool) -> None:
    queue = lite_queue(path, equal)
    out.put(closed_loop(lambda number: queue.put(f"{index}-{number}").message_id,
                        lambda item: queue.get(item).status == MessageStatus.DONE,  # type: ignore[union-attr]
                        go(start)))


def lq_consumer(path: str, start: Any, out: Any, equal: bool) -> None:
    queue = lite_queue(path, equal)
    done = 0
    stop_at = go(start)
    while time.time() < stop_at:
        message = queue.pop()
        if message is None:
            time.sleep(0.0005)
            continue
        queue.done(message.message_id)
        done += 1
    out.put(0)


def run_one(system: str, submitters: int, seconds: float, folder: Path, equal: bool) -> float:
    """Items fully processed per second for one configuration."""
    out = _SPAWN.Queue()
    stop = _SPAWN.Value("d", 0.0)
    barrier = _SPAWN.Barrier(submitters + 2)  # the workers and this process
    start = (barrier, stop)
    path = str(folder / f"{system}-{submitters}-{time.monotonic_ns()}")
    if system.startswith("bot-bottle"):
        path += ".db"
        open_db(path).close()
        # Its defaults: a waiter sleeps on the commit watch, looking at least every 0.5 s.
        watched = system != "bot-bottle-poll"
        poll = DEFAULT_POLL_INTERVAL_SEC if watched else POLL
        producers = [_SPAWN.Process(target=bb_submitter, args=(path, i, start, out, poll))
                     for i in range(submitters)]
        consumer = _SPAWN.Process(target=bb_decider, args=(path, start, out, watched, system == "bot-bottle-batch"))
    elif system == "sqlite3":
        path += ".db"
        conn = sqlite3.connect(path)
        # WAL is set here, once: workers switching the mode at the same moment get "database is locked" at
        # once (SQLite's busy handler does not wait for a journal mode change), which broke a smoke run.
        _equalise(conn)
        conn.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, data TEXT, done INTEGER)")
        conn.close()
        producers = [_SPAWN.Process(target=bare_producer, args=(path, i, start, out)) for i in range(submitters)]
        consumer = _SPAWN.Process(target=bare_consumer, args=(path, start, out))
    elif system == "persist-queue":
        Path(path).mkdir()
        ack_queue(path, equal).close()
        producers = [_SPAWN.Process(target=pq_producer, args=(path, i, start, out, equal))
                     for i in range(submitters)]
        consumer = _SPAWN.Process(target=pq_consumer, args=(path, start, out, equal))
    else:
        path += ".db"
        lite_queue(path, equal).close()
        producers = [_SPAWN.Process(target=lq_producer, args=(path, i, start, out, equal))
                     for i in range(submitters)]
        consumer = _SPAWN.Process(target=lq_consumer, args=(path, start, out, equal))
    everyone = [*producers, consumer]
    for process in everyone:
        process.start()
    try:
        barrier.wait(timeout=300)
        stop.value = time.time() + seconds
        barrier.wait(timeout=60)
    except threading.BrokenBarrierError:
        raise SystemExit(f"{system} workers did not all start (exit codes {[p.exitcode for p in everyone]})") from None
    counts = []
    deadline = time.time() + seconds + 120
    while len(counts) < len(everyone):
        if any(p.exitcode not in (None, 0) for p in everyone):
            raise SystemExit(f"a {system} worker failed (exit codes {[p.exitcode for p in everyone]})")
        if time.time() > deadline:
            raise SystemExit(f"{system} workers did not finish")
        with contextlib.suppress(queue_module.Empty):
            counts.append(out.get(timeout=0.5))
    for process in everyone:
        process.join(30)
    finished = sum(c for c in counts if c > 0)  # the producers' completed cycles
    return finished / seconds


def main() -> None:
    args = parser(__doc__.splitlines()[0]).parse_args()
    folder = work_dir(args)
    runs = args.runs or (1 if args.smoke else 3)
    seconds = 0.5 if args.smoke else 5.0
    counts = [1] if args.smoke else [1, 4, 16]
    systems = [("bot-bottle", True, "bot-bottle (WAL, FULL), defaults"),
               ("bot-bottle-batch", True, "bot-bottle, what is pending decided in one commit"),
               ("bot-bottle-poll", True, "bot-bottle, polling as the peers do (no watch)"),
               ("persist-queue", True, "persist-queue SQLiteAckQueue, WAL + FULL"),
               ("litequeue", True, "litequeue, WAL + FULL"),
               ("persist-queue", False, "persist-queue, its defaults (WAL)"),
               ("litequeue", False, "litequeue, its defaults (WAL, synchronous=NORMAL)"),
               ("sqlite3", True, "bare sqlite3 INSERT+UPDATE (ceiling)")]
    print(machine(folder))
    print(f"cycles (items) per second, median of {runs} run(s) of {seconds:g} s, the systems taking turns; the "
          f"peers' waiters poll every {POLL} s and consumers every 0.5 ms; bot-bottle's sleep on its commit "
          "watch (0.5 s poll) unless polling\n")
    # Round-robin: each repetition runs every system once, so a burst of load from elsewhere on this shared
    # machine falls on all of them alike rather than on one system's three runs.
    samples: dict[tuple[str, int], list[float]] = {(label, n): [] for _, _, label in systems for n in counts}
    for _ in range(runs):
        for n in counts:
            for system, equal, label in systems:
                samples[(label, n)].append(run_one(system, n, seconds, folder, equal))
    results = {config: median(values) for config, values in samples.items()}
    ceiling = {n: results[(systems[-1][2], n)] for n in counts}
    ours = {n: results[(systems[0][2], n)] for n in counts}
    rows = []
    for _, _, label in systems:
        row: list[object] = [label]
        for n in counts:
            value = results[(label, n)]
            row += [f"{value:.0f}", f"{value / ours[n]:.2f}" if ours[n] else "-",
                    f"{value / ceiling[n]:.2f}" if ceiling[n] else "-"]
        rows.append(row)
    headers = ["system"]
    for n in counts:
        headers += [f"{n} subm./s", "x ours", "x ceiling"]
    print(table(headers, rows))
    print(f"\n{load()} at the end; every run (cycles/s):")
    for (label, n), values in samples.items():
        print(f"  {label}, {n} subm.: {', '.join(f'{v:.0f}' for v in values)}")


if __name__ == "__main__":
    main()
