"""A route's path prefix against the request paths that reach past it, as review 16 found them.

The operator approves a route with the command line (``proposals show``,
then ``approve --digest``), and the bottle's sidecar answers in a process
of its own over the host's database file, as on the mount. Before each fix:

- a request path holding a raw ``#`` (no client sends one: a fragment stays
  in the browser) was read only up to it, so ``/3/x#/../../admin/key.txt``
  was a plain path under ``/3/``; uvicorn (h11) keeps the ``#`` in the
  path, and Starlette's StaticFiles served ``/admin/key.txt`` for it;
- a prefix was matched as text: approving ``/repos/acme/web`` (shown as
  that) let through ``/repos/acme/website`` and ``/repos/acme/web-secrets``,
  other repositories, and an operator's pattern rule for it approved them;
- a prefix of ``/;`` was shown as a plain path, with no ``widens``: to
  Tomcat, which drops a segment's parameters, ``/;/admin/key.txt`` is
  ``/admin/key.txt``, so it let every path of the host through.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from bot_bottle.paths import host_db_path
from bot_bottle.policy.subjects import rule_matches
from bot_bottle.queue_store import QueueStore
from bot_bottle.records import TOOL_EGRESS_ALLOW, TOOL_EGRESS_BLOCK
from tests.helpers.relay_fixture import free_port
from tests.helpers.support import REPO, TempDirTest, in_ci

TOMCAT = Path("/usr/share/tomcat10")  # Debian's tomcat10 package

# The bottle's sidecar, in a process of its own: what its egress helper answers for each [host, method, path].
SIDECAR = """
import json, sys
from bot_bottle.queue_store import QueueStore
from bot_bottle.sidecar.egress import EgressGrants
with QueueStore(sys.argv[1], migrate_schema=False) as store:
    grants = EgressGrants(store.for_bottle(sys.argv[2]))
    print(json.dumps([grants.allows_route(*request) for request in json.loads(sys.argv[3])]))
"""

# A static site as uvicorn (h11, its default without httptools) and Starlette serve one.
SITE = """
import sys, uvicorn
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
uvicorn.run(Starlette(routes=[Mount("/", StaticFiles(directory=sys.argv[1]))]), host="127.0.0.1",
            port=int(sys.argv[2]), log_level="warning")
"""


def _python_with(module: str) -> str | None:
    """A Python that can import ``module``: $BOT_BOTTLE_MCP_PYTHON (the MCP client's, with uvicorn), or this one."""
    for candidate in filter(None, (os.environ.get("BOT_BOTTLE_MCP_PYTHON"), sys.executable)):
        if subprocess.run([candidate, "-c", f"import {module}"], capture_output=True).returncode == 0:
            return candidate
    return None


def _get(port: int, path: str) -> tuple[str, str]:
    """The status line and body a server answers for ``path``, sent as written (no client rewrites it)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: docs.example.com\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.decode("latin-1").partition("\r\n\r\n")
    return head.split("\r\n")[0], body


def _first_answer(test: TempDirTest, port: int, path: str, within: float, what: str) -> tuple[str, str]:
    """``_get(port, path)`` once the server listens, trying for ``within`` seconds (``what`` did not start)."""
    deadline = time.monotonic() + within
    while True:
        try:
            return _get(port, path)
        except OSError:
            test.assertLess(time.monotonic(), deadline, f"{what} did not start")
            time.sleep(0.1)


class ApprovedPathCase(TempDirTest):
    """A route the agent filed and the operator approved on the command line, as ``proposals show`` showed it."""

    def approve(self, route: dict[str, object]) -> str:
        """File ``route`` for web-1, approve it as a script does (the digest 'show' printed); 'show''s text."""
        with QueueStore(host_db_path()) as store:
            proposal = store.for_bottle("web-1").submit(TOOL_EGRESS_ALLOW, json.dumps(route), "for the build")
        shown = self.run_cli("proposals", "show", proposal.id)
        self.assertEqual(shown.returncode, 0, shown.stderr)
        digest = shown.stdout.split("--digest ")[-1].split()[0]
        done = self.run_cli("proposals", "approve", proposal.id, "--digest", digest)
        self.assertEqual(done.returncode, 0, done.stderr)
        return shown.stdout

    def sidecar_allows(self, *requests: tuple[str, str, str]) -> list[bool]:
        """What web-1's sidecar, in its own process on the database file, answers for each request."""
        done = subprocess.run([sys.executable, "-c", SIDECAR, str(host_db_path()), "web-1", json.dumps(requests)],
                              cwd=REPO, capture_output=True, text=True, timeout=60)
        self.assertEqual(done.returncode, 0, done.stderr)
        return list(json.loads(done.stdout))


class FragmentInThePathTest(ApprovedPathCase):
    """GET under /3/ of docs.example.com approved; a path whose raw '#' hides dot segments from the check."""

    HIDDEN = ("/3/x#/../../admin/key.txt", "/3/a.txt#/../../admin/key.txt", "/3/#/x/../../../admin/key.txt",
              "/3/x#/%2e%2e/%2e%2e/admin/key.txt", "/3/x#\\..\\..\\admin\\key.txt")

    def setUp(self) -> None:
        super().setUp()
        shown = self.approve({"host": "docs.example.com", "methods": ["GET"], "paths": ["/3/"]})
        self.assertIn("docs.example.com (GET; /3/)", shown)

    def test_a_raw_hash_in_the_path_is_covered_by_no_prefix(self) -> None:
        """Every path hiding dot segments behind a '#' asks; the plain ones under /3/ stay covered."""
        answers = self.sidecar_allows(*(("docs.example.com", "GET", path) for path in self.HIDDEN))
        self.assertEqual(answers, [False] * len(self.HIDDEN), "a '#' hid dot segments from the prefix check")
        plain = ("/3/", "/3/a.txt", "/3/library/?q=#/../x")
        self.assertEqual(self.sidecar_allows(*(("docs.example.com", "GET", path) for path in plain)), [True] * 3)

    def test_uvicorn_serves_outside_the_prefix_for_such_a_path(self) -> None:
        """The measured effect: a real server reads past the '#' (why it must ask), and the sidecar refuses it."""
        python = _python_with("uvicorn, starlette.staticfiles")
        if python is None:
            missing = ("uvicorn and starlette are not installed (set BOT_BOTTLE_MCP_PYTHON to a Python with the MCP "
                       "client, which brings them; .ci/run does)")
            if in_ci():
                self.fail(missing)
            self.skipTest(missing)
        site = self.tmp / "site"
        for folder, name, text in (("3", "a.txt", "the docs\n"), ("admin", "key.txt", "SECRET-KEY\n")):
            (site / folder).mkdir(parents=True)
            (site / folder / name).write_text(text)
        port = free_port()
        server = subprocess.Popen([python, "-c", SITE, str(site), str(port)], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        self.addCleanup(server.wait, 10)
        self.addCleanup(server.kill)
        status, body = _first_answer(self, port, "/3/a.txt", 30, "the site")
        self.assertEqual((status.split(" ", 2)[1], body), ("200", "the docs\n"))
        path = self.HIDDEN[1]
        self.assertEqual(self.sidecar_allows(("docs.example.com", "GET", path)), [False])
        if _get(port, path)[1] != "SECRET-KEY\n":
            self.skipTest("this uvicorn ends the path at the '#' (the one measured, 0.55 with h11 0.16, did not)")


class SiblingOfThePrefixTest(ApprovedPathCase):
    """GET and POST under /repos/acme/web of api.github.com approved: the repository web, and no other."""

    def setUp(self) -> None:
        super().setUp()
        shown = self.approve({"host": "api.github.com", "methods": ["GET", "POST"], "paths": ["/repos/acme/web"]})
        self.assertIn("api.github.com (GET,POST; /repos/acme/web)\n", shown)

    def test_a_sibling_that_shares_the_prefix_as_text_is_not_covered(self) -> None:
        """/repos/acme/website and /repos/acme/web-secrets are other repositories: they ask."""
        siblings = ("/repos/acme/website", "/repos/acme/website/contents/.env", "/repos/acme/web-secrets/pulls",
                    "/repos/acme/web2", "/repos/acme/web.old/git/refs", "/repos/acme/web;x/../web-secrets",
                    "/repos/acme/web%2dsecrets")
        answers = self.sidecar_allows(*(("api.github.com", "POST", path) for path in siblings))
        self.assertEqual(answers, [False] * len(siblings), "a sibling of the approved prefix was let through")

    def test_the_prefix_and_what_is_under_it_stay_covered(self) -> None:
        inside = ("/repos/acme/web", "/repos/acme/web/", "/repos/acme/web/pulls", "/repos/acme/web?per_page=100",
                  "/repos/acme/web/contents/a.b")
        self.assertEqual(self.sidecar_allows(*(("api.github.com", "GET", path) for path in inside)),
                         [True] * len(inside))

    def test_a_pattern_rule_for_the_prefix_approves_no_sibling(self) -> None:
        """A rule the operator typed for /repos/acme/web decides a proposal under it, never one for a sibling."""
        rule = {"host": "*.github.com", "methods": [], "paths": ["/repos/acme/web"]}
        for path, matched in (("/repos/acme/web/pulls", True), ("/repos/acme/web", True),
                              ("/repos/acme/website", False), ("/repos/acme/web-secrets/", False)):
            with self.subTest(path=path):
                self.assertEqual(rule_matches(rule, True, TOOL_EGRESS_ALLOW,
                                              {"host": "api.github.com", "methods": ["GET"], "paths": [path]}),
                                 matched)



class ParametersOnTheRootTest(ApprovedPathCase):
    """A route for jenkins.example.com under the path prefix '/;', which reads as narrow and is the root."""

    def test_the_screen_says_it_may_allow_every_path(self) -> None:
        for prefix in ("/;", "/;x/", "/;jsessionid=1", "//;", "/%3b"):
            with self.subTest(prefix=prefix):
                with QueueStore(host_db_path()) as store:
                    proposal = store.for_bottle("web-1").submit(
                        TOOL_EGRESS_ALLOW, json.dumps({"host": "jenkins.example.com", "paths": [prefix]}), "health")
                shown = self.run_cli("proposals", "show", proposal.id)
                self.assertIn(f"widens: path {prefix!r} is '/' to a Java server", shown.stdout)
        for prefix in ("/a;", "/3/", "/;/3/"):  # a parameter on a segment that is there: no alarm
            with self.subTest(prefix=prefix):
                with QueueStore(host_db_path()) as store:
                    proposal = store.for_bottle("web-1").submit(
                        TOOL_EGRESS_ALLOW, json.dumps({"host": "jenkins.example.com", "paths": [prefix]}), "x")
                self.assertNotIn("widens", self.run_cli("proposals", "show", proposal.id).stdout)

    def test_a_routes_file_line_with_it_is_flagged_too(self) -> None:
        """The same path in a routes file (egress-block) is named as the root, as '/' is."""
        routes = ('routes:\n  - host: jenkins.example.com\n    paths: ["/;"]\n'
                  '  - host: docs.example.com\n    paths: ["/3/"]\n')
        with QueueStore(host_db_path()) as store:
            proposal = store.for_bottle("web-1").submit(TOOL_EGRESS_BLOCK, routes, "a health check",
                                                        "routes: []\n")
        shown = self.run_cli("proposals", "show", proposal.id).stdout
        self.assertIn("line 3 (new) widens access: a path of '/;' is '/' to a Java server", shown)
        self.assertNotIn("line 5", shown)

    def test_tomcat_serves_every_path_under_it(self) -> None:
        """The measured effect: the grant covers /;/admin/key.txt, and Tomcat serves /admin/key.txt for it."""
        if not (TOMCAT / "bin" / "catalina.sh").exists():
            missing = f"Tomcat is not installed at {TOMCAT} (apt-get install tomcat10; .ci/run does)"
            if in_ci():
                self.fail(missing)
            self.skipTest(missing)
        self.approve({"host": "jenkins.example.com", "paths": ["/;"]})
        base, port = self.tmp / "tomcat", free_port()
        for folder in ("conf", "logs", "temp", "work", "webapps/ROOT/admin"):
            (base / folder).mkdir(parents=True)
        (base / "webapps/ROOT/admin/key.txt").write_text("SECRET-KEY\n")
        for name in ("web.xml", "logging.properties", "catalina.properties", "context.xml"):
            (base / "conf" / name).write_bytes((Path("/etc/tomcat10") / name).read_bytes())
        (base / "conf/server.xml").write_text(
            f'<Server port="-1" shutdown="SHUTDOWN"><Service name="Catalina"><Connector port="{port}" '
            'address="127.0.0.1" protocol="HTTP/1.1"/><Engine name="Catalina" defaultHost="localhost">'
            '<Host name="localhost" appBase="webapps" unpackWARs="false" autoDeploy="false"/></Engine></Service>'
            '</Server>')
        env = {**os.environ, "CATALINA_BASE": str(base), "CATALINA_HOME": str(TOMCAT)}
        server = subprocess.Popen([str(TOMCAT / "bin/catalina.sh"), "run"], env=env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, start_new_session=True)
        self.addCleanup(server.wait, 20)
        self.addCleanup(os.killpg, server.pid, 15)
        status, body = _first_answer(self, port, "/;/admin/key.txt", 60, "Tomcat")
        self.assertEqual((status.split(" ", 2)[1], body), ("200", "SECRET-KEY\n"))
        self.assertEqual(self.sidecar_allows(("jenkins.example.com", "GET", "/;/admin/key.txt")), [True],
                         "the grant holds what was approved, and the screen now says what that is")
