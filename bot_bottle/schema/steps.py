"""One migration applied or reverted, atomically, and the audit entries no down migration may lose.

Each step runs in its own ``BEGIN IMMEDIATE`` transaction that re-reads
``user_version`` once it holds the lock, so processes that migrate at once
apply each migration exactly once, and a crash leaves the database at the
last whole version. Foreign keys are switched off around the transaction (a
migration may rebuild a table) and ``PRAGMA foreign_key_check`` runs before
COMMIT: a violation rolls the migration back. A down migration that would
drop a protected table's rows (the audit log outlives the schema) is refused
unless an exporter writes them out in the same transaction.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime

from bot_bottle.connection import rolled_back, transaction
from bot_bottle.errors import (
    MigrationError,
    WouldDropProtected,
)
from bot_bottle.schema.files import (
    Migration,
    strip_leading_comments,
)
from bot_bottle.schema.state import (
    HISTORY_TABLE,
    current_version,
    foreign_key_problems,
    has_down_checksums,
)

# Tables whose rows no down migration may drop unless they are written out
# first, in the same transaction (docs/decisions.md: the audit log outlives
# the schema). The value names the rows for messages.
PROTECTED_TABLES = {"audit_log": "audit entries"}


# What the migrations build, by the migrations' statements and the version: built once a process.
_EXPECTED: dict[tuple[str, ...], dict[tuple[str, str], str]] = {}


def expected_schema(known: tuple[Migration, ...], version: int) -> dict[tuple[str, str], str]:
    """The schema objects the first ``version`` of ``known`` make, as ``(type, name) -> sql`` (the SQL as
    SQLite keeps it), built by applying them to a database in memory; the same dict on each call for the
    same migrations."""
    key = tuple(migration.up_sha256 for migration in known[:version])
    if key not in _EXPECTED:
        expected_conn = sqlite3.connect(":memory:", isolation_level=None)
        try:
            for migration in known[:version]:
                step(expected_conn, migration, up=True, known=known)
            _EXPECTED[key] = {
                (str(kind), str(name)): str(sql) for kind, name, sql in expected_conn.execute(
                    "SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' AND sql IS NOT NULL")
            }
        finally:
            expected_conn.close()
    return _EXPECTED[key]


def would_drop(migration: Migration, table: str, count: int) -> WouldDropProtected:
    return WouldDropProtected(
        f"reverting {migration.label} would drop {count} {PROTECTED_TABLES[table]} ({table}); "
        "nothing was changed. Write them out first: 'bot-bottle db downgrade --to N --export FILE'",
        table, count,
    )


# Called inside the step's transaction, before its statements: writes out the
# protected rows and returns how many it wrote.
Exporter = Callable[[sqlite3.Connection], int]


def protected_counts(conn: sqlite3.Connection) -> dict[str, int]:
    counts = {}
    for table in PROTECTED_TABLES:
        exists = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = :name", {"name": table}
        ).fetchone()
        counts[table] = int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]) if exists else 0
    return counts


def record_down_checksums(conn: sqlite3.Connection, known: tuple[Migration, ...], version: int) -> None:
    """Fill in the down file's checksum of every applied migration not yet recorded (0004 added the column)."""
    if not has_down_checksums(conn):
        return
    for migration in known[:version]:
        conn.execute(
            f"UPDATE {HISTORY_TABLE} SET down_sha256 = :sha WHERE version = :version AND down_sha256 IS NULL",
            {"sha": migration.down_sha256, "version": migration.version},
        )


def step(
    conn: sqlite3.Connection,
    migration: Migration,
    up: bool,
    known: tuple[Migration, ...] = (),
    export: Exporter | None = None,
    export_first: bool = False,
    prepare: Callable[[sqlite3.Connection], None] | None = None,
) -> bool:
    """Apply (``up``) or revert one migration atomically; False if another process already did.

    Reverting refuses (``WouldDropProtected``) to drop rows of a protected
    table unless ``export`` accounts for every one of them: it is called in
    this transaction when the step drops such a table, or when
    ``export_first`` (the first step of a downgrade, before earlier steps
    change what an export can read) and then again, to be checked, where the
    drop happens. ``prepare`` runs first in the transaction, once it holds the lock and the step is still to do
    (``migrate``: the schema guard).
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
            if prepare is not None:
                prepare(conn)
            if not up:
                conn.execute(
                    f"DELETE FROM {HISTORY_TABLE} WHERE version = :version", {"version": migration.version}
                )
            protected_before = {} if up else protected_counts(conn)
            drops = [table for table in tables_dropped_by(migration) if protected_before.get(table)]
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
                record_down_checksums(conn, known or (migration,), migration.version)
            else:
                after_counts = protected_counts(conn)
                for table, count in protected_before.items():
                    lost = count - after_counts[table]
                    if lost > 0 and exported != count:
                        raise would_drop(migration, table, lost)
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


def rows_lost_by(conn: sqlite3.Connection, steps: list[Migration]) -> WouldDropProtected | None:
    """What reverting ``steps`` (newest first) would lose of a protected table, found by doing it and rolling back.

    Measured, not guessed from the SQL: a down migration that rebuilds the
    audit log keeps what the older table can hold, and only what it drops
    needs writing out. None when nothing protected would be lost.
    """
    conn.execute("PRAGMA foreign_keys = OFF")
    try:
        with rolled_back(conn):
            for migration in steps:
                before = protected_counts(conn)
                for number, statement in enumerate(migration.down_statements, 1):
                    try:
                        conn.execute(statement)
                    except sqlite3.Error as exc:
                        raise MigrationError(f"migration {migration.label}.down.sql fails at statement {number} "
                                             f"({exc}); nothing was changed") from exc
                after = protected_counts(conn)
                for table, count in before.items():
                    if count > after[table]:
                        return would_drop(migration, table, count - after[table])
        return None
    finally:
        conn.execute("PRAGMA foreign_keys = ON")


def tables_dropped_by(migration: Migration) -> list[str]:
    """The protected tables a migration's down file drops by name (the step re-checks by counting rows)."""
    dropped = []
    for statement in migration.down_statements:
        match = re.match(r"DROP\s+TABLE\s+(?:IF\s+EXISTS\s+)?[\"`\[]?(\w+)", strip_leading_comments(statement), re.I)
        if match and match.group(1) in PROTECTED_TABLES:
            dropped.append(match.group(1))
    return dropped
