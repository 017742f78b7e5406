"""What the relay passes on only once this host's audit log proves it: an approval, and a grant.

The relay answers bottles whose sidecars never see the database file, and it
holds the host's audit key. Every sidecar on the host's mount can write that
file (a response saying "approved", a grant for another bottle) but cannot
seal an audit entry. So an approval the log does not prove
(``forensics.decision_problem``) is answered as no decision yet, and a grant
it does not prove (``forensics.grant_problem``) is left out: the caller asks
the operator, or waits, as for anything undecided. The relay's log says why,
once for each. A rejection or an expiry is passed on as it is: it grants
nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from bot_bottle.audit.anchor import read_anchor
from bot_bottle.audit.forensics import decision_problem, grant_problem
from bot_bottle.audit.seal import load_key
from bot_bottle.db import Database
from bot_bottle.grants import grant_record
from bot_bottle.records import STATUS_APPROVED, STATUS_MODIFIED, Grant, Response


class Proofs:
    """Approvals and grants held to the audit log before the relay answers with them; thread-safe."""

    def __init__(self, db: Database, log: Callable[[str], None]) -> None:
        self.db = db
        self._log = log
        self._lock = threading.Lock()
        self._told: set[str] = set()

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
        """The grants of ``grants`` the log proves."""
        if not grants:
            return grants
        key, anchor = load_key(), read_anchor(self.db.path)
        kept = []
        with self.db.read() as conn:
            for grant in grants:
                try:
                    recorded = grant_record(grant.id, grant.tool, grant.subject_value, grant.starts_at,
                                            grant.ends_at, grant.rule_id)
                    problem = grant_problem(conn, grant, recorded, key, anchor)
                except ValueError:  # a subject that is not JSON: no grant the host wrote
                    problem = "its subject is not what bot-bottle writes"
                if problem is None:
                    kept.append(grant)
                else:
                    self._tell(grant.id, f"{bottle}: grant {grant.id[:8]} is not passed on: the audit log does not "
                               f"prove it ({problem})")
        return kept

    def _tell(self, what: str, line: str) -> None:
        with self._lock:
            if what in self._told:
                return
            self._told.add(what)
        self._log(line)
