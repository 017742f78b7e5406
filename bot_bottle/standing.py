"""Decisions the host makes without the operator: standing rules applied, pending proposals expired.

Both need the host's audit key (every decision is sealed), so only host
processes make them: the relay, in the very transaction that files a
relay-backed bottle's proposal, and for every other proposal as soon as it
is committed (``Keeper``, a thread of the relay); and the operator's screens
and commands, which look before they show (``keep``). Several may look at
once: the first decision wins, as for the operator.

- A proposal whose subject a live rule matches is decided by it: approved
  (with a grant that ends when the rule does, or sooner, by the tool's
  default) or rejected, a response naming the rule, and an audit entry. A
  rejecting rule wins over an approving one.
- A proposal still pending at its ``expires_at`` is closed as ``expired``:
  a response, an audit entry, archived; the waiting caller is told, and
  filing the same request again asks the operator again. Silence is not
  consent.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from bot_bottle.audit.rule_proofs import RuleProofs, first_rejection, logged_rejections, standing_rules
from bot_bottle.audit_store import AuditRecorder, AuditStore
from bot_bottle.db import DatabaseUser
from bot_bottle.decisions import expire_in, expired_due, record_decision_in
from bot_bottle.errors import AlreadyDecided, BotBottleError, NotFound, ProposalExpired, ValidationError
from bot_bottle.file_watch import FileWatch
from bot_bottle.grant_records import Grant, Rule, rule_decider
from bot_bottle.grants import all_live_rules_in, live_rules_in
from bot_bottle.policy.approval import asked_beyond, subject_kinds
from bot_bottle.policy.lifetimes import grant_seconds
from bot_bottle.policy.subjects import rule_matches, rule_overlaps, subject_of
from bot_bottle.queue_reads import PENDING, PROPOSAL_COLUMNS
from bot_bottle.queue_store import QueueStore
from bot_bottle.records import (
    EFFECT_APPROVE,
    EFFECT_REJECT,
    STATUS_APPROVED,
    STATUS_REJECTED,
    Decision,
    Proposal,
    Response,
)
from bot_bottle.timestamps import seconds_between, utc_now

KEEP_EVERY_SEC = 5.0  # the keeper's look when nothing wakes it: expiries are due whether or not anyone commits
_NAP_SEC = 0.5


def unproven_line(rule_id: str, why: str) -> str:
    """What to tell the operator of a rule in the file that the audit log does not prove."""
    return (f"rule {rule_id[:8]} decides nothing, as the audit log does not prove it: {why} "
            "('bot-bottle audit verify' says more)")


def describe_failure(exc: Exception) -> str:
    """A failure of a look, in words: the package's own errors as they are, any other with its kind."""
    return str(exc) if isinstance(exc, BotBottleError) else f"{type(exc).__name__}: {exc}"


@dataclass(frozen=True)
class RuleInForce:
    """A rule as the operator's list shows it: the rule, whether it decides anything, where the file and the
    audit log disagree, what each says (``note``; empty: they agree), and, for an approving pattern made before
    what a rule was confirmed for was recorded, the names it leaves to the operator (``unconfirmed``)."""

    rule: Rule
    decides: bool
    note: str = ""
    unconfirmed: str = ""


def rules_in_force(store: DatabaseUser) -> list[RuleInForce]:
    """Every rule in force as the keeper decides with them (``standing_rules``), newest first, and the file's
    rows in force that decide nothing, each with why.

    A sidecar can write the file but not the log: a standing rejection whose
    row it deleted, ended or rewrote still decides, from its sealed entry, and
    a row it wrote decides nothing. The list shows both as they are, so the
    operator can see, and revoke, what really decides.
    """
    now = utc_now()
    proofs = RuleProofs()
    with store.db.read() as conn:
        rows = all_live_rules_in(conn, now)
        proven = proofs.proven(conn, rows)
        logged = proofs.proven(conn, logged_rejections(conn, now, {rule.id for rule in proven}, proofs))
    found = [RuleInForce(rule, True, unconfirmed=_unconfirmed(rule)) for rule in proven]
    found += [RuleInForce(rule, True, "kept by the audit log: its row in the file is missing, ended or changed")
              for rule in logged]
    found += [RuleInForce(rule, False, f"decides nothing: {proofs.unproven[rule.id]}")
              for rule in rows if rule.id in proofs.unproven]
    return sorted(found, key=lambda shown: (str(shown.rule.created_at), str(shown.rule.id)), reverse=True)


def _unconfirmed(rule: Rule) -> str:
    """What to say of an approving pattern made before what a rule was confirmed for was recorded: the names under
    it that the screens ask twice about wait for the operator ("" for any other rule)."""
    kinds = subject_kinds(rule.tool, rule.subject_value) if rule.pattern and rule.effect == EFFECT_APPROVE \
        and rule.confirmed_kinds is None else []
    return (f"made before what a rule was confirmed for was recorded: the names under it asked about twice "
            f"([{','.join(kinds)}]) wait for you ('rules add' it again to approve them)") if kinds else ""


def approving_again(store: DatabaseUser, grant: Grant) -> Rule | None:
    """The approving rule, deciding now, that approves the same as ``grant`` again at its bottle's next ask (as the
    keeper decides a proposal asking for the grant's subject: ``rule_for``), or None: once the grant is revoked,
    that ask is approved at once. Found by what the rule matches, never by the grant's ``rule_id`` or
    ``proposal_id``, which a sidecar can write: a rule named must approve it again, and any that does is named."""
    now = utc_now()
    with store.db.read() as conn:
        rule = rule_for(standing_rules(conn, now, RuleProofs()), grant.queue_key, grant.tool, grant.subject_value)
    return rule if rule is not None and rule.effect == EFFECT_APPROVE else None


def matching_rule(conn: sqlite3.Connection, proposal: Proposal, now: str,
                  rules: list[Rule] | None = None) -> Rule | None:
    """The first live, proven rule that decides ``proposal`` (a rejecting one before an approving one), or None.

    ``rules``: the live rules already read and proven (``keep`` reads them
    once for every proposal it looks at); otherwise they are read here.
    """
    if rules is None:
        proofs = RuleProofs()
        rules = proofs.proven(conn, live_rules_in(conn, proposal.queue_key, proposal.tool, now))
        rules += proofs.proven(conn, logged_rejections(conn, now, {rule.id for rule in rules}, proofs))
    if not any(rule.tool == proposal.tool and rule.queue_key in (None, proposal.queue_key) for rule in rules):
        return None
    try:
        subject = subject_of(proposal.tool, proposal.payload)
    except ValidationError:
        return None  # nothing a rule could match: the operator sees it
    return rule_for(rules, proposal.queue_key, proposal.tool, subject)


def rule_for(rules: list[Rule], queue_key: str, tool: str, subject: dict[str, Any]) -> Rule | None:
    """The first of ``rules`` that decides an ask of bottle ``queue_key`` for ``subject`` (a rejecting one before
    an approving one), or None."""
    rules = [rule for rule in rules if rule.tool == tool and rule.queue_key in (None, queue_key)]
    if not rules or not subject:
        return None  # no subject (a row not as the host writes it): nothing a rule matches
    rejecting = [rule for rule in rules if rule.effect == EFFECT_REJECT]
    rejected = first_rejection(rejecting, queue_key, tool, subject)  # a standing rejection wins
    if rejected is not None:
        return rejected
    # A name under an agent's wildcard the operator rejected from now on is not rejected by it, but asked
    # about: no approving rule decides it either (before, '*.example.com' approved db.internal.example.com
    # past the standing rejection of the agent's '*.internal.example.com').
    if any(rule_overlaps(rule.subject_value, True, tool, subject) for rule in rejecting):
        return None
    for rule in rules:
        # A rule made before what it was confirmed for was recorded: confirmed for nothing (it fails closed).
        if rule.effect != EFFECT_REJECT and approves(rule.subject_value, bool(rule.pattern), tool, subject,
                                                     rule.confirmed_kinds or ()):
            return rule
    return None


def approves(rule_subject: dict[str, Any], pattern: bool, tool: str, subject: dict[str, Any],
             confirmed: Collection[str]) -> bool:
    """Whether an approving rule for ``rule_subject`` (a ``pattern`` or not), confirmed for the kinds ``confirmed``
    (``Rule.confirmed_kinds``), approves an ask for ``subject``: it matches, and, for a pattern, the name is not one
    every screen asks twice about for more than that (``asked_beyond``: that name waits for the operator)."""
    return rule_matches(rule_subject, pattern, tool, subject) and not (
        pattern and asked_beyond(tool, confirmed, subject))


def rule_decision_in(log: AuditRecorder, proposal: Proposal) -> Response | None:
    """Decide ``proposal`` by the first live rule that matches it, in ``log``'s transaction; None when none does."""
    now = utc_now()
    rule = matching_rule(log.conn, proposal, now)
    if rule is None:
        return None
    if rule.effect == EFFECT_REJECT:
        decision = Decision(STATUS_REJECTED, f"standing rule {rule.short_id}: {rule.notes or 'always reject'}",
                            None, rule_decider(rule.id))
    else:
        if rule.ends_at is None:  # an approving rule always ends (add_rule_in): not one the host wrote
            return None
        try:
            left = seconds_between(now, rule.ends_at)
        except ValidationError:
            # No stored time (a row written past the CLI: 'audit verify' names it): the rule decides nothing,
            # and the proposal waits for the operator.
            return None
        seconds = min(grant_seconds(proposal.tool, None), int(left))
        if seconds < 1:
            return None
        # With no notes, say where the rule came from: a remembered decision, or a rule the operator typed.
        said = rule.notes or ("approved before" if rule.proposal_id else "a rule the operator typed")
        decision = Decision(STATUS_APPROVED, f"standing rule {rule.short_id}: {said}",
                            None, rule_decider(rule.id), grant_seconds=seconds)
    response: Response = record_decision_in(log, proposal, decision, rule_id=rule.id)[0]
    return response


def keep(store: QueueStore, *, after: int = 0, unproven: Callable[[str, str], None] | None = None,
         decided_by_rule: Callable[[Proposal, Response], None] | None = None) -> int:
    """One look: rules applied to pending proposals filed after rowid ``after``, and expired ones closed.

    Returns the newest rowid looked at (the next ``after``). Reads first,
    and takes the write lock only where there is something to record. The
    live rules are read and proven once per look; ``unproven(rule_id,
    why)`` is told of each rule in the file that the audit log does not
    prove, which decides nothing; ``decided_by_rule(proposal, response)``
    of each proposal a rule decided in this look.
    """
    now = utc_now()
    proofs = RuleProofs()
    decided: list[str] = []
    with store.db.read() as conn:
        rules = standing_rules(conn, now, proofs)
        window = {"after": after, "newest": int(conn.execute(
            f"SELECT coalesce(max(p.rowid), 0) FROM proposals p WHERE p.rowid > :after AND {PENDING}",
            {"after": after}).fetchone()[0])}
        if rules:  # no rule, nothing to read: a flood of large payloads is never loaded for nothing
            tools = sorted({rule.tool for rule in rules})
            marks = ", ".join(f":tool{index}" for index in range(len(tools)))
            # One proposal at a time: each payload is read, matched and let go (only the ids matched are kept).
            for row in conn.execute(
                    f"SELECT {PROPOSAL_COLUMNS} FROM proposals p WHERE p.rowid > :after AND p.rowid <= :newest "
                    f"AND p.tool IN ({marks}) AND {PENDING} ORDER BY p.rowid",
                    {**window, **{f"tool{index}": tool for index, tool in enumerate(tools)}}):
                proposal = store.proposal_from_row(row)
                if matching_rule(conn, proposal, now, rules=rules) is not None:
                    decided.append(proposal.id)
    if unproven is not None:
        for rule_id, why in proofs.unproven.items():
            unproven(rule_id, why)
    failed: BotBottleError | None = None
    for proposal_id in decided:
        # Decided meanwhile by someone else (the first wins), expired, or gone: left as it is.
        response: Response | None = None  # (a suppressed refusal records none)
        try:
            with contextlib.suppress(AlreadyDecided, ProposalExpired, NotFound), AuditStore.recording(store.db) as log:
                proposal = store.get(proposal_id)
                response = rule_decision_in(log, proposal)
        except BotBottleError as exc:  # this one waits for the operator; the others are decided all the same
            failed = failed or exc
            continue
        if response is not None and decided_by_rule is not None:
            decided_by_rule(proposal, response)
    if expired_due(store, now):
        with AuditStore.recording(store.db) as log:
            expire_in(log, utc_now())
    if failed is not None:  # said, as before (the next look tries again)
        raise failed
    return max(after, window["newest"])


def rules_version(store: QueueStore) -> str:
    """What changes when a rule comes or goes (then a look reads every pending one again); text, never a failure."""
    with store.db.read() as conn:
        return str(conn.execute("SELECT count(*), max(audit_seq), max(revoke_seq) FROM rules").fetchone())


class Keeper:
    """A thread that keeps the standing decisions: ``keep`` after every commit, and every few seconds."""

    def __init__(self, store: QueueStore, log: Callable[[str], None] = lambda line: None) -> None:
        self.store = store
        self._log = log
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="keeper", daemon=True)
        self._rules_seen: str | None = None
        self._told: set[str] = set()  # the unproven rules already logged

    def start(self) -> Keeper:
        """Start looking (returns self)."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop looking and wait for the thread."""
        self._stop.set()
        self._thread.join(10)

    def _unproven(self, rule_id: str, why: str) -> None:
        if rule_id not in self._told:
            self._told.add(rule_id)
            self._log(unproven_line(rule_id, why))

    def _run(self) -> None:
        after, woke, next_look = 0, True, 0.0
        watch = FileWatch.commits(self.store.db.path) if self.store.db.path.exists() else None
        failing = False
        try:
            while not self._stop.is_set():
                if woke or time.monotonic() >= next_look:
                    next_look = time.monotonic() + KEEP_EVERY_SEC
                    try:
                        version = rules_version(self.store)
                        if version != self._rules_seen:  # a rule came or went: every pending proposal again
                            self._rules_seen, after = version, 0
                        after = keep(self.store, after=after, unproven=self._unproven)
                        failing = False
                    except Exception as exc:  # whatever a row in the file does, the keeper goes on
                        if not failing:
                            self._log(f"standing rules and expiry paused: {describe_failure(exc)}")
                        failing = True
                # Short sleeps, so that stop() is prompt; a commit wakes the look at once.
                woke = watch.wait(_NAP_SEC) if watch is not None else self._stop.wait(_NAP_SEC) and False
        finally:
            if watch is not None:
                watch.close()
