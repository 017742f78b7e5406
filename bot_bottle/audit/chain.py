"""The audit log's hash chain: what each entry's sha256 is taken over, and how a row is read back.

Each entry's ``hash`` is the sha256 of its fields, including ``prev_hash``,
the hash of the entry before it (64 zeros for the first), as
``hash_material`` writes them: anyone can recompute it, which is why each
entry is also sealed with the host's key (``audit.seal``).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from json.encoder import encode_basestring as _json_string  # what json.dumps writes for a str
from typing import Any

GENESIS_HASH = "0" * 64
# What each entry's hash is taken over, in order (hash_material), then the hash.
HASHED_COLUMNS = "seq, ts, queue_key, action, tool, proposal_id, actor, notes, diff, details, prev_hash"
COLUMNS = f"{HASHED_COLUMNS}, hash"
# Entries with their seals (NULL where not sealed yet), as AuditStore.from_row maps them.
SELECT = f"SELECT {COLUMNS}, s.mac FROM audit_log LEFT JOIN audit_seal s USING (seq)"


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


def compute_hash(
    seq: int, ts: str, queue_key: str, action: str, tool: str | None, proposal_id: str | None,
    actor: str, notes: str, diff: str, details_json: str, prev_hash: str,
) -> str:
    """The sha256 that chains an entry: over every field, ``details`` as its stored JSON text."""
    material = hash_material(seq, ts, queue_key, action, tool, proposal_id, actor, notes, diff, details_json,
                             prev_hash)
    return hashlib.sha256(material.encode("utf-8")).hexdigest()

def stored_details(text: object) -> dict[str, Any] | None:
    """An entry's ``details`` column as the object bot-bottle writes; None when it is not one.

    A sidecar can write any text there (the hash and the seal say whether the
    host did): whatever reads it back must not fail on it.
    """
    try:
        value = json.loads(text) if isinstance(text, str | bytes) else None
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def hash_of(conn: sqlite3.Connection, seq: int) -> str:
    """Entry ``seq``'s hash recomputed from its row by ``compute_hash`` (the definition)."""
    row = conn.execute(f"SELECT {HASHED_COLUMNS} FROM audit_log WHERE seq = :seq", {"seq": seq}).fetchone()
    return compute_hash(*row)
