"""A grant of POST used to DELETE through PHP's reading of a method override, against PHP's own server.

Symfony (and so Laravel, which turns its ``_method`` parameter on) reads a
POST as the method its ``X-HTTP-Method-Override`` header names, or else its
``_method`` query parameter: ``$this->headers`` is built from ``$_SERVER``'s
``HTTP_*`` entries and ``$this->query`` is ``$_GET``. PHP registers both
through one routine, which turns a ``.`` or a space in a name into ``_``,
drops leading spaces and ends a name at a NUL byte. So
``X.HTTP.Method.Override: DELETE`` is ``HTTP_X_HTTP_METHOD_OVERRIDE`` and
``?.method=DELETE`` (or ``?_method%00x=DELETE``) is ``$_GET['_method']``, and
the sidecar's check (``EgressGrants.allows_route``) read past each of them.

The server is ``php -S`` (the CLI's built-in server: Debian's ``php-cli``,
which ``.ci/run`` installs), running a script that reads an override as
Symfony's ``Request::getMethod`` does; each request is a raw POST on a socket.
"""

from __future__ import annotations

import subprocess
import time

from tests.helpers.host_grants import HostGrantsCase
from tests.helpers.raw_http import post_as_written
from tests.helpers.relay_fixture import free_port
from tests.helpers.support import require_tool

# Symfony's Request::getMethod, over what PHP registered: the header, else the query's _method, upper-cased.
APP = r"""<?php
$method = $_SERVER['REQUEST_METHOD'];
if ($method === 'POST') {
    $override = $_SERVER['HTTP_X_HTTP_METHOD_OVERRIDE'] ?? null;
    if (!$override) {
        $override = $_GET['_method'] ?? 'POST';
    }
    if (is_string($override)) {
        $method = strtoupper($override);
    }
}
header('Content-Type: text/plain');
echo $method . ' ' . parse_url($_SERVER['REQUEST_URI'], PHP_URL_PATH);
"""

HOST = "api.example.com"
ISSUE = "/repos/acme/web/issues/1"
# (what, path, headers, the method PHP's reading routes): each a name PHP folds into the override's.
ATTACKS = (
    ("the header with dots for dashes", ISSUE, [("X.HTTP.Method.Override", "DELETE")], "DELETE"),
    ("the header with one dot", ISSUE, [("X-HTTP-Method.Override", "PUT")], "PUT"),
    ("the query parameter with a dot for its underscore", ISSUE + "?.method=DELETE", [], "DELETE"),
    ("that dot percent-encoded", ISSUE + "?state=open&%2Emethod=PATCH", [], "PATCH"),
    ("after a leading space", ISSUE + "?+.method=PUT", [], "PUT"),
    ("ended at a NUL byte", ISSUE + "?_method%00x=DELETE", [], "DELETE"),
)


class PhpMethodOverrideTest(HostGrantsCase):
    def setUp(self) -> None:
        super().setUp()
        php = require_tool(self, "php")
        (self.tmp / "index.php").write_text(APP)
        self.port = free_port()
        log = self.tmp / "php.log"
        with log.open("wb") as out:
            server = subprocess.Popen([php, "-S", f"127.0.0.1:{self.port}", str(self.tmp / "index.php")],
                                      cwd=self.tmp, stdout=out, stderr=subprocess.STDOUT)
        self.addCleanup(server.wait, 10)
        self.addCleanup(server.kill)
        # It says when it listens ('Development Server (http://...) started'); a probe's bare connection would
        # be one more request in its log.
        deadline = time.monotonic() + 60
        while b"started" not in log.read_bytes():
            if server.poll() is not None or time.monotonic() > deadline:
                self.fail(f"php -S did not start: {log.read_text(errors='replace')}")
            time.sleep(0.2)
        self.approve("web-1", {"host": HOST, "methods": ["POST"], "paths": ["/repos/acme/web"]})

    def routed_as(self, path: str, headers: list[tuple[str, str]]) -> str:
        """What PHP read a POST of ``path`` with ``headers`` as: 'METHOD /path'."""
        status, body = post_as_written(self.port, HOST, path, headers, timeout=30)
        self.assertIn(" 200 ", status)
        return body

    def test_a_post_php_reads_as_another_method_is_not_let_through_on_the_post_grant(self) -> None:
        for what, path, headers, method in ATTACKS:
            with self.subTest(what):
                self.assertEqual(self.routed_as(path, headers), f"{method} {ISSUE}", "PHP reads the override")
                self.assertFalse(self.lets_through("web-1", HOST, "POST", path, headers))

    def test_the_post_itself_is_let_through(self) -> None:
        for path, headers in ((ISSUE, []), (ISSUE + "?method=DELETE", [("X-HTTP-Method-Overrides", "DELETE")])):
            with self.subTest(path=path, headers=headers):
                self.assertEqual(self.routed_as(path, headers), f"POST {ISSUE}")
                self.assertTrue(self.lets_through("web-1", HOST, "POST", path, headers))
