"""The audit log's chain walked: every hash recomputed, every seal with the host's key, in order.

``walk`` is what every proof of the log stands on: ``audit verify``
(``forensics.verify``), ``audit set-aside``, a new key's restart
(``keys.restart_proof``) and the sealing of entries written before seals
(``audit_store``). Reading a million entries is the common case here, so
it takes each entry's text from SQLite.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass

from bot_bottle.audit.anchor import Anchor
from bot_bottle.audit.chain import GENESIS_HASH, HASHED_COLUMNS, hash_of
from bot_bottle.audit.seal import GENESIS_SEAL, Sealer

Problem = tuple[int | None, str]  # (the entry found wrong, where one is, and what is wrong)


def last_seq(conn: sqlite3.Connection) -> int:
    """The number of the log's last entry (0: none), counting only whole numbers.

    A sidecar can rebuild the table so that a row is numbered with text:
    ``max`` would then return the text. Such a row is the walk's to report
    as a gap; it is never the number the log is counted to.
    """
    last = conn.execute("SELECT max(seq) FROM audit_log").fetchone()[0]
    if last is None or isinstance(last, int):
        return last or 0
    return int(conn.execute("SELECT coalesce(max(seq), 0) FROM audit_log WHERE typeof(seq) = 'integer'")
               .fetchone()[0])


@dataclass(frozen=True)
class Walked:
    """What a walk found: the first problem (None: none), the seals it recomputed past ``keep_after``, and the
    first entry without a seal (None: every entry has one)."""

    problem: Problem | None
    seals: dict[int, str]
    unsealed_from: int | None


def walk(
    conn: sqlite3.Connection, key: bytes | None, anchor: Anchor | None, batch: int = 10_000,
    progress: Callable[[int], None] | None = None, keep_after: int | None = None,
) -> Walked:
    """Recompute the chain and the seals, in order, and stop at the first problem.

    Seals are recomputed only with a key; stored seals must match them, a
    missing seal may only be followed by missing ones, and the anchor's
    entry must carry the anchor's seal. ``progress(seq)`` is called after
    each batch with the last entry walked. Seals recomputed past
    ``keep_after`` are kept in the result (for sealing them). Every row of
    ``audit_log`` is walked, whatever its number: a row numbered 0, or with
    text for a number, is a gap to report, never skipped.

    Verify walks a million entries here, so the text each hash is taken
    over comes from SQLite's ``json_array`` (in C, one column instead of
    eleven to fetch), which writes what ``hash_material`` writes (the
    same escapes, checked for every character in the tests). Only a
    match is taken from it: a hash that does not match that text is
    recomputed from the row with ``hash_material`` before anything is
    reported, so no entry is ever judged by SQLite's encoding alone. And
    a match is a proof: two JSON texts that are equal decode to the same
    row, so a forged row cannot match a hash made over another row's text.
    """
    seals: dict[int, str] = {}
    keep = -1 if keep_after is None else keep_after
    keep_none = keep_after is None
    expected_seq, prev_hash, prev_seal = 1, GENESIS_HASH, GENESIS_SEAL
    unsealed_from: int | None = None
    anchor_seq, anchor_seal, anchor_written = (None, "", "") if anchor is None else (
        anchor.seq, anchor.seal, anchor.written_at)
    # Where a new key took over (audit new-key): seals up to the last such entry were made with a key this
    # host no longer has. They are taken as stored, the chain must end there as the anchor recorded it, and
    # the seals after it are recomputed over the stored one.
    restarts = {restart.seq: restart for restart in anchor.restarts} if anchor is not None else {}
    restarted_at = anchor.restarted_at if anchor is not None else 0
    sha256 = hashlib.sha256
    seal = Sealer(key).seal if key is not None else None
    cursor = conn.execute(
        f"SELECT json_array({HASHED_COLUMNS}), seq, prev_hash, hash, s.mac "
        "FROM audit_log LEFT JOIN audit_seal s USING (seq) ORDER BY seq"
    )

    def found(problem: Problem) -> Walked:
        return Walked(problem, seals, unsealed_from)

    try:
        while rows := cursor.fetchmany(batch):
            for material, seq, link, digest, mac in rows:
                if seq != expected_seq:
                    return found((expected_seq, f"entry {expected_seq} is missing (the log jumps from "
                                  f"{expected_seq - 1} to {seq})"))
                if link != prev_hash:
                    return found((seq, f"entry {seq} does not link to entry {seq - 1}'s hash "
                                  f"(entry {seq - 1} was changed or removed)"))
                if sha256(material.encode("utf-8")).hexdigest() != digest and hash_of(conn, seq) != digest:
                    return found((seq, f"entry {seq} does not match its hash (it was changed after it was "
                                  "written)"))
                if seal is not None and seq <= restarted_at:
                    restart = restarts.get(seq)
                    if restart is not None and (mac != restart.seal or digest != restart.hash):
                        return found((seq, f"entries up to {seq} do not match the log as it was when a new "
                                      f"audit key took over at {restart.at}: they were rewritten"))
                    if seq == anchor_seq and mac != anchor_seal:
                        return found((seq, f"entries up to {seq} do not match the host's anchor written at "
                                      f"{anchor_written}: they were rewritten"))
                    prev_seal = mac if mac is not None else prev_seal
                    if not keep_none and seq > keep and mac is not None:
                        seals[seq] = mac
                elif seal is not None:
                    prev_seal = seal(seq, prev_seal, digest)
                    if not keep_none and seq > keep:
                        seals[seq] = prev_seal
                    if mac is not None and mac != prev_seal:
                        return found((seq, f"entry {seq} does not match its seal: it, or an entry before it, was "
                                      "rewritten without the host's key"))
                    if seq == anchor_seq and prev_seal != anchor_seal:
                        return found((seq, f"entries up to {seq} do not match the host's anchor written at "
                                      f"{anchor_written}: they were rewritten"))
                if mac is None:
                    if unsealed_from is None:
                        unsealed_from = seq
                elif unsealed_from is not None:
                    return found((unsealed_from, f"entry {unsealed_from} lost its seal (entries after it have "
                                  "theirs)"))
                prev_hash = digest
                expected_seq += 1
            if progress is not None:
                progress(expected_seq - 1)
    finally:
        cursor.close()
    return Walked(None, seals, unsealed_from)
