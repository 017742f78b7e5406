"""Grants and standing rules as every operator's screen shows them: which grants a list shows
(``grants_listed``), what a grant grants in words (``grant_subjects``), a rule's cells, and ending a rule
(``revoke_rule``): ``grants list``, ``bottles show``, ``rules list``, the TUI's views and the dashboard's
sections read them here, and ``rules revoke``, the TUI's ``x`` and the dashboard's button all revoke what
really decides, the same way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any, TypeVar

from bot_bottle.cli.inbox import approval_for, routes_base_of
from bot_bottle.db import DatabaseUser
from bot_bottle.errors import AmbiguousId, BotBottleError, ValidationError
from bot_bottle.grant_records import Grant, Rule
from bot_bottle.grants import GrantStore
from bot_bottle.policy.approval import shown_subject
from bot_bottle.policy.subjects import describe_subject, subject_of
from bot_bottle.queue_reads import QueueReads
from bot_bottle.records import (
    EFFECT_APPROVE,
    PROPOSAL_ID_RE,
    STATUS_MODIFIED,
    TOOL_EGRESS_BLOCK,
    TOOL_GITLEAKS_ALLOW,
    validate_id_prefix,
)
from bot_bottle.standing import rules_in_force
from bot_bottle.timestamps import time_left, utc_now

NAMED_IDS = 8  # ids an ambiguous prefix matched, named in the refusal
WARNED_GRANTS = 12  # grants a list warns of one by one where the file and the audit log disagree
# Grants of these tools keep digests, not words: a routes file's sha256, a push's findings' fingerprints.
_KEPT_AS_DIGESTS = (TOOL_EGRESS_BLOCK, TOOL_GITLEAKS_ALLOW)


# What every list says of a grant whose row and the audit log disagree (``grants_listed``).
KEPT_BY_LOG = ("kept by the audit log: its row in the file is missing, revoked, ended or rewritten, but the log "
               "records it made, as shown here, and not revoked; nothing passes it on while the row says so, and a "
               "sidecar that puts the row back has it in force again: revoke it to end it for good")
REVOKED_IN_LOG = ("its row in the file says in force, but the audit log records it {revoked}: a sidecar rewrote the "
                  "row; the relay does not pass it on, sidecars that read the file do ('bot-bottle audit verify' "
                  "names the row)")
NOT_IN_LOG = ("its row in the file says in force, but no approval this host sealed made it as it reads: a sidecar "
              "wrote or rewrote the row; the relay does not pass it on, sidecars that read the file do: revoke it "
              "('bot-bottle audit verify' names the row)")


@dataclass(frozen=True)
class GrantsListed:
    """The grants a list shows (kept and revoked first, unproven last, each soonest ending first), with where the
    audit log disagrees with a row: the ids of the grants it keeps that no row in force shows (``kept``), what it
    says of the rows in force it records revoked (``revoked``, by id), and the ids of the other rows in force no
    sealed approval made (``unproven``)."""

    grants: list[Grant]
    kept: frozenset[str]
    revoked: Mapping[str, str]
    unproven: frozenset[str] = frozenset()

    def mark(self, grant: Grant) -> str:
        """What a row of a list puts before the grant's subject where the log disagrees ("": it agrees)."""
        return "[kept by the log] " if grant.id in self.kept else "[revoked in the log] " \
            if grant.id in self.revoked else "[not in the log] " if grant.id in self.unproven else ""

    def note(self, grant: Grant) -> str:
        """Where the log disagrees with the grant's row, what each says ("": they agree)."""
        if grant.id in self.kept:
            return KEPT_BY_LOG
        revoked = self.revoked.get(grant.id)
        return REVOKED_IN_LOG.format(revoked=revoked) if revoked is not None else \
            NOT_IN_LOG if grant.id in self.unproven else ""


def grants_listed(store: GrantStore, bottle: str | None = None, *, include_ended: bool = False) -> GrantsListed:
    """The grants ``grants list``, ``bottles show``, the TUI and the dashboard show: the rows in force (every row
    with ``include_ended``), and the grants the audit log keeps in force that no row in force shows, each in its
    row's place where there is one; and where the log and a row disagree (``GrantStore.against_log``). A sidecar
    on the mount hid a grant from every list by marking its row revoked or ended, or deleting it, and could put it
    back later, in force again without the operator having seen it (hostile review 57)."""
    against, now = store.against_log(bottle), utc_now()
    # Of rows sharing an id (a table a sidecar rebuilt without its key), one in force is shown, last here: a revoked
    # copy ending later had 'grants list --all' say "revoked" of a grant in force (hostile review 60).
    rows = sorted(store.listing(bottle, include_ended=include_ended),
                  key=lambda grant: grant.revoked_at is None and str(grant.ends_at) > now)
    by_id = {grant.id: grant for grant in rows}
    by_id.update((grant.id, grant) for grant in against.kept)
    kept = frozenset(grant.id for grant in against.kept)
    # Those the log keeps first, those it records revoked next, the rows it has no approval of last: a sidecar can
    # write any number of those, not seal one, and 20,000 ending sooner put a grant in force out of reach on the
    # TUI's and the dashboard's lists, which show every row (hostile review 60).
    rank = {**dict.fromkeys(against.unproven, 3), **dict.fromkeys(against.revoked, 1), **dict.fromkeys(kept, 0)}
    return GrantsListed(sorted(by_id.values(), key=lambda grant: (rank.get(grant.id, 2), str(grant.ends_at),
                                                                  str(grant.id))),
                        kept, against.revoked, against.unproven)


def log_warnings(listed: GrantsListed) -> list[str]:
    """What the command line warns of each grant ``listed`` shows whose row the audit log disagrees with, with the
    command that ends it: the first ``WARNED_GRANTS``, then one line counting the rest (a sidecar can write a
    thousand rows, and a warning each buried the list under them). The grants the log keeps first, then the rows
    it records revoked, then those it has no approval of: a sidecar wrote 12 rows ending sooner than a grant whose
    row it hid, and the warning of that grant, the one it can bring back, was "and 1 more" (hostile review 60)."""
    warnings = []
    for grant in sorted(listed.grants, key=lambda grant: (grant.id not in listed.kept,
                                                          grant.id not in listed.revoked)):
        note, short = listed.note(grant), shown_record(grant).short_id
        if note:
            end = "" if grant.id in listed.revoked else f" ('bot-bottle grants revoke {short}')"
            warnings.append(f"grant {short}: {note}{end}")
    if len(warnings) > WARNED_GRANTS:
        more = len(warnings) - WARNED_GRANTS
        warnings[WARNED_GRANTS:] = [f"and {more} more grant(s) the file and the audit log disagree on, each marked "
                                    "in the list ('bot-bottle audit verify' says more)"]
    return warnings


def grant_subjects(store: DatabaseUser, grants: Sequence[Grant]) -> dict[str, str]:
    """What each of ``grants`` grants, as a listing shows it, by grant id: ``shown_subject`` (badges first), and for a
    grant that keeps digests rather than words (a routes file, a push's findings) what approving it granted, in
    words, first: read from its proposal (or the operator's modification), but only where that still is exactly
    what the grant records. A proposal rewritten in the file since, or gone, adds nothing; a routes file's grant
    read "routes file sha256 9b6634b9b78a", which named nothing the operator could recognise. Keyed by the id of
    each grant as a screen shows it (``shown_record``), the form every listing reads it in."""
    grants = [shown_record(grant) for grant in grants]
    shown = {grant.id: shown_subject(grant.tool, grant.subject_value) for grant in grants}
    kept = [grant for grant in grants if grant.tool in _KEPT_AS_DIGESTS and grant.subject_value
            and isinstance(grant.proposal_id, str) and PROPOSAL_ID_RE.fullmatch(grant.proposal_id)]
    if not kept:
        return shown
    reads = QueueReads(database=store.db)
    proposals = {proposal.id: proposal for proposal in reads.get_many(sorted({g.proposal_id for g in kept}))}
    for grant in kept:
        proposal = proposals.get(grant.proposal_id)
        if proposal is None or proposal.tool != grant.tool:
            continue
        try:
            response = reads.response(proposal.id)
            modified = response is not None and response.status == STATUS_MODIFIED and response.final_file is not None
            document = response.final_file if modified and response is not None else proposal.payload
            if document is not None and subject_of(grant.tool, document) == grant.subject_value:
                approval = approval_for(proposal, response, routes_base_of(store, proposal, response))
                shown[grant.id] = f"{approval.grants[0]} ({shown[grant.id]})"
        except (BotBottleError, ValidationError, IndexError):  # a row no bot-bottle wrote: the digest alone
            continue
    return shown


Record = TypeVar("Record", Rule, Grant)


def shown_record(record: Record) -> Record:
    """A rule or a grant as a screen shows it: each text field as text, a NULL or a number there (a row a sidecar
    wrote in a table it rebuilt without types) as its spelling. Before, one such row stopped the TUI's grants and
    rules views (the whole TUI), the dashboard's bottles page, 'rules list', and ('rules revoke', 'rules add')
    every revocation of a rule on any screen. For showing only: its id is no rule's or grant's to revoke."""
    changes: dict[str, Any] = {}
    for field in fields(record):
        value = getattr(record, field.name)
        if "str" in str(field.type) and value is not None and not isinstance(value, str):
            changes[field.name] = str(value)
        elif str(field.type) == "str" and value is None:
            changes[field.name] = ""
    return replace(record, **changes)



def rule_subject(rule: Rule) -> str:
    """What a rule decides on, as its listing shows it: an approving rule's badges first (what approving reaches:
    a rejection has none), then the subject, and ``(pattern)`` for a host pattern."""
    shown = (shown_subject if rule.effect == EFFECT_APPROVE else describe_subject)(rule.tool, rule.subject_value)
    return shown + (" (pattern)" if rule.pattern else "")


def rule_scope(rule: Rule) -> str:
    """The bottles a rule decides for: one bottle's slug, or ``(every bottle)``."""
    return rule.queue_key or "(every bottle)"


def rule_left(rule: Rule, now: str) -> str:
    """How long a rule has left (``for good`` where it does not end), or ``revoked`` / ``ended``."""
    if rule.live(now):
        return time_left(now, rule.ends_at)
    return "revoked" if rule.revoked_at else "ended"


@dataclass(frozen=True)
class RuleRevoked:
    """A rule revoked: the rule, and, where it decided nothing (a row the audit log does not prove), why not."""

    rule: Rule
    idle: str | None = None

    @property
    def line(self) -> str:
        """What the operator is told at the command line: that it is revoked, and what it leaves."""
        return self.told("'grants list', 'grants revoke'")

    def told(self, grants_where: str) -> str:
        """What the operator is told: that it is revoked, and what it leaves: the grants it made, which
        ``grants_where`` lists and ends (the command line's verbs, or the screen's own keys)."""
        if self.idle is not None:  # a row a sidecar wrote, or changed: it decided nothing, and made no grant
            return (f"revoked rule {self.rule.short_id}, which decided nothing and made no grant "
                    f"({self.idle.removeprefix('decides nothing: ')})")
        return f"revoked rule {self.rule.short_id}; {revoked_rule_leaves(self.rule, grants_where)}"


def revoked_rule_leaves(rule: Rule, grants_where: str) -> str:
    """What a revoked rule leaves, in every screen's words: an approving rule's grants (``grants_where`` lists and
    ends them); a rejecting one made none: the next ask for what it rejected comes to the operator."""
    if rule.effect == EFFECT_APPROVE:
        return f"the grants it made stay until they end ({grants_where})"
    return "what it rejected is asked of you again at the next ask (the grants it ended stay ended)"


def revoke_rule(store: GrantStore, id_prefix: str, reason: str, *, revoked_by: str) -> RuleRevoked:
    """End the rule whose id starts with ``id_prefix``, with ``reason`` (audited); ``NotFound``, ``AmbiguousId``,
    ``AlreadyEnded`` or ``ValidationError`` (no reason) otherwise, and nothing recorded.

    The id is matched against the rules as they decide (a standing rejection
    whose row a sidecar deleted, ended or changed still decides, from the
    log: ``standing.rules_in_force``) and the file's rows together: a row a
    sidecar wrote sharing a deciding rule's short id, or a copy of its row,
    must not take or block its revocation.
    """
    prefix = validate_id_prefix(id_prefix, "rule")
    in_force = [item for item in rules_in_force(store) if str(item.rule.id).startswith(prefix)]
    deciding = {item.rule.id: item.rule for item in in_force if item.decides}
    idle = {item.rule.id: item.note for item in in_force if not item.decides}
    ids = sorted({*deciding, *(str(row.id) for row in store.rules(include_ended=True)
                               if str(row.id).startswith(prefix))})
    if PROPOSAL_ID_RE.fullmatch(prefix) and prefix in ids:  # a whole id names its rule, as the TUI and the
        ids = [prefix]  # dashboard send it: a row a sidecar wrote whose id runs on past it must not block that
    if len(ids) > 1:
        shown = ", ".join(repr(rule_id) for rule_id in ids[:NAMED_IDS])  # whole: a forged id may share 31
        raise AmbiguousId(f"{prefix!r} matches several rules ({shown}): give more digits")
    if ids and ids[0] in deciding:  # as the log proves it, its row or rows (if any) marked
        rule = store.revoke_kept_rule(deciding[ids[0]], reason, revoked_by=revoked_by)
    else:  # none, not in force, or a row that decides nothing
        rule = store.revoke_rule(prefix, reason, revoked_by=revoked_by)
    return RuleRevoked(rule, idle.get(rule.id))
