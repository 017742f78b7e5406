"""The relay's ledger of spent nonces: a request is served once, and a restart does not reopen replays."""

from __future__ import annotations

import contextlib
import os
import re
import threading
import time
from pathlib import Path

from bot_bottle.connection import DIR_MODE, FILE_MODE
from bot_bottle.errors import Unauthorized
from bot_bottle.wire.signing import CLOCK_SKEW_SEC


class NonceLedger:
    """Nonces served within the clock-skew window, so a captured request cannot be played again.

    With a ``journal`` (``~/.bot-bottle/relay/nonces``, beside the lock) each
    spent nonce is also appended there with the wall-clock time after which
    its request is stale anyway, and a new ledger reads the journal back: a
    request captured before a relay restart is refused after it too. The
    journal is rewritten with only the live nonces when it is read and when
    it has grown to twice what the ledger holds.
    """

    def __init__(self, window: float = 2 * CLOCK_SKEW_SEC, limit: int = 1_000_000,
                 journal: Path | None = None, per_bottle: int = 100_000) -> None:
        self.window = window
        self.limit = limit
        # One bottle's share: a bottle spending nonces as fast as it can fills its own, not the ledger for all.
        self.per_bottle = per_bottle
        self.journal = journal
        # nonce -> (when it was spent, monotonic; the wall-clock time after which its request is stale; bottle)
        self._seen: dict[str, tuple[float, int, str]] = {}
        self._held: dict[str, int] = {}  # nonces in the ledger per bottle
        self._lock = threading.Lock()
        self._journal_lines = 0
        self._journal_fd: int | None = None
        if journal is not None:
            self._load(journal)

    def _load(self, journal: Path) -> None:
        now_wall, now = time.time(), time.monotonic()
        with contextlib.suppress(FileNotFoundError), open(journal, encoding="ascii", errors="replace") as handle:
            for text in handle:
                if not _NONCE_LINE.fullmatch(text.strip()):
                    continue
                nonce, expiry, bottle = text.split()
                if int(expiry) >= now_wall and nonce not in self._seen:
                    self._seen[nonce] = (now, int(expiry), bottle)
                    self._held[bottle] = self._held.get(bottle, 0) + 1
        self._rewrite()

    def _rewrite(self) -> None:
        """Replace the journal with the live nonces (whole or not at all), and append to it from now on."""
        assert self.journal is not None
        self.journal.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        temporary = self.journal.with_name(f".{self.journal.name}.new")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, FILE_MODE)
        try:
            data = "".join(f"{nonce} {expiry} {bottle}\n"
                           for nonce, (_, expiry, bottle) in self._seen.items()).encode("ascii")
            os.write(fd, data)
        finally:
            os.close(fd)
        os.replace(temporary, self.journal)
        if self._journal_fd is not None:
            os.close(self._journal_fd)
        self._journal_fd = os.open(self.journal, os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW)
        self._journal_lines = len(self._seen)

    def spend(self, nonce: str, ts: int | None = None, bottle: str = "-") -> None:
        """Record ``bottle``'s ``nonce`` of a request stamped ``ts``; ``Unauthorized`` if it was served already."""
        now = time.monotonic()
        expiry = (int(time.time()) if ts is None else ts) + CLOCK_SKEW_SEC + 1
        with self._lock:
            # Oldest first (a dict keeps insertion order): each nonce is dropped once, never the whole ledger rebuilt.
            while self._seen:
                oldest = next(iter(self._seen))
                if self._seen[oldest][0] >= now - self.window:
                    break
                owner = self._seen.pop(oldest)[2]
                self._held[owner] -= 1
                if not self._held[owner]:
                    del self._held[owner]
            if nonce in self._seen:
                raise Unauthorized("this request was served already (its nonce is spent): a replay is refused")
            if len(self._seen) >= self.limit or self._held.get(bottle, 0) >= self.per_bottle:
                raise Unauthorized("the relay has seen too many requests in the last minutes; retry")
            self._seen[nonce] = (now, expiry, bottle)
            self._held[bottle] = self._held.get(bottle, 0) + 1
            if self._journal_fd is not None:
                # Written before the request is served; a process crash keeps it (the kernel holds the page).
                os.write(self._journal_fd, f"{nonce} {expiry} {bottle}\n".encode("ascii"))
                self._journal_lines += 1
                if self._journal_lines > 2 * len(self._seen) + 1024:
                    self._rewrite()

    def close(self) -> None:
        """Close the journal (the ledger records nothing more in it)."""
        with self._lock:
            if self._journal_fd is not None:
                os.close(self._journal_fd)
                self._journal_fd = None


_NONCE_LINE = re.compile(r"[0-9a-f]{32} [0-9]{1,13} [A-Za-z0-9._-]{1,128}")
