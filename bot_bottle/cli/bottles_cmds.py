"""``bot-bottle bottles ...``: which bottles the host knows, whether they live, and what they wait for."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot_bottle.bottles import BottleOverview, BottleStore
from bot_bottle.cli.common import age, cell_text, db_path, print_json, print_table, print_untrusted, verb_parser, warn
from bot_bottle.cli.grants_cmds import grant_json, rule_in_force_json
from bot_bottle.cli.in_force import (
    GrantsListed,
    grant_subjects,
    grants_listed,
    log_warnings,
    rule_left,
    rule_scope,
    rule_subject,
    shown_record,
)
from bot_bottle.cli.inbox import Inbox, apply_standing, expired_line
from bot_bottle.cli.launch_routes import read_routes_file, record_launch_routes
from bot_bottle.cli.registry import summary
from bot_bottle.cli.render import grant_cell, left_cell, proposal_json
from bot_bottle.errors import NotFound
from bot_bottle.grants import GrantStore
from bot_bottle.queue_store import QueueStore
from bot_bottle.standing import rules_in_force
from bot_bottle.timestamps import format_timestamp, time_left

_EPILOG = """\
examples:
  bot-bottle bottles list            every bottle: state, pending proposals, the oldest one's age
  bot-bottle bottles list --json     the same for scripts
  bot-bottle bottles show web-1      one bottle's life, its pending proposals, grants and rules

A running bottle whose sidecar has not been seen for a minute shows as
'stale': its sidecar died without saying so, and what it filed waits for a
caller who is gone. A bottle that has only filed (the host never prepared
it, no sidecar of it ran: a git-gate hook, or a script through the Python
API) shows as 'unprepared'.
"""


def ago(timestamp: str | None, now: datetime) -> str:
    """``age`` of a stored time, ``-`` for none and ``unreadable`` for text that is not a time."""
    return "-" if timestamp is None else age(timestamp, now)


def overview_json(item: BottleOverview, now: datetime) -> dict[str, Any]:
    """A bottle, its shown state and its pending proposals as one JSON object."""
    return {
        **item.bottle.to_dict(),
        "stale": item.bottle.stale(now),
        "shown_state": item.shown_state(now),
        "pending": len(item.pending),
        "oldest_pending": item.oldest_pending,
        "pending_proposals": [proposal_json(p, None) for p in item.pending],
    }


def cmd_bottles_list(args: argparse.Namespace) -> int:
    """Every bottle with its state, pending count and the oldest pending proposal's age (one query), once the
    standing rules and expiry are applied, as ``proposals list`` applies them: what they decide is not pending."""
    now = datetime.now(UTC)
    with QueueStore(db_path(args)) as queue:
        for problem in apply_standing(queue):
            warn(problem)
        items = BottleStore(database=queue.db).overview()
    if args.json:
        print_json([overview_json(item, now) for item in items])
        return 0
    if not items:
        print("no bottles")
        return 0
    print_table(
        ["BOTTLE", "STATE", "BACKEND", "TRANSPORT", "PENDING", "OLDEST", "LAST SEEN"],
        [[o.bottle.slug, o.shown_state(now), o.bottle.backend or "-", o.shown_transport,
          str(len(o.pending)), ago(o.oldest_pending, now), ago(o.bottle.last_seen, now)] for o in items],
        page=True,
    )
    return 0


def cmd_bottles_show(args: argparse.Namespace) -> int:
    """One bottle: its life, and its pending proposals (the standing rules and expiry applied first)."""
    now = datetime.now(UTC)
    with QueueStore(db_path(args)) as queue:
        for problem in apply_standing(queue):
            warn(problem)
        store = BottleStore(database=queue.db)
        items = store.overview(args.slug)
        listed = grants_listed(GrantStore(database=store.db), args.slug) if items else GrantsListed([], frozenset(), {})
        grants = listed.grants
        subjects = grant_subjects(queue, grants)
        # The standing rules that decide for it without you: its own, and every bottle's.
        rules = [item for item in rules_in_force(queue) if item.rule.queue_key in (None, args.slug)] if items else []
        entries = Inbox(queue).entries(items[0].pending) if items else []
        expired = expired_line(queue, args.slug) if items and not args.json else None
    if not items:
        raise NotFound(f"no bottle {args.slug} (bot-bottle bottles list names them)")
    for said in log_warnings(listed):  # on stderr, as 'grants list' says it
        warn(said)
    item = items[0]
    stamp = format_timestamp(now)
    if args.json:
        print_json({**overview_json(item, now),
                    "grants": [{**grant_json(g, stamp), "note": listed.note(g)} for g in grants],
                    "rules": [rule_in_force_json(r, stamp) for r in rules]})
        return 0
    bottle = item.bottle
    lines = [
        f"bottle     {bottle.slug}",
        f"state      {item.shown_state(now)}"
        + (" (running, but its sidecar has not been seen for over a minute)" if bottle.stale(now) else "")
        + (" (it has only filed: the host never prepared it, and no sidecar of it ran)" if item.never_prepared
           else ""),
        f"backend    {bottle.backend or '-'}",
        f"transport  {item.shown_transport}",
        # The row filing made keeps its first proposal's time there: it was never prepared.
        f"prepared   never (first filed {bottle.prepared_at})" if item.never_prepared
        # No backend: no 'prepare' made the row (prepare names one); a sidecar run by hand, or filing, did.
        else f"prepared   never (first seen {bottle.prepared_at})" if bottle.backend is None
        else f"prepared   {bottle.prepared_at}",
        f"started    {bottle.started_at or '-'}",
        f"stopped    {bottle.stopped_at or '-'}",
        f"last seen  {bottle.last_seen} ({ago(bottle.last_seen, now)} ago)" if bottle.last_seen else "last seen  never",
        f"pending    {len(item.pending)}",
        f"grants     {len(grants)} in force",
        f"rules      {sum(1 for r in rules if r.decides)} deciding for it (its own and every bottle's)",
    ]
    print_untrusted(lines)
    if item.pending:
        print()
        print_table(["ID", "TOOL", "AGE", "LEFT", "GRANTS", "AGENT SAYS"],
                    [[e.proposal.short_id, e.proposal.tool, ago(e.proposal.created_at, now),
                      left_cell(e.proposal, None, stamp), grant_cell(e.approval), cell_text(e.proposal.justification)]
                     for e in entries], narrow_drop=(1, 2))
    if expired is not None:  # under its pending ones, as 'proposals list --bottle' ends
        print_untrusted(expired if item.pending else ["", expired])
    if grants:
        print()
        # Each row as a screen shows it (in_force.shown_record): a row a sidecar wrote is shown, not a traceback.
        print_table(["GRANT", "TOOL", "LEFT", "GRANTS", "BY"],  # LEFT first, as 'grants list' has it
                    [[g.short_id, g.tool, time_left(stamp, g.ends_at),
                      listed.mark(g) + subjects[g.id],
                      f"rule {g.rule_id[:8]}" if g.rule_id else g.decided_by] for g in map(shown_record, grants)],
                    narrow_drop=(1,))
    if rules:
        print()
        shown = [(r, shown_record(r.rule)) for r in rules]
        print_table(["RULE", "BOTTLE", "EFFECT", "LEFT", "DECIDES ON", "NOTES"],
                    [[rule.short_id, rule_scope(rule), rule.effect, rule_left(rule, stamp),
                      ("" if r.decides else "[decides nothing] ") + rule_subject(rule),
                      rule.notes] for r, rule in shown], bottle_column=1)
    return 0


def cmd_bottles_routes(args: argparse.Namespace) -> int:
    """Record the routes file a bottle runs with as approved for it, as ``prepare --routes-file`` does."""
    text = read_routes_file(args.file)  # before the database is opened: a file that cannot be read changes nothing
    with QueueStore(db_path(args)) as queue:
        if not BottleStore(database=queue.db).overview(args.slug):
            raise NotFound(f"no bottle {args.slug} (bot-bottle bottles list names them; 'prepare "
                           f"{args.slug} --routes-file FILE' prepares one)")
        routes = record_launch_routes(queue, args.slug, text, running=True)
    if args.json:
        print_json({"bottle": args.slug, **routes.to_json(args.file)})
        return 0
    done = "recorded as approved" if routes.recorded else "already its approved routes file"
    print_untrusted([f"{args.file}: {done} for {args.slug} (proposal {routes.proposal.short_id}); its routes "
                     "proposals are read against it; it grants:", *(f"  {item}" for item in routes.granted())])
    return 0


def register(subparsers: Any) -> None:
    """Add the ``bottles`` verb and its subcommands."""
    parser = subparsers.add_parser(
        "bottles", help=summary("bottles"), epilog=_EPILOG,
        description="The bottles this host knows: each one's state (stale when its sidecar went silent), its "
        "pending work, and the routes file it is launched with.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="bottles_verb", metavar="VERB", required=True)
    listing = verb_parser(commands, "list", json=True,
                          help="every bottle: state (stale when its sidecar went silent), pending count, oldest age",
                          description="Every bottle the host knows with its state, its pending proposals and how "
                          "long the oldest has waited, once the standing rules and expiry are applied (as "
                          "'proposals list' applies them). Bottles with pending work come first.")
    listing.set_defaults(handler=cmd_bottles_list)
    show = verb_parser(commands, "show", json=True,
                       help="one bottle's life, its pending proposals, its grants and the rules deciding for it",
                       description="One bottle: backend, transport, when it was prepared, started, stopped and "
                       "last seen, its pending proposals, the grants in force (what it may do now, until "
                       "when), and the standing rules that decide its proposals without you (its own and every "
                       "bottle's, as 'rules list' shows them).")
    show.add_argument("slug", metavar="SLUG", help="the bottle's slug (its queue key)")
    show.set_defaults(handler=cmd_bottles_show, field_options={"bottle": "SLUG"})
    routes = verb_parser(commands, "routes", json=True,
                         help="record the routes file a bottle runs with, as approved (what prepare "
                         "--routes-file records)",
                         description="Record the routes file a bottle runs with as approved for it, as 'prepare "
                         "--routes-file' does, without preparing it again (for the relay that would mint a new "
                         "token): a proposal of the bottle's, filed and approved by you in one transaction, so its "
                         "routes proposals are read against this file, and it ends the routes grant of the file it "
                         "replaces, as approving any routes file does (named in the answer; --json: replaced). "
                         "Without one on record, every host a proposed "
                         "routes file names reads as new. The same file already in force records nothing; the same "
                         "file waiting from its sidecar is approved; one rejected for the bottle (the host's sealed "
                         "rejection, even of a proposal its sidecar archived since), one whose grant you revoked "
                         "(not one a newer file replaced) or that a standing rejection rejects is refused, "
                         "recording nothing.")
    routes.add_argument("slug", metavar="SLUG", help="the bottle's slug (its queue key)")
    routes.add_argument("file", type=Path, metavar="FILE", help="the routes file it runs with (as prepare's "
                        "--routes-file takes it: a regular file, not a symbolic link, UTF-8, CRLF read as LF)")
    routes.set_defaults(handler=cmd_bottles_routes, field_options={"bottle": "SLUG", "routes_file": "FILE",
                                                                   "queue_key": "SLUG"})
