"""The patterns ``policy.host_text`` reads a routes file with skip text that holds none of their needles: the skip
must never change what they find.

Every guarded pattern in the module (found by its type, so one added later is
held to this too) is run with and without its guard over text written to
meet its edges: each needle, the characters a pattern that ignores case reads
as another (the long s, the Kelvin sign), characters outside ASCII, and the
routes-file lines of the attack corpora; what each finds must be the same,
match for match.
"""

from __future__ import annotations

import random
import re
import sys
import unittest

from bot_bottle.policy import host_text
from bot_bottle.policy.approval import approval_of
from bot_bottle.records import TOOL_EGRESS_BLOCK
from tests.helpers.corpus import HOSTILE

# What the patterns look for and around, and what reads as it under another case or form.
ALPHABET = [*"hostHOST.-[],:/\\@%\t\r\n\"' =#&!|>0123456789xXab", "\u017f", "\u212a", "\u0456", "\uff0e",
            "\u3002", "é", "localhost", "metadata", "http:", "https://", "//", "host:", "hosts: [", "- "]
LINES = [
    "host: 169.254.169.254", "ho\u017ft: 10.0.0.1", "HOSTS: [10.0.0.1, redis]", "- 2852039166", "url: http://0xa9fea9fe/",
    "//user@2852039166", "pypi.org", "  - host: pypi.org", "\"admin.local\\x68ost\"", "http:\\\\localhost\\",
    "http://a@b@metadata/", "x" * 200 + "host: 127.1", "p" * 5000, "0" * 64 + ":" + "1" * 64, "[::1]",
    "routes:", "  methods: [GET]", "pyp\u0456.org", "http://\uff4c\uff4f\uff43\uff41\uff4c\uff48\uff4f\uff53\uff54/",
    *HOSTILE.values(),
]


def guarded_patterns() -> dict[str, host_text._Guarded]:
    return {name: value for name, value in vars(host_text).items() if isinstance(value, host_text._Guarded)}


def texts() -> list[str]:
    rng = random.Random(20261206)
    made = ["".join(rng.choice(ALPHABET) for _ in range(rng.randrange(0, 24))) for _ in range(4000)]
    return [*LINES, *made]


class GuardTest(unittest.TestCase):
    def test_a_guard_never_changes_what_its_pattern_finds(self) -> None:
        guards = guarded_patterns()
        self.assertGreaterEqual(len(guards), 8, sorted(guards))
        corpus = texts()
        for name, guard in guards.items():
            skipped = matched = 0
            for text in corpus:
                spans = [match.span() for match in guard.pattern.finditer(text)]
                self.assertEqual([match.span() for match in guard.finditer(text)], spans, (name, text))
                found = guard.search(text)
                self.assertEqual(None if found is None else found.span(),
                                 spans[0] if spans else None, (name, text))
                skipped += not guard._may_match(text)
                matched += bool(spans)
            with self.subTest(name):
                # Not vacuous: the corpus meets both sides of every guard.
                self.assertGreater(skipped, 0, f"{name}: no text skipped")
                self.assertGreater(matched, 0, f"{name}: no text matched")

    def test_the_long_s_still_reads_as_a_host_key(self) -> None:
        """A pattern that ignores case reads 'ho', a long s (U+017F) and 't' as 'host'; the guard, reading the
        case-folded text, does too."""
        self.assertIsNotNone(host_text._HOST_KEY_RE.search("ho\u017ft: x"))
        self.assertIsNotNone(re.compile(r"\bhosts?\b", re.IGNORECASE).search("ho\u017ft: x"))

    def test_every_character_a_needle_may_match_folds_to_it(self) -> None:
        """The guard of a pattern that ignores case reads the case-folded text: sound only if every character the
        pattern reads as a needle's character (under this Python's tables: the long s, the Kelvin sign, the
        dotted and dotless i) case-folds to that very character, so a match's fold holds the needle whole. Checked
        over every code point, so a Python whose tables add a case pair fails here, not in a routes file."""
        every = "".join(map(chr, range(sys.maxunicode + 1)))
        for name, guard in guarded_patterns().items():
            if not guard.pattern.flags & re.IGNORECASE:
                continue
            for needle in guard.needles:
                self.assertEqual(needle.casefold(), needle, name)
                for place, char in enumerate(needle):
                    read_as = {found.group() for found in re.finditer(re.escape(char), every, re.IGNORECASE)}
                    self.assertEqual({other for other in read_as if other.casefold() != char}, set(),
                                     (name, needle, char))
                    for other in read_as:  # and the guard lets each such spelling through ("ho\u017ft")
                        spelled = needle[:place] + other + needle[place + 1:]
                        self.assertTrue(guard._may_match(f"x {spelled} y"), (name, spelled))

    def test_a_long_line_reads_the_same(self) -> None:
        """A routes file of one 128 KiB line, as a flood files it, is read for the same hosts as before (the
        guards made it about six times cheaper to read: tests/attacks/test_sidecar_server.py lists 1,000)."""
        line = "00000012" + "p" * (128 * 1024 - 8)
        approval = approval_of(TOOL_EGRESS_BLOCK, line + "\nhost: 10.0.0.1", "c" * 1024)
        self.assertIn("routes file: adds 10.0.0.1", approval.grants[0])


if __name__ == "__main__":
    unittest.main()
