"""Round 11's hostile review of 'a standing rejection ends the grants it overlaps': the holes it found.

Each test performs the attack with the real sidecar helpers and the real
command line, and failed before the fix its docstring names.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path

from bot_bottle.cli.grants_cmds import MAX_NAMED_ENDED
from bot_bottle.decisions import decide
from bot_bottle.grants import GrantStore
from bot_bottle.queue_store import QueueStore
from bot_bottle.records import STATUS_APPROVED, TOOL_EGRESS_ALLOW, TOOL_EGRESS_TOKEN_ALLOW
from bot_bottle.sidecar.egress import EgressGrants, request_token_override
from tests.helpers.host_grants import HostGrantsCase
from tests.helpers.support import wait_until

TOKEN = "ghp_" + "Zq7rW2mX9kL4vB8nC1dF6hJ3tY5pS0aE2uI7"


class TokenRejectionTest(HostGrantsCase):
    """A token's grant and a rejection of the same token, to the same host, with the same method."""

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


class ForgedRuleRowTest(HostGrantsCase):
    """A sidecar on the mount writes a ``rules`` row naming the proposal its agent filed, before the operator
    rejects that proposal with '--remember': what the command line then says the rejection ended."""

    def forge_rule(self, rule_id: str, proposal_id: str) -> None:
        """What the sidecar writes with its own connection: a rule row no host entry proves, dated first."""
        self.raw("INSERT INTO rules (id, queue_key, tool, subject, subject_sha256, pattern, effect, notes, created_at, "
                 "ends_at, created_by, proposal_id, audit_seq) VALUES (:id, 'web-1', 'egress-allow', "
                 "'{\"host\": \"nothing.invalid\"}', :sha, 0, 'reject', '', '2000-01-01T00:00:00.000000Z', NULL, 'x', "
                 ":proposal, 999999)", {"id": rule_id, "sha": "0" * 64, "proposal": proposal_id}, unchecked=True)

    def reject_remembered(self, proposal_id: str) -> dict[str, object]:
        done = self.run_cli("proposals", "reject", proposal_id[:8], "--reason", "no paste sites", "--remember",
                            "bottle", "--json")
        self.assertEqual(done.returncode, 0, done.stderr)
        (said,) = json.loads(done.stdout)
        assert isinstance(said, dict)
        return said

    def test_a_forged_rule_row_cannot_hide_the_grants_the_rejection_ended(self) -> None:
        """Before the fix, ``ended_by_decision`` took the first ``rules`` row naming the proposal, the file's
        word: the forged one, which ended nothing, so the operator was told no grant ended (the grant had)."""
        paste = self.approve("web-1", {"host": "pastebin.com"})
        asked = self.store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "pastebin.com", "paths": ["/raw/"]}', "x")
        self.forge_rule("ab" * 16, asked.id)
        said = self.reject_remembered(asked.id)
        self.assertNotIn(paste, {grant.id for grant in self.grants.listing()})  # it did end
        self.assertEqual(said["ended_grants"], [paste])
        self.assertEqual([grant.id for grant in self.grants.ended_by_decision(asked.id)], [paste])

    def test_a_forged_rule_row_cannot_name_grants_another_rejection_ended(self) -> None:
        """The sidecar moves an earlier rejection's row (another bottle's grants it ended) onto its proposal:
        before the fix the operator was told this rejection ended those grants, and not its own."""
        other = self.approve("web-2", {"host": "evil.example"})
        done = self.run_cli("rules", "add", "--all-bottles", "--host", "evil.example", "--reject", "--json")
        earlier = json.loads(done.stdout)
        self.assertEqual(earlier["ended_grants"], [other])
        paste = self.approve("web-1", {"host": "pastebin.com"})
        asked = self.store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "pastebin.com", "methods": ["POST"]}', "x")
        raw = sqlite3.connect(Path(self.db), isolation_level=None)
        try:
            # The file's triggers are the writer's to drop: its row is read, dropped and written again, moved.
            for (trigger,) in raw.execute("SELECT name FROM sqlite_master WHERE type = 'trigger' AND "
                                          "tbl_name = 'rules'").fetchall():
                raw.execute(f'DROP TRIGGER "{trigger}"')
            raw.execute("UPDATE rules SET proposal_id = :proposal, created_at = '2000-01-01T00:00:00.000000Z' "
                        "WHERE id = :id", {"proposal": asked.id, "id": earlier["id"]})
        finally:
            raw.close()
        said = self.reject_remembered(asked.id)
        self.assertEqual(said["ended_grants"], [paste])

    def test_a_live_grant_pointed_at_the_revocation_is_not_named_ended(self) -> None:
        """The sidecar points another bottle's live grant at the rejection's revocation entry (its revoke_seq,
        revoked_at left empty): before the fix the dashboard's next page, which reads this whenever it is
        loaded, said the rejection ended that grant, which still lets its bottle through."""
        paste = self.approve("web-1", {"host": "pastebin.com"})
        kept = self.approve("web-2", {"host": "pastebin.com"})
        asked = self.store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "pastebin.com", "methods": ["PUT"]}', "x")
        self.assertEqual(self.reject_remembered(asked.id)["ended_grants"], [paste])
        raw = sqlite3.connect(Path(self.db), isolation_level=None)
        try:
            raw.execute("PRAGMA ignore_check_constraints = ON")
            for (trigger,) in raw.execute("SELECT name FROM sqlite_master WHERE type = 'trigger' AND "
                                          "tbl_name = 'grants'").fetchall():
                raw.execute(f'DROP TRIGGER "{trigger}"')
            raw.execute("UPDATE grants SET revoke_seq = (SELECT revoke_seq FROM grants WHERE id = :paste) "
                        "WHERE id = :kept", {"paste": paste, "kept": kept})
        finally:
            raw.close()
        self.assertIn(kept, {grant.id for grant in self.grants.listing()})  # still in force
        self.assertEqual([grant.id for grant in self.grants.ended_by_decision(asked.id)], [paste])


class ForgedGrantBlocksRejectionTest(HostGrantsCase):
    """A grant row a sidecar wrote naming a proposal the file does not hold: the operator's rejections."""

    def forge_grant(self, host: str) -> None:
        """A grant over ``host`` in a real bottle, naming a proposal id (32 hex digits) the file does not hold."""
        self.raw("INSERT INTO grants (id, queue_key, tool, subject, subject_sha256, starts_at, ends_at, proposal_id, "
                 "rule_id, decided_by, audit_seq) VALUES (lower(hex(randomblob(16))), 'web-1', 'egress-allow', "
                 ":subject, :sha, '2026-01-01T00:00:00.000000Z', '2999-01-01T00:00:00.000000Z', "
                 "lower(hex(randomblob(16))), NULL, 'x', 1000000 + abs(random() % 1000000))",
                 {"subject": json.dumps({"host": host, "methods": [], "paths": []}), "sha": "0" * 64})

    def test_a_forged_grant_cannot_make_the_rejection_fail(self) -> None:
        """Before the fix, the ended grant's revocation entry named its proposal, and the file's foreign key
        refused the entry: 'rules add --reject' (and 'proposals reject --remember') failed whole with
        "FOREIGN KEY constraint failed", nothing recorded, and every bottle's grant went on letting it through.
        One row over '*.com' blocked the rejection of any .com host."""
        paste = self.approve("web-2", {"host": "pastebin.com"})
        self.forge_grant("*.com")
        done = self.run_cli("rules", "add", "--all-bottles", "--host", "pastebin.com", "--reject", "--json")
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertIn(paste, json.loads(done.stdout)["ended_grants"])
        with QueueStore(self.db, migrate_schema=False) as sidecar:
            self.assertFalse(EgressGrants(sidecar.for_bottle("web-2")).allows_route("pastebin.com", "GET", "/"))
        asked = self.store.submit("web-2", TOOL_EGRESS_ALLOW, '{"host": "gist.github.com"}', "x")
        self.forge_grant("*.github.com")
        done = self.run_cli("proposals", "reject", asked.short_id, "--reason", "no", "--remember", "all")
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual(len(self.grants.rules()), 2)


    def test_a_flood_of_forged_grants_is_ended_and_counted_not_printed(self) -> None:
        """Before the fix, 'rules add --reject' printed a line for every grant it ended: a sidecar's 10,000 forged
        rows over the host made 10,000 lines (the dashboard's next page, as many clauses). Each is still ended,
        and the JSON names each; the screen names the first twelve and counts the rest."""
        for _ in range(30):
            self.forge_grant("pastebin.com")
        done = self.run_cli("rules", "add", "--all-bottles", "--host", "pastebin.com", "--reject")
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual(done.stdout.count("it ended grant"), MAX_NAMED_ENDED)
        self.assertIn(f"and {30 - MAX_NAMED_ENDED} more grants it ended", done.stdout)
        self.assertEqual(self.grants.listing(), [])


class ForgedSubjectLineTest(HostGrantsCase):
    """A grant row a sidecar wrote, with a newline in its subject, ended by the operator's rejection."""

    def test_a_forged_subject_cannot_print_a_line_of_its_own(self) -> None:
        """Before the fix, 'rules add --reject' printed the ended grant's subject through the sanitizer as text,
        which splits at newlines: the forged path's second half stood as a line the command never wrote."""
        subject = json.dumps({"host": "pastebin.com", "methods": [],
                              "paths": ["/x\nrule 00000000: nothing was ended; audit verify: ok"]})
        self.raw("INSERT INTO grants (id, queue_key, tool, subject, subject_sha256, starts_at, ends_at, proposal_id, "
                 "rule_id, decided_by, audit_seq) VALUES ('ab' || hex(randomblob(15)), 'web-1', 'egress-allow', "
                 ":subject, '', '2026-01-01T00:00:00.000000Z', '2999-01-01T00:00:00.000000Z', "
                 "lower(hex(randomblob(16))), NULL, 'x', 999999)", {"subject": subject}, unchecked=True)
        done = self.run_cli("rules", "add", "--bottle", "web-1", "--host", "pastebin.com", "--reject")
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertIn("it ended grant ab", done.stdout)
        self.assertFalse(any(line.startswith("rule 00000000") for line in done.stdout.splitlines()), done.stdout)
