"""Run inside a private mount namespace on a small tmpfs (``tests/test_full_disk.py``): bot-bottle on a full disk.

``python -m tests.helpers.full_disk upgrade DIR STEP MAX`` makes a new database
in DIR with ``db upgrade`` once for each amount of room left on the disk
(0, STEP, 2*STEP ... up to MAX bytes), ``python -m tests.helpers.full_disk
decide DIR`` files and decides on a database with history once the disk is
full, and ``doctor DIR`` asks ``doctor`` as the disk fills. Each prints what
it saw as one JSON document: what every command answered, and what the file
held before, during and after.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

from bot_bottle.decisions import decide
from bot_bottle.queue_store import QueueStore

FILLER = "filler"


def fill(folder: Path, leave: int) -> None:
    """Fill the disk holding ``folder`` with a file, then give back ``leave`` bytes of it."""
    filler = folder / FILLER
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError:
        pass  # ENOSPC: the disk is full
    finally:
        os.close(fd)
    os.truncate(filler, max(0, filler.stat().st_size - leave))


def cli(*args: str) -> dict[str, Any]:
    """``python -m bot_bottle ARGS``: its exit status and what it printed."""
    done = subprocess.run([sys.executable, "-m", "bot_bottle", *args], capture_output=True, text=True, timeout=60)
    return {"rc": done.returncode, "stdout": done.stdout, "stderr": done.stderr}


def counts(database: Path) -> dict[str, int]:
    """How many rows each table the queue and the log keep holds, read without bot-bottle."""
    conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        return {table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                for table in ("proposals", "responses", "audit_log", "audit_seal", "grants")}
    finally:
        conn.close()


def upgrades(folder: Path, step: int, most: int) -> list[dict[str, Any]]:
    """A new database made with ``db upgrade`` with each amount of room left; then, with room, again and checked."""
    seen = []
    for leave in range(0, most + 1, step):
        database = folder / f"left-{leave}" / "bot-bottle.db"
        database.parent.mkdir()
        fill(folder, leave)
        upgrade = cli("db", "upgrade", "--db", str(database))
        (folder / FILLER).unlink()
        status = cli("db", "status", "--json", "--db", str(database)) if database.stat().st_size else None
        version = json.loads(status["stdout"])["current"] if status is not None else 0
        seen.append({"left": leave, "upgrade": upgrade, "version": version,
                     "again": cli("db", "upgrade", "--db", str(database)),
                     "check": cli("db", "check", "--db", str(database))})
        for made in database.parent.iterdir():  # its room back for the next
            made.unlink()
    return seen


def attempt(action: Any) -> dict[str, str]:
    """What ``action()`` did: ``ok``, or the error it raised (its class and message)."""
    try:
        action()
    except Exception as exc:  # any error is what the test looks at
        return {"error": type(exc).__name__, "message": str(exc)}
    return {"ok": ""}


def decisions(folder: Path) -> dict[str, Any]:
    """Filing and deciding on a database with history once the disk is full, then once there is room again."""
    database = folder / "bot-bottle.db"
    seen: dict[str, Any] = {}
    with QueueStore(database) as host, QueueStore(database, migrate_schema=False) as side:
        bottle, sidecar = host.for_bottle("web-1"), side.for_bottle("web-2")
        for number in range(3):
            done = bottle.submit("egress-allow", json.dumps({"host": f"a{number}.example"}), "history")
            decide(done.id, "approved", "", decided_by="ann", store=host)
        waiting = bottle.submit("egress-allow", json.dumps({"host": "waiting.example"}), "decided on a full disk")
        digest = json.loads(cli("proposals", "show", waiting.id, "--json", "--db", str(database))["stdout"])["digest"]
        seen["before"] = counts(database)
        fill(folder, 0)
        seen["full"] = {
            "sidecar files": attempt(lambda: sidecar.submit("egress-allow", '{"host": "s.example"}', "full")),
            "host files": attempt(lambda: bottle.submit("egress-allow", '{"host": "h.example"}', "full")),
            "store decides": attempt(lambda: decide(waiting.id, "approved", "", decided_by="ann", store=host)),
        }
        seen["cli on a full disk"] = {
            "approve": cli("proposals", "approve", waiting.short_id, "--digest", digest, "--db", str(database)),
            "list": cli("proposals", "list", "--db", str(database)),
            "check": cli("db", "check", "--db", str(database)),
            "verify": cli("audit", "verify", "--db", str(database)),
        }
        seen["during"] = counts(database)
        seen["pending"] = host.response(waiting.id) is None
        (folder / FILLER).unlink()
        seen["room again"] = {
            "approve": cli("proposals", "approve", waiting.short_id, "--digest", digest, "--db", str(database)),
            "sidecar files": attempt(lambda: sidecar.submit("egress-allow", '{"host": "s.example"}', "room")),
        }
    seen["after"] = counts(database)
    seen["checked"] = cli("db", "check", "--db", str(database))
    seen["verified"] = cli("audit", "verify", "--db", str(database))
    return seen


def doctor_lines(folder: Path) -> dict[str, Any]:
    """``doctor``'s disk space line for a database on the disk: with room, with 1 MiB left, and with none."""
    database = folder / "bot-bottle.db"
    QueueStore(database).close()

    def said() -> Any:
        checks = json.loads(cli("doctor", "--json", "--db", str(database))["stdout"])["checks"]
        return next(check for check in checks if check["check"] == "disk space")

    seen = {"room": said()}
    fill(folder, 1024 * 1024)
    seen["little"] = said()
    fill(folder, 0)
    seen["none"] = said()
    seen["none exit"] = cli("doctor", "--db", str(database))["rc"]
    return seen


MODES = {"upgrade": lambda folder, numbers: upgrades(folder, int(numbers[0]), int(numbers[1])),
         "decide": lambda folder, numbers: decisions(folder),
         "doctor": lambda folder, numbers: doctor_lines(folder)}


def main() -> None:
    mode, folder = sys.argv[1], Path(sys.argv[2])
    print(json.dumps(MODES[mode](folder, sys.argv[3:])))


if __name__ == "__main__":
    main()
