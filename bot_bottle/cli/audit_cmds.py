"""``bot-bottle audit ...``: read, verify and export the audit log."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from bot_bottle.audit.anchor import retire_anchor
from bot_bottle.audit.forensics import VerifyResult
from bot_bottle.audit.keys import restart_proof
from bot_bottle.audit.seal import key_path
from bot_bottle.audit_store import DEFAULT_LIST_LIMIT, AuditStore
from bot_bottle.cli.common import (
    cell_text,
    counted,
    db_path,
    fail,
    positive_int,
    print_json,
    print_table,
    shown_actor,
    stdout_takes_unicode,
    verb_parser,
    warn,
)
from bot_bottle.cli.db_cmds import write_export
from bot_bottle.cli.inbox import unknown_bottle
from bot_bottle.cli.registry import summary
from bot_bottle.errors import BotBottleError, ValidationError
from bot_bottle.grants import SETTING_PENDING_TTL
from bot_bottle.records import ALL_BOTTLES, SHORT_ID_LENGTH, TOOLS
from bot_bottle.text import terminal

_EPILOG = """\
examples:
  bot-bottle audit list                            the newest 50 entries
  bot-bottle audit list --bottle web-1 --since 2026-11-01 --limit 200
  bot-bottle audit verify                          exit 0 when the hash chain is whole
  bot-bottle audit head > head.json                the newest entry and seal, to keep elsewhere
  bot-bottle audit verify --head head.json         ... and later: the log still holds it
  bot-bottle audit export > audit.jsonl            every entry, oldest first, as JSON lines
  bot-bottle audit set-aside --export forged.jsonl --yes   entries a sidecar added, out of the log
  bot-bottle audit new-key --yes                   the key is lost for good: a new one, from where its proof ends
"""


def cmd_audit_list(args: argparse.Namespace) -> int:
    """List audit entries, newest first."""
    with AuditStore(db_path(args)) as store:
        entries = store.entries(args.bottle, since=args.since, until=args.until, tool=args.tool, limit=args.limit)
        # A --bottle nobody has (web1 for web-1) is said, as 'proposals list' and 'grants list' say it: not read as
        # "nothing happened to web-1". (all-bottles is the log's own name for rules and settings of every bottle.)
        unknown = unknown_bottle(store, args.bottle) if not entries and args.bottle != ALL_BOTTLES else None
    if unknown is not None:
        warn(unknown)  # on stderr: --json's output stays a document
    if not entries and args.tool is not None and args.tool not in _LOGGED_TOOLS:  # egress-blok: not "none"
        warn(f"{args.tool} is no tool the audit log records (a typo? it records {', '.join(_LOGGED_TOOLS)})")
    if args.json:
        print_json([entry.to_dict() for entry in entries])
        return 0
    if not entries:
        print("no audit entries" + (" match" if _narrowed(args) else ""))
        return 0
    print_table(
        ["SEQ", "TIME", "BOTTLE", "ACTION", "TOOL", "PROPOSAL", "BY", "NOTES"],
        [
            [str(e.seq), (e.ts or "")[:19] + "Z", e.queue_key, e.action, e.tool or "",
             (e.proposal_id or "")[:SHORT_ID_LENGTH], shown_actor(e.actor), cell_text(e.notes)]
            for e in entries
        ],
        last_width=40,
        status_column=3,
        page=True,
        bottle_column=2,
    )
    return 0


# What an entry's tool column holds: a proposal's tool, or the setting a 'setting-changed' entry changed.
_LOGGED_TOOLS = (*TOOLS, SETTING_PENDING_TTL)


def _narrowed(args: argparse.Namespace) -> bool:
    """Whether ``audit list`` was narrowed by a filter (then an empty answer is "none match", not "none")."""
    return any(value is not None for value in (args.bottle, args.since, args.until, args.tool))


def cmd_audit_verify(args: argparse.Namespace) -> int:
    """Check hashes, seals, the anchor and the responses; exit 1 naming the first problem."""
    with AuditStore(db_path(args)) as store:
        result = store.verify(progress=_progress if sys.stderr.isatty() else None)
        if sys.stderr.isatty():
            print("\r\x1b[K", end="", file=sys.stderr)
        kept = _read_head(args.head) if args.head is not None else None
        if result.ok and kept is not None and not store.has_head(kept[0], kept[1]):
            result = VerifyResult(False, result.count, kept[0], f"the head you kept ({args.head}: entry {kept[0]}) "
                                  "is not in the log with that seal: the log was rewritten or cut before it"
                                  + _other_database(kept[2], store.db.path),
                                  result.unsealed, result.anchored)
    if args.json:
        print_json(result.to_dict())
    elif result.ok:
        sealed = result.count - result.unsealed
        line = f"audit log whole: {counted(result.count, 'entry', 'entries')}, {sealed} sealed with the host's key"
        if result.anchored is not None:
            line += f", reaching the anchor at entry {result.anchored}"
        if result.unsealed:
            line += (f"; the last {result.unsealed} are not sealed yet (written before sealing began, or "
                     "their seals were dropped by a downgrade): the next decision seals them")
        print(line)
    if not result.ok:
        return fail(f"audit log broken: {result.problem}")
    return 0


PROGRESS_FROM = 20_000  # entries: below this, verify is quick enough to need no progress line


def _progress(done: int, total: int) -> None:
    if total >= PROGRESS_FROM:
        print(f"\rverifying the audit log: {done:,} of {total:,} entries", end="", file=sys.stderr, flush=True)


def _read_head(path: Path) -> tuple[int, str, str | None]:
    """The kept head's entry, seal and the database 'audit head' read it from (None: not said)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        seq, seal = int(data["seq"]), str(data["seal"])
    except OSError as exc:
        raise BotBottleError(f"cannot read {path}: {exc.strerror}") from None
    except (ValueError, KeyError, TypeError):
        raise ValidationError("head", f"{path} is not a head written by 'bot-bottle audit head'") from None
    database = data.get("database")
    return seq, seal, database if isinstance(database, str) else None


def _other_database(kept_from: str | None, checked: Path) -> str:
    """Where the head was kept from another database than the one checked (a --db left out or mistyped): said,
    since that, not a rewritten log, may be why it is not there."""
    if kept_from is None or Path(kept_from).resolve() == checked.resolve():
        return ""
    return f" (or it is another database's: it was kept from {kept_from}, and this is {checked}; --db names one)"


def cmd_audit_retire_anchor(args: argparse.Namespace) -> int:
    """Move the database's anchor aside, for a database that was replaced or emptied on purpose."""
    path = db_path(args)
    if not args.yes:
        raise ValidationError("--yes", "retiring the anchor stops 'audit verify' from catching entries removed "
                              "so far; say --yes if this database was replaced or emptied on purpose")
    retired = retire_anchor(path)
    print(f"anchor of {path} moved to {retired}" if retired else f"{path} has no anchor; nothing to do")
    return 0


def cmd_audit_new_key(args: argparse.Namespace) -> int:
    """Start sealing with a new key where the old key's proof ends (the key lost, or another in its place)."""
    path = db_path(args)
    if not args.yes:
        raise ValidationError("--yes", "a new key means the seals so far can no longer be checked (their chain "
                              "still is): restore the key from your copy if you can; say --yes if it is lost "
                              "for good")
    with AuditStore(path) as store:
        anchor, created = restart_proof(store.db)
    restart = anchor.restarts[-1]
    made = f"a new audit key {key_path()} (key {restart.key})" if created else \
        f"the audit key now in {key_path()} (key {restart.key})"
    print(f"{path}: entries 1-{restart.seq} keep the proof of the earlier key (key {restart.previous_key or 'unnamed'}"
          f", checked by their chain from now on); from entry {restart.seq + 1} they are sealed with {made}. Back "
          "the key up with your other secrets")
    return 0


def cmd_audit_set_aside(args: argparse.Namespace) -> int:
    """Move entries the host cannot prove (a sidecar's, past the host's seals) to a new file, out of the log."""
    path = db_path(args)
    if not args.yes:
        raise ValidationError("--yes", "set-aside removes the entries past the host's newest seal from the log "
                              "(after writing them to --export); say --yes to do it")
    with AuditStore(path) as store:
        done = store.set_aside(lambda conn, after: write_export(conn, args.export, after))
    if done.count:
        removed = counted(done.count, "audit entry", "audit entries")
        print(f"{removed} past entry {done.kept} (not sealed by this host) written to "
              f"{args.export} and removed from the log; decisions are recorded again")
        if done.rows:
            print(f"removed with them, as unproven as the entries that recorded them: {', '.join(done.rows)}")
    else:
        print(f"every entry up to {done.kept} is the host's; nothing to set aside")
    return 0


def cmd_audit_head(args: argparse.Namespace) -> int:
    """Print the newest entry's sequence, hash and seal, and the anchor, as JSON to keep elsewhere."""
    with AuditStore(db_path(args)) as store:
        print_json(store.head())
    return 0


def cmd_audit_export(args: argparse.Namespace) -> int:
    """Print every entry, oldest first, one JSON object per line."""
    with AuditStore(db_path(args)) as store:
        ascii_only = not stdout_takes_unicode()
        for entry in store.export():
            sys.stdout.write(terminal.json_for_terminal(json.dumps(entry.to_dict(), ensure_ascii=ascii_only)) + "\n")
    return 0


def register(subparsers: Any) -> None:
    """Add the ``audit`` verb and its subcommands."""
    parser = subparsers.add_parser(
        "audit",
        help=summary("audit"),
        description="The append-only, hash-chained log of every decision and operator edit.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    verbs = parser.add_subparsers(dest="audit_verb", metavar="VERB", required=True)

    p = verb_parser(verbs, "list", help="entries, newest first", description="List audit entries, newest first.",
                    json=True)
    p.add_argument("--bottle", metavar="SLUG", help="only this bottle's entries")
    p.add_argument("--since", metavar="ISO", help="entries at or after this date/time (UTC unless a zone is given)")
    p.add_argument("--until", metavar="ISO", help="entries before this date/time")
    p.add_argument("--tool", metavar="TOOL", help="only entries for this tool, or the setting changed ("
                   f"{', '.join(_LOGGED_TOOLS)}; one the log never names is warned of)")
    p.add_argument("--limit", type=positive_int, default=DEFAULT_LIST_LIMIT, metavar="N",
                   help=f"at most N entries (default {DEFAULT_LIST_LIMIT})")
    p.set_defaults(handler=cmd_audit_list)

    p = verb_parser(verbs, "verify", help="check the hash chain, the seals, the anchor and the responses",
                         description="Recompute every entry's hash and, with the host's key, its seal; check "
                         "that the log still reaches the anchor the host keeps outside the database, and that "
                         "every decision matches the entry that recorded it. Exit 0 when all holds; 1 naming "
                         "the first entry that was changed or removed.", json=True)
    p.add_argument("--head", type=Path, metavar="FILE",
                   help="also check a head saved earlier with 'audit head > FILE' (kept off this host)")
    p.set_defaults(handler=cmd_audit_verify)

    p = verb_parser(verbs, "retire-anchor", help="forget the anchor of a database replaced on purpose",
                         description="The host keeps the newest seal of each database's audit log outside it "
                         "(its anchor), so entries removed from the end are caught. If you replaced or emptied "
                         "the database on purpose, decisions are refused until the anchor is moved aside; this "
                         "does that (the old anchor is kept beside it, renamed).")
    p.add_argument("--yes", action="store_true", help="yes, the database was replaced or emptied on purpose")
    p.set_defaults(handler=cmd_audit_retire_anchor)

    p = verb_parser(verbs, "new-key", help="start a new audit key where the lost one's proof ends",
                    description="When the host's audit key (~/.bot-bottle/audit.key) is lost for good, or another "
                    "key is in its place, nothing is recorded: the proof never restarts by itself. Restore the "
                    "key from your copy if you can. Otherwise this starts a new key (or takes on the one in its "
                    "place) and records, in the database's anchor, where the old key's proof ends: the "
                    "anchored entry. Entries up to it keep being checked by their hash chain (their seals cannot "
                    "be, without the old key); from the next entry on, seals are made with the new key. Refused "
                    "when the key in place is the one that sealed the log, or when the log does not reach its "
                    "anchor whole (restore a backup first). Run it for each database whose decisions are refused.")
    p.add_argument("--yes", action="store_true", help="yes, the old key is lost for good")
    p.set_defaults(handler=cmd_audit_new_key)

    p = verb_parser(verbs, "set-aside", help="move entries a sidecar added past the host's seals to a file",
                    description="Entries past the host's newest seal (or anchor) that have no seal, or a "
                    "made-up one, were written without the host's key, and every decision is refused while "
                    "they are there. This writes them, with their hashes and seals, to a new --export file "
                    "and removes them from the log, in one transaction, with the grants, rules and settings "
                    "that only they recorded. Entries up to the anchor that were changed are never removed, "
                    "nor a revocation: restore a backup for those.")
    p.add_argument("--export", type=Path, required=True, metavar="FILE",
                   help="a new file to write the entries to before they are removed")
    p.add_argument("--yes", action="store_true", help="yes, move them out of the log")
    p.set_defaults(handler=cmd_audit_set_aside)

    p = verb_parser(verbs, "head", help="the log's newest entry and seal, to keep elsewhere",
                         description="Print the newest entry's sequence number, hash and seal and the host's "
                         "anchor, as JSON. Keep it somewhere this host cannot rewrite; 'audit verify --head "
                         "FILE' later shows the log still holds it.")
    p.set_defaults(handler=cmd_audit_head)

    p = verb_parser(verbs, "export", help="every entry as JSON lines",
                         description="Print every entry, oldest first, one JSON object per line, with the "
                         "hashes, so the log can be archived and checked elsewhere.")
    p.set_defaults(handler=cmd_audit_export)
