"""Which key seals the next entry, and starting a new one on purpose: the audit proof never restarts by itself.

Before, a decision made with ``audit.key`` deleted silently created a new
key and sealed with it, and one made with another key in its place sealed
with that: from then on ``audit verify`` failed at entry 1, and restoring the
old key left the new entries unverifiable. Now ``host_key`` creates a key
only on this host's first use (no anchor anywhere, no seal in the log) and
otherwise refuses, with one line saying how to restore it, while the key is
missing, damaged, or not the one the log's anchor names (``key_id``).

When the key is lost for good, ``restart_proof`` (``bot-bottle audit
new-key --yes``) starts a new one and anchors where the old proof ends: the
anchor's entry (its seal, and the hash the chain must still end in) is
recorded as a restart, and seals after it are made with the new key over
that one (``audit.walk``). Entries up to it stay checked by their chain;
their seals are not, without the old key.
"""

from __future__ import annotations

import os
import sqlite3

from bot_bottle.audit.anchor import Anchor, Restart, any_anchor, read_anchor, restart_anchor
from bot_bottle.audit.chain import GENESIS_HASH
from bot_bottle.audit.seal import (
    GENESIS_SEAL,
    create_key,
    key_id,
    key_missing,
    key_path,
    key_replaced,
    load_key,
    seal_of,
)
from bot_bottle.audit.walk import walk
from bot_bottle.db import Database
from bot_bottle.errors import AuditKeyError, AuditTampered
from bot_bottle.timestamps import utc_now


def host_key(conn: sqlite3.Connection, anchor: Anchor | None) -> bytes:
    """The key to seal the next entry of the log on ``conn`` (whose anchor is ``anchor``); ``AuditKeyError`` else.

    Created only on this host's first use: when no log on this host was
    ever anchored and this one has no seal. A key that is not the one the
    anchor names is never used.
    """
    key = load_key()
    if key is None:
        sealed = conn.execute("SELECT 1 FROM audit_seal LIMIT 1").fetchone() is not None
        if anchor is not None or sealed or any_anchor():
            raise AuditKeyError(key_missing(key_path()))
        key = create_key()
    if anchor is not None and anchor.key is not None and anchor.key != key_id(key):
        raise AuditKeyError(key_replaced(key_path(), anchor.key, key_id(key)))
    if anchor is not None and anchor.key is None and not _proves(conn, key, anchor):
        # An anchor from before keys were named: its entry's seal says whether this key made it (once; the
        # anchor names the key from the next decision on).
        raise AuditKeyError(key_replaced(key_path(), "unnamed", key_id(key))
                            + f" (or audit entry {anchor.seq} was rewritten: 'bot-bottle audit verify' says which)")
    return key


def _proves(conn: sqlite3.Connection, key: bytes, anchor: Anchor | None) -> bool:
    """True if ``key`` is the key that sealed the log's anchored (or newest) entry."""
    if anchor is not None and anchor.key is not None:
        return anchor.key == key_id(key)
    row = conn.execute("SELECT l.seq, l.hash, s.mac FROM audit_log l JOIN audit_seal s USING (seq) "
                       "ORDER BY seq DESC LIMIT 1").fetchone() if anchor is None else \
        conn.execute("SELECT l.seq, l.hash, s.mac FROM audit_log l JOIN audit_seal s USING (seq) WHERE seq = :seq",
                     {"seq": anchor.seq}).fetchone()
    if row is None:
        return True  # nothing sealed: any key proves it
    seq, digest, mac = int(row[0]), str(row[1]), str(row[2])
    before = conn.execute("SELECT mac FROM audit_seal WHERE seq = :seq", {"seq": seq - 1}).fetchone()
    previous = GENESIS_SEAL if seq == 1 else (str(before[0]) if before is not None else "")
    return seal_of(key, seq, previous, digest) == mac


def restart_proof(db: Database) -> tuple[Anchor, bool]:
    """Start sealing ``db``'s log with a new key after the old proof's last entry; the anchor, and whether a
    new key file was made (else the key already in its place, another log's new key, is taken on).

    The old proof ends at the anchor's entry (or, with no anchor, the newest
    sealed one): its chain must be whole up to there, and reach it. Entries
    past it (written without the host, or by it just before a crash) no
    longer verify and are for ``audit set-aside``. ``AuditKeyError`` when
    the key in place proves the log (there is nothing to restart), and
    ``AuditTampered`` when the log does not reach its anchor whole: restore
    a backup first.
    """
    try:
        key = load_key()
    except AuditKeyError:  # damaged: keep it for whoever wants to look, out of the key's place
        path = key_path()
        os.replace(path, path.with_name(f"{path.name}.damaged-{utc_now().replace(':', '')}"))
        key = None
    anchor = read_anchor(db.path)
    with db.read() as conn:
        if key is not None and _proves(conn, key, anchor):
            raise AuditKeyError(f"the audit key {key_path()} is the one that sealed this log: there is nothing to "
                                "restart (to retire a key you no longer trust, move the file aside first)")
        if anchor is not None:
            seq, seal = anchor.seq, anchor.seal
        else:
            row = conn.execute("SELECT seq, mac FROM audit_seal ORDER BY seq DESC LIMIT 1").fetchone()
            seq, seal = (0, GENESIS_SEAL) if row is None else (int(row[0]), str(row[1]))
        problem = walk(conn, None, None).problem
        if problem is not None and (problem[0] is None or problem[0] <= seq):
            raise AuditTampered(f"{problem[1]}: the log must be whole up to entry {seq}, where the old key's proof "
                                "ends, before a new key takes over; restore the database from a backup")
        row = conn.execute("SELECT l.hash, s.mac FROM audit_log l LEFT JOIN audit_seal s USING (seq) "
                           "WHERE seq = :seq", {"seq": seq}).fetchone()
    if seq and (row is None or row[1] != seal):
        raise AuditTampered(f"the log no longer holds entry {seq} with the seal the host's anchor recorded: it was "
                            "cut or rewritten; restore the database from a backup before a new key takes over")
    created = key is None
    key = create_key() if key is None else key
    restart = Restart(seq, seal, str(row[0]) if seq else GENESIS_HASH, key_id(key),
                      anchor.key if anchor is not None else None, utc_now())
    return restart_anchor(db.path, restart), created
