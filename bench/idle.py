"""Idle cost: CPU used by 16 sidecars waiting on undecided proposals, and by the TUI on an empty queue.

CPU time is read from /proc/PID/stat (user + system) at the start and end
of the window, so start-up costs are not counted.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

from common import REPO, machine, parser, table, work_dir

from bot_bottle.queue_store import QueueStore

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
WAITER = """
import sys
from bot_bottle.queue_store import QueueStore
store = QueueStore(sys.argv[1])
print("waiting", flush=True)
store.wait_for_response(sys.argv[2], float(sys.argv[3]))
"""


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def waiting_sidecars(folder: Path, count: int, window: float) -> float:
    """CPU seconds per minute used by ``count`` processes waiting at the default poll interval."""
    path = folder / "idle.db"
    with QueueStore(path) as store:
        ids = [store.submit(f"b{i}", "egress-allow", '{"host": "x"}', "idle").id for i in range(count)]
    waiters = [subprocess.Popen([sys.executable, "-c", WAITER, str(path), pid, str(window + 30)], cwd=REPO,
                                stdout=subprocess.PIPE, text=True) for pid in ids]
    for process in waiters:
        assert process.stdout is not None
        process.stdout.readline()
    start = sum(cpu_seconds(p.pid) for p in waiters)
    time.sleep(window)
    used = sum(cpu_seconds(p.pid) for p in waiters) - start
    for process in waiters:
        process.kill()
        process.communicate()
    return used * 60 / window


def idle_tui(folder: Path, window: float) -> float | None:
    """CPU seconds per minute of the supervise TUI left open on an empty queue (None without tmux)."""
    tmux = shutil.which("tmux")
    if tmux is None:
        return None
    path = folder / "tui.db"
    QueueStore(path).close()
    pid_file = folder / "tui.pid"
    command = (f"cd {shlex.quote(str(REPO))} && echo $$ > {pid_file} && exec {shlex.quote(sys.executable)} "
               f"-m bot_bottle supervise --db {shlex.quote(str(path))}")
    socket = f"bb-bench-{os.getpid()}"
    subprocess.run([tmux, "-L", socket, "new-session", "-d", "-x", "120", "-y", "30", command], check=True)
    try:
        deadline = time.monotonic() + 10
        while not pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.5)  # past start-up
        pid = int(pid_file.read_text())
        start = cpu_seconds(pid)
        time.sleep(window)
        return (cpu_seconds(pid) - start) * 60 / window
    finally:
        subprocess.run([tmux, "-L", socket, "kill-server"], check=False)


def main() -> None:
    args = parser(__doc__.splitlines()[0]).parse_args()
    folder = work_dir(args)
    window = 2.0 if args.smoke else 60.0
    print(machine(folder))
    print(f"CPU over a {window:g} s window\n")
    sidecars = waiting_sidecars(folder, 16, window)
    tui = idle_tui(folder, window)
    rows = [["16 waiting sidecars (defaults)", f"{sidecars:.3f}", f"{sidecars / 60 * 100:.3f}%", "< 1%",
             "met" if sidecars / 60 < 0.01 else "MISSED"]]
    rows.append(["supervise TUI, empty queue", "n/a (no tmux)" if tui is None else f"{tui:.3f}",
                 "" if tui is None else f"{tui / 60 * 100:.3f}%", "", ""])
    print(table(["what", "CPU s / min", "of one core", "target", ""], rows))


if __name__ == "__main__":
    main()
