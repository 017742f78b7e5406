"""The migration runner: the schema's history, applied and reverted one version at a time.

Migrations are SQL files ``NNNN_name.up.sql`` / ``NNNN_name.down.sql`` in the
top-level ``migrations/`` folder, numbered from 0001 without gaps
(docs/decisions.md). ``PRAGMA user_version`` is the number of the last applied
migration; the ``schema_history`` table (created by migration 0001) records
each applied migration's name and the sha256 of its statements (comments and
layout aside, ``normalized``) for its up file and, from migration 0004 on, its
down file, so an applied migration whose SQL was edited later is reported as
drift instead of skipped, while a corrected comment is not.

Each migration runs in its own ``BEGIN IMMEDIATE`` transaction that re-reads
``user_version`` once it holds the lock, so processes that migrate at once
apply each migration exactly once, and a crash leaves the database at the
last whole version. Foreign keys are switched off around the transaction (a
migration may rebuild a table) and ``PRAGMA foreign_key_check`` runs before
COMMIT: a violation rolls the migration back.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot_bottle.connection import (
    FILE_MODE,
    foreign_key_problems,
    integrity_problems,
    read_snapshot,
    transaction,
    translate_errors,
)
from bot_bottle.errors import (
    CorruptDatabase,
    MigrationDrift,
    MigrationError,
    MigrationFilesError,
    SchemaTooNew,
)

HISTORY_TABLE = "schema_history"
BACKUPS_KEPT = 3
# Tables whose rows no down migration may drop unless they are written out
# first, in the same transaction (docs/decisions.md: the audit log outlives
# the schema). The value names the rows for messages.
PROTECTED_TABLES = {"audit_log": "audit entries"}
_FILE_RE = re.compile(r"(?P<version>\d{4})_(?P<name>[a-z0-9][a-z0-9_]*)\.(?P<direction>up|down)\.sql")
# Statements a migration may not contain: the runner owns the transaction
# (a COMMIT inside a file would end it early and break atomicity) and the
# version number.
_FORBIDDEN_FIRST_WORDS = frozenset(
    {"BEGIN", "COMMIT", "END", "ROLLBACK", "SAVEPOINT", "RELEASE", "VACUUM", "ATTACH", "DETACH"}
)
_LEADING_COMMENTS_RE = re.compile(r"(?:\s+|--[^\n]*(?:\n|$)|/\*.*?\*/)*", re.DOTALL)
_RUNNER_PRAGMA_RE = re.compile(r"PRAGMA\s+(?:main\.)?(user_version|journal_mode|foreign_keys)\b", re.I)


@dataclass(frozen=True)
class Migration:
    """One numbered migration: its up and down SQL, split into statements."""

    version: int
    name: str
    up_statements: tuple[str, ...]
    down_statements: tuple[str, ...]
    up_sha256: str
    down_sha256: str = ""

    @property
    def label(self) -> str:
        """``NNNN_name``, as the files are named."""
        return f"{self.version:04d}_{self.name}"


@dataclass(frozen=True)
class Drift:
    """An applied migration whose record no longer matches the code's file."""

    version: int
    name: str
    problem: str
    applied_sha256: str | None
    file_sha256: str | None

    @property
    def summary(self) -> str:
        """``NNNN_name: problem``, as messages and listings show it."""
        return f"{self.version:04d}_{self.name}: {self.problem}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "version": self.version,
            "name": self.name,
            "problem": self.problem,
            "applied_sha256": self.applied_sha256,
            "file_sha256": self.file_sha256,
        }


@dataclass(frozen=True)
class Status:
    """Where a database stands against the code's migrations."""

    path: str
    current: int
    head: int
    pending: tuple[Migration, ...]
    drift: tuple[Drift, ...]
    applied: tuple[tuple[int, str, str], ...]  # (version, name, applied_at)
    # Versions whose history row holds a whole-file checksum from before
    # statement checksums: not drift; the next upgrade rewrites them.
    legacy_checksums: tuple[int, ...] = ()

    @property
    def too_new(self) -> bool:
        """True when the database was migrated past what this code knows."""
        return self.current > self.head

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: path, current, head, pending, drift, applied."""
        return {
            "path": self.path,
            "current": self.current,
            "head": self.head,
            "pending": [{"version": m.version, "name": m.name} for m in self.pending],
            "drift": [d.to_dict() for d in self.drift],
            "applied": [
                {"version": v, "name": n, "applied_at": at} for v, n, at in self.applied
            ],
        }


@dataclass(frozen=True)
class RunResult:
    """What an ``upgrade`` or ``downgrade`` call did."""

    versions: tuple[int, ...]  # applied (upgrade) or reverted (downgrade) by this call
    backup: Path | None
    current: int


def migrations_dir() -> Path:
    """The folder that holds the migration files, wherever the package runs from.

    An installed wheel carries them inside the package (``bot_bottle/migrations``);
    a source checkout and the sidecar image keep them in the top-level
    ``migrations/`` beside ``bot_bottle/``.
    """
    package = Path(__file__).resolve().parent
    installed = package / "migrations"
    if installed.is_dir():
        return installed
    return package.parent / "migrations"


def split_statements(sql: str, where: str = "SQL") -> list[str]:
    """Split ``sql`` into single statements, respecting quotes, comments and trigger bodies.

    ``executescript`` would do this for us, but it COMMITs first on every
    Python version, so the runner executes one statement at a time inside its
    own transaction. Statements that are only comments are dropped.
    """
    statements: list[str] = []
    start = 0
    index = 0
    has_code = False
    length = len(sql)
    while index < length:
        char = sql[index]
        if sql.startswith("--", index):
            newline = sql.find("\n", index)
            index = length if newline < 0 else newline + 1
            continue
        if sql.startswith("/*", index):
            close = sql.find("*/", index + 2)
            if close < 0:
                raise MigrationFilesError(f"{where}: a /* comment is never closed")
            index = close + 2
            continue
        if char in "'\"`[":
            closer = "]" if char == "[" else char
            index = _skip_quoted(sql, index, closer, where)
            has_code = True
            continue
        if char == ";":
            chunk = sql[start : index + 1]
            # A ';' inside a trigger body does not end the CREATE TRIGGER.
            if sqlite3.complete_statement(chunk):
                if has_code:
                    statements.append(chunk.strip())
                start = index + 1
                has_code = False
        elif not char.isspace():
            has_code = True
        index += 1
    if has_code:
        raise MigrationFilesError(f"{where}: the last statement is not complete (a missing ';'?)")
    return statements


def normalized(statement: str) -> str:
    """``statement`` without comments and with each run of whitespace outside quotes made one space.

    What the checksums cover: a migration's meaning, not its comments, so a
    comment can be corrected without the file counting as edited (drift).
    """
    out: list[str] = []

    def space() -> None:
        if out and out[-1] != " ":
            out.append(" ")

    index, length = 0, len(statement)
    while index < length:
        char = statement[index]
        if statement.startswith("--", index):
            newline = statement.find("\n", index)
            index = length if newline < 0 else newline + 1
            space()
        elif statement.startswith("/*", index):
            close = statement.find("*/", index + 2)
            index = length if close < 0 else close + 2
            space()
        elif char in "'\"`[":
            end = _skip_quoted(statement, index, "]" if char == "[" else char, "statement")
            out.append(statement[index:end])
            index = end
        elif char.isspace():
            space()
            index += 1
        else:
            out.append(char)
            index += 1
    return "".join(out).strip()


def statements_sha256(statements: tuple[str, ...]) -> str:
    """The checksum the history records for a migration file: over its normalized statements."""
    return hashlib.sha256("\n".join(normalized(s) for s in statements).encode("utf-8")).hexdigest()


# Before checksums covered statements only, the runner recorded the sha256 of
# the whole up file. These are those files' checksums, as released; a history
# row holding one is not drift, and the next upgrade rewrites it.
LEGACY_FILE_SHA256 = {
    1: "d9f07693de9692e475d7327bd5b3a65c3e051363672528dd216058271bdc6ca8",
    2: "92f27080d2b0d55968f7914243c07a515babc74d9387d308f334fd179e82676f",
    3: "b35c19a96dde083038a2fdb8d7fb3d831cbf0831c8a11ee16ce56052846efe01",
}


def _skip_quoted(sql: str, index: int, closer: str, where: str) -> int:
    position = index + 1
    while True:
        found = sql.find(closer, position)
        if found < 0:
            raise MigrationFilesError(f"{where}: a quoted string or name is never closed")
        if closer != "]" and sql.startswith(closer * 2, found):
            position = found + 2  # a doubled quote stands for itself
            continue
        return found + 1


def _without_leading_comments(statement: str) -> str:
    skipped = _LEADING_COMMENTS_RE.match(statement)
    return statement[skipped.end() :] if skipped else statement


def _is_forbidden(statement: str) -> str | None:
    """The reason ``statement`` may not appear in a migration, or None."""
    code = _without_leading_comments(statement)
    match = re.match(r"[A-Za-z_]+", code)
    word = match.group(0).upper() if match else ""
    if word in _FORBIDDEN_FIRST_WORDS:
        return word
    pragma = _RUNNER_PRAGMA_RE.match(code)
    return f"PRAGMA {pragma.group(1).lower()}" if pragma else None


def _load_statements(path: Path) -> tuple[tuple[str, ...], bytes]:
    try:
        raw = path.read_bytes()
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise MigrationFilesError(f"{path} is not UTF-8 text") from None
    except OSError as exc:
        raise MigrationFilesError(f"cannot read {path}: {exc.strerror}") from None
    statements = split_statements(text, where=str(path))
    if not statements:
        raise MigrationFilesError(f"{path} holds no SQL statement: every migration file must do something")
    for number, statement in enumerate(statements, 1):
        forbidden = _is_forbidden(statement)
        if forbidden:
            raise MigrationFilesError(
                f"{path}, statement {number}: {forbidden} is not allowed in a migration; "
                "the runner owns the transaction, the foreign-key switch and user_version"
            )
    return tuple(statements), raw


def discover(directory: Path | None = None) -> tuple[Migration, ...]:
    """Read and validate every migration in ``directory`` (default: ``migrations_dir()``).

    Raises ``MigrationFilesError`` for a missing folder, a badly named ``.sql``
    file, a duplicate number, a gap, an up without its down (or the reverse),
    an empty file, or a statement the runner does not allow.
    """
    folder = directory if directory is not None else migrations_dir()
    if not folder.is_dir():
        raise MigrationFilesError(
            f"no migrations folder at {folder}: the bot-bottle installation is incomplete; reinstall it"
        )
    found: dict[int, dict[str, Path]] = {}
    names: dict[int, str] = {}
    for entry in sorted(folder.iterdir()):
        if not entry.name.endswith(".sql"):
            continue
        match = _FILE_RE.fullmatch(entry.name)
        if not match:
            raise MigrationFilesError(
                f"{entry}: migration files are named NNNN_name.up.sql and NNNN_name.down.sql "
                "(four digits, lower-case name)"
            )
        version = int(match["version"])
        if version == 0:
            raise MigrationFilesError(f"{entry}: migrations are numbered from 0001")
        direction = match["direction"]
        if names.setdefault(version, match["name"]) != match["name"]:
            raise MigrationFilesError(
                f"{folder}: migration {version:04d} has two names, "
                f"{names[version]!r} and {match['name']!r}; each number has exactly one pair"
            )
        if direction in found.setdefault(version, {}):
            raise MigrationFilesError(f"{folder}: two {direction} files for migration {version:04d}")
        found[version][direction] = entry
    migrations: list[Migration] = []
    for expected, version in enumerate(sorted(found), 1):
        if version != expected:
            raise MigrationFilesError(
                f"{folder}: migration {expected:04d} is missing (the numbers jump to {version:04d}); "
                "migrations are numbered without gaps"
            )
        files = found[version]
        for direction in ("up", "down"):
            if direction not in files:
                other = files["down" if direction == "up" else "up"]
                raise MigrationFilesError(
                    f"{other.name} has no {direction} file "
                    f"({version:04d}_{names[version]}.{direction}.sql): every up needs its down"
                )
        up_statements, _ = _load_statements(files["up"])
        down_statements, _ = _load_statements(files["down"])
        migrations.append(
            Migration(
                version=version,
                name=names[version],
                up_statements=up_statements,
                down_statements=down_statements,
                up_sha256=statements_sha256(up_statements),
                down_sha256=statements_sha256(down_statements),
            )
        )
    return tuple(migrations)


def database_path(conn: sqlite3.Connection) -> str:
    """The file behind the connection's main database ('' for an in-memory one)."""
    for _, name, filename in conn.execute("PRAGMA database_list"):
        if name == "main":
            return str(filename)
    return ""


def _translated(conn: sqlite3.Connection) -> contextlib.AbstractContextManager[None]:
    """SQLite errors on ``conn`` as the package's errors, naming its file."""
    return translate_errors(database_path(conn) or ":memory:")


def current_version(conn: sqlite3.Connection) -> int:
    """The database's ``PRAGMA user_version``: the last applied migration."""
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def _has_down_checksums(conn: sqlite3.Connection) -> bool:
    """True once the history table has its ``down_sha256`` column (migration 0004)."""
    return any(row[1] == "down_sha256" for row in conn.execute(f"PRAGMA table_info({HISTORY_TABLE})"))


def _history(conn: sqlite3.Connection) -> dict[int, tuple[str, str, str, str | None]]:
    """{version: (name, up sha256, applied_at, down sha256 or None)} as recorded."""
    exists = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = :name", {"name": HISTORY_TABLE}
    ).fetchone()
    if not exists:
        return {}
    down = "down_sha256" if _has_down_checksums(conn) else "NULL"
    rows = conn.execute(f"SELECT version, name, sha256, applied_at, {down} FROM {HISTORY_TABLE} ORDER BY version")
    return {int(v): (str(n), str(s), str(a), None if d is None else str(d)) for v, n, s, a, d in rows}


def status(conn: sqlite3.Connection, migrations: tuple[Migration, ...] | None = None) -> Status:
    """Where the database behind ``conn`` stands: versions, pending migrations, drift.

    Reads only; never writes.
    """
    known = migrations if migrations is not None else discover()
    # One snapshot: a migration committed by another process between reading
    # user_version and the history would otherwise look like drift.
    with _translated(conn), read_snapshot(conn):
        current = current_version(conn)
        history = _history(conn)
    drift: list[Drift] = []
    legacy: list[int] = []
    for migration in known[: min(current, len(known))]:
        record = history.get(migration.version)
        if record is None:
            problem = f"applied (user_version is {current}) but missing from {HISTORY_TABLE}"
            drift.append(Drift(migration.version, migration.name, problem, None, migration.up_sha256))
        elif record[1] == LEGACY_FILE_SHA256.get(migration.version) and record[0] == migration.name:
            legacy.append(migration.version)
        elif record[1] != migration.up_sha256:
            drift.append(
                Drift(migration.version, migration.name, "its up file was edited after it was applied",
                      record[1], migration.up_sha256)
            )
        elif record[0] != migration.name:
            drift.append(
                Drift(migration.version, migration.name, f"it was applied under the name {record[0]!r}",
                      record[1], migration.up_sha256)
            )
        elif record[3] is not None and record[3] != migration.down_sha256:
            drift.append(
                Drift(migration.version, migration.name, "its down file was edited after it was applied",
                      record[3], migration.down_sha256)
            )
    for version, (name, sha, _, _) in history.items():
        if version > current:
            drift.append(Drift(version, name, f"recorded in {HISTORY_TABLE} beyond user_version {current}", sha, None))
    return Status(
        path=database_path(conn),
        current=current,
        head=len(known),
        pending=known[current:],
        drift=tuple(drift),
        applied=tuple((v, n, at) for v, (n, _, at, _) in sorted(history.items())),
        legacy_checksums=tuple(legacy),
    )


def live_schema_drift(conn: sqlite3.Connection, migrations: tuple[Migration, ...] | None = None) -> list[str]:
    """How the live schema differs from what the applied migrations build (empty: it does not).

    The expected schema is built in memory from the migration files up to the
    database's version; tables, indexes, triggers and views are compared by
    name and SQL, so a dropped trigger, an added index or an edited trigger
    shows here even where the migration files themselves are unchanged.
    Reads only.
    """
    known = migrations if migrations is not None else discover()
    with _translated(conn), read_snapshot(conn):
        version = current_version(conn)
        live = _schema_objects(conn)
    if version > len(known):
        return []  # a newer schema than the code knows: status() reports that
    expected_conn = sqlite3.connect(":memory:", isolation_level=None)
    try:
        for migration in known[:version]:
            _step(expected_conn, migration, up=True, known=known)
        expected = _schema_objects(expected_conn)
    finally:
        expected_conn.close()
    problems = []
    for key in sorted(expected.keys() - live.keys()):
        problems.append(f"{key[0]} {key[1]} is missing")
    for key in sorted(live.keys() - expected.keys()):
        problems.append(f"{key[0]} {key[1]} is not made by any migration")
    for key in sorted(expected.keys() & live.keys()):
        if expected[key] != live[key]:
            problems.append(f"{key[0]} {key[1]} differs from what its migration made")
    return problems


def _schema_objects(conn: sqlite3.Connection) -> dict[tuple[str, str], str]:
    rows = conn.execute(
        "SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' AND sql IS NOT NULL"
    )
    return {(str(kind), str(name)): " ".join(str(sql).split()) for kind, name, sql in rows}


def _rewrite_legacy_checksums(
    conn: sqlite3.Connection, known: tuple[Migration, ...], versions: tuple[int, ...]
) -> None:
    """Replace whole-file checksums from before statement checksums with the statement checksums."""
    with transaction(conn):
        for version in versions:
            conn.execute(
                f"UPDATE {HISTORY_TABLE} SET sha256 = :new WHERE version = :version AND sha256 = :old",
                {"new": known[version - 1].up_sha256, "version": version, "old": LEGACY_FILE_SHA256[version]},
            )


def _refuse_unusable(state: Status) -> None:
    if state.too_new:
        raise SchemaTooNew(
            f"database {state.path} is at schema version {state.current} but this bot-bottle "
            f"knows only up to {state.head}: upgrade the sidecar image or run a newer bot-bottle; "
            "nothing was changed"
        )
    if state.drift:
        first = state.drift[0]
        more = f" (and {len(state.drift) - 1} more)" if len(state.drift) > 1 else ""
        raise MigrationDrift(
            f"database {state.path}: migration {first.summary}{more}; "
            "nothing was changed. Run a bot-bottle whose migrations match this database "
            "('bot-bottle db status' lists the drift)"
        )


def _utc_stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")


def backup_to(conn: sqlite3.Connection, destination: Path) -> Path:
    """Copy the database behind ``conn`` to ``destination`` (0600) with ``Connection.backup``.

    The copy is a consistent snapshot, written under a hidden partial name
    and moved into place only when whole. An existing ``destination`` is never
    overwritten: ``MigrationError`` is raised instead. Partial files left by a
    backup that was killed are removed first.
    """
    destination = destination.resolve()
    if destination.exists():
        raise MigrationError(f"{destination} already exists; choose another name for the backup")
    if not destination.parent.is_dir():
        raise MigrationError(f"cannot write the backup: {destination.parent} is not a directory")
    if database_path(conn) and Path(database_path(conn)).resolve() == destination:
        raise MigrationError("the backup file cannot be the database itself")
    remove_stale_partials(destination.parent)
    partial = destination.with_name(f".{destination.name}.{os.getpid()}.partial")
    try:
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except OSError as exc:
        raise MigrationError(f"cannot write the backup {destination}: {exc.strerror}") from None
    os.close(fd)
    try:
        copy = sqlite3.connect(partial)
        try:
            conn.backup(copy)
        except sqlite3.OperationalError as exc:
            # The error comes from the copy's side: name the backup's disk, not the database's.
            raise MigrationError(f"cannot write the backup {destination}: {exc} (on the disk holding "
                                 f"{destination.parent}); the database was not changed") from None
        finally:
            copy.close()
        _publish(partial, destination)
    except FileExistsError:
        raise MigrationError(f"{destination} already exists; choose another name for the backup") from None
    finally:
        partial.unlink(missing_ok=True)
    return destination


def _publish(partial: Path, destination: Path) -> None:
    """Give the finished copy its name, never replacing a file that took the name meanwhile."""
    try:
        # link() fails if the name was taken meanwhile, where rename() would overwrite it.
        os.link(partial, destination)
        return
    except FileExistsError:
        raise
    except OSError:
        pass  # a filesystem without hard links (some FUSE and network mounts): reserve the name, then rename
    try:
        fd = os.open(destination, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        raise
    except OSError as exc:
        raise MigrationError(f"cannot write the backup {destination}: {exc.strerror}") from None
    os.close(fd)
    try:
        os.replace(partial, destination)  # over our own empty placeholder
    except OSError as exc:
        destination.unlink(missing_ok=True)
        raise MigrationError(f"cannot write the backup {destination}: {exc.strerror}") from None


_PARTIAL_RE = re.compile(r"\..+\.(\d+)\.partial")


def remove_stale_partials(folder: Path) -> list[Path]:
    """Remove partial backup files whose writer process is gone (killed mid-backup); the ones removed."""
    removed: list[Path] = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return removed
    for entry in entries:
        match = _PARTIAL_RE.fullmatch(entry.name)
        if match is None or _process_alive(int(match.group(1))):
            continue
        with contextlib.suppress(OSError):
            entry.unlink()
            removed.append(entry)
    return removed


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # someone else's process, or a number we cannot ask about: leave its file alone
    return True


def _backup_name_re(db_name: str) -> re.Pattern[str]:
    return re.compile(re.escape(db_name) + r"\.v(\d{4})\.(\d{8}T\d{12}Z)\.bak")


BACKUP_NAME_RE = re.compile(r".+\.v\d{4}\.\d{8}T\d{12}Z\.bak")


def backup_before_migration(conn: sqlite3.Connection, version: int) -> Path | None:
    """Back up the database beside itself as ``NAME.vNNNN.STAMP.bak``; keep the last few.

    Older backups are removed, except one that holds audit entries the
    database no longer has (after a downgrade): those are never pruned.
    Returns the backup's path, or ``None`` for an in-memory database.
    """
    source = database_path(conn)
    if not source:
        return None
    db_file = Path(source)
    path = backup_to(conn, db_file.with_name(f"{db_file.name}.v{version:04d}.{_utc_stamp()}.bak"))
    pattern = _backup_name_re(db_file.name)
    ours = sorted(
        (match.group(2), entry)
        for entry in db_file.parent.iterdir()
        if (match := pattern.fullmatch(entry.name))
    )
    for _, old in ours[:-BACKUPS_KEPT]:
        if not _holds_audit_entries_not_in(old, conn):
            old.unlink(missing_ok=True)
    return path


def _holds_audit_entries_not_in(backup: Path, conn: sqlite3.Connection) -> bool:
    """True when ``backup``'s audit log has an entry the live database's log lacks (or cannot be read)."""
    try:
        copy = sqlite3.connect(f"{backup.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error:
        return True
    try:
        head = copy.execute("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
    except sqlite3.Error as exc:
        return "no such table" not in str(exc)  # no audit log at all: nothing to keep it for
    finally:
        copy.close()
    if head is None:
        return False
    try:
        live = conn.execute("SELECT hash FROM audit_log WHERE seq = :seq", {"seq": head[0]}).fetchone()
    except sqlite3.Error:
        return True
    # The log is a chain: the live log holds the backup's whole log if it holds its last entry.
    return live is None or live[0] != head[1]


def _is_empty(conn: sqlite3.Connection) -> bool:
    return int(conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]) == 0


def _check_integrity(conn: sqlite3.Connection, path: str) -> None:
    problems = integrity_problems(conn, quick=True)
    if problems:
        raise CorruptDatabase(
            f"database {path} fails its integrity check ({problems[0]}); it was not migrated. "
            "Run 'bot-bottle db check' and restore the newest backup (*.bak beside it)"
        )


class WouldDropProtected(MigrationError):
    """A down migration would drop rows of a protected table that nobody wrote out."""

    def __init__(self, migration: Migration, table: str, count: int) -> None:
        super().__init__(
            f"reverting {migration.label} would drop {count} {PROTECTED_TABLES[table]} ({table}); "
            "nothing was changed. Write them out first: 'bot-bottle db downgrade --to N --export FILE'"
        )
        self.table = table
        self.count = count


# Called inside the step's transaction, before its statements: writes out the
# protected rows and returns how many it wrote.
Exporter = Callable[[sqlite3.Connection], int]


def _protected_counts(conn: sqlite3.Connection) -> dict[str, int]:
    counts = {}
    for table in PROTECTED_TABLES:
        exists = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = :name", {"name": table}
        ).fetchone()
        counts[table] = int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]) if exists else 0
    return counts


def _record_down_checksums(conn: sqlite3.Connection, known: tuple[Migration, ...], version: int) -> None:
    """Fill in the down file's checksum of every applied migration not yet recorded (0004 added the column)."""
    if not _has_down_checksums(conn):
        return
    for migration in known[:version]:
        conn.execute(
            f"UPDATE {HISTORY_TABLE} SET down_sha256 = :sha WHERE version = :version AND down_sha256 IS NULL",
            {"sha": migration.down_sha256, "version": migration.version},
        )


def _step(
    conn: sqlite3.Connection,
    migration: Migration,
    up: bool,
    known: tuple[Migration, ...] = (),
    export: Exporter | None = None,
    export_first: bool = False,
) -> bool:
    """Apply (``up``) or revert one migration atomically; False if another process already did.

    Reverting refuses (``WouldDropProtected``) to drop rows of a protected
    table unless ``export`` accounts for every one of them: it is called in
    this transaction when the step drops such a table, or when
    ``export_first`` (the first step of a downgrade, before earlier steps
    change what an export can read) and then again, to be checked, where the
    drop happens.
    """
    direction = "up" if up else "down"
    # foreign_keys cannot change inside a transaction, so switch it off first.
    conn.execute("PRAGMA foreign_keys = OFF")
    try:
        with transaction(conn):
            before = current_version(conn)
            if (up and before >= migration.version) or (not up and before < migration.version):
                return False
            wanted = migration.version - 1 if up else migration.version
            if before != wanted:
                raise MigrationError(
                    f"cannot {direction}grade to {migration.label}: the database is at version {before}"
                )
            if not up:
                conn.execute(
                    f"DELETE FROM {HISTORY_TABLE} WHERE version = :version", {"version": migration.version}
                )
            protected_before = {} if up else _protected_counts(conn)
            drops = [table for table in _tables_dropped_by(migration) if protected_before.get(table)]
            exported = export(conn) if export is not None and (drops or export_first) else None
            statements = migration.up_statements if up else migration.down_statements
            for number, statement in enumerate(statements, 1):
                try:
                    conn.execute(statement)
                except sqlite3.Error as exc:
                    raise MigrationError(
                        f"migration {migration.label}.{direction}.sql failed at statement {number} "
                        f"({exc}); it was rolled back and the database is still at version {before}"
                    ) from exc
            if up:
                conn.execute(
                    f"INSERT INTO {HISTORY_TABLE} (version, name, sha256, applied_at) "
                    "VALUES (:version, :name, :sha256, :applied_at)",
                    {
                        "version": migration.version,
                        "name": migration.name,
                        "sha256": migration.up_sha256,
                        "applied_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                    },
                )
                _record_down_checksums(conn, known or (migration,), migration.version)
            else:
                after_counts = _protected_counts(conn)
                for table, count in protected_before.items():
                    lost = count - after_counts[table]
                    if lost > 0 and exported != count:
                        raise WouldDropProtected(migration, table, lost)
            after = migration.version if up else migration.version - 1
            conn.execute(f"PRAGMA user_version = {int(after)}")
            violations = foreign_key_problems(conn)
            if violations:
                raise MigrationError(
                    f"migration {migration.label}.{direction}.sql leaves {len(violations)} foreign-key "
                    f"violation(s) (first: {violations[0]}); it was rolled back and "
                    f"the database is still at version {before}"
                )
        return True
    finally:
        conn.execute("PRAGMA foreign_keys = ON")


def upgrade(
    conn: sqlite3.Connection,
    to: int | None = None,
    *,
    migrations: tuple[Migration, ...] | None = None,
    backup: bool = True,
) -> RunResult:
    """Apply pending migrations up to ``to`` (default: the newest), one transaction each.

    Refuses a database newer than the code and one with drift, before writing
    anything. An existing non-empty database is integrity-checked and backed
    up beside itself first. Safe to call from many processes at once.
    """
    known = migrations if migrations is not None else discover()
    target = len(known) if to is None else to
    if not 0 <= target <= len(known):
        raise MigrationError(f"cannot upgrade to version {target}: the migrations go from 0 to {len(known)}")
    with _translated(conn):
        return _upgrade(conn, target, known, backup)


def _upgrade(conn: sqlite3.Connection, target: int, known: tuple[Migration, ...], backup: bool) -> RunResult:
    state = status(conn, known)
    _refuse_unusable(state)
    if target < state.current:
        raise MigrationError(
            f"the database is at version {state.current}, past {target}: use 'db downgrade --to {target}'"
        )
    if state.legacy_checksums:
        _rewrite_legacy_checksums(conn, known, state.legacy_checksums)
    if target == state.current:
        return RunResult((), None, state.current)
    saved = None
    if backup and not _is_empty(conn):
        _check_integrity(conn, state.path)
        saved = backup_before_migration(conn, state.current)
    applied = tuple(m.version for m in known[state.current : target] if _step(conn, m, up=True, known=known))
    return RunResult(applied, saved, current_version(conn))


def downgrade(
    conn: sqlite3.Connection,
    to: int,
    *,
    migrations: tuple[Migration, ...] | None = None,
    backup: bool = True,
    export: Exporter | None = None,
) -> RunResult:
    """Revert applied migrations down to version ``to``, newest first, one transaction each.

    The database is backed up beside itself first (unless ``backup`` is
    False), because a down migration usually drops data. A step that would
    drop audit entries is refused (``WouldDropProtected``, nothing changed
    by that step) unless ``export`` writes them out in its transaction.
    """
    known = migrations if migrations is not None else discover()
    with _translated(conn):
        return _downgrade(conn, to, known, backup, export)


def _downgrade(
    conn: sqlite3.Connection, to: int, known: tuple[Migration, ...], backup: bool, export: Exporter | None
) -> RunResult:
    state = status(conn, known)
    _refuse_unusable(state)
    if not 0 <= to <= state.current:
        raise MigrationError(
            f"cannot downgrade to version {to}: the database is at version {state.current}"
        )
    if to == state.current:
        return RunResult((), None, state.current)
    # Refuse before the backup and before any step: a refused downgrade changes nothing at all.
    if export is None:
        with read_snapshot(conn):
            counts = _protected_counts(conn)
        for migration in reversed(known[to : state.current]):
            for table in _tables_dropped_by(migration):
                if counts.get(table):
                    raise WouldDropProtected(migration, table, counts[table])
    saved = None
    if backup and not _is_empty(conn):
        _check_integrity(conn, state.path)
        saved = backup_before_migration(conn, state.current)
    steps = list(reversed(known[to : state.current]))
    once = _once(export) if export is not None and any(_tables_dropped_by(m) for m in steps) else None
    reverted = tuple(
        m.version for index, m in enumerate(steps)
        if _step(conn, m, up=False, known=known, export=once, export_first=index == 0)
    )
    return RunResult(reverted, saved, current_version(conn))


def _once(export: Exporter) -> Exporter:
    """``export`` run the first time only; later calls return the first count, for the drop to check."""
    counts: list[int] = []

    def run(conn: sqlite3.Connection) -> int:
        if not counts:
            counts.append(export(conn))
        return counts[0]

    return run


def _tables_dropped_by(migration: Migration) -> list[str]:
    """The protected tables a migration's down file drops by name (the step re-checks by counting rows)."""
    dropped = []
    for statement in migration.down_statements:
        match = re.match(r"DROP\s+TABLE\s+(?:IF\s+EXISTS\s+)?[\"`\[]?(\w+)", _without_leading_comments(statement), re.I)
        if match and match.group(1) in PROTECTED_TABLES:
            dropped.append(match.group(1))
    return dropped
