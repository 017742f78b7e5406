"""Round 11's hostile review of 'a standing rejection ends the grants it overlaps': the holes it found.

Each test performs the attack with the real sidecar helpers and the real
command line, and failed before the fix its docstring names.
"""

from __future__ import annotations

import json
import threading

from bot_bottle.decisions import decide
from bot_bottle.grants import GrantStore
from bot_bottle.paths import host_db_path
from bot_bottle.queue_store import QueueStore
from bot_bottle.records import STATUS_APPROVED, TOOL_EGRESS_TOKEN_ALLOW
from bot_bottle.sidecar.egress import EgressGrants, request_token_override
from tests.helpers.support import TempDirTest, wait_until

TOKEN = "ghp_" + "Zq7rW2mX9kL4vB8nC1dF6hJ3tY5pS0aE2uI7"


class TokenRejectionTest(TempDirTest):
    """A token's grant and a rejection of the same token, to the same host, with the same method."""

    def setUp(self) -> None:
        super().setUp()
        self.db = host_db_path()
        self.store = QueueStore(self.db)
        self.addCleanup(self.store.close)

    def cli(self, *args: str) -> str:
        done = self.run_cli(*args)
        self.assertEqual(done.returncode, 0, done.stderr)
        return done.stdout

    def ask(self, detector: str, context: str, answers: list[bool]) -> threading.Thread:
        """The bottle's egress proxy holds a request carrying TOKEN (its DLP matched ``detector``) for the operator."""
        def run() -> None:
            with QueueStore(self.db, migrate_schema=False) as sidecar:
                bottle = sidecar.for_bottle("web-1")
                answers.append(request_token_override(
                    bottle, EgressGrants(bottle), host="api.example.com", method="POST", path="/upload",
                    detector=detector, context=context, value=TOKEN, timeout=30, poll_interval=0.05))
        thread = threading.Thread(target=run)
        thread.start()
        self.addCleanup(thread.join, 40)
        return thread

    def lets_token_through(self) -> bool:
        with QueueStore(self.db, migrate_schema=False) as sidecar:
            return EgressGrants(sidecar.for_bottle("web-1")).allows_token(TOKEN, host="api.example.com",
                                                                         method="POST")

    def test_a_rejection_of_the_token_under_another_detector_ends_its_grant(self) -> None:
        """The agent sends one token twice, so that two detectors match it (a benign-looking request and the
        real exfiltration). The operator approves the first, then rejects the second with '--remember bottle':
        "never this token to this host". Before the fix (rule_overlaps compared a token's whole subject,
        detector included, where the sidecar's token_covers does not look at the detector), the grant
        was not ended and the sidecar went on letting the token through to the host."""
        answers: list[bool] = []
        first = self.ask("github-pat", f"Authorization: token {TOKEN}", answers)
        pending = wait_until(lambda: self.store.pending() if len(self.store.pending()) == 1 else None)
        second = self.ask("generic-api-key", f"api_key={TOKEN}&dump=/etc/passwd", answers)
        both = wait_until(lambda: self.store.pending() if len(self.store.pending()) == 2 else None)
        (benign,) = pending
        (exfil,) = [proposal for proposal in both if proposal.id != benign.id]
        self.assertNotEqual(json.loads(benign.payload)["detector"], json.loads(exfil.payload)["detector"])
        decide(benign.id, STATUS_APPROVED, "the build's own push", store=self.store)
        first.join(30)
        self.assertTrue(self.lets_token_through())
        said = self.cli("proposals", "reject", exfil.short_id, "--reason", "never this token there",
                        "--remember", "bottle")
        second.join(30)
        self.assertEqual(answers, [True, False])
        (grant,) = [made for made in GrantStore(database=self.store.db).listing(include_ended=True)
                    if made.tool == TOOL_EGRESS_TOKEN_ALLOW]
        self.assertIn(f"it ended grant {grant.short_id}", said)
        self.assertFalse(self.lets_token_through())
