"""The audit log: an append-only, hash-chained record of every decision and operator edit.

Each entry's ``hash`` is the sha256 of its fields, including ``prev_hash``,
the hash of the entry before it (64 zeros for the first). The schema refuses
UPDATE and DELETE and checks each new entry's sequence number and link;
``AuditStore.verify`` recomputes every hash, so an entry changed or removed
behind the triggers' back is found, and it cross-checks that every decision
in ``responses`` has its entry (a removed last entry leaves no broken link).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

from bot_bottle.db import DatabaseUser
from bot_bottle.errors import ValidationError
from bot_bottle.records import (
    AUDIT_ACTIONS,
    MAX_NAME_BYTES,
    MAX_PAYLOAD_BYTES,
    MAX_TEXT_BYTES,
    AuditEntry,
    parse_timestamp,
    utc_now,
    validate_optional_text,
    validate_proposal_id,
    validate_queue_key,
    validate_text,
)

GENESIS_HASH = "0" * 64
DEFAULT_LIST_LIMIT = 50
# A diff of two files of up to 1 MiB each can exceed either file.
MAX_DIFF_BYTES = 4 * MAX_PAYLOAD_BYTES
_COLUMNS = "seq, ts, queue_key, action, tool, proposal_id, actor, notes, diff, details, prev_hash, hash"


@dataclass(frozen=True)
class VerifyResult:
    """The outcome of ``AuditStore.verify``: whole, or the first entry found wrong."""

    ok: bool
    count: int
    bad_seq: int | None = None
    problem: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"ok": self.ok, "count": self.count, "bad_seq": self.bad_seq, "problem": self.problem}


def _canonical(details: dict[str, Any]) -> str:
    return json.dumps(details, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


class AuditStore(DatabaseUser):
    """The audit log of the host database (``db_path=None``) or of the database at ``db_path``."""

    @staticmethod
    def compute_hash(
        seq: int, ts: str, queue_key: str, action: str, tool: str | None, proposal_id: str | None,
        actor: str, notes: str, diff: str, details_json: str, prev_hash: str,
    ) -> str:
        """The sha256 that chains an entry: over every field, ``details`` as its stored JSON text."""
        material = json.dumps(
            [seq, ts, queue_key, action, tool, proposal_id, actor, notes, diff, details_json, prev_hash],
            separators=(",", ":"),
            ensure_ascii=False,
        )
        return hashlib.sha256(material.encode("utf-8")).hexdigest()

    @staticmethod
    def validate(entry: AuditEntry) -> str:
        """Check an entry before it is appended; returns its ``details`` as canonical JSON."""
        validate_queue_key(entry.queue_key)
        if entry.action not in AUDIT_ACTIONS:
            raise ValidationError("action", f"{entry.action!r} is not one of {', '.join(AUDIT_ACTIONS)}")
        validate_text("actor", entry.actor, max_bytes=MAX_NAME_BYTES, required=True)
        validate_optional_text("tool", entry.tool, max_bytes=MAX_NAME_BYTES)
        if entry.proposal_id is not None:
            validate_proposal_id(entry.proposal_id)
        validate_text("notes", entry.notes, max_bytes=MAX_TEXT_BYTES)
        validate_text("diff", entry.diff, max_bytes=MAX_DIFF_BYTES)
        if not isinstance(entry.details, dict):
            raise ValidationError("details", "must be a JSON object (a dict)")
        try:
            details_json = _canonical(entry.details)
        except (TypeError, ValueError) as exc:
            raise ValidationError("details", f"is not JSON-serialisable ({exc})") from None
        validate_text("details", details_json, max_bytes=MAX_DIFF_BYTES)
        return details_json

    @classmethod
    def append_in(cls, conn: sqlite3.Connection, entry: AuditEntry) -> AuditEntry:
        """Append ``entry`` inside the caller's open write transaction; returns it as stored.

        This is how a decision and its audit entry commit together.
        """
        details_json = cls.validate(entry)
        last = conn.execute("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
        seq, prev_hash = (1, GENESIS_HASH) if last is None else (int(last[0]) + 1, str(last[1]))
        ts = utc_now()
        digest = cls.compute_hash(
            seq, ts, entry.queue_key, entry.action, entry.tool, entry.proposal_id,
            entry.actor, entry.notes, entry.diff, details_json, prev_hash,
        )
        conn.execute(
            f"INSERT INTO audit_log ({_COLUMNS}) VALUES (:seq, :ts, :queue_key, :action, :tool, "
            ":proposal_id, :actor, :notes, :diff, :details, :prev_hash, :hash)",
            {
                "seq": seq, "ts": ts, "queue_key": entry.queue_key, "action": entry.action,
                "tool": entry.tool, "proposal_id": entry.proposal_id, "actor": entry.actor,
                "notes": entry.notes, "diff": entry.diff, "details": details_json,
                "prev_hash": prev_hash, "hash": digest,
            },
        )
        return replace(entry, seq=seq, ts=ts, prev_hash=prev_hash, hash=digest, details=json.loads(details_json))

    @staticmethod
    def from_row(row: tuple[Any, ...]) -> AuditEntry:
        """Map an ``audit_log`` row (columns in ``_COLUMNS`` order) to an ``AuditEntry``."""
        seq, ts, queue_key, action, tool, proposal_id, actor, notes, diff, details, prev_hash, digest = row
        return AuditEntry(
            queue_key=queue_key, action=action, actor=actor, tool=tool, proposal_id=proposal_id,
            notes=notes, diff=diff, details=json.loads(details), seq=seq, ts=ts,
            prev_hash=prev_hash, hash=digest,
        )

    def append(self, entry: AuditEntry) -> AuditEntry:
        """Append ``entry`` in its own transaction; assigns its sequence, timestamp and hashes."""
        with self.db.write() as conn:
            return self.append_in(conn, entry)

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
        if limit is not None and (not isinstance(limit, int) or limit < 1):
            raise ValidationError("limit", "must be a whole number of at least 1")
        sql = f"SELECT {_COLUMNS} FROM audit_log{clauses} ORDER BY seq DESC"
        if limit is not None:
            sql += " LIMIT :limit"
            params["limit"] = limit
        with self.db.read() as conn:
            return [self.from_row(row) for row in conn.execute(sql, params)]

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
                rows = conn.execute(
                    f"SELECT {_COLUMNS} FROM audit_log WHERE seq > :after ORDER BY seq LIMIT :batch",
                    {"after": after, "batch": batch},
                ).fetchall()
            if not rows:
                return
            for row in rows:
                yield self.from_row(row)
            after = int(rows[-1][0])

    def count(self) -> int:
        """How many entries the log holds."""
        with self.db.read() as conn:
            return int(conn.execute("SELECT count(*) FROM audit_log").fetchone()[0])

    def verify(self, batch: int = 5000) -> VerifyResult:
        """Recompute the chain; report the first entry whose hash, link or place is wrong.

        Also checks that every decision has exactly one audit entry of the
        same status, which catches entries removed from the end of the log.
        """
        expected_seq = 1
        prev_hash = GENESIS_HASH
        after = 0
        while True:
            with self.db.read() as conn:
                rows = conn.execute(
                    f"SELECT {_COLUMNS} FROM audit_log WHERE seq > :after ORDER BY seq LIMIT :batch",
                    {"after": after, "batch": batch},
                ).fetchall()
            for row in rows:
                seq, ts, queue_key, action, tool, proposal_id, actor, notes, diff, details, link, digest = row
                if seq != expected_seq:
                    return VerifyResult(
                        False, expected_seq - 1, expected_seq,
                        f"entry {expected_seq} is missing (the log jumps from {expected_seq - 1} to {seq})",
                    )
                if link != prev_hash:
                    return VerifyResult(
                        False, seq - 1, seq,
                        f"entry {seq} does not link to entry {seq - 1}'s hash "
                        f"(entry {seq - 1} was changed or removed)",
                    )
                recomputed = self.compute_hash(
                    seq, ts, queue_key, action, tool, proposal_id, actor, notes, diff, details, link
                )
                if recomputed != digest:
                    return VerifyResult(
                        False, seq - 1, seq,
                        f"entry {seq} does not match its hash (it was changed after it was written)",
                    )
                prev_hash = digest
                expected_seq += 1
            if len(rows) < batch:
                break
            after = int(rows[-1][0])
        count = expected_seq - 1
        orphan = self._decision_without_entry()
        if orphan is not None:
            return VerifyResult(False, count, None, orphan)
        return VerifyResult(True, count)

    def _decision_without_entry(self) -> str | None:
        with self.db.read() as conn:
            row = conn.execute(
                "SELECT r.proposal_id, r.status FROM responses r WHERE NOT EXISTS ("
                " SELECT 1 FROM audit_log a WHERE a.proposal_id = r.proposal_id AND a.action = r.status)"
                " LIMIT 1"
            ).fetchone()
        if row is None:
            return None
        return f"proposal {row[0]} was {row[1]} but the audit log has no entry for that decision (an entry was removed)"
