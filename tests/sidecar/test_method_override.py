"""The methods a request may be read as (``sidecar.method_override``), and the route check that holds a grant to
each of them (``EgressGrants.allows_route``). tests/attacks/test_method_override.py performs the attack against a
real Express server."""

from __future__ import annotations

import email
import http.client
import json
import threading
from typing import Any
from unittest import mock

from bot_bottle.decisions import decide
from bot_bottle.grants import GrantStore
from bot_bottle.queue_store import QueueStore
from bot_bottle.records import STATUS_APPROVED, STATUS_REJECTED, TOOL_EGRESS_ALLOW
from bot_bottle.sidecar.egress import EgressGrants, request_token_override
from bot_bottle.sidecar.method_override import methods_read_as
from tests.helpers.support import TempDirTest, decide_when_filed, wait_until

OVERRIDE = "X-HTTP-Method-Override"


class MethodsReadAsTest(TempDirTest):
    def test_a_request_without_an_override_is_its_own_method(self) -> None:
        self.assertEqual(methods_read_as("POST", "/x"), ["POST"])
        self.assertEqual(methods_read_as("POST", "/x?method=DELETE", {"X-Other": "DELETE"}), ["POST"])
        self.assertEqual(methods_read_as("POST", "/x", {OVERRIDE: "  "}), ["POST"], "an empty value names none")

    def test_each_header_however_spelt(self) -> None:
        for name in (OVERRIDE, "x-http-method-override", "X-HTTP-METHOD", "x-method-override",
                     "X_HTTP_Method_Override", " X-HTTP-Method-Override ", "X.HTTP.Method.Override",
                     "X HTTP Method Override", "X-HTTP-Method-Override[]", "-x-http-method-"):
            with self.subTest(name=name):
                self.assertEqual(methods_read_as("POST", "/x", {name: "DELETE"}), ["POST", "DELETE"])

    def test_every_item_as_written_and_in_upper_case(self) -> None:
        """Express upper-cases the value and takes its first item; a proxy joins a repeated header with commas."""
        self.assertEqual(methods_read_as("POST", "/x", [(OVERRIDE, "delete, POST"), (OVERRIDE, "Put")]),
                         ["POST", "delete", "DELETE", "Put", "PUT"])

    def test_the_query_parameter_under_either_separator_and_encoded(self) -> None:
        for path in ("/x?_method=DELETE", "/x?a=1&_method=DELETE", "/x?a=1;_method=DELETE", "/x?%5Fmethod=DELETE",
                     "/x?_METHOD=DELETE", "/x?_method=%44ELETE", "/x?_method=delete", "/x?_method[]=DELETE",
                     "/x?_method%5B0%5D=DELETE", "/x?_method[a]=DELETE", "/x?[_method]=DELETE",
                     "/x?%5B_method%5D=DELETE", "/x?[_method][]=DELETE", "/x?[_method]x]=DELETE",
                     "/x?.method=DELETE", "/x?%2Emethod=DELETE", "/x?+.method=DELETE", "/x?_method%00x=DELETE"):
            with self.subTest(path=path):
                self.assertIn("DELETE", methods_read_as("POST", path) or [])

    def test_the_headers_http_server_hands_a_proxy(self) -> None:
        """BROKE before the fix: http.server's headers (an email.message.Message) iterate over names alone, so a
        proxy built on it had every request refused; read through items(), a repeated header is each one."""
        message = email.message_from_string("Host: a.example\r\nX-HTTP-Method-Override: POST\r\n"
                                            "x-http-method-override: DELETE\r\n\r\n", _class=http.client.HTTPMessage)
        self.assertEqual(methods_read_as("POST", "/x", message), ["POST", "DELETE"])  # type: ignore[arg-type]

    def test_headers_that_are_not_text_pairs_are_refused(self) -> None:
        for bad in ("X-HTTP-Method-Override: DELETE", b"x", 12, [("a", 1)], [("a",)], {OVERRIDE: None},
                    {OVERRIDE: b"DELETE"}, [["a", "b", "c"]]):
            with self.subTest(headers=bad):
                self.assertIsNone(methods_read_as("POST", "/x", bad))  # type: ignore[arg-type]
        self.assertEqual(methods_read_as("POST", "/x", [["X-Method-Override", "PUT"]]),  # type: ignore[list-item]
                         ["POST", "PUT"], "a pair as JSON gives it")


class RouteGrantTest(TempDirTest):
    """The sidecar's answer over a real grant: every method the request names must be covered."""

    def setUp(self) -> None:
        super().setUp()
        self.store = QueueStore(self.tmp / "g.db")
        self.addCleanup(self.store.close)

    def granted(self, route: dict[str, Any]) -> EgressGrants:
        proposal = self.store.submit("web-1", TOOL_EGRESS_ALLOW, json.dumps(route), "for the build")
        decide(proposal.id, STATUS_APPROVED, store=self.store)
        self.assertIsNotNone(GrantStore(database=self.store.db).for_proposal(proposal.id))
        return EgressGrants(self.store.for_bottle("web-1"))

    def test_a_post_grant_does_not_cover_a_post_read_as_delete(self) -> None:
        grants = self.granted({"host": "api.example.com", "methods": ["POST"], "paths": ["/repos/acme/web"]})
        self.assertTrue(grants.allows_route("api.example.com", "POST", "/repos/acme/web/issues"))
        self.assertTrue(grants.allows_route("api.example.com", "POST", "/repos/acme/web/issues", {OVERRIDE: "POST"}))
        web = "/repos/acme/web"
        for headers, path in (({OVERRIDE: "DELETE"}, web), ({"x-http-method": "delete"}, web),
                              ({}, web + "?_method=DELETE"), ({OVERRIDE: "x y"}, web),
                              ([(OVERRIDE, "POST"), (OVERRIDE, "PATCH")], web)):
            with self.subTest(headers=headers, path=path):
                self.assertFalse(grants.allows_route("api.example.com", "POST", path, headers))
        self.assertFalse(grants.allows_route("api.example.com", "POST", "/repos/acme/web", "bad"))  # type: ignore[arg-type]

    def test_a_grant_of_every_method_or_of_both_covers_the_override(self) -> None:
        grants = self.granted({"host": "api.example.com", "paths": ["/repos/acme/web"]})
        self.assertTrue(grants.allows_route("api.example.com", "POST", "/repos/acme/web", {OVERRIDE: "DELETE"}))
        both = self.granted({"host": "b.example.com", "methods": ["DELETE", "POST"]})
        self.assertTrue(both.allows_route("b.example.com:443", "POST", "/x?_method=DELETE", {OVERRIDE: "DELETE"}))
        self.assertFalse(both.allows_route("b.example.com", "POST", "/x", {OVERRIDE: "PUT"}))


class TokenGrantTest(TempDirTest):
    """A token approved for POST is not one for a POST a server reads as DELETE: the check asks, and the request
    for the token files a report naming the method the server would read."""

    TOKEN = "ghp_" + "Qw8Er7Ty6Ui5Op4As3Df2Gh1Jk0LzXcVbZx9"

    def setUp(self) -> None:
        super().setUp()
        self.store = QueueStore(self.tmp / "t.db")
        self.addCleanup(self.store.close)
        self.bottle = self.store.for_bottle("web-1")
        self.grants = EgressGrants(self.bottle)

    def ask(self, headers: list[tuple[str, str]], path: str = "/repos/acme/app/issues", timeout: float = 30) -> bool:
        return request_token_override(self.bottle, self.grants, host="api.github.com", method="POST", path=path,
                                      detector="github-pat", context=f"auth: {self.TOKEN}", value=self.TOKEN,
                                      timeout=timeout, poll_interval=0.02, headers=headers)

    def approve_each_as_filed(self, count: int) -> None:
        """In a thread: approve the first ``count`` proposals web-1 files, one at a time, as an operator would."""
        def run() -> None:
            for _ in range(count):
                waiting = wait_until(lambda: self.store.pending("web-1"), what="a proposal from web-1")
                decide(waiting[0].id, STATUS_APPROVED, "expected", store=self.store)
        thread = threading.Thread(target=run)
        thread.start()
        self.addCleanup(thread.join)

    def test_an_override_asks_about_the_method_the_server_reads(self) -> None:
        self.approve_each_as_filed(1)
        self.assertTrue(self.ask([]))
        self.assertTrue(self.grants.allows_token(self.TOKEN, host="api.github.com", method="POST"))
        for headers, path in (([(OVERRIDE, "DELETE")], "/x"), ([], "/x?_method=DELETE")):
            with self.subTest(headers=headers, path=path):
                self.assertFalse(self.grants.allows_token(self.TOKEN, host="api.github.com", method="POST",
                                                          path=path, headers=headers))
        with self.assertLogs("bot_bottle.egress", "WARNING"):
            self.assertFalse(self.ask([(OVERRIDE, "DELETE")], timeout=0.2), "a POST grant answers no DELETE")
        (asked,) = self.store.pending("web-1")
        report = json.loads(asked.payload)
        self.assertEqual(report["method"], "DELETE")
        self.assertIn("POST to api.github.com/repos/acme/app/issues, which asks the server to read it as DELETE",
                      asked.justification)
        self.assertNotIn(self.TOKEN, asked.payload + asked.justification)
        decide(asked.id, STATUS_APPROVED, "the cleanup job", store=self.store)
        self.assertTrue(self.ask([(OVERRIDE, "DELETE")], timeout=0), "both grants now: no proposal")
        self.assertTrue(self.grants.allows_token(self.TOKEN, host="api.github.com", method="POST",
                                                 path="/x?_method=DELETE"))
        self.assertEqual(self.store.pending("web-1"), [])

    def test_every_method_no_grant_covers_is_asked_about_and_all_must_be_approved(self) -> None:
        self.approve_each_as_filed(3)  # POST, and the two the server may read it as
        self.assertTrue(self.ask([(OVERRIDE, "DELETE")], path="/x?_method=PUT"))
        methods = sorted(grant.subject_value["method"] for grant in GrantStore(database=self.store.db).listing())
        self.assertEqual(methods, ["DELETE", "POST", "PUT"], "one report and one grant a method")

    def test_a_rejected_method_blocks_the_request(self) -> None:
        decide_when_filed(self, self.store, "web-1", STATUS_REJECTED, "no deleting")
        with self.assertLogs("bot_bottle.egress", "WARNING"):
            self.assertFalse(self.ask([(OVERRIDE, "DELETE")]))

    def test_methods_no_grant_names_cost_no_fingerprint(self) -> None:
        """A fingerprint is slow by design: an agent naming sixteen methods must not make sixteen."""
        headers = [(OVERRIDE, ",".join(f"M{number}" for number in range(15)))]
        with mock.patch("bot_bottle.sidecar.egress.token_fingerprint", side_effect=AssertionError) as taken:
            self.assertFalse(self.grants.allows_token(self.TOKEN, host="api.github.com", method="POST",
                                                      headers=headers))
        self.assertEqual(taken.call_count, 0)
