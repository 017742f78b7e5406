"""The operator's inbox: every bottle's pending proposals, oldest first, each with what approving it grants.

The TUI's list, ``proposals list``, ``supervise --once`` and the dashboard
read the queue through here, each once the standing rules and expiry have
been applied (``apply_standing``, or ``standing.keep`` itself), so every
list shows the same thing first: what approving grants and its cautions
(``policy.approval``), then the agent's words. Listings read summaries (no
payload); an ``Inbox`` then loads each proposal it has not seen once, in
one query, and keeps its approval and the digest of what it read
(``queue_reads.shown_digest``). Proposals are immutable, so that is read
once per proposal; one rewritten in the file afterwards is caught when it
is decided, which holds the proposal to that digest (``Inbox.current``,
then ``decide(shown=...)``).

Filters are the inbox's: by bottle, tool, caution kind, and words anywhere
in what a row shows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bot_bottle.audit.routes_approved import RoutesBase, routes_approvals_mark, routes_base
from bot_bottle.audit_store import AuditStore
from bot_bottle.bottles import BottleOverview, BottleStore
from bot_bottle.db import DatabaseUser
from bot_bottle.errors import ValidationError
from bot_bottle.grant_records import RULE_DECIDER_PREFIX, rule_decider
from bot_bottle.policy.approval import KINDS, Approval, approval_of
from bot_bottle.queue_reads import expired_response, shown_digest
from bot_bottle.queue_store import QueueStore
from bot_bottle.records import (
    ACTION_EXPIRED,
    EFFECT_APPROVE,
    SHORT_ID_LENGTH,
    STATUS_MODIFIED,
    TOOL_EGRESS_BLOCK,
    TOOLS,
    AuditEntry,
    Proposal,
    ProposalSummary,
    Response,
    sha256_text,
)
from bot_bottle.standing import describe_failure, keep, rules_version, unproven_line
from bot_bottle.timestamps import later, utc_now

# A filter on cautions: any kind at all, or one of policy.approval.KINDS.
ANY_CAUTION = "any"


@dataclass(frozen=True)
class Entry:
    """One listed proposal: its summary, what approving it grants, and the digest of what was read."""

    proposal: ProposalSummary | Proposal
    approval: Approval
    digest: str

    @property
    def id(self) -> str:
        """The proposal's id."""
        return self.proposal.id

    def matches(self, words: str) -> bool:
        """Whether every word of ``words`` is in what the row shows (case ignored)."""
        shown = " ".join([self.proposal.id, self.proposal.queue_key, self.proposal.tool, *self.approval.grants,
                          *(caution.text for caution in self.approval.cautions), *self.approval.kinds,
                          self.proposal.justification]).casefold()
        return all(word in shown for word in words.casefold().split())


@dataclass(frozen=True)
class Filters:
    """What the operator narrowed the inbox to (None: everything)."""

    bottle: str | None = None
    tool: str | None = None
    caution: str | None = None
    words: str | None = None

    def __post_init__(self) -> None:
        if self.tool is not None and self.tool not in TOOLS:
            raise ValidationError("tool", f"{self.tool!r} is not one of {', '.join(TOOLS)}")
        if self.caution is not None and self.caution not in (ANY_CAUTION, *KINDS):
            raise ValidationError("warning", f"{self.caution!r} is not one of {', '.join((ANY_CAUTION, *KINDS))}")

    def keep(self, entry: Entry) -> bool:
        """Whether ``entry`` passes every filter."""
        kinds = entry.approval.kinds
        return ((self.bottle is None or entry.proposal.queue_key == self.bottle)
                and (self.tool is None or entry.proposal.tool == self.tool)
                and (self.caution is None or (bool(kinds) if self.caution == ANY_CAUTION else self.caution in kinds))
                and (not self.words or entry.matches(self.words)))

    @property
    def active(self) -> bool:
        """True when anything is filtered out."""
        return any(value for value in (self.bottle, self.tool, self.caution, self.words))


def apply_standing(store: QueueStore, *, naming_decided: bool = True) -> list[str]:
    """Standing rules and expiry applied before a list shows the queue, as the screens do (``standing.keep``):
    a proposal a rule decides is never shown as waiting for the operator. Returns what the caller should say:
    each rule in the file the audit log does not prove (it decided nothing), and why the look failed, if it did
    (the audit key missing, the database busy, a row no bot-bottle wrote); the list is shown either way. With
    ``naming_decided``, also each proposal a rule decided in this look, which would otherwise leave the list
    unseen."""
    warning = log_warning(store)
    said: list[str] = [warning] if warning is not None else []
    try:
        keep(store, unproven=lambda rule_id, why: said.append(unproven_line(rule_id, why)),
             decided_by_rule=lambda proposal, response: said.append(_decided_line(proposal, response))
             if naming_decided else None)
    except Exception as exc:  # whatever a row in the file does, the operator still gets the list
        said.append(f"standing rules and expiry not applied: {describe_failure(exc)}")
    return said


def pending_ids(path: Path) -> list[str]:
    """The ids of the proposals pending now in the database at ``path``: what ``decided_now`` reads, taken before
    a rule is made."""
    with QueueStore(path) as queue:
        return [summary.id for summary in queue.pending_summaries()]


def decided_now(path: Path, rule_id: str, warn: Callable[[str], None], waiting: list[str]) -> list[str]:
    """Which of ``waiting`` (``pending_ids``, taken before the rule was made: 'rules add', or a decision's
    ``--remember``) the rule decided, once the standing rules are applied at once, as the next look of a list,
    the TUI or the dashboard would have without a word (``apply_standing``; a keeper, or an earlier rule of the
    same command, may have applied them first); what that look could not do is told to ``warn``. A response
    counts only where the audit log proves it (``decision_problem``): a sidecar that saw the rule's row wrote a
    response naming it for a proposal of its own, which the operator was then told the rule had decided."""
    with QueueStore(path) as queue:
        for problem in apply_standing(queue, naming_decided=False):  # the new rule's are named by the caller
            warn(problem)
        decider, audit = rule_decider(rule_id), AuditStore(database=queue.db)
        return [proposal_id for proposal_id in waiting
                if (response := queue.response(proposal_id)) is not None and response.decided_by == decider
                and audit.decision_problem(response) is None]


def decided_now_line(effect: str, decided: list[str], named: int = 8) -> list[str]:
    """The line naming what ``decided_now`` found (the first ``named``, the rest counted); none for none."""
    if not decided:
        return []
    shown = ", ".join(proposal_id[:SHORT_ID_LENGTH] for proposal_id in decided[:named])
    return [f"it {'approved' if effect == EFFECT_APPROVE else 'rejected'} {len(decided)} pending proposal(s) it "
            f"matches, now: {shown}{', ...' if len(decided) > named else ''} ('proposals list --all' shows them)"]


def unknown_bottle(store: DatabaseUser, slug: str | None) -> str | None:
    """For a list narrowed to ``--bottle slug`` that came out empty: the line saying the host has recorded no
    bottle of that name (prepared, or seen filing), so a typo (``web1``) is not read as "web-1 has none"."""
    if slug is None or BottleStore(database=store.db).overview(slug):
        return None
    return f"no bottle {slug} is known to this host (a typo? 'bottles list' names them)"


EXPIRED_WINDOW_SEC = 24 * 3600  # how far back a list of pending proposals names those that expired unanswered
_EXPIRED_NAMED = 8


def expired_line(store: DatabaseUser, bottle: str | None = None, *,
                 name: Callable[[AuditEntry], str] | None = None,
                 where: str = "('proposals list --all')", escape: Callable[[str], str] = str) -> str | None:
    """The proposals (of ``bottle``, or every bottle's) that expired unanswered in the last day, for the line a list
    of pending proposals ends with, or None: each caller was told no, and whoever missed it should know. Read
    from the audit log's ``expired`` entries, newest first. ``name`` words each (default: its short id, bottle
    and tool; the dashboard's links to its page), ``where`` says where to see them, and ``escape`` makes the text
    of a failure to read them safe where the line goes (the dashboard's HTML)."""
    now = utc_now()
    try:
        entries = AuditStore(database=store.db).of_action_since(ACTION_EXPIRED, later(now, -EXPIRED_WINDOW_SEC),
                                                                bottle, limit=100)
    except Exception as exc:  # whatever a row in the file holds, the list is still shown
        return escape(f"what expired lately could not be read: {describe_failure(exc)}")
    if not entries:
        return None
    named = ", ".join((name or expired_name)(entry) for entry in entries[:_EXPIRED_NAMED])
    more = f" and {'99 or more' if len(entries) == 100 else len(entries) - _EXPIRED_NAMED} more" \
        if len(entries) > _EXPIRED_NAMED else ""
    return f"expired unanswered in the last 24 h, each caller told no: {named}{more} {where}"


def expired_name(entry: AuditEntry) -> str:
    """An expired proposal as the line naming them words it: its short id, bottle and tool."""
    return f"{str(entry.proposal_id or '?')[:SHORT_ID_LENGTH]} ({entry.queue_key}, {entry.tool})"


def _decided_line(proposal: Proposal, response: Response) -> str:
    """A proposal a standing rule decided as a list looked: said, so that it does not leave the list unseen."""
    rule = response.decided_by.removeprefix(RULE_DECIDER_PREFIX)[:SHORT_ID_LENGTH]
    return (f"rule {rule} {response.status} {proposal.short_id} ({proposal.queue_key}, {proposal.tool}) as this list "
            f"looked ('proposals show {proposal.short_id}' says more)")


def log_warning(store: DatabaseUser) -> str | None:
    """The line a screen shows when the database's audit log does not reach the host's anchor, or None.

    Such a file is an older copy of the database put in its place (a sidecar
    on the mount can), or a log cut short: its grants and rules may include
    ones revoked since, and nothing can be decided on it. A look that fails
    says why instead.
    """
    try:
        problem = AuditStore(database=store.db).anchor_problem()
    except Exception as exc:  # whatever the file holds, the screen still shows
        problem = f"it could not be checked: {describe_failure(exc)}"
    if problem is None:
        return None
    return (f"this database's audit log does not reach the host's anchor ({problem}): it may be an older copy, "
            "whose grants and rules include ones revoked since, and nothing can be decided on it; "
            "'bot-bottle audit verify' says more")


def routes_base_of(store: DatabaseUser, proposal: Proposal, response: Response | None = None) -> RoutesBase:
    """What ``proposal``'s file is read against on the screens: the last routes file approved for its bottle where
    the sidecar's current file is another (``audit.routes_approved``), else the sidecar's."""
    if proposal.tool != TOOL_EGRESS_BLOCK:
        return RoutesBase(proposal.current_file)
    with store.db.read() as conn:
        return routes_base(conn, proposal, decided=response is not None)


def decision_digest(store: DatabaseUser, proposal: Proposal, base: RoutesBase | None = None) -> str:
    """What ``proposals show`` prints and ``approve --digest`` takes back: the proposal as shown
    (``shown_digest``) and, for a routes file, what it is read against (``RoutesBase.digest``). A routes file
    approved for the bottle since changes what approving this one replaces: a digest printed before it no longer
    approves (hostile review 51: 'adds c.example' approved a file putting back the host that approval dropped).
    ``base``: the reading made already (``routes_base_of``)."""
    digest = shown_digest(proposal)
    if proposal.tool != TOOL_EGRESS_BLOCK:
        return digest
    return sha256_text(digest + (base or routes_base_of(store, proposal)).digest())


def approval_for(proposal: Proposal, response: Response | None = None, base: RoutesBase | None = None) -> Approval:
    """What approving ``proposal`` grants, read against ``base`` (``routes_base_of``; the sidecar's current file
    when None); for a modification, what the operator's file granted."""
    if response is not None and response.status == STATUS_MODIFIED and response.final_file is not None:
        return file_approval(proposal, response.final_file, base)
    return file_approval(proposal, proposal.payload, base)


def file_approval(proposal: Proposal, text: str, base: RoutesBase | None = None) -> Approval:
    """What approving ``text`` for ``proposal`` (its payload, or the operator's version) grants, read against
    ``base`` (the sidecar's current file when None)."""
    against = base or RoutesBase(proposal.current_file)
    return approval_of(proposal.tool, text, against.file, against.drift, against.rejections, proposal.queue_key)


def unproven_decision(audit: AuditStore, proposal: Proposal, response: Response | None) -> str | None:
    """Why the audit log does not prove ``response`` on ``proposal`` (``AuditStore.decision_problem``), or None.

    None too for the ``expired`` a proposal past its end reads as before a host process closes it
    (``queue_reads.expired_response``): nothing was recorded yet, so no entry is owed, and saying a sidecar may
    have written it would be a false alarm. Once closed, the recorded expiry is held to its entry like any other.
    """
    if response is None or (proposal.expires_at is not None
                            and response == expired_response(proposal.id, proposal.expires_at)):
        return None
    return audit.decision_problem(response)


class Inbox:
    """The pending queue with approvals, over one store; what it read of each proposal is kept by id.

    Only the approval and the digest are kept, never a payload: a list of
    a thousand proposals of a megabyte holds a few of them at a time.
    """

    def __init__(self, store: QueueStore) -> None:
        self.store = store
        self._read: dict[str, tuple[Approval, str]] = {}
        # routes_approvals_mark when the routes files kept were read: a view that keeps its own lines keys them by it
        # (and the rules' version, ``standing.rules_version``, and how many rules ended on their own: a standing
        # rejection made or ended changes a file's cautions)
        self.routes_mark: tuple[int | None, str] | None = None

    def entries(self, summaries: Sequence[ProposalSummary], responses: Sequence[Response | None] = ()) -> list[Entry]:
        """An entry for each summary, in order: proposals not read before are loaded, a few at a time."""
        decided = {response.proposal_id: response for response in responses if response is not None}
        missing = [summary.id for summary in summaries if summary.id not in self._read]
        for proposal in self.store.get_many(missing):
            self.remember(proposal, decided.get(proposal.id))
        return [Entry(summary, *self._read[summary.id]) for summary in summaries if summary.id in self._read]

    def pending(self, filters: Filters | None = None) -> list[Entry]:
        """Every bottle's pending proposals (oldest first) that pass ``filters``; entries not read are loaded."""
        chosen = filters or Filters()
        with self.store.db.read() as conn:
            routes = routes_approvals_mark(conn)
            # A rule that ended on its own moves no version: counted, so a [rejected] caution it made goes with it.
            ended = conn.execute("SELECT count(*) FROM rules WHERE ends_at IS NOT NULL AND ends_at <= ?",
                                 (utc_now(),)).fetchone()
        mark = (routes, f"{rules_version(self.store)}/{ended[0] if ended else 0}")
        if mark != self.routes_mark:  # a routes file approved (or one revoked), or a rule, since: read again
            self._read = {key: kept for key, kept in self._read.items() if kept[0].tool != TOOL_EGRESS_BLOCK}
            self.routes_mark = mark
        listed = self.entries(self.store.pending_summaries(chosen.bottle))
        if chosen.bottle is None:
            alive = {entry.id for entry in listed}
            for gone in [proposal_id for proposal_id in self._read if proposal_id not in alive]:
                del self._read[gone]  # decided or archived: nothing to keep
        return [entry for entry in listed if chosen.keep(entry)]

    def remember(self, proposal: Proposal, response: Response | None = None) -> Entry:
        """The entry for a proposal read whole (``store.get``), kept in place of what was read before."""
        entry = Entry(proposal, approval_for(proposal, response, self.routes_base(proposal, response)),
                      shown_digest(proposal))
        self._read[proposal.id] = (entry.approval, entry.digest)
        return entry

    def routes_base(self, proposal: Proposal, response: Response | None = None) -> RoutesBase:
        """What ``proposal``'s file is read against (``routes_base_of``), as its entry's approval was."""
        return routes_base_of(self.store, proposal, response)

    def current(self, entry: Entry) -> Proposal | None:
        """The proposal behind ``entry`` read again, if it is still exactly what the entry was read from.

        None when it changed in the file since (proposals are immutable: it
        was rewritten); the entry is then read afresh for the next look.
        """
        proposal = self.store.get(entry.id)
        if shown_digest(proposal) != entry.digest:
            self.remember(proposal)
            return None
        return proposal


def inbox_title(shown: Sequence[Proposal | ProposalSummary], overview: Sequence[BottleOverview], filters: Filters,
                where: Path) -> str:
    """The TUI's title row: how many pending (``shown``, through ``filters``, named when in force) from how many
    bottles, then each bottle with pending work (its count) and stale ones flagged, then the database (``where``).

    A running bottle whose sidecar went silent is ``STALE``: what it filed
    waits for a caller who is gone.
    """
    bottles = len({proposal.queue_key for proposal in shown})
    listed = [f"{o.bottle.slug} {len(o.pending)}" + (" STALE" if o.bottle.stale() else "")
              for o in overview if o.pending or o.bottle.stale()]
    kept = " shown" if filters.active else ""
    title = f" bot-bottle supervise: {len(shown)} pending{kept} from {bottles} bottle(s)"
    if filters.active:
        named = [filters.words or "", "+warnings" if filters.caution else ""]
        title += f" (filter: {' '.join(part for part in named if part)})"
    return f"{title}: {', '.join(listed)}  {where}" if listed else f"{title}  {where}"
