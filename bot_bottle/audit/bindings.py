"""What the audit log's entries say, held against the rows they recorded.

A response, a grant, a rule and a setting each name the audit entry that
recorded them; these checks hold each row to its entry and each entry to its
row, field by field (``audit verify`` runs them after the chain and the
seals): a row a sidecar wrote or rewrote in the file, without the host's
key, shows here even where the chain itself is whole.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from typing import Any

from bot_bottle.audit.chain import stored_details
from bot_bottle.records import (
    ACTION_GRANT_REVOKED,
    ACTION_RULE_ADDED,
    ACTION_RULE_REVOKED,
    ACTION_SETTING_CHANGED,
    RESPONSE_STATUSES,
    STATUS_APPROVED,
    STATUS_MODIFIED,
)

_DECISION_ENTRY = "a.action IN (" + ", ".join(f"'{s}'" for s in RESPONSE_STATUSES) + ")"


def _named(details: object, *keys: str) -> str:
    """What an entry's details hold under ``keys``, for a message ("?" where they hold nothing readable there)."""
    value: object = stored_details(details)
    for key in keys:
        value = value.get(key) if isinstance(value, dict) else None
    return "?" if value is None else str(value)[:80]


def _loads(text: object) -> object:
    """A JSON column as its value; the text itself where it does not read (so it differs from any entry)."""
    try:
        return json.loads(text) if isinstance(text, str) else text
    except (ValueError, RecursionError):
        return text


def _sha256(text: str | None) -> str | None:
    return hashlib.sha256(text.encode("utf-8")).hexdigest() if text is not None else None


def binding_problem(conn: sqlite3.Connection) -> tuple[int | None, str] | None:
    """The first decided proposal or response that differs from its decision entry, or entry without response.

    The proposal is held to the entry too (its bottle, tool, and the sha256 of
    what was proposed, recomputed from the text): a rewritten proposal would
    show an operator's decision next to something they never saw.
    """
    rows = conn.execute(
        "SELECT r.proposal_id, r.status, r.notes, r.final_file, r.decided_by, r.decided_at, "
        "a.seq, a.action, a.actor, a.notes, a.details, a.queue_key, a.tool, "
        "p.queue_key, p.tool, p.payload, p.justification, p.current_file, p.current_file_hash, p.created_at "
        "FROM responses r JOIN proposals p ON p.id = r.proposal_id "
        f"LEFT JOIN audit_log a ON a.proposal_id = r.proposal_id AND {_DECISION_ENTRY} ORDER BY a.seq"
    )
    for row in rows:
        (proposal_id, status, notes, final_file, decided_by, decided_at, seq, action, actor, entry_notes, details,
         entry_key, entry_tool, queue_key, tool, payload, justification, current_file, current_hash, created_at) = row
        if seq is None:
            return None, (f"proposal {proposal_id} was {status} but the audit log has no entry for that decision "
                          "(an entry was removed)")
        recorded = stored_details(details)
        if recorded is None:
            return seq, f"entry {seq}'s details are unreadable (not what bot-bottle writes): it was written without it"
        differences = [
            name for name, stored, logged in (
                ("status", status, action), ("decided_by", decided_by, actor), ("notes", notes, entry_notes),
                ("final_file", _sha256(final_file), recorded.get("final_file_sha256")),
                ("decided_at", decided_at, recorded.get("decided_at", decided_at)),
            ) if stored != logged
        ]
        if differences:
            return seq, (f"proposal {proposal_id}'s response differs from its audit entry {seq} in "
                         f"{', '.join(differences)}: it was changed after the decision")
        current = _sha256(current_file) if current_file is not None else current_hash
        changed = [
            name for name, stored, logged in (
                ("bottle", queue_key, entry_key), ("tool", tool, entry_tool),
                ("payload", _sha256(payload), recorded.get("payload_sha256", _sha256(payload))),
                ("justification", justification, recorded.get("justification", justification)),
                ("current_file", current, recorded.get("current_file_hash", current)),
                ("created_at", created_at, recorded.get("created_at", created_at)),
            ) if stored != logged
        ]
        if changed:
            return seq, (f"proposal {proposal_id} differs from what audit entry {seq} records was decided on, in "
                         f"{', '.join(changed)}: it was rewritten after the decision")
    orphan = conn.execute(
        "SELECT a.seq, a.proposal_id, a.action FROM audit_log a WHERE a.proposal_id IS NOT NULL AND "
        f"{_DECISION_ENTRY} AND NOT EXISTS (SELECT 1 FROM responses r WHERE r.proposal_id = a.proposal_id) "
        "ORDER BY a.seq LIMIT 1"
    ).fetchone()
    if orphan is not None:
        return int(orphan[0]), (f"entry {orphan[0]} records that proposal {orphan[1]} was {orphan[2]}, but the "
                                "response is gone (it was removed)")
    return None


# Entries from before the grants and rules tables were (last) made: a downgrade forgets grants and rules on
# purpose, and the entries that made them stay true. Only what came after the migration must have its row.
_SINCE_THE_TABLE = ("ts >= coalesce((SELECT applied_at FROM schema_history WHERE name = 'grants'), "
                    "'0000-00-00T00:00:00.000000Z')")


def _entry(conn: sqlite3.Connection,
           seq: int | None) -> tuple[str, str, str, str | None, dict[str, Any], str] | None:
    """Entry ``seq``'s action, actor, notes, proposal, details and bottle; None where there is no such entry."""
    if seq is None:
        return None
    row = conn.execute("SELECT action, actor, notes, proposal_id, details, queue_key FROM audit_log WHERE seq = :seq",
                       {"seq": seq}).fetchone()
    if row is None:
        return None
    return str(row[0]), str(row[1]), str(row[2]), row[3], stored_details(row[4]) or {}, str(row[5])


def standing_problem(conn: sqlite3.Connection) -> tuple[int | None, str] | None:
    """The first grant, rule or setting that differs from its audit entry, or entry that lost its row."""
    return _grant_problem(conn) or _rule_problem(conn) or _setting_problem(conn)


def _revocation_problem(conn: sqlite3.Connection, what: str, row_id: str, key: str, action: str,
                        revoked: tuple[Any, Any, Any, Any]) -> tuple[int | None, str] | None:
    revoked_at, revoked_by, reason, seq = revoked
    if revoked_at is None:
        return None
    entry = _entry(conn, seq)
    if entry is None or entry[0] != action or entry[4].get(key) != row_id \
            or (entry[4].get("revoked_at"), entry[1], entry[2]) != (revoked_at, revoked_by, reason):
        return seq, (f"{what} {row_id}'s revocation differs from audit entry {seq}: it was written or rewritten "
                     "without the host's key")
    return None


def _grant_problem(conn: sqlite3.Connection) -> tuple[int | None, str] | None:
    rows = conn.execute(
        "SELECT id, tool, subject, starts_at, ends_at, proposal_id, rule_id, decided_by, audit_seq, queue_key, "
        "revoked_at, revoked_by, revoke_reason, revoke_seq FROM grants ORDER BY audit_seq").fetchall()
    for (grant_id, tool, subject, starts_at, ends_at, proposal_id, rule_id, decided_by, seq, queue_key,
         *revoked) in rows:
        entry = _entry(conn, seq)
        recorded = {"id": grant_id, "tool": tool, "subject": _loads(subject), "starts_at": starts_at,
                    "ends_at": ends_at, "rule_id": rule_id}
        if entry is None or entry[0] not in (STATUS_APPROVED, STATUS_MODIFIED) or entry[1] != decided_by \
                or entry[3] != proposal_id or entry[4].get("grant") != recorded or entry[5] != queue_key:
            return seq, (f"grant {grant_id} differs from audit entry {seq}, which recorded the approval that made "
                         "it: it was written or rewritten without the host's key")
        problem = _revocation_problem(conn, "grant", grant_id, "grant", ACTION_GRANT_REVOKED, tuple(revoked))
        if problem:
            return problem
    for seq, details in conn.execute(
            "SELECT seq, details FROM audit_log WHERE action IN (:a, :m) AND json_extract(details, '$.grant.id') "
            f"IS NOT NULL AND {_SINCE_THE_TABLE} AND NOT EXISTS (SELECT 1 FROM grants g "
            "WHERE g.id = json_extract(details, '$.grant.id')) ORDER BY seq LIMIT 1",
            {"a": STATUS_APPROVED, "m": STATUS_MODIFIED}):
        return int(seq), (f"entry {seq} records grant {_named(details, 'grant', 'id')}, but the grant is gone "
                          "(it was removed)")
    return _revocations_kept(conn, "grants", ACTION_GRANT_REVOKED, "grant")


def _revocations_kept(conn: sqlite3.Connection, table: str, action: str, key: str) -> tuple[int | None, str] | None:
    """The first revocation entry whose row no longer says it was revoked by that entry (a revocation undone)."""
    for seq, details in conn.execute(
            f"SELECT a.seq, a.details FROM audit_log a WHERE a.action = :action AND {_SINCE_THE_TABLE} AND NOT EXISTS "
            f"(SELECT 1 FROM {table} t WHERE t.id = json_extract(a.details, '$.{key}') AND t.revoke_seq = a.seq) "
            "ORDER BY a.seq LIMIT 1",
            {"action": action}):
        return int(seq), (f"entry {seq} records that {key} {_named(details, key)} was revoked, but the "
                          f"{key} no longer says so (the revocation was undone in the file)")
    return None


def _rule_problem(conn: sqlite3.Connection) -> tuple[int | None, str] | None:
    rows = conn.execute(
        "SELECT id, queue_key, tool, subject, pattern, effect, notes, created_at, ends_at, created_by, proposal_id, "
        "confirmed, audit_seq, revoked_at, revoked_by, revoke_reason, revoke_seq FROM rules ORDER BY audit_seq"
    ).fetchall()
    for (rule_id, queue_key, tool, subject, pattern, effect, notes, created_at, ends_at, created_by, proposal_id,
         confirmed, seq, *revoked) in rows:
        entry = _entry(conn, seq)
        recorded = {"id": rule_id, "bottle": queue_key, "tool": tool, "subject": _loads(subject),
                    "pattern": bool(pattern), "effect": effect, "created_at": created_at, "ends_at": ends_at,
                    "proposal_id": proposal_id}
        if entry is None or entry[0] != ACTION_RULE_ADDED or (entry[1], entry[2]) != (created_by, notes) \
                or entry[4].get("rule") != recorded or entry[4].get("confirmed") != _loads(confirmed):
            return seq, (f"rule {rule_id} differs from audit entry {seq}, which recorded it: it was written or "
                         "rewritten without the host's key")
        problem = _revocation_problem(conn, "rule", rule_id, "rule", ACTION_RULE_REVOKED, tuple(revoked))
        if problem:
            return problem
    for seq, details in conn.execute(
            f"SELECT seq, details FROM audit_log WHERE action = :added AND {_SINCE_THE_TABLE} AND NOT EXISTS "
            "(SELECT 1 FROM rules r WHERE r.id = json_extract(details, '$.rule.id')) ORDER BY seq LIMIT 1",
            {"added": ACTION_RULE_ADDED}):
        return int(seq), (f"entry {seq} records rule {_named(details, 'rule', 'id')}, but the rule is gone "
                          "(it was removed)")
    return _revocations_kept(conn, "rules", ACTION_RULE_REVOKED, "rule")


def _setting_problem(conn: sqlite3.Connection) -> tuple[int | None, str] | None:
    for name, value, set_by, seq in conn.execute("SELECT name, value, set_by, audit_seq FROM settings ORDER BY name"):
        entry = _entry(conn, seq)
        if entry is None or entry[0] != ACTION_SETTING_CHANGED or entry[1] != set_by \
                or entry[4].get("name") != name or str(entry[4].get("after")) != value:
            return seq, (f"the setting {name} differs from audit entry {seq}, which recorded it: it was written "
                         "without the host's key")
    return None
