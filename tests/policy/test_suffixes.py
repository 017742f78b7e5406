"""The Public Suffix List in the package: its file, its refresh script, its matching, the wildcards it judges."""

from __future__ import annotations

import re
import subprocess
import sys
import unittest
from pathlib import Path

from bot_bottle.policy.routes import host_is_wide, line_widening, make_route
from bot_bottle.policy.suffixes import DATA_FILE, is_top_level_domain, parse, shipped
from tests.helpers.support import REPO, TempDirTest, in_ci

SHIPPED = REPO / "bot_bottle" / "policy" / DATA_FILE
SCRIPT = REPO / "scripts" / "refresh-public-suffix-list"
DEBIAN_LIST = Path("/usr/share/publicsuffix/public_suffix_list.dat")
# The list's own test vectors, as Debian's publicsuffix package ships them.
DEBIAN_VECTORS = Path("/usr/share/doc/publicsuffix/examples/test_psl.txt")


def require_debian_package(test: unittest.TestCase) -> None:
    """Skip without Debian's publicsuffix package (fail under CI, where .ci/run installs it)."""
    if DEBIAN_LIST.exists() and DEBIAN_VECTORS.exists():
        return
    message = "Debian's publicsuffix package is not installed (apt-get install publicsuffix; .ci/run does)"
    if in_ci():
        test.fail(message)
    raise unittest.SkipTest(message)


class ShippedListTest(unittest.TestCase):
    def test_the_file_carries_its_licence_and_both_sections(self) -> None:
        """The data file is the list as published: MPL-2.0 header first, the ICANN and private sections."""
        text = SHIPPED.read_text(encoding="utf-8")
        self.assertTrue(text.startswith("// This Source Code Form is subject to the terms of the Mozilla Public\n"
                                        "// License, v. 2.0."))
        for marker in ("===BEGIN ICANN DOMAINS===", "===BEGIN PRIVATE DOMAINS===", "===END PRIVATE DOMAINS==="):
            self.assertIn(marker, text)
        listed = shipped()
        self.assertGreater(len(listed.rules), 5000)
        self.assertIn("readthedocs.io", listed.private)
        self.assertIn("co.uk", listed.rules)
        self.assertNotIn("co.uk", listed.private)

    def test_the_lists_own_vectors(self) -> None:
        """Every check of the list's test file (Debian ships it): the registrable domain of each name."""
        require_debian_package(self)
        vectors = re.findall(r"^checkPublicSuffix\((null|'[^']*'), (null|'[^']*')\);$",
                             DEBIAN_VECTORS.read_text(encoding="utf-8"), re.MULTILINE)
        self.assertGreater(len(vectors), 60)
        listed = parse(DEBIAN_LIST.read_text(encoding="utf-8"))
        for given, expected in vectors:
            with self.subTest(given):
                name = None if given == "null" else given.strip("'")
                want = None if expected == "null" else expected.strip("'")
                self.assertEqual(listed.registrable_domain(name) if name is not None else None, want)

    def test_no_hand_written_suffix_list_is_left_in_the_package(self) -> None:
        """Suffixes are data: no module names platforms' suffixes itself."""
        for path in (REPO / "bot_bottle").rglob("*.py"):
            code = path.read_text(encoding="utf-8")
            with self.subTest(path.name):
                self.assertNotRegex(code, r'"(herokuapp\.com|vercel\.app|ngrok\.io|appspot\.com)"')


class TopLevelDomainTest(unittest.TestCase):
    def test_every_top_level_domain_the_list_names_and_no_other(self) -> None:
        """Read apart from the whole list (for speed): the same names as the parsed list's one-label rules and
        wildcards, in either form of an internationalized one; a name the list lacks is none."""
        whole = shipped()
        listed = {rule for rule in whole.rules | whole.wildcards if "." not in rule}
        self.assertGreater(len(listed), 1000)
        for label in sorted(listed):
            self.assertTrue(is_top_level_domain(label), label)
        for label in ("COM", "ck", "xn--p1ai", "\u0440\u0444", "onion", "arpa"):
            self.assertTrue(is_top_level_domain(label), label)
        for label in ("default", "test", "example", "invalid", "local", "internal", "alt", "xn--zckzah", "xn--",
                      "co.uk", "", "*", "//", "!www"):
            self.assertFalse(is_top_level_domain(label), label)


    def test_a_top_level_domain_the_list_names_only_beneath(self) -> None:
        """The last label of every rule is a top-level domain: .za has no rule of its own (co.za, gov.za), and
        was taken for one public DNS lacks (review 18)."""
        whole = shipped()
        for rule in sorted(whole.rules | whole.wildcards | whole.exceptions):
            self.assertTrue(is_top_level_domain(rule.rsplit(".", 1)[-1]), rule)
        self.assertTrue(is_top_level_domain("za"))


class RefreshScriptTest(TempDirTest):
    def run_script(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=60)

    def test_it_copies_debians_file_byte_for_byte(self) -> None:
        """From the installed package: the same bytes, the version named; the shipped file passes its checks."""
        require_debian_package(self)
        output = self.tmp / "list.dat"
        result = self.run_script("--output", str(output))
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(output.read_bytes(), DEBIAN_LIST.read_bytes())
        self.assertRegex(result.stdout, r"publicsuffix \S+, \d+ rules, sha256 [0-9a-f]{64}")
        again = self.run_script("--source", str(SHIPPED), "--output", str(self.tmp / "copy.dat"))
        self.assertEqual(again.returncode, 0, again.stderr)

    def test_it_refuses_what_is_not_the_list_and_writes_nothing(self) -> None:
        """No licence header, a missing section, too few rules: one error line, the output untouched."""
        text = SHIPPED.read_text(encoding="utf-8")
        header, rest = text.split("\n\n", 1)
        cases = {"licence": rest, "section": text.replace("// ===BEGIN PRIVATE DOMAINS===", ""),
                 "rules": header + "\n\n// ===BEGIN ICANN DOMAINS===\ncom\n// ===END ICANN DOMAINS===\n"
                 "// ===BEGIN PRIVATE DOMAINS===\n// ===END PRIVATE DOMAINS===\n"}
        output = self.tmp / "out.dat"
        output.write_text("before")
        for name, content in cases.items():
            with self.subTest(name):
                source = self.tmp / f"{name}.dat"
                source.write_text(content, encoding="utf-8")
                result = self.run_script("--source", str(source), "--output", str(output))
                self.assertEqual(result.returncode, 1)
                self.assertEqual(result.stderr.count("\n"), 1, result.stderr)
                self.assertIn("not written", result.stderr)
                self.assertEqual(output.read_text(), "before")


class WildcardTest(unittest.TestCase):
    def test_wildcards_over_names_of_many_owners_widen(self) -> None:
        """Over a TLD, an ICANN suffix, a platform's suffix, a name holding suffixes: each is named and why."""
        cases = {
            "*.com": "a top-level domain",
            "*.co.uk": "a public suffix",
            "*.readthedocs.io": "a shared platform's suffix",
            "*.github.io": "a shared platform's suffix",
            "*.compute.amazonaws.com": "which holds public suffixes",
            "*.amazonaws.com": "which holds public suffixes",
            "*.ck": "a top-level domain",
            "*.xn--55qx5d.cn": "a public suffix",  # 公司.cn, in its xn-- form
        }
        for host, why in cases.items():
            with self.subTest(host):
                self.assertTrue(host_is_wide(host))
                reasons = make_route(host).widening()
                self.assertEqual(len(reasons), 1, reasons)
                self.assertIn(f"every name under .{host[2:]}, {why}", reasons[0])
                self.assertTrue(line_widening(f'  - host: "{host}"'))

    def test_one_owners_subdomains_do_not(self) -> None:
        """``*.python.org``, ``*.example.co.uk``, the exception ``*.www.ck``: one owner's names."""
        for host in ("*.python.org", "*.example.co.uk", "*.docs.readthedocs.io", "*.www.ck", "docs.python.org"):
            with self.subTest(host):
                self.assertFalse(host_is_wide(host))
                self.assertEqual(line_widening(f"  - host: {host}"), [])
