"""Standing rules as every operator's screen shows and ends them: ``rules list``, the TUI's rules view and the
dashboard's rules section read a rule's cells here, and ``rules revoke``, the TUI's ``x`` and the dashboard's
button end one through ``revoke_rule``, so that all three revoke what really decides, the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot_bottle.errors import AmbiguousId
from bot_bottle.grant_records import Rule
from bot_bottle.grants import GrantStore
from bot_bottle.policy.approval import shown_subject
from bot_bottle.policy.subjects import describe_subject
from bot_bottle.records import EFFECT_APPROVE, validate_id_prefix
from bot_bottle.standing import rules_in_force
from bot_bottle.timestamps import time_left

NAMED_IDS = 8  # ids an ambiguous prefix matched, named in the refusal


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
        """What the operator is told: that it is revoked, and what it leaves."""
        if self.idle is not None:  # a row a sidecar wrote, or changed: it decided nothing, and made no grant
            return (f"revoked rule {self.rule.short_id}, which decided nothing and made no grant "
                    f"({self.idle.removeprefix('decides nothing: ')})")
        return (f"revoked rule {self.rule.short_id}; the grants it made stay until they end ('grants list', "
                "'grants revoke')")


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
    in_force = [item for item in rules_in_force(store) if item.rule.id.startswith(prefix)]
    deciding = {item.rule.id: item.rule for item in in_force if item.decides}
    idle = {item.rule.id: item.note for item in in_force if not item.decides}
    ids = sorted({*deciding, *(str(row.id) for row in store.rules(include_ended=True)
                               if str(row.id).startswith(prefix))})
    if len(ids) > 1:
        shown = ", ".join(repr(rule_id) for rule_id in ids[:NAMED_IDS])  # whole: a forged id may share 31
        raise AmbiguousId(f"{prefix!r} matches several rules ({shown}): give more digits")
    if deciding:  # as the log proves it, its row or rows (if any) marked
        rule = store.revoke_kept_rule(deciding[ids[0]], reason, revoked_by=revoked_by)
    else:  # none, not in force, or a row that decides nothing
        rule = store.revoke_rule(prefix, reason, revoked_by=revoked_by)
    return RuleRevoked(rule, idle.get(rule.id))
