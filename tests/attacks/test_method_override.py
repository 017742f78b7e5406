"""A grant of POST used to DELETE, through a method override, against a real Express server.

The operator approves ``POST`` under ``/repos/acme/web`` (to open issues,
say). Express with its ``method-override`` middleware, as many APIs run it,
reads a POST carrying ``X-HTTP-Method-Override: DELETE`` (or
``?_method=DELETE``) as a DELETE and routes it there. Before the fix the
sidecar's check (``EgressGrants.allows_route``) read only the request line,
so every request below was let through on the POST grant: the agent could
delete what the operator had let it add to. Now the proxy passes the
request's headers, and a grant must cover every method a server may read
the request as (``sidecar.method_override``). A token's grant names its
method too, and is held to the same.
"""

from __future__ import annotations

import json
import os
import subprocess

from bot_bottle.queue_store import QueueStore
from bot_bottle.records import STATUS_APPROVED
from bot_bottle.sidecar.egress import EgressGrants, request_token_override
from tests.helpers.host_grants import HostGrantsCase
from tests.helpers.node_servers import express_modules
from tests.helpers.raw_http import post_as_written
from tests.helpers.relay_fixture import free_port
from tests.helpers.support import decide_when_filed

# Express as an API runs it: the three override headers and the query parameter, each read on a POST (the
# middleware's default), then every route answering the method and path it was routed as.
APP = r"""
const express = require('express');
const methodOverride = require('method-override');
const app = express();
for (const header of ['X-HTTP-Method-Override', 'X-HTTP-Method', 'X-Method-Override']) {
  app.use(methodOverride(header));
}
app.use(methodOverride((req) => req.query._method));
app.all('*', (req, res) => res.type('text/plain').send(`${req.method} ${req.path}`));
app.listen(Number(process.argv[2]), '127.0.0.1', () => console.log('listening'));
"""

HOST = "api.example.com"
ISSUE = "/repos/acme/web/issues/1"
# Each way of asking Express to read a POST as another method: (what, path, headers, the method Express routes).
ATTACKS = (
    ("the header Express reads", ISSUE, [("X-HTTP-Method-Override", "DELETE")], "DELETE"),
    ("its value in lower case (Express upper-cases it)", ISSUE, [("x-http-method-override", "delete")], "DELETE"),
    ("OData's header", ISSUE, [("X-HTTP-Method", "DELETE")], "DELETE"),
    ("the older header", ISSUE, [("X-Method-Override", "PUT")], "PUT"),
    ("a list, whose first item Express takes", ISSUE, [("X-HTTP-Method-Override", "PATCH, POST")], "PATCH"),
    ("the query parameter", ISSUE + "?_method=DELETE", [], "DELETE"),
    ("the query parameter's name percent-encoded", ISSUE + "?state=open&%5Fmethod=DELETE", [], "DELETE"),
    ("the query parameter as a list (Express reads its first item)", ISSUE + "?_method[]=DELETE", [], "DELETE"),
    ("as a numbered list, its brackets encoded", ISSUE + "?_method%5B0%5D=PUT", [], "PUT"),
    # qs reads a name that starts with a bracket group as that group's content: '[_method]' is '_method'.
    ("the query parameter's name in brackets", ISSUE + "?[_method]=DELETE", [], "DELETE"),
    ("in brackets, percent-encoded", ISSUE + "?state=open&%5B_method%5D=PUT", [], "PUT"),
    ("in brackets, as a list", ISSUE + "?[_method][]=PATCH", [], "PATCH"),
    ("in brackets, with what qs drops after the group", ISSUE + "?[_method]x]=DELETE", [], "DELETE"),
)


class MethodOverrideTest(HostGrantsCase):
    def setUp(self) -> None:
        super().setUp()
        node, modules = express_modules(self)
        app = self.tmp / "app.js"
        app.write_text(APP)
        self.port = free_port()
        server = subprocess.Popen([node, str(app), str(self.port)], env={**os.environ, "NODE_PATH": str(modules)},
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert server.stdout is not None
        self.addCleanup(server.stdout.close)
        self.addCleanup(server.wait, 10)
        self.addCleanup(server.kill)
        self.assertEqual(server.stdout.readline().strip(), "listening", "Express did not start")
        self.approve("web-1", {"host": HOST, "methods": ["POST"], "paths": ["/repos/acme/web"]})

    def routed_as(self, path: str, headers: list[tuple[str, str]]) -> str:
        """What Express routed a POST of ``path`` with ``headers`` as: 'METHOD /path'."""
        status, body = post_as_written(self.port, HOST, path, headers, timeout=10)
        self.assertIn(" 200 ", status)
        return body

    def test_a_post_read_as_another_method_is_not_let_through_on_the_post_grant(self) -> None:
        for what, path, headers, method in ATTACKS:
            with self.subTest(what):
                self.assertEqual(self.routed_as(path, headers), f"{method} {ISSUE}", "the override works on Express")
                self.assertFalse(self.lets_through("web-1", HOST, "POST", path, headers))

    def test_the_post_itself_is_let_through(self) -> None:
        for headers in ([], [("X-HTTP-Method-Override", "POST")], [("X-Request-Id", "DELETE")]):
            with self.subTest(headers=headers):
                self.assertEqual(self.routed_as(ISSUE, headers), f"POST {ISSUE}")
                self.assertTrue(self.lets_through("web-1", HOST, "POST", ISSUE, headers))

    def test_a_token_approved_for_post_is_not_sent_with_a_post_read_as_delete(self) -> None:
        """The token's grant names its method too: a POST Express routes as DELETE asks the operator about DELETE."""
        token, headers = "ghp_" + "Er7Ty6Ui5Op4As3Df2Gh1Jk0LzXcVbZx9Qw8", [("X-HTTP-Method-Override", "DELETE")]
        with QueueStore(self.db, migrate_schema=False) as sidecar:
            bottle = sidecar.for_bottle("web-1")
            grants = EgressGrants(bottle)

            def ask(timeout: float, sent: list[tuple[str, str]]) -> bool:
                return request_token_override(bottle, grants, host=HOST, method="POST", path=ISSUE,
                                              detector="github-pat", context=f"Authorization: token {token}",
                                              value=token, timeout=timeout, poll_interval=0.02, headers=sent)
            decide_when_filed(self, self.store, "web-1", STATUS_APPROVED, "issues, yes")
            self.assertTrue(ask(30, []))
            self.assertEqual(self.routed_as(ISSUE, headers), f"DELETE {ISSUE}", "the override works on Express")
            self.assertFalse(grants.allows_token(token, host=HOST, method="POST", path=ISSUE, headers=headers))
            with self.assertLogs("bot_bottle.egress", "WARNING"):
                self.assertFalse(ask(0, headers))
            (asked,) = self.store.pending("web-1")
            self.assertEqual(json.loads(asked.payload)["method"], "DELETE")

    def test_a_grant_of_delete_as_well_lets_the_override_through(self) -> None:
        self.approve("web-1", {"host": HOST, "methods": ["DELETE"], "paths": ["/repos/acme/web"]})
        self.assertEqual(self.routed_as(ISSUE, [("X-HTTP-Method-Override", "DELETE")]), f"DELETE {ISSUE}")
        self.assertTrue(self.lets_through("web-1", HOST, "POST", ISSUE, [("X-HTTP-Method-Override", "DELETE")]))
