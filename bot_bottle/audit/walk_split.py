"""A long log's chain walked by two processes at once: the later part in a helper, while verify does the rest.

``audit verify`` of a million entries is about 3.7 s of walking the chain
(SQLite reading the rows, one sha256 and one HMAC each, in Python) and 1.5 s
of holding every response to its entry, on one core (docs/benchmarks.md,
"`audit verify` in two processes"). ``start`` runs the walk of the entries
after a point in a second process, ``python -m bot_bottle.audit.walk_split``,
while the caller walks the entries up to it and checks the bindings.

What makes two walks one proof: the caller hands the helper the hash and
seal of the entry the helper starts after, as the caller's own walk proves
them, and the last entry to walk; the helper links its first entry to that
hash and seals over that seal. Every entry is then checked, and the chain
is whole across the point, even where the helper's snapshot is another
than the caller's (entries are appended, never changed in place: a change
between the two is a change the helper's walk finds, or one made after the
walk read the entry, as it could be after any verify).

The helper only ever answers what it found. Anything else (it could not
start, it died, it said something unreadable) is ``UNANSWERED``, and the
caller walks that part itself. A problem it reports is walked again by the
caller in its own snapshot, so the report is always the one walk would give.
The key travels on the helper's standard input, never on its command line.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bot_bottle.audit.anchor import Anchor
from bot_bottle.audit.walk import Problem, Proven, walk

# Below this many entries a second process (about 0.15 s to start) costs more than it saves.
SPLIT_FROM = 100_000

# The answer of a helper that did not answer: the caller walks its part itself.
UNANSWERED = "unanswered"


def split_point(count: int, responses: int) -> int:
    """The last entry the caller walks itself, so that both processes finish together.

    The caller also holds every response to its entry (about four entries'
    walk each, measured) and the helper first starts (about 20,000
    entries' walk).
    """
    return max(1, min(count - 1, (count - 4 * responses) // 2 + 20_000))


class Helper:
    """The helper process walking one part of the log: its progress as it goes, then its answer."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self._process = process
        self.done = 0  # entries of its part walked so far
        self._answer: Problem | str | None = UNANSWERED
        self._reader = threading.Thread(target=self._read, name="walk-split-reader", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self._process.stdout is not None
        with contextlib.suppress(OSError, ValueError):
            for line in self._process.stdout:
                if line.strip().isdigit():
                    self.done = int(line)
                    continue
                self._answer = _answer_of(line)
                return

    def answer(self, waiting: Callable[[], None]) -> Problem | str | None:
        """Wait for the helper, calling ``waiting()`` every quarter second meanwhile (to show progress): None
        (its part is whole), (bad seq, problem), or ``UNANSWERED``."""
        while self._reader.is_alive():
            self._reader.join(0.25)
            waiting()
        waiting()  # its last progress too
        code = self._process.wait()
        return self._answer if code == 0 else UNANSWERED

    def stop(self) -> None:
        """End the helper, whatever it is doing (on an interrupt, or when its answer is no longer needed)."""
        if self._process.poll() is None:
            self._process.kill()
        self._process.wait()
        for stream in (self._process.stdin, self._process.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()


def _answer_of(line: str) -> Problem | str | None:
    try:
        message = json.loads(line)
        problem = message["problem"]
        if problem is None:
            return None
        seq, text = problem
        return (None if seq is None else int(seq)), str(text)
    except (ValueError, KeyError, TypeError):
        return UNANSWERED


def start(database: Path, key: bytes, anchor: Anchor | None, after: Proven, until: int) -> Helper | None:
    """A helper walking entries ``after.seq + 1`` to ``until`` of the log in ``database``; None if it cannot start."""
    request = {"database": str(database.resolve()), "key": key.hex(),
               "anchor": None if anchor is None else anchor.to_dict(),
               "after": {"seq": after.seq, "hash": after.hash, "seal": after.seal}, "until": until}
    package_root = str(Path(__file__).resolve().parents[2])
    environment = dict(os.environ)
    environment["PYTHONPATH"] = os.pathsep.join(
        part for part in (package_root, environment.get("PYTHONPATH", "")) if part)
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "bot_bottle.audit.walk_split"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, text=True, env=environment, close_fds=True)
    except OSError:
        return None
    assert process.stdin is not None
    try:
        process.stdin.write(json.dumps(request) + "\n")
        process.stdin.close()
    except OSError:
        process.kill()
        process.wait()
        return None
    return Helper(process)


def walk_part(request: dict[str, Any], report: Any) -> Problem | None:
    """The helper's walk of the part ``request`` names (``start``); progress and the answer go to ``report``."""
    after = Proven(int(request["after"]["seq"]), str(request["after"]["hash"]), str(request["after"]["seal"]))
    anchor = None if request["anchor"] is None else Anchor.from_dict(request["anchor"])
    database = str(request["database"])
    if not os.path.isfile(database):  # gone since the caller opened it: never create one here
        raise FileNotFoundError(database)
    # mode=rw: the file is never created; a read snapshot, as the caller's (WAL: it holds up no writer).
    conn = sqlite3.connect(f"{Path(database).as_uri()}?mode=rw", uri=True, isolation_level=None)
    try:
        conn.execute("BEGIN")
        problem, _ = walk(conn, bytes.fromhex(request["key"]), anchor,
                          progress=lambda seq: print(seq - after.seq, file=report, flush=True),
                          after=after, until=int(request["until"]))
        conn.execute("ROLLBACK")
    finally:
        conn.close()
    return problem


def main() -> None:
    """The helper: one request on standard input, progress lines and one answer on standard output."""
    problem = walk_part(json.loads(sys.stdin.readline()), sys.stdout)
    print(json.dumps({"problem": None if problem is None else list(problem)}), flush=True)


if __name__ == "__main__":
    main()
