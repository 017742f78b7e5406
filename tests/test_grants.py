"""Grants with an end: what an approval grants, for how long, standing rules, expiry, and their proof."""

from __future__ import annotations

import json
import sqlite3
from unittest import mock

from bot_bottle.audit_store import AuditStore
from bot_bottle.decisions import decide
from bot_bottle.errors import AlreadyEnded, ProposalExpired, ValidationError
from bot_bottle.grants import GrantStore
from bot_bottle.policy.subjects import route_covers, subject_of
from bot_bottle.queue_store import QueueStore
from bot_bottle.records import (
    STATUS_APPROVED,
    STATUS_EXPIRED,
    STATUS_MODIFIED,
    STATUS_REJECTED,
    TOOL_EGRESS_ALLOW,
    TOOL_EGRESS_TOKEN_ALLOW,
)
from bot_bottle.standing import keep
from bot_bottle.timestamps import later, seconds_between, utc_now
from tests.helpers.support import TempDirTest, file_as_a_sidecar, query_plans

DOCS = '{"host": "docs.python.org", "paths": ["/3/"]}'


def token_report(host: str = "api.github.com", method: str = "POST", fingerprint: str = "f" * 64) -> str:
    """An egress-token-allow report as the egress helper files it."""
    return json.dumps({"host": host, "method": method, "path": "/x", "detector": "github-pat", "snippet": "*",
                       "value_length": 40, "fingerprint": fingerprint})


class GrantCase(TempDirTest):
    def setUp(self) -> None:
        super().setUp()
        self.db = self.tmp / "grants.db"
        self.store = QueueStore(self.db)
        self.addCleanup(self.store.close)
        self.grants = GrantStore(database=self.store.db)
        self.audit = AuditStore(database=self.store.db)

    def file(self, payload: str = DOCS, bottle: str = "web-1", tool: str = TOOL_EGRESS_ALLOW,
             justification: str = "the docs") -> str:
        return self.store.submit(bottle, tool, payload, justification).id

    def row_count(self, table: str) -> int:
        with self.store.db.read() as conn:
            return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


class GrantTest(GrantCase):
    def test_an_approval_makes_a_grant_with_the_tools_default_end(self) -> None:
        """Approving an egress route grants exactly the route shown, for 7 days; a token 8 hours."""
        route = self.file()
        decide(route, STATUS_APPROVED, store=self.store)
        (grant,) = self.grants.listing("web-1")
        self.assertEqual(grant.subject_value, {"host": "docs.python.org", "methods": [], "paths": ["/3/"]})
        self.assertEqual(round(seconds_between(grant.starts_at, grant.ends_at)), 7 * 86400)
        self.assertEqual((grant.proposal_id, grant.rule_id), (route, None))
        token = self.file(token_report(), tool=TOOL_EGRESS_TOKEN_ALLOW)
        decide(token, STATUS_APPROVED, "expected", store=self.store)
        grant = self.grants.for_proposal(token)
        assert grant is not None
        self.assertEqual(round(seconds_between(grant.starts_at, grant.ends_at)), 8 * 3600)
        entry = self.audit.entries(limit=1)[0]
        self.assertEqual(entry.details["grant"]["id"], grant.id)
        self.assertTrue(self.audit.verify().ok)

    def test_a_modification_grants_what_the_operator_wrote(self) -> None:
        """Modify: the grant is the operator's route, not the agent's."""
        proposal = self.file('{"host": "*.python.org"}')
        decide(proposal, STATUS_MODIFIED, "narrowed", '{"host": "docs.python.org", "methods": ["GET"]}',
               store=self.store)
        (grant,) = self.grants.listing()
        self.assertEqual(grant.subject_value, {"host": "docs.python.org", "methods": ["GET"], "paths": []})

    def test_for_within_the_maximum(self) -> None:
        """--for shortens or extends within the tool's maximum; past it, one error and nothing recorded."""
        proposal = self.file()
        decide(proposal, STATUS_APPROVED, store=self.store, grant_for=30 * 86400)
        (grant,) = self.grants.listing()
        self.assertEqual(round(seconds_between(grant.starts_at, grant.ends_at)), 30 * 86400)
        other = self.file('{"host": "pypi.org"}')
        before = (self.row_count("responses"), self.row_count("grants"), self.audit.count())
        with self.assertRaisesRegex(ValidationError, r"^for: 91d is longer than egress-allow grants may last \(90d"):
            decide(other, STATUS_APPROVED, store=self.store, grant_for=91 * 86400)
        for bad in (0, -5, True, 1.5):
            with self.subTest(bad=bad), self.assertRaises(ValidationError):
                decide(other, STATUS_APPROVED, store=self.store, grant_for=bad)  # type: ignore[arg-type]
        self.assertEqual((self.row_count("responses"), self.row_count("grants"), self.audit.count()), before)

    def test_rejection_grants_nothing(self) -> None:
        """A rejection makes no grant; a report the subject cannot be read from is approved without one."""
        decide(self.file(), STATUS_REJECTED, "no", store=self.store)
        self.assertEqual(self.grants.listing(include_ended=True), [])
        odd = self.file('{"not": "a report"}', tool=TOOL_EGRESS_TOKEN_ALLOW)
        decide(odd, STATUS_APPROVED, "ok", store=self.store)
        self.assertIsNone(self.grants.for_proposal(odd))
        with self.assertRaisesRegex(ValidationError, "does not say what it would grant"):
            decide(self.file('{"still": "odd"}', tool=TOOL_EGRESS_TOKEN_ALLOW), STATUS_APPROVED, "ok",
                   store=self.store, grant_for=3600)

    def test_revoke(self) -> None:
        """Revoking ends a grant now, audited with its reason; a second revocation is refused."""
        decide(self.file(), STATUS_APPROVED, store=self.store)
        (grant,) = self.grants.listing()
        revoked = self.grants.revoke(grant.short_id, "the mirror is down", revoked_by="op@host")
        self.assertFalse(revoked.live(utc_now()))
        self.assertEqual(self.grants.listing(), [])
        self.assertEqual(self.store.for_bottle("web-1").live_grants(TOOL_EGRESS_ALLOW), [])
        entry = self.audit.entries(limit=1)[0]
        self.assertEqual((entry.action, entry.notes, entry.details["grant"]), ("grant-revoked", "the mirror is down",
                                                                               grant.id))
        with self.assertRaisesRegex(AlreadyEnded, "revoked already"):
            self.grants.revoke(grant.id, "again", revoked_by="op@host")
        with self.assertRaisesRegex(ValidationError, "must not be empty"):
            self.grants.revoke(grant.id, "  ", revoked_by="op@host")
        self.assertTrue(self.audit.verify().ok)

    def test_live_grants_are_the_bottles_own(self) -> None:
        """A bottle's handle answers with its own live grants only."""
        decide(self.file(bottle="web-1"), STATUS_APPROVED, store=self.store)
        decide(self.file(bottle="web-2"), STATUS_APPROVED, store=self.store)
        mine = self.store.for_bottle("web-1").live_grants(TOOL_EGRESS_ALLOW)
        self.assertEqual([g.queue_key for g in mine], ["web-1"])
        self.assertEqual(self.store.for_bottle("web-1").live_grants(TOOL_EGRESS_TOKEN_ALLOW), [])

    def test_route_coverage(self) -> None:
        """A route grant covers its host (DNS-folded), methods and path prefixes, nothing else."""
        subject = subject_of(TOOL_EGRESS_ALLOW, '{"host": "docs.python.org", "methods": ["GET"], "paths": ["/3/"]}')
        self.assertTrue(route_covers(subject, "DOCS.python.org.", "GET", "/3/library/"))
        for host, method, path in (("docs.python.org", "POST", "/3/"), ("docs.python.org", "get", "/3/"),
                                   ("docs.python.org", "GET", "/2/"), ("python.org", "GET", "/3/"),
                                   ("x.docs.python.org", "GET", "/3/"), ("docs.python.org.evil", "GET", "/3/"),
                                   ("\u212a.docs.python.org", "GET", "/3/")):
            with self.subTest(host=host, method=method, path=path):
                self.assertFalse(route_covers(subject, host, method, path))
        wild = subject_of(TOOL_EGRESS_ALLOW, '{"host": "*.pythonhosted.org"}')
        self.assertTrue(route_covers(wild, "files.pythonhosted.org", "PUT", "/"))
        self.assertFalse(route_covers(wild, "pythonhosted.org", "GET", "/"))
        self.assertFalse(route_covers(wild, "evilpythonhosted.org", "GET", "/"))


class RuleTest(GrantCase):
    def remember(self, scope: str = "bottle", payload: str = DOCS, status: str = STATUS_APPROVED) -> None:
        """Decide a proposal of ``payload`` with --remember ``scope``; archive it, as its caller would once told."""
        proposal = self.file(payload)
        decide(proposal, status, "" if status == STATUS_APPROVED else "no", store=self.store,
               grant_for=7 * 86400 if status == STATUS_APPROVED else None, remember=scope)
        self.store.archive(proposal)

    def test_remember_bottle_decides_the_same_again_in_the_filing_transaction(self) -> None:
        """--remember bottle: the host (here, the relay's hook) decides the next matching filing as it files it."""
        self.remember()
        (rule,) = self.grants.rules()
        self.assertEqual((rule.queue_key, rule.effect, rule.pattern), ("web-1", "approve", 0))
        from bot_bottle.standing import rule_decision_in
        again = self.store.for_bottle("web-1", standing=rule_decision_in)
        proposal = again.submit(TOOL_EGRESS_ALLOW, DOCS, "the docs, again")
        response = again.response(proposal.id)
        assert response is not None
        self.assertEqual((response.status, response.decided_by), (STATUS_APPROVED, f"rule {rule.id}"))
        grant = self.grants.for_proposal(proposal.id)
        assert grant is not None and rule.ends_at is not None
        self.assertEqual(grant.rule_id, rule.id)
        self.assertLessEqual(grant.ends_at, rule.ends_at)
        self.assertEqual([e.action for e in self.audit.entries()], ["approved", "rule-added", "approved"])
        self.assertTrue(self.audit.verify().ok)

    def test_a_rule_without_notes_says_where_it_came_from(self) -> None:
        """BROKE before the fix: a rule typed with no notes approved saying "approved before", of an ask nobody had
        approved; a remembered one still says so."""
        self.grants.add_rule(queue_key="web-1", tool=TOOL_EGRESS_ALLOW,
                             subject={"host": "typed.example", "methods": [], "paths": []}, pattern=False,
                             effect="approve", notes="", ends_at=later(utc_now(), 3600), created_by="op")
        typed = self.file('{"host": "typed.example"}')
        keep(self.store)
        self.assertRegex(self.store.response(typed).notes,  # type: ignore[union-attr]
                         r"^standing rule [0-9a-f]{8}: a rule the operator typed$")

    def test_a_rule_matches_exactly(self) -> None:
        """Another host, method, path, bottle or a subdomain: not matched; the operator is asked."""
        self.remember()
        for bottle, payload in (("web-1", '{"host": "docs.python.org"}'),
                                ("web-1", '{"host": "docs.python.org", "paths": ["/2/"]}'),
                                ("web-1", '{"host": "docs.python.org", "paths": ["/3/"], "methods": ["POST"]}'),
                                ("web-1", '{"host": "x.docs.python.org", "paths": ["/3/"]}'),
                                ("web-1", '{"host": "python.org", "paths": ["/3/"]}'),
                                ("web-2", DOCS)):
            with self.subTest(bottle=bottle, payload=payload):
                proposal = self.store.submit(bottle, TOOL_EGRESS_ALLOW, payload, "j")
                keep(self.store)
                self.assertIsNone(self.store.response(proposal.id))

    def test_an_agents_wildcard_is_matched_only_as_written(self) -> None:
        """A remembered *.python.org (the agent's own pattern) does not approve docs.python.org."""
        self.remember(payload='{"host": "*.python.org"}')
        sub = self.file('{"host": "docs.python.org"}')
        same = self.file('{"host": "*.python.org"}', justification="again")
        keep(self.store)
        self.assertIsNone(self.store.response(sub))
        response = self.store.response(same)
        self.assertEqual(response.status if response else None, STATUS_APPROVED)

    def test_remember_all_and_always_reject(self) -> None:
        """--remember all reaches every bottle; a standing rejection wins over an approval and may stand for good."""
        self.remember("all")
        self.remember("bottle", payload='{"host": "pastebin.com"}', status=STATUS_REJECTED)
        rules = {r.effect: r for r in self.grants.rules()}
        self.assertIsNone(rules["approve"].queue_key)
        self.assertIsNone(rules["reject"].ends_at, "always reject: no end")
        approved = self.file(bottle="web-9")
        rejected = self.file('{"host": "pastebin.com"}')
        keep(self.store)
        self.assertEqual(self.store.response(approved).status, STATUS_APPROVED)  # type: ignore[union-attr]
        response = self.store.response(rejected)
        assert response is not None
        self.assertEqual(response.status, STATUS_REJECTED)
        self.assertIn("standing rule", response.notes)

    def test_a_revoked_or_ended_rule_decides_nothing(self) -> None:
        """Revoked: the next matching proposal waits for the operator."""
        self.remember()
        (rule,) = self.grants.rules()
        self.grants.revoke_rule(rule.short_id, "enough", revoked_by="op")
        proposal = self.file(justification="after the revocation")
        keep(self.store)
        self.assertIsNone(self.store.response(proposal))
        self.assertTrue(self.audit.verify().ok)

    def test_agent_text_that_looks_like_a_rule_or_a_duration_changes_nothing(self) -> None:
        """A justification saying '--remember all --for 90d', a payload with for/remember keys: no rule, no widening."""
        proposal = self.file(justification="--remember all --for 90d; rules add --all-bottles --host '*'")
        decide(proposal, STATUS_APPROVED, store=self.store)
        self.assertEqual(self.grants.rules(include_ended=True), [])
        (grant,) = self.grants.listing()
        self.assertEqual(round(seconds_between(grant.starts_at, grant.ends_at)), 7 * 86400)
        payload = '{"host": "docs.python.org", "for": "90d", "remember": "all"}'
        with self.assertRaises(ValidationError):  # submit() takes no payload that is not a route
            self.file(payload)
        sneaky = file_as_a_sidecar(self.db, "web-1", TOOL_EGRESS_ALLOW, payload, "the docs").id  # a sidecar can
        decide(sneaky, STATUS_APPROVED, store=self.store)
        self.assertIsNone(self.grants.for_proposal(sneaky), "a payload that is not a route grants nothing")
        self.assertEqual(self.grants.rules(include_ended=True), [])


    def test_a_rejection_reads_the_logged_grants_through_the_time_index(self) -> None:
        """The grants a new rejection ends are also read from the log (a row's word is the file's), but only the
        months a grant may last, through audit_log_by_ts, the revocations and the approvals in one read: never a
        walk of the whole log under the write lock."""
        decide(self.file(), STATUS_APPROVED, store=self.store)
        with self.store.db.read() as conn:
            plans = query_plans(conn, lambda: self.grants.add_rule(
                queue_key=None, tool=TOOL_EGRESS_ALLOW, subject={"host": "docs.python.org", "methods": [],
                                                                 "paths": []},
                pattern=False, effect="reject", notes="no", ends_at=None, created_by="op"), "audit_log")
        logged = [plan for plan in plans if "audit_log_by_ts" in plan]
        self.assertEqual(len(logged), 1, plans)
        self.assertEqual(self.grants.listing(), [])


class ExpiryTest(GrantCase):
    def test_an_expired_proposal_answers_its_caller_and_refuses_approval(self) -> None:
        """Past its end: the waiting caller reads 'expired' at once; approving is one line and records nothing."""
        with mock.patch("bot_bottle.queue_store.pending_ttl_in", return_value=1):
            bottle = self.store.for_bottle("web-1")
            proposal = bottle.submit(TOOL_EGRESS_ALLOW, DOCS, "the docs")
        response = bottle.wait_for_response(proposal.id, 10, 0.05)
        assert response is not None
        self.assertEqual(response.status, STATUS_EXPIRED)
        self.assertIn("nobody decided", response.notes)
        with self.assertRaisesRegex(ProposalExpired, f"proposal {proposal.short_id} expired at"):
            decide(proposal.id, STATUS_APPROVED, store=self.store)
        self.assertEqual(self.audit.count(), 0)
        keep(self.store)  # the host closes it: a response, an entry, archived
        stored = self.store.response(proposal.id)
        self.assertEqual(stored.status if stored else None, STATUS_EXPIRED)
        self.assertEqual([e.action for e in self.audit.entries()], ["expired"])
        self.assertTrue(self.audit.verify().ok)
        again = bottle.submit(TOOL_EGRESS_ALLOW, DOCS, "the docs")
        self.assertNotEqual(again.id, proposal.id, "filing the same again asks again")

    def test_pending_ttl_setting(self) -> None:
        """config: within 1m..30d, audited; a value a sidecar wrote into the file is held to the bounds."""
        self.assertEqual(self.grants.pending_ttl(), 86400)
        self.assertEqual(self.grants.set_pending_ttl(12 * 3600, set_by="op"), 12 * 3600)
        proposal = self.store.submit("web-1", TOOL_EGRESS_ALLOW, DOCS, "j")
        assert proposal.expires_at is not None
        self.assertAlmostEqual(seconds_between(proposal.created_at, proposal.expires_at), 12 * 3600, delta=1)
        for bad in (5, 31 * 86400):
            with self.subTest(bad=bad), self.assertRaisesRegex(ValidationError, "pending-ttl"):
                self.grants.set_pending_ttl(bad, set_by="op")
        self.assertTrue(self.audit.verify().ok)
        raw = sqlite3.connect(self.db)
        self.addCleanup(raw.close)
        raw.execute("UPDATE settings SET value = '999999999'")
        raw.commit()
        self.assertEqual(self.grants.pending_ttl(), 30 * 86400)
        self.assertFalse(self.audit.verify().ok, "the setting no longer matches its entry")


class ProofTest(GrantCase):
    """audit verify holds every grant, rule and setting to the entry that recorded it."""

    def tamper(self, sql: str, trigger: str | None = None) -> str:
        raw = sqlite3.connect(self.db, isolation_level=None)
        self.addCleanup(raw.close)
        if trigger:
            raw.execute(f"DROP TRIGGER {trigger}")
        raw.execute(sql)
        result = self.audit.verify()
        self.assertFalse(result.ok, sql)
        return result.problem

    def setUp(self) -> None:
        super().setUp()
        decide(self.file(), STATUS_APPROVED, store=self.store, grant_for=86400, remember="bottle")
        self.assertTrue(self.audit.verify().ok)

    def test_a_grant_extended_in_the_file(self) -> None:
        problem = self.tamper("UPDATE grants SET ends_at = '2099-01-01T00:00:00.000000Z'", "grants_immutable")
        self.assertIn("grant", problem)

    def test_a_grant_widened_in_the_file(self) -> None:
        problem = self.tamper("UPDATE grants SET subject = '{\"host\":\"*\",\"methods\":[],\"paths\":[]}'",
                              "grants_immutable")
        self.assertIn("grant", problem)

    def test_a_grant_forged_in_the_file(self) -> None:
        # Another id (and proposal) than the real grant's: its first digit changed, whatever it was.
        other = "(CASE substr({0}, 1, 1) WHEN 'b' THEN 'c' ELSE 'b' END || substr({0}, 2))"
        problem = self.tamper(
            "INSERT INTO grants (id, queue_key, tool, subject, subject_sha256, starts_at, ends_at, proposal_id, "
            f"decided_by, audit_seq) SELECT {other.format('id')}, 'web-2', tool, subject, subject_sha256, starts_at, "
            f"ends_at, {other.format('proposal_id')}, decided_by, audit_seq + 1 FROM grants")
        self.assertIn("grant", problem)

    def test_a_grant_removed_from_the_file(self) -> None:
        problem = self.tamper("DELETE FROM grants", "grants_no_delete")
        self.assertIn("gone", problem)

    def test_a_rule_extended_in_the_file(self) -> None:
        problem = self.tamper("UPDATE rules SET ends_at = '2099-01-01T00:00:00.000000Z', queue_key = NULL",
                              "rules_immutable")
        self.assertIn("rule", problem)

    def test_a_rule_whose_end_is_no_time_decides_nothing_and_filing_goes_on(self) -> None:
        """A rule row whose end is no stored time (written past the CLI): it decides nothing, every bottle still
        files (the proposal waits for the operator), and 'audit verify' names the row."""
        problem = self.tamper("UPDATE rules SET ends_at = 'soon', queue_key = NULL", "rules_immutable")
        self.assertIn("rule", problem)
        from bot_bottle.standing import rule_decision_in
        for bottle in ("web-2", "web-3"):  # (web-1's approved proposal of the same route is still pending pickup)
            proposal = self.store.for_bottle(bottle, standing=rule_decision_in).submit(
                TOOL_EGRESS_ALLOW, DOCS, f"{bottle} after the row was changed")
            keep(self.store)
            self.assertIsNone(self.store.response(proposal.id))

    def test_a_revocation_undone_in_the_file(self) -> None:
        (grant,) = self.grants.listing()
        self.grants.revoke(grant.id, "done", revoked_by="op")
        self.assertTrue(self.audit.verify().ok)
        problem = self.tamper("UPDATE grants SET revoked_at = NULL, revoked_by = NULL, revoke_reason = NULL, "
                              "revoke_seq = NULL", "grants_immutable")
        self.assertIn("grant", problem)
