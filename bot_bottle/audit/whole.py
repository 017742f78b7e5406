"""Whether the audit log's entries from one on, to the host's anchor, are each there and whole as the host sealed them.

A grant or an approving rule is proven by its own sealed entry; that it was
not revoked since is read from the entries after it (``forensics.Revocations``),
where an absence proves nothing unless those entries are the host's. A sidecar
on the mount rewrote the revocation entry (and cleared the row's mark): a
process that read the log afresh (a restarted relay, the next ``proposals
list``) passed the revoked grant on, or let the revoked rule approve again
(tests/attacks/test_forgotten_revocation.py). So a proof that relies on no
revocation asks ``WholeLog.problem`` first: the entries from its own to the
anchor's, each present, its content hashing to what its seal was made over,
each seal made with this host's key over the one before. Each entry is
checked once a process; a check is a keyed hash an entry.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections.abc import Callable

from bot_bottle.audit.anchor import Anchor
from bot_bottle.audit.chain import HASHED_COLUMNS, hash_of
from bot_bottle.audit.seal import GENESIS_SEAL, Sealer, key_id
from bot_bottle.connection import database_path


class WholeLog:
    """The span of one database's log found whole and sealed in order, kept for the process; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._span: tuple[int, int, str] | None = None  # (first, last, the key's id) found whole

    def problem(self, conn: sqlite3.Connection, first: int, key: bytes | None, anchor: Anchor | None) -> str | None:
        """Why entries ``first`` to the anchor's are not each there, whole and sealed in order, or None.

        None without a key (no proof stands without one) or an anchor (no log has reached the host's seals yet).
        """
        if key is None or anchor is None:
            return None
        with self._lock:
            span = self._span if self._span is not None and self._span[2] == key_id(key) \
                and self._span[0] <= first else None
        low = first if span is None else span[1] + 1
        problem = sealed_in_order(conn, low, anchor.seq, key)
        if problem is not None:
            return problem
        with self._lock:
            self._span = (first if span is None else span[0], max(anchor.seq, low - 1), key_id(key))
        return None


def sealed_in_order(conn: sqlite3.Connection, low: int, high: int, key: bytes,
                    seen: Callable[[int, str, str, str | None], None] | None = None) -> str | None:
    """Why entries ``low`` to ``high`` are not each there, their content hashing to the hash their seal was made
    over, each seal made with ``key`` over the one before (the one stored before ``low``), or None; ``seen(seq,
    bottle, action, tool)`` is told of each entry found so. A keyed hash an entry: what ``WholeLog`` holds a span
    to, and ``audit.routes_approved`` the entries after a routes approval."""
    before = conn.execute("SELECT mac FROM audit_seal WHERE seq = :seq", {"seq": low - 1}).fetchone()
    previous = GENESIS_SEAL if low == 1 else (str(before[0]) if before is not None else None)
    expected, sha256, seal = low, hashlib.sha256, Sealer(key).seal
    # As audit.walk reads a million entries: each entry's text from SQLite's json_array, and only a match
    # taken from it (a mismatch is recomputed from the row, the definition, before it is judged).
    for material, seq, digest, mac, bottle, action, tool in conn.execute(
            f"SELECT json_array({HASHED_COLUMNS}), seq, hash, s.mac, queue_key, action, tool FROM audit_log "
            "LEFT JOIN audit_seal s USING (seq) WHERE seq BETWEEN :low AND :high ORDER BY seq",
            {"low": low, "high": high}):
        if seq != expected:
            return f"audit entry {expected} is missing"
        try:
            if not isinstance(material, str) or (sha256(material.encode("utf-8")).hexdigest() != digest
                                                 and hash_of(conn, seq) != digest):
                return f"audit entry {expected} was changed after the host sealed it"
        except (TypeError, ValueError):
            return f"audit entry {expected} is not what bot-bottle writes"
        if previous is None or mac is None or seal(expected, previous, digest) != mac:
            return f"audit entry {expected} was changed after the host sealed it"
        if seen is not None:
            seen(seq, bottle, action, tool)
        previous, expected = str(mac), expected + 1
    return f"audit entry {expected} is missing" if expected <= high else None


def chained_to_restart(conn: sqlite3.Connection, seqs: set[int], anchor: Anchor | None) -> set[int]:
    """Of the entries ``seqs``, numbered up to where a new audit key took over (``audit new-key``), those whose
    chain, as the log reads now, runs whole from them to the hash the anchor recorded for that last entry.

    Their seals are the earlier key's, which this host no longer has: the chain up to the restart is what holds
    them ('audit verify' walks it so). Without it a sidecar on the mount rewrote such an entry (its hash made
    again) into an approval of a grant of its choosing, wrote the row to match, and every list showed the
    forgery unmarked (hostile review 60). A changed entry breaks its own hash or the next one's link, and the
    chain cannot end in the recorded hash again without the changed entry's own. One walk from the lowest.
    """
    if anchor is None or not anchor.restarts:
        return set()
    restart = anchor.restarts[-1]
    wanted = {seq for seq in seqs if isinstance(seq, int) and 0 < seq <= restart.seq}
    if not wanted:
        return set()
    intact_from, expected, last = min(wanted), min(wanted), None  # the lowest entry whole up to the one read
    sha256 = hashlib.sha256
    for material, seq, link, digest in conn.execute(
            f"SELECT json_array({HASHED_COLUMNS}), seq, prev_hash, hash FROM audit_log "
            "WHERE seq BETWEEN :low AND :high ORDER BY seq", {"low": expected, "high": restart.seq}):
        try:
            whole = isinstance(material, str) and (sha256(material.encode("utf-8")).hexdigest() == digest
                                                   or hash_of(conn, seq) == digest)
        except (TypeError, ValueError):  # not what bot-bottle writes
            whole = False
        if not whole:
            intact_from = seq + 1
        elif seq != expected or (last is not None and link != last):
            intact_from = seq  # a gap, or a link to a changed entry: nothing before it is held
        expected, last = seq + 1, digest if whole else None
    if expected != restart.seq + 1 or last != restart.hash:
        return set()
    return {seq for seq in wanted if seq >= intact_from}


_WHOLE: dict[str, WholeLog] = {}
_WHOLE_LOCK = threading.Lock()


def whole_log(conn: sqlite3.Connection) -> WholeLog:
    """This process's ``WholeLog`` of the database behind ``conn``."""
    with _WHOLE_LOCK:
        return _WHOLE.setdefault(database_path(conn), WholeLog())
