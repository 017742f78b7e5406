"""The audit log's write path and its queries: entries appended, sealed and anchored; read back and exported.

The log is append-only (the schema refuses UPDATE and DELETE) and
hash-chained (``audit.chain``); each entry is also *sealed*, an HMAC with
the host's key chained like the hashes (``audit.seal``), and the newest seal
is kept outside the database as the anchor (``audit.anchor``). Entries are
appended only inside ``AuditStore.recording``: one write transaction, in
which the caller may write its own rows too (a decision and its entry commit
together), after which the anchor moves. An append refuses to add to a log
that shows a change made without the key (``AuditTampered``).

Proving the log (``verify``), setting aside what a sidecar appended
(``set_aside``) and proving one decision (``decision_problem``) are the
forensic side, ``audit.forensics``; this store calls them on its database.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bot_bottle.audit import forensics
from bot_bottle.audit.anchor import Anchor, advance_anchor, read_anchor
from bot_bottle.audit.chain import COLUMNS, GENESIS_HASH, SELECT, compute_hash, stored_details
from bot_bottle.audit.forensics import REFUSED, VerifyResult, anchored_seq, truncated
from bot_bottle.audit.keys import host_key
from bot_bottle.audit.seal import GENESIS_SEAL, key_id, seal_of
from bot_bottle.audit.walk import last_seq, walk
from bot_bottle.connection import signal_decision
from bot_bottle.db import Database, DatabaseUser, validate_limit
from bot_bottle.errors import AnchorNotWritten, AuditTampered
from bot_bottle.records import (
    MAX_NAME_BYTES,
    AuditEntry,
    Response,
    validate_queue_key,
    validate_text,
    validated_details,
)
from bot_bottle.timestamps import parse_timestamp, utc_now

DEFAULT_LIST_LIMIT = 50


@dataclass
class AuditRecorder:
    """Appends entries to the audit log inside one open write transaction (see ``AuditStore.recording``).

    ``conn`` is that transaction's connection, for the caller's own rows.
    """

    conn: sqlite3.Connection
    database: Path | None
    last: AuditEntry | None = None
    key: str = ""  # the name (key_id) of the key that sealed ``last``
    _sealing: bytes | None = None  # that key, once this transaction appended an entry
    first: int | None = None  # the number of the first entry this transaction appended

    def append(self, entry: AuditEntry, *, ts: str | None = None) -> AuditEntry:
        """Append and seal ``entry`` (at ``ts``, default now); returns it as stored.

        The first entry of the transaction is appended after the log, its
        seals and its anchor are checked (``AuditStore._append_in``); the
        next ones follow it: this transaction holds the write lock, so the
        entry it just wrote is still the newest (several decisions in one
        commit, ``decisions.record_decisions``).
        """
        after = None if self.last is None or self._sealing is None else (self.last, self._sealing)
        self.last, self.key, self._sealing = AuditStore._append_in(self.conn, entry, database=self.database, ts=ts,
                                                                   after=after)
        if self.first is None:
            self.first = self.last.seq
        return self.last


class AuditStore(DatabaseUser):
    """The audit log of the host database (``db_path=None``) or of the database at ``db_path``."""

    @staticmethod
    @contextmanager
    def recording(db: Database) -> Iterator[AuditRecorder]:
        """One write transaction on ``db`` that appends audit entries; the anchor moves once it committed.

        The only way entries are appended: the caller cannot forget the
        anchor, nor to wake the waiters for a decision
        (``connection.signal_decision``), and an anchor is never ahead of the
        log (nothing moves it when the transaction rolls back). An anchor that cannot be written
        then (a full disk) raises ``AnchorNotWritten``: what was recorded
        stands, and the message says so.
        """
        with db.write() as conn:
            recorder = AuditRecorder(conn, db.path)
            yield recorder
        entry = recorder.last
        if db.path is None or entry is None:
            return
        signal_decision(db.path)  # waiters for a decision look now, before the anchor's sync
        if entry.seq is not None and entry.seal is not None:
            try:
                advance_anchor(db.path, entry.seq, entry.seal, recorder.key)
            except (OSError, AuditTampered) as exc:
                reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
                one = recorder.first in (None, entry.seq)
                recorded = f"audit entry {entry.seq} is recorded and stands" if one else \
                    f"audit entries {recorder.first}-{entry.seq} are recorded and stand"
                raise AnchorNotWritten(
                    f"{recorded}, but the audit anchor could not be moved to {'it' if one else 'the last'} "
                    f"({reason}): the anchor stays behind, which proves less but accuses nothing; the next "
                    "decision moves it once that is fixed ('bot-bottle audit verify' checks the log meanwhile)",
                    entry,
                ) from None

    @staticmethod
    def from_row(row: tuple[Any, ...]) -> AuditEntry:
        """Map an ``audit_log`` row (``_COLUMNS`` order, then the seal) to an ``AuditEntry``."""
        seq, ts, queue_key, action, tool, proposal_id, actor, notes, diff, details, prev_hash, digest, seal = row
        # Any text a sidecar wrote there reads back as something to show, never as an exception.
        readable = stored_details(details)
        return AuditEntry(
            queue_key=queue_key, action=action, actor=actor, tool=tool, proposal_id=proposal_id, notes=notes,
            diff=diff, details=readable if readable is not None else {"unreadable": str(details)[:200]}, seq=seq, ts=ts,
            prev_hash=prev_hash, hash=digest, seal=seal,
        )

    @classmethod
    def _append_in(
        cls, conn: sqlite3.Connection, entry: AuditEntry, *, database: Path | None, ts: str | None = None,
        after: tuple[AuditEntry, bytes] | None = None,
    ) -> tuple[AuditEntry, str, bytes]:
        """Append and seal ``entry`` inside the caller's open write transaction; it as stored, the key's name and
        the key.

        Only ``AuditRecorder.append`` calls this, inside ``recording``, which
        moves the anchor once the transaction has committed. ``database`` is
        the file whose anchor applies (None: no anchor, an in-memory
        database). Entries not sealed yet are sealed first, if their chain
        verifies and the anchor allows; otherwise ``AuditTampered`` and
        nothing is written. Without the key that sealed the log
        (``AuditKeyError``), nothing is written either. ``after``: the entry
        this same transaction appended last, and its key; the new one
        follows it, with no second look at what the first one checked.
        """
        details_json = validated_details(entry)
        if after is not None:
            (previous, key), previous_seal = after, str(after[0].seal)
            seq, prev_hash = int(previous.seq or 0) + 1, str(previous.hash)
            last = conn.execute("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
            if last is None or (last[0], last[1]) != (previous.seq, previous.hash):
                # Only a trigger that is not the host's writes to the log inside the host's own transaction.
                raise AuditTampered("the audit log changed inside the host's own transaction, after its entry "
                                    f"{previous.seq}: a trigger bot-bottle never made wrote to it" + REFUSED)
        else:
            anchor = read_anchor(database) if database is not None else None
            key = host_key(conn, anchor)
            previous_seal = cls._seal_pending(conn, key, anchor, database)
            last = conn.execute("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
            if last is not None and not isinstance(last[0], int):  # text sorts after every number
                raise AuditTampered(f"the audit log has an entry numbered {str(last[0])[:40]!r}: its table was "
                                    "rebuilt without the host" + REFUSED)
            seq, prev_hash = (1, GENESIS_HASH) if last is None else (last[0] + 1, str(last[1]))
        when = ts or utc_now()
        digest = compute_hash(
            seq, when, entry.queue_key, entry.action, entry.tool, entry.proposal_id,
            entry.actor, entry.notes, entry.diff, details_json, prev_hash,
        )
        conn.execute(
            f"INSERT INTO audit_log ({COLUMNS}) VALUES (:seq, :ts, :queue_key, :action, :tool, "
            ":proposal_id, :actor, :notes, :diff, :details, :prev_hash, :hash)",
            {
                "seq": seq, "ts": when, "queue_key": entry.queue_key, "action": entry.action,
                "tool": entry.tool, "proposal_id": entry.proposal_id, "actor": entry.actor,
                "notes": entry.notes, "diff": entry.diff, "details": details_json,
                "prev_hash": prev_hash, "hash": digest,
            },
        )
        seal = seal_of(key, seq, previous_seal, digest)
        conn.execute("INSERT INTO audit_seal (seq, mac) VALUES (:seq, :mac)", {"seq": seq, "mac": seal})
        stored = replace(entry, seq=seq, ts=when, prev_hash=prev_hash, hash=digest, seal=seal,
                         details=json.loads(details_json))
        return stored, key_id(key), key

    @classmethod
    def _seal_pending(cls, conn: sqlite3.Connection, key: bytes, anchor: Anchor | None,
                      database: Path | None) -> str:
        """Seal entries that have no seal yet, where that is safe; the newest seal.

        Safe means: their sha256 chain verifies, every existing seal matches,
        and, when the database has an anchor, the recomputed seal at the
        anchor's entry is the anchor's. An unsealed entry past the anchor was
        written without the host (every host append seals in its own
        transaction): ``AuditTampered``; so is any unsealed entry of a log
        the host saw begin (``forensics.sealing_began``): only a log from
        before sealing began is sealed here.
        """
        last_entry = last_seq(conn)
        sealed = conn.execute("SELECT seq, mac FROM audit_seal ORDER BY seq DESC LIMIT 1").fetchone()
        sealed_seq, newest = (0, GENESIS_SEAL) if sealed is None else (int(sealed[0]), str(sealed[1]))
        if anchor is not None and last_entry < anchor.seq:
            raise AuditTampered(truncated(anchor, last_entry) + REFUSED)
        if sealed_seq > last_entry:
            raise AuditTampered(f"the audit log has seals past its last entry {last_entry}: entries were removed"
                                + REFUSED)
        if sealed_seq == last_entry:
            cls._check_newest(conn, key, anchor, last_entry, newest)
            return newest
        # Past the anchor, or past a seal when there is no anchor (retired, or never written), or anywhere in a
        # log the host saw empty, an entry without a seal was written without the host: every host append seals
        # in its own transaction, and a downgrade drops all the seals, never the newest ones alone.
        proven = max(anchored_seq(anchor) or 0, sealed_seq)
        if last_entry > proven and forensics.sealing_began(anchor, sealed_seq, database):
            raise AuditTampered(f"audit entries {proven + 1}-{last_entry} have no seal: they "
                                "were written without the host's key" + REFUSED)
        walked = walk(conn, key, anchor, keep_after=sealed_seq)
        if walked.problem is not None:
            raise AuditTampered(walked.problem[1] + REFUSED)
        seals = walked.seals
        for seq in range(sealed_seq + 1, last_entry + 1):
            conn.execute("INSERT INTO audit_seal (seq, mac) VALUES (:seq, :mac)", {"seq": seq, "mac": seals[seq]})
        return seals[last_entry] if last_entry else GENESIS_SEAL

    @classmethod
    def _check_newest(cls, conn: sqlite3.Connection, key: bytes, anchor: Anchor | None, seq: int, seal: str) -> None:
        """Refuse to seal on top of a newest entry whose hash or seal the host did not make (one entry: cheap).

        A sidecar cannot compute a seal, but it can append an entry with a
        made-up one; the host's next seal would chain onto it. Such entries
        are moved out by ``set_aside`` (``audit set-aside``).
        """
        if seq == 0 or (anchor is not None and seq <= anchor.seq):
            # Anchored: the host wrote this seal. A change to the entry is for verify to report (it
            # recomputes every seal from the key); refusing here would only stop every decision.
            return
        row = conn.execute(f"{SELECT} WHERE seq = :seq", {"seq": seq}).fetchone()
        before = conn.execute("SELECT mac FROM audit_seal WHERE seq = :seq", {"seq": seq - 1}).fetchone()
        previous = GENESIS_SEAL if seq == 1 else (str(before[0]) if before is not None else None)
        _, ts, queue_key, action, tool, proposal_id, actor, notes, diff, details, link, digest, _ = row
        recomputed = compute_hash(seq, ts, queue_key, action, tool, proposal_id, actor, notes, diff, details, link)
        if (recomputed != digest or previous is None or seal_of(key, seq, previous, digest) != seal
                or (anchor is not None and anchor.seq == seq and anchor.seal != seal)):
            raise AuditTampered(f"the newest audit entry {seq} does not match its seal: it was written or "
                                "rewritten without the host's key" + REFUSED)

    def append(self, entry: AuditEntry) -> AuditEntry:
        """Append ``entry`` in its own transaction; assigns its sequence, timestamp, hashes and seal."""
        with self.recording(self.db) as log:
            return log.append(entry)

    def entries(
        self,
        queue_key: str | None = None,
        since: str | None = None,
        until: str | None = None,
        tool: str | None = None,
        limit: int | None = DEFAULT_LIST_LIMIT,
    ) -> list[AuditEntry]:
        """Entries matching every given filter, newest first, at most ``limit`` (None: all).

        ``since`` and ``until`` are ISO 8601 dates or times (UTC when no zone
        is given); ``since`` is inclusive, ``until`` exclusive.
        """
        clauses, params = self._filters(queue_key, since, until, tool)
        validate_limit(limit)
        sql = f"{SELECT}{clauses} ORDER BY seq DESC"
        if limit is not None:
            sql += " LIMIT :limit"
            params["limit"] = limit
        with self.db.read() as conn:
            return [self.from_row(row) for row in conn.execute(sql, params)]

    def of_action_since(self, action: str, since: str, queue_key: str | None = None,
                        limit: int = DEFAULT_LIST_LIMIT) -> list[AuditEntry]:
        """The entries of ``action`` (of one bottle, or all) from ``since`` (a stored time) on, newest first, at most
        ``limit``: read through the log's time index, so a million older entries are never walked."""
        validate_limit(limit)
        params: dict[str, Any] = {"action": action, "since": since, "limit": limit}
        where = "ts >= :since AND action = :action"
        if queue_key is not None:
            params["queue_key"] = validate_queue_key(queue_key, "bottle")
            where += " AND queue_key = :queue_key"
        with self.db.read() as conn:
            return [self.from_row(row) for row in conn.execute(
                f"{SELECT} WHERE {where} ORDER BY ts DESC LIMIT :limit", params)]

    @staticmethod
    def _filters(
        queue_key: str | None, since: str | None, until: str | None, tool: str | None
    ) -> tuple[str, dict[str, Any]]:
        conditions: list[str] = []
        params: dict[str, Any] = {}
        if queue_key is not None:
            params["queue_key"] = validate_queue_key(queue_key, "bottle")
            conditions.append("queue_key = :queue_key")
        if since is not None:
            params["since"] = parse_timestamp("since", since)
            conditions.append("ts >= :since")
        if until is not None:
            params["until"] = parse_timestamp("until", until)
            conditions.append("ts < :until")
        if tool is not None:
            params["tool"] = validate_text("tool", tool, max_bytes=MAX_NAME_BYTES, required=True)
            conditions.append("tool = :tool")
        return (" WHERE " + " AND ".join(conditions) if conditions else ""), params

    def export(self, batch: int = 1000) -> Iterator[AuditEntry]:
        """Every entry, oldest first, read in batches so the log need not fit in memory."""
        after = 0
        while True:
            with self.db.read() as conn:
                rows = self._batch(conn, after, batch)
            if not rows:
                return
            yield from rows
            after = int(rows[-1].seq or 0)

    @classmethod
    def _batch(cls, conn: sqlite3.Connection, after: int, batch: int) -> list[AuditEntry]:
        rows = conn.execute(
            f"{SELECT} WHERE seq > :after ORDER BY seq LIMIT :batch",
            {"after": after, "batch": batch},
        ).fetchall()
        return [cls.from_row(row) for row in rows]

    @classmethod
    def export_lines(cls, conn: sqlite3.Connection, batch: int = 1000, after: int = 0) -> Iterator[str]:
        """Every entry on ``conn`` (past ``after``) as a JSON line (the ``audit export`` form), oldest first.

        Reads on the caller's connection, so a downgrade can write the log out
        inside the very transaction that drops it.
        """
        while True:
            rows = cls._batch(conn, after, batch)
            if not rows:
                return
            for entry in rows:
                yield json.dumps(entry.to_dict(), ensure_ascii=False) + "\n"
            after = int(rows[-1].seq or 0)

    def count(self) -> int:
        """How many entries the log holds."""
        with self.db.read() as conn:
            return int(conn.execute("SELECT count(*) FROM audit_log").fetchone()[0])

    def verify(self, batch: int = 10_000, progress: Callable[[int, int], None] | None = None) -> VerifyResult:
        """Check the whole log; report the first thing found wrong (``forensics.verify``)."""
        return forensics.verify(self.db, batch, progress)

    def set_aside(self, export: Callable[[sqlite3.Connection, int], int]) -> forensics.SetAside:
        """Move the entries past what the host can prove out of the log (``forensics.set_aside``)."""
        return forensics.set_aside(self.db, export)

    def anchor_problem(self) -> str | None:
        """Why this log does not reach the host's anchor (an older copy of the database put in its place, or
        entries removed from its end), or None: one look (``forensics.anchor_problem``), for the screens."""
        anchor = read_anchor(self.db.path)  # before the log: a decision moves it only once its entry committed
        with self.db.read() as conn:
            return forensics.anchor_problem(conn, anchor)

    def decision_problem(self, response: Response) -> str | None:
        """Why ``response`` is not proven by this host's audit log, or None (``forensics.decision_problem``)."""
        return forensics.decision_problem(self.db, response)

    def head(self) -> dict[str, Any]:
        """The newest entry's sequence, hash and seal, and the anchor: what to keep elsewhere."""
        with self.db.read() as conn:
            row = conn.execute(
                "SELECT seq, hash, s.mac FROM audit_log LEFT JOIN audit_seal s USING (seq) ORDER BY seq DESC LIMIT 1"
            ).fetchone()
        anchor = read_anchor(self.db.path)
        return {
            "database": str(self.db.path.resolve()),
            "seq": row[0] if row else 0,
            "hash": row[1] if row else GENESIS_HASH,
            "seal": row[2] if row else None,
            "anchor": anchor.to_dict() if anchor else None,
        }

    def has_head(self, seq: int, seal: str) -> bool:
        """True when entry ``seq`` is still in the log with exactly that seal (a head kept elsewhere)."""
        with self.db.read() as conn:
            row = conn.execute("SELECT mac FROM audit_seal WHERE seq = :seq", {"seq": seq}).fetchone()
        return row is not None and row[0] == seal
