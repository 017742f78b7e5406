"""A test case over the host database's grants: approvals, the sidecar's own check, the command line, and
what a sidecar on the mount writes into the file past bot-bottle (the standing-rejection attacks share it)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from bot_bottle.decisions import decide
from bot_bottle.grant_records import Grant
from bot_bottle.grants import GrantStore
from bot_bottle.paths import host_db_path
from bot_bottle.queue_store import QueueStore
from bot_bottle.records import STATUS_APPROVED, TOOL_EGRESS_ALLOW
from bot_bottle.sidecar.egress import EgressGrants
from tests.helpers.support import TempDirTest, drop_triggers


class HostGrantsCase(TempDirTest):
    """The host database (``self.db``), its queue (``self.store``) and grants (``self.grants``)."""

    def setUp(self) -> None:
        super().setUp()
        self.db = host_db_path()
        self.store = QueueStore(self.db)
        self.addCleanup(self.store.close)
        self.grants = GrantStore(database=self.store.db)

    def approve(self, bottle: str, route: dict[str, object]) -> str:
        """The operator approves a route the bottle asked for (a grant for 7 days); the grant's id."""
        proposal = self.store.submit(bottle, TOOL_EGRESS_ALLOW, json.dumps(route), "for the build")
        decide(proposal.id, STATUS_APPROVED, store=self.store)
        grant = self.grants.for_proposal(proposal.id)
        assert grant is not None
        return grant.id

    def lets_through(self, bottle: str, host: str, method: str, path: str,
                     headers: list[tuple[str, str]] | None = None) -> bool:
        """What the bottle's sidecar answers now (its own check, asked afresh, as after its cache's 5 s), for a
        request with ``headers`` as its proxy passes them."""
        with QueueStore(self.db, migrate_schema=False) as sidecar:
            return EgressGrants(sidecar.for_bottle(bottle)).allows_route(host, method, path, headers)

    def decide_json(self, *args: str) -> dict[str, object]:
        """``bot-bottle proposals ARGS --json`` for one decision, which must succeed: what it answered."""
        done = self.run_cli("proposals", *args, "--json")
        self.assertEqual(done.returncode, 0, done.stderr)
        (said,) = json.loads(done.stdout)
        assert isinstance(said, dict)
        return said

    def cli(self, *args: str) -> str:
        """``bot-bottle ARGS`` as the operator runs it, which must succeed; its output."""
        done = self.run_cli(*args)
        self.assertEqual(done.returncode, 0, done.stderr)
        return done.stdout

    def put_back_row(self, grant: Grant) -> None:
        """A sidecar on the mount writes ``grant``'s row into the file again, as the host wrote it."""
        values = {f"v{index}": value for index, value in enumerate(grant.__dict__.values())}
        self.raw(f"INSERT INTO grants VALUES ({', '.join(':' + name for name in values)})", values)

    def raw(self, statement: str, params: dict[str, Any] | None = None, *, unchecked: bool = False,
            untriggered: str | None = None) -> None:
        """What a sidecar on the mount writes into the file with a connection of its own, past bot-bottle;
        ``unchecked``: with the file's CHECK constraints off, as that writer may have them; ``untriggered``: the
        table whose triggers it drops first (they are the file's, and it can)."""
        conn = sqlite3.connect(Path(self.db), isolation_level=None)
        try:
            if unchecked:
                conn.execute("PRAGMA ignore_check_constraints = ON")
            if untriggered is not None:
                drop_triggers(conn, untriggered)
            conn.execute(statement, params or {})
        finally:
            conn.close()
