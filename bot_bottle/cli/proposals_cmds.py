"""``bot-bottle proposals ...``: list, show and decide what the bottles have filed."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from bot_bottle.audit_store import AuditStore
from bot_bottle.cli.common import (
    age,
    db_path,
    first_line,
    positive_int,
    print_json,
    print_table,
    print_untrusted,
    verb_parser,
)
from bot_bottle.cli.grants_cmds import time_left
from bot_bottle.cli.inbox import ANY_CAUTION, Filters, Inbox, approval_for
from bot_bottle.cli.registry import summary
from bot_bottle.cli.render import describe, grant_cell, modification, proposal_json, shown_status
from bot_bottle.decisions import check_decision, decide, default_decider
from bot_bottle.errors import BotBottleError, ValidationError
from bot_bottle.grants import GrantStore
from bot_bottle.policy.approval import KINDS
from bot_bottle.policy.subjects import describe_subject
from bot_bottle.queue_store import QueueStore
from bot_bottle.records import (
    REMEMBER_SCOPES,
    STATUS_APPROVED,
    STATUS_MODIFIED,
    STATUS_REJECTED,
    TOOLS,
    Decision,
    Proposal,
)
from bot_bottle.timestamps import parse_duration

_EPILOG = """\
examples:
  bot-bottle proposals list                       what every bottle has pending
  bot-bottle proposals list --bottle web-1 --all  everything bottle web-1 ever filed
  bot-bottle proposals show 3f2a9c1e              one proposal, its diff and its decision
  bot-bottle proposals approve 3f2a --notes "ok for the docs mirror"
  bot-bottle proposals approve 3f2a --for 30d --remember bottle   the same for this bottle's next asks
  bot-bottle proposals modify 3f2a --file routes.json --notes "narrowed the path"
  bot-bottle proposals reject 3f2a --reason "no new hosts this week"

An ID is any unique prefix of a proposal's id (list shows the first 8 digits).
"""


def cmd_proposals_list(args: argparse.Namespace) -> int:
    """List pending proposals (all of them with ``--all``), oldest first, each with what approving it grants."""
    filters = Filters(args.bottle, args.tool, args.warning, args.search)
    with QueueStore(db_path(args)) as store:
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
    if args.json:
        print_json([proposal_json(e.proposal, r, e.approval) for e, r in listed])
        return 0
    if not listed:
        print(("no proposals" if args.all else "no pending proposals") + (" match" if filters.active else ""))
        return 0
    print_table(
        ["ID", "BOTTLE", "TOOL", "AGE", "STATUS", "GRANTS", "AGENT SAYS"],
        [
            [e.proposal.short_id, e.proposal.queue_key, e.proposal.tool, age(e.proposal.created_at),
             shown_status(e.proposal, r), grant_cell(e.approval), first_line(e.proposal.justification)]
            for e, r in listed
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
    if args.json:
        print_json({**proposal_json(proposal, response, approval_for(proposal, response)), "unproven": unproven})
    else:
        print_untrusted(describe(proposal, response, unproven, full=args.full,
                                 more=f"'bot-bottle proposals show {proposal.short_id} --full' shows them"), page=True)
    return 0


def _decide(args: argparse.Namespace, status: str, notes: str, final_file: str | None) -> int:
    grant_for = parse_duration("for", args.duration) if getattr(args, "duration", None) is not None else None
    remember = getattr(args, "remember", None)
    with QueueStore(db_path(args)) as store:
        proposal = store.find(args.id)
        if status == STATUS_MODIFIED and final_file is not None and not _confirmed(args, proposal, notes, final_file):
            print("modification cancelled: nothing recorded")
            return 1
        response = decide(proposal.id, status, notes, final_file, store=store, shown=proposal, grant_for=grant_for,
                          remember=remember)
        made = GrantStore(database=store.db).for_proposal(proposal.id)
    print_untrusted(f"{response.status} {proposal.short_id} ({proposal.queue_key}, {proposal.tool}) "
                    f"as {response.decided_by}")
    if made is not None:
        print_untrusted(f"grant {made.short_id}: {describe_subject(made.tool, made.subject_value)} until "
                        f"{made.ends_at} ({time_left(made.ends_at, made.starts_at)})")
    return 0


def _confirmed(args: argparse.Namespace, proposal: Proposal, notes: str, final_file: str) -> bool:
    """Show the operator their own diff and ask, on a terminal without ``--yes``; True to record.

    The file is checked first (``check_decision``), so an invalid one is one
    error before any question. What is recorded is the very text shown.
    """
    check_decision(proposal, Decision(STATUS_MODIFIED, notes, final_file, default_decider()))
    if args.yes or not (sys.stdin.isatty() and sys.stdout.isatty()):
        return True
    print_untrusted(modification(proposal, final_file))
    question = "\nrecord this modification? type 'yes' to record; anything else, or Ctrl-C, cancels: "
    try:
        if str(args.file) == "-":  # stdin held the file: ask on the terminal itself
            with open("/dev/tty", encoding="utf-8") as tty:
                print(question, end="", flush=True)
                answer = tty.readline()
        else:
            answer = input(question)
    except (EOFError, KeyboardInterrupt, OSError):
        print()
        return False
    return answer.strip().lower() in ("y", "yes")


def cmd_proposals_approve(args: argparse.Namespace) -> int:
    """Approve a proposal as filed."""
    return _decide(args, STATUS_APPROVED, args.notes, None)


def _read_file(path: Path) -> str:
    try:
        data = sys.stdin.buffer.read() if str(path) == "-" else path.read_bytes()
    except OSError as exc:
        raise BotBottleError(f"cannot read {path}: {exc.strerror}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ValidationError("file", f"{path} is not UTF-8 text") from None


def cmd_proposals_modify(args: argparse.Namespace) -> int:
    """Approve an edited version of a proposal, read from ``--file``."""
    return _decide(args, STATUS_MODIFIED, args.notes, _read_file(args.file))


def cmd_proposals_reject(args: argparse.Namespace) -> int:
    """Reject a proposal, with a reason."""
    return _decide(args, STATUS_REJECTED, args.reason, None)


_FIELD_OPTIONS = {"notes": "--notes", "for": "--for", "remember": "--remember"}


def _grant_options(parser: argparse.ArgumentParser) -> None:
    """``--for`` and ``--remember``, on approve and modify."""
    parser.add_argument("--for", dest="duration", metavar="DURATION",
                        help="how long what this approves lasts: 8h, 7d, 2w or a time (default and maximum by tool: "
                        "egress routes 7d/90d, a token 8h/7d, a push's findings 7d/90d)")
    parser.add_argument("--remember", choices=REMEMBER_SCOPES, default=None,
                        help="approve matching proposals the same way until then: this bottle's, or every "
                        "bottle's (a standing rule; 'rules list' shows it)")


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
        description="List pending proposals of every bottle (or one), oldest first: what approving each grants "
        "(a [widens], [look-alike] or [unreadable] badge first where it warrants a second look), then the agent's "
        "own first line. --json prints objects with id, queue_key, tool, created_at, status and grants "
        "(summary, grants, warnings); no payload: 'show' prints one whole.",
        json=True,
    )
    p.add_argument("--bottle", metavar="SLUG", help="only this bottle's proposals")
    p.add_argument("--all", action="store_true", help="decided and archived proposals too")
    p.add_argument("--tool", choices=TOOLS, help="only this tool's proposals")
    p.add_argument("--warning", nargs="?", const=ANY_CAUTION, choices=(ANY_CAUTION, *KINDS), metavar="KIND",
                   help="only proposals with a warning (of KIND: widens, look-alike or unreadable)")
    p.add_argument("--search", metavar="WORDS", help="only proposals whose row holds every word (case ignored)")
    p.add_argument("--limit", type=positive_int, metavar="N", help="only the newest N")
    p.set_defaults(handler=cmd_proposals_list)

    p = verb_parser(verbs, "show", help="one proposal in full",
                         description="Show a proposal: what approving it grants (with warnings), its diff (or "
                         "report), its decision, and last the agent's justification (its first lines; --full for "
                         "all). --json adds 'grants' to the proposal's fields.", json=True)
    p.add_argument("id", metavar="ID", help="the proposal's id or a unique prefix of it")
    p.add_argument("--full", action="store_true", help="the agent's whole justification, however long")
    p.set_defaults(handler=cmd_proposals_show)

    p = verb_parser(verbs, "approve", help="approve a proposal as filed",
                         description="Approve a proposal as filed. gitleaks-allow and egress-token-allow "
                         "proposals need a reason (--notes).")
    p.add_argument("id", metavar="ID", help="the proposal's id or a unique prefix of it")
    p.add_argument("--notes", default="", metavar="TEXT", help="why (required for report-only tools)")
    _grant_options(p)
    p.set_defaults(handler=cmd_proposals_approve, field_options=_FIELD_OPTIONS)

    p = verb_parser(verbs, "modify", help="approve an edited version of a proposal",
                         description="Approve an edited version of a proposal: the file you give replaces "
                         "what the bottle proposed. Not offered for report-only tools. The file must be one "
                         "its tool can take (an egress-allow: a JSON route with host and optional paths; an "
                         "egress-block: text without control, bidirectional or invisible characters). On a "
                         "terminal you see your own diff (proposed -> final) and confirm it first; --yes skips "
                         "the question, as do scripts, whose stdin or stdout is not a terminal.")
    p.add_argument("id", metavar="ID", help="the proposal's id or a unique prefix of it")
    p.add_argument("--file", type=Path, required=True, metavar="F", help="the final file ('-' reads stdin)")
    p.add_argument("--notes", default="", metavar="TEXT", help="what you changed and why")
    p.add_argument("--yes", action="store_true", help="record without showing the diff and asking")
    _grant_options(p)
    p.set_defaults(handler=cmd_proposals_modify, field_options={**_FIELD_OPTIONS, "final_file": "--file"})

    p = verb_parser(verbs, "reject", help="reject a proposal, with a reason",
                         description="Reject a proposal. The reason goes back to the bottle and into the audit log.")
    p.add_argument("id", metavar="ID", help="the proposal's id or a unique prefix of it")
    p.add_argument("--reason", required=True, metavar="TEXT", help="why (sent back to the bottle)")
    p.add_argument("--remember", choices=REMEMBER_SCOPES, default=None,
                   help="reject matching proposals the same way from now on: this bottle's, or every bottle's "
                   "(a standing rule; for good unless --for)")
    p.add_argument("--for", dest="duration", metavar="DURATION",
                   help="with --remember: how long the rule stands (8h, 7d, 2w, or a time)")
    p.set_defaults(handler=cmd_proposals_reject, field_options={**_FIELD_OPTIONS, "notes": "--reason"})
