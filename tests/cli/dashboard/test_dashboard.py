"""The dashboard: who may use it, what it shows, and that it decides as the TUI does.

HTTP-level attacks (no token, a foreign Host or Origin, forged posts) run with
http.client against the real server; what the page does with hostile text,
and the whole flow from a sidecar's call to its decision, run in a real
headless Chromium (tests/helpers/browser.py).
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from typing import Any
from unittest import mock
from urllib.parse import urlencode

from bot_bottle.audit_store import AuditStore
from bot_bottle.cli.dashboard.state import MAX_FORM_BYTES, SECURITY_HEADERS, SESSION_COOKIE
from bot_bottle.cli.grants_cmds import MAX_NAMED_ENDED
from bot_bottle.decisions import decide
from bot_bottle.errors import AnchorNotWritten, DatabaseBusy
from bot_bottle.grants import GrantStore
from bot_bottle.queue_reads import shown_digest
from bot_bottle.queue_store import QueueStore
from bot_bottle.records import (
    TOOL_EGRESS_ALLOW,
    TOOL_EGRESS_BLOCK,
    TOOL_GITLEAKS_ALLOW,
    Proposal,
    Response,
    sha256_text,
)
from bot_bottle.timestamps import seconds_between
from tests.helpers.dashboard import DashboardCase, start_dashboard
from tests.helpers.support import REPO, TempDirTest


class AccessTest(DashboardCase):
    def test_the_token_becomes_a_session_cookie(self) -> None:
        """No token, a wrong one, a wrong cookie: refused. The right token: a cookie, and the URL without it."""
        self.store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "a.example"}', "secret-justification")
        for path, session in (("/", False), ("/static/app.js", False), ("/api/changes", False),
                              ("/?token=wrong", False), ("/?token=", False)):
            status, headers, body = self.call("GET", path, session=session)
            self.assertEqual(status, 403, path)
            self.assertNotIn("secret-justification", body)
            self.assertNotIn("set-cookie", headers)
        status, _, body = self.call("GET", "/", headers={"Cookie": f"{SESSION_COOKIE}=guess"}, session=False)
        self.assertEqual(status, 403)
        token = urlencode({"token": self.dashboard.token})
        status, headers, _ = self.call("GET", f"/audit?{token}", session=False)
        self.assertEqual(status, 303)
        self.assertEqual(headers["location"], f"{self.dashboard.root}/audit")
        cookie = headers["set-cookie"]
        self.assertIn(f"{SESSION_COOKIE}={self.dashboard.session}", cookie)
        for flag in ("HttpOnly", "SameSite=Strict", f"Path={self.dashboard.root}"):
            self.assertIn(flag, cookie)
        self.assertNotIn(self.dashboard.token, cookie)
        status, _, body = self.call("GET", "/")
        self.assertEqual(status, 200)
        self.assertIn("secret-justification", body)
        self.assertNotIn(self.dashboard.token, body)
        self.assertNotIn(self.dashboard.session, body)
        self.assertTrue(self.server.url.endswith(f"{self.dashboard.root}/?{token}"))
        for sneaky in ("//evil.example/", "/\\evil.example/", "/%2F%2Fevil.example/"):
            status, headers, _ = self.call("GET", f"{sneaky}?{token}", session=False)
            # A path of ours at most (http.server already folds a leading "//" into "/"): never another site.
            self.assertEqual(status, 303)
            self.assertRegex(headers["location"], r"^/(?![/\\])[A-Za-z0-9/_.-]*$", sneaky)
            self.assertTrue(headers["location"].startswith(self.dashboard.root + "/"), sneaky)

    def test_foreign_host_and_origin_are_refused(self) -> None:
        """DNS rebinding (a foreign Host) and a foreign page (its Origin) get 403, even with the cookie."""
        self.store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "a.example"}', "secret-justification")
        for headers in ({"Host": f"evil.example:{self.port}"}, {"Host": "evil.example"},
                        {"Origin": "http://evil.example"}, {"Origin": "null"},
                        {"Host": f"evil.example:{self.port}", "Origin": f"http://evil.example:{self.port}"}):
            status, _, body = self.call("GET", "/", headers=dict(headers))
            self.assertEqual(status, 403, headers)
            self.assertNotIn("secret-justification", body)

    def test_every_answer_carries_the_security_headers(self) -> None:
        """CSP without inline script, no framing, no caching, no sniffing, referrers kept to ourselves."""
        proposal = self.store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "a.example"}', "why")
        answers = [self.call("GET", "/"), self.call("GET", f"/proposal/{proposal.id}"), self.call("GET", "/audit"),
                   self.call("GET", "/static/app.js"), self.call("GET", "/nope"), self.call("GET", "/", session=False),
                   self.call("GET", "/", headers={"Host": "evil.example"}),
                   self.post(proposal, "decide", {"csrf": "forged"})]
        for status, headers, _ in answers:
            with self.subTest(status=status):
                policy = headers["content-security-policy"]
                self.assertIn("script-src 'self'", policy)
                self.assertIn("default-src 'none'", policy)
                self.assertIn("frame-ancestors 'none'", policy)
                self.assertIn("form-action 'self'", policy)
                self.assertNotIn("unsafe", policy)
                self.assertEqual(headers["x-frame-options"], "DENY")
                self.assertEqual(headers["cache-control"], "no-store")
                self.assertEqual(headers["x-content-type-options"], "nosniff")
                self.assertEqual(headers["referrer-policy"], "same-origin")


class ForgedPostTest(DashboardCase):
    def test_forged_posts_change_nothing(self) -> None:
        """Without the CSRF token, the cookie, our exact Origin or a same-origin fetch, a post records nothing."""
        proposal = self.store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "a.example"}', "why")
        approve = {"status": "approved", "notes": "forged"}
        forged: list[tuple[str, dict[str, Any], int]] = [
            ("no csrf", {"fields": {**approve, "csrf": None}}, 403),
            ("wrong csrf", {"fields": {**approve, "csrf": "x" * 43}}, 403),
            ("no cookie", {"fields": approve, "session": False}, 403),
            ("no origin", {"fields": approve, "headers": {"Origin": None}}, 403),
            ("foreign origin", {"fields": approve, "headers": {"Origin": "http://evil.example"}}, 403),
            ("null origin", {"fields": approve, "headers": {"Origin": "null"}}, 403),
            ("another local port", {"fields": approve, "headers": {"Origin": "http://127.0.0.1:1"}}, 403),
            ("cross-site fetch", {"fields": approve, "headers": {"Sec-Fetch-Site": "cross-site"}}, 403),
            ("same-site fetch", {"fields": approve, "headers": {"Sec-Fetch-Site": "same-site"}}, 403),
            ("not form data", {"fields": approve, "headers": {"Content-Type": "text/plain"}}, 415),
            ("an unknown field", {"fields": {**approve, "decided_by": "mallory"}}, 400),
            ("a field twice", {"fields": approve, "raw": f"csrf={self.dashboard.csrf}&shown="
                               f"{shown_digest(proposal)}&status=approved&status=rejected".encode()}, 400),
            ("not UTF-8", {"fields": approve, "raw": b"csrf=\xff\xfe&status=approved"}, 400),
            ("another proposal's digest", {"fields": {**approve, "shown": "0" * 64}}, 409),
            ("no button (Enter in a text box)", {"fields": {**approve, "decision": None}}, 400),
            ("another decision's button", {"fields": {**approve, "decision": "reject"}}, 400),
        ]
        for name, arguments, expected in forged:
            with self.subTest(name):
                status, _, _ = self.post(proposal, "decide", **arguments)
                self.assertEqual(status, expected)
                self.assert_unchanged(proposal)
        status, headers, _ = self.post(proposal, "decide", approve)
        # On to the next pending proposal; none is left, so the inbox, which says what was recorded.
        self.assertEqual((status, headers["location"]), (303, f"{self.dashboard.root}/?after={proposal.id}"))
        response = self.store.response(proposal.id)
        assert response is not None
        self.assertEqual((response.status, response.notes), ("approved", "forged"))
        self.assertTrue(response.decided_by.endswith("(dashboard)"))
        self.assertTrue(AuditStore(database=self.store.db).verify().ok)

    def test_a_proposal_rewritten_in_the_file_is_not_decided(self) -> None:
        """The page's digest no longer matches a proposal a sidecar rewrote: 409, nothing recorded."""
        proposal = self.store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "a.example"}', "why")
        with self.store.db.write() as conn:
            conn.execute("DROP TRIGGER proposals_immutable")
            conn.execute("UPDATE proposals SET payload = '{\"host\": \"*\"}' WHERE id = ?", (proposal.id,))
        status, _, body = self.post(proposal, "decide", {"status": "approved"})
        self.assertEqual(status, 409)
        self.assertIn("not what the page showed", body)
        self.assert_unchanged(proposal)


class RulesTest(DashboardCase):
    def test_the_tui_rules_and_its_confirmation(self) -> None:
        """Reasons where the TUI needs them; a modification is confirmed on its own diff and recorded as shown."""
        route = self.store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "pypi.org"}', "pip")
        report = self.store.submit("web-1", TOOL_GITLEAKS_ALLOW, '{"findings": []}', "fixture")
        status, _, body = self.post(route, "decide", {"status": "rejected", "notes": "  "})
        self.assertEqual(status, 400)
        self.assertIn("rejecting a proposal needs a reason", body)
        status, _, body = self.post(report, "decide", {"status": "approved", "notes": ""})
        self.assertEqual(status, 400)
        self.assertIn("needs a reason", body)
        status, _, body = self.post(report, "preview", {"final": "anything"})
        self.assertEqual(status, 400)
        self.assertIn("report-only", body)
        for bad in ('{"host": "*"', '{"host": "pypi.org"}', '{"host": "a.example", "host": "b.example"}'):
            status, _, body = self.post(route, "preview", {"final": bad})
            self.assertEqual(status, 400, bad)
            self.assertIn("cannot record this file", body)
        self.assert_unchanged(route)
        final = '{"host": "pypi.org", "paths": ["/simple/"]}'
        status, _, body = self.post(route, "preview", {"final": final.replace("\n", "\r\n")})
        self.assertEqual(status, 200)
        self.assertIn("diff (proposed -&gt; final, both as JSON: keys sorted, indented)", body)
        self.assertIn("record this modification", body)
        self.assertNotIn("data-marker", body)  # a confirmation never refreshes under the operator
        digest = re.search(r'name="final_sha256" value="([0-9a-f]{64})"', body)
        assert digest is not None
        status, _, _ = self.post(route, "decide", {"status": "modified", "final": final + " ",
                                                   "final_sha256": digest.group(1)})
        self.assertEqual(status, 409)
        self.assert_unchanged(route)
        status, _, _ = self.post(route, "decide", {"status": "modified", "final": final,
                                                   "final_sha256": digest.group(1), "notes": "narrowed"})
        self.assertEqual(status, 303)
        response = self.store.response(route.id)
        assert response is not None
        self.assertEqual((response.status, response.final_file, response.notes), ("modified", final, "narrowed"))
        status, _, body = self.post(route, "decide", {"status": "approved"})
        self.assertEqual(status, 409)
        self.assertIn("already modified", body)


    def test_the_second_ask_says_the_length_and_the_rule(self) -> None:
        """BROKE before the fix: approving *.co.uk (widens) with "remember: every bottle" and 1h answered "Approve
        ID? It reaches more than it reads as": its button made a rule approving every bottle's *.co.uk, named
        nowhere on the page; and a length past the maximum was refused only after that button. Now the page
        says for how long and the rule, and a length that cannot be is refused before it."""
        wide = self.store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "*.co.uk"}', "all of them")
        status, _, body = self.post(wide, "decide", {"status": "approved", "for": "100d", "remember": "all"})
        self.assertEqual(status, 400)
        self.assertIn("100d is longer than egress-allow grants may last", body)
        self.assertNotIn("yes, approve", body)
        status, _, body = self.post(wide, "decide", {"status": "approved", "for": "1h", "remember": "all"})
        self.assertEqual(status, 200)
        self.assertIn(f"Approve {wide.short_id} for 1h, and the same again for every bottle until then? It reaches "
                      "more than it reads as", body)
        self.assertIn(f"yes, approve {wide.short_id}", body)
        self.assert_unchanged(wide)

    def test_a_remembered_rejection_says_which_grants_it_ended(self) -> None:
        """Reject +all from the page: web-2's grant for the same host ends, and the page after says which."""
        earlier = self.store.submit("web-2", TOOL_EGRESS_ALLOW, '{"host": "pypi.org"}', "pip")
        decide(earlier.id, "approved", store=self.store)
        grant = GrantStore(database=self.store.db).for_proposal(earlier.id)
        assert grant is not None
        route = self.store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "pypi.org"}', "pip")
        status, headers, _ = self.post(route, "decide", {"status": "rejected", "notes": "no index",
                                                         "remember": "all"})
        self.assertEqual(status, 303)
        status, _, body = self.call("GET", headers["location"].removeprefix(self.dashboard.root))
        self.assertEqual(status, 200)
        self.assertIn(f"; ended grant {grant.short_id} (web-2: pypi.org", body)
        self.assertEqual(GrantStore(database=self.store.db).listing(), [])
        (rule,) = GrantStore(database=self.store.db).rules()
        self.assertIn(f"; rule {rule.short_id}: rejects the same again for every bottle, for good", body)

    def test_approving_or_modifying_a_routes_file_names_the_one_it_replaces(self) -> None:
        """BROKE before the fix: approving (or modifying) web-1's routes file, over one approved before, ended that
        file's grant, and the page after said only 'approved ID (web-1, egress-block) by ...': the file it replaced
        went unsaid. It names the grant it ended and the proposal that approved it; with none in force, nothing."""
        def decided(proposal: Proposal, fields: dict[str, str]) -> str:
            status, headers, _ = self.post(proposal, "decide", fields)
            self.assertEqual(status, 303)
            status, _, body = self.call("GET", headers["location"].removeprefix(self.dashboard.root))
            self.assertEqual(status, 200)
            self.assertIn(f"{fields['status']} {proposal.short_id} (web-1, egress-block) by", body)
            return body

        def replaces(proposal: Proposal) -> str:
            grant = GrantStore(database=self.store.db).for_proposal(proposal.id)
            assert grant is not None
            return f"it replaces the routes file approved on proposal {proposal.short_id}: grant {grant.short_id} ended"

        first = self.store.submit("web-1", TOOL_EGRESS_BLOCK, "routes:\n- a.com\n", "a.com")
        self.assertNotIn("it replaces", decided(first, {"status": "approved"}), "none in force: nothing said")
        second = self.store.submit("web-1", TOOL_EGRESS_BLOCK, "routes:\n- a.com\n- b.com\n", "b.com too",
                                   current_file="routes:\n- a.com\n")
        said = replaces(first)
        self.assertIn(said, decided(second, {"status": "approved"}))
        third = self.store.submit("web-1", TOOL_EGRESS_BLOCK, "routes:\n- a.com\n- c.com\n", "c.com too")
        final = "routes:\n- a.com\n"
        said = replaces(second)
        self.assertIn(said, decided(third, {"status": "modified", "final": final, "final_sha256": sha256_text(final)}))
        fourth = self.store.submit("web-1", TOOL_EGRESS_BLOCK, "routes:\n- a.com\n- d.com\n", "d.com too")
        said = replaces(third)

        def anchor_not_moved(*args: Any, **kwargs: Any) -> Response:  # the disk full after the commit
            raise AnchorNotWritten("audit entry 9 is recorded and stands, but the audit anchor could not be moved",
                                   decide(*args, **kwargs))
        with mock.patch("bot_bottle.cli.dashboard.posts.decide", anchor_not_moved):
            status, _, body = self.post(fourth, "decide", {"status": "approved"})
        self.assertEqual(status, 200)
        self.assertIn(f"approved; {said}", body)
        self.assertIn("but audit entry 9 is recorded and stands", body)

    def test_revoking_a_grant_a_rule_approves_again_says_so(self) -> None:
        """BROKE before the fix: revoking, from the bottles page, a grant whose approval was remembered went back
        to the page with no word, and the rule approved the bottle's next ask for the same at once."""
        route = self.store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "pypi.org"}', "pip")
        decide(route.id, "approved", store=self.store, grant_for=3600, remember="bottle")
        grants = GrantStore(database=self.store.db)
        grant = grants.for_proposal(route.id)
        (rule,) = grants.rules()
        assert grant is not None
        body = self.revoke_posted(grant.id)
        self.assertIn(f"revoked grant {grant.short_id} (web-1: pypi.org", body)
        self.assertIn(f"; rule {rule.short_id}, remembered with it, still approves the same again for web-1", body)
        # What the page says comes from the grant's row: a live grant's id, or a made-up one, says nothing.
        other = self.store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "docs.python.org"}', "docs")
        decide(other.id, "approved", store=self.store)
        live = grants.for_proposal(other.id)
        assert live is not None
        for shown in (live.id, "0" * 32, "<b>x</b>"):
            _, _, body = self.call("GET", f"/bottles?revoked={shown}")
            self.assertNotIn("revoked grant", body)

    def test_a_revocation_without_a_reason_is_the_forms_fault(self) -> None:
        """An empty reason is refused as a bad request (400), as a decision's is, and nothing is revoked. BROKE
        before (review 67): 409, as if another operator's change had got in the way."""
        route = self.store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "pypi.org"}', "pip")
        decide(route.id, "approved", store=self.store)
        grant = GrantStore(database=self.store.db).for_proposal(route.id)
        assert grant is not None
        status, _, body = self.post_revoke(grant.id, "")
        self.assertEqual(status, 400, body)
        self.assertIn("not revoked", body)
        live = GrantStore(database=self.store.db).for_proposal(route.id)
        self.assertIsNotNone(live)
        assert live is not None
        self.assertIsNone(live.revoked_at)

    def test_what_expired_unanswered_links_each_to_its_page(self) -> None:
        """BROKE before the fix: the inbox's line naming what expired unanswered ended "('proposals list --all')",
        a shell's command, and its ids opened nothing: the dashboard has no such list. Now each id opens the
        proposal's own page, which says it expired and what approving would have granted."""
        with mock.patch("bot_bottle.queue_store.pending_ttl_in", return_value=1):
            gone = self.store.submit("web-2", TOOL_EGRESS_ALLOW, '{"host": "a.example"}', "gone")
        time.sleep(1.2)
        status, _, body = self.call("GET", "/")
        self.assertEqual(status, 200)
        said = body[body.index('<p class="expired"'):]
        said = said[:said.index("</p>")]
        self.assertIn(f'<a href="{self.dashboard.root}/proposal/{gone.id}">{gone.short_id}</a> (web-2, egress-allow)',
                      said)
        self.assertIn("(each id opens its page)", said)
        self.assertNotIn("proposals list", said)
        status, _, body = self.call("GET", f"/proposal/{gone.id}")
        self.assertEqual(status, 200)
        self.assertIn("expired by bot-bottle (pending-ttl)", body)

    def test_a_remembered_rejection_decides_and_names_the_pending_ones_it_matches(self) -> None:
        """BROKE before the fix: rejecting with "the same for this bottle" made the rule and went on to the next
        proposal, which the rule rejects, shown still to be decided; the page named none of what the rule decided.
        Now those are decided before the next page, which names them, as 'rules add' and the CLI do."""
        route = self.store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "pypi.org"}', "pip")
        same = self.store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "pypi.org", "methods": ["GET"]}', "pip")
        other = self.store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "docs.python.org"}', "docs")
        status, headers, _ = self.post(route, "decide", {"status": "rejected", "notes": "no index",
                                                         "remember": "bottle"})
        self.assertEqual(status, 303)
        self.assertIn(other.id, headers["location"], "on to the one still pending")
        response = self.store.response(same.id)
        self.assertEqual(response.status if response else None, "rejected")
        status, _, body = self.call("GET", headers["location"].removeprefix(self.dashboard.root))
        self.assertIn(f"it rejected 1 pending proposal(s) it matches, now: {same.short_id}", body)

    def test_a_remembered_approval_names_its_rule(self) -> None:
        """BROKE before the fix: approving with "the same for this bottle, until then" said only "approved ID
        (web-1, egress-allow) by ...": the rule it made, and until when, were named nowhere on the next page."""
        route = self.store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "pypi.org"}', "pip")
        status, headers, _ = self.post(route, "decide", {"status": "approved", "for": "1h", "remember": "bottle"})
        self.assertEqual(status, 303)
        status, _, body = self.call("GET", headers["location"].removeprefix(self.dashboard.root))
        (rule,) = GrantStore(database=self.store.db).rules()
        self.assertIn(f"; rule {rule.short_id}: approves the same again for web-1, until {rule.ends_at} (1h)", body)

    def test_the_audit_page_names_a_rule_by_its_short_id(self) -> None:
        """BROKE before the fix: the audit page's 'by' named a standing rule by all 32 digits ('rule 3b441b90...'),
        where 'audit list', 'grants list', 'rules list' and the page's own notes ('standing rule 3b441b90') name it
        by 8."""
        route = self.store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "pypi.org"}', "pip")
        status, _, _ = self.post(route, "decide", {"status": "approved", "for": "1h", "remember": "bottle"})
        self.assertEqual(status, 303)
        self.store.archive(route.id)
        again = self.store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "pypi.org"}', "pip again")
        (rule,) = GrantStore(database=self.store.db).rules()
        self.call("GET", "/")  # the inbox applies the standing rules as it looks
        status, _, body = self.call("GET", "/audit")
        self.assertEqual(status, 200)
        self.assertIn(f"<td>{again.short_id}</td><td>rule {rule.short_id}</td>", body)
        self.assertNotIn(rule.id, body)

    def test_a_remembered_rejection_can_stand_for_a_time(self) -> None:
        """BROKE before the fix: the reject form's rule stood for good, with no length to give (the CLI's reject
        takes --for, the TUI asks): 'no new hosts this week' could only be a rejection forever. Now the form has
        a length, the rule ends then, the next page says until when; a length without a rule is refused, said in
        the page's words, and nothing is recorded."""
        route = self.store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "pypi.org"}', "pip")
        status, _, page = self.call("GET", f"/proposal/{route.id}")
        reject_form = page[page.index('id="reject"'):]
        reject_form = reject_form[:reject_form.index("</form>")]
        self.assertIn('name="for"', reject_form)
        status, _, body = self.post(route, "decide", {"status": "rejected", "notes": "not this week", "for": "7d"})
        self.assertEqual(status, 400)
        self.assertIn("not recorded: for: a rejection has no length: a length says how long a remembered rejection "
                      "(a rule) stands, so remember it, for this bottle or every bottle, or give no length", body)
        self.assertNotIn("--for", body)
        self.assertIsNone(self.store.response(route.id))
        self.assertEqual(list(GrantStore(database=self.store.db).rules()), [])
        status, headers, _ = self.post(route, "decide", {"status": "rejected", "notes": "not this week",
                                                         "for": "7d", "remember": "bottle"})
        self.assertEqual(status, 303)
        (rule,) = GrantStore(database=self.store.db).rules()
        self.assertEqual((rule.effect, rule.queue_key), ("reject", "web-1"))
        self.assertIsNotNone(rule.ends_at)
        self.assertEqual(seconds_between(rule.created_at, rule.ends_at), 7 * 86400)
        status, _, body = self.call("GET", headers["location"].removeprefix(self.dashboard.root))
        self.assertIn(f"rule {rule.short_id}", body)
        self.assertIn(f"until {rule.ends_at}", body)

    def test_a_flood_of_ended_grants_is_counted_on_the_next_page(self) -> None:
        """A sidecar's forged rows over the host, each ended by the remembered rejection: the next page names
        twelve and counts the rest, where it named every one (10,000 forged rows, 10,000 clauses)."""
        raw = sqlite3.connect(self.path, isolation_level=None)
        try:
            for _ in range(15):
                raw.execute("INSERT INTO grants (id, queue_key, tool, subject, subject_sha256, starts_at, ends_at, "
                            "proposal_id, rule_id, decided_by, audit_seq) VALUES (lower(hex(randomblob(16))), "
                            "'web-2', 'egress-allow', '{\"host\": \"pypi.org\", \"methods\": [], \"paths\": []}', "
                            "'" + "0" * 64 + "', '2026-01-01T00:00:00.000000Z', '2999-01-01T00:00:00.000000Z', "
                            "lower(hex(randomblob(16))), NULL, 'x', 1000000 + abs(random() % 1000000))")
        finally:
            raw.close()
        route = self.store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "pypi.org"}', "pip")
        status, headers, _ = self.post(route, "decide", {"status": "rejected", "notes": "no index",
                                                         "remember": "all"})
        self.assertEqual(status, 303)
        status, _, body = self.call("GET", headers["location"].removeprefix(self.dashboard.root))
        self.assertEqual(body.count("; ended grant "), MAX_NAMED_ENDED)
        self.assertIn(f"; and {15 - MAX_NAMED_ENDED} more grants (&#x27;grants list --all&#x27; shows them)", body)


class VerbTest(TempDirTest):
    def test_the_verb_prints_its_url_serves_and_stops(self) -> None:
        """bot-bottle dashboard: one URL with a token on 127.0.0.1, served, and exit 0 on SIGTERM."""
        path = self.tmp / "verb.db"
        QueueStore(path).close()
        process = subprocess.Popen([sys.executable, "-m", "bot_bottle", "dashboard", "--db", str(path)], cwd=REPO,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                   env={**os.environ, "HOME": str(self.home)})
        self.addCleanup(lambda: process.poll() is None and process.kill())
        assert process.stdout is not None
        first = process.stdout.readline()
        found = re.fullmatch(r"dashboard at (http://127\.0\.0\.1:(\d+)/[A-Za-z0-9_-]{32}/\?token=[A-Za-z0-9_-]{43})\n",
                             first)
        assert found is not None, first
        conn = http.client.HTTPConnection("127.0.0.1", int(found.group(2)), timeout=10)
        conn.request("GET", found.group(1).split(found.group(2), 1)[1])
        answer = conn.getresponse()
        self.assertEqual(answer.status, 303)
        self.assertIn("HttpOnly", answer.getheader("Set-Cookie") or "")
        conn.close()
        process.terminate()
        _, errors = process.communicate(timeout=15)
        self.assertEqual(process.returncode, 0, errors)

    def test_a_standing_rule_decides_while_it_runs_with_no_page_open(self) -> None:
        """With no relay and no page loaded, the dashboard's keeper decides a proposal a rule matches the moment
        it is committed: the sidecar's wait returns the rule's rejection."""
        path = self.tmp / "rules.db"
        QueueStore(path).close()
        added = self.run_cli("rules", "add", "--db", str(path), "--all-bottles", "--host", "pastebin.com",
                             "--reject", "--notes", "no pastes")
        self.assertEqual(added.returncode, 0, added.stderr)
        process = start_dashboard(self, path)
        with QueueStore(path) as store:
            bottle = store.for_bottle("web-1")
            filed = bottle.submit(TOOL_EGRESS_ALLOW, '{"host": "pastebin.com"}', "a paste")
            kept = bottle.submit(TOOL_EGRESS_ALLOW, '{"host": "pypi.org"}', "pip")
            response = bottle.wait_for_response(filed.id, 30)
            self.assertIsNone(store.response(kept.id), "a proposal no rule matches waits for the operator")
        assert response is not None
        self.assertEqual(response.status, "rejected")
        self.assertTrue(response.decided_by.startswith("rule "), response.decided_by)
        process.terminate()
        _, errors = process.communicate(timeout=15)
        self.assertEqual(process.returncode, 0, errors)

    def test_bad_arguments(self) -> None:
        """A port out of range is a usage error; a --db that does not exist is one clear line."""
        self.assert_clean_error(self.run_cli("dashboard", "--port", "70000"), 2, "--port")
        self.assert_clean_error(self.run_cli("dashboard", "--db", str(self.tmp / "nope.db")), 1, "no database there")


class BoundsTest(DashboardCase):
    def test_a_stalled_request_and_an_oversized_form_are_refused(self) -> None:
        """The guarded base holds here too: a request trickled past its deadline gets 408, a huge form 413 unread."""
        self.server.request_timeout = 0.5
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            answer = sock.recv(65536)
        self.assertTrue(answer.startswith(b"HTTP/1.1 408 "), answer[:80])
        self.assertIn(b"Content-Security-Policy:", answer)
        proposal = self.store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "a.example"}', "why")
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as sock:
            sock.sendall(f"POST {self.dashboard.root}/proposal/{proposal.id}/decide HTTP/1.1\r\n"
                         f"Host: 127.0.0.1:{self.port}\r\n"
                         f"Cookie: {SESSION_COOKIE}={self.dashboard.session}\r\nOrigin: {self.origin}\r\n"
                         "Content-Type: application/x-www-form-urlencoded\r\n"
                         f"Content-Length: {MAX_FORM_BYTES + 1}\r\n\r\n".encode())
            answer = sock.recv(65536)
        self.assertTrue(answer.startswith(b"HTTP/1.1 413 "), answer[:80])
        self.assert_unchanged(proposal)


class SidecarWrittenRowsTest(DashboardCase):
    def test_rows_a_sidecar_wrote_are_shown_as_text_and_flagged(self) -> None:
        """A made-up last_seen shows escaped (the bottle stale); a response written into the file is unproven."""
        proposal = self.store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "a.example"}', "why")
        with self.store.db.write() as conn:
            conn.execute("UPDATE bottles SET state = 'running', last_seen = ? WHERE slug = 'web-1'",
                         ("<script>window.x=1</script>\x1b[2J",))
            conn.execute("INSERT INTO responses (proposal_id, status, notes, decided_by, decided_at) "
                         "VALUES (?, 'approved', '<b>ok</b>', 'alice@desk\x1b]0;t\x07', '2026-01-01T00:00:00.000000Z')",
                         (proposal.id,))
        status, _, body = self.call("GET", "/bottles")
        self.assertEqual(status, 200)
        self.assertIn('<td class="state">stale</td>', body)
        self.assertNotIn("<script>window", body)
        self.assertNotIn("\x1b", body)
        status, _, body = self.call("GET", f"/proposal/{proposal.id}")
        self.assertEqual(status, 200)
        self.assertIn("WARNING: the audit log does not prove this decision", body)
        self.assertIn("&lt;b&gt;ok&lt;/b&gt;", body)
        self.assertIn('alice@desk<span class="esc">\\x1b</span>]0;t<span class="esc">\\x07</span>', body)
        self.assertNotIn('name="csrf"', body)  # decided: no form to decide it again


class UnusableDatabaseTest(DashboardCase):
    """A locked, missing or replaced database: a styled page that says what happened and what to do."""

    def assert_styled(self, path: str, *needles: str) -> str:
        status, headers, body = self.call("GET", path)
        self.assertEqual(status, 503)
        self.assertIn(f'<link rel="stylesheet" href="{self.dashboard.root}/static/style.css">', body)
        self.assertIn('class="problem"', body)
        self.assertEqual(headers["content-security-policy"], SECURITY_HEADERS["Content-Security-Policy"])
        for needle in needles:
            self.assertIn(needle, body)
        self.assertNotIn("internal error", body)
        return body

    def test_a_locked_database_is_a_styled_page_that_comes_back_by_itself(self) -> None:
        proposal = self.store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "a.example"}', "why")
        busy = DatabaseBusy("dash.db stayed locked for 5 s")
        with mock.patch.object(self.dashboard.queue, "get", side_effect=busy), \
                mock.patch.object(self.dashboard.queue, "pending_summaries", side_effect=busy):
            for path in ("/", f"/proposal/{proposal.id}"):
                with self.subTest(path):
                    body = self.assert_styled(path, "The database is busy", "looks again by itself",
                                              "bot-bottle doctor")
                    self.assertIn('data-page="problem"', body)
            status, _, body = self.call("GET", "/api/changes")
            self.assertEqual((status, "the database cannot be used now" in body), (503, True))
            status, _, body = self.post(proposal, "decide", {"status": "approved"})
            self.assertEqual(status, 503)
            self.assertIn("Nothing was recorded", body)
        self.assertIsNone(self.store.response(proposal.id))
        status, _, _ = self.call("GET", "/")
        self.assertEqual(status, 200)

    def test_a_removed_or_replaced_database_is_said_so_and_decides_nothing(self) -> None:
        proposal = self.store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "a.example"}', "why")
        moved = self.tmp / "moved.db"
        os.rename(self.path, moved)
        self.assert_styled("/", "The database file is gone", "stop this dashboard (Ctrl-C)")
        status, _, body = self.post(proposal, "decide", {"status": "approved"})
        self.assertEqual(status, 503)
        self.assertIn("The database file is gone", body)
        status, _, body = self.call("GET", "/api/changes")
        self.assertEqual(status, 503)
        self.assertIn("The database file is gone", json.loads(body)["problem"])
        # Another database put at the path (a backup restored, a copy moved in).
        with QueueStore(self.path) as other:
            other.submit("web-9", TOOL_EGRESS_ALLOW, '{"host": "b.example"}', "a stranger")
        body = self.assert_styled(f"/proposal/{proposal.id}", "The database file was replaced")
        self.assertNotIn("a stranger", body)
        status, _, _ = self.post(proposal, "decide", {"status": "approved"})
        self.assertEqual(status, 503)
        with QueueStore(moved) as old:
            self.assertIsNone(old.response(proposal.id))

    def test_a_wal_swapped_under_the_dashboard_is_said_so_and_decides_nothing(self) -> None:
        """The database stays; a sidecar on the mount renames a copy of its -wal over it and moves its -shm away:
        the dashboard's connection would read and write the old ones, which no other process sees."""
        proposal = self.store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "a.example"}', "why")
        self.assertEqual(self.call("GET", "/")[0], 200)
        shutil.copyfile(f"{self.path}-wal", self.tmp / "copy-wal")
        os.rename(f"{self.path}-shm", self.tmp / "old-shm")
        os.rename(self.tmp / "copy-wal", f"{self.path}-wal")
        body = self.assert_styled("/", "The database file was replaced", f"{self.path}-wal was replaced")
        self.assertNotIn("a.example", body)
        status, _, body = self.post(proposal, "decide", {"status": "approved"})
        self.assertEqual(status, 503)
        self.assertIn("The database file was replaced", body)
        with QueueStore(self.path) as now:  # the files at the path, as every other process sees them
            self.assertIsNone(now.response(proposal.id))
            self.assertEqual([p.id for p in now.pending()], [proposal.id])
