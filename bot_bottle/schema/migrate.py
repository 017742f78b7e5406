"""The migration runner: the schema's history, applied and reverted one version at a time.

Migrations are SQL files ``NNNN_name.up.sql`` / ``NNNN_name.down.sql`` in the
top-level ``migrations/`` folder, numbered from 0001 without gaps
(docs/decisions.md). ``PRAGMA user_version`` is the number of the last applied
migration; the ``schema_history`` table (created by migration 0001) records
each applied migration's name and the sha256 of its statements (comments and
layout aside, ``normalized``) for its up file and, from migration 0004 on, its
down file, so an applied migration whose SQL was edited later is reported as
drift instead of skipped, while a corrected comment is not.

Each migration runs in its own transaction (``steps``); where a database
stands is ``state``. ``upgrade`` and ``downgrade`` refuse a database newer
than the code or one with drift before writing anything, and back up an
existing one first (``backups``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

from bot_bottle.connection import (
    database_path,
    read_snapshot,
    transaction,
    translate,
)
from bot_bottle.errors import (
    BackupError,
    CorruptDatabase,
    VersionOutOfReach,
    WouldDropProtected,
)
from bot_bottle.schema.backups import BACKUP_NAME_RE, BACKUPS_KEPT, backup_before_migration, backup_to, is_backup
from bot_bottle.schema.files import (
    LEGACY_FILE_SHA256,
    Migration,
    discover,
    layout_aside,
    migrations_dir,
    normalized,
    split_statements,
    statements_sha256,
)
from bot_bottle.schema.guard import SchemaGuard
from bot_bottle.schema.state import (
    HISTORY_TABLE,
    Drift,
    RunResult,
    Status,
    current_version,
    integrity_problems,
    refuse_unusable,
    require_current,
    status,
    translated,
)
from bot_bottle.schema.steps import (
    PROTECTED_TABLES,
    Exporter,
    expected_schema,
    rows_lost_by,
    step,
    tables_dropped_by,
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
    "expected_schema",
    "is_backup",
    "live_schema_drift",
    "migrations_dir",
    "normalized",
    "refuse_unusable",
    "require_current",
    "split_statements",
    "statements_sha256",
    "status",
    "upgrade",
]


def live_schema_drift(conn: sqlite3.Connection, migrations: tuple[Migration, ...] | None = None) -> list[str]:
    """How the live schema differs from what the applied migrations build (empty: it does not).

    The expected schema is built in memory from the migration files up to the
    database's version; tables, indexes, triggers and views are compared by
    name and SQL, so a dropped trigger, an added index or an edited trigger
    shows here even where the migration files themselves are unchanged.
    Reads only.
    """
    known = migrations if migrations is not None else discover()
    with translated(conn), read_snapshot(conn):
        version = current_version(conn)
        live = _schema_objects(conn)
    if version > len(known):
        return []  # a newer schema than the code knows: status() reports that
    expected = {key: layout_aside(sql) for key, sql in expected_schema(known, version).items()}
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
    return {(str(kind), str(name)): layout_aside(str(sql)) for kind, name, sql in rows}


def _rewrite_legacy_checksums(
    conn: sqlite3.Connection, known: tuple[Migration, ...], versions: tuple[int, ...]
) -> None:
    """Replace whole-file checksums from before statement checksums with the statement checksums, the schema
    guard held first (a sidecar can write an old checksum to have this run, and a trigger of its to run in it)."""
    guard = _Held(known)
    with transaction(conn):
        guard.hold(conn)
        for version in versions:
            conn.execute(
                f"UPDATE {HISTORY_TABLE} SET sha256 = :new WHERE version = :version AND sha256 = :old",
                {"new": known[version - 1].up_sha256, "version": version, "old": LEGACY_FILE_SHA256[version]},
            )
    guard.said(True)


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
        raise VersionOutOfReach(f"cannot upgrade to version {target}: the migrations go from 0 to {len(known)}")
    with translated(conn):
        return _upgrade(conn, target, known, backup)


def _upgrade(conn: sqlite3.Connection, target: int, known: tuple[Migration, ...], backup: bool) -> RunResult:
    state = status(conn, known)
    refuse_unusable(state)
    if target < state.current:
        raise VersionOutOfReach(
            f"the database is at version {state.current}, past {target}: use 'db downgrade --to {target}'"
        )
    if state.legacy_checksums:
        _rewrite_legacy_checksums(conn, known, state.legacy_checksums)
    if target == state.current:
        return RunResult((), None, state.current)
    saved = _checked_backup(conn, state) if backup else None
    guard = _Held(known)
    applied = _stepped(conn, known[state.current : target], True, lambda index, m: guard.said(
        step(conn, m, up=True, known=known, prepare=guard.hold)))
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
    with translated(conn):
        return _downgrade(conn, to, known, backup, export)


def _downgrade(
    conn: sqlite3.Connection, to: int, known: tuple[Migration, ...], backup: bool, export: Exporter | None
) -> RunResult:
    state = status(conn, known)
    refuse_unusable(state)
    if not 0 <= to <= state.current:
        raise VersionOutOfReach(
            f"cannot downgrade to version {to}: the database is at version {state.current}"
        )
    if to == state.current:
        return RunResult((), None, state.current)
    # Refuse before the backup and before any step: a refused downgrade changes nothing at all.
    if export is None:
        refusal = rows_lost_by(conn, list(reversed(known[to : state.current])))
        if refusal is not None:
            raise refusal
    saved = _checked_backup(conn, state) if backup else None
    steps = list(reversed(known[to : state.current]))
    once = _once(export) if export is not None and any(tables_dropped_by(m) for m in steps) else None
    guard = _Held(known)
    reverted = _stepped(conn, steps, False, lambda index, m: guard.said(
        step(conn, m, up=False, known=known, export=once, export_first=index == 0, prepare=guard.hold)))
    return RunResult(reverted, saved, current_version(conn))


def _stepped(conn: sqlite3.Connection, steps: list[Migration] | tuple[Migration, ...], up: bool,
             run: Callable[[int, Migration], bool]) -> tuple[int, ...]:
    """The versions of ``steps`` that ``run(index, migration)`` applied (``up``) or reverted, in order.

    Each step commits on its own, so one that fails (a full disk at its COMMIT) leaves the steps before it
    done: its error then says so, and the version the file is at, where alone it would say "nothing was
    committed" of a run that had changed the file.
    """
    done: list[int] = []
    for index, migration in enumerate(steps):
        try:
            if run(index, migration):
                done.append(migration.version)
        except sqlite3.Error as exc:
            if not done:
                raise
            said = translate(exc, database_path(conn) or ":memory:")
            verb, left = ("applied", "the next command that opens it applies the rest") if up else \
                ("reverted", "run the downgrade again for the rest")
            raise type(said)(
                f"{said} (that was migration {migration.label}, which was not {verb}; the {len(done)} this run "
                f"{verb} before it ({', '.join(f'{version:04d}' for version in done)}) stay {verb}: the database "
                f"is at version {current_version(conn)}, and {left})") from exc
    return tuple(done)


class _Held:
    """The schema guard at each step: a migration runs none of a sidecar's triggers and meets none of its indexes.

    A migration runs in its own transaction at open, before any of the host's writes (``db.Database.write``)
    looks at the schema: a sidecar's trigger would run inside it, and an index it made under the name the next
    migration gives its own made that migration fail, and with it every command. ``hold`` runs in the step's
    transaction (``steps.step``'s ``prepare``), against the version the step starts from; what it did is said
    once the step commits.
    """

    def __init__(self, known: tuple[Migration, ...]) -> None:
        self._guard = SchemaGuard(known)
        self._done: list[str] = []

    def hold(self, conn: sqlite3.Connection) -> None:
        self._done = self._guard.hold(conn)

    def said(self, committed: bool) -> bool:
        """Say what the step's ``hold`` did if the step committed (``committed``, returned as it is)."""
        if committed:
            self._guard.committed(self._done)
        self._done = []
        return committed


def _once(export: Exporter) -> Exporter:
    """``export`` run the first time only; later calls return the first count, for the drop to check."""
    counts: list[int] = []

    def run(conn: sqlite3.Connection) -> int:
        if not counts:
            counts.append(export(conn))
        return counts[0]

    return run
