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
entries after the rule's own. The rule a remembered decision made is read
from its own ``rule-added`` entry only where this host's seal proves that
entry as it reads now (``decision_rule_entry``): a sidecar can drop the
file's triggers and rewrite an older entry into one naming its proposal.
Whether a rule was revoked already is read from the revocations this host
sealed (``sealed_rule_revocation``), in the revoking transaction itself.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from bot_bottle.audit.chain import SELECT, stored_details
from bot_bottle.audit.host_seal import host_sealing, sealed_rows
from bot_bottle.audit.whole import chained_to_restart
from bot_bottle.errors import DatabaseError, ValidationError
from bot_bottle.grant_records import GRANT_COLUMNS, Grant, grant_from_row
from bot_bottle.policy.lifetimes import DAY, LIFETIMES
from bot_bottle.policy.subjects import subject_sha256
from bot_bottle.records import (
    ACTION_GRANT_REVOKED,
    ACTION_RULE_ADDED,
    ACTION_RULE_REVOKED,
    STATUS_APPROVED,
    STATUS_MODIFIED,
    TOOL_EGRESS_BLOCK,
    AuditEntry,
    canonical_json,
)
from bot_bottle.timestamps import later

# The entries that approve a routes file, and that revoke a routes grant, as migration 0010's partial indexes name
# them (their literals, so that SQLite sees a query implies an index's WHERE and reads one bottle's alone):
# ``audit.routes_approved`` reads the first, ``logged_live_grants`` both, for one bottle (``:queue_key``).
APPROVES_ROUTES = f"tool = '{TOOL_EGRESS_BLOCK}' AND action IN ('{STATUS_APPROVED}', '{STATUS_MODIFIED}')"
REVOKES_ROUTES = f"tool = '{TOOL_EGRESS_BLOCK}' AND action = '{ACTION_GRANT_REVOKED}'"
ROUTES_APPROVED = f"a.queue_key = :queue_key AND {APPROVES_ROUTES}"
ROUTES_REVOKED = f"a.queue_key = :queue_key AND {REVOKES_ROUTES}"


def logged_live_grants(conn: sqlite3.Connection, tool: str | None, queue_key: str | None, now: str) -> list[Grant]:
    """The grants of ``tool`` (None: every tool) for ``queue_key`` (None: every bottle) that the audit log records
    as made and not revoked, in force at ``now``: each as its approval entry records it, whatever its row says."""
    return _logged_grants(conn, tool, queue_key, now)[0]


def _logged_grants(conn: sqlite3.Connection, tool: str | None, queue_key: str | None,
                   now: str) -> tuple[list[Grant], set[object]]:
    """``logged_live_grants``, and the ids every revocation it read names (of the log's last months, or for
    ``queue_key``'s routes grants, of that bottle's)."""
    # Only entries no longer ago than a grant may last can make one in force now: read through the log's time
    # index, so a rejection's transaction reads the last months, not a million entries (0.5 s under the lock).
    params = {"tool": tool, "queue_key": queue_key, "now": now, "revoked": ACTION_GRANT_REVOKED,
              "approved": STATUS_APPROVED, "modified": STATUS_MODIFIED,
              "earliest": later(now, -(max(life.maximum for life in LIFETIMES.values()) + DAY))}
    columns = "a.action, a.seq, a.queue_key, a.proposal_id, a.actor, json_extract(a.details, '$.grant')"
    if tool == TOOL_EGRESS_BLOCK and queue_key is not None:
        # One bottle's routes grants: through migration 0010's indexes of its routes approvals and revocations
        # (their literals), as every routes approval ends the others, not a read of the log's last months.
        rows = [*conn.execute(f"SELECT {columns} FROM audit_log a WHERE {ROUTES_REVOKED}", params),
                *conn.execute(f"SELECT {columns} FROM audit_log a WHERE {ROUTES_APPROVED} "
                              "AND json_extract(a.details, '$.grant.ends_at') > :now", params)]
    else:
        # The revocations and the approvals in one read of the months (two took twice as long: 0.35 s a
        # million entries here); no ORDER BY: it would read the whole log.
        rows = conn.execute(
            f"SELECT {columns} FROM audit_log a WHERE a.ts >= :earliest AND (a.action = :revoked OR ("
            "a.action IN (:approved, :modified) "
            "AND (:tool IS NULL OR json_extract(a.details, '$.grant.tool') = :tool) "
            "AND json_extract(a.details, '$.grant.ends_at') > :now "
            "AND (:queue_key IS NULL OR a.queue_key = :queue_key)))", params).fetchall()
    revoked = {record for action, *_, record in rows if action == ACTION_GRANT_REVOKED}
    found = []
    for action, seq, bottle, proposal_id, actor, record in rows:
        if action == ACTION_GRANT_REVOKED:
            continue
        try:
            grant = _logged_grant(seq, bottle, proposal_id, actor, json.loads(record))
        except (TypeError, ValueError):
            continue  # no JSON: an entry the host did not write this way ('audit verify' names it)
        if grant is not None:
            found.append(grant)
    ended = _sealed_revocations(conn, rows, {grant.id for grant in found if grant.id in revoked})
    return sorted((grant for grant in found if grant.id not in ended), key=lambda grant: grant.audit_seq), revoked


def _sealed_revocations(conn: sqlite3.Connection, rows: list[Any], named: set[str]) -> set[str]:
    """Of the grant ids ``named``, those a ``grant-revoked`` entry among ``rows`` (``_logged_grants``' read) names
    that this host's seal proves as it reads now. A sidecar on the mount can append a revocation entry naming a
    grant, not seal it: it deleted the grant's row and appended one, and every list (and a standing rejection)
    passed the grant by as revoked, so the operator never saw it, and it was in force again once the row was put
    back (hostile review 59). Only the entries naming a grant the log records as made are read again."""
    seqs = [seq for action, seq, *_, record in rows if action == ACTION_GRANT_REVOKED and record in named]
    if not seqs:
        return set()
    return {str((stored_details(row[9]) or {}).get("grant")) for row in host_entries(conn, _numbered(conn, seqs))}


def _numbered(conn: sqlite3.Connection, seqs: list[int]) -> sqlite3.Cursor:
    """The audit entries numbered ``seqs``, oldest first, as ``chain.SELECT`` reads them."""
    return conn.execute(f"{SELECT} WHERE seq IN (SELECT value FROM json_each(:seqs)) ORDER BY seq",
                        {"seqs": json.dumps(seqs)})


def host_entries(conn: sqlite3.Connection, rows: Iterable[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Of audit entries ``rows`` (``chain.SELECT``), those this host's seal proves as they read now, and those
    sealed before a new audit key took over ('audit new-key') whose chain runs whole to the restart
    (``whole.chained_to_restart``): their seals are an earlier key's, which this host no longer checks. Taken on
    their number, a sidecar rewrote one into its own grant (hostile review 60); passed by, a grant revoked before
    the new key was listed [kept by the log], its revocation no longer counted."""
    rows = list(rows)
    chained = chained_to_restart(conn, {row[0] for row in rows}, host_sealing(conn)[1])
    sealed = {row[0] for row in sealed_rows(conn, (row for row in rows if row[0] not in chained))}
    return [row for row in rows if row[0] in chained or row[0] in sealed]


@dataclass(frozen=True)
class RowsAgainstLog:
    """Where the grants' rows and the audit log disagree on what is in force: the grants a sealed approval entry
    made, not revoked, that no row in force shows (``kept``, each as that entry records it), the rows in force
    that a revocation this host sealed names (``revoked``: by id, what that revocation says), and the other rows
    in force that no sealed approval made as they read (``unproven``, by id)."""

    kept: list[Grant]
    revoked: dict[str, str]
    unproven: frozenset[str] = frozenset()


def rows_against_log_in(conn: sqlite3.Connection, queue_key: str | None, now: str) -> RowsAgainstLog:
    """Where ``queue_key``'s (None: every bottle's) grant rows and the audit log disagree at ``now``.

    A sidecar on the mount can mark a grant's row revoked or ended, or delete it, and put it back later. While the
    row is hidden the relay does not pass the grant on, but every list of grants read the rows alone, so the
    operator was never shown the grant, and had no reason to revoke it before it came back (hostile review 57).
    The other way, a sidecar can clear a revoked grant's mark: the relay holds it revoked, but sidecars that read
    the file pass it on, and the lists showed it as any grant in force. The log's months a grant may last are
    read once (0.18 s at a million entries here); the whole log only for a row in force that a revocation names.
    """
    logged, revocations = _logged_grants(conn, None, queue_key, now)
    # Every row in force of each id: a sidecar rebuilt the table without its key and wrote a second row of a live
    # grant's id saying a harmless host, ending later, so that every list (one line an id, the later end last)
    # showed that, unmarked, while the first row kept the grant in force (hostile review 60).
    shown: dict[str, set[tuple[object, ...]]] = {}
    for row in conn.execute("SELECT id, queue_key, tool, subject, ends_at, decided_by, rule_id FROM grants "
                            "WHERE revoked_at IS NULL "
                            "AND ends_at > :now AND (:queue_key IS NULL OR queue_key = :queue_key)",
                            {"now": now, "queue_key": queue_key}):
        shown.setdefault(str(row[0]), set()).add(tuple(row[1:]))
    rows = set(shown)
    revoked: dict[str, str] = {}
    named = sorted(rows & {str(grant_id) for grant_id in revocations})
    if named:  # rows a revocation names: each held to this host's seal (a sidecar can write an entry, not a seal)
        entries = conn.execute(f"{SELECT} WHERE action = :revoked AND json_extract(details, '$.grant') IN "
                               "(SELECT value FROM json_each(:named)) ORDER BY seq",
                               {"revoked": ACTION_GRANT_REVOKED, "named": json.dumps(named)})
        for row in host_entries(conn, entries):
            grant_id = str((stored_details(row[9]) or {}).get("grant"))
            revoked.setdefault(grant_id, f"revoked {_when_and_who(row)}")
    # A row in force shows the grant only where it says what the log's entry does: a sidecar rewrote a live row's
    # subject (or bottle, tool, end) to a harmless one, and the list showed that, unmarked, while the log's grant,
    # back in force once the row was, went unseen (hostile review 59).
    # Each held to this host's seal: a sidecar can append an approval entry naming a grant, or write a row, not seal
    # an entry. A row in force that no sealed approval made was listed as any grant, unmarked.
    # Those before a new audit key took over ('audit new-key') are held to their chain (``host_entries``).
    sealed = {row[0] for row in host_entries(conn, _numbered(conn, [grant.audit_seq for grant in logged]))}
    made = [grant for grant in logged if grant.audit_seq in sealed]
    proven = {grant.id for grant in made if shown.get(grant.id) == {_said(grant)}}
    return RowsAgainstLog([grant for grant in made if grant.id not in proven], revoked,
                          frozenset(rows - proven - set(revoked)))


def _said(grant: Grant) -> tuple[object, ...]:
    """What a grant's row says of it that a list shows: its bottle, tool, subject, end, who decided it and the
    rule that did (the BY column: a sidecar wrote a made-up name there, and the list showed it)."""
    return grant.queue_key, grant.tool, grant.subject, grant.ends_at, grant.decided_by, grant.rule_id


def row_proven(conn: sqlite3.Connection, row: Grant) -> bool:
    """Whether grant row ``row`` says what the approval entry it claims (its ``audit_seq``), sealed by this host,
    records of the grant it made: its id, bottle, tool, subject, end, decider and rule (``grant_made_by``)."""
    made = grant_made_by(conn, row.audit_seq)
    return made is not None and made.id == row.id and _said(made) == _said(row)


def recorded_grant_id(details: object) -> str | None:
    """The id of the grant an approval entry records in its ``details`` (the stored text), or None where it
    records none this way."""
    grant = (stored_details(details) or {}).get("grant")
    grant_id = grant.get("id") if isinstance(grant, dict) else None
    return grant_id if isinstance(grant_id, str) else None


def revocations_of(conn: sqlite3.Connection, grant_id: str, after: object, before: int | None = None) -> sqlite3.Cursor:
    """The ``grant-revoked`` entries that name grant ``grant_id``, after entry ``after`` (and before ``before``),
    oldest first, as ``chain.SELECT`` reads them: their seals unchecked (``host_seal.sealed_rows`` keeps the
    host's where a caller has not held the span to the seal already).

    By the grant's id alone, whatever bottle and tool an entry records: a sidecar on the mount rewrote a grant's
    row to another bottle (or tool) before the operator revoked it, and a look by bottle passed the revocation
    by (hostile review 57). No index serves that, so the id is looked for in the text first (``instr``, about
    50 ms for 200,000 entries here) and the JSON read only where it may be."""
    return conn.execute(f"{SELECT} WHERE seq > :after AND (:before IS NULL OR seq < :before) AND action = :revoked "
                        "AND instr(details, :grant) > 0 AND json_extract(details, '$.grant') = :grant ORDER BY seq",
                        {"after": after, "before": before, "revoked": ACTION_GRANT_REVOKED, "grant": grant_id})


def revocation_entry(conn: sqlite3.Connection, grant: Grant, reason: str, revoked_by: str, now: str,
                     rule_id: str | None) -> AuditEntry:
    """The ``grant-revoked`` entry that revokes ``grant`` (``rule_id``: the standing rejection that ends it).

    It names the grant's proposal only where the file holds that proposal: the entry's proposal is a foreign
    key, and a grant row naming one the file does not hold (a sidecar wrote the row, or removed the proposal)
    would make the revocation, and the standing rejection recording it, fail whole. Its bottle and tool are the
    ones the grant's approval entry records, where that is a sealed approval of this grant: the row's are the
    file's word, and a sidecar on the mount rewrote a routes grant's row to another bottle (or tool), so the
    operator's revocation was recorded there, where ``routes_approved`` and the screens' mark
    (``routes_approvals_mark``) look for a routes revocation of the bottle's through migration 0010's index: the
    file revoked stayed on record, and the same file filed again read 'routes file: unchanged' (hostile review 57).
    """
    details: dict[str, Any] = {"grant": grant.id, "subject": grant.subject_value, "ends_at": grant.ends_at,
                               "revoked_at": now, **({} if rule_id is None else {"rule_id": rule_id})}
    held = conn.execute("SELECT 1 FROM proposals WHERE id = :id", {"id": grant.proposal_id}).fetchone()
    made = grant_made_by(conn, grant.audit_seq)
    bottle, tool = (made.queue_key, made.tool) if made is not None and made.id == grant.id else \
        (grant.queue_key, grant.tool)
    return AuditEntry(queue_key=bottle, action=ACTION_GRANT_REVOKED, actor=revoked_by, tool=tool,
                      proposal_id=grant.proposal_id if held is not None else None, notes=reason, details=details)


def mark_row_revoked(conn: sqlite3.Connection, grant_id: str, revoked: dict[str, Any]) -> None:
    """Mark grant ``grant_id``'s row (every row of that id) revoked as its revocation entry records it (``revoked``:
    now, by, reason, seq), in the caller's transaction, the entry already appended. A row a sidecar marked revoked
    is not marked again: the entry says it now is.

    A trigger that refuses the mark (a sidecar on the mount can add one: ``RAISE(ABORT)``) does not fail the
    revocation: 'grants revoke', the TUI's x, the dashboard's button and a standing rejection all failed with
    "SQLite error ...: nope", recording nothing, and the grant stayed in force for the relay and every sidecar
    (hostile review 60). The sealed entry ends it; the row, unmarked, is listed [revoked in the log]. A trigger
    that rolls the whole transaction back (``RAISE(ROLLBACK)``) leaves nothing to go on with: said so."""
    try:
        conn.execute("UPDATE grants SET revoked_at = :now, revoked_by = :by, revoke_reason = :reason, "
                     "revoke_seq = :seq WHERE id = :id AND revoked_at IS NULL", {**revoked, "id": grant_id})
    except sqlite3.DatabaseError as exc:
        if not conn.in_transaction:
            raise DatabaseError(f"a trigger in the database rolled back the revocation of grant {grant_id[:8]} "
                                f"({exc}): nothing was recorded; 'bot-bottle db check' names it") from None


def grant_made_by(conn: sqlite3.Connection, seq: int) -> Grant | None:
    """The grant the approval entry ``seq`` records, as it records it, where this host's seal proves that entry as
    it reads now; else None."""
    row = conn.execute(f"{SELECT} WHERE seq = :seq", {"seq": seq}).fetchone()
    if row is None or row[3] not in (STATUS_APPROVED, STATUS_MODIFIED) or next(sealed_rows(conn, [row]), None) is None:
        return None
    return _logged_grant(row[0], row[2], row[5], row[6], (stored_details(row[9]) or {}).get("grant"))


def claimed_grants_in(conn: sqlite3.Connection, grant: Grant, now: str) -> list[Grant]:
    """The grant the approval entry ``grant``'s row claims (its ``audit_seq``) made, where that is another grant
    than the row names, still in force at ``now`` and revoked by no entry: what revoking the row revokes too.

    A sidecar on the mount renamed a grant's row (another 32 hex digits) before the operator revoked it, and put
    it back after: the revocation entry named the new id, the grant the approval made was revoked by none, and
    the relay passed it on again (hostile review 57). The row is the sidecar's word; the entry it claims is the
    host's, and what it made is what the row stood for on the operator's screen.

    Not where a row in force shows that grant as its entry records it: the list showed it on its own line,
    unmarked, and the operator named the other. A sidecar rebuilt the table without its UNIQUE on ``audit_seq``
    and wrote a row for another bottle and host claiming a listed grant's entry; the list marked the row [not in
    the log] and said to revoke it, and revoking it ended the listed grant too, unnamed (hostile review 60)."""
    made = grant_made_by(conn, grant.audit_seq)
    if made is None or made.id == grant.id or made.ends_at <= now:
        return []
    rows = conn.execute("SELECT queue_key, tool, subject, ends_at, decided_by, rule_id FROM grants WHERE id = :id "
                        "AND revoked_at IS NULL AND ends_at > :now", {"id": made.id, "now": now})
    if any(tuple(row) == _said(made) for row in rows):
        return []  # listed on its own, as the log records it: not what the operator named
    named = revocations_of(conn, made.id, made.audit_seq)
    return [] if next(sealed_rows(conn, named), None) is not None else [made]  # a sidecar's entry revokes nothing


def revocation_refusal(conn: sqlite3.Connection, grant: Grant, now: str) -> str | None:
    """Why revoking ``grant`` (a row the operator named) at ``now`` records nothing, or None: a revocation this
    host sealed names it already, or it ended, by its approval entry's word where that is a sealed approval of
    this grant (else its row's).

    Not the row's revocation mark nor its end: a sidecar on the mount marked a grant's row revoked (or ended),
    the operator's 'grants revoke' said "revoked already" (or "nothing to revoke") and recorded nothing, and once
    the row was put back the relay passed the grant on again, no entry revoking it (hostile review 57)."""
    made = grant_made_by(conn, grant.audit_seq)
    made = made if made is not None and made.id == grant.id else None
    # After the sealed entry that made it, where there is one: not the whole log under the write lock.
    for row in sealed_rows(conn, revocations_of(conn, grant.id, 0 if made is None else made.audit_seq)):
        return f"grant {grant.short_id} was revoked already, {_when_and_who(row)}"
    ends_at = grant.ends_at if made is None else made.ends_at
    return f"grant {grant.short_id} ended at {ends_at}: nothing to revoke" if ends_at <= now else None


def _when_and_who(revocation: tuple[Any, ...]) -> str:
    """When and by whom the ``grant-revoked`` entry ``revocation`` (``chain.SELECT``) revoked, and its number."""
    return f"at {revocation[1]} by {revocation[6]} (audit entry {revocation[0]})"


def _logged_grant(seq: Any, queue_key: Any, proposal_id: Any, actor: Any, recorded: Any) -> Grant | None:
    """The grant an approval entry records (its ``details.grant``, as ``grant_records.grant_record`` wrote it), or None
    where it records none this way (an entry the host did not write so: 'audit verify' names it)."""
    if not isinstance(recorded, dict):
        return None
    try:
        subject = recorded["subject"]
        tool = str(recorded["tool"])
        return Grant(id=str(recorded["id"]), queue_key=str(queue_key), tool=tool, subject=canonical_json(subject),
                     subject_sha256=subject_sha256(tool, subject), starts_at=str(recorded["starts_at"]),
                     ends_at=str(recorded["ends_at"]), proposal_id=str(proposal_id), rule_id=recorded.get("rule_id"),
                     decided_by=str(actor), audit_seq=int(seq))
    except (TypeError, ValueError, KeyError, AttributeError, ValidationError):
        return None


def ended_by_rule_in(conn: sqlite3.Connection, rule_id: str, added_seq: int) -> list[Grant]:
    """The grants the standing rejection ``rule_id`` (its ``rule-added`` entry ``added_seq``) ended as it was
    made: those a revocation entry after it naming the rule names (a row's ``revoke_seq`` and ``revoked_at``
    are the file's word, which a sidecar can write); read from that entry on, not the whole log. Each entry
    counts only where this host's seal proves it as it reads now: a sidecar rewrote a later decision's entry
    into a revocation naming the rule and a grant still in force, which the screens then said it had ended."""
    params = {"added": added_seq, "action": ACTION_GRANT_REVOKED, "rule": rule_id}
    entries = conn.execute(f"{SELECT} WHERE seq > :added AND action = :action AND "
                           "json_extract(details, '$.rule_id') = :rule", params).fetchall()
    proven = {(stored_details(row[9]) or {}).get("grant") for row in sealed_rows(conn, entries)}
    rows = conn.execute(
        f"SELECT DISTINCT {GRANT_COLUMNS} FROM audit_log a JOIN grants g ON g.id = json_extract(a.details, '$.grant') "
        "WHERE a.seq > :added AND a.action = :action AND json_extract(a.details, '$.rule_id') = :rule "
        "ORDER BY g.queue_key, g.id", params).fetchall()
    return [grant for grant in map(grant_from_row, rows) if grant.id in proven]


def sealed_rule_revocation(conn: sqlite3.Connection, rule_id: str) -> tuple[int, str, str] | None:
    """The first ``rule-revoked`` entry naming ``rule_id`` whose content this host's seal proves: (its number, who
    revoked the rule, when), or None. What a revocation reads again in its own write transaction: two operators
    who both read a rule as in force (the dashboard and 'rules revoke' at once) both recorded a revocation and
    were both told so, and 'audit verify' then called the second one, which the row does not name, a revocation
    undone in the file. An entry a sidecar wrote (unsealed) is no revocation (``host_seal.sealed_rows``): the
    operator's is recorded."""
    rows = conn.execute(f"{SELECT} WHERE action = :action AND instr(details, :id) > 0 ORDER BY seq",
                        {"action": ACTION_RULE_REVOKED, "id": rule_id})
    for row in sealed_rows(conn, (row for row in rows if (stored_details(row[9]) or {}).get("rule") == rule_id)):
        return row[0], str(row[6]), str(row[1])
    return None


def decision_rule_entry(conn: sqlite3.Connection, proposal_id: str) -> tuple[int, dict[str, Any]] | None:
    """The ``rule-added`` entry the decision on ``proposal_id`` wrote (``--remember``): its number and the rule
    it records (id, bottle, effect, subject, ends_at), or None. The newest for the proposal whose content this
    host's seal proves as it reads now (``forensics.seal_problem``): the entry column's word is the file's, and
    a sidecar rewrote an earlier decision's sealed entry (hash and all) into a ``rule-added`` naming its
    proposal and the operator's standing rejection, which the screens then named as the rule just made ("'rules
    revoke' it ends it"), with the grants that rejection had ended, and none of what the new rule decided.
    Newest, not first: a sidecar that deleted the response and unsaid the first decision's entry had the
    proposal decided a second time, and the first decision's sealed rule was named as the second's."""
    rows = conn.execute(f"{SELECT} WHERE proposal_id = :id AND action = :added ORDER BY seq DESC",
                        {"id": proposal_id, "added": ACTION_RULE_ADDED})
    for row in sealed_rows(conn, rows):  # one the host did not seal is passed over: an earlier may be the decision's
        record = (stored_details(row[9]) or {}).get("rule")
        return (row[0], record) if isinstance(record, dict) and isinstance(record.get("id"), str) else None
    return None
