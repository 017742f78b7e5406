"""Scale: the queue and audit log with 1,000,000 audit entries and 100,000 archived proposals.

The history is written straight into the tables (each audit entry with its
real hash chain and its seal, through the schema's triggers; each decision
entry with the details a decision records; the anchor written after the
last), under a HOME of the benchmark's own (its audit key), then the timings are taken
through the public API: the pending list, the newest 50 audit entries of one
bottle, ``audit verify``, opening the database (the migration check every
sidecar pays at start), and a full upgrade from version 0 of an empty file.
Then ``audit verify`` once more while another process files as a sidecar
does (a submit, its own commit, every 20 ms): how long each filing took
while the verify held its read, which in WAL mode is no longer than without
it (in the rollback journal each waited for the whole verify).
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from common import REPO, machine, median, parser, percentile, table, work_dir

from bot_bottle.audit import routes_approved
from bot_bottle.audit.anchor import advance_anchor
from bot_bottle.audit.chain import GENESIS_HASH, compute_hash
from bot_bottle.audit.seal import GENESIS_SEAL, create_key, key_id, load_key, seal_of
from bot_bottle.audit_store import AuditStore
from bot_bottle.cli.launch_routes import check_launch_routes
from bot_bottle.connection import connect, transaction
from bot_bottle.db import open_db
from bot_bottle.decisions import operator_edit
from bot_bottle.grants import GrantStore
from bot_bottle.queue_store import QueueStore
from bot_bottle.schema import migrate

BOTTLES = 50
BATCH = 10_000


def populate(path: Path, proposals: int, entries: int) -> None:
    """Archived, decided proposals, then audit entries (one per decision, the rest operator edits)."""
    conn = open_db(path)
    stamp = "2026-11-27T00:00:00.000000Z"
    ids = [hashlib.md5(str(i).encode()).hexdigest() for i in range(proposals)]
    for start in range(0, proposals, BATCH):
        chunk = range(start, min(proposals, start + BATCH))
        with transaction(conn):
            conn.executemany(
                "INSERT INTO proposals (id, queue_key, tool, payload, payload_sha256, justification, created_at, "
                "archived_at) VALUES (?, ?, 'egress-allow', ?, ?, 'history', ?, ?)",
                [(ids[i], f"bottle-{i % BOTTLES}", f'{{"host": "h{i}.example"}}', ids[i] * 2, stamp, stamp)
                 for i in chunk])
            conn.executemany(
                "INSERT INTO responses VALUES (?, 'approved', '', NULL, 'bench@host', ?)",
                [(ids[i], stamp) for i in chunk])
    prev, seal = GENESIS_HASH, GENESIS_SEAL
    # The benchmark's HOME has no key yet: this is the host's first use, so one is made as a decision would.
    audit_key = load_key() or create_key()
    for start in range(1, entries + 1, BATCH):
        rows, seals = [], []
        for seq in range(start, min(entries, start + BATCH - 1) + 1):
            decision = seq <= proposals
            key, action = f"bottle-{seq % BOTTLES}", "approved" if decision else "operator-edit"
            tool, proposal_id = ("egress-allow", ids[seq - 1]) if decision else ("routes", None)
            details = "{}"
            if decision:
                key = f"bottle-{(seq - 1) % BOTTLES}"
                payload = f'{{"host": "h{seq - 1}.example"}}'
                details = json.dumps({"justification": "history", "created_at": stamp, "decided_at": stamp,
                                      "current_file_hash": None,
                                      "payload_sha256": hashlib.sha256(payload.encode()).hexdigest()})
            diff = "--- current\n+++ proposed\n@@ -1 +1,2 @@\n routes:\n+- h.example\n"
            digest = compute_hash(seq, stamp, key, action, tool, proposal_id, "bench@host", "", diff,
                                             details, prev)
            rows.append((seq, stamp, key, action, tool, proposal_id, "bench@host", "", diff, details, prev, digest))
            seal = seal_of(audit_key, seq, seal, digest)
            seals.append((seq, seal))
            prev = digest
        with transaction(conn):
            conn.executemany("INSERT INTO audit_log VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
            conn.executemany("INSERT INTO audit_seal (seq, mac) VALUES (?, ?)", seals)
    conn.close()
    advance_anchor(path, entries, seal, key_id(audit_key))
    with QueueStore(path) as store:
        for i in range(10):
            store.submit(f"bottle-{i}", "egress-allow", f'{{"host": "pending{i}.example"}}', "pending")


def rebuilt_log(path: Path) -> list[list[str]]:
    """A sidecar rebuilds the audit log into a table of one column more that refuses revocations; the host's next
    write rebuilds it as its migration made it (``schema.table_rebuild``), the whole log copied under the write
    lock: how long that write took, and the log whole after it. 2,000 grants reference the log beside it (rows
    the sidecar wrote: the benchmark's history has none), as a host's do: a DROP of the log that deleted its
    rows one by one scanned them for each entry. Run last: it changes the file."""
    sidecar = sqlite3.connect(path, isolation_level=None)
    try:
        sidecar.execute("PRAGMA foreign_keys = OFF")
        sidecar.executemany(
            "INSERT INTO grants (id, queue_key, tool, subject, subject_sha256, starts_at, ends_at, proposal_id, "
            "decided_by, audit_seq) VALUES (?, 'bottle-1', 'egress-allow', '{}', ?, '2026-01-01', '2027-01-01', ?, "
            "'bench', ?)", [(hashlib.md5(f"g{i}".encode()).hexdigest(), "0" * 64,
                             hashlib.md5(f"p{i}".encode()).hexdigest(), i + 1) for i in range(2000)])
        sql = sidecar.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'audit_log'").fetchone()[0]
        body = sql.split("(", 1)[1].replace(") STRICT", ", CHECK (action <> 'grant-revoked')) STRICT")
        started = time.perf_counter()
        for statement in ("PRAGMA foreign_keys = OFF", "PRAGMA legacy_alter_table = ON", "BEGIN IMMEDIATE",
                          f"CREATE TABLE spare (extra TEXT, {body}",
                          "INSERT INTO spare SELECT NULL, * FROM audit_log", "DROP TABLE audit_log",
                          "ALTER TABLE spare RENAME TO audit_log", "COMMIT"):
            sidecar.execute(statement)
        theirs = (time.perf_counter() - started) * 1000
    finally:
        sidecar.close()
    with QueueStore(path) as store:
        started = time.perf_counter()
        store.submit("bottle-1", "egress-allow", '{"host": "after.example"}', "a host write")
        ours = (time.perf_counter() - started) * 1000
    sidecar = sqlite3.connect(path, isolation_level=None)
    try:  # its grants out again, for verify (which holds every grant row to its approval); the trigger that
        # refuses the delete is made again by the host's next write
        sidecar.execute("DROP TRIGGER grants_no_delete")
        sidecar.execute("DELETE FROM grants WHERE decided_by = 'bench'")
    finally:
        sidecar.close()
    with AuditStore(path) as audit:
        result = audit.verify()
        if not result.ok:
            raise SystemExit(f"the rebuilt log did not verify: {result.problem}")
    return [["a sidecar's rebuild of the audit log, 2,000 grants beside it", f"{theirs:.0f}", ""],
            ["  the host's next write, rebuilding it as made (once)", f"{ours:.0f}", ""]]


def fresh_proof(conn: sqlite3.Connection, after: int) -> None:
    """``routes_approved``'s proof of the entries after ``after``, as a process's first look (nothing kept)."""
    routes_approved._proven.clear()
    if routes_approved._unproven_since(conn, after, None, "bottle-7") is not None:
        raise SystemExit("the benchmark's log did not prove whole")


def timed(action: object, runs: int) -> float:
    """Median wall-clock milliseconds of ``action()`` over ``runs`` runs."""
    values = []
    for _ in range(runs):
        started = time.perf_counter()
        action()  # type: ignore[operator]
        values.append((time.perf_counter() - started) * 1000)
    return median(values)


def verified(audit: AuditStore) -> object:
    """``audit.verify``, failing the benchmark if the log it built does not verify whole."""
    def run() -> None:
        result = audit.verify()
        if not result.ok or result.unsealed or result.anchored != result.count:
            raise SystemExit(f"the benchmark's log does not verify as built: {result.to_dict()}")
    return run


# A sidecar's filings, one every 20 ms, each timed, until stdin closes; one line of milliseconds at the end.
_FILER = """
import sys, threading, time
from bot_bottle.queue_store import QueueStore
done = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
times = []
with QueueStore(sys.argv[1], migrate_schema=False) as store:
    print("ready", flush=True)
    number = 0
    while not done.is_set():
        started = time.perf_counter()
        store.submit("filer", "egress-allow", '{"host": "f%d.example"}' % number, "during verify", quota=None)
        times.append((time.perf_counter() - started) * 1000)
        number += 1
        time.sleep(0.02)
print(" ".join(f"{t:.2f}" for t in times), flush=True)
"""


def filings_during(action: object, path: Path) -> tuple[float, list[float]]:
    """Run ``action()`` while a sidecar-like process files; its milliseconds, and each filing's."""
    filer = subprocess.Popen([sys.executable, "-c", _FILER, str(path)], cwd=REPO, stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    assert filer.stdout is not None and filer.stdin is not None
    if filer.stdout.readline().strip() != "ready":
        raise SystemExit("the filing process did not start")
    time.sleep(0.2)  # a few filings before, as a baseline
    started = time.perf_counter()
    action()  # type: ignore[operator]
    took = (time.perf_counter() - started) * 1000
    out, _ = filer.communicate("", timeout=60)
    if filer.returncode != 0:
        raise SystemExit(f"the filing process failed (exit {filer.returncode})")
    return took, [float(t) for t in out.split()]


def main() -> None:
    args = parser(__doc__.splitlines()[0]).parse_args()
    folder = work_dir(args)
    entries, proposals = (10_000, 1_000) if args.smoke else (1_000_000, 100_000)
    runs = args.runs or (3 if args.smoke else 5)
    path = folder / "scale.db"
    os.environ["HOME"] = str(folder / "home")  # the audit key and the anchor: the benchmark's own
    print(machine(folder))
    started = time.perf_counter()
    populate(path, proposals, entries)
    print(f"{entries:,} audit entries and {proposals:,} archived proposals written in "
          f"{time.perf_counter() - started:.0f} s; median of {runs} runs\n")
    store, audit = QueueStore(path), AuditStore(path)
    rows = [
        ["pending list (10 pending)", f"{timed(store.pending, runs):.2f}", "< 10"],
        ["newest 50 audit entries of one bottle", f"{timed(lambda: audit.entries('bottle-7', limit=50), runs):.2f}",
         "< 10"],
        ["audit verify", f"{timed(verified(audit), max(1, runs // 2)):.0f}", "<= 3000"],
        ["open_db (migration check, nothing pending)", f"{timed(lambda: open_db(path).close(), runs):.2f}", ""],
    ]
    # What an egress-block is read against: the entries after its bottle's last routes approval proven whole
    # (audit.routes_approved), the first look in a process, then carried on once the log is one entry longer.
    back = min(150_000, entries // 2)
    with audit.db.read() as conn:
        rows.append([f"routes file's last approval proven, {back:,} entries back (a process's first look)",
                     f"{timed(lambda: fresh_proof(conn, entries - back), 1):.0f}", ""])
    operator_edit("bottle-7", "routes", "a\n", "b\n", "bench", db_path=path)
    with audit.db.read() as conn:
        carried = timed(lambda: routes_approved._unproven_since(conn, entries - back, None, "bottle-7"), runs)
        rows.append(["  the log one entry longer (carried on)", f"{carried:.2f}", ""])
    # What 'prepare --routes-file' and 'bottles routes' check before they record a launch routes file: that the
    # host's sealed log holds no rejection of it for the bottle, the whole log held to its seal (cli.launch_routes).
    launch = "routes:\n- launch.example\n"
    rows.append(["a launch routes file's check (the whole log held to its seal)",
                 f"{timed(lambda: check_launch_routes(store, 'bottle-7', launch), 1):.0f}", ""])
    # What every list of grants reads beside the rows: the log's last 91 days, for the grants it keeps and the
    # rows it disagrees with (audit.grant_entries.rows_against_log_in).
    with GrantStore(database=store.db) as grants:
        rows.append(["grants list's reading of the log's last 91 days (every entry here)",
                     f"{timed(grants.against_log, runs):.0f}", ""])
    took, filings = filings_during(verified(audit), path)
    rows.append(["audit verify, a process filing every 20 ms", f"{took:.0f}", ""])
    rows.append([f"  its {len(filings)} filings meanwhile: p50 / p99 / max",
                 f"{median(filings):.1f} / {percentile(filings, 99):.1f} / {max(filings):.1f}", ""])
    store.close()
    audit.close()

    def fresh_upgrade() -> None:
        target = folder / f"fresh-{time.monotonic_ns()}.db"
        conn = connect(target)
        migrate.upgrade(conn)
        conn.close()

    rows.append(["full upgrade from version 0 (empty file)", f"{timed(fresh_upgrade, runs):.2f}", ""])
    size = path.stat().st_size  # (before the rebuild below, which leaves the old table's pages free)
    rows += rebuilt_log(path)
    print(table(["operation", "ms", "target ms"], rows))
    print(f"\ndatabase size: {size / 1e6:.0f} MB, {size / (entries + proposals):.0f} bytes per audit entry "
          "or proposal (with its response)")


if __name__ == "__main__":
    main()
