"""The grants as the audit log records them, not as the grants table says: what a sidecar cannot rewrite.

A grant's row is the file's word, and a sidecar on the mount can write the
file: mark a live grant revoked while a standing rejection is made (so the
rejection passes it by) and clear the mark after, or point a row at
another rejection's revocation. The log's entries are sealed with the
host's key, so ``grants.end_grants_rejected_in`` also takes the grants the
log records as made and not revoked (``logged_live_grants``), and what a
rejection ended is read from its own revocation entries
(``ended_by_rule_in``). Both read only the part of the log that can hold
them: the months a grant may last, through the log's time index, and the
entries after the rule's own.
"""

from __future__ import annotations

import json
import sqlite3

from bot_bottle.errors import ValidationError
from bot_bottle.grant_records import GRANT_COLUMNS, Grant, grant_from_row
from bot_bottle.policy.lifetimes import DAY, LIFETIMES
from bot_bottle.policy.subjects import subject_sha256
from bot_bottle.records import ACTION_GRANT_REVOKED, STATUS_APPROVED, STATUS_MODIFIED, canonical_json
from bot_bottle.timestamps import later


def logged_live_grants(conn: sqlite3.Connection, tool: str, queue_key: str | None, now: str) -> list[Grant]:
    """The grants of ``tool`` for ``queue_key`` (None: every bottle) that the audit log records as made and not
    revoked, in force at ``now``: each as its approval entry records it, whatever its row says now."""
    found = []
    # Only entries no longer ago than a grant may last can make one in force now: read through the log's time
    # index, so a rejection's transaction reads the last months, not a million entries (0.5 s under the lock).
    params = {"tool": tool, "queue_key": queue_key, "now": now,
              "earliest": later(now, -(max(life.maximum for life in LIFETIMES.values()) + DAY))}
    revoked = {row[0] for row in conn.execute("SELECT json_extract(a.details, '$.grant') FROM audit_log a "
                                              "WHERE a.ts >= :earliest AND a.action = :revoked",
                                              {**params, "revoked": ACTION_GRANT_REVOKED})}
    for seq, queue_key, proposal_id, actor, record in conn.execute(
            "SELECT a.seq, a.queue_key, a.proposal_id, a.actor, json_extract(a.details, '$.grant') FROM audit_log a "
            "WHERE a.ts >= :earliest AND a.action IN (:approved, :modified) "
            "AND json_extract(a.details, '$.grant.tool') = :tool AND json_extract(a.details, '$.grant.ends_at') > :now "
            "AND (:queue_key IS NULL OR a.queue_key = :queue_key)",  # no ORDER BY: it would read the whole log
            {**params, "approved": STATUS_APPROVED, "modified": STATUS_MODIFIED}):
        try:
            recorded = json.loads(record)
            if recorded["id"] in revoked:
                continue
            subject = recorded["subject"]
            tool = str(recorded["tool"])
            found.append(Grant(id=str(recorded["id"]), queue_key=str(queue_key), tool=tool,
                               subject=canonical_json(subject), subject_sha256=subject_sha256(tool, subject),
                               starts_at=str(recorded["starts_at"]), ends_at=str(recorded["ends_at"]),
                               proposal_id=str(proposal_id), rule_id=recorded.get("rule_id"), decided_by=str(actor),
                               audit_seq=int(seq)))
        except (TypeError, ValueError, KeyError, AttributeError, ValidationError):
            continue  # an entry the host did not write this way: 'audit verify' names it
    return sorted(found, key=lambda grant: grant.audit_seq)


def ended_by_rule_in(conn: sqlite3.Connection, rule_id: str, added_seq: int) -> list[Grant]:
    """The grants the standing rejection ``rule_id`` (its ``rule-added`` entry ``added_seq``) ended as it was
    made: those a revocation entry after it naming the rule names (a row's ``revoke_seq`` and ``revoked_at``
    are the file's word, which a sidecar can write); read from that entry on, not the whole log."""
    rows = conn.execute(
        f"SELECT DISTINCT {GRANT_COLUMNS} FROM audit_log a JOIN grants g ON g.id = json_extract(a.details, '$.grant') "
        "WHERE a.seq > :added AND a.action = :action AND json_extract(a.details, '$.rule_id') = :rule "
        "ORDER BY g.queue_key, g.id",
        {"added": added_seq, "action": ACTION_GRANT_REVOKED, "rule": rule_id}).fetchall()
    return [grant_from_row(row) for row in rows]
