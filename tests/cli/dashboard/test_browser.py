"""The dashboard in a real browser (headless Chromium, tests/helpers/browser.py): hostile text, CSP, CSRF, the flow.

One browser serves the whole class; each test has its own dashboard server
(tests/cli/dashboard/test_dashboard.py's ``DashboardCase``) and logs in with its token.
"""

from __future__ import annotations

import http.client
import json
import sqlite3
import subprocess
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from bot_bottle.audit_store import AuditStore
from bot_bottle.bottles import BottleStore
from bot_bottle.queue_reads import shown_digest
from bot_bottle.records import TOOL_EGRESS_ALLOW, TOOL_EGRESS_BLOCK, TOOL_GITLEAKS_ALLOW
from bot_bottle.sidecar.launcher import spawn
from bot_bottle.timestamps import format_timestamp
from tests.helpers.corpus import ATTACK_TEXT, HOSTILE, HTML_ATTACKS, forbidden
from tests.helpers.dashboard import BrowserCase, artifact_dir
from tests.helpers.support import file_as_a_sidecar


class _EvilPage(BaseHTTPRequestHandler):
    """A foreign page that posts a decision to the dashboard as soon as it loads."""

    page = b""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(self.page)))
        self.end_headers()
        self.wfile.write(self.page)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


class BrowserTest(BrowserCase):
    """The dashboard in headless Chromium: one browser for the whole class."""

    def test_hostile_text_renders_as_text(self) -> None:
        """Script tags, event attributes, javascript: URLs and the terminal corpus: shown, never run or obeyed."""
        filed = [self.store.submit("web-1", TOOL_EGRESS_BLOCK, f"routes:\n- a.com\n{ATTACK_TEXT}\n",
                                   ATTACK_TEXT, current_file="routes:\n- a.com\n")]
        filed += [file_as_a_sidecar(self.path, f"web-{i}", TOOL_EGRESS_ALLOW, '{"host": "' + text + '"}',
                                    f"{name}: {text}")
                  for i, (name, text) in enumerate(HOSTILE.items()) if name in ("mix", "bidi", "title", "lone-cr")]
        mix = next(p for p in filed if p.justification.startswith("mix: "))
        # A sidecar's triggers named as the attacks: the dashboard's next writes drop them and every page says so,
        # their names in it (tests/cli/dashboard/test_schema_warnings.py).
        for batch in (HTML_ATTACKS[:5], HTML_ATTACKS[5:]):
            with sqlite3.connect(self.path, isolation_level=None) as sidecar:
                for attack in batch:
                    sidecar.execute(f'CREATE TRIGGER "{attack.replace(chr(34), chr(34) * 2)}" BEFORE DELETE ON '
                                    "bottles BEGIN SELECT 1; END")
            sidecar.close()
            self.dashboard.queue.submit("web-9", TOOL_EGRESS_ALLOW, '{"host": "a.example"}', "a write")
        self.assertEqual(len(self.dashboard.schema_warnings()), 2)
        self.log_in()
        pages = ["/", "/audit"] + [f"/proposal/{p.id}" for p in filed]
        for path in pages:
            with self.subTest(path):
                self.browser.get(self.origin + self.dashboard.root + path)
                state = self.browser.script(
                    "return {pwned: window.__pwned === undefined ? null : String(window.__pwned),"
                    " scripts: Array.from(document.scripts).map(s => s.getAttribute('src')),"
                    " handlers: Array.from(document.querySelectorAll('*')).flatMap(e => Array.from(e.attributes)"
                    "   .filter(a => a.name.startsWith('on')).map(a => e.tagName + ' ' + a.name)),"
                    " links: Array.from(document.querySelectorAll('[href], [src], [action]')).map(e =>"
                    "   e.getAttribute('href') || e.getAttribute('src') || e.getAttribute('action')),"
                    " frames: document.querySelectorAll('iframe, svg, img, meta[http-equiv]').length,"
                    " styles: document.querySelectorAll('style').length,"
                    " text: document.body.innerText, url: location.href}")
                self.assertIsNone(self.browser.do("alert"))
                self.assertIsNone(state["pwned"])
                self.assertEqual(state["scripts"], [f"{self.dashboard.root}/static/app.js"])
                self.assertEqual(state["handlers"], [])
                self.assertEqual((state["frames"], state["styles"]), (0, 0))
                self.assertTrue(all(link.startswith(self.dashboard.root + "/") for link in state["links"]),
                                state["links"])
                self.assertEqual(state["url"], self.origin + self.dashboard.root + path)
                self.assertFalse([c for c in state["text"] if forbidden(c) and c != "\t"], path)
        # The attacks themselves are on the page, as text; the corpus's characters as escapes.
        self.browser.get(f"{self.origin}{self.dashboard.root}/proposal/{filed[0].id}")
        text = self.browser.text()
        for attack in HTML_ATTACKS:
            self.assertIn(attack, text)
        self.browser.get(f"{self.origin}{self.dashboard.root}/proposal/{mix.id}")
        text = self.browser.text()
        # Selenium's text includes the editor box's: agent text is spelled out there too.
        self.assertFalse([c for c in text if forbidden(c) and c != "\t"])
        self.assertIn("\\x1b[2J", text)
        self.assertIn("\\u202e", text)
        self.assertEqual(self.browser.script("return document.querySelectorAll('.esc').length > 0"), True)
        self.browser.get(f"{self.origin}{self.dashboard.root}/audit")
        self.assertIn("Something changed the database's schema behind bot-bottle", self.browser.text())
        self.assertIn(HTML_ATTACKS[0], self.browser.text())

    def test_no_token_a_wrong_one_or_a_rebound_name_gets_nothing(self) -> None:
        """In the browser: without the token, with a wrong one, or by a name rebound to 127.0.0.1, no page."""
        self.store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "a.example"}', "secret-justification")
        token = urlsplit(self.server.url).query
        root = self.dashboard.root
        for url, refusal in ((f"{self.origin}{root}/", "needs the dashboard's token"),
                             (f"{self.origin}{root}/?token=wrong", "Wrong token"),
                             (f"{self.origin}/?{token}", "no such page"),
                             (f"http://rebind.test:{self.port}/?{token}", "not a name this server answers to"),
                             (f"http://rebind.test:{self.port}/", "not a name this server answers to")):
            with self.subTest(url=url.split("?")[0]):
                self.browser.get(url)
                text = self.browser.text()
                self.assertIn(refusal, text)
                self.assertNotIn("secret-justification", text)
        self.log_in()
        self.assertIn("secret-justification", self.browser.text())

    def test_the_csp_forbids_inline_script(self) -> None:
        """Even markup that got into the page could run nothing: inline handlers, scripts and javascript: URLs."""
        self.log_in()
        self.browser.script(
            "document.body.insertAdjacentHTML('beforeend', '<img src=x onerror=\"window.__csp=1\">"
            "<a id=js href=\"javascript:window.__csp=2\">x</a>');"
            "const s = document.createElement('script'); s.textContent = 'window.__csp = 3';"
            "document.body.appendChild(s); document.getElementById('js').click();")
        self.browser.script("return new Promise(done => setTimeout(done, 300))")
        self.assertIsNone(self.browser.script("return window.__csp === undefined ? null : window.__csp"))
        self.assertEqual(self.browser.script("return document.cookie"), "")  # HttpOnly: out of script's reach

    def test_a_foreign_page_cannot_decide(self) -> None:
        """A page on another local port (even holding the CSRF token) and one on another site post: nothing."""
        proposal = self.store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "a.example"}', "why")
        self.log_in()
        fields = "".join(f'<input type="hidden" name="{k}" value="{v}">' for k, v in
                         {"csrf": self.dashboard.csrf, "shown": shown_digest(proposal), "status": "approved",
                          "notes": "forged"}.items())
        evil = ThreadingHTTPServer(("127.0.0.1", 0), _EvilPage)
        self.addCleanup(evil.server_close)
        threading.Thread(target=evil.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self.addCleanup(evil.shutdown)
        for target_host, page_host in (("127.0.0.1", "127.0.0.1"), ("127.0.0.1", "localhost")):
            with self.subTest(page=page_host):
                _EvilPage.page = (f'<form id=f method=post action="http://{target_host}:{self.port}'
                                  f'{self.dashboard.root}/proposal/'
                                  f'{proposal.id}/decide">{fields}</form>'
                                  "<script>document.getElementById('f').submit()</script>").encode()
                self.browser.get(f"http://{page_host}:{evil.server_address[1]}/")
                self.browser.do("wait_text", text="Refused" if page_host == "127.0.0.1" else "token")
                self.assert_unchanged(proposal)

    def test_a_sidecar_proposal_is_approved_from_the_page(self) -> None:
        """A real sidecar files; the open page shows it by itself; approving it answers the waiting caller."""
        BottleStore(database=self.store.db).prepared("docs-mirror", "docker")
        quiet = self.store.submit("build-7", TOOL_GITLEAKS_ALLOW, json.dumps({"pushed": [{"ref": "refs/heads/main"}],
                                  "findings": []}), "a test fixture\u202e that looks like a key")
        silent = format_timestamp(datetime.now(UTC) - timedelta(minutes=7))
        with self.store.db.write() as conn:
            conn.execute("UPDATE bottles SET state = 'running', last_seen = ?, started_at = ? WHERE slug = ?",
                         (silent, silent, quiet.queue_key))
        sidecar, url = spawn("web-1", self.path, "--wait-seconds", "60", stderr=subprocess.PIPE)
        self.addCleanup(lambda: sidecar.poll() is None and (sidecar.terminate(), sidecar.communicate(timeout=10)))
        port = int(urlsplit(url).port or 0)
        self.log_in()
        self.browser.do("wait_text", text="build-7")
        answers: list[dict[str, Any]] = []

        def agent() -> None:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=90)
            call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "egress-allow", "arguments": {
                "host": "docs.python.org", "paths": ["/3/"], "justification": "read the stdlib docs"}}}
            conn.request("POST", "/", json.dumps(call).encode(), {"Content-Type": "application/json",
                                                                  "Host": "localhost"})
            answers.append(json.loads(conn.getresponse().read()))
            conn.close()

        caller = threading.Thread(target=agent, daemon=True)
        caller.start()
        self.browser.do("wait_text", text="read the stdlib docs")  # the page refreshed by itself
        self.assertIn("stale", self.browser.text())
        screenshot = artifact_dir() / "dashboard.png"
        self.browser.do("screenshot", path=str(screenshot))
        print(f"\ndashboard screenshot: {screenshot}", flush=True)
        filed = self.store.pending("web-1")[0]
        self.browser.do("click", css=f'a[href="{self.dashboard.root}/proposal/{filed.id}"]')
        self.browser.do("wait_text", text="approving grants")
        self.browser.do("type", css='form[action$="/decide"] input[name="notes"]', text="docs are fine")
        self.settle()
        self.browser.do("click", css='button[value="approve"]')
        self.browser.do("wait_text", text=f"approved {filed.short_id} (web-1, egress-allow) by")
        caller.join(30)
        self.assertFalse(caller.is_alive(), "the sidecar's caller never got its answer")
        result = answers[0]["result"]["structuredContent"]
        self.assertEqual((result["status"], result["notes"]), ("approved", "docs are fine"))
        self.assertTrue(AuditStore(database=self.store.db).verify().ok)

    def test_modify_is_confirmed_on_the_operators_own_diff(self) -> None:
        """Edit in the page, read the diff (proposed -> final), confirm: the recorded file is what was shown."""
        proposal = self.store.submit("web-1", TOOL_EGRESS_BLOCK, "routes:\n- a.com\n- b.com\n", "need b.com",
                                     current_file="routes:\n- a.com\n")
        self.log_in()
        self.browser.get(f"{self.origin}{self.dashboard.root}/proposal/{proposal.id}")
        self.browser.do("type", css='textarea[name="final"]', text="routes:\n- a.com\n- c.com\n")
        self.settle()
        self.browser.do("click", css='button[value="modify"]')
        page = self.browser.do("wait_text", text="diff (proposed -> final)")
        self.assertIn("+-c.com", page.replace(" ", ""))
        self.assertIsNone(self.store.response(proposal.id))  # nothing recorded before the confirmation
        self.settle()
        self.browser.do("click", css='button[value="record this modification"]')
        self.browser.do("wait_text", text=f"modified {proposal.short_id} (web-1, egress-block) by")
        response = self.store.response(proposal.id)
        assert response is not None
        self.assertEqual(response.final_file, "routes:\n- a.com\n- c.com\n")
