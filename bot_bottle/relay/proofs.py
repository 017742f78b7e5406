"""What the relay passes on only once this host's audit log proves it: an approval, and a grant.

The relay answers bottles whose sidecars never see the database file, and it
holds the host's audit key. Every sidecar on the host's mount can write that
file (a response saying "approved", a grant for another bottle) but cannot
seal an audit entry. So an approval the log does not prove
(``forensics.decision_problem``) is answered as no decision yet, and a grant
it does not prove (``forensics.grant_problem``) is left out: the caller asks
the operator, or waits, as for anything undecided. A log that does not
reach the host's anchor (an older copy of the database renamed over it)
proves no grant and no approval: it lacks what was revoked since. The relay's log says why,
once for each. A rejection or an expiry is passed on as it is: it grants
nothing.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable
from typing import Any

from bot_bottle.audit.anchor import Anchor, read_anchor
from bot_bottle.audit.forensics import (
    REVOCATION_ERASED,
    anchor_problem,
    decision_problem,
    grant_problem,
    revocations,
)
from bot_bottle.audit.seal import load_key
from bot_bottle.audit.whole import whole_log
from bot_bottle.db import Database
from bot_bottle.grant_records import Grant, grant_record
from bot_bottle.records import ACTION_GRANT_REVOKED, STATUS_APPROVED, STATUS_MODIFIED, Response

_SEEN_LIMIT = 10_000  # grant proofs remembered at once


class Proofs:
    """Approvals and grants held to the audit log before the relay answers with them; thread-safe."""

    def __init__(self, db: Database, log: Callable[[str], None]) -> None:
        self.db = db
        self._log = log
        self._lock = threading.Lock()
        self._told: set[str] = set()
        self._seen: dict[str, str | None] = {}

    def response(self, bottle: str, response: Response | None) -> Response | None:
        """``response``, or None for an approval the log does not prove."""
        if response is None or response.status not in (STATUS_APPROVED, STATUS_MODIFIED):
            return response
        problem = decision_problem(self.db, response)
        if problem is None:
            return response
        self._tell(response.proposal_id, f"{bottle}: the {response.status} decision on proposal "
                   f"{response.proposal_id[:8]} is not passed on: the audit log does not prove it ({problem})")
        return None

    def grants(self, bottle: str, grants: list[Grant]) -> list[Grant]:
        """The grants of ``grants`` the log proves, each id once (copies of a row are proven once, kept once)."""
        if not grants:
            return grants
        key, anchor = load_key(), read_anchor(self.db.path)
        kept: dict[str, Grant] = {}
        broken: str | None = None
        with self.db.read() as conn:
            short = anchor_problem(conn, anchor)
            if short is not None:  # an older copy of the log: it lacks revocations made since
                self._tell("anchor", f"{bottle}: no grant is passed on: the audit log does not reach the host's "
                           f"anchor ({short})")
                return []
            revoked = revocations(conn).ids(conn, ACTION_GRANT_REVOKED)
            for grant in grants:
                problem: str | None = "its subject is not what bot-bottle writes"  # not a JSON object
                if grant.subject_value:
                    recorded = grant_record(grant.id, grant.tool, grant.subject_value, grant.starts_at,
                                            grant.ends_at, grant.rule_id)
                    problem = self._grant_problem(conn, grant, recorded, key, anchor)
                if problem is None and grant.id in revoked:
                    problem = REVOCATION_ERASED
                if problem is None:
                    kept.setdefault(grant.id, grant)
                else:
                    self._tell(grant.id, f"{bottle}: grant {grant.id[:8]} is not passed on: the audit log does not "
                               f"prove it ({problem})")
            # Whether it was revoked is read from the entries after it: each must be whole, as sealed, and there.
            broken = whole_log(conn).problem(conn, min(grant.audit_seq for grant in kept.values()), key, anchor) \
                if kept else None
        if broken is not None:
            self._tell("whole", f"{bottle}: no grant is passed on: {broken}, so its revocations cannot be read "
                       "('bot-bottle audit verify')")
            return []
        return list(kept.values())

    def _grant_problem(self, conn: sqlite3.Connection, grant: Grant, recorded: dict[str, Any], key: bytes | None,
                       anchor: Anchor | None) -> str | None:
        """``forensics.grant_problem``, remembered by what it reads of the row (a grant's entry never changes
        once sealed; a copy of a row differing elsewhere is proven once)."""
        mark = json.dumps([grant.id, grant.audit_seq, grant.queue_key, grant.proposal_id, grant.decided_by,
                           grant.revoked_at, recorded, key is not None, anchor.key if anchor else None], sort_keys=True)
        with self._lock:
            if mark in self._seen:
                return self._seen[mark]
        problem = grant_problem(conn, grant, recorded, key, anchor)
        with self._lock:
            if len(self._seen) >= _SEEN_LIMIT:  # rows a sidecar writes without end cannot hold the relay's memory
                self._seen.clear()
            self._seen[mark] = problem
        return problem

    def _tell(self, what: str, line: str) -> None:
        with self._lock:
            if what in self._told:
                return
            self._told.add(what)
        self._log(line)
