"""A proposal's pages: its detail with the forms that decide it, a modification's confirmation, the second ask.

The detail reads top to bottom as the terminal's does (``cli.render``):
which proposal, then what approving it grants with every caution, then the
forms, then the diff or report, and last the agent's justification under a
heading that says whose words they are, its first lines shown and the rest
behind "show all" (a ``<details>``: no script needed).

Forms are deliberate: each starts with a disabled, hidden submit button,
which is the one a browser would press for Enter in a text box (HTML's
implicit submission), so Enter sends nothing; the real button carries the
decision's name (``decision=approve``), which the server requires. Every
form carries the digest of the proposal as shown; an approval whose grant
widens access (or names a look-alike host) is asked once more, on a page of
its own that names the grant (``widening_page``), and is recorded only with
that page's token.
"""

from __future__ import annotations

from bot_bottle.audit.routes_approved import RoutesBase
from bot_bottle.cli.dashboard.inbox_page import badges
from bot_bottle.cli.dashboard.pages import NO_ENTER, hidden, page, text_block
from bot_bottle.cli.render import approval_heading, body_lines, bounded, header_lines, modification
from bot_bottle.policy.approval import CONFIRM_KINDS, Approval
from bot_bottle.policy.lifetimes import LIFETIMES
from bot_bottle.records import SHORT_ID_LENGTH, STATUS_APPROVED, STATUS_MODIFIED, STATUS_REJECTED, Proposal, Response
from bot_bottle.text.html import attribute, editable, line_html
from bot_bottle.timestamps import spell_duration

# The form fields a decision carries to its second ask and back (the shown digest and csrf are added anew).
CARRIED = ("status", "notes", "for", "remember", "final", "final_sha256", "read")


def grant_section(approval: Approval, heading: str, part: str = "grant") -> str:
    """What approving grants, one item a line, then each caution with its badge: the first thing a page says."""
    items = "".join(f'<li class="grant">{line_html(item)}</li>' for item in approval.grants)
    cautions = "".join(f'<li class="caution caution-{attribute(c.kind)}"><span class="badge badge-{attribute(c.kind)}">'
                       f'{line_html(c.kind)}</span> {line_html(c.text)}</li>' for c in approval.cautions)
    return (f'<section class="what-it-grants" data-part="{attribute(part)}"><h2>{line_html(heading)} '
            f'{badges(approval)}</h2><ul class="grants">{items}</ul>'
            + (f'<ul class="cautions">{cautions}</ul>' if cautions else "") + "</section>")


def agent_section(justification: str) -> str:
    """The agent's justification, last, as the agent's: its first lines, the rest behind "show all"."""
    lines = justification.split("\n")
    shown, hidden_count = bounded(justification)
    rest = ""
    if hidden_count:
        rest = (f'<details class="show-all"><summary>show all ({hidden_count} more line(s) the agent wrote)</summary>'
                f"{text_block(lines)}</details>")
    return ('<section class="agent" data-part="agent"><h2>The agent\'s justification (its own words, not checked)'
            f"</h2>{text_block(shown)}{rest}</section>")


def form(root: str, proposal: Proposal, csrf: str, shown: str, action: str, fields: str, button: str,
         label: str, *, form_id: str = "", read: str = "") -> str:
    """A form of ours for one proposal: Enter-proof, with the csrf token and the shown digest (and ``read``, the
    digest of what its routes file was read against, ``RoutesBase.digest``); ``button`` names the decision (what
    the server requires), ``label`` is what the button says."""
    ident = f' id="{attribute(form_id)}"' if form_id else ""
    carried = hidden("read", read) if read else ""
    return (f'<form method="post" action="{attribute(root)}/proposal/{attribute(proposal.id)}/{action}" '
            f'class="decide"{ident}>{NO_ENTER}{hidden("csrf", csrf)}{hidden("shown", shown)}{carried}{fields}'
            f'<button type="submit" name="decision" value="{attribute(button)}" class="send">{line_html(label)}'
            "</button></form>")


def _remember(what: str, until: str) -> str:
    """The choice to make a decision a standing rule: just this proposal, this bottle's, or every bottle's."""
    return ('<label>remember <select name="remember"><option value="">no: just this proposal</option>'
            f'<option value="bottle">{line_html(what)} for this bottle, {line_html(until)}</option>'
            f'<option value="all">{line_html(what)} for every bottle, {line_html(until)}</option></select></label>')


def editor(text: str) -> str:
    """A textarea holding ``text``; the newline after the tag keeps a leading newline of the text (HTML drops one)."""
    return f'<textarea name="final" rows="16" cols="100" spellcheck="false">\n{attribute(text)}</textarea>'


def decide_section(proposal: Proposal, approval: Approval, *, root: str, csrf: str, shown: str,
                   read: str = "") -> str:
    """The three forms of a pending proposal: approve (note, length, remember), reject (a reason), modify; each
    carries ``read`` (``form``)."""
    approve_label = "reason for approving (required)" if proposal.report_only else "note (optional)"
    life = LIFETIMES[proposal.tool]
    second = (f" (asks once more: {', '.join(kind for kind in approval.kinds if kind in CONFIRM_KINDS)})"
              if approval.needs_confirmation else "")
    parts = ['<section class="decisions" data-part="decide"><h2>Decide</h2>',
             form(root, proposal, csrf, shown, "decide",
                  f'<label>{approve_label} <input type="text" name="notes" size="60"></label>'
                  f'<label>for <input type="text" name="for" size="8" placeholder="{spell_duration(life.default)}">'
                  f" (default {spell_duration(life.default)}, at most {spell_duration(life.maximum)})</label>"
                  + _remember("the same", "until then") + hidden("status", STATUS_APPROVED),
                  "approve", f"approve {proposal.short_id}{second}", form_id="approve", read=read),
             form(root, proposal, csrf, shown, "decide",
                  '<label>reason for rejecting (required) <input type="text" name="notes" size="60"></label>'
                  + _remember("always reject this and every ask for any of it", "for the length below")
                  + '<label>for <input type="text" name="for" size="8" placeholder="for good"> (with remember: how '
                  "long the rule stands, 8h, 7d or a time; empty, for good)</label>"
                  + hidden("status", STATUS_REJECTED),
                  "reject", f"reject {proposal.short_id}", form_id="reject", read=read)]
    if proposal.report_only:
        parts.append(f"<p>{line_html(proposal.tool)} is report-only: approve it with a reason or reject it.</p>")
    else:
        start = editable(proposal.payload)
        note = (" (characters a terminal would not show raw are written as escapes here: a file that holds "
                "them cannot be recorded)" if start != proposal.payload else "")
        parts.append(form(root, proposal, csrf, shown, "preview",
                          f"<label>your version of the file (you confirm your diff next){note}</label>"
                          + editor(start), "modify", "modify: show my diff", form_id="modify", read=read))
    return "".join(parts) + "</section>"


def proposal_page(proposal: Proposal, response: Response | None, unproven: str | None, approval: Approval, *,
                  root: str, csrf: str, shown: str, marker: str | None, message: str = "", pending: int | None = None,
                  neighbours: tuple[str | None, str | None] = (None, None), changed: str = "",
                  base: RoutesBase | None = None) -> str:
    """A proposal's detail and, while it is pending, the forms that decide it; its file read against ``base``
    (``inbox.routes_base_of``), as ``approval`` was.

    ``shown`` is the digest of the proposal as this page shows it: the
    decision is recorded only for exactly that proposal. ``neighbours`` are
    the previous and next pending proposals' ids (``k``/``j``); ``changed``
    a block saying how the proposal differs from a digest the page asked
    about (``changed_block``), put first.
    """
    data = {"page": "proposal", "digest": shown, "id": proposal.id}
    for name, neighbour in zip(("prev", "next"), neighbours, strict=True):
        if neighbour is not None:
            data[name] = f"{root}/proposal/{neighbour}"
    body = [changed, f"<h1>Proposal {line_html(proposal.id[:SHORT_ID_LENGTH])}</h1>",
            text_block(header_lines(proposal, response, unproven), "header"),
            grant_section(approval, approval_heading(response)[:-1])]
    if response is None:
        body.append(decide_section(proposal, approval, root=root, csrf=csrf, shown=shown,
                                   read="" if base is None else base.digest()))
    else:
        body.append('<section class="decisions" data-part="decide"></section>')
    body += ["<h2>What the proposal holds</h2>", text_block(body_lines(proposal, response, base), "body"),
             agent_section(proposal.justification)]
    return page(f"proposal {proposal.short_id}", "".join(body), root=root, marker=marker, message=message,
                pending=pending, data=data)


def changed_block(difference: list[str] | None) -> str:
    """What a page says when the proposal it showed is not the one stored now: changed, and how (if known)."""
    intro = ("This proposal changed since this page showed it (proposals are immutable: it was rewritten in the "
             "database). Its forms are disabled: nothing can be decided on what you saw. Reload to see it as it is "
             "now, and check 'bot-bottle audit verify'.")
    shown = (text_block(difference) if difference
             else "<p>What the page showed is no longer known here (the dashboard was restarted).</p>")
    return f'<section class="changed" data-part="changed" role="alert"><h2>Changed</h2><p>{line_html(intro)}</p>' \
           f"{shown}</section>"


def widening_page(proposal: Proposal, approval: Approval, form_fields: dict[str, str], *, root: str, csrf: str,
                  shown: str, token: str, extent: str = "") -> str:
    """The second ask before an approval that widens access: the grant and why, named, and one button for it;
    ``extent`` (``policy.lifetimes.approval_extent``) says for how long, and the rule "remember" makes."""
    verb = "modify" if form_fields.get("status") == STATUS_MODIFIED else "approve"
    carried = "".join(hidden(name, form_fields[name]) for name in CARRIED if name in form_fields)
    why = approval.why_asked_twice[:1].upper() + approval.why_asked_twice[1:]
    body = [f"<h1>{verb.capitalize()} {line_html(proposal.short_id)}{line_html(extent)}? {line_html(why)}</h1>",
            f"<p>bottle {line_html(proposal.queue_key)}, {line_html(proposal.tool)}. Read what it grants and why "
            "once more; nothing is recorded unless you press the button below.</p>",
            grant_section(approval, f"{verb.capitalize()} grants"),
            form(root, proposal, csrf, shown, "decide", carried + hidden("confirm", token), verb,
                 f"yes, {verb} {proposal.short_id}: {approval.summary}", form_id="confirm"),
            f'<p><a href="{attribute(root)}/proposal/{attribute(proposal.id)}">cancel: nothing recorded</a></p>']
    return page(f"confirm {proposal.short_id}", "".join(body), root=root, data={"page": "confirm"})


def confirm_page(proposal: Proposal, final_file: str, *, root: str, csrf: str, shown: str, final_sha256: str,
                 problem: str | None, base: RoutesBase | None = None) -> str:
    """The operator's own diff and what it grants (``modification``'s lines), to confirm before anything is recorded.

    A file its tool cannot take is shown with the reason, and can only be
    edited again (as in the TUI). The confirming form carries the file (a
    hidden field: nothing to edit by mistake) and its digest as shown here:
    the server records it only if they still match.
    """
    if problem is not None:
        lines = [f"cannot record this file: {problem}", "", "your file:", *final_file.split("\n")]
        body = [f"<h1>Modify {line_html(proposal.short_id)}</h1>", text_block(lines),
                form(root, proposal, csrf, shown, "preview", "<label>edit again</label>" + editor(final_file),
                     "modify", "modify: show my diff")]
        return page(f"modify {proposal.short_id}", "".join(body), root=root, data={"page": "confirm"})
    confirm_fields = (hidden("status", STATUS_MODIFIED) + hidden("final_sha256", final_sha256)
                      + '<label>note (optional) <input type="text" name="notes" size="60"></label>'
                      + hidden("final", final_file))
    body = [f"<h1>Confirm your modification of {line_html(proposal.short_id)}</h1>",
            text_block(modification(proposal, final_file, base)),
            form(root, proposal, csrf, shown, "decide", confirm_fields, "record this modification",
                 "record this modification", form_id="confirm", read="" if base is None else base.digest()),
            form(root, proposal, csrf, shown, "preview", "<label>or edit again</label>" + editor(final_file),
                 "modify", "modify: show my diff"),
            f'<p><a href="{attribute(root)}/proposal/{attribute(proposal.id)}">cancel: nothing recorded</a></p>']
    return page(f"confirm {proposal.short_id}", "".join(body), root=root, data={"page": "confirm"})
