"""Which standing rules this host's audit log proves, and the standing rejection that rejects an ask.

A sidecar on the mount can write any row into ``rules`` but cannot seal an
audit entry. A rule decides only where its ``rule-added`` entry, sealed by
this host's key, proves it and no revocation the log records ended it
(``RuleProofs``); a standing rejection whose row the file lost or changed is
read from its sealed entry (``logged_rejections``). ``standing`` decides
with these (the keeper, the lists); ``decisions`` asks ``rejecting_rule``
before an operator's approval makes a grant, so no grant is made beside a
standing rejection of what it grants (the rejection ends those live when it
is made; one made after it would outlive it).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from bot_bottle.audit.anchor import Anchor
from bot_bottle.audit.chain import stored_details
from bot_bottle.audit.forensics import REVOCATION_ERASED, revocations, rule_problem
from bot_bottle.audit.grant_entries import sealed_rule_revocation
from bot_bottle.audit.host_seal import host_sealing
from bot_bottle.audit.whole import whole_log
from bot_bottle.connection import database_path
from bot_bottle.grant_records import Rule, rule_record
from bot_bottle.grants import all_live_rules_in, live_rules_in
from bot_bottle.policy.subjects import rule_matches, subject_sha256
from bot_bottle.records import ACTION_RULE_REVOKED, EFFECT_REJECT, canonical_json


class RuleProofs:
    """Which rules this host's audit log proves (``forensics.rule_problem``), each proven once per look.

    A sidecar can write a row into ``rules``; only a rule whose
    ``rule-added`` entry carries this host's seal, and was not revoked,
    decides anything. ``unproven`` holds why each other rule did not.
    """

    def __init__(self) -> None:
        self._seen: dict[str, str | None] = {}
        self._sealing: tuple[bytes | None, Anchor | None] | None = None  # the key and anchor, read when needed
        self.unproven: dict[str, str] = {}

    def proven(self, conn: sqlite3.Connection, rules: list[Rule]) -> list[Rule]:
        """The rules of ``rules`` the log proves, each id once (copies of a row are proven once, kept once)."""
        kept: dict[str, Rule] = {}
        for rule in rules:
            if not rule.subject_value:  # a subject that is not a JSON object: no rule the host wrote
                self.unproven[rule.id] = "its subject is not what bot-bottle writes"
                continue
            recorded = rule_record(rule)
            # What the proof reads of the row: a copy differing elsewhere (a revocation's reason) is the same.
            mark = json.dumps([rule.id, rule.audit_seq, rule.created_by, rule.notes, rule.revoked_at, recorded,
                               rule.confirmed], sort_keys=True)
            if mark not in self._seen:
                if self._sealing is None:
                    self._sealing = host_sealing(conn)
                self._seen[mark] = rule_problem(conn, rule, recorded, *self._sealing)
            problem = self._seen[mark]
            if problem == REVOCATION_ERASED and rule.effect == EFFECT_REJECT and not self.revoked(conn, rule.id):
                # Only a revocation the host sealed ends a rejection: what the row and its entry say still holds.
                problem = rule_problem(conn, replace(rule, revoked_at="(unsealed revocation)"), recorded,
                                       *(self._sealing or (None, None)))
            if problem is not None:
                self.unproven[rule.id] = problem
            elif rule.id not in kept:
                kept[rule.id] = rule
        for rule_id in kept:  # a second row with a proven rule's id (a sidecar's copy): the rule still decides
            self.unproven.pop(rule_id, None)
        approving = [rule for rule in kept.values() if rule.effect != EFFECT_REJECT]
        # That an approval was not revoked is read from the entries after it (audit.whole): a rejection still holds.
        broken = whole_log(conn).problem(conn, min(rule.audit_seq for rule in approving),
                                         *(self._sealing or (None, None))) if approving else None
        for rule in approving if broken is not None else []:
            self.unproven[rule.id] = f"{broken}, so its revocation cannot be read"
            del kept[rule.id]
        return list(kept.values())

    def revoked(self, conn: sqlite3.Connection, rule_id: str) -> bool:
        """Whether a ``rule-revoked`` entry this host sealed names ``rule_id``.

        ``forensics.Revocations`` counts every entry that says so, which ends an approval whatever wrote it
        (failing closed); a rejection it would end is failing open. A sidecar rewrote a sealed entry of the
        log into a ``rule-revoked`` naming the operator's rejection of secret.example.com: before, that
        rejection decided nothing, and an approving ``*.example.com`` rule approved secret.example.com.
        """
        path = database_path(conn) or ""
        if (path, rule_id) in _SEALED_REVOCATIONS:  # sealed once, revoked for good
            return True
        if sealed_rule_revocation(conn, rule_id) is None:
            return False
        _SEALED_REVOCATIONS.add((path, rule_id))
        return True


_SEALED_REVOCATIONS: set[tuple[str, str]] = set()  # (database, rule id): proven revoked, in this process


def logged_rejections(conn: sqlite3.Connection, now: str, known: set[str], proofs: RuleProofs) -> list[Rule]:
    """The rejecting rules the audit log records as added and in force at ``now`` whose ids are not in ``known``
    (the proven rules read from the file), as their entries record them: for ``RuleProofs`` to prove.

    A sidecar can delete, end, revoke or rewrite a rule's row (it can write the file), but not its sealed
    entry: read from the file alone, a standing rejection it removed decided nothing, and an approving rule
    approved what it rejected. A revocation the log records still ends it (``rule_problem``).
    """
    found, logged = [], revocations(conn)
    revoked = logged.ids(conn, ACTION_RULE_REVOKED)
    for rule_id, seqs in logged.rejecting(conn).items():
        if rule_id in known or (rule_id in revoked and proofs.revoked(conn, rule_id)):  # by the operator
            continue
        # Each entry that names it, for RuleProofs to prove: a sidecar's rewritten entry claiming the id of the
        # operator's rejection (a later one, read over the real one before) must not take its place.
        found += [rule for rule in (_logged_rule(conn, rule_id, seq) for seq in seqs) if rule is not None
                  and (rule.ends_at is None or (isinstance(rule.ends_at, str) and rule.ends_at > now))]
    return found


def _logged_rule(conn: sqlite3.Connection, rule_id: str, seq: int) -> Rule | None:
    """The rejecting rule ``rule_id`` as the ``rule-added`` entry ``seq`` records it (unproven), or None."""
    row = conn.execute("SELECT actor, notes, details FROM audit_log WHERE seq = :seq", {"seq": seq}).fetchone()
    record = (stored_details(row[2]) or {}).get("rule") if row is not None else None
    if row is None or not isinstance(record, dict) or not isinstance(record.get("subject"), dict):
        return None
    try:
        return Rule(id=rule_id, queue_key=record["bottle"], tool=record["tool"],
                    subject=canonical_json(record["subject"]),
                    subject_sha256=subject_sha256(str(record["tool"]), record["subject"]),
                    pattern=int(bool(record["pattern"])), effect=EFFECT_REJECT, notes=row[1],
                    created_at=record["created_at"], ends_at=record["ends_at"], created_by=row[0],
                    proposal_id=record["proposal_id"], audit_seq=seq)
    except (KeyError, TypeError, ValueError):
        return None


def standing_rules(conn: sqlite3.Connection, now: str, proofs: RuleProofs) -> list[Rule]:
    """Every bottle's rules in force at ``now`` that the audit log proves: the file's, and the log's
    rejections whose rows the file lost or changed (``logged_rejections``)."""
    rules = proofs.proven(conn, all_live_rules_in(conn, now))
    return rules + proofs.proven(conn, logged_rejections(conn, now, {rule.id for rule in rules}, proofs))


def rejecting_rule(conn: sqlite3.Connection, queue_key: str, tool: str, subject: dict[str, Any],
                   now: str) -> Rule | None:
    """The first live standing rejection the audit log proves that rejects an ask of bottle ``queue_key`` for
    ``subject`` (as the keeper would decide it: ``standing.rule_for``'s rejecting half), or None.

    Read in the deciding transaction of an operator's approval: a proposal
    the rule had not yet decided (no host process had looked since it was
    filed, or since the rule was made) was approved by id, and its grant
    stood beside "never this" for days."""
    return first_rejection(standing_rejections(conn, queue_key, tool, now), queue_key, tool, subject)


def standing_rejections(conn: sqlite3.Connection, queue_key: str, tool: str, now: str) -> list[Rule]:
    """The standing rejections of ``tool`` in force at ``now`` for bottle ``queue_key`` (its own and every
    bottle's) that the audit log proves, as the keeper decides with them: the file's, and the log's whose rows the
    file lost or changed (``logged_rejections``). What ``rejecting_rule`` holds an approval to, and what a routes
    file naming a host one rejects is said to be (``audit.routes_approved``)."""
    proofs = RuleProofs()
    rules = proofs.proven(conn, [rule for rule in live_rules_in(conn, queue_key, tool, now)
                                 if rule.effect == EFFECT_REJECT])  # (the log's own rejections are read below)
    rules += proofs.proven(conn, logged_rejections(conn, now, {rule.id for rule in rules}, proofs))
    return [rule for rule in rules if rule.tool == tool and rule.queue_key in (None, queue_key)
            and rule.effect == EFFECT_REJECT]


def first_rejection(rules: Iterable[Rule], queue_key: str, tool: str, subject: dict[str, Any]) -> Rule | None:
    """The first of ``rules`` that rejects an ask of bottle ``queue_key`` for ``subject``: a standing rejection of
    ``tool``, for that bottle or every bottle, that matches it as a rejection matches (more methods, a narrower
    path, a wildcard over its host: ``rule_matches(..., rejects=True)``), or None. The keeper's
    (``standing.rule_for``) and an operator's approval's (``rejecting_rule``) one reading."""
    for rule in rules:
        if rule.tool == tool and rule.queue_key in (None, queue_key) and rule.effect == EFFECT_REJECT \
                and rule_matches(rule.subject_value, bool(rule.pattern), tool, subject, rejects=True):
            return rule
    return None
