"""A routes file's URL whose host a URL parser reads as one inside, listed as naming no new host (review 34).

Measured before the fix next to these tests, each filed by the agent through
its real sidecar and listed by the operator's real command line: a URL that
Node's WHATWG parser (as browsers read it) reads as this machine, the metadata
service or another container was listed as "routes file: names no new host",
with no badge and no typed yes:

- a backslash for a slash (``http:\\\\localhost\\``), a special scheme without
  its two slashes (``http:/metadata/``, ``https:localhost/``);
- userinfo holding an ``@`` (``//ci:p@ss@metadata/``) or longer than 64
  characters: the host is after the last ``@``;
- a tab inside the host (``"http://meta\\tdata/"``: a parser removes it), or inside the scheme of one
  without its slashes (``ht<tab>tp:redis/`` is http://redis/);
- IDNA's mapping: ideographic full stops (``169\u3002254\u3002169\u3002254``),
  full-width or circled digits and full-width letters (``\uff4c\uff4f\uff43...``);
- a name without a dot as the URL's host (``http://redis:6379/``), which a
  route's host reaches as another container (``policy.reach``);
- any of these in a value continued over two lines by a trailing backslash.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import unittest

from bot_bottle.policy.approval import INTERNAL, approval_of
from bot_bottle.records import TOOL_EGRESS_BLOCK
from tests.attacks.test_address_forms import AddressFormsCase

METADATA, THIS_MACHINE, NO_DOT = "169.254.169.254", "this machine", "a name without a dot"
# Each URL, the host a WHATWG parser reads in it, and what its internal warning must name.
URLS = {
    "http:\\\\localhost\\latest/": ("localhost", THIS_MACHINE),
    "http:/metadata/computeMetadata/v1/": ("metadata", METADATA),
    "https:localhost:8443/": ("localhost", THIS_MACHINE),
    "http://ci:p@ss@metadata/computeMetadata/": ("metadata", METADATA),
    "http://" + "a" * 70 + "@localhost/": ("localhost", THIS_MACHINE),
    "http://169\u3002254\u3002169\u3002254/latest/": (METADATA, METADATA),
    "http://\uff11\uff16\uff19.254.169.254/latest/": (METADATA, METADATA),
    "http://\u2460\u2465\u2468.254.169.254/latest/": (METADATA, METADATA),
    "http://\uff4c\uff4f\uff43\uff41\uff4c\uff48\uff4f\uff53\uff54/": ("localhost", THIS_MACHINE),
    "http://redis:6379/": ("redis", NO_DOT),
    "ht\ttp:redis:6379/": ("redis", NO_DOT),
    "ht\ttps:localhost:8443/": ("localhost", THIS_MACHINE),
    "w\tss:kubernetes.default/api": ("kubernetes.default", ".default, a top-level domain public DNS"),
}
# As a routes file writes each: a plain YAML value, or a quoted one (a tab escaped there, as YAML and JSON read it).
ROUTES = {f"routes:\n  - upstream: {url}\n": needle for url, (_, needle) in URLS.items()}
ROUTES['routes:\n  - url: "http://meta\\tdata/computeMetadata/"\n'] = METADATA
ROUTES['{"routes": [{"url": "http://local\\thost:8080/"}]}\n'] = THIS_MACHINE
# Continued over two lines by a trailing backslash (YAML reads them as one value).
ROUTES['routes:\n  - url: "http://\uff4c\uff4f\uff43\uff41\uff4c\\\n      \uff48\uff4f\uff53\uff54/"\n'] = THIS_MACHINE
ROUTES['routes:\n  - url: "http:\\\\\\\n      metadata/computeMetadata/"\n'] = METADATA
ROUTES['routes:\n  - url: "http://169\u3002254\u3002\\\n      169\u3002254/latest/"\n'] = METADATA


class UrlHostReadingsTest(AddressFormsCase):
    @unittest.skipUnless(shutil.which("node"), "needs node, a WHATWG URL parser")
    def test_a_url_parser_reads_each_as_the_host_inside(self) -> None:
        """The premise: Node's URL parser reads each URL's host as the one the warning must name."""
        read = subprocess.run(["node", "-e", "let u = JSON.parse(require('fs').readFileSync(0, 'utf8'));"
                               "console.log(JSON.stringify(u.map(s => new URL(s).hostname)))"],
                              input=json.dumps(list(URLS)), capture_output=True, text=True, timeout=60, check=True)
        self.assertEqual(json.loads(read.stdout), [host for host, _ in URLS.values()])

    def test_each_is_listed_as_reaching_inside(self) -> None:
        self.assert_routes_files_reach_inside(ROUTES)

    def test_a_dotless_host_keys_value_is_listed_as_reaching_inside(self) -> None:
        """A name without a dot as a host key's value, or in a hosts list: a route to 'redis' is [internal] (another
        container), but 'host: redis' in a routes file was listed as naming no new host."""
        self.assert_routes_files_reach_inside(dict.fromkeys((
            'routes:\n  - host: redis\n', '{"routes": [{"host": "gitlab"}]}\n',
            'routes:\n  - hosts: [pypi.org, "kubernetes"]\n', 'routes:\n  - host: &h !!str redis\n',
            # on the line after its key, or an item of a hosts list one a line (before: no new host)
            'routes:\n  - host:\n      redis\n', '{"routes": [{"hosts": [\n  "pypi.org",\n  "gitlab"\n]}]}\n'),
            NO_DOT))

    def test_no_new_alarm_on_ordinary_urls(self) -> None:
        """A public URL (with a port, userinfo, a path of names), a path that names a dotless word, a comment's
        link, and a look-alike dot outside any URL read as before."""
        for routes, summary in (
                ("routes:\n  - host: pypi.org\n    upstream: https://ci@pypi.org:443/simple/\n",
                 "routes file: adds pypi.org"),
                ("routes:\n  - host: docs.python.org  # see https://docs.python.org/3/library/\n",
                 "routes file: adds docs.python.org"),
                ("routes:\n  - host: api.github.com\n    paths: [/v1/metadata/, /repos]\n",
                 "routes file: adds api.github.com"),
                ('{"host": "pypi.org", "methods": ["GET", "HEAD"]}\n', "routes file: adds pypi.org"),
                ("routes:\n  - host: pypi\u2024org\n", "routes file: adds pypi\\u2024org")):
            with self.subTest(routes=routes):
                approval = approval_of(TOOL_EGRESS_BLOCK, routes, None)
                self.assertEqual(approval.grants[0], summary)
                self.assertNotIn(INTERNAL, approval.kinds, approval)
