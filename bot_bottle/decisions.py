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

import difflib
import getpass
import os
import socket
from typing import Any

from bot_bottle.audit_store import AuditStore
from bot_bottle.errors import ValidationError
from bot_bottle.policy.routes import validate_final_file
from bot_bottle.queue_store import QueueStore
from bot_bottle.records import (
    ACTION_OPERATOR_EDIT,
    MAX_FILE_BYTES,
    MAX_NAME_BYTES,
    MAX_TEXT_BYTES,
    STATUS_APPROVED,
    STATUS_MODIFIED,
    STATUS_REJECTED,
    AuditEntry,
    Decision,
    Proposal,
    Response,
    canonical_json,
    sha256_text,
    validate_queue_key,
    validate_text,
)


def default_decider() -> str:
    """``user@host`` of whoever runs this process."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = f"uid{os.getuid()}"
    return f"{user}@{socket.gethostname()}"


def render_diff(before: str, after: str, *, before_name: str = "current", after_name: str = "proposed") -> str:
    """A unified diff of two texts ('' when they are equal), as the CLI, TUI and audit log show it."""
    lines = difflib.unified_diff(_lines(before), _lines(after), before_name, after_name)
    # A last line without a newline would run into the next diff line.
    return "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines)


def _lines(text: str) -> list[str]:
    """``text`` split after each newline, and only there.

    ``str.splitlines`` also splits on form feed, U+2028, a lone CR and more: a
    diff built on it would show one line of the file as two, each with its
    own ``+``, and hide the character that joined them.
    """
    parts = text.split("\n")
    return [part + "\n" for part in parts[:-1]] + ([parts[-1]] if parts[-1] else [])


def shown_digest(proposal: Proposal) -> str:
    """The digest of a proposal as a screen shows it: every field but its archiving (as a decision holds it).

    ``proposals show`` prints it and ``approve --digest`` takes it back, the
    dashboard's forms carry it: a decision is recorded only for a proposal
    that still has it, so one rewritten in the file since it was shown is
    refused.
    """
    return sha256_text(canonical_json({**proposal.to_dict(), "archived_at": None}))


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
        raise ValidationError("notes", f"approving a {proposal.tool} proposal needs a reason")


def decision_diff(proposal: Proposal, status: str, final_file: str | None) -> str:
    """The diff the audit entry records: current file against what was proposed or finally approved.

    Report-only tools carry a report rather than a file, so their diff is empty
    and the (already redacted) report is kept in the entry's details instead.
    """
    if proposal.report_only:
        return ""
    after = final_file if status == STATUS_MODIFIED and final_file is not None else proposal.payload
    return render_diff(
        proposal.current_file or "", after, after_name="final" if status == STATUS_MODIFIED else "proposed"
    )


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

    What ``QueueStore.record_decision`` calls on the proposal it read inside
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
) -> Response:
    """Decide a proposal: write its response and audit entry in one transaction.

    ``proposal_id`` is the whole id. Uses ``store`` if given, else opens the
    database at ``db_path`` (``None``: the host's). Raises
    ``ValidationError`` for a decision the rules do not allow, ``NotFound``
    for an unknown id and ``AlreadyDecided`` when someone decided first.
    ``shown`` is the proposal as the operator saw it: the decision is
    recorded only if the stored proposal is still exactly that, checked in
    the deciding transaction (``AuditTampered`` otherwise). Without it, the
    proposal as read there is the one held.
    """
    decision = Decision(status, notes, final_file, default_decider() if decided_by is None else decided_by)
    queue = store if store is not None else QueueStore(db_path)
    try:
        held = shown if shown is not None and shown.id == proposal_id else None
        response, _ = queue.record_decision(proposal_id, decision, describe=describe_decision, shown=held)
        return response
    finally:
        if store is None:
            queue.close()


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
