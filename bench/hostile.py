"""A hostile agent against the supervise server: fuzz, slow clients, a flood, 1,000 calls, a proposal flood.

The server runs as its own process (as in the sidecar); its threads and peak
memory are read from /proc while each attack runs. Figures, not assertions:
tests/attacks/test_sidecar_server.py asserts the behaviour with smaller runs of
the same attacks (tests/helpers/hostile.py holds both's hostile client).
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from common import REPO, machine, parser, table, work_dir

from bot_bottle.cli.inbox import approval_for
from bot_bottle.decisions import decide
from bot_bottle.queue_store import QueueStore
from bot_bottle.records import STATUS_APPROVED
from tests.helpers.hostile import (
    Sampler,
    concurrent_exchanges,
    exchange,
    fuzz,
    parse_answer,
    proc_status,
    request,
    start_server,
    tool_call,
    wait_until,
)

MiB = 1024 * 1024


def mib(kib: int) -> str:
    """KiB from /proc as MiB, one decimal."""
    return f"{kib / 1024:.1f}"


def run_fuzz(folder: Path, count: int) -> list[list[object]]:
    """``count`` fuzzed requests, one connection each."""
    server, port = start_server(folder / "fuzz.db", "--request-timeout", "2", "--wait-seconds", "0")
    try:
        idle = proc_status(server.pid)
        started = time.monotonic()
        with Sampler(server.pid) as sampler:
            report = fuzz(port, count, seed=1)
        seconds = time.monotonic() - started
        after, _ = exchange(port, request())
        sent = sum(report.sent.values())
        classes = ", ".join(f"{k} {v}" for k, v in sorted(report.sent.items()))
        statuses = ", ".join(f"{k}: {v}" for k, v in sorted(report.statuses.items()))
        print(f"fuzz: {sent} requests in {seconds:.0f} s ({classes})\n  statuses {statuses}")
        for kind, data in report.unanswered:
            print(f"  unanswered ({kind}): {data[:120]!r}")
        return [[f"fuzz, {sent} malformed requests", sent - len(report.unanswered), len(report.unanswered),
                 idle["Threads"], sampler.peak["Threads"], mib(idle["VmRSS"]), mib(sampler.peak["VmHWM"]),
                 "yes" if after is not None and after.status == 200 and server.poll() is None else "NO"]]
    finally:
        server.terminate()
        server.wait(20)


def run_stalled(folder: Path, stalled: int) -> list[list[object]]:
    """Clients that declare 4 MiB, send all but one byte and stall."""
    server, port = start_server(folder / "stalled.db", "--request-timeout", "5")
    try:
        idle = proc_status(server.pid)
        answers: list[int] = []

        def stall() -> None:
            received = b""
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
                    sock.sendall(request(b"", length=str(4 * MiB)) + b"x" * (4 * MiB - 1))
                    while chunk := sock.recv(65536):
                        received += chunk
            except OSError:
                pass
            answer = parse_answer(received)
            answers.append(answer.status if answer else 0)

        with Sampler(server.pid) as sampler:
            threads = [threading.Thread(target=stall) for _ in range(stalled)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(60)
        released = wait_until(lambda: proc_status(server.pid)["Threads"] <= idle["Threads"] + 1, 15)
        counts = {s: answers.count(s) for s in sorted(set(answers))}
        print(f"stalled bodies: answers {counts}; threads back to idle: {released}")
        return [[f"{stalled} bodies of 4 MiB stalled 1 byte short", stalled - answers.count(0), answers.count(0),
                 idle["Threads"], sampler.peak["Threads"], mib(idle["VmRSS"]), mib(sampler.peak["VmHWM"]),
                 "yes" if released else "NO"]]
    finally:
        server.terminate()
        server.wait(20)


def run_flood(folder: Path, connections: int) -> list[list[object]]:
    """Idle connections opened at once, against the default cap of 256."""
    server, port = start_server(folder / "flood.db", "--request-timeout", "5")
    try:
        idle = proc_status(server.pid)
        with Sampler(server.pid) as sampler:
            socks = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(connections)]
            refused = 0
            for sock in socks:
                sock.settimeout(0.05)
                with contextlib.suppress(TimeoutError):
                    refused += parse_answer(sock.recv(4096)) is not None
            for sock in socks:
                sock.close()
        released = wait_until(lambda: proc_status(server.pid)["Threads"] <= idle["Threads"] + 1, 15)
        print(f"idle flood: {refused} of {connections} refused with 503 at once; released: {released}")
        return [[f"{connections} idle connections (cap 256; {refused} x 503)", refused, "-", idle["Threads"],
                 sampler.peak["Threads"], mib(idle["VmRSS"]), mib(sampler.peak["VmHWM"]),
                 "yes" if released else "NO"]]
    finally:
        server.terminate()
        server.wait(20)


def run_load(folder: Path, count: int) -> list[list[object]]:
    """``count`` concurrent tool calls, an operator deciding each as it arrives."""
    db = folder / "load.db"
    server, port = start_server(db, "--max-pending", str(count), "--wait-seconds", "30")
    stop = threading.Event()

    def operator() -> None:
        with QueueStore(db) as store:
            while not stop.is_set():
                for proposal in store.pending("web-1"):
                    decide(proposal.id, STATUS_APPROVED, "ok", store=store)
                time.sleep(0.01)

    decider = threading.Thread(target=operator)
    decider.start()
    try:
        idle = proc_status(server.pid)
        calls = [request(tool_call("egress-allow", {"host": f"h{i}.example", "justification": "load"}, i))
                 for i in range(count)]
        started = time.monotonic()
        with Sampler(server.pid) as sampler:
            raws = concurrent_exchanges(port, calls, timeout=300)
        seconds = time.monotonic() - started
        answers = [parse_answer(raw) for raw in raws]
        decided = sum(1 for a in answers if a is not None and a.status == 200)
        busy = sum(1 for a in answers if a is not None and a.status == 503)
        unanswered = sum(1 for a in answers if a is None)
        print(f"load: {count} calls in {seconds:.1f} s: {decided} decided, {busy} answered 503, "
              f"{unanswered} unanswered")
        return [[f"{count} concurrent tool calls ({decided} decided, {busy} x 503)", decided + busy, unanswered,
                 idle["Threads"], sampler.peak["Threads"], mib(idle["VmRSS"]), mib(sampler.peak["VmHWM"]),
                 "yes" if server.poll() is None else "NO"]]
    finally:
        stop.set()
        decider.join()
        server.terminate()
        server.wait(20)


_PEAK = """
import runpy, sys, time
sys.argv = ["bot_bottle", *sys.argv[1:]]
started = time.perf_counter()
try:
    runpy.run_module("bot_bottle", run_name="__main__")
except SystemExit:
    pass
status = open("/proc/self/status").read()
hwm = next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:"))
print(hwm, time.perf_counter() - started, file=sys.stderr)
"""


def run_listing(folder: Path, count: int, size: int) -> None:
    """``count`` pending proposals of ``size`` bytes: what listing them costs."""
    db = folder / "flood.db"
    with QueueStore(db) as store, store.db.write() as conn:
        conn.executemany(
            "INSERT INTO proposals (id, queue_key, tool, payload, payload_sha256, justification, created_at) "
            "VALUES (?, ?, 'egress-block', ?, ?, ?, ?)",
            ((f"{i:032x}", "web-1", f"{i:08d}" + "p" * (size - 8), f"{i:064x}", f"flood {i}",
              f"2026-11-30T00:00:00.{i:06d}Z") for i in range(count)))
    rows = []
    for argv in (("supervise", "--once"), ("proposals", "list", "--json")):
        result = subprocess.run([sys.executable, "-c", _PEAK, *argv, "--db", str(db)], cwd=REPO,
                                capture_output=True, text=True, timeout=600)
        hwm, seconds = result.stderr.split()[-2:]
        rows.append([" ".join(argv), f"{float(seconds) * 1000:.0f}", mib(int(hwm))])
    print(f"\n{count} pending proposals of {size // 1024} KiB ({count * size / MiB:.0f} MiB of payloads)")
    print(table(["listing", "ms", "peak RSS MiB"], rows))


def run_routes_listing(folder: Path, count: int, size: int) -> None:
    """``count`` routes files of ``size`` bytes, every line a host of its own, from one bottle (within its quota):
    what a listing costs where every line is read for what approving it grants, at a screen's first look and at
    its refreshes (``policy.approval`` reads the same input once a process)."""
    db = folder / "routes.db"
    with QueueStore(db) as store:
        for n in range(count):
            lines, total = [], 0
            while total + 40 < size:
                lines.append(f"- h{n}x{len(lines)}.example{len(lines) % 997}.com")
                total += len(lines[-1]) + 1
            store.submit("web-1", "egress-block", "\n".join(lines), f"routes {n}")
        pending = store.pending()
        looks = []
        for _ in range(2):  # a screen's first look, then a refresh in the same process
            started = time.perf_counter()
            for proposal in pending:
                approval_for(proposal)
            looks.append(f"{(time.perf_counter() - started) * 1000:.0f}")
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "bot_bottle", "proposals", "list", "--json", "--db", str(db)], cwd=REPO,
                   capture_output=True, check=True, timeout=600)
    cli = f"{(time.perf_counter() - started) * 1000:.0f}"
    print(f"\n{count} routes files of {size // 1024} KiB from one bottle, a host a line")
    print(table(["listing", "ms"], [["proposals list --json", cli], ["a screen's first look", looks[0]],
                                    ["a screen's refresh", looks[1]]]))


def main() -> None:
    args = parser(__doc__.splitlines()[0]).parse_args()
    folder = work_dir(args)
    print(machine(folder))
    smoke = args.smoke
    rows = run_fuzz(folder, 200 if smoke else 10_000)
    rows += run_stalled(folder, 8 if smoke else 40)
    rows += run_flood(folder, 50 if smoke else 600)
    rows += run_load(folder, 100 if smoke else 1000)
    print()
    print(table(["attack", "answered", "unanswered", "threads idle", "threads peak", "RSS idle MiB",
                 "RSS peak MiB", "alive/released"], rows))
    run_listing(folder, 50 if smoke else 1000, 64 * 1024 if smoke else MiB)
    run_routes_listing(folder, 2 if smoke else 15, 64 * 1024 if smoke else MiB - 1024)


if __name__ == "__main__":
    main()
