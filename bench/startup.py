"""Start-up: the common verbs and the sidecar server's time to ready, against Python's floor."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from common import REPO, machine, median, parser, table, work_dir

from bot_bottle.db import open_db
from bot_bottle.sidecar.launcher import spawn


def run_once(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - started


def server_ready(path: Path) -> float:
    started = time.perf_counter()
    server, _ = spawn("web", path)
    elapsed = time.perf_counter() - started
    server.terminate()
    server.communicate(timeout=10)
    return elapsed


def main() -> None:
    args = parser(__doc__.splitlines()[0]).parse_args()
    folder = work_dir(args)
    runs = args.runs or (2 if args.smoke else 15)
    path = folder / "startup.db"
    open_db(path).close()
    print(machine(folder))
    print(f"median wall-clock milliseconds of {runs} runs\n")
    floor = median([run_once([sys.executable, "-c", "import sqlite3"]) for _ in range(runs)])
    verbs = (["proposals", "list"], ["audit", "list"], ["supervise", "--once"], ["db", "status"], ["--help"])
    timed = [(f"python -m bot_bottle {' '.join(verb)}",
              median([run_once([sys.executable, "-m", "bot_bottle", *verb, "--db", str(path)]) for _ in range(runs)]))
             for verb in verbs]
    ready = median([server_ready(path) for _ in range(runs)])
    rows = [[label, f"{value * 1000:.0f}", f"{value / floor:.1f}"] for label, value in (
        ('python -c "import sqlite3" (floor)', floor),
        *timed,
        ("supervise server: start to 'listening on'", ready),
    )]
    print(table(["command", "ms", "x floor"], rows))


if __name__ == "__main__":
    main()
