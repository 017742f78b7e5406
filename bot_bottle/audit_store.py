"""The audit log: an append-only, hash-chained, host-sealed record of every decision and operator edit.

Each entry's ``hash`` is the sha256 of its fields, including ``prev_hash``,
the hash of the entry before it (64 zeros for the first). The schema refuses
UPDATE and DELETE and checks each new entry's sequence number and link.
Anyone who can write the file can recompute sha256, so each entry also gets a
*seal* (``audit_seal``): an HMAC with the host's key, chained like the hashes
(``audit_seal`` module), and the newest seal is kept outside the database as
the anchor.

``AuditStore.verify`` recomputes hashes and seals, checks the log still
reaches its anchor, and checks every response against the entry that
recorded it (status, notes, decider, time, final file's hash) and every
decision entry against its response. An append refuses to add to a log
that shows a change made without the key (``AuditTampered``).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from json.encoder import encode_basestring as _json_string  # what json.dumps writes for a str
from pathlib import Path
from typing import Any

from bot_bottle.audit_seal import (
    GENESIS_SEAL,
    Anchor,
    Sealer,
    advance_anchor,
    key_path,
    load_key,
    read_anchor,
    seal_of,
)
from bot_bottle.connection import read_snapshot
from bot_bottle.db import DatabaseUser
from bot_bottle.errors import AuditTampered, ValidationError
from bot_bottle.records import (
    MAX_NAME_BYTES,
    STATUSES,
    AuditEntry,
    Response,
    parse_timestamp,
    utc_now,
    validate_queue_key,
    validate_text,
    validated_details,
)

GENESIS_HASH = "0" * 64
DEFAULT_LIST_LIMIT = 50
# What each entry's hash is taken over, in order (hash_material), then the hash.
_HASHED_COLUMNS = "seq, ts, queue_key, action, tool, proposal_id, actor, notes, diff, details, prev_hash"
_COLUMNS = f"{_HASHED_COLUMNS}, hash"
# Entries with their seals (NULL where not sealed yet), as from_row maps them.
_SELECT = f"SELECT {_COLUMNS}, s.mac FROM audit_log LEFT JOIN audit_seal s USING (seq)"


@dataclass(frozen=True)
class VerifyResult:
    """The outcome of ``AuditStore.verify``: whole, or the first entry found wrong.

    ``unsealed`` counts entries at the end of the log that have no seal yet
    (written before sealing began, or whose seals a downgrade dropped); they
    are proven by the anchor where one covers them, and sealed by the next
    decision. ``anchored`` is the anchor's sequence number (None: no anchor).
    """

    ok: bool
    count: int
    bad_seq: int | None = None
    problem: str = ""
    unsealed: int = 0
    anchored: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"ok": self.ok, "count": self.count, "bad_seq": self.bad_seq, "problem": self.problem,
                "unsealed": self.unsealed, "anchored": self.anchored}


def hash_material(
    seq: int, ts: str, queue_key: str, action: str, tool: str | None, proposal_id: str | None,
    actor: str, notes: str, diff: str, details_json: str, prev_hash: str,
) -> str:
    """What an entry's sha256 is taken over: ``json.dumps([seq, ts, ...], separators=(",", ":"), ensure_ascii=False)``.

    Built here without the encoder's per-call set-up (five times faster, and
    verify hashes every entry): the same C function ``json.dumps`` calls for
    each string, ``null`` for None, the integer's digits. So the text is
    identical by construction for what a row holds (an int and strings or
    None); any other type is handed to ``json.dumps`` itself.
    ``tests/test_audit_store.py`` holds the two against each other.
    """
    if type(seq) is int:
        try:
            return (f"[{seq},{_json_string(ts)},{_json_string(queue_key)},{_json_string(action)},"
                    f"{'null' if tool is None else _json_string(tool)},"
                    f"{'null' if proposal_id is None else _json_string(proposal_id)},{_json_string(actor)},"
                    f"{_json_string(notes)},{_json_string(diff)},{_json_string(details_json)},"
                    f"{_json_string(prev_hash)}]")
        except TypeError:  # not a string: json.dumps says what it makes of it
            pass
    return json.dumps([seq, ts, queue_key, action, tool, proposal_id, actor, notes, diff, details_json, prev_hash],
                      separators=(",", ":"), ensure_ascii=False)


class AuditStore(DatabaseUser):
    """The audit log of the host database (``db_path=None``) or of the database at ``db_path``."""

    @staticmethod
    def compute_hash(
        seq: int, ts: str, queue_key: str, action: str, tool: str | None, proposal_id: str | None,
        actor: str, notes: str, diff: str, details_json: str, prev_hash: str,
    ) -> str:
        """The sha256 that chains an entry: over every field, ``details`` as its stored JSON text."""
        material = hash_material(seq, ts, queue_key, action, tool, proposal_id, actor, notes, diff, details_json,
                                 prev_hash)
        return hashlib.sha256(material.encode("utf-8")).hexdigest()

    @classmethod
    def append_in(
        cls, conn: sqlite3.Connection, entry: AuditEntry, *, database: Path | None, ts: str | None = None
    ) -> AuditEntry:
        """Append and seal ``entry`` inside the caller's open write transaction; returns it as stored.

        This is how a decision and its audit entry commit together. ``database``
        is the file whose anchor applies (None: no anchor, an in-memory
        database). Entries not sealed yet are sealed first, if their chain
        verifies and the anchor allows; otherwise ``AuditTampered`` and
        nothing is written. After the caller commits it must call
        ``anchor(database, entry)``.
        """
        details_json = validated_details(entry)
        key = load_key()
        assert key is not None
        previous_seal = cls._seal_pending(conn, key, database)
        last = conn.execute("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
        seq, prev_hash = (1, GENESIS_HASH) if last is None else (int(last[0]) + 1, str(last[1]))
        when = ts or utc_now()
        digest = cls.compute_hash(
            seq, when, entry.queue_key, entry.action, entry.tool, entry.proposal_id,
            entry.actor, entry.notes, entry.diff, details_json, prev_hash,
        )
        conn.execute(
            f"INSERT INTO audit_log ({_COLUMNS}) VALUES (:seq, :ts, :queue_key, :action, :tool, "
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
        return replace(entry, seq=seq, ts=when, prev_hash=prev_hash, hash=digest, seal=seal,
                       details=json.loads(details_json))

    @staticmethod
    def anchor(database: Path | None, entry: AuditEntry) -> None:
        """Move the database's anchor to ``entry`` (call after its transaction committed)."""
        if database is not None and entry.seq is not None and entry.seal is not None:
            advance_anchor(database, entry.seq, entry.seal)

    @classmethod
    def _seal_pending(cls, conn: sqlite3.Connection, key: bytes, database: Path | None) -> str:
        """Seal entries that have no seal yet, where that is safe; the newest seal.

        Safe means: their sha256 chain verifies, every existing seal matches,
        and, when the database has an anchor, the recomputed seal at the
        anchor's entry is the anchor's. An unsealed entry past the anchor was
        written without the host (every host append seals in its own
        transaction): ``AuditTampered``.
        """
        last_seq = int(conn.execute("SELECT coalesce(max(seq), 0) FROM audit_log").fetchone()[0])
        sealed = conn.execute("SELECT seq, mac FROM audit_seal ORDER BY seq DESC LIMIT 1").fetchone()
        sealed_seq, newest = (0, GENESIS_SEAL) if sealed is None else (int(sealed[0]), str(sealed[1]))
        anchor = read_anchor(database) if database is not None else None
        if anchor is not None and last_seq < anchor.seq:
            raise AuditTampered(_truncated(anchor, last_seq) + _REFUSED)
        if sealed_seq > last_seq:
            raise AuditTampered(f"the audit log has seals past its last entry {last_seq}: entries were removed"
                                + _REFUSED)
        if sealed_seq == last_seq:
            cls._check_newest(conn, key, anchor, last_seq, newest)
            return newest
        # Past the anchor, or past a seal when there is no anchor (retired, or never written), an entry
        # without a seal was written without the host: every host append seals in its own transaction,
        # and a downgrade drops all the seals, never the newest ones alone.
        proven = max(_seq(anchor) or 0, sealed_seq)
        if (anchor is not None or sealed_seq) and last_seq > proven:
            raise AuditTampered(f"audit entries {proven + 1}-{last_seq} have no seal: they "
                                "were written without the host's key" + _REFUSED)
        problem, seals = cls._walk(conn, key, anchor, keep_after=sealed_seq)
        if problem is not None:
            raise AuditTampered(problem[1] + _REFUSED)
        for seq in range(sealed_seq + 1, last_seq + 1):
            conn.execute("INSERT INTO audit_seal (seq, mac) VALUES (:seq, :mac)", {"seq": seq, "mac": seals[seq]})
        return seals[last_seq] if last_seq else GENESIS_SEAL

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
        row = conn.execute(f"{_SELECT} WHERE seq = :seq", {"seq": seq}).fetchone()
        before = conn.execute("SELECT mac FROM audit_seal WHERE seq = :seq", {"seq": seq - 1}).fetchone()
        previous = GENESIS_SEAL if seq == 1 else (str(before[0]) if before is not None else None)
        _, ts, queue_key, action, tool, proposal_id, actor, notes, diff, details, link, digest, _ = row
        recomputed = cls.compute_hash(seq, ts, queue_key, action, tool, proposal_id, actor, notes, diff, details, link)
        if (recomputed != digest or previous is None or seal_of(key, seq, previous, digest) != seal
                or (anchor is not None and anchor.seq == seq and anchor.seal != seal)):
            raise AuditTampered(f"the newest audit entry {seq} does not match its seal: it was written or "
                                "rewritten without the host's key" + _REFUSED)

    @classmethod
    def _walk(
        cls, conn: sqlite3.Connection, key: bytes | None, anchor: Anchor | None, batch: int = 10_000,
        progress: Callable[[int], None] | None = None, keep_after: int | None = None,
    ) -> tuple[tuple[int | None, str] | None, dict[int, str]]:
        """Recompute the chain and the seals: ((bad seq, problem) or None, {seq: seal} recomputed past ``keep_after``).

        Seals are recomputed only with a key; stored seals must match them, a
        missing seal may only be followed by missing ones, and the anchor's
        entry must carry the anchor's seal.

        Verify walks a million entries here, so the text each hash is taken
        over comes from SQLite's ``json_array`` (in C, one column instead of
        eleven to fetch), which writes what ``hash_material`` writes (the
        same escapes, checked for every character in the tests). Only a
        match is taken from it: a hash that does not match that text is
        recomputed from the row with ``hash_material`` before anything is
        reported, so no entry is ever judged by SQLite's encoding alone. And
        a match is a proof: two JSON texts that are equal decode to the same
        row, so a forged row cannot match a hash made over another row's text.
        """
        seals: dict[int, str] = {}
        keep = -1 if keep_after is None else keep_after
        keep_none = keep_after is None
        expected_seq, prev_hash, prev_seal = 1, GENESIS_HASH, GENESIS_SEAL
        unsealed_from: int | None = None
        anchor_seq, anchor_seal, anchor_written = (None, "", "") if anchor is None else (
            anchor.seq, anchor.seal, anchor.written_at)
        sha256 = hashlib.sha256
        seal = Sealer(key).seal if key is not None else None
        cursor = conn.execute(
            f"SELECT json_array({_HASHED_COLUMNS}), seq, prev_hash, hash, s.mac "
            "FROM audit_log LEFT JOIN audit_seal s USING (seq) ORDER BY seq"
        )
        try:
            while rows := cursor.fetchmany(batch):
                for material, seq, link, digest, mac in rows:
                    if seq != expected_seq:
                        return (expected_seq, f"entry {expected_seq} is missing (the log jumps from "
                                f"{expected_seq - 1} to {seq})"), seals
                    if link != prev_hash:
                        return (seq, f"entry {seq} does not link to entry {seq - 1}'s hash "
                                f"(entry {seq - 1} was changed or removed)"), seals
                    if sha256(material.encode("utf-8")).hexdigest() != digest and cls._hash_of(conn, seq) != digest:
                        return (seq, f"entry {seq} does not match its hash (it was changed after it was "
                                "written)"), seals
                    if seal is not None:
                        prev_seal = seal(seq, prev_seal, digest)
                        if not keep_none and seq > keep:
                            seals[seq] = prev_seal
                        if mac is not None and mac != prev_seal:
                            return (seq, f"entry {seq} does not match its seal: it, or an entry before it, was "
                                    "rewritten without the host's key"), seals
                        if seq == anchor_seq and prev_seal != anchor_seal:
                            return (seq, f"entries up to {seq} do not match the host's anchor written at "
                                    f"{anchor_written}: they were rewritten"), seals
                    if mac is None:
                        if unsealed_from is None:
                            unsealed_from = seq
                    elif unsealed_from is not None:
                        return (unsealed_from, f"entry {unsealed_from} lost its seal (entries after it have "
                                "theirs)"), seals
                    prev_hash = digest
                    expected_seq += 1
                if progress is not None:
                    progress(expected_seq - 1)
        finally:
            cursor.close()
        return None, seals

    @classmethod
    def _hash_of(cls, conn: sqlite3.Connection, seq: int) -> str:
        """Entry ``seq``'s hash recomputed from its row by ``compute_hash`` (the definition)."""
        row = conn.execute(f"SELECT {_HASHED_COLUMNS} FROM audit_log WHERE seq = :seq", {"seq": seq}).fetchone()
        return cls.compute_hash(*row)

    @staticmethod
    def from_row(row: tuple[Any, ...]) -> AuditEntry:
        """Map an ``audit_log`` row (``_COLUMNS`` order, then the seal) to an ``AuditEntry``."""
        seq, ts, queue_key, action, tool, proposal_id, actor, notes, diff, details, prev_hash, digest, seal = row
        return AuditEntry(
            queue_key=queue_key, action=action, actor=actor, tool=tool, proposal_id=proposal_id,
            notes=notes, diff=diff, details=json.loads(details), seq=seq, ts=ts,
            prev_hash=prev_hash, hash=digest, seal=seal,
        )

    def append(self, entry: AuditEntry) -> AuditEntry:
        """Append ``entry`` in its own transaction; assigns its sequence, timestamp, hashes and seal."""
        with self.db.write() as conn:
            stored = self.append_in(conn, entry, database=self.db.path)
        self.anchor(self.db.path, stored)
        return stored

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
        sql = f"{_SELECT}{clauses} ORDER BY seq DESC"
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
                rows = self._batch(conn, after, batch)
            if not rows:
                return
            yield from rows
            after = int(rows[-1].seq or 0)

    @classmethod
    def _batch(cls, conn: sqlite3.Connection, after: int, batch: int) -> list[AuditEntry]:
        rows = conn.execute(
            f"{_SELECT} WHERE seq > :after ORDER BY seq LIMIT :batch",
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
        """Check the whole log; report the first thing found wrong.

        Recomputes every hash and (with the host's key) every seal, checks the
        log still reaches the anchor with the anchor's seal, and checks every
        response against its decision entry and every decision entry against
        its response. Reads only, in one snapshot. ``progress(done, total)``
        is called after each batch of entries.
        """
        key = load_key(create=False)
        anchor = read_anchor(self.db.path)
        with self.db.read() as conn, read_snapshot(conn):
            count = int(conn.execute("SELECT coalesce(max(seq), 0) FROM audit_log").fetchone()[0])
            sealed = int(conn.execute("SELECT count(*) FROM audit_seal").fetchone()[0])
            if key is None and (sealed or anchor is not None):
                return VerifyResult(False, count, None, f"the host's audit key {key_path()} is missing: the seals "
                                    "cannot be checked (restore the key from your copy)", anchored=_seq(anchor))
            step = (lambda done: progress(done, count)) if progress is not None else None
            problem, _ = self._walk(conn, key, anchor, batch, step)
            if problem is not None:
                return VerifyResult(False, count, problem[0], problem[1], anchored=_seq(anchor))
            if anchor is not None and count < anchor.seq:
                return VerifyResult(False, count, count + 1, _truncated(anchor, count), anchored=anchor.seq)
            if sealed > count:
                return VerifyResult(False, count, count + 1, f"the log has seals for {sealed} entries but only "
                                    f"{count} entries: entries were removed", anchored=_seq(anchor))
            unsealed = count - sealed
            if (anchor is not None or sealed) and unsealed and count > max(_seq(anchor) or 0, sealed):
                first = max(_seq(anchor) or 0, sealed) + 1
                return VerifyResult(False, count, first, f"entries {first}-{count} have no seal: they were "
                                    "written without the host's key", anchored=_seq(anchor))
            binding = _binding_problem(conn)
            if binding is not None:
                return VerifyResult(False, count, binding[0], binding[1], anchored=_seq(anchor))
        return VerifyResult(True, count, unsealed=unsealed, anchored=_seq(anchor))

    def set_aside(self, export: Callable[[sqlite3.Connection, int], int]) -> tuple[int, int]:
        """Move the entries past what the host can prove out of the log; (how many, the last one kept).

        What the host proves: entries whose sha256 chain and seals verify with
        its key, up to the newest valid seal or the anchor, whichever is
        further. Entries past that (a sidecar's appended entries, with no
        seal or a made-up one) make every append refuse; this is the way out.
        ``export(conn, after)`` writes them (with hashes and seals) somewhere
        new and returns how many, inside the transaction that then deletes
        them, so none is lost. Entries up to the anchor that were changed are
        never removed here (``AuditTampered``): restore a backup instead.
        """
        key = load_key(create=False)
        if key is None:
            raise AuditTampered(f"the host's audit key {key_path()} is missing: without it no entry can be told "
                                "from a forgery (restore the key from your copy)")
        anchor = read_anchor(self.db.path)
        with self.db.write() as conn:
            last = int(conn.execute("SELECT coalesce(max(seq), 0) FROM audit_log").fetchone()[0])
            sealed = int(conn.execute("SELECT coalesce(max(seq), 0) FROM audit_seal").fetchone()[0])
            problem, _ = self._walk(conn, key, anchor)
            kept = last if problem is None or problem[0] is None else problem[0] - 1
            if anchor is not None or sealed:
                kept = min(kept, max(_seq(anchor) or 0, sealed))
            if anchor is not None and kept < anchor.seq:
                raise AuditTampered(f"entry {kept + 1} is at or before the host's anchor (entry {anchor.seq}) and "
                                    "was changed: set-aside removes only entries written past the host's proof; "
                                    "restore the database from a backup ('bot-bottle audit verify' names it)")
            if kept >= last:
                return 0, kept
            count = export(conn, kept)
            if count != last - kept:
                raise AuditTampered(f"wrote {count} entries but {last - kept} were to be set aside; nothing removed")
            # The triggers refuse DELETE (that is their point); they are put back, as they are, in this same
            # transaction. Names are quoted as identifiers: a sidecar may have named one of its own.
            triggers = conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'trigger' "
                                    "AND tbl_name IN ('audit_log', 'audit_seal')").fetchall()
            for name, _sql in triggers:
                conn.execute("DROP TRIGGER \"{}\"".format(str(name).replace('"', '""')))
            conn.execute("DELETE FROM audit_seal WHERE seq > :kept", {"kept": kept})
            conn.execute("DELETE FROM audit_log WHERE seq > :kept", {"kept": kept})
            for _name, sql in triggers:
                conn.execute(sql)
        return count, kept

    def decision_problem(self, response: Response) -> str | None:
        """Why ``response`` is not proven by this host's audit log, or None when it is (cheap: one entry).

        Proven: its decision entry exists, matches it, matches its own hash,
        and carries a seal that this host's key makes over that hash and the
        seal before it. A sidecar can write a response (and an entry) into
        the file, but not such a seal. ``audit verify`` checks the rest.
        """
        key = load_key(create=False)
        with self.db.read() as conn:
            row = conn.execute(
                f"{_SELECT} WHERE proposal_id = :id AND action IN ("
                + ", ".join(f"'{s}'" for s in STATUSES) + ") ORDER BY seq LIMIT 1",
                {"id": response.proposal_id},
            ).fetchone()
            if row is None:
                return "the audit log has no entry for it: it was not recorded by bot-bottle"
            seq, ts, queue_key, action, tool, proposal_id, actor, notes, diff, details, link, digest, mac = row
            recorded = json.loads(details)
            final = hashlib.sha256(response.final_file.encode("utf-8")).hexdigest() if response.final_file else None
            logged = (action, actor, notes, recorded.get("final_file_sha256"),
                      recorded.get("decided_at", response.decided_at))
            if logged != (response.status, response.decided_by, response.notes, final, response.decided_at):
                return f"it differs from audit entry {seq}, which recorded the decision"
            if self.compute_hash(seq, ts, queue_key, action, tool, proposal_id, actor, notes, diff, details,
                                 link) != digest:
                return f"audit entry {seq} was changed after it was written"
            if key is None:
                return f"the host's audit key {key_path()} is missing, so audit entry {seq}'s seal cannot be checked"
            if mac is None:
                return f"audit entry {seq} is not sealed yet ('bot-bottle audit verify' says whether that is expected)"
            before = conn.execute("SELECT mac FROM audit_seal WHERE seq = :seq", {"seq": seq - 1}).fetchone()
            previous = GENESIS_SEAL if seq == 1 else (str(before[0]) if before is not None else None)
            if previous is None or seal_of(key, seq, previous, digest) != mac:
                return f"audit entry {seq}'s seal was not made with this host's key"
        return None

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


_REFUSED = ("; nothing more is recorded until this is looked at ('bot-bottle audit verify'; entries a sidecar "
            "added past the host's seals: 'bot-bottle audit set-aside --export FILE --yes'; if you replaced "
            "the database on purpose, 'bot-bottle audit retire-anchor --yes')")


def _seq(anchor: Anchor | None) -> int | None:
    return anchor.seq if anchor is not None else None


def _truncated(anchor: Anchor, count: int) -> str:
    return (f"the log ends at entry {count}, but the host's anchor written at {anchor.written_at} says entry "
            f"{anchor.seq} existed: entries {count + 1}-{anchor.seq} were removed")


_DECISION_ENTRY = "a.action IN (" + ", ".join(f"'{s}'" for s in STATUSES) + ")"


def _sha256(text: str | None) -> str | None:
    return hashlib.sha256(text.encode("utf-8")).hexdigest() if text is not None else None


def _binding_problem(conn: sqlite3.Connection) -> tuple[int | None, str] | None:
    """The first decided proposal or response that differs from its decision entry, or entry without response.

    The proposal is held to the entry too (its bottle, tool, and the sha256 of
    what was proposed, recomputed from the text): a rewritten proposal would
    show an operator's decision next to something they never saw.
    """
    rows = conn.execute(
        "SELECT r.proposal_id, r.status, r.notes, r.final_file, r.decided_by, r.decided_at, "
        "a.seq, a.action, a.actor, a.notes, a.details, a.queue_key, a.tool, "
        "p.queue_key, p.tool, p.payload, p.justification, p.current_file, p.current_file_hash, p.created_at "
        "FROM responses r JOIN proposals p ON p.id = r.proposal_id "
        f"LEFT JOIN audit_log a ON a.proposal_id = r.proposal_id AND {_DECISION_ENTRY} ORDER BY a.seq"
    )
    for row in rows:
        (proposal_id, status, notes, final_file, decided_by, decided_at, seq, action, actor, entry_notes, details,
         entry_key, entry_tool, queue_key, tool, payload, justification, current_file, current_hash, created_at) = row
        if seq is None:
            return None, (f"proposal {proposal_id} was {status} but the audit log has no entry for that decision "
                          "(an entry was removed)")
        recorded = json.loads(details)
        differences = [
            name for name, stored, logged in (
                ("status", status, action), ("decided_by", decided_by, actor), ("notes", notes, entry_notes),
                ("final_file", _sha256(final_file), recorded.get("final_file_sha256")),
                ("decided_at", decided_at, recorded.get("decided_at", decided_at)),
            ) if stored != logged
        ]
        if differences:
            return seq, (f"proposal {proposal_id}'s response differs from its audit entry {seq} in "
                         f"{', '.join(differences)}: it was changed after the decision")
        current = _sha256(current_file) if current_file is not None else current_hash
        changed = [
            name for name, stored, logged in (
                ("bottle", queue_key, entry_key), ("tool", tool, entry_tool),
                ("payload", _sha256(payload), recorded.get("payload_sha256", _sha256(payload))),
                ("justification", justification, recorded.get("justification", justification)),
                ("current_file", current, recorded.get("current_file_hash", current)),
                ("created_at", created_at, recorded.get("created_at", created_at)),
            ) if stored != logged
        ]
        if changed:
            return seq, (f"proposal {proposal_id} differs from what audit entry {seq} records was decided on, in "
                         f"{', '.join(changed)}: it was rewritten after the decision")
    orphan = conn.execute(
        "SELECT a.seq, a.proposal_id, a.action FROM audit_log a WHERE a.proposal_id IS NOT NULL AND "
        f"{_DECISION_ENTRY} AND NOT EXISTS (SELECT 1 FROM responses r WHERE r.proposal_id = a.proposal_id) "
        "ORDER BY a.seq LIMIT 1"
    ).fetchone()
    if orphan is not None:
        return int(orphan[0]), (f"entry {orphan[0]} records that proposal {orphan[1]} was {orphan[2]}, but the "
                                "response is gone (it was removed)")
    return None
