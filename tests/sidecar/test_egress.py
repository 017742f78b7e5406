"""The egress proxy's helpers: redaction, what grants let through, and fail-closed waiting."""

from __future__ import annotations

import base64
import json
import math
import sqlite3
import subprocess
import sys

from bot_bottle.audit_store import AuditStore
from bot_bottle.cli.render import describe
from bot_bottle.db import Database
from bot_bottle.grants import GrantStore
from bot_bottle.queue_store import QueueStore
from bot_bottle.records import STATUS_APPROVED, STATUS_REJECTED, TOOL_EGRESS_TOKEN_ALLOW
from bot_bottle.sidecar.egress import EgressGrants, _token_allow_payload, redact_snippet, request_token_override
from bot_bottle.text.redaction import REDACTED, Masker, encoded_forms
from tests.helpers.corpus import recoverable, spellings
from tests.helpers.support import REPO, TempDirTest, decide_when_filed, wait_until

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
        """The DLP report names host, method (as written), path, detector and a fingerprint, and never the token."""
        with QueueStore(self.tmp / "p.db") as store:
            grants = EgressGrants(store.for_bottle("web-1"))
            fingerprint = grants.fingerprint(TOKEN, "api.github.com", "post")
        payload = _token_allow_payload(Masker([TOKEN]), host="api.github.com", method="post", path="/repos",
                                       detector="github-pat", context=BODY, value=TOKEN, fingerprint=fingerprint)
        self.assertNotIn(TOKEN, payload)
        report = json.loads(payload)
        self.assertEqual((report["host"], report["method"], report["path"], report["detector"]),
                         ("api.github.com", "post", "/repos", "github-pat"))
        self.assertIn(REDACTED, report["snippet"])
        self.assertEqual(report["value_length"], len(TOKEN))
        self.assertEqual(report["fingerprint"], fingerprint)
        self.assertRegex(fingerprint, "^[0-9a-f]{64}$")

    def test_token_spelt_to_slip_past_masking(self) -> None:
        """Upper-case hex, %6a escapes, a few characters escaped, zero-width spaces: masked in every field."""
        for name, spelt in spellings(TOKEN).items():
            with self.subTest(spelling=name):
                payload = _token_allow_payload(Masker([TOKEN]), host="api.github.com", method="post",
                                               path=f"/upload/{spelt}?t={spelt}", detector=f"github-pat {spelt}",
                                               context=f"{TOKEN} {spelt}", value=TOKEN, fingerprint="f" * 64)
                self.assertTrue(recoverable(spelt, TOKEN))
                self.assertFalse(recoverable(payload, TOKEN), payload)
        # Two encodings deep, which no window of a form matches: the field is left out.
        twice = base64.b64encode(base64.b64encode(TOKEN.encode()).hex().encode()).decode()
        payload = _token_allow_payload(Masker([TOKEN]), host="api.github.com", method="post", path=f"/u/{twice}",
                                       detector="d", context=f"{TOKEN} {twice}", value=TOKEN, fingerprint="f" * 64)
        self.assertNotIn(twice[:24], payload)
        self.assertEqual(json.loads(payload)["path"], "(not shown: it holds the token in an encoded form)")

    def test_a_host_that_reads_as_another_is_no_scope(self) -> None:
        """A look-alike host (Cyrillic, full-width, bidi) or one that reads as a URL naming another host: refused."""
        with QueueStore(self.tmp / "s.db") as store:
            bottle = store.for_bottle("web-1")
            grants = EgressGrants(bottle)
            ask: dict[str, object] = {"path": "/x", "detector": "d", "context": TOKEN, "value": TOKEN, "timeout": 0}
            for host in ("\u0430pi.github.com", "api.gith\u00fcb.com", "\uff41pi.github.com", "api.github.com\u202e",
                         "api.github.com@evil.example", "api.github.com/.evil.example", "api.github.com#x",
                         "api.github.com?x", "api..github.com", "-api.github.com", "api.github.com:", "x" * 300,
                         "api.github.com:443:80", "[::1", "api.github.com\n", "api.github.com\\evil.example"):
                with self.subTest(host=host), self.assertLogs("bot_bottle.egress", "ERROR"):
                    self.assertFalse(request_token_override(bottle, grants, host=host, method="POST", **ask))
                self.assertFalse(grants.allows_token(TOKEN, host=host, method="POST"))
            for method in ("P OST", "POST\r\nX-Evil: 1", "P\u041eST", "", "G" * 101):
                with self.subTest(method=method), self.assertLogs("bot_bottle.egress", "ERROR"):
                    self.assertFalse(request_token_override(bottle, grants, host="api.github.com", method=method,
                                                            **ask))
            self.assertEqual(store.listing("web-1", include_decided=True), [], "nothing filed for any of them")
            for host in ("api.github.com", "xn--80ak6aa92e.com", "127.0.0.1:8080", "[2001:db8::1]:443",
                         "my_service.internal"):
                with self.subTest(host=host), self.assertLogs("bot_bottle.egress", "WARNING") as logs:
                    self.assertFalse(request_token_override(bottle, grants, host=host, method="POST", **ask))
                self.assertIn("no decision", "\n".join(logs.output))

    def test_a_huge_field_is_masked_where_it_is_shown(self) -> None:
        """A ten-million-character path: the report's field is bounded, the token masked also across the cut."""
        for before in (0, 300, 505, 511, 600):
            with self.subTest(before=before):
                path = "/" + "a" * before + TOKEN + "/b" * 5_000_000
                payload = json.loads(_token_allow_payload(Masker([TOKEN]), host="api.github.com", method="POST",
                                                          path=path, detector="d", context=TOKEN, value=TOKEN,
                                                          fingerprint="f" * 64))
                self.assertLessEqual(len(payload["path"]), 512)
                self.assertFalse(recoverable(payload["path"], TOKEN[:12]), payload["path"])
                self.assertNotIn(TOKEN[:6], payload["path"])

    def test_masking_is_linear_and_complete_for_a_long_value(self) -> None:
        """A 32,000-character value is masked in one pass wherever it (or a piece, or its base64) appears."""
        value = "".join(chr(ord("a") + (i * 7919) % 26) + str(i % 10) for i in range(16000))
        encoded = base64.b64encode(value.encode()).decode()
        text = f"GET /x/{value[:100]}?q={value} Authorization: Basic {encoded} tail"
        masked = Masker([value]).mask(text)
        self.assertTrue(masked.startswith(f"GET /x/{REDACTED}?q={REDACTED} Authorization: Basic {REDACTED}"), masked)
        self.assertTrue(masked.endswith(" tail"), masked)
        self.assertLess(len(masked), 80, "at most the last base64 group (two bytes of the value) is left")


class OverrideTest(TempDirTest):
    def setUp(self) -> None:
        super().setUp()
        self.path = self.tmp / "egress.db"
        self.store = QueueStore(self.path)
        self.addCleanup(self.store.close)
        self.bottle = self.store.for_bottle("web-1")
        self.grants = EgressGrants(self.bottle)

    def ask(self, timeout: float = 30, value: str = TOKEN, host: str = "api.github.com", method: str = "POST") -> bool:
        return request_token_override(self.bottle, self.grants, host=host, method=method,
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
        """Approval: True, and a grant (8 h by default) lets the same token through after (no second proposal)."""
        self.decide_when_filed(STATUS_APPROVED, "deploy token, expected")
        self.assertTrue(self.ask())
        self.assertTrue(self.grants.allows_token(TOKEN, host="api.github.com", method="POST"))
        self.assertTrue(self.ask(timeout=0))
        self.assertTrue(EgressGrants(self.bottle).allows_token(TOKEN, host="api.github.com", method="POST"),
                        "a proxy restarted (a new EgressGrants) finds the same grant")
        (grant,) = GrantStore(database=self.store.db).listing("web-1")
        self.assertEqual((grant.tool, grant.subject_value["host"], grant.subject_value["method"]),
                         (TOOL_EGRESS_TOKEN_ALLOW, "api.github.com", "POST"))
        self.assertNotIn(TOKEN, repr(vars(self.grants)))
        proposals = self.store.listing("web-1", include_decided=True)
        self.assertEqual(len(proposals), 1)
        self.assertEqual(proposals[0][0].tool, TOOL_EGRESS_TOKEN_ALLOW)
        # Archived: written by the sidecar's next write, or a moment later (db.later).
        wait_until(lambda: self.store.get(proposals[0][0].id).archived_at, 5, 0.02, "the proposal archived")
        self.assert_no_token_stored()

    def test_reject(self) -> None:
        """Rejection: False, and nothing remembered."""
        self.decide_when_filed(STATUS_REJECTED, "never send this token there")
        with self.assertLogs("bot_bottle.egress", "WARNING") as logs:
            self.assertFalse(self.ask())
        self.assertIn("rejected", "\n".join(logs.output))
        self.assertFalse(self.grants.allows_token(TOKEN, host="api.github.com", method="POST"))
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
        locked_bottle = locked_store.for_bottle("web-1")
        try:
            with self.assertLogs("bot_bottle.egress", "ERROR"):
                self.assertFalse(request_token_override(
                    locked_bottle, EgressGrants(locked_bottle), host="h", method="GET", path="/",
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

    def test_approval_does_not_carry_to_another_host_or_method(self) -> None:
        """Approved for POST api.github.com: to evil.example, as a PUT or as 'post' (methods are case-sensitive),
        a new proposal; only ASCII letters fold in the host (the Kelvin sign is another host)."""
        self.decide_when_filed(STATUS_APPROVED, "deploy token, to GitHub")
        self.assertTrue(self.ask())
        for host, method in (("evil.example", "POST"), ("api.github.com", "PUT"), ("api.github.com", "post")):
            with self.subTest(host=host, method=method), self.assertLogs("bot_bottle.egress", "WARNING"):
                self.assertFalse(self.ask(timeout=0, host=host, method=method))
        self.assertTrue(self.ask(timeout=0, host="API.GITHUB.COM"), "the approved host, as DNS compares it")
        self.assertTrue(self.grants.allows_token(TOKEN, host="api.github.com.", method="POST"))
        for host in ("api.github.com.evil.example", "github.com", "\u212api.github.com", "api.github.com:443"):
            with self.subTest(host=host):
                self.assertFalse(self.grants.allows_token(TOKEN, host=host, method="POST"))
        self.assertFalse(self.grants.allows_token(TOKEN + "x", host="api.github.com", method="POST"))
        pending = self.store.pending("web-1")
        self.assertEqual(len(pending), 3)
        reports = sorted((json.loads(p.payload)["method"], json.loads(p.payload)["host"]) for p in pending)
        self.assertEqual(reports, [("POST", "evil.example"), ("PUT", "api.github.com"), ("post", "api.github.com")])
        self.assertTrue(all("let this token through to this host" in p.justification for p in pending))

    def test_bad_arguments_fail_closed(self) -> None:
        """None, bytes or another wrong type anywhere: False, logged, nothing filed, never an exception."""
        good: dict[str, object] = {"host": "api.github.com", "method": "POST", "path": "/x", "detector": "github-pat",
                                   "context": BODY, "value": TOKEN, "timeout": 0, "poll_interval": 0.02}
        bad_values: dict[str, list[object]] = {
            "host": [None, b"api.github.com", 7, "", "  "], "method": [None, b"POST", ["POST"], ""],
            "path": [None, b"/x", 1.5], "detector": [None, b"d"], "context": [None, BODY.encode(), {"a": 1}],
            "value": [None, TOKEN.encode(), "", 12345], "timeout": [None, "5", math.nan, math.inf, -1, True],
            "poll_interval": [None, 0, -0.5, "0.1", math.nan],
        }
        bad_values["host"] += ["\u0430pi.github.com", "api.github.com@evil.example"]
        for name, values in bad_values.items():
            for bad in values:
                with self.subTest(argument=name, value=bad), self.assertLogs("bot_bottle.egress", "ERROR") as logs:
                    self.assertFalse(request_token_override(self.bottle, self.grants, **{**good, name: bad}))
                self.assertIn("bad argument", "\n".join(logs.output))
                self.assertNotIn(TOKEN, "\n".join(logs.output))
        other = EgressGrants(self.store.for_bottle("web-1"))
        for bottle, grants in ((None, self.grants), ("web-1", self.grants), (self.bottle, None),
                               (self.bottle, set()), (self.bottle, other)):
            with self.subTest(bottle=bottle, grants=grants), self.assertLogs("bot_bottle.egress", "ERROR"):
                self.assertFalse(request_token_override(bottle, grants, **good))  # type: ignore[arg-type]
        self.assertEqual(self.store.listing("web-1", include_decided=True), [])
        for value, host, method in ((None, "h", "GET"), (TOKEN.encode(), "h", "GET"), (TOKEN, None, "GET"),
                                    (TOKEN, b"h", "GET"), (TOKEN, "h", None), (TOKEN, "h", 1), ("", "h", "GET")):
            with self.subTest(value=value, host=host, method=method):
                self.assertFalse(self.grants.allows_token(value, host=host, method=method))  # type: ignore[arg-type]
        for host, method, path in ((None, "GET", "/"), ("h", None, "/"), ("h", "GET", None), (b"h", "GET", "/"),
                                   ("h", "GET", "no-slash")):
            with self.subTest(host=host, method=method, path=path):
                self.assertFalse(self.grants.allows_route(host, method, path))  # type: ignore[arg-type]
        for context, value, radius in ((None, TOKEN, 5), (BODY, None, 5), (BODY.encode(), TOKEN, 5),
                                       (BODY, TOKEN.encode(), 5), (BODY, "", 5), (BODY, TOKEN, None),
                                       (BODY, TOKEN, -1), (BODY, TOKEN, 2.5)):
            with self.subTest(context=type(context), value=type(value), radius=radius):
                self.assertEqual(redact_snippet(context, value, radius), REDACTED)  # type: ignore[arg-type]


class NothingStoredTest(TempDirTest):
    """A token in the host, the URL path or query, a header or base64 in the body: in no stored byte."""

    def test_token_in_host_path_query_headers_and_base64(self) -> None:
        dbdir = self.tmp / "db"
        dbdir.mkdir(mode=0o700)
        path = dbdir / "bot-bottle.db"
        store = QueueStore(path)
        self.addCleanup(store.close)
        basic = base64.b64encode(f"x-access-token:{TOKEN}".encode()).decode()
        context = (f"POST /upload/{TOKEN}?token={TOKEN} HTTP/1.1\r\nHost: {TOKEN}.evil.example\r\n"
                   f"Authorization: Basic {basic}\r\nX-Token: {TOKEN[:20]}\r\n\r\n{{\"t\": \"{TOKEN}\"}}")
        decide_when_filed(self, store, "web-1", STATUS_REJECTED, "not to that host")
        bottle = store.for_bottle("web-1")
        with self.assertLogs("bot_bottle.egress", "WARNING"):
            self.assertFalse(request_token_override(
                bottle, EgressGrants(bottle), host=f"{TOKEN}.evil.example", method=f"post{TOKEN}",
                path=f"/upload/{TOKEN}?token={TOKEN}&b={basic}", detector=f"github-pat {TOKEN[4:30]}",
                context=context, value=TOKEN, timeout=30, poll_interval=0.02))
        (proposal, response) = store.listing("web-1", include_decided=True)[0]
        self.assertIsNotNone(response)
        report = json.loads(proposal.payload)
        self.assertEqual(report["host"], f"{REDACTED}.evil.example")
        # The base64 keeps its prefix ("x-access-token:") and at most its last group (one byte of the token).
        self.assertRegex(report["path"], r"^/upload/\*{8}\?token=\*{8}&b=eC1hY2Nlc3MtdG9rZW46\*{8}.{0,4}$")
        self.assertIn(REDACTED, report["snippet"])
        self.assertIn(f"to {REDACTED}.evil.example/upload/{REDACTED}", proposal.justification)
        store.close()
        export = subprocess.run([sys.executable, "-m", "bot_bottle", "audit", "export", "--db", str(path)],
                                cwd=REPO, capture_output=True, timeout=60)
        self.assertEqual(export.returncode, 0, export.stderr)
        self.assertIn(b"not to that host", export.stdout)
        forms = [f.encode() for f in encoded_forms(TOKEN)] + [basic.encode(), TOKEN[:20].encode(), TOKEN[4:30].encode()]
        files = [p for p in dbdir.rglob("*") if p.is_file()]
        self.assertIn(path, files)
        for form in forms:
            for stored in files:
                self.assertNotIn(form, stored.read_bytes(), f"{form!r} in {stored.name}")
            self.assertNotIn(form, export.stdout)
