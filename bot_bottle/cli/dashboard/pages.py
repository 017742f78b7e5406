"""The dashboard's pages as HTML: what the browser shows, built from what the CLI and the TUI show.

Every line of a proposal's detail is ``cli.render.describe``'s (the same
parsed route, the same diff with its ``!`` gutter and warnings), and a
modification's confirmation is ``cli.render.modification``'s; each line
reaches the page through ``text.html`` alone, one ``<div>`` a line, never
wrapped (a wrapped tail could pass for a diff line of its own), so the page
shows exactly what the terminal shows. Links and form targets are built
from the dashboard's secret root path and proposal ids (32 hex digits,
checked by the schema), never from agent text; a refusal page names no
address of ours (its client may not know the root). No inline script or style: the page's one script and one stylesheet
are files of the package (``static/``), which the
Content-Security-Policy allows alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from bot_bottle.audit.forensics import VerifyResult
from bot_bottle.bottles import BottleOverview
from bot_bottle.cli.bottles_cmds import ago
from bot_bottle.cli.common import first_line
from bot_bottle.cli.render import describe, modification
from bot_bottle.policy.lifetimes import LIFETIMES
from bot_bottle.policy.subjects import describe_subject
from bot_bottle.records import (
    SHORT_ID_LENGTH,
    STATUS_APPROVED,
    STATUS_MODIFIED,
    STATUS_REJECTED,
    AuditEntry,
    Grant,
    Proposal,
    Response,
)
from bot_bottle.text.html import attribute, editable, line_html
from bot_bottle.timestamps import format_timestamp, spell_duration, time_left

TITLE = "bot-bottle dashboard"


def page(title: str, body: str, *, root: str | None, marker: str | None = None, message: str = "") -> str:
    """A whole page: ``body`` (HTML built here) under the navigation.

    ``root`` is the dashboard's secret path (every address of ours starts
    with it); ``None`` for a page that may reach a client who does not know
    it (a refusal), which then names no address of ours at all. ``marker``
    (the database's change marker when the page was built) lets the page's
    script reload it when anyone commits; pages that hold a form to confirm
    are built without one, so they never refresh under the operator.
    """
    live = (f' data-marker="{attribute(marker)}" data-changes="{attribute(root)}/api/changes"'
            if marker is not None and root is not None else "")
    note = f'<p class="message" role="status">{line_html(message)}</p>' if message else ""
    head = nav = ""
    if root is not None:
        home = attribute(root)
        head = (f'<link rel="stylesheet" href="{home}/static/style.css">'
                f'<script src="{home}/static/app.js" defer></script>')
        nav = f' <a href="{home}/">bottles</a> <a href="{home}/audit">audit log</a><span id="live"></span>'
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{line_html(title)} - {TITLE}</title>{head}</head><body{live}>"
        f'<nav><span class="brand">{TITLE}</span>{nav}</nav>'
        f"<main>{note}{body}</main></body></html>\n"
    )


def text_block(lines: Sequence[str]) -> str:
    """Raw screen lines (``Shown`` with their roles) as a block of one ``<div>`` a line, sanitized."""
    rows = []
    for one in lines:
        role = getattr(one, "role", "")
        css = f"line {role}" if role else "line"
        rows.append(f'<div class="{css}">{line_html(one) or " "}</div>')
    return f'<div class="text">{"".join(rows)}</div>'


def _proposal_link(root: str, proposal_id: str, text: str) -> str:
    return f'<a href="{attribute(root)}/proposal/{attribute(proposal_id)}">{line_html(text)}</a>'


def overview(items: Sequence[BottleOverview], now: datetime, marker: str, *, root: str,
             grants: Sequence[Grant] = (), csrf: str = "") -> str:
    """The bottles with their state, their pending proposals, and what each may do now (with a revoke form)."""
    pending = sum(len(item.pending) for item in items)
    waiting = sum(1 for item in items if item.pending)
    head = f"<h1>Bottles</h1><p>{pending} pending from {waiting} bottle(s)</p>"
    if not items:
        return page("bottles", head + "<p>no bottles yet</p>", root=root, marker=marker)
    rows = []
    for item in items:
        bottle = item.bottle
        state = bottle.shown_state(now)
        rows.append(
            f'<tr class="state-{attribute(state)}"><td>{line_html(bottle.slug)}</td>'
            f'<td class="state">{line_html(state)}</td><td>{line_html(bottle.backend or "-")}</td>'
            f"<td>{line_html(bottle.transport)}</td><td>{len(item.pending)}</td>"
            f"<td>{line_html(ago(item.oldest_pending, now))}</td><td>{line_html(ago(bottle.last_seen, now))}</td></tr>"
        )
    table = ("<table class=\"bottles\"><thead><tr><th>bottle</th><th>state</th><th>backend</th><th>transport</th>"
             "<th>pending</th><th>oldest</th><th>last seen</th></tr></thead><tbody>" + "".join(rows)
             + "</tbody></table>")
    sections = []
    for item in items:
        if not item.pending:
            continue
        stale = ' <span class="stale-flag">stale: its sidecar went silent</span>' if item.bottle.stale(now) else ""
        entries = "".join(
            f'<tr><td class="id">{_proposal_link(root, p.id, p.short_id)}</td><td>{line_html(p.tool)}</td>'
            f"<td>{line_html(ago(p.created_at, now))}</td>"
            f'<td class="justification">{line_html(first_line(p.justification))}</td></tr>'
            for p in item.pending
        )
        sections.append(f'<section class="pending"><h2>{line_html(item.bottle.slug)}{stale}</h2>'
                        '<table><thead><tr><th>id</th><th>tool</th><th>age</th><th>justification</th></tr></thead>'
                        f"<tbody>{entries}</tbody></table></section>")
    return page("bottles", head + table + "".join(sections) + grants_section(grants, now, root=root, csrf=csrf),
                root=root, marker=marker)


def grants_section(grants: Sequence[Grant], now: datetime, *, root: str, csrf: str) -> str:
    """What every bottle may do now (its live grants, soonest ending first), each with a form that revokes it."""
    if not grants:
        return '<section class="grants"><h2>Grants</h2><p>no grants in force</p></section>'
    stamp = format_timestamp(now)
    rows = []
    for grant in grants:
        revoke = (f'<form method="post" action="{attribute(root)}/grant/{attribute(grant.id)}/revoke" class="revoke">'
                  f'{_hidden("csrf", csrf)}<label>reason <input type="text" name="reason" size="24" required></label>'
                  '<button type="submit" name="decision" value="revoke">revoke</button></form>')
        by = f"rule {grant.rule_id[:SHORT_ID_LENGTH]}" if grant.rule_id else grant.decided_by
        rows.append(f'<tr><td>{line_html(grant.queue_key)}</td><td>{line_html(grant.tool)}</td>'
                    f'<td class="grants">{line_html(describe_subject(grant.tool, grant.subject_value))}</td>'
                    f"<td>{line_html(time_left(stamp, grant.ends_at))}</td>"
                    f"<td>{line_html(by)}</td><td>{revoke}</td></tr>")
    return ('<section class="grants"><h2>Grants</h2><table><thead><tr><th>bottle</th><th>tool</th><th>grants</th>'
            "<th>left</th><th>by</th><th></th></tr></thead><tbody>" + "".join(rows) + "</tbody></table></section>")


def _hidden(name: str, value: str) -> str:
    return f'<input type="hidden" name="{name}" value="{attribute(value)}">'


def _form(root: str, proposal: Proposal, csrf: str, shown: str, action: str, fields: str, button: str) -> str:
    return (f'<form method="post" action="{attribute(root)}/proposal/{attribute(proposal.id)}/{action}" '
            'class="decide">'
            f'{_hidden("csrf", csrf)}{_hidden("shown", shown)}{fields}'
            f'<button type="submit" name="decision" value="{attribute(button)}">{line_html(button)}</button></form>')


def _remember(what: str, until: str) -> str:
    """The choice to make a decision a standing rule: just this proposal, this bottle's, or every bottle's."""
    return ('<label>remember <select name="remember"><option value="">no: just this proposal</option>'
            f'<option value="bottle">{line_html(what)} for this bottle, {line_html(until)}</option>'
            f'<option value="all">{line_html(what)} for every bottle, {line_html(until)}</option></select></label>')


def editor(text: str) -> str:
    """A textarea holding ``text``; the newline after the tag keeps a leading newline of the text (HTML drops one)."""
    return f'<textarea name="final" rows="16" cols="100" spellcheck="false">\n{attribute(text)}</textarea>'


def proposal_page(proposal: Proposal, response: Response | None, unproven: str | None, *, root: str, csrf: str,
                  shown: str, marker: str | None, message: str = "") -> str:
    """A proposal's detail (``describe``'s lines), and while it is pending the forms that decide it.

    ``shown`` is the digest of the proposal as this page shows it: the
    decision is recorded only for exactly that proposal.
    """
    body = [f"<h1>Proposal {line_html(proposal.id[:SHORT_ID_LENGTH])}</h1>",
            text_block(describe(proposal, response, unproven))]
    if response is None:
        approve_label = "reason for approving (required)" if proposal.report_only else "note (optional)"
        body.append('<section class="decisions"><h2>Decide</h2>')
        life = LIFETIMES[proposal.tool]
        body.append(_form(root, proposal, csrf, shown, "decide",
                          f'<label>{approve_label} <input type="text" name="notes" size="60"></label>'
                          f'<label>for <input type="text" name="for" size="8" placeholder="'
                          f'{spell_duration(life.default)}"> (default {spell_duration(life.default)}, at most '
                          f"{spell_duration(life.maximum)})</label>" + _remember("the same", "until then")
                          + _hidden("status", STATUS_APPROVED), "approve"))
        body.append(_form(root, proposal, csrf, shown, "decide",
                          '<label>reason for rejecting (required) <input type="text" name="notes" size="60">'
                          "</label>" + _remember("always reject this", "for good")
                          + _hidden("status", STATUS_REJECTED), "reject"))
        if proposal.report_only:
            body.append(f"<p>{line_html(proposal.tool)} is report-only: approve it with a reason or reject it.</p>")
        else:
            start = editable(proposal.payload)
            note = (" (characters a terminal would not show raw are written as escapes here: a file that holds "
                    "them cannot be recorded)" if start != proposal.payload else "")
            body.append(_form(root, proposal, csrf, shown, "preview",
                              f"<label>your version of the file (you confirm your diff next){note}</label>"
                              + editor(start), "modify"))
        body.append("</section>")
    return page(f"proposal {proposal.short_id}", "".join(body), root=root, marker=marker, message=message)


def confirm_page(proposal: Proposal, final_file: str, *, root: str, csrf: str, shown: str, final_sha256: str,
                 problem: str | None) -> str:
    """The operator's own diff and what it allows (``modification``'s lines), to confirm before anything is recorded.

    A file its tool cannot take is shown with the reason, and can only be
    edited again (as in the TUI). The confirming form carries the file and
    its digest as shown here: the server records it only if they still match.
    """
    if problem is not None:
        lines = [f"cannot record this file: {problem}", "", "your file:", *final_file.split("\n")]
        body = [f"<h1>Modify {line_html(proposal.short_id)}</h1>", text_block(lines),
                _form(root, proposal, csrf, shown, "preview", "<label>edit again</label>" + editor(final_file),
                      "modify")]
        return page(f"modify {proposal.short_id}", "".join(body), root=root)
    confirm_fields = (_hidden("status", STATUS_MODIFIED) + _hidden("final_sha256", final_sha256)
                      + '<label>note (optional) <input type="text" name="notes" size="60"></label>'
                      + f'<textarea name="final" hidden>\n{attribute(final_file)}</textarea>')
    body = [f"<h1>Confirm your modification of {line_html(proposal.short_id)}</h1>",
            text_block(modification(proposal, final_file)),
            _form(root, proposal, csrf, shown, "decide", confirm_fields, "record this modification"),
            _form(root, proposal, csrf, shown, "preview", "<label>or edit again</label>" + editor(final_file),
                  "modify"),
            f'<p><a href="{attribute(root)}/proposal/{attribute(proposal.id)}">cancel: nothing recorded</a></p>']
    return page(f"confirm {proposal.short_id}", "".join(body), root=root)


def audit_page(entries: Sequence[AuditEntry], result: VerifyResult, marker: str, *, root: str) -> str:
    """The newest audit entries, under the log's verify status."""
    if result.ok:
        sealed = result.count - result.unsealed
        status = (f'<p class="verify ok">audit log whole: {result.count} entries, {sealed} sealed with the '
                  "host's key" + (f", reaching the anchor at entry {result.anchored}" if result.anchored else "")
                  + "</p>")
    else:
        status = f'<p class="verify broken">audit log broken: {line_html(result.problem)}</p>'
    rows = "".join(
        f'<tr class="action-{attribute(e.action)}"><td>{e.seq}</td><td>{line_html((e.ts or "")[:19])}</td>'
        f"<td>{line_html(e.queue_key)}</td><td>{line_html(e.action)}</td><td>{line_html(e.tool or '')}</td>"
        f"<td>{line_html((e.proposal_id or '')[:SHORT_ID_LENGTH])}</td><td>{line_html(e.actor)}</td>"
        f'<td class="justification">{line_html(first_line(e.notes))}</td></tr>'
        for e in entries
    )
    table = ("<table><thead><tr><th>seq</th><th>time (UTC)</th><th>bottle</th><th>action</th><th>tool</th>"
             f"<th>proposal</th><th>by</th><th>notes</th></tr></thead><tbody>{rows}</tbody></table>")
    return page("audit log", f"<h1>Audit log</h1>{status}<p>the newest {len(entries)} entries</p>{table}",
                root=root, marker=marker)


def refusal_page(title: str, explanation: str) -> str:
    """A page that says why a request was refused (no token, a foreign page's post, ...), naming no address of ours."""
    return page(title, f"<h1>{line_html(title)}</h1><p>{line_html(explanation)}</p>", root=None)
