"""The queue's read side: proposals and decisions as the operator's screens and the sidecars read them.

``QueueReads`` is the base of ``queue_store.QueueStore``: every query that
only reads, and the mapping of rows to records (the records' fields are the
tables' columns, in order, so rows map by construction). Listings read
``ProposalSummary`` rows (no payload, no current file); ``get`` loads one
proposal whole. ``check_quota`` reads what a bottle holds against its
quota, in the filing's own write transaction.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from dataclasses import fields
from typing import Any

from bot_bottle.db import DatabaseUser, validate_limit
from bot_bottle.errors import AmbiguousId, NotFound, QuotaExceeded
from bot_bottle.grant_records import RULE_DECIDER_PREFIX
from bot_bottle.records import (
    STATUS_APPROVED,
    STATUS_EXPIRED,
    STATUS_REJECTED,
    TOOLS,
    Proposal,
    ProposalSummary,
    Quota,
    Response,
    canonical_json,
    sha256_text,
    validate_id_prefix,
    validate_proposal_id,
    validate_queue_key,
)
from bot_bottle.timestamps import later, spell_duration, utc_now


def _columns(record: type, alias: str) -> str:
    """The table's columns named as ``record``'s fields, in their order, so rows map by construction."""
    return ", ".join(f"{alias}.{field.name}" for field in fields(record))


PROPOSAL_COLUMNS = _columns(Proposal, "p")
_PROPOSAL_WIDTH = len(fields(Proposal))
# What listings read: never the payload or the current file (up to 1 MiB each).
_SUMMARY_COLUMNS = _columns(ProposalSummary, "p")
_SUMMARY_WIDTH = len(fields(ProposalSummary))
# A row whose id, bottle or tool bot-bottle could not have written (a sidecar can insert one with the table's
# CHECKs switched off: PRAGMA ignore_check_constraints) is no proposal: listings, the keeper and expiry pass it
# by, where its id failed every listing of every bottle and stopped the keeper.
WELL_FORMED = ("length(p.id) = 32 AND p.id NOT GLOB '*[^0-9a-f]*' AND length(p.queue_key) BETWEEN 1 AND 64 "
               "AND p.queue_key NOT GLOB '*[^a-z0-9._-]*' AND substr(p.queue_key, 1, 1) GLOB '[a-z0-9]' "
               f"AND p.tool IN ({', '.join(repr(tool) for tool in TOOLS)})")
PENDING = (f"{WELL_FORMED} AND p.archived_at IS NULL "
           "AND NOT EXISTS (SELECT 1 FROM responses r WHERE r.proposal_id = p.id)")
_RESPONSE_COLUMNS = _columns(Response, "r")
_AMBIGUOUS_SHOWN = 5  # ids an ambiguous prefix names, so that the operator sees how many digits tell them apart
# Proposals a list reads at once: up to 1 MiB of payload and 1 MiB of current file each.
_MANY = 4
# Which unarchived proposal a filing of the same request returns: one still waiting for the operator, or one
# whose decision still stands: a rejection, or an approval whose grant is in force now. An approval whose grant
# was revoked or has ended (or that made none) answers nothing more: the caller's sidecar acts on the answer it
# is given, so returning that old approval would let the request through past the grant's end.
_STILL_ANSWERS = (
    "((p.expires_at IS NULL OR p.expires_at > :now) AND NOT EXISTS (SELECT 1 FROM responses r WHERE r.proposal_id "
    "= p.id) OR EXISTS (SELECT 1 FROM responses r WHERE r.proposal_id = p.id AND r.status = :rejected) "
    "OR EXISTS (SELECT 1 FROM grants g WHERE g.proposal_id = p.id AND g.revoked_at IS NULL AND g.starts_at <= :now "
    "AND g.ends_at > :now))"
)


def check_bottle(proposal_id: str, owner: str | None, queue_key: str) -> None:
    """``NotFound`` unless the proposal (owned by ``owner``, ``None`` when there is none) is ``queue_key``'s.

    One message whether the id exists in another bottle or nowhere: a
    bottle learns nothing of the others' ids from it.
    """
    if owner != queue_key:
        raise NotFound(f"no proposal {proposal_id} in bottle {queue_key}")


def decided_on(proposal: Proposal) -> dict[str, Any]:
    """What a decision is about: every field of the proposal but its archiving."""
    return {**proposal.to_dict(), "archived_at": None}


def shown_digest(proposal: Proposal) -> str:
    """The digest of a proposal as a screen showed it (``decided_on``): what a decision later holds it to.

    ``proposals show`` prints it and ``approve --digest`` takes it back, the
    dashboard's forms carry it, the TUI's lists keep it: a decision is
    recorded only for a proposal that still has it, so one rewritten in the
    file since it was shown is refused.
    """
    return sha256_text(canonical_json(decided_on(proposal)))


def expired_response(proposal_id: str, expires_at: str) -> Response:
    """What a proposal past its end says until the host closes it: ``expired``, as the host will record it."""
    return Response(proposal_id, STATUS_EXPIRED, expired_notes(expires_at), None, EXPIRY_DECIDER, expires_at)


def expired_notes(expires_at: str) -> str:
    """The reason an expired proposal gives: nobody decided in time."""
    return (f"nobody decided before {expires_at} (the host's pending-ttl): it can no longer be approved; "
            "file the request again to ask again")


# Who closes an expired proposal: the host, on nobody's word.
EXPIRY_DECIDER = "bot-bottle (pending-ttl)"


def one_by_id_prefix(conn: sqlite3.Connection, table: str, columns: str, prefix: str, what: str,
                     prefer: str = "") -> tuple[Any, ...]:
    """``columns`` of the one row of ``table`` (as ``t``) whose id starts with ``prefix`` (a proposal's, a grant's
    or a rule's: ``validate_id_prefix``); ``NotFound`` or ``AmbiguousId``. Where several rows share that id (a
    table a sidecar rebuilt without its key), the first by ``prefer`` (an ORDER BY over ``t``; "": ambiguous).

    Ids are lower-case hex, so every id with this prefix sorts in [prefix,
    prefix + 'g'): an index range, not a scan. Only ids bot-bottle writes (32
    hex digits, the schema's CHECK) count, as only they are named on a
    screen: a row a sidecar on the mount wrote past the CHECK, with an id one
    digit longer than a listed one (or a listed one's short id alone), made
    that id 'ambiguous' against a row no screen names, so that nothing could
    be decided or revoked by it; a whole id names one row. Ids, not rows, are
    counted: a sidecar rebuilt the grants table without its primary key and
    copied a grant's row, and 'grants revoke' refused that grant by its whole
    id as "matches several grants", the TUI's x and the dashboard's button too,
    while the file kept it in force (hostile review 60).
    """
    prefix = validate_id_prefix(prefix, what)
    in_range = (f"FROM {table} t WHERE t.id >= :low AND t.id < :high AND length(t.id) = 32 "
                "AND t.id NOT GLOB '*[^0-9a-f]*'")
    bounds = {"low": prefix, "high": prefix + "g", "n": _AMBIGUOUS_SHOWN + 1}
    # Several rows of one id count as one only where the caller says which to take (``prefer``): a proposal's or a
    # rule's duplicates stay ambiguous, as their callers read the row again by id. Read a bounded number of rows
    # either way: a sidecar can write a hundred thousand copies of one id.
    ids = [str(row[0]) for row in conn.execute(
        f"SELECT {'DISTINCT ' if prefer else ''}t.id {in_range} ORDER BY t.id LIMIT :n", bounds)]
    if not ids:
        raise NotFound(f"no {what} id starts with {prefix!r}")
    if len(ids) > 1:
        shown = ", ".join(found[: len(prefix) + 4] for found in ids[:_AMBIGUOUS_SHOWN])
        more = " and more" if len(ids) > _AMBIGUOUS_SHOWN else ""
        raise AmbiguousId(f"{prefix!r} matches several {what}s ({shown}{more}): give more digits")
    row = conn.execute(f"SELECT {columns} FROM {table} t WHERE t.id = :id{' ORDER BY ' + prefer if prefer else ''} "
                       "LIMIT 1", {"id": ids[0]}).fetchone()
    return tuple(row)


class QueueReads(DatabaseUser):
    """The queue's queries over one database; ``QueueStore`` adds filing, waiting, archiving and deciding."""

    @staticmethod
    def proposal_from_row(row: tuple[Any, ...]) -> Proposal:
        """Map a row of ``PROPOSAL_COLUMNS`` (the dataclass's fields, in order) to a ``Proposal``."""
        return Proposal(*row)

    @staticmethod
    def summary_from_row(row: tuple[Any, ...]) -> ProposalSummary:
        """Map a row of ``_SUMMARY_COLUMNS`` to a ``ProposalSummary``."""
        return ProposalSummary(*row)

    @staticmethod
    def response_from_row(row: tuple[Any, ...]) -> Response:
        """Map a row of ``_RESPONSE_COLUMNS`` to a ``Response``."""
        return Response(*row)

    # Filing ------------------------------------------------------------------

    def get_in(self, conn: sqlite3.Connection, proposal_id: str) -> Proposal:
        row = conn.execute(
            f"SELECT {PROPOSAL_COLUMNS} FROM proposals p WHERE p.id = :id", {"id": proposal_id}
        ).fetchone()
        if row is None:
            raise NotFound(f"no proposal {proposal_id}")
        return self.proposal_from_row(row)

    @staticmethod
    def response_in(conn: sqlite3.Connection, proposal_id: str) -> Response | None:
        row = conn.execute(
            f"SELECT {_RESPONSE_COLUMNS} FROM responses r WHERE r.proposal_id = :id", {"id": proposal_id}
        ).fetchone()
        return None if row is None else QueueReads.response_from_row(row)

    def get(self, proposal_id: str) -> Proposal:
        """The proposal with this whole id; ``NotFound`` if there is none."""
        validate_proposal_id(proposal_id)
        with self.db.read() as conn:
            return self.get_in(conn, proposal_id)

    def get_many(self, proposal_ids: list[str]) -> Iterator[Proposal]:
        """The proposals with these whole ids that exist, a few per read: a list reads each payload once, and
        holds a few at a time (each read is short, so writers are not kept waiting)."""
        for proposal_id in proposal_ids:
            validate_proposal_id(proposal_id)
        for start in range(0, len(proposal_ids), _MANY):
            chunk = proposal_ids[start:start + _MANY]
            marks = ", ".join("?" * len(chunk))
            with self.db.read() as conn:
                rows = conn.execute(f"SELECT {PROPOSAL_COLUMNS} FROM proposals p WHERE p.id IN ({marks})",
                                    chunk).fetchall()
            for row in rows:
                yield self.proposal_from_row(row)

    def find(self, prefix: str) -> Proposal:
        """The one proposal whose id starts with ``prefix`` (any case); ``NotFound`` or ``AmbiguousId``."""
        with self.db.read() as conn:
            return self.get_in(conn, str(one_by_id_prefix(conn, "proposals", "t.id", prefix, "proposal")[0]))

    def pending(self, queue_key: str | None = None) -> list[Proposal]:
        """Undecided, unarchived proposals, oldest first; of one bottle, or of all (``None``)."""
        return [self.proposal_from_row(row) for row in self._pending_rows(PROPOSAL_COLUMNS, queue_key)]

    def pending_summaries(self, queue_key: str | None = None) -> list[ProposalSummary]:
        """``pending`` without payloads or current files: what a listing shows, cheap at any size."""
        return [self.summary_from_row(row) for row in self._pending_rows(_SUMMARY_COLUMNS, queue_key)]

    def _pending_rows(self, columns: str, queue_key: str | None) -> list[tuple[Any, ...]]:
        params: dict[str, Any] = {}
        where = ""
        if queue_key is not None:
            params["queue_key"] = validate_queue_key(queue_key)
            where = " AND p.queue_key = :queue_key"
        with self.db.read() as conn:
            return conn.execute(
                f"SELECT {columns} FROM proposals p WHERE {PENDING}{where} ORDER BY p.created_at, p.rowid", params
            ).fetchall()

    def summaries(
        self, queue_key: str | None = None, *, include_decided: bool = False, limit: int | None = None
    ) -> list[tuple[ProposalSummary, Response | None]]:
        """``listing`` without payloads or current files (the CLI's list reads this)."""
        validate_limit(limit)
        if not include_decided:
            pending: list[tuple[ProposalSummary, Response | None]] = [
                (p, None) for p in self.pending_summaries(queue_key)
            ]
            return pending if limit is None else pending[-limit:]
        rows = self._decided_rows(_SUMMARY_COLUMNS, queue_key, limit)
        result = [
            (self.summary_from_row(row[:_SUMMARY_WIDTH]),
             None if row[_SUMMARY_WIDTH] is None else self.response_from_row(row[_SUMMARY_WIDTH:]))
            for row in rows
        ]
        result.reverse()
        return result

    def _decided_rows(self, columns: str, queue_key: str | None, limit: int | None) -> list[tuple[Any, ...]]:
        """Proposals (``columns``) with their responses, newest first, at most ``limit``."""
        params: dict[str, Any] = {"limit": -1 if limit is None else limit}
        where = f"WHERE {WELL_FORMED} "
        if queue_key is not None:
            params["queue_key"] = validate_queue_key(queue_key)
            where += "AND p.queue_key = :queue_key "
        with self.db.read() as conn:
            return conn.execute(
                f"SELECT {columns}, {_RESPONSE_COLUMNS} FROM proposals p "
                f"LEFT JOIN responses r ON r.proposal_id = p.id {where}"
                "ORDER BY p.created_at DESC, p.rowid DESC LIMIT :limit",
                params,
            ).fetchall()

    def listing(
        self, queue_key: str | None = None, *, include_decided: bool = False, limit: int | None = None
    ) -> list[tuple[Proposal, Response | None]]:
        """Proposals with their responses, oldest first.

        By default only pending ones (as ``pending``); ``include_decided``
        lists every proposal, archived ones too, and ``limit`` keeps the newest.
        """
        validate_limit(limit)
        if not include_decided:
            pending: list[tuple[Proposal, Response | None]] = [(p, None) for p in self.pending(queue_key)]
            return pending if limit is None else pending[-limit:]
        rows = self._decided_rows(PROPOSAL_COLUMNS, queue_key, limit)
        result = [
            (self.proposal_from_row(row[:_PROPOSAL_WIDTH]),
             None if row[_PROPOSAL_WIDTH] is None else self.response_from_row(row[_PROPOSAL_WIDTH:]))
            for row in rows
        ]
        result.reverse()
        return result

    def response(self, proposal_id: str) -> Response | None:
        """The decision on this proposal, or ``None`` while it is pending."""
        validate_proposal_id(proposal_id)
        return self._decision_of(proposal_id, None)

    def _decision_of(self, proposal_id: str, queue_key: str | None) -> Response | None:
        """The response, in one read; with ``queue_key``, ``NotFound`` unless the proposal is that bottle's.

        One statement, so one shared lock: a bottle's look at its decision
        checks whose proposal it is in the same read (docs/benchmarks.md, "Throughput").
        A proposal past its end without a response reads as ``expired``
        (``expired_response``) before the host has closed it: a waiting
        caller is told at once, and nothing is written here.
        """
        with self.db.read() as conn:
            row = conn.execute(
                f"SELECT p.queue_key, p.expires_at, {_RESPONSE_COLUMNS} FROM proposals p "
                "LEFT JOIN responses r ON r.proposal_id = p.id WHERE p.id = :id",
                {"id": proposal_id},
            ).fetchone()
        if queue_key is not None:
            check_bottle(proposal_id, None if row is None else str(row[0]), queue_key)
        if row is None:
            return None
        if row[2] is not None:
            return self.response_from_row(row[2:])
        expires_at = row[1]
        return expired_response(proposal_id, expires_at) if isinstance(expires_at, str) and expires_at <= utc_now() \
            else None

    def changes_marker(self) -> tuple[int, int]:
        """A value that changes whenever anyone commits to the database (cheap: no table is read)."""
        # data_version moves when another connection commits; total_changes
        # when this one writes (a thread of this process deciding).
        with self.db.read() as conn:
            return int(conn.execute("PRAGMA data_version").fetchone()[0]), conn.total_changes

    @classmethod
    def still_answering_in(cls, conn: sqlite3.Connection, queue_key: str, tool: str, payload: str,
                           payload_sha256: str, now: str) -> Proposal | None:
        """The unarchived proposal of ``queue_key`` for the same request whose answer still stands at ``now``
        (``_STILL_ANSWERS``): what a filing of it returns instead of a new one.

        The same request is the same payload, compared as text: the digest
        column finds it (indexed), but it is a row's word, and a sidecar on
        the mount can write a row holding another file under this one's
        digest, which ``prepare --routes-file`` then approved as the launch
        file (tests/attacks/test_launch_routes_rows.py). And only a row
        bot-bottle could have written (``WELL_FORMED``): one whose id is no
        proposal id was found, and deciding it failed, so prepare could never
        record the launch file while the row was there.
        """
        row = conn.execute(
            f"SELECT {PROPOSAL_COLUMNS} FROM proposals p WHERE p.queue_key = :queue_key AND p.tool = :tool "
            f"AND p.payload_sha256 = :sha AND p.payload = :payload AND p.archived_at IS NULL AND {WELL_FORMED} "
            f"AND {_STILL_ANSWERS} "
            "ORDER BY p.created_at DESC LIMIT 1",
            {"queue_key": queue_key, "tool": tool, "sha": payload_sha256, "payload": payload, "now": now,
             "rejected": STATUS_REJECTED},
        ).fetchone()
        return None if row is None else cls.proposal_from_row(row)

    def file_marker(self) -> tuple[int, ...] | None:
        """The database file's and its WAL's (mtime, size, inode): they change when anyone commits. No lock.

        In WAL mode a commit writes only ``NAME-wal`` (and touches it at the
        end: ``connection.signal_commit``); the file itself changes at a
        checkpoint, and its times at a decision (``connection.signal_decision``).
        A hint, not a proof: two commits within one tick of the filesystem's
        clock can leave it unchanged, so waiters still look properly every
        poll interval. None when the file cannot be stat'ed.
        """
        try:
            info = os.stat(self.db.path)
        except OSError:
            return None
        marker: tuple[int, ...] = (info.st_mtime_ns, info.st_size, info.st_ino)
        try:
            wal = os.stat(f"{self.db.path}-wal")
        except OSError:
            return marker
        return (*marker, wal.st_mtime_ns, wal.st_size, wal.st_ino)


# The decisions nobody paced (a standing rule's, an expiry), as the partial index audit_log_unpaced
# (migrations/0008) spells them: SQLite uses a partial index only for a query whose WHERE holds its WHERE,
# literals and all, so this text is the index's, with the alias a (tests/test_queue_store.py, QuotaTest).
UNPACED = (f"(a.action = '{STATUS_EXPIRED}' OR substr(a.actor, 1, {len(RULE_DECIDER_PREFIX)}) = "
           f"'{RULE_DECIDER_PREFIX}')")

# How long a proposal a standing rule decided still counts against its bottle's quota, from its filing.
RULE_DECIDED_WINDOW_SEC = 3600


def check_quota(conn: sqlite3.Connection, queue_key: str, size: int, quota: Quota, now: str) -> None:
    """``QuotaExceeded`` if filing ``size`` more bytes for ``queue_key`` at ``now`` would pass ``quota``, read in the
    caller's write transaction (``QueueStore.submit``), so that concurrent filings cannot overshoot it."""
    # Reads only this bottle's pending rows (a partial index) and its decisions nobody paced within the last
    # RULE_DECIDED_WINDOW_SEC (another), whose sizes the quota itself keeps under max_pending_bytes.
    # A proposal a standing rule decided, or that expired, counts for that long after its filing: no person
    # paced it, so without this an agent whose ask a rule rejects (or approves) at once filed without end
    # (measured: 2,162 filings and 553 MB in 20 s through one sidecar), and one that waited out a short
    # pending-ttl filed the quota again each time (16 MB a minute with 'pending-ttl 1m').
    sizes = ("coalesce(sum(length(CAST(p.payload AS BLOB)) + length(CAST(p.justification AS BLOB)) "
             "+ coalesce(length(CAST(p.current_file AS BLOB)), 0)), 0)")
    pending = conn.execute(
        f"SELECT count(*), {sizes} FROM proposals p WHERE p.queue_key = :queue_key AND {PENDING}",
        {"queue_key": queue_key},
    ).fetchone()
    # Through the audit log's index of exactly those decisions (audit_log_unpaced: its WHERE is spelled
    # out here as in the index, where SQLite looks for it): a decision comes after its filing, so
    # the ones of proposals filed within the window were all made within it. Each proposal counts once,
    # however many entries name it (as its one response did: a sidecar on the mount can add entries). The
    # unary + keeps SQLite from reading every proposal the bottle filed in the hour to test each against the
    # list (proposals_by_bottle), which was the cost this index removes: the list drives, by primary key.
    since = later(now, -RULE_DECIDED_WINDOW_SEC)
    by_rule = conn.execute(
        f"SELECT count(*), {sizes} FROM proposals p WHERE +p.queue_key = :queue_key AND +p.created_at > :since "
        f"AND p.id IN (SELECT a.proposal_id FROM audit_log a WHERE {UNPACED} AND a.queue_key = :queue_key "
        "AND a.ts > :since AND a.action IN (:approved, :rejected, :expired))",
        {"queue_key": queue_key, "since": since, "approved": STATUS_APPROVED, "rejected": STATUS_REJECTED,
         "expired": STATUS_EXPIRED},
    ).fetchone()
    count, used = pending[0] + by_rule[0], pending[1] + by_rule[1]
    also = (f" or decided by a standing rule or expired, filed in the last "
            f"{spell_duration(RULE_DECIDED_WINDOW_SEC)} ({by_rule[0]} of them)") if by_rule[0] else ""
    if count >= quota.max_pending:
        raise QuotaExceeded(
            f"bottle {queue_key} already has {count} proposals waiting for the operator{also}, the most it may "
            "have at once: wait for decisions on those (check-proposal) before filing another"
        )
    if used + size > quota.max_pending_bytes:
        raise QuotaExceeded(
            f"bottle {queue_key}'s pending proposals{also} hold {used} bytes and this one {size}, over the "
            f"limit of {quota.max_pending_bytes} bytes pending at once: wait for decisions on those "
            "(check-proposal) or file something smaller"
        )
