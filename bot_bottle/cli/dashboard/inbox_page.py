"""The dashboard's inbox: every bottle's pending proposals in one queue, oldest first, what each grants first.

A row says which proposal (id, bottle, tool, age), then what approving it
grants with a badge for each kind of caution (``policy.approval``), then the
agent's first line, labelled as the agent's and cut by the stylesheet. A
form of plain links and fields (a GET: nothing is decided here) narrows the
queue by bottle, tool and caution and searches it. Rows carry their ids for
the page's script, which moves a selection with ``j``/``k``, opens with
Enter, and updates rows in place when the queue changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from bot_bottle.bottles import BottleOverview
from bot_bottle.cli.bottles_cmds import ago
from bot_bottle.cli.common import first_line
from bot_bottle.cli.dashboard.pages import page, proposal_link
from bot_bottle.cli.inbox import ANY_CAUTION, Entry, Filters, expired_line
from bot_bottle.db import DatabaseUser
from bot_bottle.policy.approval import KINDS, Approval
from bot_bottle.records import PROPOSAL_ID_RE, SHORT_ID_LENGTH, TOOLS, AuditEntry
from bot_bottle.text.html import attribute, line_html
from bot_bottle.timestamps import format_timestamp, time_left


def badges(approval: Approval) -> str:
    """One badge a kind of caution (``widens``, ``look-alike``, ``internal``, ``unreadable``, ``drifted``), in the
    warning's style."""
    return "".join(f'<span class="badge badge-{attribute(kind)}">{line_html(kind)}</span>' for kind in approval.kinds)


def grant_cell(approval: Approval) -> str:
    """The inbox's grants column: the badges, then what approving grants."""
    return f'{badges(approval)}<span class="grant">{line_html(approval.summary)}</span>'


def _options(name: str, label: str, chosen: str | None, values: Sequence[tuple[str, str]]) -> str:
    options = "".join(f'<option value="{attribute(value)}"{" selected" if value == (chosen or "") else ""}>'
                      f"{line_html(text)}</option>" for value, text in values)
    return f'<label>{line_html(label)} <select name="{name}">{options}</select></label>'


def filters_form(root: str, filters: Filters, bottles: Sequence[str]) -> str:
    """The inbox's filters and search: a GET form (Enter in the search box searches; nothing is decided here)."""
    return (f'<form method="get" action="{attribute(root)}/" class="filters" role="search">'
            + _options("bottle", "bottle", filters.bottle, [("", "every bottle"), *((b, b) for b in bottles)])
            + _options("tool", "tool", filters.tool, [("", "every tool"), *((t, t) for t in TOOLS)])
            + _options("warning", "warnings", filters.caution,
                       [("", "with or without"), (ANY_CAUTION, "any warning"), *((k, k) for k in KINDS)])
            + f'<label>search <input type="search" name="q" id="search" value="{attribute(filters.words or "")}" '
              'size="24"></label><button type="submit">show</button>'
            + (f' <a href="{attribute(root)}/">show all</a>' if filters.active else "") + "</form>")


def inbox_row(entry: Entry, now: datetime, *, root: str, stale: bool) -> str:
    """One proposal's row: id, bottle (flagged when stale), tool, age, how long it may still wait (then it expires,
    its caller told no; the page's script counts it down), what approving grants, the agent's words."""
    proposal = entry.proposal
    flag = ' <span class="stale-flag">stale</span>' if stale else ""
    ends = proposal.expires_at
    left = (f'<time data-ends="{attribute(ends)}">{line_html(time_left(format_timestamp(now), ends))}</time>'
            if isinstance(ends, str) else "-")
    return (f'<tr id="row-{attribute(proposal.id)}" data-row="{attribute(proposal.id)}" '
            f'data-href="{attribute(root)}/proposal/{attribute(proposal.id)}">'
            f'<td class="id">{proposal_link(root, proposal.id, proposal.short_id)}</td>'
            f"<td>{line_html(proposal.queue_key)}{flag}</td><td>{line_html(proposal.tool)}</td>"
            f'<td class="age"><time datetime="{attribute(proposal.created_at)}">'
            f"{line_html(ago(proposal.created_at, now))}</time></td>"
            f'<td class="left">{left}</td>'
            f'<td class="grants">{grant_cell(entry.approval)}</td>'
            f'<td class="agent"><span class="agent-label">agent:</span> '
            f"{line_html(first_line(proposal.justification))}</td></tr>")


def expired_said(store: DatabaseUser, bottle: str | None, *, root: str) -> str | None:
    """The line naming what expired unanswered lately (``cli.inbox.expired_line``), as HTML: each id a link to
    its page, where the command line's line points at 'proposals list --all', a page the dashboard does not have.
    Its own words hold nothing to escape; the bottle and the tool are escaped."""

    def named(entry: AuditEntry) -> str:
        proposal_id = entry.proposal_id or ""
        short = proposal_id[:SHORT_ID_LENGTH] or "?"
        return ((proposal_link(root, proposal_id, short) if PROPOSAL_ID_RE.fullmatch(proposal_id) else
                 line_html(short)) + line_html(f" ({entry.queue_key}, {entry.tool})"))

    return expired_line(store, bottle, name=named, where="(each id opens its page)", escape=line_html)


def inbox_page(entries: Sequence[Entry], filters: Filters, overview: Sequence[BottleOverview], now: datetime,
               marker: str, *, root: str, message: str = "", expired_html: str | None = None) -> str:
    """The queue across all bottles, oldest first, narrowed by ``filters``, with the filters' form;
    ``expired_html``: the proposals that expired unanswered lately (``expired_said``), said under the summary."""
    pending = sum(len(item.pending) for item in overview)
    waiting = sum(1 for item in overview if item.pending)
    stale = {item.bottle.slug for item in overview if item.bottle.stale(now)}
    shown = f"; {len(entries)} shown" if filters.active else ""
    head = (f'<h1>Inbox</h1><p data-part="summary">{pending} pending from {waiting} bottle(s){line_html(shown)}, '
            "oldest first: what approving each grants comes first, the agent's words last</p>"
            # Always there, hidden when empty: the page's script replaces it in place as the log changes.
            + f'<p class="expired" data-part="expired"{"" if expired_html else " hidden"}>{expired_html or ""}</p>')
    rows = "".join(inbox_row(entry, now, root=root, stale=entry.proposal.queue_key in stale) for entry in entries)
    empty = "no pending proposals match" if filters.active else "no pending proposals"
    body = (head + filters_form(root, filters, [item.bottle.slug for item in overview])
            + '<table class="inbox"><thead><tr><th>id</th><th>bottle</th><th>tool</th><th>age</th><th>left</th>'
            "<th>what approving grants</th><th>the agent says</th></tr></thead>"
            f'<tbody data-part="inbox" data-rows="1" data-empty="{attribute(empty)}">{rows}</tbody></table>'
            + f'<p class="empty" data-part="empty"{" hidden" if entries else ""}>{line_html(empty)}</p>')
    return page("inbox", body, root=root, marker=marker, message=message, pending=pending, data={"page": "inbox"})
