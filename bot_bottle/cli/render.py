"""How a proposal reads to a person: the text ``proposals show`` prints and the TUI's detail view."""

from __future__ import annotations

import json

from bot_bottle.cli.common import age
from bot_bottle.records import STATUS_APPROVED, STATUS_MODIFIED, STATUS_PENDING, Proposal, Response
from bot_bottle.supervise import decision_diff


def _report_text(payload: str) -> str:
    try:
        return json.dumps(json.loads(payload), indent=2, ensure_ascii=False)
    except ValueError:
        return payload


def describe(proposal: Proposal, response: Response | None) -> str:
    """The human description ``proposals show`` prints."""
    lines = [
        f"proposal  {proposal.id}",
        f"bottle    {proposal.queue_key}",
        f"tool      {proposal.tool}",
        f"filed     {proposal.created_at} ({age(proposal.created_at)} ago)",
    ]
    if response is None:
        lines.append(f"status    {STATUS_PENDING}")
    else:
        lines.append(f"status    {response.status} by {response.decided_by} at {response.decided_at}")
        if response.notes:
            lines.append(f"notes     {response.notes}")
    if proposal.archived_at:
        lines.append(f"archived  {proposal.archived_at}")
    lines += ["", "justification:", *("  " + line for line in proposal.justification.splitlines())]
    if proposal.report_only:
        lines += ["", "report:", *("  " + line for line in _report_text(proposal.payload).splitlines())]
    else:
        status = response.status if response else STATUS_APPROVED
        final = response.final_file if response else None
        diff = decision_diff(proposal, status, final)
        label = "current -> final" if status == STATUS_MODIFIED else "current -> proposed"
        lines += ["", f"diff ({label}):", diff.rstrip("\n") or "  (no change)"]
    return "\n".join(lines)
