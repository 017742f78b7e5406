"""How a proposal reads to a person: the text ``proposals show`` prints and the TUI's detail view."""

from __future__ import annotations

import json

from bot_bottle.cli.common import age
from bot_bottle.records import (
    STATUS_APPROVED,
    STATUS_MODIFIED,
    STATUS_PENDING,
    TOOL_EGRESS_TOKEN_ALLOW,
    TOOL_GITLEAKS_ALLOW,
    Proposal,
    Response,
)
from bot_bottle.supervise import decision_diff


def _report_text(payload: str) -> str:
    try:
        return json.dumps(json.loads(payload), indent=2, ensure_ascii=False)
    except ValueError:
        return payload


def findings_report(payload: str) -> list[str]:
    """A gitleaks-allow proposal as a findings table (raw JSON if it is not the expected shape)."""
    try:
        document = json.loads(payload)
        findings = document["findings"]
        pushed = document.get("pushed", [])
        rows = [(str(f["ref"]).removeprefix("refs/heads/"), str(f["commit"])[:8], f"{f['file']}:{f['line']}",
                 str(f["rule"]), str(f["line_text"])) for f in findings]
    except (ValueError, KeyError, TypeError):
        return _report_text(payload).splitlines()
    lines = [f"pushed: {', '.join(str(p['ref']) for p in pushed)}" if pushed else "pushed: (unknown)",
             f"{len(rows)} finding(s) marked '# gitleaks:allow' (secrets shown as ********):", ""]
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(("REF", "COMMIT", "FILE:LINE", "RULE"))]
    header = ("REF", "COMMIT", "FILE:LINE", "RULE")
    lines.append("  ".join(h.ljust(widths[i]) for i, h in enumerate(header)).rstrip())
    for row in rows:
        lines.append("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:4])).rstrip())
        lines.append(f"    {row[4]}")
    return lines


def dlp_report(payload: str) -> list[str]:
    """An egress-token-allow proposal as the DLP report (raw JSON if it is not the expected shape)."""
    try:
        document = json.loads(payload)
        return [
            f"request:   {document['method']} https://{document['host']}{document['path']}",
            f"detector:  {document['detector']}",
            f"token:     {document['value_length']} characters (shown as ********)",
            f"context:   {document['snippet']}",
        ]
    except (ValueError, KeyError, TypeError):
        return _report_text(payload).splitlines()


def report_lines(proposal: Proposal) -> list[str]:
    """The readable report of a report-only proposal."""
    if proposal.tool == TOOL_GITLEAKS_ALLOW:
        return findings_report(proposal.payload)
    if proposal.tool == TOOL_EGRESS_TOKEN_ALLOW:
        return dlp_report(proposal.payload)
    return _report_text(proposal.payload).splitlines()


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
        lines += ["", "report:", *("  " + line for line in report_lines(proposal))]
    else:
        status = response.status if response else STATUS_APPROVED
        final = response.final_file if response else None
        diff = decision_diff(proposal, status, final)
        label = "current -> final" if status == STATUS_MODIFIED else "current -> proposed"
        lines += ["", f"diff ({label}):", diff.rstrip("\n") or "  (no change)"]
    return "\n".join(lines)
