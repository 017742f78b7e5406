"""Start-up: the common verbs and the sidecar server's time to ready, against Python's floor.

Each verb is measured as a paired ratio: every run starts the floor
(``python3 -c "import sqlite3"``) and then the verb, back to back, and the
ratio of the two is taken per pair; the table gives the median of those
ratios (and the median milliseconds). On a shared machine a burst of load
falls on both halves of a pair alike, where two separate medians would
compare different minutes.
"""

from __future__ import annotations

import os
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
    # Start-up as a user has it, the bytecode cached: with PYTHONDONTWRITEBYTECODE set (as in some shells),
    # every module edited since its cache was written is compiled again at each start (4 ms for
    # connection.py alone), so the children may write the cache, and each verb runs once first.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    folder = work_dir(args)
    runs = args.runs or (2 if args.smoke else 15)
    path = folder / "startup.db"
    open_db(path).close()
    print(machine(folder))
    print(f"median wall-clock milliseconds of {runs} runs; x floor: the median of {runs} paired ratios "
          "(the floor, then the command, back to back)\n")
    floor_cmd = [sys.executable, "-c", "import sqlite3"]
    verbs = (["proposals", "list"], ["audit", "list"], ["supervise", "--once"], ["db", "status"], ["--help"])
    floors: list[float] = []
    rows = []
    for verb in verbs:
        run_once([sys.executable, "-m", "bot_bottle", *verb, "--db", str(path)])  # the bytecode cache written
        pairs = [(run_once(floor_cmd), run_once([sys.executable, "-m", "bot_bottle", *verb, "--db", str(path)]))
                 for _ in range(runs)]
        floors += [floor for floor, _ in pairs]
        rows.append([f"python -m bot_bottle {' '.join(verb)}", f"{median([v for _, v in pairs]) * 1000:.0f}",
                     f"{median([v / f for f, v in pairs]):.2f}"])
    ready = [(run_once(floor_cmd), server_ready(path)) for _ in range(runs)]
    floors += [floor for floor, _ in ready]
    rows.insert(0, ['python -c "import sqlite3" (floor)', f"{median(floors) * 1000:.0f}", "1.00"])
    rows.append(["supervise server: start to 'listening on'", f"{median([v for _, v in ready]) * 1000:.0f}",
                 f"{median([v / f for f, v in ready]):.2f}"])
    print(table(["command", "ms", "x floor (paired)"], rows))


if __name__ == "__main__":
    main()
