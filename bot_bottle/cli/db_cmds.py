"""``bot-bottle db ...``: where the database is, its schema version, migrations, backups, checks."""

from __future__ import annotations

import argparse
import os
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot_bottle.audit.anchor import retire_anchor
from bot_bottle.audit_store import AuditStore
from bot_bottle.cli.common import counted, db_path, fail, print_json, verb_parser, version_number
from bot_bottle.cli.registry import summary
from bot_bottle.connection import connect, translate_errors
from bot_bottle.db import mark_if_log_empty, open_db
from bot_bottle.db.files import closing_checked
from bot_bottle.errors import BotBottleError, CannotOpenDatabase, SchemaTooNew
from bot_bottle.leftovers import hidden_name, publish, remove_stale, sync_folder
from bot_bottle.schema import health, migrate
from bot_bottle.schema.backups import backups_dir
from bot_bottle.text import terminal

_DB_EPILOG = """\
examples:
  bot-bottle db path                      where the host database is
  bot-bottle db status                    its schema version, pending migrations, drift
  bot-bottle db upgrade                   apply every pending migration (backs up first)
  bot-bottle db downgrade --to 2 --export audit.jsonl
                                          revert to version 2, writing the audit log out first
  bot-bottle db backup ~/bb-copy.db       a consistent copy, taken while others use it
  bot-bottle db check --db ./other.db     integrity, foreign keys and drift of another file
"""


@contextmanager
def _existing(path: Path, *, writes: bool = False) -> Iterator[sqlite3.Connection]:
    """A connection to an existing database, without migrating it; a backup only to read (``writes`` refuses
    one: a backup changed in place would stop being the copy it was made to be)."""
    if not path.exists():
        raise CannotOpenDatabase(f"there is no database at {path} (run 'bot-bottle db upgrade' to create it)")
    if migrate.is_backup(path):
        if writes:
            _refuse_backup(path)
        with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as conn, \
                translate_errors(path):
            yield conn
        return
    with closing_checked(connect(path), path) as conn, translate_errors(path):
        yield conn


def _refuse_backup(path: Path) -> None:
    """``CannotOpenDatabase``: a backup changed in place would stop being the copy it was made to be."""
    raise CannotOpenDatabase(f"{path} is a backup: bot-bottle never changes one in place. Copy it and "
                             f"use the copy (cp {path.name} restored.db; --db restored.db)")


def _describe(state: migrate.Status) -> list[str]:
    if state.too_new:
        where = f"{state.current}, newer than this bot-bottle knows ({state.head})"
    elif state.pending:
        where = f"{state.current} of {state.head} ({len(state.pending)} pending)"
    else:
        where = f"{state.current} of {state.head} (up to date)"
    lines = [f"database: {state.path}", f"version:  {where}"]
    lines.append(
        "pending:  " + (", ".join(f"{m.version:04d}_{m.name}" for m in state.pending) or "none")
    )
    if state.drift:
        lines.append("drift:")
        lines.extend(f"  {d.summary}" for d in state.drift)
    else:
        lines.append("drift:    none")
    return lines


def _unusable_reason(state: migrate.Status) -> str | None:
    if state.too_new:
        try:  # the words every other verb refuses it with: a version no migration recorded was set behind our back
            migrate.refuse_unusable(state)
        except SchemaTooNew as exc:
            return str(exc)
    if state.drift:
        return f"migration {state.drift[0].summary}; run a bot-bottle whose migrations match this database"
    return None


def cmd_db_path(args: argparse.Namespace) -> int:
    """Print the database path."""
    print(db_path(args, create=True))
    return 0


def cmd_db_status(args: argparse.Namespace) -> int:
    """Print the schema version, pending migrations and drift; a missing database is created at head."""
    path = db_path(args)
    known = migrate.discover()
    if not path.exists() or (path.is_file() and path.stat().st_size == 0):
        open_db(path).close()
    with _existing(path) as conn:
        state = migrate.status(conn, known)
    if args.json:
        print_json({**state.to_dict(), "too_new": state.too_new})
    else:
        # Names in the history come from the file, which every sidecar can write: one clean line each.
        print("\n".join(terminal.clean_line(line) for line in _describe(state)))
    reason = _unusable_reason(state)
    if reason:
        return fail(reason)
    return 0


def _run_result(path: Path, verb: str, before: int, result: migrate.RunResult, as_json: bool) -> None:
    if as_json:
        print_json(
            {
                "path": str(path),
                "from": before,
                "to": result.current,
                "versions": list(result.versions),
                "backup": str(result.backup) if result.backup else None,
            }
        )
        return
    if not result.versions:
        print(f"{path}: already at version {result.current}; nothing to do")
        return
    done = ", ".join(f"{v:04d}" for v in result.versions)
    print(f"{path}: {verb} from version {before} to {result.current} ({done})")
    if result.backup:
        print(f"backup of version {before}: {result.backup}")


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    """Apply pending migrations up to ``--to`` (default: all); creates a database that is not there yet."""
    path = db_path(args, create=True)
    if path.exists() and migrate.is_backup(path):
        _refuse_backup(path)
    known = migrate.discover()
    with closing_checked(connect(path), path) as conn, translate_errors(path):
        before = migrate.current_version(conn)
        result = migrate.upgrade(conn, args.to, migrations=known)
        mark_if_log_empty(conn, path)
    _run_result(path, "upgraded", before, result, args.json)
    return 0


def cmd_db_downgrade(args: argparse.Namespace) -> int:
    """Revert migrations down to ``--to``; audit entries it would drop are written to ``--export`` first."""
    path = db_path(args)
    known = migrate.discover()
    exported: list[int] = []
    exporter = None
    if args.export is not None:
        def exporter(conn: sqlite3.Connection) -> int:
            count = write_export(conn, args.export)
            exported.append(count)
            # The log is written out to be dropped on purpose: its anchor no longer applies to this file. Retired
            # before the drop commits: a power cut between the two must not leave an anchor ahead of an emptied
            # log (a false alarm); a drop that fails after it leaves a log without an anchor, which proves less.
            retire_anchor(path)
            return count
    with _existing(path, writes=True) as conn:
        before = migrate.current_version(conn)
        result = migrate.downgrade(conn, args.to, migrations=known, export=exporter)
    if exported and not args.json:
        written = counted(exported[0], "audit entry", "audit entries")
        print(f"{written} written to {args.export} before they were dropped")
    _run_result(path, "downgraded", before, result, args.json)
    if result.versions and not args.json:  # else the next 'bottles list' undoes it, without a word
        print(UP_AGAIN)
    return 0


# What a downgrade leaves to know: opening a database migrates it (README, "Where the data lives").
UP_AGAIN = ("note: this bot-bottle migrates it up again at the next command that opens it (all but 'db status', "
            "'db check', 'db path' and 'doctor', which only read it): open it with the bot-bottle it is for")


def write_export(conn: sqlite3.Connection, destination: Path, after: int = 0) -> int:
    """Write every audit entry on ``conn`` (past ``after``) to a new file (0600, synced); how many. Never overwrites.

    The entries go to a hidden partial file beside ``destination``, which takes the name only once whole and on
    disk (its folder synced too, as the entries are dropped next): an export stopped part way (Ctrl-C, a full
    disk, a kill) left a file under the name asked for holding the first entries only, which read as the log
    written out. A killed export's partial file is removed by the next export into the folder.
    """
    if destination.exists() or destination.is_symlink():
        raise BotBottleError(f"{destination} already exists: give --export a new file")
    remove_stale(destination.parent, EXPORT_PARTIAL)
    partial = hidden_name(destination, EXPORT_PARTIAL)
    try:
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise BotBottleError(f"cannot write {destination}: {exc.strerror}") from None
    count = 0
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            for line in AuditStore.export_lines(conn, after=after):
                handle.write(line)
                count += 1
            handle.flush()
            os.fsync(handle.fileno())
        publish(partial, destination)
        sync_folder(destination.parent)
    except FileExistsError:
        raise BotBottleError(f"{destination} already exists: give --export a new file; nothing was dropped") \
            from None
    except OSError as exc:
        raise BotBottleError(f"cannot write {destination}: {exc.strerror}; nothing was dropped") from None
    finally:
        partial.unlink(missing_ok=True)
    return count


EXPORT_PARTIAL = "partial"  # an export's hidden name while it is written: .NAME.<pid>.partial


def cmd_db_backup(args: argparse.Namespace) -> int:
    """Write a consistent copy of the database to FILE (default: with its other backups, timestamped)."""
    path = db_path(args)
    with _existing(path) as conn:
        if args.file is None:
            # To the microsecond, as the backups before a migration: two backups a second apart must not clash.
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
            version = migrate.current_version(conn)
            target = backups_dir(path) / f"{path.name}.v{version:04d}.manual-{stamp}.bak"
        else:
            target = args.file
        written = migrate.backup_to(conn, target)
    if args.json:
        print_json({"database": str(path), "backup": str(written), "bytes": written.stat().st_size})
    else:
        print(written)
    return 0


def cmd_db_check(args: argparse.Namespace) -> int:
    """Run the integrity check, the foreign-key check and the drift check; exit 1 on any problem."""
    path = db_path(args)
    known = migrate.discover()
    try:
        with _existing(path) as conn:
            checks = health.schema_checks(conn, known)
    except BotBottleError as exc:
        checks = [health.Check("open", health.ERROR, str(exc))]
    ok = all(c.ok for c in checks)
    if args.json:
        print_json({"path": str(path), "ok": ok, "checks": [c.to_dict() for c in checks]})
    else:
        print(f"database: {path}")
        for check in checks:
            # A detail can name what a sidecar put in the file (a table, an index): never raw, one line.
            print(f"{'ok   ' if check.ok else 'ERROR'}  {check.check}: {terminal.clean_line(check.detail)}")
    if not ok:
        return fail(f"{path} failed its checks")
    return 0


def register(subparsers: Any) -> None:
    """Add the ``db`` verb and its subcommands."""
    parser = subparsers.add_parser(
        "db",
        help=summary("db"),
        description="Inspect and maintain the SQLite database that holds the queue and the audit log.",
        epilog=_DB_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    verbs = parser.add_subparsers(dest="db_verb", metavar="VERB", required=True)

    p = verb_parser(verbs, "path", help="print the database path", description="Print the database path.")
    p.set_defaults(handler=cmd_db_path)

    p = verb_parser(verbs, "status",
        help="schema version, pending migrations and drift",
        description="Print the schema version, the pending migrations and any drift "
        "(applied migrations whose files changed). A missing host database is created and migrated; a --db "
        "you name must exist ('db upgrade --db PATH' creates one). "
        "Exits 1 when the database is newer than this code or has drift.",
        json=True,
    )
    p.set_defaults(handler=cmd_db_status)

    p = verb_parser(verbs, "upgrade",
        help="apply pending migrations",
        description="Apply pending migrations, each in its own transaction. An existing database is "
        "integrity-checked and backed up first (the last few backups are kept; the host database's in "
        "~/.bot-bottle/backups, where sidecars cannot reach them; any other beside itself).",
        json=True,
    )
    p.add_argument("--to", type=version_number, metavar="N", help="stop at version N (default: the newest)")
    p.set_defaults(handler=cmd_db_upgrade)

    p = verb_parser(verbs, "downgrade",
        help="revert migrations down to a version",
        description="Revert migrations, newest first, down to version N. The database is backed up "
        "first (as upgrade does): a down migration usually drops tables and their rows. A downgrade that "
        "would drop audit entries is refused unless --export FILE writes them all out first (JSON lines, "
        "as 'audit export', with hashes and seals), in the same transaction that drops them. Opening a "
        "database migrates it: every later command of this bot-bottle but db status, db check, db path and "
        "doctor upgrades it again, so open it with the bot-bottle it is for.",
        json=True,
    )
    p.add_argument("--to", type=version_number, metavar="N", required=True, help="the version to end at (0 = empty)")
    p.add_argument("--export", type=Path, metavar="FILE",
                   help="write the audit entries to this new file before a downgrade drops them")
    p.set_defaults(handler=cmd_db_downgrade)

    p = verb_parser(verbs, "backup", json=True,
        help="write a consistent copy of the database",
        description="Write a consistent copy of the database (SQLite's online backup), safe while "
        "sidecars use it. An existing FILE is never overwritten.",
    )
    p.add_argument("file", nargs="?", type=Path, metavar="FILE",
                   help="where to write the copy (default: with the database's other backups, named with "
                   "version and time)")
    p.set_defaults(handler=cmd_db_backup)

    p = verb_parser(verbs, "check",
        help="integrity, foreign-key and drift checks",
        description="Run PRAGMA integrity_check and foreign_key_check, look for drift, and compare the live "
        "schema (tables, indexes, triggers) with what the applied migrations build. Exits 1 on any problem.",
        json=True,
    )
    p.set_defaults(handler=cmd_db_check)
