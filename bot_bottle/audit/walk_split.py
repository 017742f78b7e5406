"""A long log's chain walked by two processes at once: the later part in a helper, while verify does the rest.

``audit verify`` of a million entries is about 3.7 s of walking the chain
(SQLite reading the rows, one sha256 and one HMAC each, in Python) and 1.5 s
of holding every response to its entry, on one core (docs/benchmarks.md,
"`audit verify` in two processes"). A helper process
(``python -I -c ... walk_split.main()``) walks the later part while verify
walks the rest and checks the bindings.

Two processes make one proof only if they read one log. ``paired`` gives
verify a connection of its own and a helper that are:

- **on the same file**: each names the file it has open (device and inode,
  from ``/proc/self/fd``), and they must agree; a file renamed over the
  database between the two opens is not walked by halves;
- **in the same snapshot**: verify takes the write lock, starts its read,
  has the helper start its own, and lets the lock go. No commit can land
  between the two (``PRAGMA data_version`` says none did between the lock's
  end and verify's read), so writers wait one round trip to the helper,
  about a millisecond, never the walk.

The helper starts its part from the hash and seal of the entry before it,
as verify's own walk proves them, and answers the last entry it walked;
verify accepts the answer only if that is the log's last entry, with the
hash and seal verify reads there, and the parts together hold every row.
Anything else (a helper that did not start, stalled, died, or answered
otherwise; a problem anywhere) and verify walks the whole log itself, so
the report is always the one a single walk gives. The helper runs isolated
(``-I``: no current directory, ``PYTHONPATH`` or user site on its path,
from ``/``) and gets the key on its standard input.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from bot_bottle.audit.anchor import Anchor
from bot_bottle.audit.walk import Problem, Proven, walk

# Below this many entries a second process (about 0.15 s to start) costs more than it saves.
SPLIT_FROM = 100_000
# How long the helper may take to start and to take its snapshot; past it, verify walks alone.
HANDSHAKE_SEC = 15.0
# A helper whose progress stands still this long is stopped, and its part walked by verify (a batch of
# 10,000 entries takes a few tens of milliseconds).
STALL_SEC = 60.0

_FDS = "/proc/self/fd"
_RUN_HELPER = "import sys; sys.path.insert(0, sys.argv[1]); from bot_bottle.audit.walk_split import main; main()"


def split_point(count: int, responses: int) -> int:
    """The last entry verify walks itself, so that both processes finish together.

    verify also holds every response to its entry (about four entries'
    walk each, measured); both start walking together (``paired``).
    """
    return max(1, min(count - 1, (count - 4 * responses) // 2))


@dataclass(frozen=True)
class Answer:
    """What the helper found in its part: the first problem, the last entry walked, the first without a seal."""

    problem: Problem | None
    last: Proven
    unsealed_from: int | None


class Helper:
    """The helper process: lines to it on its standard input, lines from it read by a thread of its own."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self._process = process
        self.done = 0  # entries of its part walked so far
        self._moved = time.monotonic()  # when it last said how far it got
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, name="walk-split-reader", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self._process.stdout is not None
        with contextlib.suppress(OSError, ValueError):
            for line in self._process.stdout:
                word, _, rest = line.strip().partition(" ")
                if word == "done" and rest.isdigit():  # progress, as it goes: verify shows it while it walks too
                    self.done, self._moved = int(rest), time.monotonic()
                else:
                    self._lines.put(line)
        self._lines.put(None)

    def send(self, message: str) -> bool:
        """Write one line to the helper; False if it is gone."""
        assert self._process.stdin is not None
        try:
            self._process.stdin.write(message + "\n")
            self._process.stdin.flush()
        except (OSError, ValueError):
            return False
        return True

    def expect(self, word: str, timeout: float) -> list[str] | None:
        """The words after ``word`` on the helper's next line, within ``timeout``; None for anything else."""
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            return None
        if line is None or (not line.startswith(word + " ") and line.rstrip("\n") != word):
            return None
        return line.split()[1:]

    def answer(self, waiting: Callable[[], None]) -> Answer | None:
        """The helper's answer for its part, calling ``waiting()`` about every quarter second meanwhile (to show
        progress); None if it stalls for ``STALL_SEC``, ends, or says anything but progress and an answer."""
        while True:
            try:
                line = self._lines.get(timeout=0.25)
            except queue.Empty:
                waiting()
                if time.monotonic() - self._moved > STALL_SEC:
                    return None
                continue
            waiting()
            if line is None:
                return None
            word, _, rest = line.strip().partition(" ")
            return _answer_of(rest) if word == "answer" else None

    def stop(self) -> None:
        """End the helper, whatever it is doing."""
        if self._process.poll() is None:
            self._process.kill()
        self._process.wait()
        for stream in (self._process.stdin, self._process.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()


def _answer_of(text: str) -> Answer | None:
    try:
        message = json.loads(text)
        problem, last, unsealed = message["problem"], message["last"], message["unsealed_from"]
        found = None if problem is None else (None if problem[0] is None else int(problem[0]), str(problem[1]))
        return Answer(found, Proven(int(last["seq"]), str(last["hash"]), str(last["seal"])),
                      None if unsealed is None else int(unsealed))
    except (ValueError, KeyError, TypeError, IndexError):
        return None


def _spawn() -> Helper | None:
    package_root = str(Path(__file__).resolve().parents[2])
    try:
        process = subprocess.Popen(
            [sys.executable, "-I", "-c", _RUN_HELPER, package_root], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, text=True, cwd="/", close_fds=True)
    except OSError:
        return None
    return Helper(process)


def open_file(path: str, timeout: float) -> sqlite3.Connection:
    """A connection to the database file at ``path``, which must exist (it is never created here)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(path)
    return sqlite3.connect(f"{Path(path).as_uri()}?mode=rw", uri=True, isolation_level=None, timeout=timeout,
                           check_same_thread=False)


def descriptors_on(path: str) -> set[int]:
    """This process's file descriptors open on the file named ``path``, or on one that had the name and was
    removed or replaced since (``/proc/self/fd`` says "PATH (deleted)")."""
    found = set()
    for name in os.listdir(_FDS):
        with contextlib.suppress(OSError, ValueError):  # the listing's own descriptor is gone by now
            if os.readlink(f"{_FDS}/{name}") in (path, f"{path} (deleted)"):
                found.add(int(name))
    return found


def files_of(descriptors: set[int]) -> set[tuple[int, int]]:
    """(device, inode) of each file ``descriptors`` are open on."""
    return {(status.st_dev, status.st_ino) for status in map(os.fstat, descriptors)}


@contextlib.contextmanager
def paired(database: Path) -> Iterator[tuple[sqlite3.Connection, Helper] | None]:
    """A connection of verify's own and a helper, on one file and in one read snapshot; None where not to be had.

    The connection is inside its read transaction; the helper waits for
    ``Helper.send`` of its part (``part_request``).
    """
    path = str(database.resolve())
    helper = _spawn() if os.path.isdir(_FDS) else None
    conn: sqlite3.Connection | None = None
    same_file = False
    try:
        if helper is not None and helper.send(json.dumps({"database": path})):
            theirs = helper.expect("open", HANDSHAKE_SEC)
            with contextlib.suppress(OSError, sqlite3.Error):
                conn = open_file(path, timeout=2.0)
            # Every connection of this process's to the database (the caller's own, and this one: SQLite may
            # hand it a descriptor a closed one left open) is on the one file the helper has, now at the path.
            # One renamed over it leaves the caller's on a file "(deleted)": then there is no split.
            with contextlib.suppress(OSError):
                now = os.stat(path)
                mine = files_of(descriptors_on(path)) if conn is not None else set()
                same_file = mine == {(now.st_dev, now.st_ino)} == _file_named(theirs)
            if conn is not None and same_file and _one_snapshot(conn, helper):
                yield conn, helper
                return
        yield None
    finally:
        if helper is not None:
            helper.stop()
        if conn is not None:
            conn.close()  # a read transaction still open ends with it


def _file_named(words: list[str] | None) -> set[tuple[int, int]]:
    """The file the helper said it has open ("open DEVICE INODE"), as ``files_of`` gives it."""
    if words is None or len(words) != 2 or not all(word.isdigit() for word in words):
        return set()
    return {(int(words[0]), int(words[1]))}


def _one_snapshot(conn: sqlite3.Connection, helper: Helper) -> bool:
    """Put ``conn`` and the helper in the same read snapshot (see the module's docstring); False if they are not."""
    try:
        conn.execute("BEGIN IMMEDIATE")  # writers wait from here: a round trip to the helper
    except sqlite3.Error:
        return False  # the lock is held long: verify walks alone
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        version = conn.execute("PRAGMA data_version").fetchone()[0]
        ready = helper.send("snapshot") and helper.expect("ready", HANDSHAKE_SEC) is not None
    finally:
        conn.execute("ROLLBACK")
    if not ready:
        return False
    conn.execute("BEGIN")
    conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    # Nothing committed since the lock was let go: this snapshot is the one the helper took under it.
    return bool(conn.execute("PRAGMA data_version").fetchone()[0] == version)


def part_request(key: bytes, anchor: Anchor | None, after: Proven, until: int) -> str:
    """The line that tells the helper its part: entries ``after.seq + 1`` to ``until``, with the key."""
    return json.dumps({"key": key.hex(), "anchor": None if anchor is None else anchor.to_dict(),
                       "after": {"seq": after.seq, "hash": after.hash, "seal": after.seal}, "until": until})


def serve(lines: IO[str], out: IO[str]) -> None:
    """The helper's side of ``paired``: open, take the snapshot when told, walk the part it is given, answer."""
    path = str(json.loads(lines.readline())["database"])
    conn = open_file(path, timeout=5.0)
    try:
        mine = descriptors_on(path)  # a new process: its connection's is the only one
        if len(mine) != 1:
            return
        ((device, inode),) = files_of(mine)
        print(f"open {device} {inode}", file=out, flush=True)
        if lines.readline().strip() != "snapshot":
            return
        conn.execute("BEGIN")
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        print("ready", file=out, flush=True)
        part = json.loads(lines.readline())
        after = Proven(int(part["after"]["seq"]), str(part["after"]["hash"]), str(part["after"]["seal"]))
        anchor = None if part["anchor"] is None else Anchor.from_dict(part["anchor"])
        walked = walk(conn, bytes.fromhex(part["key"]), anchor, after=after, until=int(part["until"]),
                      progress=lambda seq: print(f"done {seq - after.seq}", file=out, flush=True))
        answer = {"problem": None if walked.problem is None else list(walked.problem),
                  "last": {"seq": walked.last.seq, "hash": walked.last.hash, "seal": walked.last.seal},
                  "unsealed_from": walked.unsealed_from}
        print(f"answer {json.dumps(answer)}", file=out, flush=True)
    finally:
        conn.close()


def main() -> None:
    """The helper process (started by ``paired``): ``serve`` on standard input and output."""
    serve(sys.stdin, sys.stdout)
