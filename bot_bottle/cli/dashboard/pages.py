"""The dashboard's page shell and its plainer pages: bottles, grants and rules, the audit log, refusals and problems.

Every page is built here around its body: the navigation (with the pending
count, also in the tab's title), the live status line, the notification
switch and the keyboard help, and the ``data-*`` attributes the page's one
script reads. Agent text reaches a page through ``text.html`` alone, one
``<div>`` a line in text blocks, never wrapped (a wrapped tail could pass for
a diff line of its own), so the page shows exactly what the terminal shows.
Links and form targets are built from the dashboard's secret root path and
ids (32 hex digits, checked by the schema), never from agent text; a
refusal page names no address of ours (its client may not know the root).
No inline script or style: the page's script and stylesheet are files of
the package (``static/``), which the Content-Security-Policy allows alone.
The inbox and a proposal's pages are ``inbox_page`` and ``proposal_page``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from bot_bottle.audit.forensics import VerifyResult
from bot_bottle.bottles import BottleOverview
from bot_bottle.cli.bottles_cmds import ago
from bot_bottle.cli.common import counted, first_line, shown_actor
from bot_bottle.cli.in_force import GrantsListed, rule_left, rule_scope, rule_subject, shown_record
from bot_bottle.grant_records import Grant
from bot_bottle.policy.approval import shown_subject
from bot_bottle.records import PROPOSAL_ID_RE, SHORT_ID_LENGTH, AuditEntry
from bot_bottle.standing import RuleInForce
from bot_bottle.text.html import attribute, line_html
from bot_bottle.timestamps import format_timestamp, time_left

TITLE = "bot-bottle dashboard"
# The keyboard, as the help (?) lists it: keys, then what they do.
KEYS = (
    ("j / k", "next / previous proposal (in the inbox: move the selection)"),
    ("Enter or o", "open the selected proposal (inbox)"),
    ("a", "approve: to the note of the approve form (from the inbox: open the selected one there; on a "
          "confirmation: to its button)"),
    ("r", "reject: to the reason of the reject form"),
    ("m", "modify: to the editor box"),
    ("Ctrl+Enter", "send the form you are in (Enter alone never decides)"),
    ("/", "search the inbox"),
    ("u or Esc", "back to the inbox"),
    ("?", "this help"),
)


# Where a page of ours (one with a root: only a signed-in operator's) says what this dashboard's writes found
# changed in the schema (``warnings_html``; filled in by the handler, which has them). Everything before it in
# a page is ours or escaped, so the first of it is this one.
WARNINGS_SLOT = '<div id="warnings" hidden></div>'


def warnings_html(warnings: Sequence[tuple[str, str]]) -> str:
    """What this dashboard's writes found a process with the database file had changed in the schema, and
    undid (``schema.guard``), as ``(when, what)``: said on every page until the dashboard stops, since the
    operator at a browser sees nothing of its stderr."""
    if not warnings:
        return WARNINGS_SLOT
    items = "".join(f"<li>{line_html(f'{at}: {line}')}</li>" for at, line in warnings)
    return ('<section id="warnings" class="problem" role="alert" data-part="warnings">'
            "<h2>Something changed the database's schema behind bot-bottle</h2>"
            "<p>A process with the database file, such as a bottle's sidecar on the mount, had changed its "
            "tables, triggers or indexes; this dashboard's writes found it and undid it, as below. No sidecar "
            "has a reason to: look at which bottle did, and run 'bot-bottle db check'.</p>"
            f"<ul>{items}</ul></section>")


def page(title: str, body: str, *, root: str | None, marker: str | None = None, message: str = "",
         pending: int | None = None, data: dict[str, str] | None = None) -> str:
    """A whole page: ``body`` (HTML built here) under the navigation.

    ``root`` is the dashboard's secret path (every address of ours starts
    with it); ``None`` for a page that may reach a client who does not know
    it (a refusal), which then names no address of ours at all. ``marker``
    (the database's change marker when the page was built) lets the page's
    script update it when anyone commits; pages that hold a form to confirm
    are built without one, so they never change under the operator.
    ``pending`` is the count the tab's title and the navigation show;
    ``data`` more ``data-*`` attributes of the body for the script.
    """
    attributes = dict(data or {})
    if marker is not None and root is not None:
        attributes.update({"marker": marker, "changes": f"{root}/api/changes"})
    if root is not None:
        attributes["root"] = root
    live = "".join(f' data-{name}="{attribute(value)}"' for name, value in sorted(attributes.items()))
    note = f'<p class="message" role="status" data-part="message">{line_html(message)}</p>' if message else ""
    head = nav = keys = ""
    count = f"({pending}) " if pending else ""
    if root is not None:
        home = attribute(root)
        head = (f'<link rel="stylesheet" href="{home}/static/style.css">'
                f'<script src="{home}/static/app.js" defer></script>')
        shown = f' <span class="count" data-part="count">{pending}</span>' if pending is not None else ""
        nav = (f' <a href="{home}/">inbox{shown}</a> <a href="{home}/bottles">bottles, grants, rules</a>'
               f' <a href="{home}/audit">audit log</a><span id="live" role="status"></span>'
               '<button type="button" id="notify" hidden>notifications: off</button>'
               '<button type="button" id="help-button" aria-controls="keys">keys (?)</button>')
        keys = ('<section id="keys" hidden><h2>Keys</h2><table>'
                + "".join(f"<tr><th>{line_html(k)}</th><td>{line_html(what)}</td></tr>" for k, what in KEYS)
                + "</table></section>" + WARNINGS_SLOT)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{count}{line_html(title)} - {TITLE}</title>{head}</head><body{live}>"
        f'<nav><span class="brand">{TITLE}</span>{nav}</nav>'
        f'<main>{keys}<p id="notice" role="alert" hidden></p>{note}{body}</main></body></html>\n'
    )


def text_block(lines: Sequence[str], part: str = "") -> str:
    """Raw screen lines (``Shown`` with their roles) as a block of one ``<div>`` a line, sanitized."""
    rows = []
    for one in lines:
        role = getattr(one, "role", "")
        css = f"line {role}" if role else "line"
        rows.append(f'<div class="{css}">{line_html(one) or " "}</div>')
    marked = f' data-part="{attribute(part)}"' if part else ""
    return f'<div class="text"{marked}>{"".join(rows)}</div>'


def proposal_link(root: str, proposal_id: str, text: str) -> str:
    """A link to a proposal's page (its id checked by the schema: 32 hex digits)."""
    return f'<a href="{attribute(root)}/proposal/{attribute(proposal_id)}">{line_html(text)}</a>'


def hidden(name: str, value: str) -> str:
    """A hidden form field of ours."""
    return f'<input type="hidden" name="{name}" value="{attribute(value)}">'


# The first submit button of a form is the one a browser presses when Enter is typed in one of its text boxes
# (HTML's implicit submission); disabled, it makes Enter do nothing. No decision is ever taken by Enter.
NO_ENTER = '<button type="submit" class="no-enter" disabled hidden aria-hidden="true" tabindex="-1"></button>'


def bottles_table(items: Sequence[BottleOverview], now: datetime) -> str:
    """The bottles with their state (``stale`` for a running one gone silent, ``unprepared`` for one that has only
    filed), backend, transport and queue."""
    rows = []
    for item in items:
        bottle = item.bottle
        state = item.shown_state(now)
        rows.append(
            f'<tr class="state-{attribute(state)}"><td>{line_html(bottle.slug)}</td>'
            f'<td class="state">{line_html(state)}</td><td>{line_html(bottle.backend or "-")}</td>'
            f"<td>{line_html(item.shown_transport)}</td><td>{len(item.pending)}</td>"
            f"<td>{line_html(ago(item.oldest_pending, now))}</td><td>{line_html(ago(bottle.last_seen, now))}</td></tr>"
        )
    return ('<table class="bottles" data-part="bottles"><thead><tr><th>bottle</th><th>state</th><th>backend</th>'
            "<th>transport</th><th>pending</th><th>oldest</th><th>last seen</th></tr></thead><tbody>"
            + "".join(rows) + "</tbody></table>")


def bottles_page(items: Sequence[BottleOverview], now: datetime, marker: str, *, root: str,
                 grants: Sequence[Grant] = (), subjects: Mapping[str, str] | None = None,
                 rules: Sequence[RuleInForce] = (), csrf: str = "", message: str = "",
                 listed: GrantsListed | None = None) -> str:
    """The bottles with their state and queue, what each may do now (``subjects``: what each grant grants, by id,
    as ``in_force.grant_subjects`` says it; ``listed``: where the audit log disagrees with their rows)
    and the standing rules that decide for you (with a form that revokes each); ``message``: what the
    revocation just before left."""
    pending = sum(len(item.pending) for item in items)
    body = ("<h1>Bottles</h1>" + (bottles_table(items, now) if items else "<p>no bottles yet</p>")
            + grants_section(grants, now, root=root, csrf=csrf, subjects=subjects, listed=listed)
            + rules_section(rules, now, root=root, csrf=csrf))
    return page("bottles", body, root=root, marker=marker, pending=pending, data={"page": "bottles"},
                message=message)


def revoke_form(root: str, kind: str, item_id: object, csrf: str) -> str:
    """A form that revokes the grant or rule (``kind``) ``item_id`` names, with a reason; sent only with its button.

    Only an id of the form bot-bottle writes gets one: the form's address is built from it, and a row a sidecar
    wrote with the id ``../rule/ID`` had a button the browser sent to ``ROOT/rule/ID/revoke``, which revoked the
    operator's rule ID when the operator cleared away that row (tests/attacks/test_rule_revoke_paths.py)."""
    if not isinstance(item_id, str) or not PROPOSAL_ID_RE.fullmatch(item_id):
        return line_html(f"not bot-bottle's id: 'bot-bottle {kind}s list' names it")
    action = f"{root}/{kind}/{item_id}/revoke"
    return (f'<form method="post" action="{attribute(action)}" class="revoke">{NO_ENTER}{hidden("csrf", csrf)}'
            '<label>reason <input type="text" name="reason" size="24" required></label>'
            '<button type="submit" name="decision" value="revoke">revoke</button></form>')


def grants_section(grants: Sequence[Grant], now: datetime, *, root: str, csrf: str,
                   subjects: Mapping[str, str] | None = None, listed: GrantsListed | None = None) -> str:
    """What every bottle may do now (its live grants, soonest ending first), each with a form that revokes it;
    one whose row the audit log disagrees with (``listed``: ``in_force.grants_listed``) says so in its row."""
    if not grants:
        return '<section class="grants" data-part="grants"><h2>Grants</h2><p>no grants in force</p></section>'
    stamp = format_timestamp(now)

    def said(grant: Grant) -> str:
        return (subjects or {}).get(grant.id) or shown_subject(grant.tool, grant.subject_value)

    rows = []
    for grant in map(shown_record, grants):  # its revoke button only for an id bot-bottle writes (revoke_form)
        revoke = revoke_form(root, "grant", grant.id, csrf)
        by = f"rule {grant.rule_id[:SHORT_ID_LENGTH]}" if grant.rule_id else grant.decided_by
        disagreed = listed.note(grant) if listed is not None else ""
        note = f'<div class="warning">{line_html(disagreed)}</div>' if disagreed else ""
        rows.append(f'<tr><td>{line_html(grant.short_id)}</td><td>{line_html(grant.queue_key)}</td>'
                    f"<td>{line_html(grant.tool)}</td><td>{line_html(time_left(stamp, grant.ends_at))}</td>"
                    f'<td class="grants">{line_html(said(grant))}{note}</td>'
                    f"<td>{line_html(by)}</td><td>{revoke}</td></tr>")
    return ('<section class="grants" data-part="grants"><h2>Grants</h2><table><thead><tr><th>id</th>'
            "<th>bottle</th><th>tool</th><th>left</th><th>grants</th><th>by</th><th></th></tr></thead><tbody>"
            + "".join(rows)
            + "</tbody></table></section>")


def rules_section(rules: Sequence[RuleInForce], now: datetime, *, root: str, csrf: str) -> str:
    """The standing rules in force as they decide (``standing.rules_in_force``), newest first, each with a form
    that revokes it; one the file and the audit log disagree about says so in its row."""
    if not rules:
        return '<section class="rules" data-part="rules"><h2>Standing rules</h2><p>no rules in force</p></section>'
    stamp = format_timestamp(now)
    rows = []
    for item in rules:
        rule = shown_record(item.rule)  # its revoke button only for an id bot-bottle writes (revoke_form)
        note = "".join(f'<div class="warning">{line_html(said)}</div>'
                       for said in (item.note, item.unconfirmed) if said)
        rows.append(f"<tr><td>{line_html(rule.short_id)}</td><td>{line_html(rule_scope(rule))}</td>"
                    f"<td>{line_html(rule.tool)}</td>"
                    f"<td>{line_html(rule.effect)}</td><td>{line_html(rule_left(rule, stamp))}</td>"
                    f"<td class=\"grants\">{line_html(rule_subject(rule))}{note}</td>"
                    f"<td>{line_html(first_line(rule.notes))}</td>"
                    f"<td>{revoke_form(root, 'rule', rule.id, csrf)}</td></tr>")
    return ('<section class="rules" data-part="rules"><h2>Standing rules</h2><table><thead><tr><th>id</th>'
            "<th>bottle</th><th>tool</th><th>effect</th><th>left</th><th>decides on</th><th>notes</th><th></th>"
            "</tr></thead><tbody>"
            + "".join(rows) + "</tbody></table></section>")


def audit_page(entries: Sequence[AuditEntry], result: VerifyResult, marker: str, *, root: str,
               pending: int | None = None) -> str:
    """The newest audit entries, under the log's verify status."""
    if result.ok:
        sealed = result.count - result.unsealed
        whole = counted(result.count, "entry", "entries")
        status = (f'<p class="verify ok">audit log whole: {whole}, {sealed} sealed with the '
                  "host's key" + (f", reaching the anchor at entry {result.anchored}" if result.anchored else "")
                  + "</p>")
    else:
        status = f'<p class="verify broken">audit log broken: {line_html(result.problem)}</p>'
    rows = "".join(
        f'<tr class="action-{attribute(e.action)}"><td>{e.seq}</td><td>{line_html((e.ts or "")[:19])}</td>'
        f"<td>{line_html(e.queue_key)}</td><td>{line_html(e.action)}</td><td>{line_html(e.tool or '')}</td>"
        f"<td>{line_html((e.proposal_id or '')[:SHORT_ID_LENGTH])}</td><td>{line_html(shown_actor(e.actor))}</td>"
        f'<td class="justification">{line_html(first_line(e.notes))}</td></tr>'
        for e in entries
    )
    table = ("<table><thead><tr><th>seq</th><th>time (UTC)</th><th>bottle</th><th>action</th><th>tool</th>"
             f"<th>proposal</th><th>by</th><th>notes</th></tr></thead><tbody>{rows}</tbody></table>")
    newest = counted(len(entries), "entry", "entries")
    body = f'<h1>Audit log</h1><div data-part="audit">{status}<p>the newest {newest}</p>{table}</div>'
    return page("audit log", body, root=root, marker=marker, pending=pending, data={"page": "audit"})


def refusal_page(title: str, explanation: str) -> str:
    """A page that says why a request was refused (no token, a foreign page's post, ...), naming no address of ours."""
    return page(title, f"<h1>{line_html(title)}</h1><p>{line_html(explanation)}</p>", root=None)


def problem_page(title: str, explanation: str, todo: str, *, root: str, marker: str | None = None) -> str:
    """A styled page for the operator when the database cannot be used: what happened, and what to do.

    With ``marker`` the page's script keeps looking and comes back by
    itself when the problem passes (a lock released).
    """
    body = (f'<section class="problem" data-part="problem"><h1>{line_html(title)}</h1><p>{line_html(explanation)}'
            f'</p><p class="todo">{line_html(todo)}</p></section>')
    return page(title, body, root=root, marker=marker, data={"page": "problem"})
