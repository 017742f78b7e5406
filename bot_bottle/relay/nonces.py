"""The relay's ledger of spent nonces: a request is served once, and a restart does not reopen replays.

A nonce is spent per bottle, after its request's MAC is checked: only a
request signed with bottle B's credential can spend one of B's nonces, so a
bottle that sniffs another's traffic cannot use up its nonces. One clock
rules both the replay window and the ledger: a request is refused unless its
time is within ``CLOCK_SKEW_SEC`` of the relay's wall clock
(``wire.signing``), and its nonce is kept until that same clock says the
request is stale. A clock stepped back keeps the nonces longer; none is
forgotten while its request could still be accepted.

A spent nonce, or a full ledger, is answered "retry" (``RetryLater``),
never "refused": the sidecar signs every attempt afresh, so an honest
request whose copy was served first (a replay raced it) simply goes again,
and every operation is idempotent.
"""

from __future__ import annotations

import contextlib
import heapq
import os
import re
import threading
import time
from pathlib import Path

from bot_bottle.connection import FILE_MODE
from bot_bottle.errors import RetryLater
from bot_bottle.paths import private_dir
from bot_bottle.wire.signing import CLOCK_SKEW_SEC


class NonceLedger:
    """Nonces of requests that are still within the replay window, per bottle.

    With a ``journal`` (``~/.bot-bottle/relay/nonces``, beside the lock) each
    spent nonce is also appended there with the wall-clock time after which
    its request is stale, and a new ledger reads the journal back: a request
    captured before a relay restart is refused after it too. The journal is
    rewritten with only the live nonces when it is read and when it has
    grown to twice what the ledger holds.
    """

    def __init__(self, limit: int = 1_000_000, journal: Path | None = None, per_bottle: int = 100_000) -> None:
        self.limit = limit
        # One bottle's share: a bottle spending nonces as fast as it can fills its own, not the ledger for all.
        self.per_bottle = per_bottle
        self.journal = journal
        self._seen: set[tuple[str, str]] = set()  # (bottle, nonce)
        self._expiries: list[tuple[int, str, str]] = []  # a heap of (stale after, bottle, nonce)
        self._held: dict[str, int] = {}  # nonces in the ledger per bottle
        self._lock = threading.Lock()
        self._journal_lines = 0
        self._journal_fd: int | None = None
        if journal is not None:
            self._load(journal)

    def __len__(self) -> int:
        return len(self._seen)

    def _load(self, journal: Path) -> None:
        now = time.time()
        with contextlib.suppress(FileNotFoundError), open(journal, encoding="ascii", errors="replace") as handle:
            for text in handle:
                if not _NONCE_LINE.fullmatch(text.strip()):
                    continue
                nonce, expiry, bottle = text.split()
                if int(expiry) >= now and (bottle, nonce) not in self._seen:
                    self._add(bottle, nonce, int(expiry))
        self._rewrite()

    def _rewrite(self) -> None:
        """Replace the journal with the live nonces (whole or not at all), and append to it from now on."""
        assert self.journal is not None
        private_dir(self.journal.parent)
        temporary = self.journal.with_name(f".{self.journal.name}.new")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, FILE_MODE)
        try:
            data = "".join(f"{nonce} {expiry} {bottle}\n" for expiry, bottle, nonce in self._expiries)
            os.write(fd, data.encode("ascii"))
        finally:
            os.close(fd)
        os.replace(temporary, self.journal)
        if self._journal_fd is not None:
            os.close(self._journal_fd)
        self._journal_fd = os.open(self.journal, os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW)
        self._journal_lines = len(self._seen)

    def spend(self, bottle: str, nonce: str, ts: int) -> None:
        """Record ``bottle``'s ``nonce`` of a request stamped ``ts``; ``RetryLater`` if it is spent already."""
        now = time.time()
        expiry = ts + CLOCK_SKEW_SEC + 1  # after this the request's own time refuses it
        with self._lock:
            # Soonest stale first: each nonce is dropped once, never the whole ledger rebuilt.
            while self._expiries and self._expiries[0][0] < now:
                _, owner, spent = heapq.heappop(self._expiries)
                self._seen.discard((owner, spent))
                self._held[owner] -= 1
                if not self._held[owner]:
                    del self._held[owner]
            if (bottle, nonce) in self._seen:
                raise RetryLater("this request's nonce was spent already (a copy of it was served, or it was sent "
                                 "twice): sign it again with a fresh nonce and retry")
            if len(self._seen) >= self.limit or self._held.get(bottle, 0) >= self.per_bottle:
                raise RetryLater(f"bottle {bottle} has sent more requests in the last minutes than the relay keeps "
                                 "nonces for; retry")
            self._add(bottle, nonce, expiry)
            if self._journal_fd is not None:
                # Written before the request is served; a process crash keeps it (the kernel holds the page).
                os.write(self._journal_fd, f"{nonce} {expiry} {bottle}\n".encode("ascii"))
                self._journal_lines += 1
                if self._journal_lines > 2 * len(self._seen) + 1024:
                    self._rewrite()

    def _add(self, bottle: str, nonce: str, expiry: int) -> None:
        self._seen.add((bottle, nonce))
        heapq.heappush(self._expiries, (expiry, bottle, nonce))
        self._held[bottle] = self._held.get(bottle, 0) + 1

    def close(self) -> None:
        """Close the journal (the ledger records nothing more in it)."""
        with self._lock:
            if self._journal_fd is not None:
                os.close(self._journal_fd)
                self._journal_fd = None


_NONCE_LINE = re.compile(r"[0-9a-f]{32} [0-9]{1,13} [A-Za-z0-9._-]{1,128}")
