"""The egress proxy's token-override helpers: redaction, the approved set, and fail-closed waiting."""

from __future__ import annotations

import json
import sqlite3

from bot_bottle.audit_store import AuditStore
from bot_bottle.cli.render import describe
from bot_bottle.db import Database
from bot_bottle.egress import (
    REDACTED,
    ApprovedTokens,
    build_token_allow_payload,
    redact_snippet,
    request_token_override,
)
from bot_bottle.queue_store import QueueStore
from bot_bottle.records import STATUS_APPROVED, STATUS_REJECTED, TOOL_EGRESS_TOKEN_ALLOW
from tests.support import TempDirTest, decide_when_filed

TOKEN = "ghp_" + "Zx9Qw8Er7Ty6Ui5Op4As3Df2Gh1Jk0LzXcVb"
BODY = f'{{"message": "deploy", "auth": "{TOKEN}", "repo": "acme/app"}}'


class RedactionTest(TempDirTest):
    def test_snippet_masks_the_value_and_is_bounded(self) -> None:
        """The snippet keeps context on each side, masks every copy, and stays short and on one line."""
        snippet = redact_snippet("x" * 500 + f"line1\nkey={TOKEN} and again {TOKEN[:20]}" + "y" * 500, TOKEN)
        self.assertNotIn(TOKEN, snippet)
        self.assertNotIn(TOKEN[:20], snippet)
        self.assertIn(f"key={REDACTED}", snippet)
        self.assertIn("\\n", snippet)
        self.assertLess(len(snippet), 200)
        self.assertEqual(redact_snippet("nothing here", TOKEN), REDACTED)
        self.assertEqual(redact_snippet("pin=4821;", "4821"), f"pin={REDACTED};")

    def test_payload_has_no_token(self) -> None:
        """The DLP report names host, method, path and detector, and never the token."""
        approved = ApprovedTokens()
        payload = build_token_allow_payload(host="api.github.com", method="post", path="/repos", detector="github-pat",
                                            context=BODY, value=TOKEN, fingerprint=approved.fingerprint(TOKEN))
        self.assertNotIn(TOKEN, payload)
        report = json.loads(payload)
        self.assertEqual((report["host"], report["method"], report["path"], report["detector"]),
                         ("api.github.com", "POST", "/repos", "github-pat"))
        self.assertIn(REDACTED, report["snippet"])
        self.assertEqual(report["value_length"], len(TOKEN))

    def test_approved_set_keeps_no_value(self) -> None:
        """Approved tokens are kept as keyed hashes: another process's set cannot match them."""
        approved = ApprovedTokens()
        self.assertFalse(approved.allows(TOKEN))
        approved.add(TOKEN)
        self.assertTrue(approved.allows(TOKEN))
        self.assertFalse(approved.allows(TOKEN + "x"))
        self.assertEqual(len(approved), 1)
        self.assertNotIn(TOKEN, repr(vars(approved)))
        self.assertNotEqual(ApprovedTokens().fingerprint(TOKEN), approved.fingerprint(TOKEN))


class OverrideTest(TempDirTest):
    def setUp(self) -> None:
        super().setUp()
        self.path = self.tmp / "egress.db"
        self.store = QueueStore(self.path)
        self.addCleanup(self.store.close)
        self.bottle = self.store.for_bottle("web-1")
        self.approved = ApprovedTokens()

    def ask(self, timeout: float = 30, value: str = TOKEN) -> bool:
        return request_token_override(self.bottle, self.approved, host="api.github.com", method="POST",
                                      path="/repos/acme/app/dispatches", detector="github-pat",
                                      context=BODY.replace(TOKEN, value), value=value, timeout=timeout,
                                      poll_interval=0.02)

    def decide_when_filed(self, status: str, notes: str) -> None:
        decide_when_filed(self, self.store, "web-1", status, notes)

    def assert_no_token_stored(self) -> None:
        self.assertNotIn(TOKEN.encode(), self.path.read_bytes())
        with AuditStore(database=self.store.db) as audit:
            self.assertNotIn(TOKEN, "\n".join(json.dumps(e.to_dict()) for e in audit.export()))

    def test_approve(self) -> None:
        """Approval: True, the token remembered for the proxy's life (no second proposal)."""
        self.decide_when_filed(STATUS_APPROVED, "deploy token, expected")
        self.assertTrue(self.ask())
        self.assertTrue(self.approved.allows(TOKEN))
        self.assertTrue(self.ask(timeout=0))
        proposals = self.store.listing("web-1", include_decided=True)
        self.assertEqual(len(proposals), 1)
        self.assertEqual(proposals[0][0].tool, TOOL_EGRESS_TOKEN_ALLOW)
        self.assertIsNotNone(proposals[0][0].archived_at)
        self.assert_no_token_stored()

    def test_reject(self) -> None:
        """Rejection: False, and nothing remembered."""
        self.decide_when_filed(STATUS_REJECTED, "never send this token there")
        with self.assertLogs("bot_bottle.egress", "WARNING") as logs:
            self.assertFalse(self.ask())
        self.assertIn("rejected", "\n".join(logs.output))
        self.assertFalse(self.approved.allows(TOKEN))
        self.assert_no_token_stored()

    def test_timeout(self) -> None:
        """No decision in time: False; the proposal stays for the operator."""
        with self.assertLogs("bot_bottle.egress", "WARNING") as logs:
            self.assertFalse(self.ask(timeout=0.2))
        self.assertIn("no decision", "\n".join(logs.output))
        self.assertEqual(len(self.store.pending("web-1")), 1)

    def test_database_unavailable(self) -> None:
        """A locked database (past the busy timeout) or a closed one: False, never an exception."""
        locked_store = QueueStore(database=Database(self.path, busy_timeout=0.2))
        self.addCleanup(locked_store.close)
        self.addCleanup(locked_store.db.close)
        holder = sqlite3.connect(self.path, isolation_level=None)
        self.addCleanup(holder.close)
        holder.execute("BEGIN EXCLUSIVE")
        try:
            with self.assertLogs("bot_bottle.egress", "ERROR"):
                self.assertFalse(request_token_override(
                    locked_store.for_bottle("web-1"), self.approved, host="h", method="GET", path="/",
                    detector="d", context=TOKEN, value=TOKEN, timeout=5))
        finally:
            holder.execute("ROLLBACK")
        self.store.close()
        with self.assertLogs("bot_bottle.egress", "ERROR"):
            self.assertFalse(self.ask())

    def test_dlp_report_renders(self) -> None:
        """proposals show / the TUI render the DLP report, not raw JSON."""
        with self.assertLogs("bot_bottle.egress", "WARNING"):
            self.assertFalse(self.ask(timeout=0))
        proposal = self.store.pending("web-1")[0]
        text = "\n".join(describe(proposal, None))
        self.assertIn("request:   POST https://api.github.com/repos/acme/app/dispatches", text)
        self.assertIn("detector:  github-pat", text)
        self.assertIn(REDACTED, text)
        self.assertNotIn(TOKEN, text)
