"""Where a database stands against the code's migrations: its version, its history, drift, and whether it is whole.

Reads only. ``status`` is what ``db status`` and every upgrade look at
first; ``require_current`` is the sidecar's check, which refuses a database
not exactly at the code's newest version without writing anything.
``integrity_problems`` and ``foreign_key_problems`` say what SQLite's own
checks find (``db check``, ``doctor`` and every upgrade ask them).
"""

from __future__ import annotations

import contextlib
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot_bottle.connection import (
    database_path,
    read_snapshot,
    translate_errors,
)
from bot_bottle.errors import (
    MigrationDrift,
    SchemaTooNew,
    SchemaTooOld,
)
from bot_bottle.schema.files import (
    LEGACY_FILE_SHA256,
    Migration,
    discover,
)

HISTORY_TABLE = "schema_history"


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


def translated(conn: sqlite3.Connection) -> contextlib.AbstractContextManager[None]:
    """SQLite errors on ``conn`` as the package's errors, naming its file."""
    return translate_errors(database_path(conn) or ":memory:")


def current_version(conn: sqlite3.Connection) -> int:
    """The database's ``PRAGMA user_version``: the last applied migration."""
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def has_down_checksums(conn: sqlite3.Connection) -> bool:
    """True once the history table has its ``down_sha256`` column (migration 0004)."""
    return any(row[1] == "down_sha256" for row in conn.execute(f"PRAGMA table_info({HISTORY_TABLE})"))


def _history(conn: sqlite3.Connection) -> dict[int, tuple[str, str, str, str | None]]:
    """{version: (name, up sha256, applied_at, down sha256 or None)} as recorded."""
    exists = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = :name", {"name": HISTORY_TABLE}
    ).fetchone()
    if not exists:
        return {}
    down = "down_sha256" if has_down_checksums(conn) else "NULL"
    rows = conn.execute(f"SELECT version, name, sha256, applied_at, {down} FROM {HISTORY_TABLE} ORDER BY version")
    return {int(v): (str(n), str(s), str(a), None if d is None else str(d)) for v, n, s, a, d in rows}


def status(conn: sqlite3.Connection, migrations: tuple[Migration, ...] | None = None) -> Status:
    """Where the database behind ``conn`` stands: versions, pending migrations, drift.

    Reads only; never writes.
    """
    known = migrations if migrations is not None else discover()
    # One snapshot: a migration committed by another process between reading
    # user_version and the history would otherwise look like drift.
    with translated(conn), read_snapshot(conn):
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


def require_current(conn: sqlite3.Connection, migrations: tuple[Migration, ...] | None = None) -> None:
    """Refuse, without writing, a database that is not exactly at the code's newest version, or has drift.

    For the sidecar: it uses the host's database as the host left it, and
    never migrates it (that is the host's job, when it opens the database).
    """
    known = migrations if migrations is not None else discover()
    with translated(conn):
        state = status(conn, known)
        refuse_unusable(state)
        if state.pending:
            raise SchemaTooOld(
                f"database {state.path} is at schema version {state.current} but this sidecar needs "
                f"{state.head}: update the host's bot-bottle and open the database there (any bot-bottle "
                "command migrates it); the sidecar never migrates the host's database"
            )


def refuse_unusable(state: Status) -> None:
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
            f"knows only up to {state.head}: run a newer bot-bottle (in a sidecar: a newer sidecar image); "
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


def integrity_problems(conn: sqlite3.Connection, *, quick: bool = False) -> list[str]:
    """What ``PRAGMA integrity_check`` (or the faster ``quick_check``) reports; ``[]`` when whole.

    Damage bad enough to stop the check itself is reported as a problem, not raised.
    """
    pragma = "quick_check" if quick else "integrity_check"
    try:
        result = [str(row[0]) for row in conn.execute(f"PRAGMA {pragma}")]
    except sqlite3.DatabaseError as exc:
        return [str(exc)]
    return [] if result == ["ok"] else result


def foreign_key_problems(conn: sqlite3.Connection) -> list[str]:
    """Each row ``PRAGMA foreign_key_check`` reports, as ``table row N -> parent``; ``[]`` when none."""
    try:
        rows = conn.execute("PRAGMA foreign_key_check").fetchall()
    except sqlite3.DatabaseError as exc:
        return [f"the check stopped: {exc}"]
    return [f"{table} row {rowid} -> {parent}" for table, rowid, parent, _ in rows]
