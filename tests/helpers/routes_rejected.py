"""The setup the ``[rejected]`` caution's tests share: a bottle's routes file on record, a routes proposal filed
over it, standing rejections made with the real ``rules add``, and the proposal as ``proposals show`` reads it."""

from __future__ import annotations

import json
from typing import Any

from bot_bottle.cli.launch_routes import record_launch_routes
from bot_bottle.queue_store import QueueStore
from bot_bottle.records import TOOL_EGRESS_BLOCK, Proposal
from tests.helpers.support import TempDirTest


class RoutesRejectedCase(TempDirTest):
    """``filed`` proposes ``proposed`` over ``current`` (recorded as the bottle's launch routes file) by default."""

    current = "routes:\n- pypi.org\n"
    proposed = "routes:\n- pypi.org\n- crates.io\n"

    def store(self) -> QueueStore:
        store = QueueStore(None)
        self.addCleanup(store.close)
        return store

    def filed(self, payload: str | None = None, current: str | None = None, bottle: str = "web-1") -> Proposal:
        """A routes proposal of ``bottle``'s, over its launch routes file (recorded; the same one again records
        nothing)."""
        store = self.store()
        on_record = self.current if current is None else current
        record_launch_routes(store, bottle, on_record)
        return store.submit(bottle, TOOL_EGRESS_BLOCK, self.proposed if payload is None else payload,
                            "the crates mirror", current_file=on_record)

    def reject(self, *args: str) -> str:
        """``rules add ARGS --reject``: the new rule's short id."""
        said = self.run_cli("rules", "add", *args, "--reject", "--json")
        self.assertEqual(said.returncode, 0, said.stderr)
        rule = json.loads(said.stdout)
        assert isinstance(rule, dict)
        return str(rule["id"])[:8]

    def shown(self, proposal: Proposal) -> dict[str, Any]:
        """``proposals show ID --json``."""
        result = self.run_cli("proposals", "show", proposal.id, "--json")
        self.assertEqual(result.returncode, 0, result.stderr)
        shown = json.loads(result.stdout)
        assert isinstance(shown, dict)
        return shown
