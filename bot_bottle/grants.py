"""Grants, standing rules and the host's settings: what each bottle may do, until when, and on whose word.

A grant is made only where a decision is recorded (``decisions.record_decisions``,
or a standing rule in ``standing``), in the same transaction as its audit
entry, and holds that entry's sequence number; a rule, a revocation and a
setting each have an entry of their own. Nothing here takes a subject from
an agent: a grant's subject is built from the proposal the operator saw
(``policy.subjects``), and a rule's from that or from what the operator typed.

``GrantStore`` is the host's view (listing, revoking, rules, settings); the
``*_in`` functions work inside a caller's open transaction, and
``live_grants_in`` is what a sidecar's queue handle answers "does this
bottle hold a live grant?" with.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
from typing import Any

from bot_bottle.audit.grant_entries import (
    RowsAgainstLog,
    claimed_grants_in,
    decision_rule_entry,
    ended_by_rule_in,
    logged_live_grants,
    mark_row_revoked,
    revocation_entry,
    revocation_refusal,
    row_proven,
    rows_against_log_in,
    sealed_rule_revocation,
)
from bot_bottle.audit_store import AuditRecorder, AuditStore
from bot_bottle.db import DatabaseUser
from bot_bottle.errors import AlreadyEnded, AmbiguousId, NotFound, ValidationError
from bot_bottle.grant_records import GRANT_COLUMNS, RULE_COLUMNS, Grant, Rule, grant_from_row, rule_from_row
from bot_bottle.policy.approval import subject_kinds
from bot_bottle.policy.lifetimes import DEFAULT_PENDING_TTL, MAX_PENDING_TTL, MIN_PENDING_TTL, pending_ttl_seconds
from bot_bottle.policy.subjects import rule_overlaps, subject_sha256
from bot_bottle.queue_reads import one_by_id_prefix
from bot_bottle.records import (
    ACTION_RULE_ADDED,
    ACTION_RULE_REVOKED,
    ACTION_SETTING_CHANGED,
    ALL_BOTTLES,
    EFFECT_APPROVE,
    EFFECT_REJECT,
    EFFECTS,
    MAX_TEXT_BYTES,
    TOOL_EGRESS_BLOCK,
    AuditEntry,
    Proposal,
    canonical_json,
    validate_bottle_slug,
    validate_queue_key,
    validate_text,
    validate_tool,
    validated_details,
)
from bot_bottle.timestamps import spell_duration, utc_now

SETTING_PENDING_TTL = "pending-ttl"
_GRANT_BY_ID, _RULE_BY_ID = GRANT_COLUMNS.replace("g.", "t."), RULE_COLUMNS.replace("r.", "t.")  # (one_by_id_prefix)
_LIVE = "t.revoked_at IS NULL DESC, t.ends_at DESC"  # (one_by_id_prefix's order of rows sharing an id)


def insert_grant_in(
    log: AuditRecorder, proposal: Proposal, subject: dict[str, Any], *, grant_id: str, starts_at: str, ends_at: str,
    decided_by: str, audit_seq: int, rule_id: str | None = None,
) -> Grant:
    """Record the grant ``proposal``'s approval made, bound to its audit entry, in ``log``'s transaction."""
    grant = Grant(
        id=grant_id, queue_key=proposal.queue_key, tool=proposal.tool,
        subject=canonical_json(subject), subject_sha256=subject_sha256(proposal.tool, subject),
        starts_at=starts_at, ends_at=ends_at, proposal_id=proposal.id, rule_id=rule_id, decided_by=decided_by,
        audit_seq=audit_seq,
    )
    log.conn.execute(
        "INSERT INTO grants (id, queue_key, tool, subject, subject_sha256, starts_at, ends_at, proposal_id, rule_id, "
        "decided_by, audit_seq) VALUES (:id, :queue_key, :tool, :subject, :subject_sha256, :starts_at, :ends_at, "
        ":proposal_id, :rule_id, :decided_by, :audit_seq)",
        {name: getattr(grant, name) for name in ("id", "queue_key", "tool", "subject", "subject_sha256", "starts_at",
                                                 "ends_at", "proposal_id", "rule_id", "decided_by", "audit_seq")},
    )
    return grant


def live_grants_in(conn: sqlite3.Connection, queue_key: str, tool: str, now: str) -> list[Grant]:
    """``queue_key``'s grants of ``tool`` in force at ``now``: not revoked, started, not ended."""
    rows = conn.execute(
        f"SELECT {GRANT_COLUMNS} FROM grants g WHERE g.queue_key = :queue_key AND g.tool = :tool "
        "AND g.revoked_at IS NULL AND g.ends_at > :now AND g.starts_at <= :now ORDER BY g.ends_at",
        {"queue_key": queue_key, "tool": tool, "now": now}).fetchall()
    return [grant_from_row(row) for row in rows]


_LIVE_RULE = ("r.revoked_at IS NULL AND (r.ends_at IS NULL OR r.ends_at > :now) AND r.created_at <= :now "
              "ORDER BY r.created_at")


def live_rules_in(conn: sqlite3.Connection, queue_key: str, tool: str, now: str) -> list[Rule]:
    """Rules in force at ``now`` for ``queue_key``'s proposals of ``tool`` (the bottle's own, and every bottle's).

    As the file says: only a rule its audit entry proves may decide (``audit.rule_proofs.RuleProofs``).
    """
    rows = conn.execute(
        f"SELECT {RULE_COLUMNS} FROM rules r WHERE r.tool = :tool "
        f"AND (r.queue_key = :queue_key OR r.queue_key IS NULL) AND {_LIVE_RULE}",
        {"queue_key": queue_key, "tool": tool, "now": now},
    ).fetchall()
    return [rule_from_row(row) for row in rows]


def all_live_rules_in(conn: sqlite3.Connection, now: str) -> list[Rule]:
    """Every bottle's rules in force at ``now``, as the file says (see ``live_rules_in``)."""
    return [rule_from_row(row) for row in conn.execute(f"SELECT {RULE_COLUMNS} FROM rules r WHERE {_LIVE_RULE}",
                                                       {"now": now}).fetchall()]


def add_rule_in(
    log: AuditRecorder, *, queue_key: str | None, tool: str, subject: dict[str, Any], pattern: bool, effect: str,
    notes: str, ends_at: str | None, created_by: str, proposal_id: str | None = None, now: str | None = None,
) -> Rule:
    """Record a standing rule and its ``rule-added`` audit entry, in ``log``'s transaction.

    A rejecting rule also ends the live grants it overlaps (``end_grants_rejected_in``).
    """
    if queue_key is not None:
        validate_bottle_slug(queue_key)
    validate_tool(tool)
    if effect not in EFFECTS:
        raise ValidationError("effect", f"{effect!r} is not one of {', '.join(EFFECTS)}")
    validate_text("notes", notes, max_bytes=MAX_TEXT_BYTES)
    if effect == EFFECT_APPROVE and ends_at is None:
        raise ValidationError("for", "a rule that approves must end: give --for")
    created_at = now or utc_now()
    rule_id = secrets.token_hex(16)
    subject_json, digest = canonical_json(subject), subject_sha256(tool, subject)
    record = {"id": rule_id, "bottle": queue_key, "tool": tool, "subject": subject, "pattern": bool(pattern),
              "effect": effect, "created_at": created_at, "ends_at": ends_at, "proposal_id": proposal_id}
    # What approving it was confirmed for, now: a name under a pattern asked about twice for anything more
    # waits for the operator, however the badges are read after an upgrade (standing.approves).
    confirmed = subject_kinds(tool, subject) if effect == EFFECT_APPROVE else None
    entry = log.append(AuditEntry(
        queue_key=queue_key or ALL_BOTTLES, action=ACTION_RULE_ADDED, actor=created_by, tool=tool,
        proposal_id=proposal_id, notes=notes,
        details={"rule": record, **({"confirmed": confirmed} if confirmed is not None else {})}), ts=created_at)
    assert entry.seq is not None
    rule = Rule(id=rule_id, queue_key=queue_key, tool=tool, subject=subject_json, subject_sha256=digest,
                pattern=int(bool(pattern)), effect=effect, notes=notes, created_at=created_at, ends_at=ends_at,
                created_by=created_by, proposal_id=proposal_id, audit_seq=entry.seq,
                confirmed=json.dumps(confirmed, separators=(",", ":")) if confirmed is not None else None)
    log.conn.execute(
        "INSERT INTO rules (id, queue_key, tool, subject, subject_sha256, pattern, effect, notes, created_at, "
        "ends_at, created_by, proposal_id, audit_seq, confirmed) VALUES (:id, :queue_key, :tool, :subject, "
        ":subject_sha256, :pattern, :effect, :notes, :created_at, :ends_at, :created_by, :proposal_id, :audit_seq, "
        ":confirmed)",
        {name: getattr(rule, name) for name in ("id", "queue_key", "tool", "subject", "subject_sha256", "pattern",
                                                "effect", "notes", "created_at", "ends_at", "created_by",
                                                "proposal_id", "audit_seq", "confirmed")},
    )
    if effect == EFFECT_REJECT:
        end_grants_rejected_in(log, rule)
    return rule


def end_grants_rejected_in(log: AuditRecorder, rule: Rule) -> list[Grant]:
    """Revoke, in ``log``'s transaction, the live grants that let through any of what the rejecting ``rule`` names.

    A standing rejection means "not this, from now on": a grant made
    before it would otherwise go on letting the agent through until its
    end (days, for a route). Every grant in the rule's scope (its bottle, or
    every bottle) whose subject overlaps the rule's, as a rejection matches a
    proposal (``policy.subjects.rule_overlaps``), is revoked whole, each with
    a ``grant-revoked`` entry naming the rule (``rule_id``) and the rule's
    author as the one who revoked it: a wildcard grant over a rejected host
    ends too, and what the agent still needs it asks for again, where the
    rejection answers for its part. Returns the grants revoked.
    """
    overlapping = [grant for grant in grants_in_force_in(log.conn, rule.tool, rule.queue_key, rule.created_at)
                   if rule_overlaps(rule.subject_value, bool(rule.pattern), rule.tool, grant.subject_value)]
    return end_grants_in(log, overlapping, f"ended by standing rejection {rule.short_id}: it let through what the "
                         "rule rejects", revoked_by=rule.created_by, now=rule.created_at, rule_id=rule.id)


def grants_in_force_in(conn: sqlite3.Connection, tool: str, queue_key: str | None, now: str) -> list[Grant]:
    """The grants of ``tool`` for ``queue_key`` (None: every bottle) in force at ``now``, by their rows and as the
    audit log records them (``logged_live_grants``): a row's word (revoked_at, ends_at, subject) is the file's,
    which a sidecar can change while a decision ends them and put back after, when the relay proves the grant
    again. By bottle and id."""
    rows = conn.execute(
        f"SELECT {GRANT_COLUMNS} FROM grants g WHERE g.tool = :tool AND g.revoked_at IS NULL "
        "AND g.ends_at > :now AND (:queue_key IS NULL OR g.queue_key = :queue_key) ORDER BY g.queue_key, g.id",
        {"tool": tool, "now": now, "queue_key": queue_key}).fetchall()
    logged = logged_live_grants(conn, tool, queue_key, now)
    grants = {grant.id: grant for grant in (*map(grant_from_row, rows), *logged)}
    return sorted(grants.values(), key=lambda grant: (grant.queue_key, grant.id))


def end_replaced_routes_in(log: AuditRecorder, proposal: Proposal, grant_id: str, *, decided_by: str,
                           now: str) -> list[Grant]:
    """Revoke the routes grants of ``proposal``'s bottle in force but ``grant_id`` (its approval's): a grant of a file
    it replaced answered that file filed again, putting back what it dropped unasked. Rules stand."""
    replaced = [grant for grant in grants_in_force_in(log.conn, TOOL_EGRESS_BLOCK, proposal.queue_key, now)
                if grant.id != grant_id] if proposal.tool == TOOL_EGRESS_BLOCK else []
    return end_grants_in(log, replaced, f"replaced by the routes file approved on proposal {proposal.short_id}",
                         revoked_by=decided_by, now=now)


def end_grants_in(log: AuditRecorder, grants: list[Grant], reason: str, *, revoked_by: str, now: str,
                  rule_id: str | None = None) -> list[Grant]:
    """Revoke each of ``grants`` in ``log``'s transaction, each with a ``grant-revoked`` entry giving ``reason``
    (and the rule that ended it); the ones revoked."""
    ended = []
    for grant in grants:
        revocation = revocation_entry(log.conn, grant, reason, revoked_by, now, rule_id)
        try:
            validated_details(revocation)
        except ValidationError:
            # A row no host decision wrote (a sidecar on the mount can write the file; 'audit verify' names it):
            # it cannot be audited, and it must not keep the operator's decision from being recorded.
            continue
        ended.append(_revoke(log, grant, revocation, now))
    return ended


def revoke_grant_in(log: AuditRecorder, grant: Grant, reason: str, *, revoked_by: str, now: str,
                    rule_id: str | None = None) -> Grant:
    """Revoke the live ``grant`` at ``now`` with its ``grant-revoked`` entry, in ``log``'s transaction; as revoked.

    ``rule_id``: the standing rejection that ended it (``end_grants_rejected_in``).
    """
    return _revoke(log, grant, revocation_entry(log.conn, grant, reason, revoked_by, now, rule_id), now)


def _revoke(log: AuditRecorder, grant: Grant, revocation: AuditEntry, now: str) -> Grant:
    """Append ``revocation`` (``revocation_entry``'s for ``grant``) and mark the row revoked by it; as revoked."""
    entry = log.append(revocation, ts=now)
    mark_row_revoked(log.conn, grant.id, {"now": now, "by": revocation.actor, "reason": revocation.notes,
                                          "seq": entry.seq})
    return Grant(**{**grant.__dict__, "revoked_at": now, "revoked_by": revocation.actor,
                    "revoke_reason": revocation.notes, "revoke_seq": entry.seq})


def pending_ttl_in(conn: sqlite3.Connection) -> int:
    """How long a proposal filed now may wait, in seconds: the host's setting, held to its bounds."""
    row = conn.execute("SELECT value FROM settings WHERE name = :name", {"name": SETTING_PENDING_TTL}).fetchone()
    try:
        value = int(row[0]) if row is not None else DEFAULT_PENDING_TTL
    except (TypeError, ValueError):
        value = DEFAULT_PENDING_TTL  # a row a sidecar wrote: the default, not whatever it says
    return min(MAX_PENDING_TTL, max(MIN_PENDING_TTL, value))


class GrantStore(DatabaseUser):
    """The host's view of grants, rules and settings in the host database (``db_path=None``) or another."""

    def listing(self, queue_key: str | None = None, *, include_ended: bool = False) -> list[Grant]:
        """Grants, soonest ending first: live ones (by default), or every one ever made."""
        params: dict[str, Any] = {"now": utc_now()}
        where = [] if include_ended else ["g.revoked_at IS NULL AND g.ends_at > :now"]
        if queue_key is not None:
            params["queue_key"] = validate_queue_key(queue_key, "bottle")
            where.append("g.queue_key = :queue_key")
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        with self.db.read() as conn:
            rows = conn.execute(f"SELECT {GRANT_COLUMNS} FROM grants g{clause} ORDER BY g.ends_at, g.id",
                                params).fetchall()
        return [grant_from_row(row) for row in rows]

    def against_log(self, queue_key: str | None = None) -> RowsAgainstLog:
        """Where ``queue_key``'s (None: every bottle's) grant rows and the audit log disagree on what is in force
        now (``rows_against_log_in``): what every list shows, marked, beside ``listing``'s."""
        if queue_key is not None:
            validate_queue_key(queue_key, "bottle")
        with self.db.read() as conn:
            return rows_against_log_in(conn, queue_key, utc_now())

    def live(self, queue_key: str, tool: str) -> list[Grant]:
        """``queue_key``'s grants of ``tool`` in force now."""
        validate_queue_key(queue_key, "bottle")
        validate_tool(tool)
        with self.db.read() as conn:
            return live_grants_in(conn, queue_key, tool, utc_now())

    def for_proposal(self, proposal_id: str) -> Grant | None:
        """The grant ``proposal_id``'s approval made, or None (a rejection, or a report that names nothing)."""
        with self.db.read() as conn:
            row = conn.execute(f"SELECT {GRANT_COLUMNS} FROM grants g WHERE g.proposal_id = :id",
                               {"id": proposal_id}).fetchone()
        return None if row is None else grant_from_row(row)

    def find(self, prefix: str) -> Grant:
        """The one grant whose id starts with ``prefix`` (of rows sharing its id, one in force first); ``NotFound``
        or ``AmbiguousId``."""
        with self.db.read() as conn:
            return grant_from_row(one_by_id_prefix(conn, "grants", _GRANT_BY_ID, prefix, "grant", _LIVE))

    def revoke(self, prefix: str, reason: str, *, revoked_by: str) -> Grant:
        """End a live grant now, with the reason, and its ``grant-revoked`` audit entry; the revoked grant.

        A grant already revoked or ended is refused in one line, nothing written.
        """
        validate_text("reason", reason, max_bytes=MAX_TEXT_BYTES, required=True)
        with self.db.read() as conn:  # not under the write lock: a short id reads the log's months (0.18 s a million)
            grant = _named_grant(conn, prefix, utc_now())
        with AuditStore.recording(self.db) as log:
            now = utc_now()
            refusal = revocation_refusal(log.conn, grant, now)  # the log's word, not the row's (hostile review 57)
            if refusal is not None:
                raise AlreadyEnded(refusal)
            # What the approval entry its row claims made, where that is another grant (the row renamed: hostile
            # review 57), is revoked with it, or the grant the entry made was in force again once the row was put back.
            end_grants_in(log, claimed_grants_in(log.conn, grant, now), f"{reason} (revoked as grant {grant.short_id}, "
                          "whose row claims it)", revoked_by=revoked_by, now=now)
            return revoke_grant_in(log, grant, reason, revoked_by=revoked_by, now=now)

    def rules(self, *, include_ended: bool = False) -> list[Rule]:
        """Standing rules, newest first: those in force (by default), or every one ever made."""
        params = {"now": utc_now()}
        where = "" if include_ended else " WHERE r.revoked_at IS NULL AND (r.ends_at IS NULL OR r.ends_at > :now)"
        with self.db.read() as conn:
            rows = conn.execute(f"SELECT {RULE_COLUMNS} FROM rules r{where} ORDER BY r.created_at DESC, r.id",
                                params).fetchall()
        return [rule_from_row(row) for row in rows]

    def add_rule(self, **rule: Any) -> Rule:
        """Record a standing rule (see ``add_rule_in``: a rejecting one ends the grants it overlaps) in a
        transaction of its own."""
        with AuditStore.recording(self.db) as log:
            return add_rule_in(log, **rule)

    def ended_by(self, rule: Rule) -> list[Grant]:
        """The grants the standing rejection ``rule`` ended as it was made (``end_grants_rejected_in``)."""
        with self.db.read() as conn:
            return ended_by_rule_in(conn, rule.id, rule.audit_seq)

    def ended_by_decision(self, proposal_id: str) -> list[Grant]:
        """The grants ended by the standing rejection the decision on ``proposal_id`` made (``--remember``).

        The rule is the one the decision's own ``rule-added`` entry records, proven by this host's seal
        (``decision_rule_entry``), not a ``rules`` row naming the proposal, nor an earlier entry rewritten to
        name it: a sidecar can write either, to hide what was ended or to name what another rejection ended.
        """
        with self.db.read() as conn:
            found = decision_rule_entry(conn, proposal_id)
            return [] if found is None else ended_by_rule_in(conn, str(found[1]["id"]), found[0])

    def remembered_by_decision(self, proposal_id: str) -> dict[str, Any] | None:
        """The standing rule the decision on ``proposal_id`` made (``--remember``), as its own ``rule-added``
        entry records it (id, bottle or None for every bottle, effect, subject, ends_at), or None: the log's
        sealed word (``decision_rule_entry``), not a ``rules`` row or a rewritten entry a sidecar may have
        written naming the proposal (see ``ended_by_decision``)."""
        with self.db.read() as conn:
            found = decision_rule_entry(conn, proposal_id)
        return None if found is None else found[1]

    def find_rule(self, prefix: str) -> Rule:
        """The one rule whose id starts with ``prefix``; ``NotFound`` or ``AmbiguousId``."""
        with self.db.read() as conn:
            return rule_from_row(one_by_id_prefix(conn, "rules", _RULE_BY_ID, prefix, "rule"))

    def revoke_rule(self, prefix: str, reason: str, *, revoked_by: str) -> Rule:
        """End a rule now, with the reason and a ``rule-revoked`` entry; the grants it made stay (revoke those too)."""
        validate_text("reason", reason, max_bytes=MAX_TEXT_BYTES, required=True)
        with AuditStore.recording(self.db) as log:
            rule = rule_from_row(one_by_id_prefix(log.conn, "rules", _RULE_BY_ID, prefix, "rule"))
            if not rule.live(utc_now()):
                raise AlreadyEnded(f"rule {rule.short_id} is not in force (revoked or ended): nothing to revoke")
            return _revoke_rule_in(log, rule, reason, revoked_by)

    def revoke_kept_rule(self, rule: Rule, reason: str, *, revoked_by: str) -> Rule:
        """End ``rule``, a rule in force as the keeper decides (``standing.rules_in_force``: a proven row, or a
        standing rejection the audit log keeps whose row is missing, ended or changed): its ``rule-revoked``
        entry, which ends it as the log is read, and its rows, where there are any, marked revoked too.
        ``AlreadyEnded`` when, by the time this writes, a revocation the host sealed names it (another operator's
        at the same moment: ``sealed_rule_revocation``) or it has ended; nothing recorded."""
        validate_text("reason", reason, max_bytes=MAX_TEXT_BYTES, required=True)
        with AuditStore.recording(self.db) as log:
            # ``rule`` was read in force before this transaction: another operator may have revoked it since.
            earlier = sealed_rule_revocation(log.conn, rule.id)
            if earlier is not None:
                raise AlreadyEnded(f"rule {rule.short_id} was revoked already, at {earlier[2]} by {earlier[1]} "
                                   f"(audit entry {earlier[0]}): nothing to revoke")
            if isinstance(rule.ends_at, str) and rule.ends_at <= utc_now():
                raise AlreadyEnded(f"rule {rule.short_id} ended at {rule.ends_at}: nothing to revoke")
            return _revoke_rule_in(log, rule, reason, revoked_by)

    def pending_ttl(self) -> int:
        """How long a proposal filed now may wait for the operator, in seconds."""
        with self.db.read() as conn:
            return pending_ttl_in(conn)

    def set_pending_ttl(self, seconds: int, *, set_by: str) -> int:
        """Set ``pending-ttl`` (``ValidationError`` outside its bounds), with a ``setting-changed`` entry."""
        seconds = pending_ttl_seconds(seconds)
        with AuditStore.recording(self.db) as log:
            before = pending_ttl_in(log.conn)
            now = utc_now()
            entry = log.append(AuditEntry(
                queue_key=ALL_BOTTLES, action=ACTION_SETTING_CHANGED, actor=set_by, tool=SETTING_PENDING_TTL,
                notes=f"{spell_duration(before)} -> {spell_duration(seconds)}",
                details={"name": SETTING_PENDING_TTL, "before": before, "after": seconds}), ts=now)
            log.conn.execute(
                "INSERT INTO settings (name, value, set_at, set_by, audit_seq) VALUES (:name, :value, :now, :by, :seq) "
                "ON CONFLICT (name) DO UPDATE SET value = excluded.value, set_at = excluded.set_at, "
                "set_by = excluded.set_by, audit_seq = excluded.audit_seq",
                {"name": SETTING_PENDING_TTL, "value": str(seconds), "now": now, "by": set_by, "seq": entry.seq})
        return seconds


def _named_grant(conn: sqlite3.Connection, prefix: str, now: str) -> Grant:
    """The grant whose id starts with ``prefix``: its row, or the grant the log keeps by that id as its sealed
    approval records it (``rows_against_log_in``), even where a row matches: a sidecar ended the kept grant's row
    (or wrote one sharing its short id), and 'grants revoke' said "nothing to revoke" (review 59)."""
    try:  # validates the prefix (4-32 hex digits, upper case folded); of rows sharing an id, one in force first
        row: Grant | None = grant_from_row(one_by_id_prefix(conn, "grants", _GRANT_BY_ID, prefix, "grant", _LIVE))
    except NotFound:
        row = None  # the log may keep one by it (its row deleted)
    if row is not None and row.id == prefix.lower() and row.revoked_at is None and str(row.ends_at) > now \
            and row_proven(conn, row):
        return row  # a whole id naming a row in force that its sealed approval proves: no read of the log's months
    kept = {grant.id: grant for grant in rows_against_log_in(conn, None, now).kept
            if grant.id.startswith(prefix.lower())}
    if row is not None and row.id in kept:  # the log's word on it (its approval entry, its end), not the row's
        return kept[row.id]
    ids = sorted({*kept, *([] if row is None else [str(row.id)])})
    if len(ids) != 1:
        raise AmbiguousId(f"{prefix!r} matches several grants ({', '.join(ids[:8])}): give more digits") if ids \
            else NotFound(f"no grant id starts with {prefix!r}")
    return row if row is not None else kept[ids[0]]


def _revoke_rule_in(log: AuditRecorder, rule: Rule, reason: str, revoked_by: str) -> Rule:
    """``rule`` revoked now in ``log``'s transaction: its ``rule-revoked`` entry, and its row (if any) marked."""
    now = utc_now()
    entry = log.append(AuditEntry(
        queue_key=rule.queue_key or ALL_BOTTLES, action=ACTION_RULE_REVOKED, actor=revoked_by, tool=rule.tool,
        notes=reason, details={"rule": rule.id, "revoked_at": now}), ts=now)
    log.conn.execute(
        # A row already marked revoked (a sidecar can write one) keeps its mark: a row is revoked once, and the
        # entry is what the log's reading honours.
        "UPDATE rules SET revoked_at = :now, revoked_by = :by, revoke_reason = :reason, revoke_seq = :seq "
        "WHERE id = :id AND revoked_at IS NULL",
        {"now": now, "by": revoked_by, "reason": reason, "seq": entry.seq, "id": rule.id})
    return Rule(**{**rule.__dict__, "revoked_at": now, "revoked_by": revoked_by, "revoke_reason": reason,
                   "revoke_seq": entry.seq})
