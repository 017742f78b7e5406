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
import re
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot_bottle.backups import BACKUP_NAME_RE, BACKUPS_KEPT, BackupError, backup_before_migration, backup_to
from bot_bottle.connection import (
    database_path,
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
    SchemaTooNew,
    SchemaTooOld,
)
from bot_bottle.migration_files import (
    LEGACY_FILE_SHA256,
    Migration,
    discover,
    migrations_dir,
    normalized,
    split_statements,
    statements_sha256,
    strip_leading_comments,
)

# The runner's API, including what it uses from its two helpers, so callers
# keep one import: migrate.discover, migrate.backup_to, ...
__all__ = [
    "BACKUPS_KEPT",
    "BACKUP_NAME_RE",
    "HISTORY_TABLE",
    "LEGACY_FILE_SHA256",
    "PROTECTED_TABLES",
    "BackupError",
    "Drift",
    "Exporter",
    "Migration",
    "RunResult",
    "Status",
    "WouldDropProtected",
    "backup_before_migration",
    "backup_to",
    "current_version",
    "database_path",
    "discover",
    "downgrade",
    "live_schema_drift",
    "migrations_dir",
    "normalized",
    "require_current",
    "split_statements",
    "statements_sha256",
    "status",
    "upgrade",
]

HISTORY_TABLE = "schema_history"
# Tables whose rows no down migration may drop unless they are written out
# first, in the same transaction (docs/decisions.md: the audit log outlives
# the schema). The value names the rows for messages.
PROTECTED_TABLES = {"audit_log": "audit entries"}



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


def require_current(conn: sqlite3.Connection, migrations: tuple[Migration, ...] | None = None) -> None:
    """Refuse, without writing, a database that is not exactly at the code's newest version, or has drift.

    For the sidecar: it uses the host's database as the host left it, and
    never migrates it (that is the host's job, when it opens the database).
    """
    known = migrations if migrations is not None else discover()
    with _translated(conn):
        state = status(conn, known)
        _refuse_unusable(state)
        if state.pending:
            raise SchemaTooOld(
                f"database {state.path} is at schema version {state.current} but this sidecar needs "
                f"{state.head}: update the host's bot-bottle and open the database there (any bot-bottle "
                "command migrates it); the sidecar never migrates the host's database"
            )


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
        recorded = max((version for version, _, _ in state.applied), default=0)
        if recorded < state.current:
            # A newer bot-bottle records each migration it applies; a version with no record behind it was
            # set by something else (every sidecar can write the file).
            raise SchemaTooNew(
                f"database {state.path} says schema version {state.current}, but its migration history ends at "
                f"{recorded}: no bot-bottle migrated it there, so the version was changed behind bot-bottle's "
                "back (a sidecar can write the file); nothing was changed. Check it with 'bot-bottle db check' "
                f"on a copy, and restore a backup or set 'PRAGMA user_version = {recorded}' with sqlite3"
            )
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


def _is_empty(conn: sqlite3.Connection) -> bool:
    return int(conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]) == 0


def _checked_backup(conn: sqlite3.Connection, state: Status) -> Path | None:
    """Before a migration changes a database that holds anything: check its integrity, then back it up."""
    if _is_empty(conn):
        return None
    _check_integrity(conn, state.path)
    return backup_before_migration(conn, state.current)


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
    saved = _checked_backup(conn, state) if backup else None
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
    saved = _checked_backup(conn, state) if backup else None
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
        match = re.match(r"DROP\s+TABLE\s+(?:IF\s+EXISTS\s+)?[\"`\[]?(\w+)", strip_leading_comments(statement), re.I)
        if match and match.group(1) in PROTECTED_TABLES:
            dropped.append(match.group(1))
    return dropped
