"""The methods a request may be read as (``sidecar.method_override``), and the route check that holds a grant to
each of them (``EgressGrants.allows_route``). tests/attacks/test_method_override.py performs the attack against a
real Express server."""

from __future__ import annotations

import json
from typing import Any

from bot_bottle.decisions import decide
from bot_bottle.grants import GrantStore
from bot_bottle.queue_store import QueueStore
from bot_bottle.records import STATUS_APPROVED, TOOL_EGRESS_ALLOW
from bot_bottle.sidecar.egress import EgressGrants
from bot_bottle.sidecar.method_override import methods_read_as
from tests.helpers.support import TempDirTest

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
