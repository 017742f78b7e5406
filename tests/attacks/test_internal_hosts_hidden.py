"""Hosts that reach inside and were still shown as plain grants (review 14).

Measured before the fixes next to these tests, with the agent's real sidecar
and the operator's real command line:

- a routes file naming the metadata service with a YAML or JSON escape in
  the address (``"169.254.169.\\x32\\x35\\x34"``, ``"\\u0031\\u0036\\u0039.254.169.254"``),
  continued over two lines with a trailing backslash (``"169.254.\\`` then
  ``169.254"``), or in another IPv4 form on the line after its host key
  (``host:`` then ``2852039166``, YAML's value on the next line or a ``>-``
  block scalar) was summed up as "names no new host" (or "adds
  u0039.254.169.254"), with no warning and no typed yes: a YAML or JSON
  reader reads 169.254.169.254 in each;
- a token report sent to an IPv6 address that embeds the metadata service's
  (NAT64's ``[64:ff9b::a9fe:a9fe]``, the local-use NAT64 prefix's
  ``[64:ff9b:1::a9fe:a9fe]``, SIIT's ``[::ffff:0:a9fe:a9fe]``, 6to4's
  ``[2002:a9fe:a9fe::]``) was shown as a plain grant, and approving it let
  the token through to that host;
- the cloud's metadata service by its other names (GCE's ``metadata.goog``,
  IBM Cloud's ``api.metadata.cloud.ibm.com``, Tencent Cloud's
  ``metadata.tencentyun.com``) and Azure's platform address 168.63.129.16
  (the WireServer: its agent's configuration and extension settings) were
  plain grants.
"""

from __future__ import annotations

import json

from bot_bottle.cli.tui.deciding import target_lines
from bot_bottle.decisions import decide
from bot_bottle.grants import GrantStore
from bot_bottle.policy.approval import INTERNAL, approval_of
from bot_bottle.queue_store import QueueStore
from bot_bottle.records import STATUS_APPROVED, TOOL_EGRESS_ALLOW, TOOL_EGRESS_BLOCK, TOOL_EGRESS_TOKEN_ALLOW
from bot_bottle.sidecar.egress import EgressGrants, request_token_override
from tests.attacks.test_address_forms import AddressFormsCase
from tests.attacks.test_standing_rejections import call

# Each routes file, and the address a YAML or JSON reader reads in it.
HIDDEN_ROUTES = {
    'routes:\n  - host: "169.254.169.\\x32\\x35\\x34"\n': "169.254.169.254",
    '{"routes": [{"host": "\\u0031\\u0036\\u0039.254.169.254"}]}\n': "169.254.169.254",
    'routes:\n  - host: "\\u0031\\u0030.0.0.5"\n': "10.0.0.5",
    'routes:\n  - host: "169.254.\\\n      169.254"\n': "169.254.169.254",
    'routes:\n  - host:\n      "2852039166"\n': "169.254.169.254",
    'routes:\n  - host:\n      169.254.43518\n': "169.254.169.254",
    'routes:\n  - host: >-\n      0xa9fea9fe\n': "169.254.169.254",
    '{"routes": [{"hosts": [\n  "pypi.org",\n  "2852039166"\n]}]}\n': "169.254.169.254",
    'routes:\n  - host: 2852039166:80\n': "169.254.169.254",
    'routes:\n  - host: !!str 2852039166\n': "169.254.169.254",
    'routes:\n  - host: &meta 169.254.43518\n': "169.254.169.254",
    'routes:\n  - url: "http://0xa9fea9fe/latest/meta-data/"\n': "169.254.169.254",
    'routes:\n  - upstream: http://user@2130706433:8080/\n': "127.0.0.1",
    # A URL's percent-escapes, which a URL parser decodes in a host (WHATWG's, as browsers, Node and Go read it).
    'routes:\n  - url: "http://%31%36%39.254.169.254/latest/meta-data/"\n': "169.254.169.254",
    'routes:\n  - upstream: http://%31%30.0.0.5:8080/\n': "10.0.0.5",
    'routes:\n  - url: "http://l%6fcalhost/"\n': "this machine",
    # A dotless name as a URL's host, whatever the case of the scheme.
    'routes:\n  - upstream: HTTP://METADATA:80/computeMetadata/\n': "169.254.169.254",
    'routes:\n  - upstream: //ci@localhost/\n': "this machine",
}
# Token reports' hosts, and the address each embeds.
EMBEDDED = {"[64:ff9b::a9fe:a9fe]": "169.254.169.254", "[64:ff9b:1::a9fe:a9fe]": "169.254.169.254",
            "[::ffff:0:a9fe:a9fe]": "169.254.169.254", "[2002:a9fe:a9fe::]": "169.254.169.254",
            "[64:ff9b::a00:5]": "10.0.0.5"}
NAMES = {"metadata.goog": "169.254.169.254", "api.metadata.cloud.ibm.com": "169.254.169.254",
         "metadata.tencentyun.com": "169.254.0.23", "168.63.129.16": "Azure's platform address"}
TOKEN = "ghp_" + "Hd8sK2mQ9wE4rT7yU1iO3pA6sD5fG0hJ2kL8"


def internal(approval_warnings: list[dict[str, str]]) -> list[str]:
    return [warning["text"] for warning in approval_warnings if warning["kind"] == INTERNAL]


class HiddenInsideHostsTest(AddressFormsCase):
    def assert_internal_warnings(self, hosts: dict[str, str]) -> None:
        """Each of ``hosts`` filed by the agent through its sidecar, listed with an internal warning first that
        holds what ``hosts`` names for it."""
        for host in hosts:
            filed = call(self.url, TOOL_EGRESS_ALLOW, {"host": host, "justification": "the build cache"})
            self.assertEqual(filed["status"], "pending", filed)
        shown = {p["grants"]["summary"].split()[0]: p for p in self.listed()}
        for host, needle in hosts.items():
            with self.subTest(host=host):
                warnings = internal(shown[host]["grants"]["warnings"])
                self.assertTrue(warnings and needle in warnings[0], shown[host]["grants"])

    def test_a_routes_file_hiding_the_address_says_where_it_reaches(self) -> None:
        self.assert_routes_files_reach_inside(HIDDEN_ROUTES)

    def test_a_kept_first_line_does_not_hide_a_new_continuation(self) -> None:
        """The first line of a continued value kept from the current file, its new second line finishing the
        address: still a new line's host."""
        current = 'routes:\n  - host: "169.254.\\\n      1.1"\n'
        routes = 'routes:\n  - host: "169.254.\\\n      169.254"\n'
        approval = approval_of(TOOL_EGRESS_BLOCK, routes, current)
        self.assertIn(INTERNAL, approval.kinds, approval)

    def test_a_token_sent_to_an_address_embedding_one_inside(self) -> None:
        """Filed by the sidecar's DLP hold; listed as internal, naming the embedded address; approved (by
        digest, as a script), the grant lets the token through to that host."""
        with QueueStore() as sidecar:
            bottle = sidecar.for_bottle("web-1")
            grants = EgressGrants(bottle, ttl=0)
            for host in EMBEDDED:
                self.assertFalse(request_token_override(
                    bottle, grants, host=host, method="GET", path="/latest/meta-data/", detector="github-pat",
                    context=f"token {TOKEN}", value=TOKEN, timeout=0, poll_interval=0.05))
            shown = {p["grants"]["summary"].split(" sent to ")[1].removesuffix(" (GET; every path)"): p
                     for p in self.listed()}
            self.assertEqual(set(shown), set(EMBEDDED))
            for host, address in EMBEDDED.items():
                with self.subTest(host=host):
                    warnings = internal(shown[host]["grants"]["warnings"])
                    self.assertTrue(warnings and address in warnings[0], shown[host]["grants"])
            nat64 = shown["[64:ff9b::a9fe:a9fe]"]["id"]
            decide(nat64, STATUS_APPROVED, "the build's", store=sidecar)
            self.assertTrue(grants.allows_token(TOKEN, host="[64:ff9b::a9fe:a9fe]", method="GET"))
            self.assertEqual(len(GrantStore(database=sidecar.db).listing()), 1)

    def test_the_metadata_service_by_its_other_names(self) -> None:
        self.assert_internal_warnings(NAMES)
        listed = self.run_cli("proposals", "list")
        self.assertRegex(listed.stdout, r"\[look-alike,internal\] metadata\.goog \(any method; every path\)")

    def test_no_false_alarm_on_numbers_that_are_no_host(self) -> None:
        """A port, a timeout or a version alone on the line after another key is no address."""
        routes = ('routes:\n  - host: pypi.org\n    ports:\n      443\n    timeout: >-\n      30\n'
                  '    version:\n      "2852039166"\n    paths: ["/v1//2852039166/", "/a:2130706433"]\n'
                  '    upstream: https://pypi.org:443/simple/\n')
        approval = approval_of(TOOL_EGRESS_BLOCK, routes, None)
        self.assertNotIn(INTERNAL, approval.kinds, approval)
        # A list of ports, a retry count, a time: before, 'ports: [80, 443]' was 'adds pypi.org, 80, 443', a
        # look-alike and internal (0.0.0.80), asking for a typed yes on an ordinary file.
        routes = ('routes:\n  - host: pypi.org\n    ports: [80, 443]\n    retry_after:\n      - 3600\n'
                  '    at: [09, 10:30]\n')
        approval = approval_of(TOOL_EGRESS_BLOCK, routes, None)
        self.assertEqual((approval.grants[0], approval.kinds), ("routes file: adds pypi.org", ()))
        filed = call(self.url, TOOL_EGRESS_BLOCK, {"routes_file": routes, "justification": "the docs"})
        self.assertEqual(filed["status"], "pending", filed)
        listed = self.run_cli("proposals", "list")
        self.assertIn("\tpending\troutes file: adds pypi.org\tthe docs", listed.stdout)  # no badge before it
        for routes in ("routes:\n  - hosts: [443, 2852039166]\n", "routes:\n  - hosts: [0]\n"):
            with self.subTest(routes=routes):
                self.assertIn(INTERNAL, approval_of(TOOL_EGRESS_BLOCK, routes, None).kinds)
        for host in ("2600:1f18::1", "[2a00:1450:4001::200e]", "64.233.160.0", "2002:808:808::"):
            with self.subTest(host=host):
                report = {"host": host, "method": "GET", "detector": "x"}
                self.assertNotIn(INTERNAL, approval_of(TOOL_EGRESS_TOKEN_ALLOW, json.dumps(report)).kinds)

    def test_many_private_lines_do_not_push_the_metadata_service_out_of_view(self) -> None:
        """Twelve new lines to private addresses, then the metadata service: the listing's warnings are cut to
        twelve, and the metadata service was the one cut ('and 1 more line(s) like these'). Worst first now."""
        routes = "routes:\n" + "".join(f"  - host: 10.0.0.{n}\n" for n in range(1, 13)) + "  - host: 169.254.169.254\n"
        filed = call(self.url, TOOL_EGRESS_BLOCK, {"routes_file": routes, "justification": "the lab"})
        self.assertEqual(filed["status"], "pending", filed)
        (proposal,) = self.listed()
        warnings = internal(proposal["grants"]["warnings"])
        self.assertIn("host 169.254.169.254 reaches inside: the cloud's metadata service", warnings[0])
        self.assertEqual(warnings[-1], "and 1 more line(s) like these")
        shown = self.run_cli("proposals", "show", proposal["id"])
        self.assertIn("169.254.169.254 reaches inside: the cloud's metadata service", shown.stdout)

    def test_names_only_a_private_resolver_answers(self) -> None:
        """A name under a private-use domain (.internal, .local, .home.arpa, Kubernetes' .svc and .cluster.local),
        under a top-level domain public DNS lacks (kubernetes.default, the cluster's API server by the pod's search
        domains; .test, .alt, an unlisted internationalized one), or without a dot (another container on the
        sidecar's network): public DNS answers none, so a client reaches whatever the sidecar's own network holds
        there. Each was a plain grant."""
        private = {"db.internal": ".internal", "kubernetes.default.svc": ".svc", "printer.local": ".local",
                   "nas.home.arpa": ".home.arpa", "*.svc.cluster.local": ".cluster.local",
                   "redis": "a name without a dot", "kubernetes.default": ".default, a top-level domain public DNS",
                   "vault.ops.test": ".test", "*.staging": ".staging", "api.xn--zckzah": ".xn--zckzah",
                   "db.alt": ".alt"}
        self.assert_internal_warnings(private)
        for host in ("internal.example.com", "local.github.io", "svc.example.org", "api.github.com", "pypi.org",
                     "docs.example", "x.invalid", "shop.xn--p1ai", "mirror.onion", "1.2.3.4.5.6"):
            with self.subTest(host=host):
                self.assertNotIn(INTERNAL, approval_of(TOOL_EGRESS_ALLOW, json.dumps({"host": host})).kinds)

    def test_names_only_a_private_resolver_answers_written_in_unicode(self) -> None:
        """The same names written as IDNA maps them (a client that applies it, Python's socket, a browser, curl
        with libidn, asks DNS for the ASCII form): an unlisted internationalized TLD in Unicode (db.\u30c6\u30b9\u30c8
        is db.xn--zckzah), an ideographic full stop (kubernetes\u3002default), full-width letters. Each was a
        look-alike only, with no internal warning, where its ASCII form is internal (review 18)."""
        self.assert_routes_files_reach_inside({
            "routes:\n  - url: http://db.\u30c6\u30b9\u30c8/\n": ".xn--zckzah",
            "routes:\n  - host: db.\u30c6\u30b9\u30c8\n": ".xn--zckzah",
            "routes:\n  - host: kubernetes\u3002default\n": ".default",
            'routes:\n  - host: "kubernetes\\u3002default"\n': ".default",
            "routes:\n  - host: vault.\uff54\uff45\uff53\uff54\n": ".test",
            "routes:\n  - host: redis.\uff53\uff54\uff41\uff47\uff49\uff4e\uff47\n": ".staging",
        })
        for routes in ("routes:\n  - host: docs.\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45\n",
                       "routes:\n  - host: shop.\u0440\u0444\n", "routes:\n  - host: caf\u00e9.fr\n"):
            with self.subTest(routes=routes):
                self.assertNotIn(INTERNAL, approval_of(TOOL_EGRESS_BLOCK, routes, None).kinds)

    def test_no_false_alarm_under_a_top_level_domain_the_list_names_only_beneath(self) -> None:
        """South Africa's .za takes no names of its own: the Public Suffix List names co.za, gov.za and the rest,
        never za alone. Every .za host (www.gov.za, a shop on co.za) was listed [internal], 'a top-level domain
        public DNS does not have', and asked for a typed yes (review 18)."""
        for host in ("www.gov.za", "takealot.co.za"):
            filed = call(self.url, TOOL_EGRESS_ALLOW, {"host": host, "justification": "the docs"})
            self.assertEqual(filed["status"], "pending", filed)
        listed = self.run_cli("proposals", "list")
        for host in ("www.gov.za", "takealot.co.za"):
            with self.subTest(host=host):
                self.assertIn(f"\tpending\t{host} (any method; every path)\tthe docs", listed.stdout)
        routes = "routes:\n  - host: www.gov.za\n  - url: https://takealot.co.za/api/\n"
        self.assertNotIn(INTERNAL, approval_of(TOOL_EGRESS_BLOCK, routes, None).kinds)

    def test_a_kept_line_moved_from_a_deny_list_into_the_routes(self) -> None:
        """The current file denies the metadata service; the new one drops the 'deny:' line, so the same line,
        kept as written, now stands among the routes. Before: 'names no new host', no warning, no typed yes."""
        current = "routes:\n  - host: pypi.org\ndeny:\n  - host: 169.254.169.254\n"
        routes = "routes:\n  - host: pypi.org\n  - host: 169.254.169.254\n"
        approval = approval_of(TOOL_EGRESS_BLOCK, routes, current)
        self.assertTrue(approval.needs_confirmation, approval)
        (warning,) = [caution.text for caution in approval.cautions if caution.kind == INTERNAL]
        self.assertIn("an unchanged line's host 169.254.169.254 reaches inside: the cloud's metadata", warning)
        # The same with the address on the line after its host key, both lines kept
        current = "routes:\n  - host: pypi.org\ndeny:\n  - host:\n      2852039166\n"
        routes = "routes:\n  - host: pypi.org\n  - host:\n      2852039166\n"
        (warning,) = [caution.text for caution in approval_of(TOOL_EGRESS_BLOCK, routes, current).cautions
                      if caution.kind == INTERNAL]
        self.assertIn("an unchanged line's host 2852039166 reaches inside: 169.254.169.254", warning)

    def test_the_tui_prompt_names_the_internal_caution_whatever_precedes_it(self) -> None:
        """The TUI's approve prompt shows three cautions: a routes file with three look-alike hosts before the
        metadata service showed those three, and not the internal one. Now the first of each kind comes first."""
        routes = "routes:\n" + "".join(f"  - host: pyp\u0456{n}.org\n" for n in range(3)) + \
            "  - host: 169.254.169.254\n"
        filed = call(self.url, TOOL_EGRESS_BLOCK, {"routes_file": routes, "justification": "mirrors"})
        self.assertEqual(filed["status"], "pending", filed)
        with QueueStore() as store:
            (proposal,) = store.pending("web-1")
        approval = approval_of(proposal.tool, proposal.payload, proposal.current_file)
        shown = "\n".join(target_lines(proposal, approval, "approve", cautions=True))
        self.assertIn("internal: a new line's host 169.254.169.254 reaches inside: the cloud's metadata", shown)
        self.assertIn("look-alike: line 2: host pyp\\u04560.org", shown)
