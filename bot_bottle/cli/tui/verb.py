"""``bot-bottle supervise``: the verb that opens the terminal UI, or prints the pending list (``--once``)."""

from __future__ import annotations

import argparse
import curses
import os
from typing import Any

from bot_bottle.cli.common import (
    age,
    cell_text,
    db_path,
    print_json,
    print_table,
    print_untrusted,
    verb_parser,
    warn,
)
from bot_bottle.cli.inbox import Inbox, apply_standing, expired_line
from bot_bottle.cli.registry import summary
from bot_bottle.cli.render import grant_cell, left_cell, proposal_json
from bot_bottle.cli.tui.app import SuperviseTUI
from bot_bottle.errors import BotBottleError
from bot_bottle.queue_store import QueueStore
from bot_bottle.timestamps import utc_now


def check_terminal() -> None:
    """Refuse, in one line, a terminal type curses cannot draw on (no terminfo entry here)."""
    term = os.environ.get("TERM", "")
    try:
        curses.setupterm(term or None, 1)
    except curses.error:
        raise BotBottleError(
            f"this terminal type ({term or 'TERM is not set'}) has no terminfo entry on this machine, so the UI "
            "cannot draw: run with TERM=xterm-256color (or install its terminfo), or use --once"
        ) from None


def print_pending(store: QueueStore, as_json: bool) -> None:
    """The ``--once`` output: the pending list without curses, each with what approving it grants."""
    for problem in apply_standing(store):
        warn(problem)
    entries = Inbox(store).pending()
    if as_json:
        print_json([proposal_json(e.proposal, None, e.approval) for e in entries])
        return
    expired = expired_line(store)
    if not entries:
        print("no pending proposals")
    else:
        now = utc_now()
        print_table(["ID", "BOTTLE", "TOOL", "AGE", "LEFT", "GRANTS", "AGENT SAYS"],
                    [[e.proposal.short_id, e.proposal.queue_key, e.proposal.tool, age(e.proposal.created_at),
                      left_cell(e.proposal, None, now), grant_cell(e.approval), cell_text(e.proposal.justification)]
                     for e in entries], narrow_drop=(2, 3), bottle_column=1)
    if expired is not None:  # after the list, as 'proposals list' and the UI's first status line say it
        print_untrusted(expired)


def cmd_supervise(args: argparse.Namespace) -> int:
    """Open the TUI (or, with --once, print the pending list and exit)."""
    with QueueStore(db_path(args)) as store:
        if args.once or args.json:
            print_pending(store, args.json)
            return 0
        if not (os.isatty(0) and os.isatty(1)):
            raise BotBottleError("the supervise UI needs a terminal; use --once (or 'proposals list') in scripts")
        check_terminal()
        os.environ.setdefault("ESCDELAY", "25")  # Esc should go back at once, not after curses' 1 s
        curses.wrapper(lambda screen: _run(SuperviseTUI(screen, store, bell=args.bell, notify=args.notify)))
    return 0


def _run(tui: SuperviseTUI) -> None:
    # What a write drops from the schema, or makes again, goes on the status line (stderr is the screen), after
    # the message and apart from it, until the next key: the write that does it is most often a decision, whose
    # own line ("approved ...") replaced it before it was ever drawn (hostile review 61).
    def noted(line: str) -> None:
        tui.schema_note = "; ".join(part for part in (tui.schema_note, line) if part)

    tui.store.db.say_schema_changes_with(noted)
    tui.run()


def register(subparsers: Any) -> None:
    """Add the ``supervise`` verb."""
    parser = verb_parser(subparsers, "supervise", json=True,
        help=summary("supervise"),
        description="Review pending proposals from every bottle and decide them: a list that refreshes "
        "itself (* marks what arrived since your last keypress), a detail view with the diff or report, "
        "and keys to approve (a), modify in $EDITOR (m), reject (r) or reject from now on (R, then +bottle or "
        "+all). Approving asks for how long (Enter: the tool's default; 8h, 7d, ...; add +bottle or +all to "
        "approve the same again until then), and a typed yes where it widens or reaches inside; / keeps the "
        "rows holding some words and w those with a warning, v shows the grants in force "
        "and Tab there the standing rules (x revokes the one under the cursor, with a reason). Esc or b goes "
        "back, q quits.",
        epilog="examples:\n  bot-bottle supervise\n  bot-bottle supervise --once --json   (for scripts)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--once", action="store_true",
                        help="print the pending list (with how long each may still wait, and what expired "
                        "unanswered in the last 24 h) and exit, without the UI")
    parser.add_argument("--bell", action="store_true", help="ring the terminal bell when a new proposal arrives")
    parser.add_argument("--notify", metavar="CMD",
                        help="run CMD through /bin/sh when new proposals arrive, so pipes, redirections and $VAR "
                        "work (quote it once for your shell); it gets BOT_BOTTLE_NEW_PROPOSALS, the count, and "
                        "BOT_BOTTLE_NEW_BOTTLES, their bottles, in its environment (never in the command's text), "
                        "e.g. 'notify-send bot-bottle \"$BOT_BOTTLE_NEW_PROPOSALS new\"'; a command that fails is "
                        "said on the status line")
    parser.set_defaults(handler=cmd_supervise)
