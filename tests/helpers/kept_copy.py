"""A sidecar's copy of the database, kept from while a grant was in force: the old-copy attacks' common start."""

from __future__ import annotations

import json
import sqlite3

from bot_bottle.paths import host_db_path
from bot_bottle.queue_reads import shown_digest
from bot_bottle.queue_store import QueueStore
from bot_bottle.records import TOOL_EGRESS_ALLOW
from tests.helpers.support import TempDirTest

KEPT_NAME = "kept.db"


def grant_copied_then_revoked(test: TempDirTest) -> tuple[str, str]:
    """The operator approves web-1's proposal (a grant for an hour), a sidecar on the mount keeps a copy of the
    host database (``kept.db`` beside it, made with ``VACUUM INTO``), then the operator revokes the grant, each
    through the real CLI: the grant's id and the proposal's."""
    with QueueStore(None) as store:
        proposal = store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "a.example"}', "the agent's ask")
    approved = test.run_cli("proposals", "approve", proposal.short_id, "--for", "1h",
                            "--digest", shown_digest(proposal))
    test.assertEqual(approved.returncode, 0, approved.stderr)
    grant = str(json.loads(test.run_cli("grants", "list", "--json").stdout)[0]["id"])
    db = host_db_path()
    raw = sqlite3.connect(db)  # the sidecar, on the mount
    raw.execute("VACUUM INTO ?", (str(db.parent / KEPT_NAME),))
    raw.close()
    revoked = test.run_cli("grants", "revoke", grant, "--reason", "no longer")
    test.assertEqual(revoked.returncode, 0, revoked.stderr)
    return grant, proposal.id
