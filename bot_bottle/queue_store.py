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

import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bot_bottle.audit_store import AuditRecorder, AuditStore
from bot_bottle.bottles import heartbeat_in, stopped_in
from bot_bottle.db import Database
from bot_bottle.db.later import LaterWrites
from bot_bottle.errors import (
    NotFound,
    StillPending,
    ValidationError,
)
from bot_bottle.file_watch import FileWatch, WatchPool
from bot_bottle.grant_records import Grant
from bot_bottle.grants import live_grants_in, pending_ttl_in
from bot_bottle.policy.routes import parse_route
from bot_bottle.queue_reads import PROPOSAL_COLUMNS, QueueReads, check_bottle, check_quota
from bot_bottle.records import (
    DEFAULT_POLL_INTERVAL_SEC,
    DEFAULT_QUOTA,
    MAX_FILE_BYTES,
    MAX_PAYLOAD_BYTES,
    MAX_TEXT_BYTES,
    TOOL_EGRESS_ALLOW,
    Proposal,
    Quota,
    Response,
    sha256_text,
    validate_bottle_slug,
    validate_optional_text,
    validate_proposal_id,
    validate_sha256,
    validate_text,
    validate_tool,
)
from bot_bottle.timestamps import later, utc_now

# What a host process runs in a filing transaction on a new proposal (see ``QueueStore.submit``).
Standing = Callable[[AuditRecorder, Proposal], object]


# A sidecar's archive (a row nobody waits on) rides on its store's next write, or is written this long after.
ARCHIVE_WRITE_DELAY_SEC = 0.2
_ARCHIVE = "UPDATE proposals SET archived_at = :at WHERE id = :id AND archived_at IS NULL"


def _check_wait(timeout: object, poll_interval: object) -> tuple[float, float]:
    for name, value in (("timeout", timeout), ("poll_interval", poll_interval)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value or value < 0:
            raise ValidationError(name, "must be a number of seconds, 0 or more")
    if poll_interval == 0:
        raise ValidationError("poll_interval", "must be more than 0 seconds")
    return float(timeout), float(poll_interval)  # type: ignore[arg-type]


class QueueStore(QueueReads):
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
        self._watches = WatchPool(self.db.path, opener=FileWatch.decisions)
        # The archives BottleQueue.archive took, until a write carries them (``_archive_later``).
        self._archives = LaterWrites(self.db, _ARCHIVE, ARCHIVE_WRITE_DELAY_SEC, key="id")

    def close(self) -> None:
        """Write the archives no write carried yet, then close the store's watches and its connection (unless
        it was handed a ``Database`` to share)."""
        try:
            self._archives.flush()
        finally:
            self._watches.close()
            super().close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (``db.write``) that writes the archives left unwritten first."""
        with self._archives.carried() as conn:
            yield conn

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
        standing: Standing | None = None,
    ) -> Proposal:
        """File a proposal, or return the identical unarchived one already filed while its answer stands.

        The one already filed is returned while it waits for the operator (and
        has not expired), or once decided while that decision still stands: a
        rejection, or an approval whose grant is in force. An approval whose
        grant was revoked or has ended is no answer to a new filing: a new
        proposal asks the operator again.

        Every field is validated first (``ValidationError`` names the field and
        nothing is written); an ``egress-allow`` payload must be the JSON route
        the operator will be asked about (``policy.routes.parse_route``), not
        text only a screen's warning could describe. When ``current_file`` is
        given its sha256 is recorded; a ``current_file_hash`` given with it
        must match. A new proposal that would take the bottle past ``quota``
        (``None``: no limit) is refused with ``QuotaExceeded``; the count and the insert
        share one write transaction, so concurrent submitters cannot overshoot.
        A new proposal expires after the host's ``pending-ttl``. ``standing``
        (host processes only: it needs the audit key) runs in the filing
        transaction on a new proposal, so a standing rule decides it there
        (``standing.rule_decision_in``); the returned proposal is as filed.
        """
        validate_bottle_slug(queue_key, "queue_key")
        validate_tool(tool)
        validate_text("payload", payload, max_bytes=MAX_PAYLOAD_BYTES, required=True)
        if tool == TOOL_EGRESS_ALLOW:
            try:
                parse_route(payload)
            except ValidationError as exc:
                raise ValidationError("payload", str(exc).removeprefix("final_file: ")) from None
        validate_text("justification", justification, max_bytes=MAX_TEXT_BYTES, required=True)
        validate_optional_text("current_file", current_file, max_bytes=MAX_FILE_BYTES)
        validate_sha256("current_file_hash", current_file_hash)
        if current_file is not None:
            actual = sha256_text(current_file)
            if current_file_hash is not None and current_file_hash != actual:
                raise ValidationError("current_file_hash", "does not match the sha256 of current_file")
            current_file_hash = actual
        payload_sha256 = sha256_text(payload)
        fields = {"queue_key": queue_key, "tool": tool, "payload": payload, "justification": justification,
                  "current_file": current_file, "current_file_hash": current_file_hash, "sha": payload_sha256}
        if standing is None:
            with self._write() as conn:
                return self._file_in(conn, fields, quota)[0]
        with self._archives.riding(AuditStore.recording(self.db), lambda recorder: recorder.conn) as log:
            proposal, new = self._file_in(log.conn, fields, quota)
            if new:
                standing(log, proposal)
        return proposal

    def _file_in(self, conn: sqlite3.Connection, fields: dict[str, Any], quota: Quota | None) -> tuple[Proposal, bool]:
        """The proposal filed (True) or found (False) inside the caller's write transaction."""
        now = utc_now()
        existing = self.still_answering_in(conn, fields["queue_key"], fields["tool"], fields["payload"],
                                           fields["sha"], now)
        if existing is not None:
            return existing, False
        if quota is not None:
            size = sum(len(text.encode("utf-8"))
                       for text in (fields["payload"], fields["justification"], fields["current_file"] or ""))
            check_quota(conn, fields["queue_key"], size, quota, now)
        proposal = Proposal(
            id=secrets.token_hex(16),
            queue_key=fields["queue_key"],
            tool=fields["tool"],
            payload=fields["payload"],
            justification=fields["justification"],
            current_file=fields["current_file"],
            current_file_hash=fields["current_file_hash"],
            created_at=now,
            expires_at=later(now, pending_ttl_in(conn)),
        )
        conn.execute(
            "INSERT INTO proposals (id, queue_key, tool, payload, payload_sha256, justification, current_file, "
            "current_file_hash, created_at, expires_at) VALUES (:id, :queue_key, :tool, :payload, :payload_sha256, "
            ":justification, :current_file, :current_file_hash, :created_at, :expires_at)",
            {**proposal.to_dict(), "payload_sha256": fields["sha"]},
        )
        return proposal, True

    # Waiting -----------------------------------------------------------------

    def wait_for_response(
        self, proposal_id: str, timeout: float, poll_interval: float = DEFAULT_POLL_INTERVAL_SEC
    ) -> Response | None:
        """Block until the proposal has a response, or ``timeout`` seconds pass (then ``None``).

        Sleeps on a watch of the database's decisions (``FileWatch.decisions``:
        inotify, where there is one), borrowed from the store's pool, and
        looks as soon as a commit that recorded a decision has ended (not at
        other bottles' filings and archives), and in any case every
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

    def _wait(self, proposal_id: str, timeout: float, poll_interval: float, queue_key: str | None,
              cancelled: threading.Event | None = None) -> Response | None:
        """``wait_for_response``; with ``queue_key``, the first look also checks the proposal is that bottle's;
        a ``cancelled`` event that is set ends the wait (``None``) at its next look."""
        deadline = time.monotonic() + timeout
        owner = queue_key
        with self._watches.watch() as watch:
            while True:
                found = self._decision_of(proposal_id, owner)
                owner = None  # checked once: a proposal never changes bottles
                if found is not None:
                    return found
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (cancelled is not None and cancelled.is_set()):
                    return None
                if watch is not None:
                    watch.wait(min(poll_interval, remaining))
                else:
                    time.sleep(min(poll_interval, remaining))

    # Changing ----------------------------------------------------------------

    def archive(self, proposal_id: str) -> Proposal:
        """Archive a decided proposal (idempotent); it leaves ``pending`` and the dedupe rule.

        Raises ``StillPending`` for a proposal without a decision: the operator
        must see it first. Written at once, in a transaction of its own (a
        sidecar's ``BottleQueue.archive`` rides on its next write instead).
        """
        validate_proposal_id(proposal_id)
        with self._write() as conn:
            proposal = self._archivable_in(conn, proposal_id, None)
            if proposal.archived_at is not None:
                return proposal
            archived_at = utc_now()
            conn.execute(_ARCHIVE, {"id": proposal_id, "at": archived_at})  # a trigger's refusal is raised, not dropped
        return Proposal(**{**proposal.to_dict(), "archived_at": archived_at})

    def _archive_later(self, proposal_id: str, queue_key: str) -> Proposal:
        """``queue_key``'s decided proposal, archived now, its row written by this store's next write.

        The checks are ``archive``'s, read without the write lock: ``NotFound``
        (nothing kept) unless the proposal is that bottle's, ``StillPending``
        without a decision. The row's ``archived_at`` is set by the next write
        transaction of this store (``_write``: a filing, a heartbeat, a stop),
        before anything else that write does, so the bottle's next filing of
        the same request asks afresh, as after an archive of its own; else
        ``ARCHIVE_WRITE_DELAY_SEC`` later, or by ``close`` (``db.later``). A
        cycle's third commit, with its sync, was a fifth of the write lock's
        time (docs/benchmarks.md, "The archive rides on the next write"). A
        process killed first leaves the proposal decided and not archived, as
        one killed between reading its decision and archiving always could.
        """
        # Kept while the check's read holds the connection, as the archive's own transaction did: a write of
        # another thread of this process then either runs before both or carries the row.
        with self.db.read() as conn:
            proposal = self._archivable_in(conn, proposal_id, queue_key)
            if proposal.archived_at is not None:
                return proposal
            archived_at = str(self._archives.add({"id": proposal_id, "at": utc_now()})["at"])
        return Proposal(**{**proposal.to_dict(), "archived_at": archived_at})

    def _archivable_in(self, conn: sqlite3.Connection, proposal_id: str, queue_key: str | None) -> Proposal:
        """The proposal to archive, if it may be: ``NotFound`` unless it is ``queue_key``'s (when given),
        ``StillPending`` while it has no decision."""
        if queue_key is None:
            proposal = self.get_in(conn, proposal_id)
        else:
            row = conn.execute(
                f"SELECT {PROPOSAL_COLUMNS} FROM proposals p WHERE p.id = :id", {"id": proposal_id}
            ).fetchone()
            check_bottle(proposal_id, None if row is None else str(row[1]), queue_key)
            proposal = self.proposal_from_row(row)
        if proposal.archived_at is None and self.response_in(conn, proposal_id) is None:
            raise StillPending(f"proposal {proposal.short_id} has no decision yet; only decided proposals are archived")
        return proposal

    def unwritten_archive(self, proposal_id: str) -> str | None:
        """When a bottle archived this proposal, if no write has recorded it yet (else None)."""
        kept = self._archives.kept(proposal_id)
        return None if kept is None else str(kept["at"])

    def for_bottle(self, queue_key: str, *, quota: Quota | None = DEFAULT_QUOTA,
                   standing: Standing | None = None) -> BottleQueue:
        """A handle that files (within ``quota``), reads, waits on and archives only ``queue_key``'s proposals.

        ``standing`` is for a host process that files for the bottle (the
        relay): it runs in each filing transaction (see ``submit``).
        """
        return BottleQueue(self, validate_bottle_slug(queue_key, "queue_key"), quota=quota, standing=standing)


class BottleQueue:
    """One bottle's view of the queue: what a sidecar needs and nothing wider.

    Ids of other bottles' proposals are answered as unknown (``NotFound``), so
    a sidecar can neither read, wait on nor archive them, nor learn that they exist.
    """

    def __init__(self, store: QueueStore, queue_key: str, *, quota: Quota | None = DEFAULT_QUOTA,
                 standing: Standing | None = None) -> None:
        self._store = store
        self._queue_key = queue_key
        self._quota = quota
        self._standing = standing

    @property
    def queue_key(self) -> str:
        """The bottle slug this handle is bound to."""
        return self._queue_key

    @property
    def database_path(self) -> Path:
        """The database file this handle files into."""
        return self._store.db.path

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
                                  quota=self._quota, standing=self._standing)

    def get(self, proposal_id: str) -> Proposal:
        """This bottle's proposal with that id; ``NotFound`` for any other, worded as for an id nobody has.

        One this handle's store archived shows its ``archived_at`` before the write that records it.
        """
        try:
            proposal: Proposal | None = self._store.get(proposal_id)
        except NotFound:
            proposal = None
        check_bottle(proposal_id, proposal.queue_key if proposal is not None else None, self._queue_key)
        assert proposal is not None
        archived_at = self._store.unwritten_archive(proposal_id) if proposal.archived_at is None else None
        return proposal if archived_at is None else Proposal(**{**proposal.to_dict(), "archived_at": archived_at})

    def response(self, proposal_id: str) -> Response | None:
        """The decision on this bottle's proposal, or ``None`` while pending."""
        validate_proposal_id(proposal_id)
        return self._store._decision_of(proposal_id, self._queue_key)

    def wait_for_response(
        self, proposal_id: str, timeout: float, poll_interval: float = DEFAULT_POLL_INTERVAL_SEC, *,
        cancelled: threading.Event | None = None,
    ) -> Response | None:
        """Wait for the decision on this bottle's proposal (see ``QueueStore.wait_for_response``).

        ``cancelled``, when set, ends the wait early with ``None`` (the relay
        sets it when the bottle's credential is revoked).
        """
        validate_proposal_id(proposal_id)
        timeout, poll_interval = _check_wait(timeout, poll_interval)
        return self._store._wait(proposal_id, timeout, poll_interval, self._queue_key, cancelled)

    def archive(self, proposal_id: str) -> Proposal:
        """Archive this bottle's decided proposal; its row is written by the store's next write
        (``QueueStore._archive_later``), and the returned proposal says when it was archived."""
        validate_proposal_id(proposal_id)
        return self._store._archive_later(proposal_id, self._queue_key)

    def live_grants(self, tool: str) -> list[Grant]:
        """This bottle's grants of ``tool`` in force now: what its sidecar may let through without asking."""
        validate_tool(tool)
        with self._store.db.read() as conn:
            return live_grants_in(conn, self._queue_key, tool, utc_now())

    def heartbeat(self) -> None:
        """Say this bottle's sidecar is alive: the bottle is running and ``last_seen`` is now.

        The sidecar calls it every ``bottles.HEARTBEAT_INTERVAL_SEC``; a
        running bottle not seen for ``bottles.STALE_AFTER_SEC`` shows as stale.
        """
        with self._store._write() as conn:
            heartbeat_in(conn, self._queue_key)

    def stopped(self) -> None:
        """Say this bottle's sidecar stopped (it exits cleanly); a bottle never recorded is left unrecorded."""
        with self._store._write() as conn:
            stopped_in(conn, self._queue_key)
