"""How long what the operator grants may last: each tool's default and maximum, and a pending proposal's life.

An approval is a grant with an end (docs/decisions.md, "Grants have an
end"). Each tool has a default the operator gets without asking, and a
maximum no decision may pass: ``--for`` (or the TUI's and the dashboard's
choice) shortens or extends within it. A pending proposal expires after the
host's ``pending-ttl`` (``bot-bottle config``), within its own bounds.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot_bottle.errors import ValidationError
from bot_bottle.records import (
    REMEMBER_BOTTLE,
    TOOL_EGRESS_ALLOW,
    TOOL_EGRESS_BLOCK,
    TOOL_EGRESS_TOKEN_ALLOW,
    TOOL_GITLEAKS_ALLOW,
)
from bot_bottle.timestamps import spell_duration

HOUR = 3600
DAY = 24 * HOUR


@dataclass(frozen=True)
class Lifetime:
    """A grant's default life and the most any decision may give it, in seconds."""

    default: int
    maximum: int


# An egress route is a standing permission an operator reviews now and then; a token let through is one
# secret leaving the bottle, so it ends the same working day by default; a push's findings are fixed content.
LIFETIMES: dict[str, Lifetime] = {
    TOOL_EGRESS_ALLOW: Lifetime(default=7 * DAY, maximum=90 * DAY),
    TOOL_EGRESS_BLOCK: Lifetime(default=7 * DAY, maximum=90 * DAY),
    TOOL_EGRESS_TOKEN_ALLOW: Lifetime(default=8 * HOUR, maximum=7 * DAY),
    TOOL_GITLEAKS_ALLOW: Lifetime(default=7 * DAY, maximum=90 * DAY),
}
# A standing rejection ("always reject this") may stand for good; one given a time ends then, at most this far off.
MAX_REJECT_RULE_SECONDS = 3650 * DAY
# How long a pending proposal waits for the operator before it is closed as expired (bot-bottle config).
DEFAULT_PENDING_TTL = 24 * HOUR
MIN_PENDING_TTL = 60
MAX_PENDING_TTL = 30 * DAY


def grant_seconds(tool: str, requested: int | None) -> int:
    """How long a grant of ``tool`` lasts: ``requested`` (seconds) held to the tool's maximum, else its default.

    ``ValidationError`` (field ``for``) for a duration past the maximum: one
    line that names both, and nothing is recorded.
    """
    life = LIFETIMES[tool]
    if requested is None:
        return life.default
    if requested > life.maximum:
        raise ValidationError("for", f"{spell_duration(requested)} is longer than {tool} grants may last "
                              f"({spell_duration(life.maximum)}; the default is {spell_duration(life.default)})")
    return requested


def approval_extent(tool: str, bottle: str, requested: int | None, remember: str | None) -> str:
    """What an approval's yes records beyond the proposal, for a second ask: " for 7d, and the same again for
    every bottle until then" (``remember``: the standing rule it makes); ``ValidationError`` as ``grant_seconds``."""
    said = f" for {spell_duration(grant_seconds(tool, requested))}"
    if remember is None:
        return said
    return f"{said}, and the same again for {bottle if remember == REMEMBER_BOTTLE else 'every bottle'} until then"


def pending_ttl_seconds(requested: int) -> int:
    """A ``pending-ttl`` held to its bounds; ``ValidationError`` (field ``pending-ttl``) outside them."""
    if not MIN_PENDING_TTL <= requested <= MAX_PENDING_TTL:
        raise ValidationError("pending-ttl", f"{spell_duration(requested)} is outside what a pending proposal may "
                              f"wait: from {spell_duration(MIN_PENDING_TTL)} to {spell_duration(MAX_PENDING_TTL)}")
    return requested
