"""The inbox and a proposal's page in real headless Chromium: what approving grants first, nothing decided by
accident (Enter, a second ask for what widens, a page that changed under the operator), keys, live updates."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from unittest import mock

from bot_bottle.audit_store import AuditStore
from bot_bottle.bottles import BottleStore
from bot_bottle.cli.launch_routes import record_launch_routes
from bot_bottle.decisions import decide
from bot_bottle.grants import GrantStore
from bot_bottle.queue_store import QueueStore
from bot_bottle.records import (
    STATUS_APPROVED,
    TOOL_EGRESS_ALLOW,
    TOOL_EGRESS_BLOCK,
    TOOL_EGRESS_TOKEN_ALLOW,
    TOOL_GITLEAKS_ALLOW,
    Proposal,
)
from bot_bottle.timestamps import format_timestamp
from tests.helpers.corpus import HTML_ATTACKS
from tests.helpers.dashboard import BrowserCase, artifact_dir
from tests.helpers.inbox_corpus import FAKE_ROUTE, file_look_alikes


class InboxTest(BrowserCase):
    def rows(self) -> dict[str, dict[str, object]]:
        """The inbox's rows as the browser has them: per id, its cells' text, badges and cell order."""
        return dict(self.browser.script(
            "return Array.from(document.querySelectorAll('tr[data-row]')).map(row => [row.dataset.row, {"
            " grants: row.querySelector('td.grants').textContent,"
            " badges: Array.from(row.querySelectorAll('td.grants .badge')).map(b => b.textContent),"
            " agent: row.querySelector('td.agent').textContent,"
            " grantsFirst: row.querySelector('td.grants').cellIndex < row.querySelector('td.agent').cellIndex,"
            " selected: row.classList.contains('selected')}])"))

    def refreshes(self) -> int:
        """How many times this page has refreshed itself so far (counting from now on, the first time asked).

        Counted where its refresh parses the page it fetched again, which it patches itself with in the same
        step (app.js's ``refresh``): once the count has grown, what changed has been applied."""
        return int(self.browser.script(
            "if (window.__bbRefreshes === undefined) {"
            "  window.__bbRefreshes = 0; const parse = DOMParser.prototype.parseFromString;"
            "  DOMParser.prototype.parseFromString = function () {"
            "    window.__bbRefreshes += 1; return parse.apply(this, arguments); };"
            "}"
            "return window.__bbRefreshes"))

    def refreshed(self, since: int, timeout: float = 20) -> None:
        """Wait until the page has refreshed itself (polled, seen a commit and applied it) since ``refreshes``
        said ``since``: instead of a poll's interval and a margin, the moment it did."""
        done = self.browser.script(
            "const since = arguments[0], end = performance.now() + arguments[1] * 1000;"
            "return new Promise(done => { const look = () => {"
            "  if (window.__bbRefreshes > since) done(true);"
            "  else if (performance.now() > end) done(false); else setTimeout(look, 20); }; look(); })",
            since, timeout)
        self.assertTrue(done, f"the page did not refresh itself within {timeout} s")

    def unchanged(self, *proposals: Proposal) -> None:
        for proposal in proposals:
            self.assertIsNone(self.store.response(proposal.id), proposal.short_id)
        self.assertEqual(AuditStore(database=self.store.db).count(), 0)

    def test_the_grants_column_and_badges_for_the_hostile_corpus(self) -> None:
        """Look-alike hosts escaped and flagged, wildcards over platforms' suffixes flagged, the agent's words last."""
        filed = {
            **file_look_alikes(self.store, self.path, "Read-only access to the Python docs"),
            # *.net: *.com also covers lacolhost.com and the metadata service's names on IBM's and Tencent's clouds
            "html": self.store.submit("web-5", TOOL_EGRESS_ALLOW, '{"host": "*.net"}',
                                      "\u202eharmless " + HTML_ATTACKS[0]),
        }
        self.log_in()
        self.browser.do("wait_text", text="5 pending from 5 bottle(s)")
        rows = self.rows()
        expected = {
            "cyrillic": ("nothing: the route does not parse", ["look-alike", "unreadable"]),
            # no routes file on record for web-2: every host reads as new (audit.routes_approved)
            "routes": ("routes file: adds a.example, pypi\\u2024org, *.compute.amazonaws.com",
                       ["widens", "look-alike", "drifted"]),
            "fake-route": ("*.readthedocs.io (any method; every path)", ["widens"]),
            "token": ("a github-pat token, sent to xn--pyp-lhd.org (POST; every path)", ["look-alike"]),
            "html": ("*.net (any method; every path)", ["widens"]),
        }
        for name, (grants, badges) in expected.items():
            with self.subTest(name):
                row = rows[filed[name].id]
                self.assertEqual(row["badges"], badges)
                self.assertEqual(row["grants"], "".join(badges) + grants)
                self.assertTrue(row["grantsFirst"])
                self.assertNotIn("docs.python.org", str(row["grants"]))
        self.assertEqual(rows[filed["fake-route"].id]["agent"], "agent: Read-only access to the Python docs")
        self.assertIn("\\u202e", str(rows[filed["html"].id]["agent"]))
        # The page of the one whose justification draws a route: the grant and its warning in the first screen,
        # the agent's words under their own heading, last, cut short.
        self.open(f"/proposal/{filed['fake-route'].id}")
        page = self.browser.script(
            "const grant = document.querySelector('[data-part=grant]');"
            "const agent = document.querySelector('[data-part=agent]');"
            "return {grantFirst: !!(grant.compareDocumentPosition(agent) & Node.DOCUMENT_POSITION_FOLLOWING),"
            " cautionTop: grant.querySelector('.caution').getBoundingClientRect().top, height: innerHeight,"
            " shownLines: agent.querySelectorAll(':scope > .text > .line').length,"
            " more: agent.querySelector('details summary').textContent, heading: agent.querySelector('h2')"
            ".textContent}")
        self.assertTrue(page["grantFirst"])
        self.assertLess(page["cautionTop"], page["height"])
        self.assertLessEqual(page["shownLines"], 12)
        self.assertEqual(page["more"], "show all (19994 more line(s) the agent wrote)")
        self.assertIn("its own words, not checked", page["heading"])
        self.open(f"/proposal/{filed['routes'].id}")
        cautions = self.browser.script("return Array.from(document.querySelectorAll('li.caution'))"
                                       ".map(c => c.textContent)")
        self.assertTrue(any("U+2024 (ONE DOT LEADER)" in c and "is pypi.org" in c for c in cautions), cautions)
        self.assertTrue(any("*.compute.amazonaws.com" in c and "widens" in c for c in cautions), cautions)
        self.unchanged(*filed.values())

    def test_a_narrow_window_shows_each_grant_whole_before_the_agents_words(self) -> None:
        """BROKE before the fix: at 600 px the fixed columns before the grants took the whole width, so what
        approving grants was drawn outside the window (and the headings over each other); at 1000 px the
        agent's words had none. Now each proposal is a block: id, bottle, time left, then the grants, whole."""
        wide = self.store.submit("web-1", TOOL_EGRESS_ALLOW, json.dumps(
            {"host": "files.example.com", "methods": ["GET"], "paths": ["/simple/" + "x" * 60]}), "words " * 300)
        inside = self.store.submit("web-2", TOOL_EGRESS_ALLOW, '{"host": "169.254.169.254"}', "the cache")
        self.log_in()
        self.browser.do("wait_text", text="2 pending from 2 bottle(s)")
        for width in (600, 1000):
            with self.subTest(width=width):
                self.assertLessEqual(self.browser.do("size", width=width, height=800), width)
                cells = self.browser.script(
                    "return Array.from(document.querySelectorAll('tr[data-row]')).map(row => {"
                    " const box = cell => row.querySelector(cell).getBoundingClientRect();"
                    " const grants = row.querySelector('td.grants');"
                    " return {id: row.dataset.row, grants: [box('td.grants').left, box('td.grants').right,"
                    "  grants.scrollWidth - grants.clientWidth, grants.textContent],"
                    " below: box('td.grants').top >= box('td.id').bottom,"
                    " agent: [box('td.agent').top >= box('td.grants').bottom, box('td.agent').height,"
                    "  box('td.agent').width],"
                    " page: document.documentElement.scrollWidth}})")
                for row in cells:
                    left, right, clipped, _text = row["grants"]
                    self.assertGreaterEqual(left, 0, row)
                    self.assertLessEqual(right, width, row)
                    self.assertLessEqual(clipped, 0, f"what approving grants is cut: {row}")
                    self.assertTrue(row["below"], row)
                    self.assertLessEqual(row["page"], width, "the page scrolls sideways")
                    agent_below, agent_height, agent_width = row["agent"]
                    self.assertTrue(agent_below, row)
                    self.assertGreater(agent_width, 200, row)
                    self.assertLess(agent_height, 60, "at most two lines of the agent's words")
                by_id = {row["id"]: row["grants"][3] for row in cells}
                self.assertIn("/simple/" + "x" * 60 + ")", by_id[wide.id])
                self.assertIn("internal", by_id[inside.id])
        self.browser.do("size", width=1280, height=900)

    def test_a_laptops_window_gives_the_tool_and_ages_room_to_the_grants_and_the_agent(self) -> None:
        """BROKE before the fix: at 1280 px the tool and age columns left the agent's words about 14 characters
        ('agent: read the std…') and cut a token's grant ('(POST; ever…'); under 1600 px they are left out, as
        the terminal's lists leave them out under 100 columns, and a proposal's page still shows both."""
        token = self.store.submit("api-3", TOOL_EGRESS_TOKEN_ALLOW, json.dumps(
            {"host": "api.github.com", "method": "POST", "path": "/repos", "detector": "github-pat",
             "value_length": 40, "snippet": "token ***", "fingerprint": "ab" * 32}), "open the issue for the bug")
        self.log_in()
        self.browser.do("wait_text", text="1 pending from 1 bottle(s)")
        for width, tool_shown in ((1280, False), (1700, True)):
            with self.subTest(width=width):
                self.browser.do("size", width=width, height=800)
                seen = self.browser.script(
                    "const row = document.querySelector('tr[data-row]');"
                    "const cell = row.querySelector('td.grants');"
                    "return [row.querySelector('td:nth-child(3)').offsetParent !== null,"
                    " cell.scrollWidth - cell.clientWidth, row.querySelector('td.agent').clientWidth];")
                self.assertEqual(seen[0], tool_shown, seen)
                self.assertLessEqual(seen[1], 0, f"what approving grants is cut: {seen}")
                self.assertGreater(seen[2], 200, seen)
        self.browser.do("size", width=1280, height=900)
        self.unchanged(token)

    def test_no_page_scrolls_sideways_in_a_narrow_window(self) -> None:
        """BROKE before the fix: under about 520 px the bar's 'notifications' and 'keys (?)' buttons were drawn
        past the window's edge on every page, and under 800 px the bottles, grants and rules tables (and the
        audit log's under 1100) pushed the whole page sideways, a grant's revoke button outside the window; on
        a proposal's page, what approving grants ran past the edge, and the note and reason boxes under 530 px.
        Now the bar wraps, a table wider than the window scrolls in its own box, the grants wrap, and no box is
        wider than the window."""
        route = self.store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "docs.python.org"}', "the docs")
        pending = self.store.submit("web-2", TOOL_EGRESS_ALLOW, '{"host": "pypi.org"}', "the index")
        decide(route.id, STATUS_APPROVED, notes="fine for the docs " * 8, store=self.store)
        self.log_in()
        self.browser.do("wait_text", text="1 pending")
        for path in ("/", "/bottles", "/audit", f"/proposal/{route.id}", f"/proposal/{pending.id}"):
            for width in (360, 600):
                with self.subTest(path=path, width=width):
                    self.browser.do("size", width=width, height=800)
                    self.open(path)
                    shown = self.browser.script(
                        "const page = document.documentElement;"
                        "return {page: page.scrollWidth, window: page.clientWidth,"
                        " bar: Math.max(...Array.from(document.querySelectorAll('nav > *'))"
                        "  .filter(e => e.offsetParent !== null).map(e => e.getBoundingClientRect().right))}")
                    self.assertLessEqual(shown["page"], shown["window"], f"the page scrolls sideways: {shown}")
                    self.assertLessEqual(shown["bar"], shown["window"], f"the bar runs past the window: {shown}")
        self.browser.do("size", width=1280, height=900)

    def test_enter_in_each_text_box_approves_nothing(self) -> None:
        """Enter in every text box of every form (with the page's script, and without it): nothing recorded."""
        route = self.store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "docs.python.org"}', "docs")
        report = self.store.submit("web-2", TOOL_GITLEAKS_ALLOW, json.dumps(
            {"pushed": [], "findings": [{"rule": "aws", "file": "k.py", "line": 1, "commit": "ab" * 20,
                                         "ref": "refs/heads/main", "line_text": "****"}]}), "a fixture")
        self.log_in()
        boxes = {route: ('#approve input[name="notes"]', '#approve input[name="for"]', '#reject input[name="notes"]'),
                 report: ('#approve input[name="notes"]', '#reject input[name="notes"]')}
        for scripted in (True, False):
            for proposal, selectors in boxes.items():
                self.open(f"/proposal/{proposal.id}")
                if not scripted:  # as if the page's script did not run: the page's HTML alone holds Enter
                    self.browser.script("window.addEventListener('keydown', e => e.stopImmediatePropagation(), true)")
                self.settle()  # so that the script's guard cannot be what holds a click
                for box in selectors:
                    with self.subTest(box=box, tool=proposal.tool, script=scripted):
                        self.browser.script("document.querySelector(arguments[0]).focus()", box)
                        self.browser.keys("no - too broad", "Enter")
                        self.browser.script("return new Promise(done => setTimeout(done, 300))")
                        self.assertEqual(self.browser.do("url"), f"{self.origin}{self.dashboard.root}/proposal/"
                                         f"{proposal.id}")
                        self.unchanged(route, report)
        # The confirmation of a modification, and the revoke form of a grant.
        self.open(f"/proposal/{route.id}")
        self.browser.do("type", css='textarea[name="final"]', text='{"host": "docs.python.org", "paths": ["/3/"]}')
        self.settle()
        self.browser.do("click", css='#modify button[name="decision"]')
        self.browser.do("wait_text", text="diff (proposed -> final")
        self.settle()
        self.browser.script("document.querySelector('#confirm input[name=notes]').focus()")
        self.browser.keys("narrowed", "Enter")
        self.browser.script("return new Promise(done => setTimeout(done, 500))")
        self.assertIn("Confirm your modification", self.browser.text())
        self.unchanged(route, report)

    def test_a_revoke_reason_and_enter_revokes_nothing(self) -> None:
        proposal = self.store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "docs.python.org"}', "docs")
        self.post(proposal, "decide", {"status": "approved"})
        self.log_in()
        self.open("/bottles")
        self.settle()
        self.browser.script("document.querySelector('form.revoke input[name=reason]').focus()")
        self.browser.keys("no longer needed", "Enter")
        self.browser.script("return new Promise(done => setTimeout(done, 500))")
        self.assertEqual(len(GrantStore(database=self.store.db).listing()), 1)

    def test_the_widening_confirmation_appears_and_names_the_grant(self) -> None:
        """Approving '*.readthedocs.io' asks once more, naming the grant and why; only its button records it."""
        wide = self.store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "*.readthedocs.io"}', "docs")
        self.log_in()
        self.open(f"/proposal/{wide.id}")
        self.browser.do("type", css='#approve input[name="notes"]', text="docs")
        self.settle()
        self.browser.do("click", css='#approve button[name="decision"]')
        page = self.browser.do("wait_text", text="It reaches more than it reads as")
        self.assertIn("*.readthedocs.io (any method; every path)", page)
        self.assertIn("a shared platform's suffix", page)
        self.assertEqual(self.browser.script("return document.querySelector('#confirm button.send').textContent"),
                         f"yes, approve {wide.short_id}: *.readthedocs.io (any method; every path)")
        self.unchanged(wide)
        # The second ask, answered with a made-up token, records nothing either.
        status, _, _ = self.post(wide, "decide", {"status": "approved", "confirm": "0" * 64})
        self.assertEqual(status, 409)
        self.unchanged(wide)
        self.settle()
        self.browser.do("click", css='#confirm button[name="decision"]')
        self.browser.do("wait_text", text=f"approved {wide.short_id} (web-1, egress-allow) by")
        response = self.store.response(wide.id)
        assert response is not None
        self.assertEqual((response.status, response.notes), ("approved", "docs"))

    def test_a_modification_that_widens_is_asked_for_twice_too(self) -> None:
        proposal = self.store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "docs.python.org"}', "docs")
        self.log_in()
        self.open(f"/proposal/{proposal.id}")
        self.browser.do("type", css='textarea[name="final"]', text='{"host": "*.github.io"}')
        self.settle()
        self.browser.do("click", css='#modify button[name="decision"]')
        self.browser.do("wait_text", text="your version grants")
        # The file it confirms is a hidden field: nothing on the page to edit by mistake.
        self.assertEqual(self.browser.script("const final = document.querySelector('#confirm [name=final]');"
                                             "return [final.type, final.offsetParent === null]"), ["hidden", True])
        self.settle()
        self.browser.do("click", css='#confirm button[name="decision"]')
        page = self.browser.do("wait_text", text="It reaches more than it reads as")
        self.assertIn("*.github.io", page)
        self.assertIsNone(self.store.response(proposal.id))
        self.settle()
        self.browser.do("click", css='#confirm button[name="decision"]')
        self.browser.do("wait_text", text=f"modified {proposal.short_id}")
        response = self.store.response(proposal.id)
        assert response is not None
        self.assertEqual(response.final_file, '{"host": "*.github.io"}')

    def test_a_proposal_rewritten_while_its_page_is_idle_is_marked_changed_and_not_approved(self) -> None:
        """'docs2.python.org' rewritten to '*.org' in the file: the page says so, with the difference, keeps what
        it showed and decides nothing, from the page or with its form sent anyway."""
        proposal = self.store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "docs2.python.org"}', "docs")
        other = self.store.submit("web-2", TOOL_EGRESS_ALLOW, '{"host": "pypi.org"}', "pip")
        self.log_in()
        self.open(f"/proposal/{proposal.id}")
        self.browser.do("wait_text", text="docs2.python.org")
        raw = sqlite3.connect(self.path, isolation_level=None)
        self.addCleanup(raw.close)
        raw.execute("DROP TRIGGER proposals_immutable")
        widened = '{"host": "*.org"}'
        raw.execute("UPDATE proposals SET payload = ?, payload_sha256 = ? WHERE id = ?",
                    (widened, hashlib.sha256(widened.encode()).hexdigest(), proposal.id))
        page = self.browser.do("wait_text", text="This proposal changed since this page showed it")
        state = self.browser.script(
            "return {changed: document.querySelector('[data-part=changed]').textContent,"
            " grant: document.querySelector('[data-part=grant]').textContent,"
            " enabled: Array.from(document.querySelectorAll('form.decide button[name=decision]'))"
            "   .filter(b => !b.disabled).length, digest: document.body.dataset.digest}")
        self.assertIn("-  docs2.python.org (any method; every path)", state["changed"])
        self.assertIn("+  *.org (any method; every path)", state["changed"])
        self.assertIn("docs2.python.org", state["grant"])  # what it showed stays: never swapped under the operator
        self.assertNotIn("*.org", state["grant"])
        self.assertEqual(state["enabled"], 0)
        self.assertIn("decides nothing now", page)
        # Sending the form anyway (the button enabled by hand): the server holds it to what the page showed.
        self.settle()
        self.browser.script("const form = document.getElementById('approve');"
                            "form.querySelectorAll('input, button, select').forEach(e => e.disabled = false);"
                            "form.querySelector('button.send').click()")
        self.browser.do("wait_text", text="not what the page showed")
        self.assertIsNone(self.store.response(proposal.id))
        self.assertIsNone(self.store.response(other.id))

    def test_a_refresh_keeps_selection_and_focus_and_updates_what_changed(self) -> None:
        """A commit elsewhere (a new proposal, a heartbeat) leaves the selected text and the focused box alone."""
        first = self.store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "docs.python.org"}', "the stdlib docs")
        self.log_in()
        self.browser.do("wait_text", text="1 pending")
        self.browser.script(
            "const cell = document.querySelector('td.agent');"
            "const range = document.createRange(); range.selectNodeContents(cell);"
            "getSelection().removeAllRanges(); getSelection().addRange(range);")
        selected = self.browser.script("window.__sameDocument = true; return getSelection().toString()")
        later = self.store.submit("web-2", TOOL_EGRESS_ALLOW, '{"host": "pypi.org"}', "pip install")
        self.browser.do("wait_text", text="pip install")
        for _ in range(2):  # heartbeats: commits that change nothing the page shows
            since = self.refreshes()
            BottleStore(database=self.store.db).heartbeat("web-1")
            self.refreshed(since)
        self.assertEqual(self.browser.script("return getSelection().toString()"), selected)
        self.assertTrue(self.browser.script("return window.__sameDocument === true"), "the page was reloaded")
        self.assertEqual(self.browser.script("return document.title"), "(2) inbox - bot-bottle dashboard")
        # On a proposal's page, the note being typed survives a refresh and a heartbeat.
        self.open(f"/proposal/{first.id}")
        self.browser.do("type", css='#approve input[name="notes"]', text="half a sentence")
        since = self.refreshes()
        self.store.submit("web-3", TOOL_EGRESS_ALLOW, '{"host": "a.example"}', "third")
        self.refreshed(since)
        state = self.browser.script("return {value: document.querySelector('#approve input[name=notes]').value,"
                                    " focused: document.activeElement.name, title: document.title}")
        self.assertEqual(state, {"value": "half a sentence", "focused": "notes",
                                 "title": f"(3) proposal {first.short_id} - bot-bottle dashboard"})
        self.assertIsNone(self.store.response(later.id))

    def test_each_row_counts_down_its_time_left_and_what_expired_is_said(self) -> None:
        """Before: no page said when a pending proposal would expire, nor that one had expired unanswered."""
        with mock.patch("bot_bottle.queue_store.pending_ttl_in", return_value=1):
            gone = self.store.submit("web-2", TOOL_EGRESS_ALLOW, '{"host": "a.example"}', "gone")
        with mock.patch("bot_bottle.queue_store.pending_ttl_in", return_value=600):
            waiting = self.store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "docs.python.org"}', "the docs")
        time.sleep(1.2)
        self.log_in()
        self.browser.do("wait_text", text="1 pending")
        left = "return document.querySelector('td.left time').textContent"
        first = self.browser.script(left)
        self.assertRegex(first, r"^(10m|9m\d+s)$")
        # The page's script counts it down with the ages, every 10 s, without asking the server.
        later = self.browser.script(
            "const first = arguments[0]; const cell = document.querySelector('td.left time');"
            "return new Promise(done => { const end = Date.now() + 15000; const look = () => {"
            "  if (cell.textContent !== first || Date.now() > end) done(cell.textContent); else setTimeout(look, 200);"
            "}; look(); })", first)
        self.assertRegex(later, r"^9m\d+s$")
        self.assertNotEqual(later, first, "counted down by the page's script")
        said = self.browser.script("return document.querySelector('p.expired').textContent")
        self.assertIn(f"expired unanswered in the last 24 h, each caller told no: {gone.short_id} "
                      "(web-2, egress-allow)", said)
        self.assertIsNone(self.store.response(waiting.id))

    def test_shortcuts_and_next(self) -> None:
        """j/k select, Enter opens, a goes to the note, Ctrl+Enter sends, the next proposal follows; ? and u."""
        first = self.store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "docs.python.org"}', "one")
        second = self.store.submit("web-2", TOOL_EGRESS_ALLOW, '{"host": "pypi.org"}', "two")
        third = self.store.submit("web-3", TOOL_EGRESS_ALLOW, '{"host": "a.example"}', "three")
        self.log_in()
        self.settle()
        self.browser.keys("j", "j")
        self.assertTrue(self.rows()[second.id]["selected"])
        self.browser.keys("k")
        self.assertTrue(self.rows()[first.id]["selected"])
        self.browser.keys("j", "Enter")
        self.browser.do("wait_text", text=f"Proposal {second.short_id}")
        self.settle()
        self.browser.keys("a")
        self.assertEqual(self.browser.script("return document.activeElement.closest('form').id"), "approve")
        self.browser.keys("fine", "Ctrl+Enter")
        self.browser.do("wait_text", text=f"approved {second.short_id} (web-2, egress-allow) by")
        self.assertIn(f"Proposal {third.short_id}", self.browser.text())  # the next one, filed after it
        self.assertIn("this is the next pending proposal", self.browser.text())
        # Keys typed at once on the next page were meant for the last one: dropped.
        self.browser.keys("a", "too quick", "Ctrl+Enter")
        self.browser.script("return new Promise(done => setTimeout(done, 800))")
        self.assertIsNone(self.store.response(third.id))
        self.assertIn("ignored: the page changed just now", self.browser.text())
        self.settle()
        self.browser.keys("k")
        self.browser.do("wait_text", text=f"Proposal {first.short_id}")
        self.settle()
        self.browser.keys("?")
        self.assertFalse(self.browser.script("return document.getElementById('keys').hidden"))
        self.browser.keys("Escape", "u")
        self.browser.do("wait_text", text="2 pending from 2 bottle(s)")
        self.assertEqual(self.browser.script("return document.title"), "(2) inbox - bot-bottle dashboard")

    def test_filters_and_search_narrow_the_inbox_and_decide_nothing(self) -> None:
        """'/' focuses the search; Enter there searches (a GET); bottle, tool and warning narrow; a bad one is 400."""
        wide = self.store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "*.readthedocs.io"}', "docs")
        look = self.store.submit("web-2", TOOL_EGRESS_BLOCK, "routes:\n- a.example\n- pypi\u2024org\n", "mirrors",
                                 current_file="routes:\n- a.example\n")
        plain = self.store.submit("web-2", TOOL_EGRESS_ALLOW, '{"host": "files.pythonhosted.org"}', "wheels")
        self.log_in()
        self.browser.do("wait_text", text="3 pending from 2 bottle(s)")
        self.settle()
        self.browser.keys("/")
        self.assertEqual(self.browser.script("return document.activeElement.id"), "search")
        self.browser.keys("READTHEDOCS", "Enter")
        self.browser.do("wait_text", text="1 shown")
        self.assertEqual(list(self.rows()), [wide.id])
        self.assertIn("q=READTHEDOCS", self.browser.do("url"))
        self.open("/?warning=look-alike")
        self.assertEqual(list(self.rows()), [look.id])
        self.open("/?bottle=web-2&tool=egress-allow")
        self.assertEqual(list(self.rows()), [plain.id])
        self.open("/?warning=any")
        self.assertEqual(list(self.rows()), [wide.id, look.id])
        # The form itself, as an operator uses it: pick a kind of warning, press show.
        self.open("/")
        self.browser.script("document.querySelector('select[name=warning]').value = 'widens'")
        self.browser.do("click", css="form.filters button[type=submit]")
        self.browser.do("wait_text", text="1 shown")
        self.assertEqual(list(self.rows()), [wide.id])
        self.open("/?q=zebra")
        self.assertIn("no pending proposals match", self.browser.text())
        for query in ("warning=scary", "tool=rm-rf", "bottle=..%2Fetc"):
            with self.subTest(query):
                status, _, body = self.call("GET", f"/?{query}")
                self.assertEqual(status, 400)
                self.assertIn("Bad request", body)
        self.unchanged(wide, look, plain)

    def test_a_database_locked_by_another_process_is_a_styled_page_and_records_nothing(self) -> None:
        """Another process holds the write lock past the busy timeout while the operator approves: a styled page
        saying so, nothing recorded; once the lock goes, the same page decides normally."""
        proposal = self.store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "docs.python.org"}', "docs")
        self.log_in()
        self.open(f"/proposal/{proposal.id}")
        self.browser.do("type", css='#approve input[name="notes"]', text="ok")
        self.settle()
        holder = subprocess.Popen(
            [sys.executable, "-c", "import sqlite3, sys, time\n"
             "conn = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
             "conn.execute('BEGIN IMMEDIATE'); print('locked', flush=True); sys.stdin.read()",
             str(self.path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.addCleanup(holder.wait, 10)
        self.addCleanup(holder.kill)
        assert holder.stdout is not None
        self.assertEqual(holder.stdout.readline().strip(), "locked")
        self.browser.do("click", css='#approve button[name="decision"]')
        page = self.browser.do("wait_text", text="The database is busy", timeout=20)
        self.assertIn("Nothing was recorded", page)
        self.assertTrue(self.browser.script(
            "return getComputedStyle(document.body).fontFamily !== '' && !!document.querySelector('.problem')"))
        holder.communicate("", timeout=10)  # the lock goes with the process
        self.assertIsNone(self.store.response(proposal.id))
        self.open(f"/proposal/{proposal.id}")
        self.browser.do("type", css='#approve input[name="notes"]', text="ok")
        self.settle()
        self.browser.do("click", css='#approve button[name="decision"]')
        self.browser.do("wait_text", text=f"approved {proposal.short_id} (web-1, egress-allow) by")

    def test_a_database_replaced_under_an_open_page_disables_its_forms(self) -> None:
        """A backup restored over the file while a proposal's page is open: the page says so and its forms go."""
        proposal = self.store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "docs.python.org"}', "docs")
        self.log_in()
        self.open(f"/proposal/{proposal.id}")
        self.browser.do("type", css='#approve input[name="notes"]', text="ok")
        moved = self.tmp / "moved.db"
        os.rename(self.path, moved)
        with QueueStore(self.path) as other:
            stranger = other.submit("web-9", TOOL_EGRESS_ALLOW, '{"host": "b.example"}', "a stranger")
        page = self.browser.do("wait_text", text="The database file was replaced", timeout=20)
        self.assertNotIn("a stranger", page)
        self.assertEqual(self.browser.script(
            "return Array.from(document.querySelectorAll('form.decide button[name=decision]'))"
            ".filter(b => !b.disabled).length"), 0)
        self.assertIn("not live", self.browser.script("return document.getElementById('live').textContent"))
        with QueueStore(moved) as old, QueueStore(self.path) as new:
            self.assertIsNone(old.response(proposal.id))
            self.assertIsNone(new.response(stranger.id))

    def test_a_notification_when_one_arrives_off_by_default(self) -> None:
        """Switched on (permission given), a new proposal is announced with its bottle; off, nothing."""
        self.store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "docs.python.org"}', "one")
        self.log_in()
        self.browser.script(
            "window.__notes = []; window.Notification = class { constructor(title, options) {"
            " window.__notes.push([title, options.body]); } };"
            "Notification.permission = 'granted'; Notification.requestPermission = () => Promise.resolve('granted');")
        self.assertEqual(self.browser.script("return document.getElementById('notify').textContent"),
                         "notifications: off")
        self.store.submit("web-2", TOOL_EGRESS_ALLOW, '{"host": "pypi.org"}', "two")
        self.browser.do("wait_text", text="two")
        self.assertEqual(self.browser.script("return window.__notes"), [])
        self.browser.do("click", css="#notify")
        self.browser.do("wait_text", text="notifications: on")
        self.store.submit("web-9", TOOL_EGRESS_ALLOW, '{"host": "a.example"}', "three")
        self.browser.do("wait_text", text="three")
        self.assertEqual(self.browser.script("return window.__notes"), [["bot-bottle: 1 new proposal", "from web-9"]])


class ScreenshotTest(BrowserCase):
    """The inbox as docs/ shows it (scripts/dashboard-screenshots writes these there), taken in the real browser."""

    def test_screenshots_of_the_inbox_a_proposal_and_the_second_ask(self) -> None:
        bottles = BottleStore(database=self.store.db)
        for slug in ("web-1", "web-2", "build-7", "api-3", "docs-4"):
            bottles.prepared(slug, "docker")
        silent = format_timestamp(datetime.now(UTC) - timedelta(minutes=7))
        with self.store.db.write() as conn:
            conn.execute("UPDATE bottles SET state = 'running', last_seen = ?, started_at = ? WHERE slug != 'docs-4'",
                         (format_timestamp(datetime.now(UTC)), silent))
            conn.execute("UPDATE bottles SET state = 'running', last_seen = ?, started_at = ? WHERE slug = 'docs-4'",
                         (silent, silent))
        self.store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "docs.python.org", "methods": ["GET"], '
                          '"paths": ["/3/"]}', "read the stdlib docs for the port to 3.13")
        wide = self.store.submit("web-2", TOOL_EGRESS_ALLOW, '{"host": "*.readthedocs.io"}', FAKE_ROUTE)
        self.store.submit("build-7", TOOL_GITLEAKS_ALLOW, json.dumps({"pushed": [{"ref": "refs/heads/main"}],
                          "findings": [{"ref": "refs/heads/main", "commit": "4f2cd9a0" * 5, "file":
                                        "tests/fixtures/server.pem", "line": 3, "rule": "private-key",
                                        "line_text": "****"}]}), "a test fixture, not a real key")
        self.store.submit("api-3", TOOL_EGRESS_TOKEN_ALLOW, json.dumps(
            {"host": "api.github.com", "method": "POST", "path": "/repos/o/r/issues", "detector": "github-pat",
             "value_length": 40, "snippet": "Authorization: token ********", "fingerprint": "ab" * 32}),
            "open the issue the task asks for")
        record_launch_routes(self.store, "docs-4", "routes:\n- a.example\n")  # as 'prepare --routes-file' does
        self.store.submit("docs-4", TOOL_EGRESS_BLOCK, "routes:\n- a.example\n- pypi\u2024org\n",
                          "the package index\u202e (mirror)", current_file="routes:\n- a.example\n")
        self.store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "files.pythonhosted.org", "paths": ["/packages/"]}',
                          "wheels for the build")
        self.store.submit("web-2", TOOL_EGRESS_ALLOW, '{"host": "*.compute.amazonaws.com"}', "the test cluster")
        self.log_in()
        self.browser.do("wait_text", text="7 pending from 5 bottle(s)")
        self.settle()
        self.browser.keys("j", "j")
        folder = artifact_dir()
        self.browser.do("screenshot", path=str(folder / "inbox.png"))
        self.open(f"/proposal/{wide.id}")
        self.browser.do("wait_text", text="approving grants")
        self.browser.do("screenshot", path=str(folder / "proposal.png"))
        self.browser.do("type", css='#approve input[name="notes"]', text="only the docs")
        self.settle()
        self.browser.do("click", css='#approve button[name="decision"]')
        self.browser.do("wait_text", text="It reaches more than it reads as")
        self.browser.do("screenshot", path=str(folder / "confirm.png"))
        print(f"\ninbox screenshots: {folder}/inbox.png, proposal.png, confirm.png", flush=True)
        self.assertIsNone(self.store.response(wide.id))
