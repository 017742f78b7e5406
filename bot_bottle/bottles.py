"""The bottles table: which bottles the host prepared, how their sidecars reach it, and whether they live.

A bottle's slug is its queue key, so one query joins bottles with their
pending proposals (``BottleStore.overview``): which bottles are running and
what they are waiting for. The host records a bottle when it prepares one
(``Supervise.prepare`` calls ``BottleStore.prepared``); the running sidecar
refreshes ``last_seen`` every ``HEARTBEAT_INTERVAL_SEC``
(``BottleQueue.heartbeat``) and marks it stopped when it exits cleanly. A
running bottle whose sidecar was not seen for ``STALE_AFTER_SEC`` is
*stale*: its sidecar died without saying so, and what it filed waits for a
caller who is gone.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any

from bot_bottle.db import DatabaseUser
from bot_bottle.errors import NotFound, ValidationError
from bot_bottle.records import ProposalSummary, validate_bottle_slug, validate_queue_key
from bot_bottle.timestamps import moment_of, utc_now

STATE_PREPARED = "prepared"
STATE_RUNNING = "running"
STATE_STOPPED = "stopped"
STATES = (STATE_PREPARED, STATE_RUNNING, STATE_STOPPED)
# Shown, never stored: a row filing made, for a bottle the host never prepared (BottleOverview.shown_state).
STATE_UNPREPARED = "unprepared"
TRANSPORT_MOUNT = "mount"
TRANSPORT_RELAY = "relay"
TRANSPORTS = (TRANSPORT_MOUNT, TRANSPORT_RELAY)
HEARTBEAT_INTERVAL_SEC = 15.0
# Four missed heartbeats: a busy host or a paused VM is not called dead at the first late one.
STALE_AFTER_SEC = 4 * HEARTBEAT_INTERVAL_SEC
_MAX_BACKEND_CHARS = 64

# A pending proposal: not archived and without a response (as queue_store's listings say).
_PENDING_JOIN = ("LEFT JOIN proposals p ON p.queue_key = b.slug AND p.archived_at IS NULL "
                 "AND NOT EXISTS (SELECT 1 FROM responses r WHERE r.proposal_id = p.id)")


@dataclass(frozen=True)
class Bottle:
    """One row of the bottles table."""

    slug: str
    backend: str | None
    transport: str
    state: str
    prepared_at: str
    started_at: str | None
    stopped_at: str | None
    last_seen: str | None

    def stale(self, now: datetime | None = None) -> bool:
        """True for a running bottle whose sidecar has not been seen for ``STALE_AFTER_SEC``."""
        if self.state != STATE_RUNNING:
            return False
        seen = moment_of(self.last_seen)
        if seen is None:  # never seen, or a time no heartbeat writes (a sidecar wrote the row)
            return True
        moment = now if now is not None else datetime.now(UTC)
        return (moment - seen).total_seconds() > STALE_AFTER_SEC

    def shown_state(self, now: datetime | None = None) -> str:
        """The state as the operator reads it: ``stale`` for a running bottle not seen lately."""
        return "stale" if self.stale(now) else self.state

    def to_dict(self) -> dict[str, Any]:
        """The row as a JSON-ready dict, its fields in order."""
        return {field.name: getattr(self, field.name) for field in fields(self)}


@dataclass(frozen=True)
class BottleOverview:
    """A bottle with its pending proposals (summaries, oldest first).

    ``never_prepared``: its row is the one filing made (the ``proposals_have_a_bottle`` trigger, or 0006's rows
    for queue keys filed before it): still ``prepared`` as that wrote it, at its first proposal's time, never
    prepared by the host since nor seen running.
    """

    bottle: Bottle
    pending: tuple[ProposalSummary, ...]
    never_prepared: bool = False

    @property
    def oldest_pending(self) -> str | None:
        """When the oldest pending proposal was filed, or None."""
        return self.pending[0].created_at if self.pending else None

    def shown_state(self, now: datetime | None = None) -> str:
        """The state as the operator reads it: ``unprepared`` for a bottle that has only filed (the host never
        prepared it and no sidecar of it ran: a git-gate hook, or a script filing through the Python API), else
        the bottle's own (``Bottle.shown_state``)."""
        return STATE_UNPREPARED if self.never_prepared else self.bottle.shown_state(now)

    @property
    def shown_transport(self) -> str:
        """The transport as the operator reads it: ``-`` for a bottle that has only filed (none was chosen for it:
        its row holds the column's default), else the bottle's own."""
        return "-" if self.never_prepared else self.bottle.transport


_BOTTLE_COLUMNS = ", ".join(f"b.{field.name}" for field in fields(Bottle))
_BOTTLE_WIDTH = len(fields(Bottle))
_SUMMARY_COLUMNS = ", ".join(f"p.{field.name}" for field in fields(ProposalSummary))
# The row filing made and nothing changed since: prepared, never started, and prepared when a proposal of its was
# filed (the trigger writes the proposal's time; prepare writes its own, and heartbeats start it). Read through
# proposals_by_bottle.
_NEVER_PREPARED = ("(b.state = 'prepared' AND b.started_at IS NULL AND EXISTS (SELECT 1 FROM proposals f "
                   "WHERE f.queue_key = b.slug AND f.created_at = b.prepared_at))")


def validate_backend(value: object) -> str:
    """A backend's name: lower-case letters, digits and ``-`` (``ValidationError`` otherwise)."""
    if (not isinstance(value, str) or not 1 <= len(value) <= _MAX_BACKEND_CHARS
            or not all(c.isascii() and (c.islower() or c.isdigit() or c == "-") for c in value)):
        raise ValidationError("backend", f"{str(value)[:80]!r} is not a backend name")
    return value


def validate_transport(value: object) -> str:
    """``mount`` or ``relay`` (``ValidationError`` otherwise)."""
    if value not in TRANSPORTS:
        raise ValidationError("transport", f"{str(value)[:80]!r} is not one of {', '.join(TRANSPORTS)}")
    return str(value)


def heartbeat_in(conn: sqlite3.Connection, slug: str) -> None:
    """Inside a write transaction: ``slug``'s sidecar is alive now (running, ``last_seen`` now).

    A bottle that was not running starts now; a slug without a row (a
    sidecar run by hand on a database nobody prepared) gets one.
    """
    now = utc_now()
    conn.execute(
        "INSERT INTO bottles (slug, state, prepared_at, started_at, last_seen) "
        "VALUES (:slug, 'running', :now, :now, :now) "
        "ON CONFLICT (slug) DO UPDATE SET state = 'running', last_seen = :now, stopped_at = NULL, "
        "started_at = CASE WHEN state = 'running' AND started_at IS NOT NULL THEN started_at ELSE :now END",
        {"slug": slug, "now": now},
    )


def stopped_in(conn: sqlite3.Connection, slug: str) -> bool:
    """Inside a write transaction: ``slug``'s sidecar stopped now; False for a bottle never recorded."""
    return conn.execute(
        "UPDATE bottles SET state = 'stopped', stopped_at = :now WHERE slug = :slug",
        {"slug": slug, "now": utc_now()},
    ).rowcount > 0


class BottleStore(DatabaseUser):
    """The bottles table in the host database (``db_path=None``) or the database at ``db_path``."""

    def prepared(self, slug: str, backend: str | None, transport: str = TRANSPORT_MOUNT) -> Bottle:
        """Record that the host prepared ``slug`` (again): state prepared, its earlier run forgotten."""
        validate_bottle_slug(slug)
        if backend is not None:
            validate_backend(backend)
        validate_transport(transport)
        with self.db.write() as conn:
            conn.execute(
                "INSERT INTO bottles (slug, backend, transport, state, prepared_at) "
                "VALUES (:slug, :backend, :transport, 'prepared', :now) "
                "ON CONFLICT (slug) DO UPDATE SET backend = :backend, transport = :transport, state = 'prepared', "
                "prepared_at = :now, started_at = NULL, stopped_at = NULL, last_seen = NULL",
                {"slug": slug, "backend": backend, "transport": transport, "now": utc_now()},
            )
            return self._get_in(conn, slug)

    def heartbeat(self, slug: str) -> None:
        """``slug``'s sidecar is alive now (see ``heartbeat_in``)."""
        validate_queue_key(slug, "bottle")
        with self.db.write() as conn:
            heartbeat_in(conn, slug)

    def stopped(self, slug: str) -> Bottle:
        """Record that ``slug``'s sidecar stopped; ``NotFound`` for a bottle never recorded."""
        validate_queue_key(slug, "bottle")
        with self.db.write() as conn:
            if not stopped_in(conn, slug):
                raise NotFound(f"no bottle {slug}")
            return self._get_in(conn, slug)

    @staticmethod
    def _get_in(conn: sqlite3.Connection, slug: str) -> Bottle:
        row = conn.execute(f"SELECT {_BOTTLE_COLUMNS} FROM bottles b WHERE b.slug = :slug", {"slug": slug}).fetchone()
        if row is None:
            raise NotFound(f"no bottle {slug}")
        return Bottle(*row)

    def get(self, slug: str) -> Bottle:
        """The bottle ``slug``; ``NotFound`` if the host never recorded it."""
        validate_queue_key(slug, "bottle")
        with self.db.read() as conn:
            return self._get_in(conn, slug)

    def overview(self, slug: str | None = None) -> list[BottleOverview]:
        """Every bottle (or ``slug``'s) with its pending proposals, in one query.

        Bottles with pending work first (oldest waiting first), then the
        others by slug. Summaries only: no payload or current file is read.
        """
        params: dict[str, Any] = {}
        where = ""
        if slug is not None:
            params["slug"] = validate_queue_key(slug, "bottle")
            where = "WHERE b.slug = :slug "
        with self.db.read() as conn:
            rows = conn.execute(
                f"SELECT {_BOTTLE_COLUMNS}, {_NEVER_PREPARED}, {_SUMMARY_COLUMNS} "
                f"FROM bottles b {_PENDING_JOIN} {where}"
                "ORDER BY b.slug, p.created_at, p.rowid",
                params,
            ).fetchall()
        grouped: dict[str, tuple[Bottle, bool, list[ProposalSummary]]] = {}
        for row in rows:
            bottle = Bottle(*row[:_BOTTLE_WIDTH])
            entry = grouped.setdefault(bottle.slug, (bottle, bool(row[_BOTTLE_WIDTH]), []))
            if row[_BOTTLE_WIDTH + 1] is not None:
                entry[2].append(ProposalSummary(*row[_BOTTLE_WIDTH + 1:]))
        result = [BottleOverview(bottle, tuple(pending), never) for bottle, never, pending in grouped.values()]
        # Waiting work first, the longest-waiting on top; idle bottles after, by name.
        result.sort(key=lambda o: (o.oldest_pending is None, o.oldest_pending or "", o.bottle.slug))
        return result
