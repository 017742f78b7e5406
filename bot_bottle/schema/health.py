"""The database's health checks, computed once and rendered by both ``db check`` and ``doctor``.

Each check has a level: ``ok``, ``warning`` (worth knowing, nothing is wrong
yet) or ``error`` (something is wrong; the command exits 1). The checks here
read the database only.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

from bot_bottle.schema import migrate
from bot_bottle.schema.state import foreign_key_problems, integrity_problems

OK, WARNING, ERROR = "ok", "warning", "error"


@dataclass(frozen=True)
class Check:
    """One finding: what was checked, how it stands, and the detail a person reads."""

    check: str
    level: str
    detail: str

    @property
    def ok(self) -> bool:
        """True unless the finding is an error."""
        return self.level != ERROR

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``ok`` derived from ``level``)."""
        return {"check": self.check, "level": self.level, "ok": self.ok, "detail": self.detail}


def schema_checks(conn: sqlite3.Connection, migrations: tuple[migrate.Migration, ...] | None = None) -> list[Check]:
    """Integrity, foreign keys, schema version, drift of the migration files, and the live schema."""
    known = migrations if migrations is not None else migrate.discover()
    integrity = integrity_problems(conn)
    violations = foreign_key_problems(conn)
    state = migrate.status(conn, known)
    if state.too_new:
        version = Check("schema_version", ERROR, f"{state.current}, newer than this bot-bottle ({state.head})")
    elif state.pending:
        version = Check("schema_version", WARNING,
                        f"{state.current} of {state.head}: run 'bot-bottle db upgrade'")
    else:
        version = Check("schema_version", OK, f"{state.current} of {state.head} (up to date)")
    live = migrate.live_schema_drift(conn, known)
    return [
        Check("integrity", ERROR if integrity else OK, "; ".join(integrity[:10]) or "ok"),
        Check("foreign_keys", ERROR if violations else OK,
              f"{len(violations)} violation(s), first: {violations[0]}" if violations else "ok"),
        version,
        Check("drift", ERROR if state.drift else OK, "; ".join(d.summary for d in state.drift) or "none"),
        Check("live_schema", ERROR if live else OK, "; ".join(live) or "as the migrations made it"),
    ]
