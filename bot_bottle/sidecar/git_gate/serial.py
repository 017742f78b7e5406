"""One push gated at a time per repository, from the scan until git has written the refs.

The gate judges a push against the refs as they are plus the push's own
updates: ``%D`` names the refs at a commit, ``%(describe)`` the nearest tag,
``%aN`` the ``.mailmap`` at ``HEAD``. Two pushes gated side by side are each
judged without the other: one deleting branch ``aaa`` and one naming a branch
after the rest of a token at the same commit each leave ``ghp_$Format:%D$``
harmless alone, and together make every tarball write the token (hostile
review 49, with real concurrent pushes). So the hook takes an exclusive lock
on the repository before it reads anything; on acceptance a holder process
keeps it until ``git receive-pack`` (the hook's parent), which writes the
refs after the hook exits, has exited too. While the push waits for the
operator the lock is let go (a push waiting for a person must not stall the
others); it is taken again after an approval, and a push whose repository's
refs moved meanwhile is refused: it was judged against refs that are gone.
"""

from __future__ import annotations

import fcntl
import os
import select
import time
from pathlib import Path

from bot_bottle.errors import GitGateError
from bot_bottle.sidecar.git_gate.limits import Deadline
from bot_bottle.sidecar.git_gate.objects import head_ref, ref_tips

LOCK_NAME = "git-gate.lock"
# How long a holder keeps the lock at most for a receive-pack that does not exit (then the next push proceeds).
MAX_HOLD_SECONDS = 600.0
_POLL = 0.05


class PushLock:
    """The repository's gate lock (``flock`` on ``git-gate.lock`` in its git directory ``repo``)."""

    def __init__(self, repo: Path) -> None:
        self.repo = repo
        self.fd: int | None = None

    def acquire(self, deadline: Deadline) -> None:
        """Wait for the lock while ``deadline`` lasts; ``GitGateError`` when it runs out."""
        if self.fd is not None:
            return
        fd = os.open(self.repo / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                self.fd = fd
                return
            except BlockingIOError:
                if deadline.expired():
                    os.close(fd)
                    raise GitGateError("another push to this repository is being gated and did not finish in "
                                       f"{deadline.seconds:g} s: push again later") from None
                time.sleep(_POLL)

    def release(self) -> None:
        """Let the lock go (no push of ours will write refs)."""
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def refs(self, deadline: Deadline) -> tuple[str, dict[str, str]]:
        """The ref ``HEAD`` names and every ref's object now, to tell whether they moved while the lock was let
        go."""
        return head_ref(self.repo, deadline), ref_tips(self.repo, deadline)

    def hand_over(self) -> None:
        """Keep the lock, in a process of its own, until this process's parent (receive-pack) exits: it writes
        the refs after the hook has answered. Its stdin, stdout and stderr are closed at once, so receive-pack,
        which reads the hook's output to its end, does not wait for it."""
        if self.fd is None:
            return
        parent = os.getppid()
        if os.fork() == 0:  # pragma: no cover - the holder; its exit is all it reports
            try:
                os.setsid()
                null = os.open(os.devnull, os.O_RDWR)
                for stream in (0, 1, 2):
                    os.dup2(null, stream)
                os.closerange(3, self.fd)
                os.closerange(self.fd + 1, 1 << 16)
                _wait_for_exit(parent, MAX_HOLD_SECONDS)
            finally:
                os._exit(0)
        os.close(self.fd)  # the holder's copy keeps the lock: flock belongs to the open file, shared by fork
        self.fd = None


def _wait_for_exit(pid: int, seconds: float) -> None:
    """Return once process ``pid`` has exited, or after ``seconds``."""
    end = time.monotonic() + seconds
    try:
        handle = os.pidfd_open(pid)
    except (OSError, AttributeError):
        handle = -1
    if handle >= 0:
        select.select([handle], [], [], seconds)
        return
    while time.monotonic() < end:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        except PermissionError:
            pass
        time.sleep(_POLL)
