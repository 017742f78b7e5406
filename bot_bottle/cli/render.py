"""How a proposal reads to a person: the text ``proposals show`` prints, the TUI's detail view and the lists' cells.

Everything here builds raw text, agent text included; what shows it passes
it through ``text.terminal`` (``print_untrusted`` in the CLI, the TUI's
drawing, ``text.html`` in the dashboard). The operator decides on meaning as
well as text: what approving grants comes first (``policy.approval``, with
its warnings), then the route's document, the routes-file diff with its
added lines that widen access marked, or the report; the agent's
justification comes last, under its own heading and cut to a bounded height.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from bot_bottle.audit.routes_approved import RoutesBase
from bot_bottle.cli.common import NARROW_BELOW, ROLE_STYLES, UNREADABLE, Shown, age, first_line, piped
from bot_bottle.cli.inbox import approval_for, file_approval
from bot_bottle.decisions import decision_diff
from bot_bottle.policy.approval import Approval
from bot_bottle.policy.hosts import shown_host
from bot_bottle.policy.routes import file_widening, is_diff_header, validate_final_file, widening_lines
from bot_bottle.records import (
    STATUS_APPROVED,
    STATUS_EXPIRED,
    STATUS_MODIFIED,
    STATUS_PENDING,
    TOOL_EGRESS_ALLOW,
    TOOL_EGRESS_TOKEN_ALLOW,
    TOOL_GITLEAKS_ALLOW,
    Proposal,
    ProposalSummary,
    Response,
)
from bot_bottle.text import terminal
from bot_bottle.text.diffs import normal_json, render_diff
from bot_bottle.timestamps import time_left, utc_now

WARNING = "WARNING:"
# How much of the agent's justification a detail shows before "show all": its words come last, bounded, so a
# justification cannot push what approving grants (or a warning) out of sight.
JUSTIFICATION_LINES = 12
JUSTIFICATION_CHARS = 2000
# The grants column of a list, in display columns.
GRANTS_WIDTH = 56


def _report_text(payload: str) -> list[str]:
    try:
        return json.dumps(json.loads(payload), indent=2, ensure_ascii=False).split("\n")
    except (ValueError, RecursionError):
        return payload.split("\n")


def unreadable(payload: str) -> list[str]:
    """A report that is not in its tool's shape: said so, then the raw text (escaped where shown)."""
    return ["unreadable report (not in the shape its tool writes); the raw text:", *_report_text(payload)]


def findings_report(payload: str) -> list[str]:
    """A gitleaks-allow proposal as a findings table (an unreadable report if it is not the expected shape)."""
    try:
        document = json.loads(payload)
        findings = document["findings"]
        pushed = document.get("pushed", [])
        rows = [(str(f["ref"]).removeprefix("refs/heads/"), str(f["commit"])[:8], f"{f['file']}:{f['line']}",
                 str(f["rule"]), str(f["line_text"])) for f in findings]
        refs = [str(p["ref"]) for p in pushed]
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError):
        return unreadable(payload)
    lines = [f"pushed: {', '.join(refs)}" if refs else "pushed: (unknown)",
             f"{len(rows)} finding(s) marked '# gitleaks:allow' (secrets shown as ********):", ""]
    header = ("REF", "COMMIT", "FILE:LINE", "RULE")
    # Columns as they will be shown (an escape takes the columns of its visible form, a wide character two),
    # so a file name with escapes or wide characters cannot shift the columns after it.
    widths = [max([len(h)] + [_shown_width(r[i]) for r in rows]) for i, h in enumerate(header)]
    lines.append("  ".join(h.ljust(widths[i]) for i, h in enumerate(header)).rstrip())
    for row in rows:
        lines.append("  ".join(cell + " " * (widths[i] - _shown_width(cell))
                               for i, cell in enumerate(row[:4])).rstrip(" "))
        lines.append(f"    {row[4]}")
    return lines


def _shown_width(text: str) -> int:
    return terminal.width(terminal.line(text))


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
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError):
        return unreadable(payload)


def report_lines(proposal: Proposal) -> list[str]:
    """The readable report of a report-only proposal."""
    if proposal.tool == TOOL_GITLEAKS_ALLOW:
        return findings_report(proposal.payload)
    if proposal.tool == TOOL_EGRESS_TOKEN_ALLOW:
        return dlp_report(proposal.payload)
    return _report_text(proposal.payload)


def marked_diff(diff: str, final: str | None = None) -> list[str]:
    """A routes-file diff with a gutter: ``!`` marks an added line that widens access, with a warning above.

    Every character of the file outside printable ASCII is shown as its escape (``pypi\\u2024org``).

    The gutter is ours alone (every diff line is shifted right by two), so
    file text cannot fake or hide a mark. With ``final`` (the file the
    decision puts in place), lines of it that widen access but are not added
    (a change elsewhere, such as renaming the section they are in, can put
    them in effect, and they may lie outside the diff's context, or the
    "current" file the diff starts from may be a sidecar's lie) are named
    too, with their line numbers and text.
    """
    widening = widening_lines(diff)
    lines: list[str] = []
    if widening:
        lines.append(Shown(f"{WARNING} {len(widening)} added line(s) widen access (marked !):", "warning"))
        lines += [Shown(f"  {shown_host('; '.join(reasons))}", "warning") for reasons in widening.values()]
    if final is not None:
        # Even with no diff: "current" is what the sidecar filed as current, and a sidecar that lies about
        # it can make a widening file look unchanged.
        added = {text[1:] for index, text in enumerate(diff.split("\n")) if index in widening}
        every = final.split("\n")  # once: a file of many such lines must not be split for each
        kept = {number: reasons for number, reasons in file_widening(final).items()
                if every[number - 1] not in added}
        if kept:
            lines.append(Shown(f"{WARNING} the file keeps {len(kept)} unchanged line(s) that widen access where "
                               "they are in effect (check the change does not put them in effect):", "warning"))
            lines += [Shown(shown_host(f"  line {number}: {every[number - 1].strip()}  ({'; '.join(reasons)})"),
                            "warning") for number, reasons in kept.items()]
    body = diff.rstrip("\n")
    if not body:
        return [*lines, "    (no change)"]
    for index, text in enumerate(body.split("\n")):
        role = "heading" if is_diff_header(body, index) else _diff_role(text)
        # A routes file is hosts, methods and paths: any character outside printable ASCII is written as its
        # escape, here as in the grant above it, so that a look-alike host never reads as the host it mimics.
        lines.append(Shown(("! " if index in widening else "  ") + shown_host(text),
                           "warning" if index in widening else role))
    return lines


def _diff_role(text: str) -> str:
    if text.startswith("+"):
        return "added"
    if text.startswith("-"):
        return "removed"
    return "hunk" if text.startswith("@@") else ""


def shown_status(proposal: Proposal | ProposalSummary, response: Response | None) -> str:
    """What a listing calls a proposal's state: its decision, ``expired`` once past its end, else ``pending``."""
    if response is not None:
        return response.status
    expires_at = proposal.expires_at
    return STATUS_EXPIRED if isinstance(expires_at, str) and expires_at <= utc_now() else STATUS_PENDING


def left_cell(proposal: Proposal | ProposalSummary, response: Response | None, now: str) -> str:
    """A listing's LEFT: how long a pending proposal may still wait for a decision (then it expires, its caller
    told no); "-" for one decided or expired."""
    if response is not None or proposal.expires_at is None:
        return "-"
    left = time_left(now, proposal.expires_at)
    return "-" if left == "ended" else left


def proposal_json(proposal: Proposal | ProposalSummary, response: Response | None,
                  approval: Approval | None = None) -> dict[str, Any]:
    """A proposal (whole, or a listing's summary) and its decision as one JSON object.

    ``status`` is ``pending``, ``expired`` (past its end, not closed yet) or the decision; with
    ``approval``, ``grants`` says what approving grants (``Approval.to_dict``).
    """
    shown = {
        **proposal.to_dict(),
        "short_id": proposal.short_id,
        "status": shown_status(proposal, response),
        "response": response.to_dict() if response else None,
    }
    if approval is not None:
        shown["grants"] = approval.to_dict()
    return shown


def grant_cell(approval: Approval, width: int = GRANTS_WIDTH) -> terminal.Line:
    """A list's grants column: the cautions' kinds as a badge (``[widens]``, in the warning colour), then what
    approving grants, cut to ``width`` columns on a terminal (piped, a script gets all of it)."""
    badge = terminal.coloured(terminal.line(f"[{','.join(approval.kinds)}] "), ROLE_STYLES["warning"]) \
        if approval.kinds else []
    cell = [*badge, *terminal.line(approval.summary)]
    return cell if piped() else terminal.fit(cell, width)


LEFT_FROM_WIDTH = 120  # a screen this wide has a LEFT column too: narrower, what approving grants keeps the room
# Narrower than this, a row drops its TOOL and AGE (the detail view has both; what approving grants says the
# tool in its words): at 60 columns they left the grants 8 columns, at 40 none, for what each row is about; at
# 80, the common terminal, 28 ('docs.python.org (any method…'), fewer than at 79 without them (53).
TOOL_FROM_WIDTH = NARROW_BELOW  # the command line's tables leave out the same columns below it


def inbox_row(proposal: Proposal | ProposalSummary, approval: Approval, width: int, *,
              new: bool = False, now: str | None = None) -> terminal.Line:
    """The TUI's list row: id, bottle, tool and age (from ``TOOL_FROM_WIDTH`` columns), time left (from
    ``LEFT_FROM_WIDTH``), what approving grants (badge first), then the agent's words (``inbox_heading`` names
    the columns).

    What approving grants has all the room it needs up to the row's end, and
    the agent's words only what is left (none, where the grants need the
    end: not two columns of it given up to the words' ellipsis); on a wide
    screen the grants stand in a column of 3/5 of the room, so the rows'
    words line up.
    """
    left = left_cell(proposal, None, now or utc_now()) if width >= LEFT_FROM_WIDTH else None
    tool, age_cell = (proposal.tool, age(proposal.created_at)) if width >= TOOL_FROM_WIDTH else (None, None)
    row = _leading_cells(f"{'*' if new else ' '} {proposal.short_id}", proposal.queue_key, tool, age_cell, left)
    room = max(20, width - terminal.width(row) - 2)
    grants = grant_cell(approval, room)
    if terminal.width(grant_cell(approval, room + 3)) > room:  # it needs the row's end: no gap, no words after it
        return terminal.fit([*row, *grant_cell(approval, room + 2)], width)
    row += terminal.pad(grants, max(terminal.width(grants), room * 3 // 5) + 2)
    row += [terminal.Segment("agent: ", False, ROLE_STYLES["dim"]), *terminal.line(first_line(proposal.justification))]
    return terminal.fit(row, width)


def inbox_heading(width: int) -> terminal.Line:
    """The names of ``inbox_row``'s columns at ``width``, over them (the agent's words, last, are labelled in each
    row: ``agent:``)."""
    wide = width >= TOOL_FROM_WIDTH
    row = _leading_cells("  ID", "BOTTLE", "TOOL" if wide else None, "AGE" if wide else None,
                         "LEFT" if width >= LEFT_FROM_WIDTH else None)
    return terminal.fit([*row, terminal.Segment("GRANTS (what approving grants)")], width)


def _leading_cells(first: str, bottle: str, tool: str | None, age_cell: str | None,
                   left: str | None) -> terminal.Line:
    """A list row's cells before the grants: 10 columns, the bottle in 12, the tool in 18, then the age in 4 and
    the time left in 6, right-aligned as numbers are (``unreadable``, for a stored time that is not one, whole);
    a cell given as None is left out."""
    row = terminal.pad(terminal.line(first), 12)
    row += terminal.pad(terminal.fit(terminal.line(bottle), 12), 13)
    if tool is not None:
        row += terminal.pad(terminal.fit(terminal.line(tool), 18), 19)
    times = (f"{age_cell:>4}  " if age_cell is not None else "") + (f"{left:>6}  " if left is not None else "")
    if times:
        row.append(terminal.Segment(times))
    return row


def _ago(timestamp: str) -> str:
    shown = age(timestamp)
    return shown if shown == UNREADABLE else f"{shown} ago"


def describe(proposal: Proposal, response: Response | None, unproven: str | None = None, *, full: bool = False,
             more: str = "", base: RoutesBase | None = None) -> list[str]:
    """What ``proposals show`` and the TUI's detail view print, one item a screen line.

    What approving grants comes first, then the route, diff or report, and
    the agent's justification last, cut to ``JUSTIFICATION_LINES`` unless
    ``full`` (``more`` says how to see the rest). Items are raw (agent text
    included): show each with ``terminal.line``, so a newline inside a
    single-line field (a file name in a report, the decider) shows as an
    escape instead of starting a line that could pass for one of ours.
    ``unproven`` is why the audit log does not prove the decision
    (``AuditStore.decision_problem``), shown as a warning under it. The file
    is read against ``base`` (``inbox.routes_base_of``; the sidecar's current
    file when None).
    """
    return [*header_lines(proposal, response, unproven), "",
            *approval_lines(approval_for(proposal, response, base), approval_heading(response)),
            "", *body_lines(proposal, response, base), "", *agent_lines(proposal.justification, full=full, more=more)]


def header_lines(proposal: Proposal, response: Response | None, unproven: str | None = None) -> list[str]:
    """Which proposal this is and its state: id, bottle, tool, when filed, its decision (or when it expires)."""
    lines = [
        f"proposal  {proposal.id}",
        f"bottle    {proposal.queue_key}",
        f"tool      {proposal.tool}",
        f"filed     {proposal.created_at} ({_ago(proposal.created_at)})",
    ]
    if response is None:
        state = shown_status(proposal, None)
        lines.append(f"status    {state}" + (f" (at {proposal.expires_at}: it can no longer be approved)"
                                                 if state == STATUS_EXPIRED else
                                                 f" (expires {proposal.expires_at}, in "
                                                 f"{time_left(utc_now(), proposal.expires_at)})"
                                                 if proposal.expires_at else ""))
    else:
        lines.append(f"status    {response.status} by {response.decided_by} at {response.decided_at}")
        if unproven:
            lines.append(Shown(f"{WARNING} the audit log does not prove this decision: {unproven}; it may have "
                               "been written into the database by a sidecar ('bot-bottle audit verify')", "warning"))
        if response.notes:
            lines += ["notes:", *("  " + line for line in response.notes.split("\n"))]
    if proposal.archived_at:
        lines.append(f"archived  {proposal.archived_at}")
    return lines


def approval_heading(response: Response | None) -> str:
    """The title over what approving grants: it grants, it granted, or it would have."""
    if response is None:
        return "approving grants:"
    return {STATUS_APPROVED: "the approval granted:", STATUS_MODIFIED: "the modification granted:"}.get(
        response.status, "approving would have granted:")


def approval_lines(approval: Approval, heading: str) -> list[str]:
    """What an approval grants, one item a line under ``heading``, then each caution as a ``WARNING:`` line."""
    return [Shown(heading, "heading"), *("  " + item for item in approval.grants),
            *(Shown(f"{WARNING} {caution.kind}: {caution.text}", "warning") for caution in approval.cautions)]


def body_lines(proposal: Proposal, response: Response | None, base: RoutesBase | None = None) -> list[str]:
    """What the proposal holds: the report of a report-only tool, else the diff of its file, marked; from
    ``base``'s file (labelled "last approved" where it is not the sidecar's current one, or "no file" where it is
    read against none the sidecar's word or a caution says there is)."""
    if proposal.report_only:
        return ["report:", *("  " + line for line in report_lines(proposal))]
    status = response.status if response else STATUS_APPROVED
    final = response.final_file if response else None
    start = proposal.current_file if base is None else base.file
    if start is None and (proposal.current_file is not None or (base is not None and base.drift is not None)):
        before = "no file"
    else:
        before = "current" if start == proposal.current_file else "last approved"
    # The diff's own '---' line names the same file as its heading: 'current' under 'last approved -> proposed'
    # read as the sidecar's file, the one the drifted caution says it was not read against.
    diff = decision_diff(replace(proposal, current_file=start), status, final, before_name=before)
    label = before + (" -> final" if status == STATUS_MODIFIED else " -> proposed")
    after = final if status == STATUS_MODIFIED and final is not None else proposal.payload
    return [f"diff ({label}):", *marked_diff(diff, after if proposal.tool != TOOL_EGRESS_ALLOW else None)]


def agent_lines(justification: str, *, full: bool = False, more: str = "") -> list[str]:
    """The agent's justification, under a heading that says whose words they are, cut to a bounded height.

    At most ``JUSTIFICATION_LINES`` lines and ``JUSTIFICATION_CHARS``
    characters unless ``full``; a cut ends with a line of ours (not indented,
    as every line of the agent's is) saying how much is hidden and ``more``:
    how to see it.
    """
    shown, hidden = bounded(justification, full=full)
    lines = [Shown("the agent's justification (its own words, not checked):", "heading"),
             *("  " + line for line in shown)]
    if hidden:
        lines.append(Shown(f"... {hidden} more line(s) of the agent's words not shown" + (f": {more}" if more else ""),
                           "heading"))
    return lines


def bounded(text: str, *, full: bool = False) -> tuple[list[str], int]:
    """``text``'s first lines within the bounds (all of them if ``full``), and how many lines are left out."""
    lines = text.split("\n")
    if full:
        return lines, 0
    shown: list[str] = []
    room = JUSTIFICATION_CHARS
    cut = False
    for line in lines[:JUSTIFICATION_LINES]:
        if len(line) > room:
            shown.append(line[:room])  # the rest of this line is hidden too, and counted
            cut = True
            break
        shown.append(line)
        room -= len(line)
    return shown, len(lines) - len(shown) + (1 if cut else 0)


def modification(proposal: Proposal, final_file: str, base: RoutesBase | None = None) -> list[str]:
    """What the operator confirms before a modification is recorded: what it grants, and their own diff.

    One raw item a screen line, as ``describe``. Raises ``ValidationError`` when ``final_file``
    is not a file the tool can take, before anything is shown.
    """
    validate_final_file(proposal.tool, final_file)
    lines = [f"your modification of {proposal.short_id} ({proposal.queue_key}, {proposal.tool})", "",
             *approval_lines(file_approval(proposal, final_file, base), "your version grants:")]
    own = render_diff(proposal.payload, final_file, before_name="proposed", after_name="final", json_aware=True)
    as_json = normal_json(proposal.payload) is not None and normal_json(final_file) is not None
    lines += ["", "diff (proposed -> final" + (", both as JSON: keys sorted, indented" if as_json else "") + "):",
              *marked_diff(own)]
    return lines
