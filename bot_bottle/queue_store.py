"""The supervise queue: proposals filed by bottles and the operator's responses.

``QueueStore`` is the whole queue, for the operator's side on the host.
``QueueStore.for_bottle(slug)`` returns a ``BottleQueue``: the narrow handle a
sidecar, git-gate or the egress proxy gets, which files, reads, waits on and
archives only that bottle's proposals.

Rules kept here (docs/decisions.md, "The queue's rules"): an identical
unarchived proposal (same bottle, tool and payload) is returned instead of a
duplicate; a bottle files no more than its ``Quota`` allows pending; the
first decision wins; a decision and its audit entry commit in one
transaction. Listings read ``ProposalSummary`` rows (no payload, no current
file); ``get`` loads one proposal whole.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import sqlite3
import time
from dataclasses import fields
from typing import Any

from bot_bottle.audit_store import AuditStore
from bot_bottle.bottles import heartbeat_in, stopped_in
from bot_bottle.db import Database, DatabaseUser
from bot_bottle.errors import (
    AlreadyDecided,
    AmbiguousId,
    AuditTampered,
    NotFound,
    QuotaExceeded,
    StillPending,
    ValidationError,
)
from bot_bottle.file_watch import WatchPool
from bot_bottle.records import (
    DEFAULT_POLL_INTERVAL_SEC,
    DEFAULT_QUOTA,
    MAX_FILE_BYTES,
    MAX_PAYLOAD_BYTES,
    MAX_TEXT_BYTES,
    AuditEntry,
    Decision,
    Proposal,
    ProposalSummary,
    Quota,
    Response,
    utc_now,
    validate_id_prefix,
    validate_optional_text,
    validate_proposal_id,
    validate_queue_key,
    validate_sha256,
    validate_text,
    validate_tool,
)


def _columns(record: type, alias: str) -> str:
    """The table's columns named as ``record``'s fields, in their order, so rows map by construction."""
    return ", ".join(f"{alias}.{field.name}" for field in fields(record))


_PROPOSAL_COLUMNS = _columns(Proposal, "p")
_PROPOSAL_WIDTH = len(fields(Proposal))
# What listings read: never the payload or the current file (up to 1 MiB each).
_SUMMARY_COLUMNS = _columns(ProposalSummary, "p")
_SUMMARY_WIDTH = len(fields(ProposalSummary))
_PENDING = "p.archived_at IS NULL AND NOT EXISTS (SELECT 1 FROM responses r WHERE r.proposal_id = p.id)"
_RESPONSE_COLUMNS = _columns(Response, "r")
_AMBIGUOUS_SHOWN = 5


def sha256_text(text: str) -> str:
    """The sha256 hex digest of ``text`` encoded as UTF-8."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _check_wait(timeout: object, poll_interval: object) -> tuple[float, float]:
    for name, value in (("timeout", timeout), ("poll_interval", poll_interval)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value or value < 0:
            raise ValidationError(name, "must be a number of seconds, 0 or more")
    if poll_interval == 0:
        raise ValidationError("poll_interval", "must be more than 0 seconds")
    return float(timeout), float(poll_interval)  # type: ignore[arg-type]


class QueueStore(DatabaseUser):
    """The supervise queue in the host database (``db_path=None``) or the database at ``db_path``.

    Safe to share between threads; open one per process (or per thread) as you like.
    """

    def __init__(
        self,
        db_path: str | os.PathLike[str] | None = None,
        *,
        database: Database | None = None,
        migrate_schema: bool = True,
    ) -> None:
        super().__init__(db_path, database=database, migrate_schema=migrate_schema)
        # Waiters borrow watches of the database's commits from here: a wait neither opens nor closes one.
        self._watches = WatchPool(self.db.path)

    def close(self) -> None:
        """Close the store's watches and its connection (unless it was handed a ``Database`` to share)."""
        self._watches.close()
        super().close()

    # Row mapping -----------------------------------------------------------

    @staticmethod
    def proposal_from_row(row: tuple[Any, ...]) -> Proposal:
        """Map a row of ``_PROPOSAL_COLUMNS`` (the dataclass's fields, in order) to a ``Proposal``."""
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

    def submit(
        self,
        queue_key: str,
        tool: str,
        payload: str,
        justification: str,
        current_file: str | None = None,
        current_file_hash: str | None = None,
        *,
        quota: Quota | None = DEFAULT_QUOTA,
    ) -> Proposal:
        """File a proposal, or return the identical unarchived one already filed.

        Every field is validated first (``ValidationError`` names the field and
        nothing is written). When ``current_file`` is given its sha256 is
        recorded; a ``current_file_hash`` given with it must match. A new
        proposal that would take the bottle past ``quota`` (``None``: no
        limit) is refused with ``QuotaExceeded``; the count and the insert
        share one write transaction, so concurrent submitters cannot overshoot.
        """
        validate_queue_key(queue_key)
        validate_tool(tool)
        validate_text("payload", payload, max_bytes=MAX_PAYLOAD_BYTES, required=True)
        validate_text("justification", justification, max_bytes=MAX_TEXT_BYTES, required=True)
        validate_optional_text("current_file", current_file, max_bytes=MAX_FILE_BYTES)
        validate_sha256("current_file_hash", current_file_hash)
        if current_file is not None:
            actual = sha256_text(current_file)
            if current_file_hash is not None and current_file_hash != actual:
                raise ValidationError("current_file_hash", "does not match the sha256 of current_file")
            current_file_hash = actual
        payload_sha256 = sha256_text(payload)
        with self.db.write() as conn:
            existing = conn.execute(
                f"SELECT {_PROPOSAL_COLUMNS} FROM proposals p WHERE p.queue_key = :queue_key "
                "AND p.tool = :tool AND p.payload_sha256 = :sha AND p.archived_at IS NULL",
                {"queue_key": queue_key, "tool": tool, "sha": payload_sha256},
            ).fetchone()
            if existing is not None:
                return self.proposal_from_row(existing)
            if quota is not None:
                size = sum(len(text.encode("utf-8")) for text in (payload, justification, current_file or ""))
                self._check_quota(conn, queue_key, size, quota)
            proposal = Proposal(
                id=secrets.token_hex(16),
                queue_key=queue_key,
                tool=tool,
                payload=payload,
                justification=justification,
                current_file=current_file,
                current_file_hash=current_file_hash,
                created_at=utc_now(),
            )
            conn.execute(
                "INSERT INTO proposals (id, queue_key, tool, payload, payload_sha256, justification, "
                "current_file, current_file_hash, created_at) VALUES (:id, :queue_key, :tool, :payload, "
                ":payload_sha256, :justification, :current_file, :current_file_hash, :created_at)",
                {**proposal.to_dict(), "payload_sha256": payload_sha256},
            )
        return proposal

    @staticmethod
    def _check_quota(conn: sqlite3.Connection, queue_key: str, size: int, quota: Quota) -> None:
        # Reads only this bottle's pending rows (a partial index), whose sizes
        # the quota itself keeps under max_pending_bytes.
        count, used = conn.execute(
            "SELECT count(*), coalesce(sum(length(CAST(p.payload AS BLOB)) + length(CAST(p.justification AS BLOB)) "
            f"+ coalesce(length(CAST(p.current_file AS BLOB)), 0)), 0) FROM proposals p "
            f"WHERE p.queue_key = :queue_key AND {_PENDING}",
            {"queue_key": queue_key},
        ).fetchone()
        if count >= quota.max_pending:
            raise QuotaExceeded(
                f"bottle {queue_key} already has {count} proposals waiting for the operator, the most it may "
                "have at once: wait for decisions on those (check-proposal) before filing another"
            )
        if used + size > quota.max_pending_bytes:
            raise QuotaExceeded(
                f"bottle {queue_key}'s pending proposals hold {used} bytes and this one {size}, over the limit "
                f"of {quota.max_pending_bytes} bytes pending at once: wait for decisions on those "
                "(check-proposal) or file something smaller"
            )

    # Reading -----------------------------------------------------------------

    def _get_in(self, conn: sqlite3.Connection, proposal_id: str) -> Proposal:
        row = conn.execute(
            f"SELECT {_PROPOSAL_COLUMNS} FROM proposals p WHERE p.id = :id", {"id": proposal_id}
        ).fetchone()
        if row is None:
            raise NotFound(f"no proposal {proposal_id}")
        return self.proposal_from_row(row)

    @staticmethod
    def _response_in(conn: sqlite3.Connection, proposal_id: str) -> Response | None:
        row = conn.execute(
            f"SELECT {_RESPONSE_COLUMNS} FROM responses r WHERE r.proposal_id = :id", {"id": proposal_id}
        ).fetchone()
        return None if row is None else QueueStore.response_from_row(row)

    def get(self, proposal_id: str) -> Proposal:
        """The proposal with this whole id; ``NotFound`` if there is none."""
        validate_proposal_id(proposal_id)
        with self.db.read() as conn:
            return self._get_in(conn, proposal_id)

    def find(self, prefix: str) -> Proposal:
        """The one proposal whose id starts with ``prefix`` (any case); ``NotFound`` or ``AmbiguousId``."""
        prefix = validate_id_prefix(prefix)
        with self.db.read() as conn:
            # Ids are lower-case hex, so every id with this prefix sorts in
            # [prefix, prefix + 'g'): an index range, not a scan.
            rows = conn.execute(
                "SELECT id FROM proposals WHERE id >= :low AND id < :high ORDER BY id LIMIT :n",
                {"low": prefix, "high": prefix + "g", "n": _AMBIGUOUS_SHOWN + 1},
            ).fetchall()
            if not rows:
                raise NotFound(f"no proposal id starts with {prefix!r}")
            if len(rows) > 1:
                shown = ", ".join(str(r[0])[: len(prefix) + 4] for r in rows[:_AMBIGUOUS_SHOWN])
                more = " and more" if len(rows) > _AMBIGUOUS_SHOWN else ""
                raise AmbiguousId(f"{prefix!r} matches several proposals ({shown}{more}): give more digits")
            return self._get_in(conn, str(rows[0][0]))

    def pending(self, queue_key: str | None = None) -> list[Proposal]:
        """Undecided, unarchived proposals, oldest first; of one bottle, or of all (``None``)."""
        return [self.proposal_from_row(row) for row in self._pending_rows(_PROPOSAL_COLUMNS, queue_key)]

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
                f"SELECT {columns} FROM proposals p WHERE {_PENDING}{where} ORDER BY p.created_at, p.rowid", params
            ).fetchall()

    def summaries(
        self, queue_key: str | None = None, *, include_decided: bool = False, limit: int | None = None
    ) -> list[tuple[ProposalSummary, Response | None]]:
        """``listing`` without payloads or current files (the CLI's list reads this)."""
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
            raise ValidationError("limit", "must be a whole number of at least 1")
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
        where = ""
        if queue_key is not None:
            params["queue_key"] = validate_queue_key(queue_key)
            where = "WHERE p.queue_key = :queue_key "
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
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
            raise ValidationError("limit", "must be a whole number of at least 1")
        if not include_decided:
            pending: list[tuple[Proposal, Response | None]] = [(p, None) for p in self.pending(queue_key)]
            return pending if limit is None else pending[-limit:]
        rows = self._decided_rows(_PROPOSAL_COLUMNS, queue_key, limit)
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
        """
        with self.db.read() as conn:
            if queue_key is None:
                return self._response_in(conn, proposal_id)
            row = conn.execute(
                f"SELECT p.queue_key, {_RESPONSE_COLUMNS} FROM proposals p "
                "LEFT JOIN responses r ON r.proposal_id = p.id WHERE p.id = :id",
                {"id": proposal_id},
            ).fetchone()
        _check_bottle(proposal_id, None if row is None else str(row[0]), queue_key)
        return None if row[1] is None else self.response_from_row(row[1:])

    def changes_marker(self) -> tuple[int, int]:
        """A value that changes whenever anyone commits to the database (cheap: no table is read)."""
        # data_version moves when another connection commits; total_changes
        # when this one writes (a thread of this process deciding).
        with self.db.read() as conn:
            return int(conn.execute("PRAGMA data_version").fetchone()[0]), conn.total_changes

    def file_marker(self) -> tuple[int, int, int] | None:
        """The database file's (mtime, size, inode): it changes when anyone commits. One ``stat``, no lock.

        A hint, not a proof: two commits within one tick of the filesystem's
        clock can leave it unchanged, so waiters still look properly every
        poll interval. None when the file cannot be stat'ed.
        """
        try:
            info = os.stat(self.db.path)
        except OSError:
            return None
        return info.st_mtime_ns, info.st_size, info.st_ino

    def wait_for_response(
        self, proposal_id: str, timeout: float, poll_interval: float = DEFAULT_POLL_INTERVAL_SEC
    ) -> Response | None:
        """Block until the proposal has a response, or ``timeout`` seconds pass (then ``None``).

        Sleeps on a watch of the database's commits (``FileWatch.commits``:
        inotify, where there is one), borrowed from the store's pool, and
        looks as soon as a commit has ended, and in any case every
        ``poll_interval`` seconds. A look is one query by primary key:
        one shared lock, where asking ``PRAGMA data_version`` first took a
        second one whenever anything had been committed, which under load is
        nearly every look (docs/benchmarks.md, "Throughput"). Without a watch
        it looks every ``poll_interval``. Giving up leaves the proposal
        pending for the operator.
        """
        timeout, poll_interval = _check_wait(timeout, poll_interval)
        validate_proposal_id(proposal_id)
        return self._wait(proposal_id, timeout, poll_interval, None)

    def _wait(self, proposal_id: str, timeout: float, poll_interval: float, queue_key: str | None) -> Response | None:
        """``wait_for_response``; with ``queue_key``, the first look also checks the proposal is that bottle's."""
        deadline = time.monotonic() + timeout
        owner = queue_key
        with self._watches.watch() as watch:
            while True:
                found = self._decision_of(proposal_id, owner)
                owner = None  # checked once: a proposal never changes bottles
                if found is not None:
                    return found
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                if watch is not None:
                    watch.wait(min(poll_interval, remaining))
                else:
                    time.sleep(min(poll_interval, remaining))

    # Changing ----------------------------------------------------------------

    def archive(self, proposal_id: str) -> Proposal:
        """Archive a decided proposal (idempotent); it leaves ``pending`` and the dedupe rule.

        Raises ``StillPending`` for a proposal without a decision: the operator
        must see it first.
        """
        validate_proposal_id(proposal_id)
        return self._archive(proposal_id, None)

    def _archive(self, proposal_id: str, queue_key: str | None) -> Proposal:
        """``archive``; with ``queue_key``, ``NotFound`` (nothing written) unless the proposal is that bottle's."""
        with self.db.write() as conn:
            if queue_key is None:
                proposal = self._get_in(conn, proposal_id)
            else:
                row = conn.execute(
                    f"SELECT {_PROPOSAL_COLUMNS} FROM proposals p WHERE p.id = :id", {"id": proposal_id}
                ).fetchone()
                _check_bottle(proposal_id, None if row is None else str(row[1]), queue_key)
                proposal = self.proposal_from_row(row)
            if proposal.archived_at is not None:
                return proposal
            if self._response_in(conn, proposal_id) is None:
                raise StillPending(
                    f"proposal {proposal.short_id} has no decision yet; only decided proposals are archived"
                )
            archived_at = utc_now()
            conn.execute(
                "UPDATE proposals SET archived_at = :at WHERE id = :id", {"at": archived_at, "id": proposal_id}
            )
        return Proposal(**{**proposal.to_dict(), "archived_at": archived_at})

    def record_decision(
        self,
        proposal_id: str,
        decision: Decision,
        *,
        diff: str,
        details: dict[str, Any],
        expected: Proposal | None = None,
    ) -> tuple[Response, AuditEntry]:
        """Store the response and its audit entry in one transaction; the first decision wins.

        Raises ``AlreadyDecided`` (naming who decided what, and when) if the
        proposal has a response already. ``decision`` validated its own
        fields; which decisions a tool allows is ``supervise.check_decision``'s,
        and the schema re-checks the basic ones. With ``expected`` (the
        proposal as it was shown, and as ``diff`` and ``details`` describe
        it), a stored proposal that differs from it is refused with
        ``AuditTampered`` inside the transaction: proposals are immutable, so
        it was rewritten in the file, and the decision would record something
        the operator never saw.
        """
        validate_proposal_id(proposal_id)
        with self.db.write() as conn:
            proposal = self._get_in(conn, proposal_id)
            if expected is not None and _decided_on(proposal) != _decided_on(expected):
                raise AuditTampered(
                    f"proposal {proposal.short_id} is not what was shown: it was rewritten in the database after "
                    "it was read (proposals are immutable); nothing recorded. Check 'bot-bottle audit verify'"
                )
            earlier = self._response_in(conn, proposal_id)
            if earlier is not None:
                raise AlreadyDecided(
                    f"proposal {proposal.short_id} was already {earlier.status} by {earlier.decided_by} "
                    f"at {earlier.decided_at}; the first decision stands"
                )
            status, notes, decided_by = decision.status, decision.notes, decision.decided_by
            response = Response(proposal_id, status, notes, decision.final_file, decided_by, utc_now())
            # The entry records the response whole, so audit verify can hold one against the other.
            details = {**details, "decided_at": response.decided_at}
            conn.execute(
                "INSERT INTO responses (proposal_id, status, notes, final_file, decided_by, decided_at) "
                "VALUES (:proposal_id, :status, :notes, :final_file, :decided_by, :decided_at)",
                response.to_dict(),
            )
            entry = AuditStore.append_in(
                conn,
                AuditEntry(
                    queue_key=proposal.queue_key,
                    action=status,
                    actor=decided_by,
                    tool=proposal.tool,
                    proposal_id=proposal_id,
                    notes=notes,
                    diff=diff,
                    details=details,
                ),
                database=self.db.path,
                ts=response.decided_at,
            )
        AuditStore.anchor(self.db.path, entry)
        return response, entry

    def for_bottle(self, queue_key: str, *, quota: Quota | None = DEFAULT_QUOTA) -> BottleQueue:
        """A handle that files (within ``quota``), reads, waits on and archives only ``queue_key``'s proposals."""
        return BottleQueue(self, validate_queue_key(queue_key), quota=quota)


def _check_bottle(proposal_id: str, owner: str | None, queue_key: str) -> None:
    """``NotFound`` unless the proposal (owned by ``owner``, ``None`` when there is none) is ``queue_key``'s.

    One message whether the id exists in another bottle or nowhere: a
    bottle learns nothing of the others' ids from it.
    """
    if owner != queue_key:
        raise NotFound(f"no proposal {proposal_id} in bottle {queue_key}")


def _decided_on(proposal: Proposal) -> dict[str, Any]:
    """What a decision is about: every field of the proposal but its archiving."""
    return {**proposal.to_dict(), "archived_at": None}


class BottleQueue:
    """One bottle's view of the queue: what a sidecar needs and nothing wider.

    Ids of other bottles' proposals are answered as unknown (``NotFound``), so
    a sidecar can neither read, wait on nor archive them, nor learn that they exist.
    """

    def __init__(self, store: QueueStore, queue_key: str, *, quota: Quota | None = DEFAULT_QUOTA) -> None:
        self._store = store
        self._queue_key = queue_key
        self._quota = quota

    @property
    def queue_key(self) -> str:
        """The bottle slug this handle is bound to."""
        return self._queue_key

    def submit(
        self,
        tool: str,
        payload: str,
        justification: str,
        current_file: str | None = None,
        current_file_hash: str | None = None,
    ) -> Proposal:
        """File a proposal for this bottle within its quota (see ``QueueStore.submit``)."""
        return self._store.submit(self._queue_key, tool, payload, justification, current_file, current_file_hash,
                                  quota=self._quota)

    def get(self, proposal_id: str) -> Proposal:
        """This bottle's proposal with that id; ``NotFound`` for any other, worded as for an id nobody has."""
        try:
            proposal: Proposal | None = self._store.get(proposal_id)
        except NotFound:
            proposal = None
        _check_bottle(proposal_id, proposal.queue_key if proposal is not None else None, self._queue_key)
        assert proposal is not None
        return proposal

    def response(self, proposal_id: str) -> Response | None:
        """The decision on this bottle's proposal, or ``None`` while pending."""
        validate_proposal_id(proposal_id)
        return self._store._decision_of(proposal_id, self._queue_key)

    def wait_for_response(
        self, proposal_id: str, timeout: float, poll_interval: float = DEFAULT_POLL_INTERVAL_SEC
    ) -> Response | None:
        """Wait for the decision on this bottle's proposal (see ``QueueStore.wait_for_response``)."""
        validate_proposal_id(proposal_id)
        timeout, poll_interval = _check_wait(timeout, poll_interval)
        return self._store._wait(proposal_id, timeout, poll_interval, self._queue_key)

    def archive(self, proposal_id: str) -> Proposal:
        """Archive this bottle's decided proposal (see ``QueueStore.archive``)."""
        validate_proposal_id(proposal_id)
        return self._store._archive(proposal_id, self._queue_key)

    def heartbeat(self) -> None:
        """Say this bottle's sidecar is alive: the bottle is running and ``last_seen`` is now.

        The sidecar calls it every ``bottles.HEARTBEAT_INTERVAL_SEC``; a
        running bottle not seen for ``bottles.STALE_AFTER_SEC`` shows as stale.
        """
        with self._store.db.write() as conn:
            heartbeat_in(conn, self._queue_key)

    def stopped(self) -> None:
        """Say this bottle's sidecar stopped (it exits cleanly); a bottle never recorded is left unrecorded."""
        with self._store.db.write() as conn:
            stopped_in(conn, self._queue_key)
