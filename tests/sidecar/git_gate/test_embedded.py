"""Archives and compressed streams after other bytes (``sidecar.git_gate.embedded``)."""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
import random
import unittest

from bot_bottle.errors import GitGateError
from bot_bottle.sidecar.git_gate.embedded import MAX_FALSE_STARTS, embedded_7z, embedded_streams


def _no_limit(size: int, stored: int, label: str) -> None:
    """A ``grew`` that lets everything grow."""


class EmbeddedTest(unittest.TestCase):
    def test_a_stream_after_text_and_before_trailing_bytes_is_found_whole(self) -> None:
        data = b"notes\n" + gzip.compress(b"one\n") + gzip.compress(b"two\n") + b"tail" + lzma.compress(b"three")
        found = dict(embedded_streams(data, _no_limit, "f"))
        self.assertEqual(found["f!(decompressed gzip at byte 6)"], b"one\ntwo\n")
        self.assertIn(b"three", found.values())

    def test_streams_longer_than_a_chunk_are_read_whole(self) -> None:
        """Each kind's stream decompressing to many chunks, after other bytes (zlib.decompressobj has no class
        of its own at run time: the gzip stream's second chunk once raised AttributeError)."""
        text = b"".join(b"line %d of the notes, ghp_%036d\n" % (n, n) for n in range(20000))
        for kind, compressed in (("gzip", gzip.compress(text)), ("bzip2", bz2.compress(text)),
                                 ("xz", lzma.compress(text))):
            found = dict(embedded_streams(b"a header\n" + compressed + b"trailer", _no_limit, "f"))
            self.assertEqual(found.get(f"f!(decompressed {kind} at byte 9)"), text, kind)

    def test_signatures_by_chance_in_a_binary_are_bytes_like_any_others(self) -> None:
        noise = random.Random(7).randbytes(1 << 20) + b"\x1f\x8b\x08" + os.urandom(64) + b"BZh9" + b"7z\xbc\xaf\x27\x1c"
        self.assertEqual(list(embedded_streams(noise, _no_limit, "f")), [])
        self.assertEqual(embedded_7z(noise), 0)

    def test_more_false_starts_than_the_bound_are_refused(self) -> None:
        data = b"x" + b"\x1f\x8b\x08junk" * (MAX_FALSE_STARTS + 1) + gzip.compress(b"hidden")
        with self.assertRaises(GitGateError) as caught:
            list(embedded_streams(data, _no_limit, "f"))
        self.assertIn(f"more than {MAX_FALSE_STARTS} places", str(caught.exception))

    def test_a_limit_reached_while_a_stream_grows_is_raised(self) -> None:
        def tight(size: int, stored: int, label: str) -> None:
            if size > 1000:
                raise GitGateError(f"{label}: too large")

        with self.assertRaises(GitGateError):
            list(embedded_streams(b"x" + gzip.compress(b"\0" * 100_000), tight, "f"))


if __name__ == "__main__":
    unittest.main()
