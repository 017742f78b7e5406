"""The operator's side of the queue: deciding proposals and recording direct edits.

``decide`` enforces the queue's rules (docs/decisions.md) before anything is
written: rejecting needs a reason, modifying needs a final file its tool can
take (``policy.routes.validate_final_file``), the report-only
tools (gitleaks-allow, egress-token-allow) cannot be modified and need a
reason to approve, and the first decision wins. The response and its audit
entry, with a unified diff of what the decision lets through, commit in one
transaction.
"""

from __future__ import annotations

import getpass
import os
import secrets
import socket
from collections.abc import Mapping, Sequence
from typing import Any

from bot_bottle.audit.routes_approved import hold_routes_read
from bot_bottle.audit.rule_proofs import rejecting_rule
from bot_bottle.audit_store import AuditRecorder, AuditStore
from bot_bottle.errors import AlreadyDecided, AnchorNotWritten, AuditTampered, ProposalExpired, ValidationError
from bot_bottle.grant_records import Grant, grant_record
from bot_bottle.grants import add_rule_in, end_replaced_routes_in, insert_grant_in
from bot_bottle.policy.lifetimes import MAX_REJECT_RULE_SECONDS, grant_seconds
from bot_bottle.policy.routes import validate_final_file
from bot_bottle.policy.subjects import subject_of
from bot_bottle.queue_reads import PROPOSAL_COLUMNS, WELL_FORMED, decided_on, expired_response
from bot_bottle.queue_store import QueueStore
from bot_bottle.records import (
    ACTION_EXPIRED,
    ACTION_OPERATOR_EDIT,
    EFFECT_APPROVE,
    EFFECT_REJECT,
    MAX_FILE_BYTES,
    MAX_NAME_BYTES,
    MAX_TEXT_BYTES,
    REMEMBER_BOTTLE,
    RESPONSE_STATUSES,
    STATUS_APPROVED,
    STATUS_MODIFIED,
    STATUS_REJECTED,
    AuditEntry,
    Decision,
    Proposal,
    Response,
    sha256_text,
    validate_proposal_id,
    validate_queue_key,
    validate_text,
)
from bot_bottle.text.diffs import render_diff
from bot_bottle.timestamps import later, spell_duration, utc_now


def default_decider() -> str:
    """``user@host`` of whoever runs this process."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = f"uid{os.getuid()}"
    return f"{user}@{socket.gethostname()}"


def check_decision(proposal: Proposal, decision: Decision) -> None:
    """Raise ``ValidationError`` if ``decision`` is not allowed on ``proposal`` (the queue's rules)."""
    status, notes, final_file = decision.status, decision.notes, decision.final_file
    if status == STATUS_REJECTED and not notes.strip():
        raise ValidationError("notes", "rejecting a proposal needs a reason")
    if status == STATUS_MODIFIED:
        if proposal.report_only:
            raise ValidationError(
                "status",
                f"{proposal.tool} proposals are report-only: approve them with a reason or reject them",
            )
        if final_file is None or not final_file.strip():
            raise ValidationError("final_file", "modifying a proposal needs the final file")
        if final_file == proposal.payload:
            raise ValidationError("final_file", "is the same as the proposal: approve it instead")
        validate_final_file(proposal.tool, final_file)
    elif final_file is not None:
        raise ValidationError("final_file", f"is only given when modifying, not when the decision is {status}")
    if status == STATUS_APPROVED and proposal.report_only and not notes.strip():
        raise ValidationError("notes", f"{proposal.tool} is report-only: approving it needs a reason")


def decision_diff(proposal: Proposal, status: str, final_file: str | None, *, before_name: str = "current") -> str:
    """The diff the audit entry records: current file against what was proposed or finally approved.

    Report-only tools carry a report rather than a file, so their diff is empty
    and the (already redacted) report is kept in the entry's details instead.
    ``before_name`` names the file the diff starts from in its ``---`` line
    (a screen that reads it from another file than the sidecar's names that one).
    """
    if proposal.report_only:
        return ""
    after = final_file if status == STATUS_MODIFIED and final_file is not None else proposal.payload
    return render_diff(proposal.current_file or "", after, before_name=before_name,
                       after_name="final" if status == STATUS_MODIFIED else "proposed")


def _details(proposal: Proposal, final_file: str | None) -> dict[str, Any]:
    details: dict[str, Any] = {
        "justification": proposal.justification,
        "payload_sha256": sha256_text(proposal.payload),
        "current_file_hash": proposal.current_file_hash,
        "created_at": proposal.created_at,
    }
    if final_file is not None:
        details["final_file_sha256"] = sha256_text(final_file)
    if proposal.report_only:
        details["report"] = proposal.payload
    return details


def describe_decision(proposal: Proposal, decision: Decision) -> tuple[str, dict[str, Any]]:
    """Hold ``decision`` to the queue's rules for ``proposal``; the diff and details its audit entry records.

    What ``record_decision_in`` calls on the proposal it read inside
    the deciding transaction. Raises ``ValidationError`` for a decision the
    rules do not allow.
    """
    check_decision(proposal, decision)
    return decision_diff(proposal, decision.status, decision.final_file), _details(proposal, decision.final_file)


def decide(
    proposal_id: str,
    status: str,
    notes: str = "",
    final_file: str | None = None,
    decided_by: str | None = None,
    db_path: str | os.PathLike[str] | None = None,
    *,
    store: QueueStore | None = None,
    shown: Proposal | None = None,
    grant_for: int | None = None,
    remember: str | None = None,
    read: str | None = None,
    replaced: dict[str, tuple[Grant, ...]] | None = None,
) -> Response:
    """Decide a proposal: write its response and audit entry (and a grant, and a rule) in one transaction.

    ``proposal_id`` is the whole id. Uses ``store`` if given, else opens the
    database at ``db_path`` (``None``: the host's). Raises
    ``ValidationError`` for a decision the rules do not allow, ``NotFound``
    for an unknown id and ``AlreadyDecided`` when someone decided first.
    ``shown`` is the proposal as the operator saw it: the decision is
    recorded only if the stored proposal is still exactly that, checked in
    the deciding transaction (``AuditTampered`` otherwise). Without it, the
    proposal as read there is the one held. ``grant_for`` (seconds) is how
    long an approval's grant lasts (default: the tool's); ``remember``
    (``bottle`` or ``all``) makes the decision a standing rule too; ``read``, what the screen read a routes
    file against (``RoutesBase.digest``), held to what the transaction reads (``record_decisions``);
    ``replaced``, given, is filled with the routes grants the decision ended (``record_decisions``).
    """
    decision = Decision(status, notes, final_file, default_decider() if decided_by is None else decided_by,
                        grant_seconds=grant_for, remember=remember)
    queue = store if store is not None else QueueStore(db_path)
    try:
        held = shown if shown is not None and shown.id == proposal_id else None
        try:
            (response,) = record_decisions(queue, [(proposal_id, decision, held)],
                                           None if read is None else {proposal_id: read}, replaced)
        except AnchorNotWritten as exc:  # the one decision stands: the caller is given it, as decide returns it
            responses = exc.result if isinstance(exc.result, list) else []
            raise AnchorNotWritten(str(exc), responses[0] if responses else None) from None
        return response
    finally:
        if store is None:
            queue.close()


def record_decisions(
    store: QueueStore, asked: Sequence[tuple[str, Decision, Proposal | None]], read: Mapping[str, str] | None = None,
    replaced: dict[str, tuple[Grant, ...]] | None = None,
) -> list[Response]:
    """Record each ``(proposal_id, decision, shown)`` in order, in one transaction: all of them, or none.

    Each proposal is validated and read inside the transaction. With
    ``shown`` (the proposal as the operator saw it), a stored proposal that
    differs from it is refused with ``AuditTampered``: proposals are
    immutable, so it was rewritten in the file, and the decision would record
    something the operator never saw. ``read`` (by proposal id): what each routes file was shown read against
    (``RoutesBase.digest``); one approved meanwhile changes it (``ReadChanged``). Any refusal (this, or one of
    ``record_decision_in``'s) records none of them: a command that names
    several proposals never stops half way. Several decisions share one
    commit, one anchor move and one wake-up (``proposals approve ID ID...``;
    docs/benchmarks.md, "One commit for several decisions"). An anchor that
    could not be written after the commit raises ``AnchorNotWritten``
    carrying the list of responses, which stand. ``replaced``, given, is filled by proposal id with the routes
    grants each decision ended (``record_replacing_in``): the routes files it replaced, to be named.
    """
    for proposal_id, _, _ in asked:
        validate_proposal_id(proposal_id)
    recorded: list[Response] = []
    try:
        with AuditStore.recording(store.db) as log:
            held = [store.get_in(log.conn, proposal_id) for proposal_id, _, _ in asked]
            for proposal, (proposal_id, _, shown) in zip(held, asked, strict=True):
                if shown is not None and decided_on(proposal) != decided_on(shown):
                    raise AuditTampered(
                        f"proposal {proposal.short_id} is not what was shown: it was rewritten in the database "
                        "after it was read (proposals are immutable); nothing recorded. Check 'bot-bottle audit "
                        "verify'")
                if read is not None and proposal_id in read:  # all before any is recorded: one command's own
                    hold_routes_read(log.conn, proposal, read[proposal_id])  # approvals change no reading
            for proposal, (_, decision, _) in zip(held, asked, strict=True):
                response, ended = record_replacing_in(log, proposal, decision)
                recorded.append(response)
                if replaced is not None:
                    replaced[proposal.id] = ended
    except AnchorNotWritten as exc:  # committed: the decisions stand, and the caller can say which
        raise AnchorNotWritten(str(exc), recorded) from None
    return recorded


def expired(proposal: Proposal, at: str) -> ProposalExpired:
    """The refusal of a decision on ``proposal``, which expired ``at`` (its end, or when it was closed)."""
    return ProposalExpired(f"proposal {proposal.short_id} expired at {at}: nobody decided in time, so it can no "
                           "longer be decided; nothing recorded (the agent files it again to ask again)")


def record_decision_in(
    log: AuditRecorder, proposal: Proposal, decision: Decision, *, rule_id: str | None = None,
    replaced: list[Grant] | None = None,
) -> tuple[Response, AuditEntry]:
    """Record ``decision`` on ``proposal`` inside ``log``'s transaction; the first decision wins.

    The decision is held to the queue's rules first (``check_decision``:
    ``ValidationError``). A proposal decided already raises
    ``AlreadyDecided`` (who decided what, and when); one past its end,
    ``ProposalExpired``. An approval makes a grant of what the operator saw
    (the payload, or the modification), ending after ``decision.grant_seconds``
    or the tool's default, within its maximum; ``decision.remember`` adds a
    standing rule for the same subject. ``rule_id`` names the rule deciding
    in the operator's place. The response, the entry, the grant and the rule
    commit together or not at all. ``replaced``, given, receives the routes
    grants an approved routes file ended (``grants.end_replaced_routes_in``).
    """
    now = utc_now()
    diff, details = describe_decision(proposal, decision)
    earlier = QueueStore.response_in(log.conn, proposal.id)
    if earlier is not None:
        raise AlreadyDecided(f"proposal {proposal.short_id} was already {earlier.status} by {earlier.decided_by} "
                             f"at {earlier.decided_at}; the first decision stands")
    _refuse_logged_decision(log, proposal)
    if proposal.expires_at is not None and proposal.expires_at <= now:
        raise expired(proposal, proposal.expires_at)
    granted = decision.status in (STATUS_APPROVED, STATUS_MODIFIED)
    subject: dict[str, Any] | None = None
    if granted or decision.remember is not None:
        shown_file = decision.final_file if decision.status == STATUS_MODIFIED else proposal.payload
        try:
            subject = subject_of(proposal.tool, shown_file or proposal.payload)
        except ValidationError as exc:
            # A report this version cannot read (filed by an older sidecar): the approval answers the waiting
            # caller only; nothing stands for later, so asking for a grant's time or a rule is refused.
            if decision.grant_seconds is not None or decision.remember is not None:
                raise ValidationError("for" if decision.remember is None else "remember",
                                      f"this proposal does not say what it would grant ({exc}): decide it "
                                      "once, with no length and no rule") from None
            details["grant"] = None
    if granted and subject is not None and rule_id is None:  # the operator's approval: a rejection stands first
        _refuse_rejected(log, proposal, subject, now)
    grant_id, ends_at = secrets.token_hex(16), ""
    if granted and subject is not None:
        ends_at = later(now, grant_seconds(proposal.tool, decision.grant_seconds))
        details["grant"] = grant_record(grant_id, proposal.tool, subject, now, ends_at, rule_id)
    if rule_id is not None:
        details["rule_id"] = rule_id
    response = Response(proposal.id, decision.status, decision.notes, decision.final_file, decision.decided_by, now)
    # The entry records the response whole, so audit verify can hold one against the other.
    details["decided_at"] = now
    log.conn.execute(
        "INSERT INTO responses (proposal_id, status, notes, final_file, decided_by, decided_at) "
        "VALUES (:proposal_id, :status, :notes, :final_file, :decided_by, :decided_at)", response.to_dict())
    entry = log.append(AuditEntry(
        queue_key=proposal.queue_key, action=decision.status, actor=decision.decided_by, tool=proposal.tool,
        proposal_id=proposal.id, notes=decision.notes, diff=diff, details=details), ts=now)
    assert entry.seq is not None
    if granted and subject is not None:
        insert_grant_in(log, proposal, subject, grant_id=grant_id, starts_at=now, ends_at=ends_at,
                        decided_by=decision.decided_by, audit_seq=entry.seq, rule_id=rule_id)
        ended = end_replaced_routes_in(log, proposal, grant_id, decided_by=decision.decided_by, now=now)
        if replaced is not None:
            replaced.extend(ended)
    if decision.remember is not None and subject is not None:
        _remember(log, proposal, decision, subject, ends_at or None, now)
    return response, entry


def record_replacing_in(log: AuditRecorder, proposal: Proposal,
                        decision: Decision) -> tuple[Response, tuple[Grant, ...]]:
    """``record_decision_in``, and the routes grants of ``proposal``'s bottle it ended: the files an approved (or
    modified) routes file replaced, as the decision revoked them in its transaction. Only an approval replaces a
    file: a standing rejection of the file in force ends its grant as what it rejects."""
    ended: list[Grant] = []
    response, _ = record_decision_in(log, proposal, decision, replaced=ended)
    return response, tuple(ended)


_DECISION_ACTIONS = ", ".join(f"'{status}'" for status in RESPONSE_STATUSES)  # the entries a decision writes


def _refuse_logged_decision(log: AuditRecorder, proposal: Proposal) -> None:
    """Refuse ``proposal`` when the audit log records a decision of it although it has no response: a sidecar on
    the mount deleted the row (past the file's triggers), and its proposal read as pending again. Deciding it
    again put two decisions of one proposal in the log, and the screens named the first decision's rule (an
    old standing rejection, to revoke) as the one the second made. One look through the log's proposal index."""
    found = log.conn.execute(f"SELECT seq, action, actor, ts FROM audit_log WHERE proposal_id = :id AND action IN "
                             f"({_DECISION_ACTIONS}) ORDER BY seq LIMIT 1", {"id": proposal.id}).fetchone()
    if found is not None:
        raise AlreadyDecided(f"proposal {proposal.short_id} was already {found[1]} by {found[2]} at {found[3]} "
                             f"(audit entry {found[0]}), but its response is gone: it was removed from the database. "
                             "The first decision stands; check 'bot-bottle audit verify'")


def _refuse_rejected(log: AuditRecorder, proposal: Proposal, subject: dict[str, Any], now: str) -> None:
    """Refuse an operator's approval (or modification) of ``proposal`` granting ``subject`` where a standing
    rejection the audit log proves rejects it (``audit.rule_proofs.rejecting_rule``): the rule decides it at the next
    look. A sidecar on the mount files without the key, so the rule had not looked yet, and 'proposals approve ID'
    (or a second operator's page, read before the rule was made) made a grant that outlived "never this"."""
    rule = rejecting_rule(log.conn, proposal.queue_key, proposal.tool, subject, now)
    if rule is not None:
        whose = "every bottle" if rule.queue_key is None else rule.queue_key
        why = rule.notes or "always reject"
        # Refused as one decided first: the rule's answer is the first, whenever it is recorded.
        raise AlreadyDecided(f"rule {rule.short_id} rejects this for {whose} from now on ({why}): nothing recorded, "
                             f"and the next look lets it reject {proposal.short_id}; to approve it, 'rules revoke "
                             f"{rule.short_id}' first")


def _remember(log: AuditRecorder, proposal: Proposal, decision: Decision, subject: dict[str, Any],
              grant_ends: str | None, now: str) -> None:
    """The standing rule a decision ``--remember``s: the same answer for the same subject, until the grant's end."""
    approve = decision.status in (STATUS_APPROVED, STATUS_MODIFIED)
    if approve:
        ends_at: str | None = grant_ends
    elif decision.grant_seconds is None:
        ends_at = None  # "always reject this"
    elif decision.grant_seconds > MAX_REJECT_RULE_SECONDS:
        raise ValidationError("for", f"a standing rejection may last at most {spell_duration(MAX_REJECT_RULE_SECONDS)}"
                              " or stand for good (give no length)")
    else:
        ends_at = later(now, decision.grant_seconds)
    add_rule_in(log, queue_key=proposal.queue_key if decision.remember == REMEMBER_BOTTLE else None,
                tool=proposal.tool, subject=subject, pattern=False,
                effect=EFFECT_APPROVE if approve else EFFECT_REJECT, notes=decision.notes or decision.status,
                ends_at=ends_at, created_by=decision.decided_by, proposal_id=proposal.id, now=now)


def expire_in(log: AuditRecorder, now: str) -> int:
    """Close every proposal still pending past its end, in ``log``'s transaction: how many.

    Each gets an ``expired`` response and audit entry and is archived, so
    the same request filed again asks the operator again.
    """
    rows = log.conn.execute(
        f"SELECT {PROPOSAL_COLUMNS} FROM proposals p WHERE {WELL_FORMED} AND p.archived_at IS NULL "
        "AND p.expires_at <= :now "
        "AND NOT EXISTS (SELECT 1 FROM responses r WHERE r.proposal_id = p.id) ORDER BY p.expires_at",
        {"now": now},
    ).fetchall()
    for row in rows:
        proposal = QueueStore.proposal_from_row(row)
        assert proposal.expires_at is not None
        response = expired_response(proposal.id, proposal.expires_at)
        response = Response(**{**response.to_dict(), "decided_at": now})
        log.conn.execute(
            "INSERT INTO responses (proposal_id, status, notes, final_file, decided_by, decided_at) "
            "VALUES (:proposal_id, :status, :notes, :final_file, :decided_by, :decided_at)", response.to_dict())
        log.append(AuditEntry(
            queue_key=proposal.queue_key, action=ACTION_EXPIRED, actor=response.decided_by, tool=proposal.tool,
            proposal_id=proposal.id, notes=response.notes,
            details={**_details(proposal, None), "expires_at": proposal.expires_at, "decided_at": now}), ts=now)
        log.conn.execute("UPDATE proposals SET archived_at = :now WHERE id = :id", {"now": now, "id": proposal.id})
    return len(rows)


def expired_due(store: QueueStore, now: str) -> bool:
    """Whether any pending proposal is past its end (one indexed read: the write is taken only when one is)."""
    with store.db.read() as conn:
        return conn.execute(
            f"SELECT 1 FROM proposals p WHERE {WELL_FORMED} AND p.archived_at IS NULL AND p.expires_at <= :now "
            "AND NOT EXISTS (SELECT 1 FROM responses r WHERE r.proposal_id = p.id) LIMIT 1", {"now": now},
        ).fetchone() is not None


def operator_edit(
    queue_key: str,
    component: str,
    before: str,
    after: str,
    notes: str,
    *,
    actor: str | None = None,
    db_path: str | os.PathLike[str] | None = None,
    store: AuditStore | None = None,
) -> AuditEntry:
    """Record an operator's direct edit of a bottle's ``component`` (a routes file, ...) in the audit log."""
    validate_queue_key(queue_key)
    validate_text("component", component, max_bytes=MAX_NAME_BYTES, required=True)
    validate_text("before", before, max_bytes=MAX_FILE_BYTES)
    validate_text("after", after, max_bytes=MAX_FILE_BYTES)
    validate_text("notes", notes, max_bytes=MAX_TEXT_BYTES)
    who = default_decider() if actor is None else actor
    entry = AuditEntry(
        queue_key=queue_key,
        action=ACTION_OPERATOR_EDIT,
        actor=who,
        tool=component,
        notes=notes,
        diff=render_diff(before, after, before_name="before", after_name="after"),
        details={"before_sha256": sha256_text(before), "after_sha256": sha256_text(after)},
    )
    audit = store if store is not None else AuditStore(db_path)
    try:
        return audit.append(entry)
    finally:
        if store is None:
            audit.close()
