"""``bot-bottle audit ...``: read, verify and export the audit log."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from bot_bottle.audit_store import DEFAULT_LIST_LIMIT, AuditStore
from bot_bottle.cli.common import (
    add_db_option,
    add_json_option,
    db_path,
    first_line,
    positive_int,
    print_json,
    print_table,
)
from bot_bottle.records import SHORT_ID_LENGTH

_EPILOG = """\
examples:
  bot-bottle audit list                            the newest 50 entries
  bot-bottle audit list --bottle web-1 --since 2026-11-01 --limit 200
  bot-bottle audit verify                          exit 0 when the hash chain is whole
  bot-bottle audit export > audit.jsonl            every entry, oldest first, as JSON lines
"""


def cmd_audit_list(args: argparse.Namespace) -> int:
    """List audit entries, newest first."""
    with AuditStore(db_path(args)) as store:
        entries = store.entries(args.bottle, since=args.since, until=args.until, tool=args.tool, limit=args.limit)
    if args.json:
        print_json([entry.to_dict() for entry in entries])
        return 0
    if not entries:
        print("no audit entries")
        return 0
    print_table(
        ["SEQ", "TIME", "BOTTLE", "ACTION", "TOOL", "PROPOSAL", "BY", "NOTES"],
        [
            [str(e.seq), (e.ts or "")[:19] + "Z", e.queue_key, e.action, e.tool or "",
             (e.proposal_id or "")[:SHORT_ID_LENGTH], e.actor, first_line(e.notes)]
            for e in entries
        ],
        last_width=40,
    )
    return 0


def cmd_audit_verify(args: argparse.Namespace) -> int:
    """Check the hash chain; exit 1 naming the first bad entry."""
    with AuditStore(db_path(args)) as store:
        result = store.verify()
    if args.json:
        print_json(result.to_dict())
    elif result.ok:
        print(f"audit log whole: {result.count} entries")
    if not result.ok:
        print(f"bot-bottle: error: audit log broken: {result.problem}", file=sys.stderr)
        return 1
    return 0


def cmd_audit_export(args: argparse.Namespace) -> int:
    """Print every entry, oldest first, one JSON object per line."""
    with AuditStore(db_path(args)) as store:
        for entry in store.export():
            sys.stdout.write(json.dumps(entry.to_dict(), ensure_ascii=False) + "\n")
    return 0


def register(subparsers: Any) -> None:
    """Add the ``audit`` verb and its subcommands."""
    parser = subparsers.add_parser(
        "audit",
        help="read, verify and export the audit log",
        description="The append-only, hash-chained log of every decision and operator edit.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    verbs = parser.add_subparsers(dest="audit_verb", metavar="VERB", required=True)

    p = verbs.add_parser("list", help="entries, newest first", description="List audit entries, newest first.")
    add_db_option(p)
    add_json_option(p)
    p.add_argument("--bottle", metavar="SLUG", help="only this bottle's entries")
    p.add_argument("--since", metavar="ISO", help="entries at or after this date/time (UTC unless a zone is given)")
    p.add_argument("--until", metavar="ISO", help="entries before this date/time")
    p.add_argument("--tool", metavar="TOOL", help="only entries for this tool (or edited component)")
    p.add_argument("--limit", type=positive_int, default=DEFAULT_LIST_LIMIT, metavar="N",
                   help=f"at most N entries (default {DEFAULT_LIST_LIMIT})")
    p.set_defaults(handler=cmd_audit_list)

    p = verbs.add_parser("verify", help="check the hash chain",
                         description="Recompute the hash chain. Exit 0 when it is whole; 1 naming the first "
                         "entry that was changed or removed.")
    add_db_option(p)
    add_json_option(p)
    p.set_defaults(handler=cmd_audit_verify)

    p = verbs.add_parser("export", help="every entry as JSON lines",
                         description="Print every entry, oldest first, one JSON object per line, with the "
                         "hashes, so the log can be archived and checked elsewhere.")
    add_db_option(p)
    p.set_defaults(handler=cmd_audit_export)
