"""The routes file a bottle is launched with, recorded by the host: what its first routes proposal is read against.

An ``egress-block`` proposal is read against the last routes file approved
for its bottle (``audit.routes_approved``). Before one was, the host had
none, and the current file the sidecar sent was its word alone: a sidecar
that sent its payload as its current file had a host it adds read as
"unchanged". Such a proposal is now read against none, every host new, and
the screens say why; ``bot-bottle prepare --routes-file FILE`` gives the host
the file the bottle is launched with, so that its first proposal reads
against that instead.

The file is recorded as what it is, the operator's approval of a routes file
for the bottle: a proposal of the bottle's, filed and approved in one
transaction. So it is the same row, sealed entry and grant as any approval,
every reading of the log holds it the same way, and it ends the bottle's
earlier routes grants, as approving any routes file does.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import stat
from dataclasses import dataclass
from pathlib import Path

from bot_bottle.audit.chain import SELECT
from bot_bottle.audit.grant_entries import ROUTES_APPROVED, recorded_grant_id, revocations_of
from bot_bottle.audit.host_seal import host_sealing
from bot_bottle.audit.routes_approved import answered_digest, decision_sealed, is_last_approved
from bot_bottle.audit.rule_proofs import rejecting_rule
from bot_bottle.audit.seal import key_path
from bot_bottle.audit.walk import last_seq
from bot_bottle.audit.whole import sealed_in_order
from bot_bottle.audit_store import AuditRecorder
from bot_bottle.cli.grants_cmds import replaced_json, replaced_lines
from bot_bottle.decisions import decide, default_decider, record_replacing_in
from bot_bottle.errors import ValidationError
from bot_bottle.grant_records import Grant
from bot_bottle.policy.approval import approval_of
from bot_bottle.policy.subjects import subject_of
from bot_bottle.queue_store import QueueStore
from bot_bottle.records import (
    ACTION_GRANT_REVOKED,
    MAX_PAYLOAD_BYTES,
    SHORT_ID_LENGTH,
    STATUS_APPROVED,
    STATUS_MODIFIED,
    STATUS_REJECTED,
    TOOL_EGRESS_BLOCK,
    Decision,
    Proposal,
    Response,
    sha256_text,
    validate_text,
)
from bot_bottle.timestamps import utc_now

# What the recorded proposal says in place of an agent's justification, and its decision's notes, by the command
# that recorded it: 'bottles routes' is not a launch, and its audit entry said 'recorded at launch (bot-bottle
# prepare --routes-file)'.
LAUNCH_JUSTIFICATION = "the routes file this bottle is launched with, recorded by 'bot-bottle prepare --routes-file'"
LAUNCH_NOTES = "recorded at launch (bot-bottle prepare --routes-file)"
RUNNING_JUSTIFICATION = "the routes file this bottle runs with, recorded by 'bot-bottle bottles routes'"
RUNNING_NOTES = "recorded as the file it runs with (bot-bottle bottles routes)"
# The answers on a routes file: what decides whether the newest one on the launch file is a rejection.
_ANSWERS = frozenset({STATUS_APPROVED, STATUS_MODIFIED, STATUS_REJECTED})


@dataclass(frozen=True)
class LaunchRoutes:
    """A bottle's launch routes file as recorded: its proposal, whether this call approved it (False: it was the
    bottle's approved routes file already, its grant in force), and the routes grants recording it ended (the
    files it replaced, as approving any routes file ends the others)."""

    proposal: Proposal
    recorded: bool
    replaced: tuple[Grant, ...] = ()


    def granted(self) -> list[str]:
        """What the recorded file lets the bottle reach, one item a line, as a screen reads a routes file with none
        on record (every host), then each caution as a ``WARNING:`` line. The command read the file, not the
        operator, and it often lives in the agent's checkout: said after recording, so that a file swapped
        before the command ran is seen (hostile review 54)."""
        approval = approval_of(TOOL_EGRESS_BLOCK, self.proposal.payload)
        return [*approval.grants, *(f"WARNING: {caution.kind}: {caution.text}" for caution in approval.cautions),
                *replaced_lines(self.replaced)]

    def to_json(self, path: Path) -> dict[str, object]:
        """The record as ``--json`` gives it: the file's path, its proposal, whether this call recorded it, and
        what it grants (``granted``'s items, its cautions apart)."""
        approval = approval_of(TOOL_EGRESS_BLOCK, self.proposal.payload)
        return {"path": str(path), "proposal": self.proposal.id, "recorded": self.recorded,
                "grants": list(approval.grants),
                "warnings": [{"kind": caution.kind, "text": caution.text} for caution in approval.cautions],
                "replaced": replaced_json(self.replaced)}


def read_routes_file(path: Path) -> str:
    """The text of the routes file at ``path`` as the sidecar reads it (``sidecar.mcp``: UTF-8 in text mode, so
    CRLF and CR end lines as LF); ``ValidationError`` (field ``routes_file``) where it cannot be read, is not a
    regular file, is not UTF-8, or is longer than a proposal's payload may be.

    The file often lives in a checkout the bottle's agent writes: opened
    without blocking and held to a regular file before a byte is read (a
    FIFO hung prepare for ever), and read no further than the limit (a whole
    read of ``/dev/zero`` or a sparse file of gigabytes took the host's
    memory; tests/attacks/test_launch_routes_files.py). Its text is written
    into the database every sidecar on the mount reads: a symbolic link
    there (the agent's to make) to the host's audit key put the key in the
    sidecar's hands, and with it every seal. So the file named is never a
    link, and never the key (by its inode, however it is reached).
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_NOFOLLOW)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ValidationError("routes_file", f"cannot read {path}: it is a symbolic link; name the file it "
                                  "points to") from None
        raise ValidationError("routes_file", f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):  # before a file object: open() refuses a directory itself
            raise ValidationError("routes_file", f"cannot read {path}: not a regular file")
        if _is_audit_key(info):
            raise ValidationError("routes_file", f"cannot read {path}: it is this host's audit key")
        with os.fdopen(os.dup(fd), "rb") as handle:
            data = handle.read(MAX_PAYLOAD_BYTES + 1)
    except OSError as exc:
        raise ValidationError("routes_file", f"cannot read {path}: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    if len(data) > MAX_PAYLOAD_BYTES:
        raise ValidationError("routes_file", f"{path} is longer than a routes file may be ({MAX_PAYLOAD_BYTES} "
                              "bytes)")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ValidationError("routes_file", f"{path} is not UTF-8 text") from None
    # The sidecar's reading (Path.read_text: universal newlines): recorded as the bytes are, a CRLF file was text
    # no sidecar sends, and every honest routes proposal of the bottle read as drifted, every host new.
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    validate_text("routes_file", text, max_bytes=MAX_PAYLOAD_BYTES, required=True)
    return text


def _is_audit_key(info: os.stat_result) -> bool:
    """Whether ``info`` (an open file's) is the host's audit key, ``audit.seal.key_path``."""
    try:
        key = key_path().stat()
    except OSError:  # none yet (or unreadable): nothing to give away by that name
        return False
    return (key.st_dev, key.st_ino) == (info.st_dev, info.st_ino)


def record_launch_routes(store: QueueStore, bottle: str, text: str, decided_by: str | None = None,
                         checked: int | None = None, *, running: bool = False) -> LaunchRoutes:
    """Record ``text`` as the routes file ``bottle`` is launched with: filed for it and approved by ``decided_by``
    (default: this user) in one transaction, unless it already is the bottle's approved routes file.

    The same file waiting, filed by the bottle's sidecar, is approved as it
    was shown to be. ``ValidationError`` where the file cannot be recorded
    (rejected for the bottle, approved only as the operator modified it, or
    an answer found that the host's seal does not prove), and nothing is
    written. ``running``: recorded for a bottle already running ('bottles
    routes'), and so said in its justification and its decision's notes.
    """
    justification, notes = (RUNNING_JUSTIFICATION, RUNNING_NOTES) if running else (LAUNCH_JUSTIFICATION, LAUNCH_NOTES)
    decision = Decision(STATUS_APPROVED, notes, None, default_decider() if decided_by is None else decided_by)
    approved: list[Proposal] = []
    # 'bottles routes' asked nothing first: a file a standing rule rejects was refused from inside the decision,
    # exit 1, naming a proposal the rollback took back. Asked here for every caller, and again in the filing
    # transaction, so an answer recorded between the two is held too.
    # ``checked``: what a check just made returned (prepare's, before it prepares): the log it held to the seal
    # is not walked again, a second 2.9 s at a million entries; the entries since are, in the transaction.
    proven = check_launch_routes(store, bottle, text) if checked is None else checked

    replaced: list[Grant] = []

    def approve(log: AuditRecorder, proposal: Proposal) -> None:
        _refuse_in(log.conn, bottle, text, utc_now(), proven)  # the entries since the check: under the write lock
        replaced.extend(record_replacing_in(log, proposal, decision)[1])  # in the same transaction: no one else's
        approved.append(proposal)

    proposal = store.submit(bottle, TOOL_EGRESS_BLOCK, text, justification, quota=None, standing=approve)
    if approved:
        return LaunchRoutes(proposal, True, tuple(replaced))
    response = store.response(proposal.id)
    if response is None:  # the same file, filed by the bottle's sidecar and waiting: approved as it was read
        ended: dict[str, tuple[Grant, ...]] = {}
        decide(proposal.id, STATUS_APPROVED, notes, decided_by=decision.decided_by, store=store,
               shown=proposal, replaced=ended)
        return LaunchRoutes(proposal, True, ended.get(proposal.id, ()))
    with store.db.read() as conn:
        _hold(conn, proposal, response, bottle, text)
    return LaunchRoutes(proposal, False)  # approved, its grant in force: no other routes file was approved since


def check_launch_routes(store: QueueStore, bottle: str, text: str) -> int:
    """Refuse ``text`` as ``record_launch_routes`` would (``ValidationError``), from the database as it reads now
    and writing nothing: prepare asks before it prepares anything. Its refusals came after the bottle was
    recorded as prepared (and for the relay, its token minted again, the running sidecar's ended), under a
    message that said nothing was recorded (tests/attacks/test_launch_routes_files.py). Returns the last audit
    entry its look held to the seal (0: none), which a later look need not walk again. That is 0 too where it
    found the file approved and its grant in force: the filing then walks the whole log, so a revocation of that
    grant recorded between the two is seen (tests/attacks/test_launch_routes_refusals.py); where it found the
    approval by the log alone, the filing walks the whole log again on a revocation of the bottle's routes grant
    since (``_sealed_rejection``)."""
    now = utc_now()
    with store.db.read() as conn:
        found = store.still_answering_in(conn, bottle, TOOL_EGRESS_BLOCK, text, sha256_text(text), now)
        response = None if found is None else store.response_in(conn, found.id)
        if found is not None and response is not None:
            _hold(conn, found, response, bottle, text)
            return 0
        return _refuse_in(conn, bottle, text, now)


def _rejected(conn: sqlite3.Connection, bottle: str, text: str, proposal_id: str, actor: str,
              at: str) -> ValidationError:
    """The refusal of a file rejected for ``bottle``, in one set of words whether the rejection was found in the
    sealed log or on a proposal still waiting for its agent: the latter said only "that answer stands", not how
    the operator lifts it. Where a standing rule rejects the file too (a rejection --remember'ed), it is named:
    "approve the file when the bottle proposes it again" alone sent the operator to an approval the rule refuses
    (the proposal is rejected by the rule at once, and approving it is refused naming the rule)."""
    rule = rejecting_rule(conn, bottle, TOOL_EGRESS_BLOCK, subject_of(TOOL_EGRESS_BLOCK, text), utc_now())
    lift = ("until you approve the file when the bottle proposes it again" if rule is None else
            f"and rule {rule.short_id} rejects it from now on: 'bot-bottle rules revoke {rule.short_id}', then "
            "approving the file when the bottle proposes it again, lifts them")
    return ValidationError("routes_file", f"this file was rejected for {bottle} (proposal "
                           f"{proposal_id[:SHORT_ID_LENGTH]}, by {actor} at {at}) and that answer stands {lift}; "
                           "nothing recorded")


def _refuse_in(conn: sqlite3.Connection, bottle: str, text: str, now: str, proven: int = 0) -> int:
    """Refuse ``text`` (``ValidationError``) where the host's sealed log holds a rejection of it for ``bottle``
    as its last answer on that file, or a standing rule rejects it: what approving it now would override.
    Entries up to ``proven`` were walked by a look that found no such rejection; returns the last one walked."""
    rejected, walked = _sealed_rejection(conn, bottle, text, proven)
    if rejected is not None:
        raise _rejected(conn, bottle, text, *rejected)
    # Filed or approved now, the operator's approval: a standing rejection the log proves refuses it there.
    rule = rejecting_rule(conn, bottle, TOOL_EGRESS_BLOCK, subject_of(TOOL_EGRESS_BLOCK, text), now)
    if rule is not None:
        whose = "every bottle" if rule.queue_key is None else rule.queue_key
        raise ValidationError("routes_file", f"rule {rule.short_id} rejects this file for {whose} "
                              f"({rule.notes or 'always reject'}): nothing recorded; to record it, 'bot-bottle rules "
                              f"revoke {rule.short_id}' first")
    return walked


def _sealed_rejection(conn: sqlite3.Connection, bottle: str, text: str,
                      proven: int) -> tuple[tuple[str, str, str] | None, int]:
    """The proposal, actor and time of the host's rejection of ``text`` for ``bottle`` where that is the newest
    answer on this file the host's seal proves (None: none, or an approval of it since), and the last entry
    walked; ``ValidationError`` where the log is not whole as the host sealed it, as a rejection may then be
    out of sight. Entries up to ``proven`` were walked already, with no rejection found as the newest answer.

    From the sealed log, not the proposal's row: every sidecar archives a
    proposal once its agent has the answer (``sidecar.mcp``), and an archived
    rejection was no answer to the launch file, so the file the operator had
    rejected, left in the checkout's routes file by the agent that proposed
    it, was recorded as approved. And from the whole log, each entry held to
    its seal in order (``whole.sealed_in_order``), not the entries an index
    finds under the bottle's name: a sidecar on the mount that rewrote the
    rejection's bottle took it out of that sight (tests/attacks/test_launch_routes_refusals.py).
    A keyed hash an entry, once for the launch (2.9 s at a million entries, bench/scale.py): the filing
    transaction, under the write lock, walks only the entries since the check before it.
    """
    key, anchor = host_sealing(conn)
    if key is None or anchor is None:  # no entry carries this host's seal yet: no rejection is proven
        return None, proven
    answers: list[int] = []
    revoked: list[int] = []

    def seen(seq: int, queue_key: str, action: str, tool: str | None) -> None:
        if queue_key == bottle and tool == TOOL_EGRESS_BLOCK and action in (*_ANSWERS, ACTION_GRANT_REVOKED):
            (revoked if action == ACTION_GRANT_REVOKED else answers).append(seq)

    end = max(last_seq(conn), anchor.seq)
    problem = sealed_in_order(conn, max(anchor.restarted_at, proven) + 1, end, key, seen)
    if problem is not None:
        raise ValidationError("routes_file", f"{problem}, so a rejection of this file for {bottle} may be out of "
                              "sight; nothing recorded ('bot-bottle audit verify' says more)")
    digest = sha256_text(text)
    for seq in reversed(answers):
        row = conn.execute(f"{SELECT} WHERE seq = ?", (seq,)).fetchone()
        # A modification answers on the operator's file: of the one proposed, it is neither answer.
        if answered_digest(row) == digest:
            if row[3] != STATUS_REJECTED:
                _hold_revoked(conn, bottle, row, end)
            return (str(row[5]), str(row[6]), str(row[1])) if row[3] == STATUS_REJECTED else None, end
    if revoked and proven > 0:
        # The newest answer on this file is in the entries walked before, and a routes grant of the bottle was
        # revoked since: it may be that answer's. prepare's check found the file's approval by the log alone (a
        # sidecar had rewritten its proposal, so no proposal answered it) and walked on; the operator revoked
        # its grant before the filing, which walked only the entries since, found no answer there, and recorded
        # the file approved again, in the operator's name (hostile review 59). Rare: walked again whole.
        return _sealed_rejection(conn, bottle, text, 0)
    return None, end


def _hold_revoked(conn: sqlite3.Connection, bottle: str, approval: tuple[object, ...], end: int) -> None:
    """Refuse (``ValidationError``) where the grant the sealed ``approval`` of the launch file made was revoked
    after it (up to entry ``end``, every entry held to the seal already) other than by a newer routes file's
    approval replacing it: the operator took that file back.

    An approval whose grant was revoked answers no more (``still_answering_in``), and the file was recorded as
    approved again at once: the agent that proposed it, left in the checkout's routes file, had the next
    'bottles routes' or 'prepare --routes-file' grant again, in the operator's name, the hosts their revocation
    had just taken back (hostile review 57), as a rejection's archive once did. A grant replaced by a newer file
    (``grants.end_replaced_routes_in``) is no such word: going back to an older file is recorded as before; nor is
    one that ended on its own."""
    grant_id = recorded_grant_id(approval[9])
    if grant_id is None:
        return
    revoked = revocations_of(conn, grant_id, approval[0], end + 1).fetchone()
    if revoked is None:
        return
    replaced = conn.execute(f"SELECT 1 FROM audit_log a WHERE {ROUTES_APPROVED} AND a.seq > :after "
                            "AND a.seq < :revoked LIMIT 1",
                            {"queue_key": bottle, "after": approval[0], "revoked": revoked[0]}).fetchone()
    if replaced is None:
        raise ValidationError("routes_file", f"this file's grant for {bottle} (proposal "
                              f"{str(approval[5])[:SHORT_ID_LENGTH]}) was revoked by {revoked[6]} at {revoked[1]}, "
                              "and recording it would grant again what that took back: the revocation stands until "
                              "you approve the file when the bottle proposes it again; nothing recorded")


def _hold(conn: sqlite3.Connection, proposal: Proposal, response: Response, bottle: str, text: str) -> None:
    """Nothing where ``response`` (the answer found for ``proposal``, the launch file ``text``) is an approval
    in force that the host's seal proves; else the refusal (``ValidationError``).

    Held to the seal: a sidecar on the mount writes response and grant rows,
    and its approval had prepare say "already its approved routes file"
    while every screen read the bottle's routes against none; its rejection,
    refuse in the operator's name (tests/attacks/test_launch_routes_rows.py).
    """
    if response.status == STATUS_APPROVED:
        proven = is_last_approved(conn, bottle, text)
    else:
        proven = decision_sealed(conn, proposal.id, response.status)
    if not proven:
        raise ValidationError("routes_file", f"this file's {response.status} answer for {bottle} (proposal "
                              f"{proposal.short_id}) is not proven by this host's sealed audit log "
                              "('bot-bottle audit verify' says more); nothing recorded")
    if response.status == STATUS_APPROVED:
        return
    if response.status == STATUS_REJECTED:
        raise _rejected(conn, bottle, text, proposal.id, response.decided_by, response.decided_at)
    raise ValidationError("routes_file", f"this file was approved for {bottle} only as modified (proposal "
                          f"{proposal.short_id}): the file in force is the modified one; revoke that grant (listed by "
                          f"'bot-bottle grants list --bottle {bottle}') to record this one; nothing recorded")
