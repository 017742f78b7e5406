"""The routes file a bottle was last approved, as this host's seal proves it: what an ``egress-block``'s new and
dropped lines are read against.

An ``egress-block`` proposal carries the bottle's current routes file as the
sidecar read it, and a sidecar that lies about it decides what the operator
reads first: sent with the same text as its "current file", a payload naming
``evil-exfil.example.net`` read ``routes file: unchanged`` (hostile review
50). The host keeps no copy of a bottle's routes file, but its audit log
records every approval of one (the sha256 of the file approved, sealed with
the host's key), and the proposal it approved still holds the text. So the
screens read a proposal's new and dropped lines against the last file
approved for its bottle; where the sidecar's current file is another, they
say so (a ``drifted`` caution) and read against the approved one. That is
what approving replaces, if what was approved is what the bottle runs; a
proposal filed before the last approval (two pending at once) is said to
have drifted too, and rightly: approving it replaces the newer file.

Where no routes file of the bottle's was approved yet, the sidecar's current
file is its word alone, and the same lie worked on every bottle's first
routes file; so it is read against none (every host new), with a caution
saying why, until one is on record (``bot-bottle prepare --routes-file``
records the file the bottle is launched with: ``cli.launch_routes``). An entry counts only where this
host's seal proves it as it reads now (``host_seal.sealed_rows``): a sidecar
on the mount can write rows, not seals.

Nor does an approval count where the entries after it are not all the
host's: a sidecar on the mount cannot make a seal, but it can rewrite the
entry of the newest approval (its tool, its bottle) or take it out, and the
lookup then found the approval before it, sealed, and read the proposal
against that older file: a host the operator had dropped since, put back,
read as no change (hostile review 51). So every entry from the approval
found (or the log's start) to the decision or the end is held to the seal,
numbered without a gap, as far as the host's anchor; where one is not, the
proposal's file is read against none (every host new) and the screens say
why.

An approval whose grant the operator revoked since (a sealed
``grant-revoked`` entry in that span) is on record no more: read against it,
the same file filed again read ``routes file: unchanged`` and approving it
granted what the revocation took back (hostile review 56); the file is read
against none, with a caution naming the revocation.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass, replace

from bot_bottle.audit.anchor import Anchor
from bot_bottle.audit.chain import SELECT, stored_details
from bot_bottle.audit.grant_entries import APPROVES_ROUTES, REVOKES_ROUTES, recorded_grant_id, revocations_of
from bot_bottle.audit.host_seal import host_sealing, sealed_as_read, sealed_rows
from bot_bottle.audit.rule_proofs import standing_rejections
from bot_bottle.audit.walk import last_seq
from bot_bottle.audit.whole import sealed_in_order
from bot_bottle.connection import database_path
from bot_bottle.errors import BotBottleError, ReadChanged
from bot_bottle.policy.approval import Rejection
from bot_bottle.records import (
    RESPONSE_STATUSES,
    SHORT_ID_LENGTH,
    STATUS_APPROVED,
    STATUS_MODIFIED,
    TOOL_EGRESS_ALLOW,
    TOOL_EGRESS_BLOCK,
    Proposal,
    sha256_text,
)
from bot_bottle.timestamps import utc_now

# How many entries after the last approval (or in a log without one) are held to the seal at most: past it, the
# screens take no approval's word (every host reads as new) rather than read a long log for each proposal (a
# sha256 an entry, about 4 microseconds: under a second).
ROUTES_PROOF_SPAN = 200_000

# Why a routes file is read against none where the host has no routes file on record for its bottle: the
# current file the sidecar sends is its word alone, and a sidecar that sends its payload as its current file
# had it read "unchanged" (hostile review 50's attack, on a bottle's first routes file).
NO_ROUTES_ON_RECORD = ("no routes file is on record for this bottle (none approved; 'bot-bottle bottles routes "
                       "SLUG FILE', or 'prepare --routes-file', records the one it runs with): the current file "
                       "the sidecar sent is only its word, so every host this file names reads as new")
# The same of a decided proposal, read as it was when it was decided: "is on record", and how to put one there,
# said of a bottle whose routes file this very decision had put on record.
NO_ROUTES_WHEN_DECIDED = ("no routes file was on record for this bottle when it was decided (none approved before "
                          "it): the current file the sidecar sent was only its word, so every host this file names "
                          "reads as new")


# Spans of the log this process has proven whole, by (database, their last entry, its hash): the entry each was
# proven from, and the newest routes approval of each bottle in it then. What a span held when it was proven
# stays true (the host sealed it), and every span from a later start to the same last entry is part of it: a list
# of many routes files, or a screen read again after each approval, walks the log once for them all, where each
# proposal walked it again (up to 200,000 entries, about a second each). A rewrite since is still found: the lookup
# then finds an older approval than the span recorded for its bottle.
_PROVEN_SIZE = 64
_proven: dict[tuple[str, int, str], tuple[int, dict[str, int]]] = {}
_proven_lock = threading.Lock()


@dataclass(frozen=True)
class RoutesBase:
    """What a proposal's file is read against (``current_file`` of ``approval_of`` and the shown diff), and why
    to look twice at that (``drift``: None when it is the sidecar's current file, unquestioned)."""

    file: str | None
    drift: str | None = None
    # The standing rejections of egress-allow in force for the bottle (``standing_rejections``): each host the
    # file names that one rejects is a caution (``policy.approval.rejected_cautions``); a pending proposal's only.
    rejections: tuple[Rejection, ...] = ()

    def digest(self) -> str:
        """The sha256 of this reading (file, caution and the rejections in force): what a page's forms carry, so
        a decision is recorded only while the proposal is read as the page read it (a routes file approved since
        changes it, and so does a standing rejection made or ended since)."""
        rules = "".join(f"\0{rule_id}" for rule_id in sorted(rule.rule_id for rule in self.rejections))
        return sha256_text(f"{'-' if self.file is None else '+' + self.file}\0{self.drift or ''}{rules}")


@dataclass(frozen=True)
class _Approved:
    """The newest sealed approval of a routes file for one bottle."""

    seq: int
    sha256: str
    proposal_id: str
    at: str
    text: str | None  # None: the proposal that holds it is gone from the file, or no longer hashes to it
    grant_id: str | None  # the grant the approval made, as its entry records it (None: it records none)


def routes_base(conn: sqlite3.Connection, proposal: Proposal, decided: bool) -> RoutesBase:
    """What ``proposal``'s file is read against: the sidecar's current file where it is the last one approved for
    the bottle, else the last approved one, with a ``drift`` saying so (none where the sidecar sent no current
    file: it claimed nothing another), or none where none was (or none is proven, and then why). A ``decided``
    proposal is read against what was approved before its own decision, as it was when it was decided; a pending
    one, with the standing rejections in force for its bottle too (``RoutesBase.rejections``): a rule decides
    egress-allow proposals only, and approving a file that names a host one rejects grants it all the same."""
    if proposal.tool != TOOL_EGRESS_BLOCK:
        return RoutesBase(proposal.current_file)
    base = _file_base(conn, proposal, decided)
    if decided:
        return base
    try:
        rejections = _rejections_in_force(conn, proposal.queue_key, utc_now())
    except (sqlite3.Error, BotBottleError) as exc:  # as the keeper would fail: the screen still shows, saying so
        return replace(base, drift="; ".join(part for part in (base.drift, f"the standing rejections could not be "
                                                               f"read ({exc}): none is named here") if part))
    return replace(base, rejections=rejections)


# The standing rejections last read for a bottle on a connection, with what that connection had seen of the file
# (SQLite's data_version, which another connection's commit moves, and its own changes) and when the first of them
# ends: a screen reads every pending routes file of a bottle at each refresh, and proving each rule row again for
# each (60,000 rows a sidecar wrote: 1.3 s a file) held 'proposals list' of five files for 8 s.
_REJECTIONS_SIZE = 64
_rejections: dict[tuple[int, str], tuple[sqlite3.Connection, tuple[int, int], str | None, tuple[Rejection, ...]]] = {}


def _rejections_in_force(conn: sqlite3.Connection, queue_key: str, now: str) -> tuple[Rejection, ...]:
    """``standing_rejections`` of egress-allow for ``queue_key`` at ``now``, as ``Rejection``s: read again only
    after the file changed (any commit) or one of them ended."""
    seen = (int(conn.execute("PRAGMA data_version").fetchone()[0]), conn.total_changes)
    key = (id(conn), queue_key)
    with _proven_lock:
        known = _rejections.get(key)
    if known is not None and known[0] is conn and known[1] == seen and (known[2] is None or now < known[2]):
        return known[3]
    rules = standing_rejections(conn, queue_key, TOOL_EGRESS_ALLOW, now)
    found = tuple(Rejection(rule.id, rule.subject_value, bool(rule.pattern), rule.queue_key) for rule in rules)
    until = min((rule.ends_at for rule in rules if isinstance(rule.ends_at, str)), default=None)
    with _proven_lock:
        if len(_rejections) >= _REJECTIONS_SIZE and key not in _rejections:
            del _rejections[next(iter(_rejections))]
        _rejections[key] = (conn, seen, until, found)
    return found


def _file_base(conn: sqlite3.Connection, proposal: Proposal, decided: bool) -> RoutesBase:
    """``routes_base`` but the standing rejections: the file an ``egress-block`` is read against, and why."""
    try:
        before = _decision_seq(conn, proposal.id) if decided else None
        last, unsealed = _last_approved(conn, proposal, before)
        if unsealed is not None:
            hidden: str | None = f"audit entry {unsealed} is not sealed by this host as it reads now"
        elif last is None:  # read against none, whatever the log holds: nothing is taken that a walk would prove
            hidden = None
        else:
            hidden = _unproven_since(conn, last.seq, before, proposal.queue_key)
    except (sqlite3.Error, BotBottleError) as exc:  # a log a sidecar dropped, a damaged key: the screen still shows
        hidden = f"the audit log could not be read ({exc})"
        last = None
    if hidden is not None:  # an approval after it may have been taken out of the lookup's sight
        return RoutesBase(None, f"{hidden}, so the last routes file approved for this bottle is not proven: every "
                          "host this file names reads as new ('bot-bottle audit verify' says more)")
    # The text's own digest: the hash column is the file's word too (a row written past the check can pair the
    # approved file's digest with any text).
    if last is None:
        if proposal.current_file is None:  # nothing claimed: every host new, which is what approving grants
            return RoutesBase(None)
        return RoutesBase(None, NO_ROUTES_WHEN_DECIDED if decided else NO_ROUTES_ON_RECORD)
    revoked = _revoked(conn, last, before)
    if revoked is not None:
        # The operator took that file back ('grants revoke'): it is on record no more, and read against it the
        # same file filed again said 'routes file: unchanged' of the very hosts the revocation ended (hostile
        # review 56), and approving it granted them again. Read against none, every host new, saying why.
        return RoutesBase(None, f"the last routes file approved for this bottle (proposal "
                          f"{last.proposal_id[:SHORT_ID_LENGTH]}, {last.at}) was revoked at {revoked}"
                          f"{' before this was decided' if decided else ''}: no routes file is on record for it, "
                          "so every host this file names reads as new")
    if proposal.current_file is not None and sha256_text(proposal.current_file) == last.sha256:
        return RoutesBase(proposal.current_file)
    which = f"the last one approved for this bottle (proposal {last.proposal_id[:SHORT_ID_LENGTH]}, {last.at})"
    if proposal.current_file is None:
        if last.text is None:
            return RoutesBase(None, f"the sidecar sent no current routes file, and {which} is no longer in the "
                              "database: every host this file names reads as new")
        # Nothing claimed, so nothing to disagree with: read against the file on record, which approving replaces,
        # without a [drifted] badge (a bottle launched without the sidecar's --routes-file has every routes
        # proposal so, and a badge on all of them is one the operator learns to pass over). A sidecar gains
        # nothing by leaving its file out: the reading is the one a truthful current file gets, the badge of
        # one filed before that approval (two pending at once) included, which leaving it out shed (review 56).
        if proposal.created_at < last.at:
            return RoutesBase(last.text, f"filed before {which}, which approving it replaces: what this file adds "
                              "and drops is read against that one")
        return RoutesBase(last.text)
    if last.text is None:
        return RoutesBase(proposal.current_file, f"the current routes file the sidecar sent is not {which}, which is "
                          "no longer in the database: what this file adds and drops is the sidecar's word")
    return RoutesBase(last.text, f"the current routes file the sidecar sent is not {which}: what this file adds and "
                      "drops is read against that one")


def hold_routes_read(conn: sqlite3.Connection, proposal: Proposal, read: str) -> None:
    """``ReadChanged`` where pending ``proposal``'s file reads now (in the deciding transaction, ``conn``) against
    another base than the one whose ``RoutesBase.digest`` is ``read``, the one a screen showed. A check made
    before the transaction let a routes file approved meanwhile (another screen, a rule) commit between the two,
    and the approval recorded what no screen showed (hostile review 52)."""
    if proposal.tool == TOOL_EGRESS_BLOCK and routes_base(conn, proposal, decided=False).digest() != read:
        raise ReadChanged(f"the routes file on record for {proposal.queue_key} changed (another approved, or it was "
                          f"revoked) since {proposal.short_id} was shown, or a standing rejection for it was made or "
                          "ended since, so what deciding it adds and drops, or the rejections it is said to grant "
                          "past, changed; nothing recorded: show it again")


def is_last_approved(conn: sqlite3.Connection, bottle: str, text: str) -> bool:
    """Whether ``text`` is the last routes file approved for ``bottle`` as this host's seal proves it (what
    ``routes_base`` reads a proposal claiming it as its current file against, unquestioned): what ``prepare
    --routes-file`` holds an approval it found to before it says the file is on record, as a row is a sidecar's
    word."""
    # The probe's id is none stored: the lookup leaves a proposal's own approval out, and this is every one's.
    # The file alone: the standing rejections a pending proposal is also read with say nothing of what is on record
    # (compared whole, any rejection for the bottle had 'prepare --routes-file' call its own file unproven).
    probe = Proposal("0" * 32, bottle, TOOL_EGRESS_BLOCK, text, "", text, sha256_text(text), "")
    return _file_base(conn, probe, decided=False) == RoutesBase(text)


def decision_sealed(conn: sqlite3.Connection, proposal_id: str, action: str) -> bool:
    """Whether an entry recording ``action`` on ``proposal_id`` carries this host's seal as it reads now: a
    response row alone is the word of whoever can write the file."""
    return _decision_seq(conn, proposal_id, (action,)) is not None


def answered_digest(row: tuple[object, ...]) -> object:
    """The sha256 of the file an audit entry's answer on a routes file answers (a ``SELECT`` row): the
    operator's final file for a modification, else the payload (as its details record them; None: none)."""
    details = stored_details(row[9]) or {}
    return details.get("final_file_sha256" if row[3] == STATUS_MODIFIED else "payload_sha256")


def routes_approvals_mark(conn: sqlite3.Connection) -> int | None:
    """The number of the newest entry that approves a routes file or revokes a routes grant, of any bottle (None:
    there is none): a screen that keeps what it read of pending proposals reads their routes files again when it
    moves. A revocation too: it takes the file revoked off record (``routes_base``), and a list kept from before
    it read a pending file against that one still (hostile review 56)."""
    try:
        # Two looks, each through its own partial index (migration 0010): one with OR would read the whole log.
        marks = [conn.execute(f"SELECT max(seq) FROM audit_log WHERE {which}").fetchone()
                 for which in (APPROVES_ROUTES, REVOKES_ROUTES)]
    except sqlite3.Error:  # a log a sidecar dropped: what was read stays, and what is read now says why
        return None
    found = [row[0] for row in marks if row is not None and isinstance(row[0], int)]
    return max(found) if found else None


def _decision_seq(conn: sqlite3.Connection, proposal_id: str,
                  actions: tuple[str, ...] = RESPONSE_STATUSES) -> int | None:
    """The number of the sealed entry that recorded the decision on ``proposal_id`` (its first; one of
    ``actions``), or None (then the whole log is held to the seal). Sealed: a row rewritten to name the proposal,
    earlier, would have it read against an older file, with the entries from there on out of
    ``_unproven_since``'s sight."""
    marks = ", ".join("?" * len(actions))
    rows = conn.execute(f"{SELECT} WHERE proposal_id = ? AND action IN ({marks}) ORDER BY seq",
                        (proposal_id, *actions))
    return next((row[0] for row in sealed_rows(conn, rows)), None)


def _last_approved(conn: sqlite3.Connection, proposal: Proposal,
                   before: int | None) -> tuple[_Approved | None, object | None]:
    """The newest routes file approved for ``proposal``'s bottle (before entry ``before``), proven by the seal;
    and the number of an entry above it that is not sealed (None: none), where the search stopped.

    Stopped there, as no approval below it is proven (``_unproven_since`` would say so): a sidecar on the mount
    that wrote a million such rows had each proposal's lookup hold every one to the seal (0.65 s a proposal for
    100,000, hostile review 51)."""
    rows = conn.execute(f"{SELECT} WHERE queue_key = :bottle AND {APPROVES_ROUTES} "
                        "AND (:before IS NULL OR seq < :before) AND proposal_id IS NOT :own ORDER BY seq DESC",
                        {"bottle": proposal.queue_key, "before": before, "own": proposal.id})
    sealing: tuple[bytes | None, Anchor | None] | None = None
    for row in rows:
        sealing = sealing or host_sealing(conn)
        restarted = sealing[1].restarted_at if sealing[1] is not None else 0
        if isinstance(row[0], int) and row[0] <= restarted:
            return None, None  # an earlier key's: nothing from here down is proven, nor need be (_unproven_since)
        if not sealed_as_read(conn, row, *sealing):
            return None, row[0]
        digest = answered_digest(row)
        if isinstance(digest, str) and isinstance(row[5], str):
            return _Approved(row[0], digest, row[5], str(row[1]),
                             approved_text(conn, row[5], digest, row[3] == STATUS_MODIFIED),
                             recorded_grant_id(row[9])), None
    return None, None


def _revoked(conn: sqlite3.Connection, last: _Approved, before: int | None) -> str | None:
    """When the grant ``last`` made was revoked (before entry ``before``), or None. Every entry after ``last``
    is held to the seal already (``_unproven_since``), so a revocation found there is the host's: a sidecar on
    the mount can write one, unsealed, and then no approval is proven (every host new, which is no gain).

    Any revocation naming the grant's id counts, whatever bottle and tool it records: entries written before
    ``grant_entries.revocation_entry`` took them from the sealed approval took them from the grant's row, which
    a sidecar on the mount can rewrite (hostile review 57). So not through migration 0010's index, which is by
    bottle and tool, but ``revocations_of`` over the entries after the approval alone (200,000 at most,
    ``ROUTES_PROOF_SPAN``)."""
    if last.grant_id is None:
        return None
    row = revocations_of(conn, last.grant_id, last.seq, before).fetchone()
    return None if row is None else str(row[1])


def approved_text(conn: sqlite3.Connection, proposal_id: str, digest: str, modified: bool | None = None) -> str | None:
    """The text of the file approved on ``proposal_id`` (its payload, or with ``modified`` the operator's final
    file; None: whichever it is), where it still hashes to ``digest`` (the sealed one, or a grant's): a row is the
    file's word, the digest the host's."""
    row = conn.execute("SELECT p.payload, r.final_file FROM proposals p LEFT JOIN responses r "
                       "ON r.proposal_id = p.id WHERE p.id = :id", {"id": proposal_id}).fetchone()
    if row is None:
        return None
    payload, final = row
    texts = (payload, final) if modified is None else (final,) if modified else (payload,)
    return next((text for text in texts if isinstance(text, str) and sha256_text(text) == digest), None)


def _unproven_since(conn: sqlite3.Connection, after: int, before: int | None, bottle: str) -> str | None:
    """Why the entries after ``after`` (up to ``before``, or the log's end and the host's anchor) are not all
    this host's as they read now, or None: what proves that no newer approval was rewritten or taken out of
    ``_last_approved``'s sight.

    They must be numbered without a gap, each must hash to the hash its seal was made over, and each must carry
    this host's seal over the one before (``whole.sealed_in_order``, what the relay's and the rules' proofs hold
    the log to; the last one's seal is looked at first: rows a sidecar appended end the look at once). Not the
    last seal alone: the host seals its next entry onto the newest one without holding that one to its seal
    where the anchor reaches it (a changed anchored entry must not stop every decision,
    tests/attacks/test_display_audit.py), so a sidecar that rewrote the entries from an approval to the head,
    with the chain made again, had the host's next seal vouch for them all (hostile review 52).
    """
    key, anchor = host_sealing(conn)
    start = max(after, anchor.restarted_at if anchor is not None else 0)  # an earlier key's entries prove nothing
    end = before - 1 if before is not None else max(last_seq(conn), anchor.seq if anchor is not None else 0)
    if end <= start:
        return None
    # The last entry's seal first: rows a sidecar appended (chained by hand: the chain needs no key) end the
    # look at once, not after a walk through all of them.
    last = conn.execute(f"{SELECT} WHERE seq = :end", {"end": end}).fetchone()
    if last is None:
        return f"audit entry {end} is missing"
    if not sealed_as_read(conn, last, key, anchor):
        return f"audit entry {end} is not sealed by this host as it reads now"
    path, end_hash = database_path(conn), str(last[11])
    known = _proof_for(path, start, end, end_hash)
    upto, approvals = (start, dict[str, int]()) if known is None else (known[1], dict(known[2]))
    if end - upto > ROUTES_PROOF_SPAN:
        return f"more than {ROUTES_PROOF_SPAN} audit entries after entry {upto} were not checked"
    if key is None:  # never: the last entry's seal was checked with it
        return "the host's audit key is missing"

    def seen(seq: int, queue_key: str, action: str, tool: str | None) -> None:
        if tool == TOOL_EGRESS_BLOCK and action in (STATUS_APPROVED, STATUS_MODIFIED):
            approvals[str(queue_key)] = seq

    problem = sealed_in_order(conn, upto + 1, end, key, seen)
    if problem is not None:
        return problem
    with _proven_lock:
        if len(_proven) >= _PROVEN_SIZE:
            del _proven[next(iter(_proven))]
        _proven[(path, end, end_hash)] = (start if known is None else known[0], approvals)
    # Proven from no later than ``start``: the newest approval of this bottle's routes in the span is the
    # lookup's, or one it could not see (rewritten since, out of its sight: the span recorded it as proven).
    newest = approvals.get(bottle, 0)
    return None if newest <= start else f"audit entry {newest} approves a routes file the lookup did not find"


def _proof_for(path: str, start: int, end: int, end_hash: str) -> tuple[int, int, dict[str, int]] | None:
    """The span this process proved whole that serves a look from ``start`` to ``end`` (whose hash is
    ``end_hash``): (where it was proven from, its last entry, its routes approvals), the one reaching furthest;
    None where there is none. One ending at ``end`` itself must end at the same entry; one ending before it is
    carried on from its last entry's seal (what it held then stays true). One ending before
    ``start`` serves nothing (its approvals are older than the one found) and is not carried through entries
    the look need not hold to this key: those before a new key took over (``restarted_at``) are an earlier
    key's, and each entry walked is held to its seal."""
    best: tuple[int, int, dict[str, int]] | None = None
    with _proven_lock:
        for (proven_path, upto, upto_hash), (proven_from, approvals) in _proven.items():
            if proven_path != path or proven_from > start or upto < start or upto > end \
                    or (upto == end and upto_hash != end_hash):
                continue
            if best is None or upto > best[1]:
                best = (proven_from, upto, approvals)
    return best
