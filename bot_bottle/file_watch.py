"""Sleep until a file changes: Linux inotify through ctypes, or nothing where there is none.

A waiter for a decision used to wake every poll interval to ask SQLite
whether anyone had committed. With a watch of the database's commits it
sleeps in ``select`` until one has ended, and wakes at once (docs/benchmarks.md,
"Wake-up after a decision"). The watch is a hint: the caller still looks
every poll interval, so a missed or coalesced event costs latency, never a
decision. Where inotify is missing (macOS, a filesystem without it),
``FileWatch.open`` returns None and the caller polls as before.

The inotify descriptor is not a descriptor of the database file, so closing
it cannot drop the process's SQLite locks (docs/decisions.md, "Journal and
transactions").
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import select
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Self

# <sys/inotify.h>
_IN_MODIFY = 0x00000002
_IN_ATTRIB = 0x00000004
_IN_CLOSE_WRITE = 0x00000008
_IN_MOVED_FROM = 0x00000040
_IN_MOVED_TO = 0x00000080
_IN_DELETE = 0x00000200
_IN_MOVE_SELF = 0x00000800
_IN_DELETE_SELF = 0x00000400
_IN_Q_OVERFLOW = 0x00004000
_IN_IGNORED = 0x00008000
_IN_NONBLOCK = os.O_NONBLOCK
_IN_CLOEXEC = os.O_CLOEXEC
_EVENTS = _IN_MODIFY | _IN_ATTRIB | _IN_CLOSE_WRITE | _IN_MOVE_SELF | _IN_DELETE_SELF
# On the database's directory: which events of which name end a commit (see FileWatch.commits), or the
# directory itself gone.
_GONE = _IN_DELETE | _IN_MOVED_FROM | _IN_MOVED_TO
_COMMIT_EVENTS = _GONE | _IN_ATTRIB | _IN_MOVE_SELF | _IN_DELETE_SELF
_EVENT_HEADER = struct.Struct("iIII")  # struct inotify_event: wd, mask, cookie, len; then len bytes of name


@functools.cache
def _libc() -> ctypes.CDLL | None:
    # Once per process: find_library runs ldconfig in a child process (milliseconds), and every
    # wait opens a watch (docs/benchmarks.md, "Throughput").
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.inotify_init1.argtypes = [ctypes.c_int]
        libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
        return libc
    except (OSError, AttributeError):
        return None


class FileWatch:
    """An inotify watch on one file; ``wait`` sleeps until it changes or the timeout passes."""

    def __init__(self, fd: int, names: dict[bytes, int] | None = None) -> None:
        self.fd = fd
        # A directory watch wakes only for these names, each for the events in its mask (None: a file
        # watch, where every event counts).
        self._names = names

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> FileWatch | None:
        """A watch on ``path``, or None where the platform or filesystem gives none (poll instead)."""
        return cls._watch(Path(path), _EVENTS, None)

    @classmethod
    def commits(cls, database: str | os.PathLike[str]) -> FileWatch | None:
        """A watch that wakes when a write transaction on the SQLite file ``database`` has ended.

        In WAL mode a commit's frames are written and synced, and only then
        published in the shared-memory index, which no file event reports:
        a reader woken by the frames' write looks too early. So every commit
        through ``connection.transaction`` ends by touching ``NAME-wal``
        (``connection.signal_commit``), and this wakes on that file's
        IN_ATTRIB. With the rollback journal a commit (or a rollback) ends by
        removing ``NAME-journal``; a watch of the file itself would fire at
        the commit's first write, while the writer still holds its lock
        (docs/benchmarks.md, "Throughput"). This watches the directory for
        those two, and for the file being removed or replaced; other names
        and events there (the frames' writes, a checkpoint, ``NAME-shm``) are
        read and ignored. None where there is no inotify (poll instead).
        """
        path = Path(database)
        name = os.fsencode(path.name)
        return cls._watch(path.parent, _COMMIT_EVENTS,
                          {name: _GONE, name + b"-journal": _GONE, name + b"-wal": _IN_ATTRIB})

    @classmethod
    def decisions(cls, database: str | os.PathLike[str]) -> FileWatch | None:
        """A watch that wakes when a commit that recorded audit entries (every decision does) has ended.

        Such a commit ends by touching the database file itself
        (``connection.signal_decision``), after the touch of ``NAME-wal``
        that ends every commit; this wakes on the file's IN_ATTRIB, and, as
        ``commits`` does, on the file removed or replaced and on the rollback
        journal's removal (that mode has no touch). A waiter for a decision
        is not woken by other bottles' filings and archives. None where
        there is no inotify (poll instead).
        """
        path = Path(database)
        name = os.fsencode(path.name)
        return cls._watch(path.parent, _COMMIT_EVENTS, {name: _GONE | _IN_ATTRIB, name + b"-journal": _GONE})

    @classmethod
    def _watch(cls, path: Path, events: int, names: dict[bytes, int] | None) -> FileWatch | None:
        libc = _libc()
        if libc is None:
            return None
        fd = int(libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC))
        if fd < 0:
            return None
        if int(libc.inotify_add_watch(fd, os.fsencode(path), events)) < 0:
            os.close(fd)
            return None
        return cls(fd, names)

    def wait(self, timeout: float) -> bool:
        """Sleep until the file changes (True) or ``timeout`` seconds pass (False); events are drained."""
        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            try:
                ready, _, _ = select.select([self.fd], [], [], max(0.0, deadline - time.monotonic()))
            except (OSError, ValueError):
                return True  # the watch is unusable: say "look", and the caller's poll carries on
            if not ready:
                return False
            if self._read_events():
                return True

    def drain(self) -> None:
        """Forget the events queued so far (without waiting): a watch taken from a pool starts fresh."""
        self._read_events()

    def _read_events(self) -> bool:
        """Read every queued event; True if one of them is for a watched name (or on any error: look)."""
        relevant = False
        try:
            while chunk := os.read(self.fd, 4096):
                relevant = relevant or self._names is None or _names_in(chunk, self._names)
        except BlockingIOError:
            pass
        except OSError:
            return True
        return relevant

    def close(self) -> None:
        """Stop watching."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _names_in(chunk: bytes, names: dict[bytes, int]) -> bool:
    """True if an event in ``chunk`` (struct inotify_event, one after another) is one ``names`` wakes on."""
    offset = 0
    while offset + _EVENT_HEADER.size <= len(chunk):
        _, mask, _, length = _EVENT_HEADER.unpack_from(chunk, offset)
        name = chunk[offset + _EVENT_HEADER.size:offset + _EVENT_HEADER.size + length].rstrip(b"\0")
        offset += _EVENT_HEADER.size + length
        if not name:  # an event on the directory itself (moved or removed), or the queue overflowed: look
            if mask & (_IN_MOVE_SELF | _IN_DELETE_SELF | _IN_Q_OVERFLOW | _IN_IGNORED):
                return True
        elif mask & names.get(name, 0):
            return True
    return False


class WatchPool:
    """Watches of one file, kept open between waits and lent to one waiter at a time.

    By default ``FileWatch.commits``; a store's waiters use ``FileWatch.decisions``.

    Closing an inotify descriptor waits for the kernel's SRCU grace period
    (about a millisecond, more on a busy machine) and opening one takes a
    library call and three system calls: a waiter that opened and closed a
    watch of its own on every wait paid that for every proposal
    (docs/benchmarks.md, "Throughput"). Each waiter still has a watch to
    itself while it waits, so events one drains are never lost to another;
    a watch comes back drained, and at most ``keep`` stay open.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        keep: int = 8,
        opener: Callable[[str | os.PathLike[str]], FileWatch | None] = FileWatch.commits,
    ) -> None:
        self._path = path
        self._opener = opener
        self._keep = keep
        self._idle: list[FileWatch] = []
        self._lock = threading.Lock()
        self._closed = False

    @contextmanager
    def watch(self) -> Iterator[FileWatch | None]:
        """A watch of the file for the block (None where there is none: poll instead)."""
        with self._lock:
            watch = self._idle.pop() if self._idle else None
        if watch is None:
            watch = self._opener(self._path)
        else:
            watch.drain()
        try:
            yield watch
        finally:
            if watch is not None:
                with self._lock:
                    kept = not self._closed and len(self._idle) < self._keep
                    if kept:
                        self._idle.append(watch)
                if not kept:
                    watch.close()

    def close(self) -> None:
        """Close the idle watches; a watch lent out is closed when it comes back."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for watch in idle:
            watch.close()
