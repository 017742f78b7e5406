"""The audit log examined: the whole chain and its seals walked, decisions held to their entries.

What runs on a log the host must prove: ``verify`` recomputes every hash
and (with the host's key) every seal, checks the log still reaches its
anchor, and checks every response against the entry that recorded it;
``set_aside`` moves entries past what the host can prove out of the log;
``decision_problem`` proves one decision cheaply, ``rule_problem`` one
standing rule and ``grant_problem`` one grant; ``anchor_problem`` says
whether the log still reaches its anchor, without walking it. The chain itself is
walked by ``audit.walk``. The write path (append, seal, anchor) is
``bot_bottle.audit_store``.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot_bottle.audit.anchor import Anchor, read_anchor, sealed_from_start
from bot_bottle.audit.bindings import binding_problem, standing_problem
from bot_bottle.audit.chain import SELECT, compute_hash, stored_details
from bot_bottle.audit.seal import (
    GENESIS_SEAL,
    key_id,
    key_missing,
    key_path,
    key_replaced,
    load_key,
    seal_of,
)
from bot_bottle.audit.walk import last_seq, walk
from bot_bottle.connection import database_path, read_snapshot
from bot_bottle.db import Database
from bot_bottle.errors import AuditKeyError, AuditTampered
from bot_bottle.grant_records import Grant, Rule
from bot_bottle.records import (
    ACTION_GRANT_REVOKED,
    ACTION_RULE_ADDED,
    ACTION_RULE_REVOKED,
    RESPONSE_STATUSES,
    STATUS_APPROVED,
    STATUS_MODIFIED,
    Response,
)


@dataclass(frozen=True)
class VerifyResult:
    """The outcome of ``AuditStore.verify``: whole, or the first entry found wrong.

    ``unsealed`` counts entries at the end of the log that have no seal yet
    (written before sealing began, or whose seals a downgrade dropped); they
    are proven by the anchor where one covers them, and sealed by the next
    decision. ``anchored`` is the anchor's sequence number (None: no anchor).
    """

    ok: bool
    count: int
    bad_seq: int | None = None
    problem: str = ""
    unsealed: int = 0
    anchored: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"ok": self.ok, "count": self.count, "bad_seq": self.bad_seq, "problem": self.problem,
                "unsealed": self.unsealed, "anchored": self.anchored}


def verify(
    db: Database, batch: int = 10_000, progress: Callable[[int, int], None] | None = None) -> VerifyResult:
    """Check the whole log; report the first thing found wrong.

    Recomputes every hash and (with the host's key) every seal, checks the
    log still reaches the anchor with the anchor's seal, and checks every
    response against its decision entry and every decision entry against
    its response. Reads only, in one snapshot of the store's own connection
    (a walk split across two processes was tried and removed: see "`audit
    verify` in two processes, and why it is gone" in docs/benchmarks.md).
    ``progress(done, total)`` is called after each batch of entries.
    """
    key = load_key()
    anchor = read_anchor(db.path)
    with db.read() as conn, read_snapshot(conn):
        count = last_seq(conn)
        seals = int(conn.execute("SELECT count(*) FROM audit_seal").fetchone()[0])
        if key is None and (seals or anchor is not None):
            return VerifyResult(False, count, None, key_missing(key_path()), anchored=anchored_seq(anchor))
        if key is not None and anchor is not None and anchor.key is not None and anchor.key != key_id(key):
            return VerifyResult(False, count, None, key_replaced(key_path(), anchor.key, key_id(key)),
                                anchored=anchored_seq(anchor))
        walked = walk(conn, key, anchor, batch, (lambda done: progress(done, count)) if progress else None)
        if walked.problem is not None:
            return VerifyResult(False, count, walked.problem[0], walked.problem[1], anchored=anchored_seq(anchor))
        if anchor is not None and count < anchor.seq:
            return VerifyResult(False, count, count + 1, truncated(anchor, count), anchored=anchor.seq)
        # What the walk saw carry a seal, not what the table counts: a seal row for no entry proves nothing.
        sealed = count if walked.unsealed_from is None else walked.unsealed_from - 1
        if seals > count:
            return VerifyResult(False, count, count + 1, f"the log has seals for {seals} entries but only "
                                f"{count} entries: entries were removed", anchored=anchored_seq(anchor))
        if seals > sealed:
            return VerifyResult(False, count, sealed + 1, f"the log has {seals} seals, but only entries 1-{sealed} "
                                "carry one: a seal was written for no entry, without the host",
                                anchored=anchored_seq(anchor))
        unsealed = count - sealed
        if unsealed and count > max(anchored_seq(anchor) or 0, sealed) and sealing_began(anchor, seals, db.path):
            first = max(anchored_seq(anchor) or 0, sealed) + 1
            return VerifyResult(False, count, first, f"entries {first}-{count} have no seal: they were "
                                "written without the host's key", anchored=anchored_seq(anchor))
        binding = binding_problem(conn) or standing_problem(conn)
        if binding is not None:
            return VerifyResult(False, count, binding[0], binding[1], anchored=anchored_seq(anchor))
    return VerifyResult(True, count, unsealed=unsealed, anchored=anchored_seq(anchor))


@dataclass(frozen=True)
class SetAside:
    """What ``set_aside`` did: how many entries it moved out, the last one kept, the rows they had recorded."""

    count: int
    kept: int
    # "rule ID", "grant ID", "setting NAME": rows that only the entries set aside recorded, removed with them.
    rows: tuple[str, ...] = ()


# The tables whose rows an audit entry records (``audit_seq``) and may revoke (``revoke_seq``); grants
# before rules, since a grant names the rule that made it. Fixed names: never from the file.
_RECORDED = (("grants", "grant", "id"), ("rules", "rule", "id"), ("settings", "setting", "name"))
_REVOCABLE = (("grants", "grant"), ("rules", "rule"))


def set_aside(db: Database, export: Callable[[sqlite3.Connection, int], int]) -> SetAside:
    """Move the entries past what the host can prove out of the log, with the rows only they recorded.

    What the host proves: entries whose sha256 chain and seals verify with
    its key, up to the newest valid seal or the anchor, whichever is
    further. Entries past that (a sidecar's appended entries, with no
    seal or a made-up one) make every append refuse; this is the way out.
    ``export(conn, after)`` writes them (with hashes and seals) somewhere
    new and returns how many, inside the transaction that then deletes
    them, so none is lost. The grants, rules and settings those entries
    recorded are no more proven than they are, and go too (their entries,
    exported, say what they were): removing one takes away a grant, a
    rule or a setting, never adds one. Entries up to the anchor that were
    changed are never removed here (``AuditTampered``), nor entries whose
    removal would undo a revocation or leave a kept grant naming a removed
    rule: restore a backup instead.
    """
    key = load_key()
    if key is None:
        raise AuditKeyError(key_missing(key_path()))
    anchor = read_anchor(db.path)
    if anchor is not None and anchor.key is not None and anchor.key != key_id(key):
        raise AuditKeyError(key_replaced(key_path(), anchor.key, key_id(key)))
    with db.write() as conn:
        last = last_seq(conn)
        sealed = int(conn.execute("SELECT coalesce(max(seq), 0) FROM audit_seal").fetchone()[0])
        problem = walk(conn, key, anchor).problem
        kept = last if problem is None or problem[0] is None else problem[0] - 1
        if sealing_began(anchor, sealed, db.path):
            kept = min(kept, max(anchored_seq(anchor) or 0, sealed))
        if anchor is not None and kept < anchor.seq:
            raise AuditTampered(f"entry {kept + 1} is at or before the host's anchor (entry {anchor.seq}) and "
                                "was changed: set-aside removes only entries written past the host's proof; "
                                "restore the database from a backup ('bot-bottle audit verify' names it)")
        if kept >= last:
            return SetAside(0, kept)
        _refuse_undoing(conn, kept)  # before anything is written
        count = export(conn, kept)
        if count != last - kept:
            raise AuditTampered(f"wrote {count} entries but {last - kept} were to be set aside; nothing removed")
        rows = [(table, noun, str(name)) for table, noun, column in _RECORDED
                for (name,) in conn.execute(f"SELECT {column} FROM {table} WHERE audit_seq > :kept ORDER BY 1",
                                            {"kept": kept})]
        # The triggers refuse DELETE (that is their point); they are put back, as they are, in this same
        # transaction. Names are quoted as identifiers: a sidecar may have named one of its own.
        tables = ("audit_log", "audit_seal", *sorted({table for table, _, _ in rows}))
        triggers = conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name IN "
                                f"({', '.join('?' * len(tables))})", tables).fetchall()
        for name, _sql in triggers:
            conn.execute("DROP TRIGGER \"{}\"".format(str(name).replace('"', '""')))
        try:
            for table, _, _ in _RECORDED:
                conn.execute(f"DELETE FROM {table} WHERE audit_seq > :kept", {"kept": kept})
            conn.execute("DELETE FROM audit_seal WHERE seq > :kept", {"kept": kept})
            conn.execute("DELETE FROM audit_log WHERE seq > :kept", {"kept": kept})
        except sqlite3.IntegrityError as exc:  # rows of a table no bot-bottle makes, pointing at the entries
            raise AuditTampered(f"rows outside the audit log still point at the entries past entry {kept} ({exc}): "
                                "nothing was removed; 'bot-bottle db check' names them") from None
        for _name, sql in triggers:
            conn.execute(sql)
    return SetAside(count, kept, tuple(f"{noun} {name}" for _, noun, name in rows))


def _refuse_undoing(conn: sqlite3.Connection, kept: int) -> None:
    """``AuditTampered`` where removing the entries past ``kept`` would undo a revocation or orphan a grant.

    A revocation recorded past the host's proof may be the operator's (on a
    log whose chain broke earlier) or a sidecar's; either way removing its
    entry would bring back a grant or rule the log says was revoked, which
    set-aside never does. A kept grant made by a rule that only such an
    entry recorded has no rule to name once the rule is gone.
    """
    for table, noun in _REVOCABLE:
        row = conn.execute(f"SELECT id, revoke_seq FROM {table} WHERE revoke_seq > :kept AND audit_seq <= :kept "
                           "ORDER BY revoke_seq LIMIT 1", {"kept": kept}).fetchone()
        if row is not None:
            raise AuditTampered(
                f"the revocation of {noun} {row[0]} is recorded by entry {row[1]}, past what this host can prove "
                f"(entry {kept}): setting that entry aside would bring the {noun} back, so nothing was removed. "
                f"Restore the database from a backup made before entry {row[1]} was written")
    row = conn.execute("SELECT g.id, r.id FROM grants g JOIN rules r ON r.id = g.rule_id "
                       "WHERE g.audit_seq <= :kept AND r.audit_seq > :kept LIMIT 1", {"kept": kept}).fetchone()
    if row is not None:
        raise AuditTampered(f"grant {row[0]} is proven but names rule {row[1]}, which only an entry past what this "
                            f"host can prove (entry {kept}) recorded: nothing was removed. Restore the database "
                            "from a backup made before that rule was written")


def decision_problem(db: Database, response: Response) -> str | None:
    """Why ``response`` is not proven by this host's audit log, or None when it is (cheap: one entry).

    Proven: its decision entry exists, matches it, matches its own hash,
    and carries a seal that this host's key makes over that hash and the
    seal before it. A sidecar can write a response (and an entry) into
    the file, but not such a seal. ``audit verify`` checks the rest.
    """
    key = load_key()
    anchor = read_anchor(db.path)
    with db.read() as conn:
        row = conn.execute(
            f"{SELECT} WHERE proposal_id = :id AND action IN ("
            + ", ".join(f"'{s}'" for s in RESPONSE_STATUSES) + ") ORDER BY seq LIMIT 1",
            {"id": response.proposal_id},
        ).fetchone()
        short = anchor_problem(conn, anchor)
        if short is not None:
            return short
        if row is None:
            return "the audit log has no entry for it: it was not recorded by bot-bottle"
        seq, action, proposal_id, actor, notes, details = row[0], row[3], row[5], row[6], row[7], row[9]
        if proposal_id != response.proposal_id:  # what was selected is what is checked: never another's entry
            return f"audit entry {seq} is another proposal's"
        recorded = stored_details(details)
        if recorded is None:
            return f"audit entry {seq} is unreadable (its details are not what bot-bottle writes)"
        final = hashlib.sha256(response.final_file.encode("utf-8")).hexdigest() if response.final_file else None
        logged = (action, actor, notes, recorded.get("final_file_sha256"),
                  recorded.get("decided_at", response.decided_at))
        if logged != (response.status, response.decided_by, response.notes, final, response.decided_at):
            return f"it differs from audit entry {seq}, which recorded the decision"
        return seal_problem(conn, row, key, anchor)


def rule_problem(conn: sqlite3.Connection, rule: Rule, recorded: dict[str, Any], key: bytes | None,
                 anchor: Anchor | None) -> str | None:
    """Why ``rule`` is not proven by this host's audit log, or None when it is (cheap: one entry and one look).

    Proven: its ``rule-added`` entry exists and records it (``recorded``: ``grant_records.rule_record`` of the row,
    with who made it and why), matches its own hash and carries this host's seal; and no ``rule-revoked``
    entry names a rule the row says is in force. A sidecar can write a rule into the file, but not such a
    seal: a rule it wrote, widened or brought back decides nothing (``audit verify`` names it).
    """
    row = conn.execute(f"{SELECT} WHERE seq = :seq", {"seq": rule.audit_seq}).fetchone()
    if row is None:
        return f"the audit log has no entry {rule.audit_seq}, which it names"
    seq, _, _, action, _, _, actor, notes, _, details, _, _, _ = row
    # A rule's entry holds its subject (at most 64 KiB): a larger one is no rule's, and is neither parsed nor hashed
    # (a thousand forged rows naming one 5 MB entry held every look for 8 s).
    logged = stored_details(details) if isinstance(details, str) and len(details) <= 4 * 65536 else None
    if (seq, action, actor, notes) != (rule.audit_seq, ACTION_RULE_ADDED, rule.created_by, rule.notes) \
            or logged is None or logged.get("rule") != recorded or logged.get("confirmed") != rule.confirmed_kinds:
        return f"it differs from audit entry {rule.audit_seq}, which recorded it"
    if rule.revoked_at is None and rule.id in revocations(conn).ids(conn, ACTION_RULE_REVOKED):
        return REVOCATION_ERASED
    return seal_problem(conn, row, key, anchor)


def grant_problem(conn: sqlite3.Connection, grant: Grant, recorded: dict[str, Any], key: bytes | None,
                  anchor: Anchor | None) -> str | None:
    """Why ``grant`` is not proven by this host's audit log, or None when it is (as ``rule_problem``).

    Proven: the approval entry that made it records it (``recorded``:
    ``grant_records.grant_record`` of the row) for its proposal and decider,
    matches its hash and carries this host's seal; and no
    ``grant-revoked`` entry names a grant the row says is in force.
    """
    row = conn.execute(f"{SELECT} WHERE seq = :seq", {"seq": grant.audit_seq}).fetchone()
    if row is None:
        return f"the audit log has no entry {grant.audit_seq}, which it names"
    seq, queue_key, action, proposal_id, actor, details = row[0], row[2], row[3], row[5], row[6], row[9]
    logged = stored_details(details)
    if (seq, queue_key, proposal_id, actor) != (grant.audit_seq, grant.queue_key, grant.proposal_id, grant.decided_by) \
            or action not in (STATUS_APPROVED, STATUS_MODIFIED) or logged is None or logged.get("grant") != recorded:
        return f"it differs from audit entry {grant.audit_seq}, which recorded the approval that made it"
    if grant.revoked_at is None and grant.id in revocations(conn).ids(conn, ACTION_GRANT_REVOKED):
        return REVOCATION_ERASED
    return seal_problem(conn, row, key, anchor)


REVOCATION_ERASED = "the audit log records its revocation, which the file no longer says"
_REVOKED_KEYS = {ACTION_RULE_REVOKED: "rule", ACTION_GRANT_REVOKED: "grant"}  # where each entry names its row


class Revocations:
    """The ids of the rules and grants a database's audit log records as revoked: read whole once, then only
    from the entries added since (a look for standing rules, or a relay answer, must not scan the log each time).

    A log read whole again (its last read entry changed, or it is shorter) adds to what was read: a revocation
    once seen is never forgotten (tests/attacks/test_forgotten_revocation.py). One rewritten or removed before
    it was read is not seen (nor by any cheap proof: ``audit verify`` walks the chain); an entry a sidecar added
    names ids that then decide nothing, which fails closed.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._upto = 0
        self._upto_hash: str | None = None  # the hash of entry ``_upto`` when it was read
        self._ids: dict[str, set[str]] = {action: set() for action in _REVOKED_KEYS}
        self._rejecting: dict[str, set[int]] = {}  # rule id -> the rule-added entries naming it (a sidecar's too)

    def ids(self, conn: sqlite3.Connection, action: str) -> frozenset[str]:
        """The ids the log's ``action`` entries name (``rule-revoked`` or ``grant-revoked``)."""
        with self._lock:
            self._read(conn)
            return frozenset(self._ids[action])

    def rejecting(self, conn: sqlite3.Connection) -> dict[str, list[int]]:
        """The rejecting rules the log records as added: {rule id: the seqs of the entries that say so} (unproven)."""
        with self._lock:
            self._read(conn)
            return {rule_id: sorted(seqs) for rule_id, seqs in self._rejecting.items()}

    def _read(self, conn: sqlite3.Connection) -> None:
        last = last_seq(conn)
        if last < self._upto or self._hash_at(conn, self._upto) != self._upto_hash:
            self._upto = 0  # shorter, or its entry there is another: read it whole again, on top of what was read
        marks = {"upto": self._upto, "last": last, "rule": ACTION_RULE_REVOKED, "grant": ACTION_GRANT_REVOKED,
                 "added": ACTION_RULE_ADDED}
        for seq, kind, details in conn.execute("SELECT seq, action, details FROM audit_log WHERE seq > :upto AND "
                                               "seq <= :last AND action IN (:rule, :grant, :added)", marks):
            stored = stored_details(details) or {}
            named = stored.get(_REVOKED_KEYS.get(str(kind), ""))
            added = stored.get("rule") if kind == ACTION_RULE_ADDED else None
            if isinstance(added, dict) and added.get("effect") == "reject" and isinstance(added.get("id"), str):
                self._rejecting.setdefault(added["id"], set()).add(int(seq))
            elif isinstance(named, str) and kind != ACTION_RULE_ADDED:
                self._ids[str(kind)].add(named)
        self._upto, self._upto_hash = last, self._hash_at(conn, last)

    @staticmethod
    def _hash_at(conn: sqlite3.Connection, seq: int) -> str | None:
        """Entry ``seq``'s hash recomputed from what it holds (its stored hash is anyone's to copy)."""
        row = conn.execute(f"{SELECT} WHERE seq = :seq", {"seq": seq}).fetchone()
        try:
            return None if row is None else compute_hash(*row[:11])
        except (TypeError, ValueError):  # not what bot-bottle writes: never the same as what was read
            return "unreadable"


_REVOCATIONS: dict[str, Revocations] = {}
_REVOCATIONS_LOCK = threading.Lock()


def revocations(conn: sqlite3.Connection) -> Revocations:
    """This process's ``Revocations`` of the database behind ``conn``."""
    with _REVOCATIONS_LOCK:
        return _REVOCATIONS.setdefault(database_path(conn), Revocations())


def seal_problem(conn: sqlite3.Connection, row: tuple[Any, ...], key: bytes | None,
                  anchor: Anchor | None) -> str | None:
    """Why the audit entry ``row`` (as ``chain.SELECT`` reads it) is not sealed by this host's key, or None."""
    seq, ts, queue_key, action, tool, proposal_id, actor, notes, diff, details, link, digest, mac = row
    if compute_hash(seq, ts, queue_key, action, tool, proposal_id, actor, notes, diff, details, link) != digest:
        return f"audit entry {seq} was changed after it was written"
    if key is None:
        return f"the host's audit key {key_path()} is missing, so audit entry {seq}'s seal cannot be checked"
    if anchor is not None and anchor.key is not None and anchor.key != key_id(key):
        return f"the host's audit key is not the one that sealed this log, so audit entry {seq} cannot be checked"
    if anchor is not None and seq <= anchor.restarted_at:
        return (f"audit entry {seq} was sealed with an earlier audit key, which this host no longer has (a new "
                f"key took over after entry {anchor.restarted_at}): 'bot-bottle audit verify' proves it by the "
                "chain up to there")
    if mac is None:
        return f"audit entry {seq} is not sealed yet ('bot-bottle audit verify' says whether that is expected)"
    before = conn.execute("SELECT mac FROM audit_seal WHERE seq = :seq", {"seq": seq - 1}).fetchone()
    previous = GENESIS_SEAL if seq == 1 else (str(before[0]) if before is not None else None)
    if previous is None or seal_of(key, seq, previous, digest) != mac:
        return f"audit entry {seq}'s seal was not made with this host's key"
    return None

REFUSED = ("; nothing more is recorded until this is looked at ('bot-bottle audit verify'; entries a sidecar "
            "added past the host's seals: 'bot-bottle audit set-aside --export FILE --yes'; if you replaced "
            "the database on purpose, 'bot-bottle audit retire-anchor --yes')")


def sealing_began(anchor: Anchor | None, sealed: int, database: Path | None) -> bool:
    """Whether the host seals every entry of this log from some point on, so that an unsealed entry past what
    it proves (the anchor's, or the last seal) was written without it.

    So it is once there is an anchor or a seal, or once the host saw the
    log begin (``anchor.sealed_from_start``: a file read, so looked up
    last). Only a log from before sealing began has entries the host may
    seal after the fact (``AuditStore`` does, ``verify`` lets them be,
    ``set_aside`` keeps them).
    """
    return anchor is not None or sealed > 0 or (database is not None and sealed_from_start(database))


def anchored_seq(anchor: Anchor | None) -> int | None:
    return anchor.seq if anchor is not None else None


def anchor_problem(conn: sqlite3.Connection, anchor: Anchor | None) -> str | None:
    """Why the log behind ``conn`` does not reach the host's anchor (read before it), or None (cheap: one look).

    An older copy of the database renamed over it (a sidecar on the mount
    can, while no host process has it open) has a log that ends before the
    anchor: its grants include ones revoked since, and its entries prove
    them. The anchor is outside the sidecar's reach, so a log that lacks
    the anchor's entry with the anchor's seal is not the host's log as it
    stands (tests/attacks/test_db_old_copy.py). A copy given the real
    entries up to the anchor's, less a revocation among them, breaks the
    chain: that only the walk sees (``verify``). ``anchor`` must be read
    before the log: a decision moves it only once its entry has committed.
    """
    if anchor is None:
        return None
    # The entry and its seal both: a sidecar can add the anchor's seal alone, read from the file before the swap.
    row = conn.execute("SELECT s.mac FROM audit_log JOIN audit_seal s USING (seq) WHERE seq = :seq",
                       {"seq": anchor.seq}).fetchone()
    if row is not None and row[0] == anchor.seal:
        return None
    last = last_seq(conn)
    if last < anchor.seq:
        return truncated(anchor, last)
    return (f"entries up to {anchor.seq} do not match the host's anchor written at {anchor.written_at}: they were "
            "rewritten, or the database was replaced by another copy")


def truncated(anchor: Anchor, count: int) -> str:
    return (f"the log ends at entry {count}, but the host's anchor written at {anchor.written_at} says entry "
            f"{anchor.seq} existed: entries {count + 1}-{anchor.seq} were removed")
