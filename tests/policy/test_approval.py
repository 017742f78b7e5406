"""What approving grants and its cautions (policy.approval), and hosts read as they are (policy.hosts)."""

from __future__ import annotations

import json
import unittest
from unittest import mock

from bot_bottle.policy import approval
from bot_bottle.policy.approval import INTERNAL, LOOK_ALIKE, UNREADABLE, WIDENS, approval_of
from bot_bottle.policy.host_text import hosts_in_text
from bot_bottle.policy.hosts import host_problems, idna_form, shown_host
from bot_bottle.records import TOOL_EGRESS_ALLOW, TOOL_EGRESS_BLOCK, TOOL_EGRESS_TOKEN_ALLOW, TOOL_GITLEAKS_ALLOW
from tests.helpers.corpus import HOSTILE

# Hosts that read as pypi.org, and what each must be flagged with.
LOOK_ALIKE_HOSTS = {
    "pyp\u0456.org": ("U+0456 (CYRILLIC SMALL LETTER BYELORUSSIAN-UKRAINIAN I) at character 4", "xn--pyp-lhd.org"),
    "pypi\u2024org": ("U+2024 (ONE DOT LEADER) at character 5, which reads as '.'", "IDNA form (the name a client "
                      "that applies IDNA connects to) is pypi.org"),
    "\u0440ypi.org": ("U+0440 (CYRILLIC SMALL LETTER ER) at character 1", "xn--ypi-"),
    "\uff50ypi.org": ("U+FF50 (FULLWIDTH LATIN SMALL LETTER P) at character 1, which reads as 'p'", "is pypi.org"),
    "pypi.org\u200b": ("U+200B (ZERO WIDTH SPACE) at character 9", "is pypi.org"),
    "pypi\u3002org": ("U+3002 (IDEOGRAPHIC FULL STOP)", "is pypi.org"),
    "xn--pyp-lhd.org": ("its label xn--pyp-lhd is the internationalized name 'pyp\\u0456'", "U+0456"),
}


class WholeFileTest(unittest.TestCase):
    def test_the_lines_are_counted_as_an_editor_counts_them(self) -> None:
        """BROKE before the fix: a three-line file ending in a newline was 'the whole file: 4 line(s)'."""
        for text, count in (("routes:\n- a.com\n- b.com\n", 3), ("routes:\n- a.com\n- b.com", 3), ("\n", 1),
                            ("routes: []", 1), ("a\n\n", 2)):
            with self.subTest(text=text):
                grants = approval_of(TOOL_EGRESS_BLOCK, text).grants
                self.assertTrue(grants[1].startswith(f"the whole file: {count} line(s), sha256 "), grants)


class HostsTest(unittest.TestCase):
    def test_look_alikes_are_named_with_code_point_and_idna_form(self) -> None:
        """Every look-alike of pypi.org: its odd character by code point and name, and what IDNA makes of it."""
        for host, needles in LOOK_ALIKE_HOSTS.items():
            with self.subTest(host=host.encode("unicode_escape")):
                problems = " ".join(host_problems(host))
                for needle in needles:
                    self.assertIn(needle, problems)
                self.assertTrue(shown_host(host).isascii())
                self.assertNotEqual(shown_host(host), "pypi.org")

    def test_plain_hosts_have_no_problems(self) -> None:
        for host in ("pypi.org", "*.python.org", "files.pythonhosted.org", "a-b_c.example", "10.0.0.1"):
            with self.subTest(host):
                self.assertEqual(host_problems(host), [])
                self.assertEqual(shown_host(host), host)

    def test_a_port_or_brackets_are_no_look_alike_but_what_follows_them_is(self) -> None:
        """A token report's host may carry a port, an IPv6 address its brackets: before the fix
        ``169.254.169.254:80`` was a look-alike for its colon. A character hidden after the port is still named."""
        for host in ("169.254.169.254:80", "pypi.org:443", "[::1]:8080", "[fd00::1]", "::1"):
            with self.subTest(host):
                self.assertEqual(host_problems(host), [])
        for host, needle in (("pypi.org:443\u200b", "U+200B (ZERO WIDTH SPACE)"),
                             ("[pyp\u0456.org]:443", "U+0456"), ("a.example:99999999", "U+003A (COLON)")):
            with self.subTest(host):
                self.assertIn(needle, " ".join(host_problems(host)))

    def test_an_xn_label_that_does_not_decode_and_one_idna_cannot_encode(self) -> None:
        self.assertIn("not a valid internationalized name", " ".join(host_problems("xn--a.org")))
        self.assertTrue(idna_form("a" * 70 + "\u0456.org").startswith("none (IDNA cannot encode it"))

    def test_hosts_are_found_wherever_a_routes_file_writes_them(self) -> None:
        """YAML, JSON, URLs, ports, lists: each host is a token of its own, the look-alike included."""
        text = ('  - host: "pyp\u0456.org"\n{"hosts": ["*.com", "a.example:443"]}\n'
                "- https://docs.python.org/3/ # version 3.11\n")
        self.assertEqual(hosts_in_text(text), ["pyp\u0456.org", "*.com", "a.example", "docs.python.org"])


class ApprovalTest(unittest.TestCase):
    def test_a_route_grants_its_host_methods_and_paths(self) -> None:
        approval = approval_of(TOOL_EGRESS_ALLOW, '{"host": "pypi.org", "methods": ["GET"], "paths": ["/simple/"]}')
        self.assertEqual(approval.grants, ("pypi.org (GET; /simple/)", "on every port (a route names no port)"))
        self.assertEqual((approval.cautions, approval.needs_confirmation), ((), False))

    def test_wildcards_over_many_owners_widen_and_ask_twice(self) -> None:
        for host in ("*.com", "*.readthedocs.io", "*.compute.amazonaws.com", "*.co.uk"):
            with self.subTest(host):
                approval = approval_of(TOOL_EGRESS_ALLOW, json.dumps({"host": host}))
                # *.com covers lacolhost.com (every name 127.0.0.1) and the names IBM's and Tencent's clouds answer
                # with their metadata service's address: named as those too.
                self.assertEqual(approval.kinds, (WIDENS, LOOK_ALIKE, INTERNAL) if host == "*.com" else (WIDENS,))
                self.assertTrue(approval.needs_confirmation)
                self.assertIn(f"every name under .{host[2:]}", approval.cautions[0].text)

    def test_a_look_alike_route_grants_nothing_and_says_why(self) -> None:
        """The route's own rules refuse a non-ASCII host: approving grants nothing; the host is still named."""
        approval = approval_of(TOOL_EGRESS_ALLOW, '{"host": "pyp\u0456.org"}')
        self.assertEqual(approval.kinds, (LOOK_ALIKE, UNREADABLE))
        self.assertIn("nothing", approval.summary)
        self.assertIn("pyp\\u0456.org", " ".join(c.text for c in approval.cautions))
        # The parse error quotes the host too: escaped there as well, never the look-alike as it reads.
        self.assertTrue(all(c.text.isascii() for c in approval.cautions), approval.cautions)

    def test_every_item_and_caution_is_ascii_whatever_the_payload_quotes(self) -> None:
        """A finding's file, a token's detector, a wildcard over a non-ASCII suffix: escaped wherever quoted."""
        cases = {  # the payload, and an escape that must be somewhere in what is shown
            TOOL_GITLEAKS_ALLOW: (json.dumps({"findings": [{"rule": "aws-key", "file": "p\u0430th.py", "line": 1}]},
                                             ensure_ascii=False), "p\\u0430th.py"),
            TOOL_EGRESS_TOKEN_ALLOW: (json.dumps({"host": "api.github.com", "method": "POST",
                                                  "detector": "github\u2024pat"}, ensure_ascii=False),
                                      "github\\u2024pat"),
            TOOL_EGRESS_ALLOW: (json.dumps({"host": "*.\u0440\u0444"}, ensure_ascii=False), "\\u0440\\u0444"),
            TOOL_EGRESS_BLOCK: ("routes:\n- '*.\u0440\u0444'\n- pyp\u0456.org\n", "pyp\\u0456.org"),
        }
        for tool, (payload, escape) in cases.items():
            with self.subTest(tool):
                approval = approval_of(tool, payload)
                shown = (*approval.grants, *(c.text for c in approval.cautions))
                for text in shown:
                    self.assertTrue(text.isascii() and text.isprintable(), text)
                self.assertIn(escape, " ".join(shown))

    def test_a_urls_percent_escapes_are_read_as_a_url_parser_reads_them(self) -> None:
        """``pyp%D1%96.org`` in a URL is pyp\\u0456.org (a Cyrillic i) to a WHATWG URL parser: a look-alike, named."""
        approval = approval_of(TOOL_EGRESS_BLOCK, 'routes:\n  - url: "https://pyp%D1%96.org/simple/"\n', None)
        self.assertIn("pyp\\u0456.org", " ".join(caution.text for caution in approval.cautions
                                                  if caution.kind == LOOK_ALIKE))
        self.assertTrue(approval.needs_confirmation)
        plain = approval_of(TOOL_EGRESS_BLOCK, 'routes:\n  - url: "https://pypi.org/a%20b"\n', None)
        self.assertEqual(plain.cautions, ())  # an escape in a path is no caution
        for path in ('routes:\n  - url: "https://x.org//metadata/"\n', 'routes:\n  - path: /v1/metadata\n'):
            self.assertEqual(approval_of(TOOL_EGRESS_BLOCK, path, None).cautions, (), path)  # a path, no host

    def test_a_routes_file_names_what_it_adds_and_drops_and_every_look_alike(self) -> None:
        current = "routes:\n- a.example\n- old.example\n"
        payload = "routes:\n- a.example\n- pypi\u2024org\n- \"*.readthedocs.io\"\n- new.example\n"
        approval = approval_of(TOOL_EGRESS_BLOCK, payload, current)
        self.assertEqual(approval.summary,
                         "routes file: adds pypi\\u2024org, *.readthedocs.io, new.example; drops old.example")
        texts = [c.text for c in approval.cautions]
        self.assertTrue(any(t.startswith("line 4 (new) widens access: host '*.readthedocs.io'") for t in texts), texts)
        self.assertTrue(any(t.startswith("line 3: host pypi\\u2024org is not what it looks like") for t in texts))

    def test_a_huge_routes_file_is_summed_up_boundedly(self) -> None:
        payload = "".join(f'- host: "*.h{i}.co.uk"\n- pyp\u0456{i}.org\n' for i in range(3000))
        approval = approval_of(TOOL_EGRESS_BLOCK, payload, None)
        self.assertLess(len(approval.cautions), 30)
        self.assertIn("and 2988 more", approval.cautions[-1].text + approval.cautions[12].text)
        self.assertIn("and 5988 more", approval.summary)

    def test_reports_grant_findings_and_tokens(self) -> None:
        findings = {"findings": [{"rule": "aws-access-token", "file": "conf/keys.py", "line": 12,
                                  "commit": "0123456789abcdef"}, {"rule": "generic-api-key", "file": "x.env",
                                                                  "line": 1}]}
        approval = approval_of(TOOL_GITLEAKS_ALLOW, json.dumps(findings))
        self.assertEqual(approval.summary, "2 findings let into the repository: aws-access-token in conf/keys.py:12 "
                                           "(commit 01234567) and 1 more")
        token = approval_of(TOOL_EGRESS_TOKEN_ALLOW, json.dumps({"host": "api.github.com", "method": "POST",
                                                                 "detector": "github-pat"}))
        self.assertEqual(token.summary, "a github-pat token, sent to api.github.com (POST; every path)")
        for tool in (TOOL_GITLEAKS_ALLOW, TOOL_EGRESS_TOKEN_ALLOW):
            with self.subTest(tool):
                self.assertEqual(approval_of(tool, "[1, 2]").kinds, (UNREADABLE,))

    def test_hostile_payloads_never_raise(self) -> None:
        """Every corpus text as every tool's payload: an approval, never an exception."""
        for name, text in HOSTILE.items():
            for tool in (TOOL_EGRESS_ALLOW, TOOL_EGRESS_BLOCK, TOOL_GITLEAKS_ALLOW, TOOL_EGRESS_TOKEN_ALLOW):
                with self.subTest(name=name, tool=tool):
                    approval = approval_of(tool, text, text)
                    self.assertTrue(approval.grants)


class ReadOnceTest(unittest.TestCase):
    def test_the_same_input_is_read_once_a_process_and_any_change_is_read_again(self) -> None:
        """BROKE before the fix: each refresh of the TUI and the dashboard read every pending routes file again
        (about 1.3 s for one of 1 MiB: 15 from one bottle held each look for 20 s). The same tool, payload and
        current file give the same approval, read once; a change to any of them is read anew."""
        routes = "\n".join(f"- host{n}.example.com" for n in range(50))
        reads: list[str] = []
        real = approval._routes_file

        def counted(payload: str, current_file: str | None) -> approval.Approval:
            reads.append(payload)
            return real(payload, current_file)

        with mock.patch.object(approval, "_routes_file", counted), mock.patch.dict(approval._read, clear=True):
            first = approval_of(TOOL_EGRESS_BLOCK, routes, None)
            self.assertIs(approval_of(TOOL_EGRESS_BLOCK, routes, None), first)
            self.assertEqual(len(reads), 1)
            for payload, current in ((routes, "- host0.example.com"), (routes, ""), (routes + "\n- a.example", None),
                                     ("- 10.0.0.1", None)):
                with self.subTest(payload=payload[-12:], current=current):
                    again = approval_of(TOOL_EGRESS_BLOCK, payload, current)
                    self.assertEqual(again, real(payload, current))
            self.assertEqual(len(reads), 5)
            self.assertIn(INTERNAL, approval_of(TOOL_EGRESS_BLOCK, "- 10.0.0.1", None).kinds)
            # Another tool over the same text is another reading.
            self.assertNotEqual(approval_of(TOOL_EGRESS_ALLOW, '{"host": "a.example"}').tool,
                                approval_of(TOOL_EGRESS_BLOCK, '{"host": "a.example"}').tool)

    def test_what_is_kept_is_bounded(self) -> None:
        """No more than ``_READ_SIZE`` readings are kept; the oldest goes first."""
        with mock.patch.object(approval, "_READ_SIZE", 3), mock.patch.dict(approval._read, clear=True):
            for n in range(5):
                approval_of(TOOL_EGRESS_ALLOW, json.dumps({"host": f"h{n}.example"}))
            self.assertEqual(len(approval._read), 3)
            self.assertNotIn(approval._read_key(TOOL_EGRESS_ALLOW, json.dumps({"host": "h0.example"}), None),
                             approval._read)
