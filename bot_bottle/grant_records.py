"""Records of what stands: grants and standing rules, as the stores read them and every screen shows them.

Plain data, as ``records`` is: a grant is what one bottle may do because a
proposal was approved, from its start until its end; a rule is a standing
decision on every matching proposal to come. ``grants`` stores both; each
maps from its table's row (``grant_from_row``, ``rule_from_row``) and to what
its audit entry records of it (``grant_record``, ``rule_record``), which
``audit verify`` and the relay hold the row to.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from typing import Any

from bot_bottle.records import SHORT_ID_LENGTH

# Who decided what a standing rule decided (``responses.decided_by``): this, then the rule's whole id.
RULE_DECIDER_PREFIX = "rule "


def rule_decider(rule_id: str) -> str:
    """``decided_by`` of a decision the standing rule ``rule_id`` made (``rule`` and its whole id)."""
    return RULE_DECIDER_PREFIX + rule_id


class _Standing:
    """What a grant and a rule have in common: a subject, an end, a revocation."""

    id: str
    subject: str
    ends_at: str | None
    revoked_at: str | None

    @property
    def short_id(self) -> str:
        """The first 8 hex digits, as listings show the id."""
        return self.id[:SHORT_ID_LENGTH]

    @property
    def subject_value(self) -> dict[str, Any]:
        """The subject as a dict (stored as canonical JSON); ``{}``, which covers nothing, for one that is not a
        JSON object (a row a sidecar wrote: no listing, screen or sidecar's question may fail on it)."""
        try:
            value = json.loads(self.subject)
        except (TypeError, ValueError, RecursionError):
            return {}
        return value if isinstance(value, dict) else {}

    def live(self, now: str) -> bool:
        """In force at ``now`` (stored form): not revoked and not past its end."""
        return self.revoked_at is None and (self.ends_at is None or now < self.ends_at)

    def to_dict(self) -> dict[str, Any]:
        """The record as a JSON-ready dict, its fields in order (the subject as an object)."""
        data = {name: getattr(self, name) for name in self.__dataclass_fields__}  # type: ignore[attr-defined]
        data["subject"] = self.subject_value
        return data


@dataclass(frozen=True)
class Grant(_Standing):
    """What one bottle may do because a proposal was approved: a subject, from ``starts_at`` until ``ends_at``.

    ``rule_id`` names the standing rule that approved it (None: the
    operator did); ``audit_seq`` is the audit entry that recorded it.
    """

    id: str
    queue_key: str
    tool: str
    subject: str
    subject_sha256: str
    starts_at: str
    ends_at: str
    proposal_id: str
    rule_id: str | None
    decided_by: str
    audit_seq: int
    revoked_at: str | None = None
    revoked_by: str | None = None
    revoke_reason: str | None = None
    revoke_seq: int | None = None


@dataclass(frozen=True)
class Rule(_Standing):
    """A standing decision: ``effect`` for every matching proposal of ``queue_key`` (None: every bottle).

    An approving rule ends (``ends_at``); a rejecting one may stand for good.
    ``pattern`` is 1 when the operator typed a wildcard host; a subject an
    agent proposed is matched exactly. ``confirmed`` (JSON) is what an
    approving rule was confirmed for (``confirmed_kinds``).
    """

    id: str
    queue_key: str | None
    tool: str
    subject: str
    subject_sha256: str
    pattern: int
    effect: str
    notes: str
    created_at: str
    ends_at: str | None
    created_by: str
    proposal_id: str | None
    audit_seq: int
    revoked_at: str | None = None
    revoked_by: str | None = None
    revoke_reason: str | None = None
    revoke_seq: int | None = None
    confirmed: str | None = None

    @property
    def confirmed_kinds(self) -> list[str] | None:
        """What an approving rule was confirmed for when it was made: the kinds every screen asks about twice that
        its subject carried then (``policy.approval.subject_kinds``), in order; None for a rejecting rule, a rule
        made before this was recorded, and a value that is not a list of names (a row a sidecar wrote)."""
        try:
            value = json.loads(self.confirmed) if self.confirmed is not None else None
        except (TypeError, ValueError, RecursionError):
            return None
        return value if isinstance(value, list) and all(isinstance(kind, str) for kind in value) else None

    def to_dict(self) -> dict[str, Any]:
        """The record as a JSON-ready dict (``_Standing.to_dict``), ``confirmed`` as a list."""
        return {**super().to_dict(), "confirmed": self.confirmed_kinds}


# The grants table's columns in ``Grant``'s order, as a query aliasing the table ``g`` selects them.
GRANT_COLUMNS = ", ".join(f"g.{f.name}" for f in fields(Grant))
RULE_COLUMNS = ", ".join(f"r.{f.name}" for f in fields(Rule))


def row_values(row: tuple[Any, ...]) -> list[Any]:
    """A row of the grants or rules table as its record reads it: a blob, which bot-bottle never writes (a
    sidecar can, in a table it rebuilt), as its SQL literal text, which no sealed entry records. Before, one
    blob stopped every standing rule and expiry on the host, 'rules list', 'grants list', and 'rules add
    --reject' where it would end a live grant."""
    return [f"x'{value.hex()}'" if isinstance(value, bytes) else value for value in row]


def grant_from_row(row: tuple[Any, ...]) -> Grant:
    """Map a row of the grants table (``GRANT_COLUMNS``) to a ``Grant``."""
    return Grant(*row_values(row))


def rule_from_row(row: tuple[Any, ...]) -> Rule:
    """Map a row of the rules table (``RULE_COLUMNS``) to a ``Rule`` (``row_values``)."""
    return Rule(*row_values(row))


def grant_record(grant_id: str, tool: str, subject: dict[str, Any], starts_at: str, ends_at: str,
                 rule_id: str | None = None) -> dict[str, Any]:
    """What a decision's audit entry records of the grant it made (``audit verify`` holds the row to it)."""
    return {"id": grant_id, "tool": tool, "subject": subject, "starts_at": starts_at, "ends_at": ends_at,
            "rule_id": rule_id}


def rule_record(rule: Rule) -> dict[str, Any]:
    """What a ``rule-added`` entry records of the rule (``audit verify`` holds the row to it)."""
    return {"id": rule.id, "bottle": rule.queue_key, "tool": rule.tool, "subject": rule.subject_value,
            "pattern": bool(rule.pattern), "effect": rule.effect, "created_at": rule.created_at,
            "ends_at": rule.ends_at, "proposal_id": rule.proposal_id}
