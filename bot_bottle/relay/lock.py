"""One relay per host: an exclusive ``flock`` on ``~/.bot-bottle/relay/relay.lock``, and who holds it.

``RelayLock`` holds the lock for the relay's life and writes there who holds
it (pid, address), so a second relay says which one runs and launch code can
find it (``running_relay``). The lock lives outside the database directory,
which sidecars on a mount can write.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from dataclasses import dataclass
from pathlib import Path

from bot_bottle.errors import RelayAlreadyRunning
from bot_bottle.paths import open_private_file, private_dir
from bot_bottle.relay.credentials import relay_root

LOCK_FILENAME = "relay.lock"


# One relay per host -------------------------------------------------------------


@dataclass(frozen=True)
class RelayInfo:
    """What the running relay wrote into the lock file."""

    pid: int
    host: str
    port: int
    database: str

    @property
    def url(self) -> str:
        """Where it listens, as a URL."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"


def lock_path() -> Path:
    """``~/.bot-bottle/relay/relay.lock``: outside the database directory, which sidecars on a mount can write."""
    return relay_root() / LOCK_FILENAME


def _read_info(fd: int) -> RelayInfo | None:
    try:
        text = os.pread(fd, 4096, 0).decode("utf-8")
        document = json.loads(text)
        return RelayInfo(pid=int(document["pid"]), host=str(document["host"]), port=int(document["port"]),
                         database=str(document["database"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None  # a relay that is starting and has not written yet


class RelayLock:
    """The exclusive ``flock`` that makes a relay the only one on this host, held until ``release``."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    @classmethod
    def acquire(cls, path: Path | None = None) -> RelayLock:
        """Take the lock, or raise ``RelayAlreadyRunning`` naming the relay that holds it."""
        path = path or lock_path()
        private_dir(path.parent)
        # Never through a link: one planted here would have us overwrite, then empty, what it points to.
        fd = open_private_file(path, os.O_RDWR | os.O_CREAT)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            info = _read_info(fd)
            os.close(fd)
            who = f"pid {info.pid}, listening on {info.url}" if info else "it is starting"
            raise RelayAlreadyRunning(f"a relay already runs on this host ({who}; its lock is {path}): stop it "
                                      "first to start another") from None
        except BaseException:
            os.close(fd)
            raise
        return cls(fd)

    def publish(self, info: RelayInfo) -> None:
        """Write who holds the lock, for ``running_relay`` and a second relay's message."""
        data = json.dumps({"pid": info.pid, "host": info.host, "port": info.port, "database": info.database})
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, data.encode("utf-8"), 0)
        os.fsync(self._fd)

    def release(self) -> None:
        """Clear the file and let the lock go (the next relay may start)."""
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, 0)
        os.close(self._fd)  # closing drops the flock


def lock_state(path: Path | None = None) -> tuple[bool, RelayInfo | None]:
    """Whether a relay holds this host's lock, and what it wrote there (``None`` while it is starting)."""
    path = path or lock_path()
    try:
        fd = open_private_file(path, os.O_RDONLY)
    except FileNotFoundError:
        return False, None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True, _read_info(fd)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False, None
    finally:
        os.close(fd)


def running_relay(path: Path | None = None) -> RelayInfo | None:
    """The relay that holds this host's lock (``None`` if none does, or it has not said where it listens yet)."""
    return lock_state(path)[1]
