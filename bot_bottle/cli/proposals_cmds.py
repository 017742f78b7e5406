"""``bot-bottle proposals ...``: list, show and decide what the bottles have filed."""

from __future__ import annotations

import argparse
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
)
from bot_bottle.cli.proposals_decide import register_decisions
from bot_bottle.cli.registry import summary
from bot_bottle.cli.render import describe, proposal_json, shown_status
from bot_bottle.decisions import shown_digest
from bot_bottle.queue_store import QueueStore

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

An ID is any unique prefix of a proposal's id (list shows the first 8 digits). A decision holds
only for the proposal as you saw it: 'approve' on a terminal shows it and asks, and a script passes
the digest 'show' printed (--digest, also taken by modify and reject); a proposal rewritten in the
database since is refused.
"""


def cmd_proposals_list(args: argparse.Namespace) -> int:
    """List pending proposals (all of them with ``--all``), oldest first."""
    with QueueStore(db_path(args)) as store:
        # Summaries: a bottle's megabytes of payloads stay on disk until one is shown.
        rows = store.summaries(args.bottle, include_decided=args.all, limit=args.limit)
    if args.json:
        print_json([proposal_json(p, r) for p, r in rows])
        return 0
    if not rows:
        print("no proposals" if args.all else "no pending proposals")
        return 0
    print_table(
        ["ID", "BOTTLE", "TOOL", "AGE", "STATUS", "JUSTIFICATION"],
        [
            [p.short_id, p.queue_key, p.tool, age(p.created_at), shown_status(p, r),
             cell_text(p.justification)]
            for p, r in rows
        ],
        status_column=4,
        page=True,
    )
    return 0


def cmd_proposals_show(args: argparse.Namespace) -> int:
    """Show one proposal: its justification, diff or report, and decision."""
    with QueueStore(db_path(args)) as store:
        proposal = store.find(args.id)
        response = store.response(proposal.id)
        # A sidecar can write a response straight into the file: say when the audit log does not prove it.
        unproven = AuditStore(database=store.db).decision_problem(response) if response is not None else None
    digest = shown_digest(proposal)
    if args.json:
        print_json({**proposal_json(proposal, response), "unproven": unproven, "digest": digest})
        return 0
    lines = describe(proposal, response, unproven)
    if response is None:
        lines += ["", f"digest    {digest}",
                  f"to approve exactly this: bot-bottle proposals approve {proposal.short_id} --digest {digest}"]
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
        description="List pending proposals of every bottle (or one), oldest first. "
        "--json prints objects with id, queue_key, tool, created_at and status "
        "(no payload: 'show' prints one whole).",
        json=True,
    )
    p.add_argument("--bottle", metavar="SLUG", help="only this bottle's proposals")
    p.add_argument("--all", action="store_true", help="decided and archived proposals too")
    p.add_argument("--limit", type=positive_int, metavar="N", help="only the newest N")
    p.set_defaults(handler=cmd_proposals_list)

    p = verb_parser(verbs, "show", help="one proposal in full",
                         description="Show a proposal: justification, diff (or report) and decision.", json=True)
    p.add_argument("id", metavar="ID", help="the proposal's id or a unique prefix of it")
    p.set_defaults(handler=cmd_proposals_show)

    register_decisions(verbs)
