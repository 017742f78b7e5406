"""``bot-bottle proposals ...``: list, show and decide what the bottles have filed."""

from __future__ import annotations

import argparse
import shlex
from typing import Any

from bot_bottle.audit_store import AuditStore
from bot_bottle.cli.common import (
    age,
    cell_text,
    db_path,
    positive_int,
    print_json,
    print_table,
    print_untrusted,
    verb_parser,
    warn,
)
from bot_bottle.cli.inbox import (
    ANY_CAUTION,
    Filters,
    Inbox,
    apply_standing,
    approval_for,
    decision_digest,
    expired_line,
    routes_base_of,
    unknown_bottle,
    unproven_decision,
)
from bot_bottle.cli.proposals_decide import register_decisions
from bot_bottle.cli.registry import summary
from bot_bottle.cli.render import describe, grant_cell, left_cell, proposal_json, shown_status
from bot_bottle.policy.approval import KINDS
from bot_bottle.queue_store import QueueStore
from bot_bottle.records import TOOLS
from bot_bottle.timestamps import utc_now

_EPILOG = """\
examples:
  bot-bottle proposals list                       what every bottle has pending
  bot-bottle proposals list --bottle web-1 --all  everything bottle web-1 ever filed
  bot-bottle proposals show 3f2a9c1e              one proposal, its diff and its decision (and its digest)
  bot-bottle proposals approve 3f2a --notes "ok for the docs mirror"   on a terminal: shows it, then asks
  bot-bottle proposals approve 3f2a --digest 9b1c...   from a script: only what 'show' printed
  bot-bottle proposals approve 3f2a --for 30d --remember bottle   the same for this bottle's next asks
  bot-bottle proposals modify 3f2a --file routes.json --notes "narrowed the path"
  bot-bottle proposals reject 3f2a --reason "no new hosts this week"

An ID is any unique prefix of 4 or more digits of a proposal's id (list shows the first 8). A decision holds
only for the proposal as you saw it: 'approve' on a terminal shows it and asks, and a script passes
the digest 'show' printed (--digest, also taken by modify and reject); a proposal rewritten in the
database since is refused.
"""


def cmd_proposals_list(args: argparse.Namespace) -> int:
    """List pending proposals (all of them with ``--all``), oldest first, each with what approving it grants."""
    filters = Filters(args.bottle, args.tool, args.warning, args.search)
    with QueueStore(db_path(args)) as store:
        for problem in apply_standing(store):
            warn(problem)
        inbox = Inbox(store)
        if args.all:
            # Summaries: only what the list shows of each payload is kept once it is read.
            rows = store.summaries(args.bottle, include_decided=True, limit=args.limit)
            entries = inbox.entries([p for p, _ in rows], [r for _, r in rows])
            listed = [(entry, response) for entry, (_, response) in zip(entries, rows, strict=True)
                      if filters.keep(entry)]
        else:
            pending = inbox.pending(filters)
            listed = [(entry, None) for entry in (pending[-args.limit:] if args.limit else pending)]
        expired = None if args.all or args.json else expired_line(store, args.bottle)
        unknown = unknown_bottle(store, args.bottle) if not listed else None
    if unknown is not None:  # (on stderr: --json's output stays a document)
        warn(unknown)
    if args.json:
        print_json([proposal_json(e.proposal, r, e.approval) for e, r in listed])
        return 0
    if not listed:
        print(("no proposals" if args.all else "no pending proposals") + (" match" if filters.active else ""))
    else:
        now = utc_now()
        print_table(
            ["ID", "BOTTLE", "TOOL", "AGE", "LEFT", "STATUS", "GRANTS", "AGENT SAYS"],
            [
                [e.proposal.short_id, e.proposal.queue_key, e.proposal.tool, age(e.proposal.created_at),
                 left_cell(e.proposal, r, now), shown_status(e.proposal, r), grant_cell(e.approval),
                 cell_text(e.proposal.justification)]
                for e, r in listed
            ],
            status_column=5,
            page=True,
            # TOOL and AGE, as the TUI's list below 100 columns (what it grants says the tool), and of the pending
            # alone the STATUS each has ('pending')
            narrow_drop=(2, 3) if args.all else (2, 3, 5),
            bottle_column=1,
        )
    if expired is not None:  # after the list: what the operator missed since they last looked
        print_untrusted(expired)
    return 0


def cmd_proposals_show(args: argparse.Namespace) -> int:
    """Show one proposal: its justification, diff or report, and decision."""
    with QueueStore(db_path(args)) as store:
        proposal = store.find(args.id)
        response = store.response(proposal.id)
        # A sidecar can write a response straight into the file: say when the audit log does not prove it.
        unproven = unproven_decision(AuditStore(database=store.db), proposal, response)
        base = routes_base_of(store, proposal, response)
        digest = decision_digest(store, proposal, base if response is None else None)  # the reading shown
    if args.json:
        print_json({**proposal_json(proposal, response, approval_for(proposal, response, base)), "unproven": unproven,
                    "digest": digest})
        return 0
    lines = describe(proposal, response, unproven, full=args.full,
                     more=f"'bot-bottle proposals show {proposal.short_id} --full' shows them", base=base)
    if response is None:  # (with the --db given: pasted without it, the line would name the host database)
        db = f" --db {shlex.quote(str(args.db))}" if getattr(args, "db", None) is not None else ""
        lines += ["", f"digest    {digest}",
                  f"to approve exactly this: bot-bottle{db} proposals approve {proposal.short_id} --digest {digest}"]
    print_untrusted(lines, page=True)
    return 0


def register(subparsers: Any) -> None:
    """Add the ``proposals`` verb and its subcommands."""
    parser = subparsers.add_parser(
        "proposals",
        help=summary("proposals"),
        description="Work the supervise queue from a shell: what every bottle has filed, and your decisions.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    verbs = parser.add_subparsers(dest="proposals_verb", metavar="VERB", required=True)

    p = verb_parser(verbs, "list",
        help="pending proposals of every bottle, oldest first",
        description="List pending proposals of every bottle (or one), oldest first: how long each may still wait "
        "(LEFT: then it expires, its caller told no), what approving each grants "
        "(a [widens], [look-alike], [internal], [rejected], [unreadable] or [drifted] badge first where it "
        "warrants a second look; [rejected]: a routes file naming a host a standing rejection in force for its "
        "bottle rejects, which a rule does not decide), then the agent's own first line; last, the proposals "
        "that expired unanswered in the last 24 hours. "
        "--json prints objects with id, queue_key, tool, created_at, status and grants (summary, grants, "
        "warnings); no payload: 'show' prints one whole.",
        json=True,
    )
    p.add_argument("--bottle", metavar="SLUG", help="only this bottle's proposals")
    p.add_argument("--all", action="store_true", help="decided and archived proposals too")
    p.add_argument("--tool", choices=TOOLS, help="only this tool's proposals")
    p.add_argument("--warning", nargs="?", const=ANY_CAUTION, choices=(ANY_CAUTION, *KINDS), metavar="KIND",
                   help="only proposals with a warning (of KIND: widens, look-alike, internal, rejected, unreadable or "
                   "drifted)")
    p.add_argument("--search", metavar="WORDS", help="only proposals whose row holds every word (case ignored)")
    p.add_argument("--limit", type=positive_int, metavar="N", help="only the newest N")
    p.set_defaults(handler=cmd_proposals_list, field_options={"queue_key": "--bottle"})

    p = verb_parser(verbs, "show", help="one proposal in full",
                         description="Show a proposal: what approving it grants (with warnings), its diff (or "
                         "report), its decision, and last the agent's justification (its first lines; --full for "
                         "all). --json adds 'grants' to the proposal's fields.", json=True)
    p.add_argument("id", metavar="ID", help="the proposal's id or a unique prefix of it (4 digits or more)")
    p.add_argument("--full", action="store_true", help="the agent's whole justification, however long")
    p.set_defaults(handler=cmd_proposals_show)

    register_decisions(verbs)
