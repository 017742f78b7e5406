"""``bot-bottle doctor``: is the database, and the filesystem under it, safe to use?

Reads only: the database is opened read-only (never created, migrated or
switched to another journal mode), so doctor can look at a file that
something else is about to refuse. Each line is ok, warning or error; any
error exits 1. WAL where the filesystem or the lock probe says the processes
that open the file may not share one kernel's memory is an error.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import stat
import sys
from contextlib import closing
from pathlib import Path
from typing import Any

from bot_bottle.audit.anchor import any_anchor, read_anchor
from bot_bottle.audit.seal import key_id, key_missing, key_path, key_replaced, load_key
from bot_bottle.backends import BACKENDS
from bot_bottle.cli.common import db_path, fail, print_json, verb_parser
from bot_bottle.cli.registry import summary
from bot_bottle.connection import DIR_MODE, FILE_MODE, MIN_SQLITE_VERSION
from bot_bottle.errors import BotBottleError
from bot_bottle.filesystems import JOURNAL_ROLLBACK, JOURNAL_WAL, LOCAL, journal_mode_for
from bot_bottle.relay.lock import running_relay
from bot_bottle.schema import health
from bot_bottle.schema.health import ERROR, OK, WARNING
from bot_bottle.sidecar.mount_check import MountReport, check_mount
from bot_bottle.text import terminal


def _version(parts: tuple[int, ...]) -> str:
    return ".".join(map(str, parts))


def _mode_check(name: str, path: Path, wanted: int) -> dict[str, str]:
    info = path.stat()
    mode = stat.S_IMODE(info.st_mode)
    problems = []
    if mode & ~wanted:
        problems.append(f"mode {mode:o}, wanted {wanted:o}: other users can read it")
    if info.st_uid != os.getuid():
        problems.append(f"owned by uid {info.st_uid}, not you ({os.getuid()})")
    detail = f"{path} ({mode:o}, uid {info.st_uid})"
    return {"check": name, "level": WARNING if problems else OK, "detail": "; ".join(problems) or detail}


def journal_check(journal: str, directory: Path, report: MountReport | None) -> dict[str, str]:
    """The journal mode against what the filesystem under ``directory`` and the lock probe allow."""
    want, why = journal_mode_for(directory)
    if journal == JOURNAL_WAL:
        if report is not None and not report.probe.works:
            return {"check": "journal_mode", "level": ERROR, "detail": f"wal, where the lock probe failed "
                    f"({report.probe.detail}): WAL's index lives in memory every opener must share, under locks "
                    "that must hold; keep the database on a local filesystem"}
        if want != JOURNAL_WAL:
            return {"check": "journal_mode", "level": ERROR, "detail": f"wal, where it is unsafe ({why}): "
                    "processes on both sides would each keep their own index and corrupt the file; stop every "
                    "process using it, and the next host-side open switches it to the rollback journal"}
        return {"check": "journal_mode", "level": OK, "detail": f"wal ({why})"}
    if journal == want:
        return {"check": "journal_mode", "level": OK, "detail": f"{journal}, the rollback journal ({why})"}
    if want == JOURNAL_WAL:
        return {"check": "journal_mode", "level": WARNING, "detail": f"{journal}: a long read holds up every "
                "writer; the next host-side open switches it to WAL" + (
                    "" if journal == JOURNAL_ROLLBACK else " (a journal mode bot-bottle never sets)")}
    return {"check": "journal_mode", "level": WARNING, "detail": f"{journal}: the next host-side open switches "
            f"it to the rollback journal ({why})"}


def _database_checks(path: Path, report: MountReport | None) -> list[dict[str, str]]:
    if path.is_symlink():
        # Never read through it: what it points to is not what any other command opens (connection.connect).
        return [{"check": "file", "level": ERROR, "detail": f"{path} is a symbolic link, which bot-bottle never "
                 "opens (its directory is one sidecars can write): put the database file back at that path"}]
    checks = [_mode_check("directory", path.parent, DIR_MODE), _mode_check("file", path, FILE_MODE)]
    uri = f"{path.resolve().as_uri()}?mode=ro"
    try:
        with closing(sqlite3.connect(uri, uri=True, isolation_level=None)) as conn:
            journal = str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower()
            checks.append(journal_check(journal, path.parent, report))
            checks += [check.to_dict() for check in health.schema_checks(conn)]
    except (sqlite3.Error, OSError) as exc:
        checks.append({"check": "open", "level": ERROR, "detail": f"cannot read {path} as a database: {exc}"})
    except Exception as exc:  # a bot-bottle error (migration files...) is a finding too
        checks.append({"check": "open", "level": ERROR, "detail": str(exc)})
    return checks


def key_checks(database: Path) -> list[dict[str, str]]:
    """The host's audit key: there (or not needed yet), readable only by you, and the one that sealed this log."""
    path = key_path()
    try:
        key = load_key()
    except BotBottleError as exc:
        return [{"check": "audit key", "level": ERROR, "detail": str(exc)}]
    if key is None:
        if any_anchor():
            return [{"check": "audit key", "level": ERROR, "detail": key_missing(path)}]
        return [{"check": "audit key", "level": OK, "detail": f"{path} is not there yet (the first decision "
                 "creates it)"}]
    info = path.stat()
    mode = stat.S_IMODE(info.st_mode)
    problems = []
    if mode & 0o077:
        problems.append(f"{path} has mode {mode:o}, wanted 600: other users can read it, and whoever reads it can "
                        f"forge seals ('chmod 600 {path}', and start a new key if it may have been read)")
    if info.st_uid != os.getuid():
        problems.append(f"{path} is owned by uid {info.st_uid}, not you ({os.getuid()}): that user can replace it "
                        f"('chown {os.getuid()} {path}')")
    folder = path.parent.stat()
    if stat.S_IMODE(folder.st_mode) & 0o022 or folder.st_uid != os.getuid():
        problems.append(f"{path.parent} is writable by others or not yours: whoever can write it can replace the "
                        f"key ('chmod 700 {path.parent}')")
    checks = [{"check": "audit key", "level": WARNING if problems else OK,
               "detail": "; ".join(problems) or f"{path} (600, yours; key {key_id(key)})"}]
    try:
        anchor = read_anchor(database) if database.is_file() else None
    except BotBottleError as exc:
        return [*checks, {"check": "audit anchor", "level": ERROR, "detail": str(exc)}]
    if anchor is not None and anchor.key is not None and anchor.key != key_id(key):
        checks.append({"check": "audit key", "level": ERROR, "detail": key_replaced(path, anchor.key, key_id(key))})
    return checks


def _database_line(path: Path, named: bool) -> dict[str, str]:
    if path.is_file():
        return {"check": "database", "level": OK, "detail": str(path)}
    if path.is_dir():
        return {"check": "database", "level": ERROR, "detail": f"{path} is a directory, not a database file"}
    if path.exists():
        return {"check": "database", "level": ERROR, "detail": f"{path} is not a regular file"}
    if named:
        return {"check": "database", "level": ERROR, "detail": f"no database at {path} (--db names a file that "
                f"does not exist; 'bot-bottle db upgrade --db {path}' creates one)"}
    return {"check": "database", "level": WARNING, "detail": f"{path} does not exist yet (it is created on first "
            "use); the checks below look at the place it will live"}


def nearest_existing_directory(path: Path) -> Path | None:
    """The directory that holds ``path``, or its nearest ancestor that exists (where it would be created)."""
    for candidate in path.absolute().parents:
        if candidate.is_dir():
            return candidate
    return None


def diagnose(path: Path, *, named: bool = False) -> list[dict[str, str]]:
    """Every check, in order, as dicts of check, level and detail.

    ``named``: the user gave this path (``--db``), so a missing file is an
    error rather than a database still to be created. The filesystem and
    lock checks run where the file is or will be, leaving nothing behind.
    """
    checks = [
        {"check": "python", "level": OK if sys.version_info >= (3, 11) else ERROR,
         "detail": sys.version.split()[0]},
        {"check": "sqlite", "level": OK if sqlite3.sqlite_version_info >= MIN_SQLITE_VERSION else ERROR,
         "detail": f"{sqlite3.sqlite_version} (needs {_version(MIN_SQLITE_VERSION)} or newer)"},
        _database_line(path, named),
    ]
    directory = nearest_existing_directory(path)
    writable = directory is not None and os.access(directory, os.W_OK | os.X_OK)
    report = check_mount(directory) if directory is not None and writable else None
    if path.is_file():
        checks += _database_checks(path, report)
    checks += key_checks(path)
    if report is not None:
        checks.append({"check": "filesystem", "level": OK if report.kind == LOCAL else WARNING,
                       "detail": f"{report.fstype} at {report.mount_point} ({report.kind})"
                       + ("" if report.kind == LOCAL else f": {report.warning()}")})
        checks.append({"check": "locking", "level": OK if report.probe.works else ERROR,
                       "detail": report.probe.detail + ("" if directory == path.parent else f" (in {directory}, "
                                                        "the nearest directory that exists)")})
    elif directory is not None:
        checks.append({"check": "locking", "level": ERROR,
                       "detail": f"cannot write in {directory}: the database could not be created there"})
    if directory is not None:
        checks.append(space_check(directory, path))
    return checks


# Room a database needs beyond a copy of itself: its WAL between checkpoints, a day's filings, a page cache's spill.
SPARE_BYTES = 64 * 1024 * 1024


def space_check(directory: Path, path: Path) -> dict[str, str]:
    """How much room the disk holding ``directory`` has left for the database ``path`` (there, or to be made).

    A full disk stops every filing, decision and migration (each is rolled back and says so), and a migration
    first writes a backup the size of the database: less room than that and ``SPARE_BYTES`` is a warning."""
    try:
        found = os.statvfs(directory)
    except OSError as exc:
        return {"check": "disk space", "level": WARNING, "detail": f"cannot tell how full {directory}'s disk is "
                f"({exc.strerror})"}
    free = found.f_bavail * found.f_frsize
    size = path.stat().st_size if path.is_file() else 0
    said = f"{_amount(free)} free on the disk holding {directory}"
    if free == 0:
        return {"check": "disk space", "level": ERROR, "detail": f"the disk holding {directory} is full: every "
                "filing, decision and migration fails until some space is freed"}
    if free < size + SPARE_BYTES:
        return {"check": "disk space", "level": WARNING, "detail": f"only {said}: a migration first backs the "
                f"database up ({_amount(size)}), and a full disk stops every filing and decision"}
    return {"check": "disk space", "level": OK, "detail": said}


def _amount(count: int) -> str:
    """``count`` bytes as a person reads them: 512 B, 3.4 MiB, 120 GiB."""
    amount, unit = float(count), "B"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if amount < 1024 or unit == "TiB":
            break
        amount /= 1024
    return f"{count} B" if unit == "B" else f"{amount:.3g} {unit}"


def transport_checks(platform: str = sys.platform) -> list[dict[str, str]]:
    """Which transport each backend's sidecars would use on this host, and why; and whether the relay runs."""
    checks = []
    for name, backend in BACKENDS.items():
        transport, why = backend.transport(platform)
        checks.append({"check": name, "level": OK, "detail": f"transport {transport} ({why})"})
    info = running_relay()
    checks.append({"check": "relay", "level": OK,
                   "detail": f"running, pid {info.pid}, on {info.url}" if info is not None else
                   "not running ('bot-bottle prepare' starts it for a bottle that needs it)"})
    return checks


def cmd_doctor(args: argparse.Namespace) -> int:
    """Print the checks; exit 1 if any is an error."""
    path = db_path(args, create=True, findings=True)  # doctor reports a missing or wrong path as a finding
    checks = diagnose(path, named=args.db is not None) + transport_checks()
    failed = any(c["level"] == ERROR for c in checks)
    if args.json:
        print_json({"path": str(path), "ok": not failed, "checks": checks})
    else:
        for check in checks:
            # A detail can name what a sidecar put in the database file: never raw, one line.
            print(f"{check['level']:<8} {check['check']:<15} {terminal.clean_line(check['detail'])}")
    if failed:
        return fail(f"{path}: doctor found errors (see above)")
    return 0


def register(subparsers: Any) -> None:
    """Add the ``doctor`` verb."""
    parser = verb_parser(subparsers, "doctor",
        help=summary("doctor"),
        description="Check the database read-only: path, modes, owner, journal mode (WAL where every process "
        "that opens the file shares this kernel, the rollback journal elsewhere; WAL on a filesystem that may "
        "cross a VM or network boundary, or where the lock probe fails, is an error), schema version and "
        "drift, integrity; the host's audit key (there, 0600 and yours, and the key that sealed this log); "
        "the filesystem under it (local, or shared across a VM or network boundary), "
        "a lock probe from a second process and the room left on its disk; SQLite and Python versions; which "
        "transport (the database directory on a mount, or the host relay) each backend's sidecars use on this "
        "host, and why; whether the relay runs. Exit 1 on any error.",
        epilog="examples:\n  bot-bottle doctor\n  bot-bottle doctor --db /run/supervise/bot-bottle.db --json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        json=True,
    )
    parser.set_defaults(handler=cmd_doctor)
