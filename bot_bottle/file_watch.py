"""Sleep until a file changes: Linux inotify through ctypes, or nothing where there is none.

A waiter for a decision used to wake every poll interval to ask SQLite
whether anyone had committed. With a watch on the database file it sleeps in
``select`` until a commit writes the file, and wakes at once (docs/benchmarks.md,
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
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Self

# <sys/inotify.h>
_IN_MODIFY = 0x00000002
_IN_ATTRIB = 0x00000004
_IN_CLOSE_WRITE = 0x00000008
_IN_MOVE_SELF = 0x00000800
_IN_DELETE_SELF = 0x00000400
_IN_NONBLOCK = os.O_NONBLOCK
_IN_CLOEXEC = os.O_CLOEXEC
_EVENTS = _IN_MODIFY | _IN_ATTRIB | _IN_CLOSE_WRITE | _IN_MOVE_SELF | _IN_DELETE_SELF


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

    def __init__(self, fd: int) -> None:
        self.fd = fd

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> FileWatch | None:
        """A watch on ``path``, or None where the platform or filesystem gives none (poll instead)."""
        libc = _libc()
        if libc is None:
            return None
        fd = int(libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC))
        if fd < 0:
            return None
        if int(libc.inotify_add_watch(fd, os.fsencode(Path(path)), _EVENTS)) < 0:
            os.close(fd)
            return None
        return cls(fd)

    def wait(self, timeout: float) -> bool:
        """Sleep until the file changes (True) or ``timeout`` seconds pass (False); events are drained."""
        try:
            ready, _, _ = select.select([self.fd], [], [], max(0.0, timeout))
        except (OSError, ValueError):
            return True  # the watch is unusable: say "look", and the caller's poll carries on
        if not ready:
            return False
        try:
            while os.read(self.fd, 4096):
                pass
        except BlockingIOError:
            pass
        except OSError:
            return True
        return True

    def drain(self) -> None:
        """Forget the events queued so far (without waiting): a watch taken from a pool starts fresh."""
        try:
            while os.read(self.fd, 4096):
                pass
        except OSError:  # BlockingIOError: nothing (more) queued; anything else: wait() will say "look"
            pass

    def close(self) -> None:
        """Stop watching."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class WatchPool:
    """Watches of one file, kept open between waits and lent to one waiter at a time.

    Closing an inotify descriptor waits for the kernel's SRCU grace period
    (about a millisecond, more on a busy machine) and opening one takes a
    library call and three system calls: a waiter that opened and closed a
    watch of its own on every wait paid that for every proposal
    (docs/benchmarks.md, "Throughput"). Each waiter still has a watch to
    itself while it waits, so events one drains are never lost to another;
    a watch comes back drained, and at most ``keep`` stay open.
    """

    def __init__(self, path: str | os.PathLike[str], keep: int = 8) -> None:
        self._path = path
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
            watch = FileWatch.open(self._path)
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
