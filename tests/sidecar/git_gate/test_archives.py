"""archives.expand on archives built here: every format and layer opened, every unreadable or hostile one refused.

The pushes through a real remote and gitleaks are in tests/attacks/test_git_gate.py;
these check the expansion itself, quickly, on the pitfalls of each format.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import struct
import time
import unittest
import warnings
import zipfile
import zlib

from bot_bottle.errors import GitGateError, ScanLimitExceeded
from bot_bottle.sidecar.git_gate.archives import expand, kinds
from bot_bottle.sidecar.git_gate.limits import MIB, Deadline, Limits
from tests.helpers.archives import docx, gnu_sparse_tar, tar_bytes, zip_bytes, zip_encrypted
from tests.helpers.git_remote import github_token

TOKEN = github_token(900)
LINE = f"token = {TOKEN}\n".encode()


def leaves(data: bytes, limits: Limits | None = None) -> dict[str, bytes]:
    return {leaf.label: leaf.data for leaf in expand(data, "x", limits or Limits(), Deadline(60))}


def found(data: bytes, limits: Limits | None = None) -> list[str]:
    """The labels of the leaves that hold the token in plain text."""
    return [leaf.label for leaf in expand(data, "x", limits or Limits(), Deadline(60)) if TOKEN.encode() in leaf.data]


class ExpansionTest(unittest.TestCase):
    def assert_refused(self, data: bytes, says: str, error: type[Exception] = GitGateError,
                       limits: Limits | None = None) -> None:
        """Expanding ``data`` raises ``error`` (a GitGateError), in one line holding ``says``."""
        with self.assertRaises(error) as caught:
            leaves(data, limits)
        self.assertIn(says, str(caught.exception))
        self.assertNotIn("\n", str(caught.exception))


class FormatsTest(ExpansionTest):
    def test_every_format_and_nesting_is_opened(self) -> None:
        """zip (each method, zip64, data descriptors), tar, tar.gz/bz2/xz, gz, bz2, xz, zlib, lzma, nested."""
        member = [("inner/secret.txt", b"intro\n" + LINE)]
        cases = {
            "zip stored": (zip_bytes(member, zipfile.ZIP_STORED), "x!inner/secret.txt"),
            "zip deflate": (zip_bytes(member), "x!inner/secret.txt"),
            "zip bzip2": (zip_bytes(member, zipfile.ZIP_BZIP2), "x!inner/secret.txt"),
            "zip lzma": (zip_bytes(member, zipfile.ZIP_LZMA), "x!inner/secret.txt"),
            "zip64": (zip_bytes(member, force_zip64=True), "x!inner/secret.txt"),
            "zip streamed (data descriptors)": (zip_bytes(member, streamed=True), "x!inner/secret.txt"),
            "tar": (tar_bytes(member), "x!inner/secret.txt"),
            "tar.gz": (gzip.compress(tar_bytes(member)), "x!(decompressed gzip)!inner/secret.txt"),
            "tar.bz2": (bz2.compress(tar_bytes(member)), "x!(decompressed bzip2)!inner/secret.txt"),
            "tar.xz": (lzma.compress(tar_bytes(member)), "x!(decompressed xz)!inner/secret.txt"),
            "gz": (gzip.compress(LINE), "x!(decompressed gzip)"),
            "gz, two members": (gzip.compress(b"a\n") + gzip.compress(LINE), "x!(decompressed gzip)"),
            "bz2, two streams": (bz2.compress(b"a\n") + bz2.compress(LINE), "x!(decompressed bzip2)"),
            "xz, two streams": (lzma.compress(b"a\n") + lzma.compress(LINE), "x!(decompressed xz)"),
            "zlib": (zlib.compress(LINE), "x!(decompressed zlib)"),
            "lzma alone": (lzma.compress(LINE, format=lzma.FORMAT_ALONE), "x!(decompressed lzma)"),
            "docx": (docx(LINE), "x!word/document.xml"),
            "zip in zip": (zip_bytes([("in.zip", zip_bytes(member))]), "x!in.zip!inner/secret.txt"),
            "tar.gz in zip": (zip_bytes([("in.tgz", gzip.compress(tar_bytes(member)))]),
                              "x!in.tgz!(decompressed gzip)!inner/secret.txt"),
            "zip in tar.gz": (gzip.compress(tar_bytes([("in.zip", zip_bytes(member))])),
                              "x!(decompressed gzip)!in.zip!inner/secret.txt"),
            "gz in gz": (gzip.compress(gzip.compress(LINE)), "x!(decompressed gzip)!(decompressed gzip)"),
            "zip after an image": (b"GIF89a" + b"\0" * 100 + zip_bytes(member), "x!inner/secret.txt"),
        }
        raw = {"zip stored", "tar", "xz, two streams"}  # the token is there as is (stored, or a tiny xz block)
        for name, (data, where) in cases.items():
            with self.subTest(name):
                self.assertEqual(TOKEN.encode() in data, name in raw)
                self.assertIn(where, found(data))

    def test_names_headers_comments_and_links_are_scanned(self) -> None:
        """A token as a member's name, a link's target, a PAX record or a zip comment, inside a compressed layer."""
        pax = tar_bytes([("a.txt", b"x\n")], pax={"comment": f"GITHUB_TOKEN={TOKEN}"})
        link = tar_bytes([("link", None)], link=f"GITHUB_TOKEN={TOKEN}")
        named = tar_bytes([(f"GITHUB_TOKEN={TOKEN}.txt", b"x\n")])
        commented = zip_bytes([("a.txt", b"x\n")], comment=f"GITHUB_TOKEN={TOKEN}".encode())
        for name, data in (("pax", pax), ("link", link), ("name", named), ("zip comment", commented)):
            with self.subTest(name):
                self.assertIn("x!(decompressed gzip)", found(gzip.compress(data)))

    def test_duplicate_names_are_each_read(self) -> None:
        """Two members named config.txt: the one a later unzip overwrites with is read too."""
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as archive, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            archive.writestr("config.txt", LINE)
            archive.writestr("config.txt", b"harmless\n")
        self.assertIn("x!config.txt", found(buf.getvalue()))

    def test_plain_bytes_are_not_archives(self) -> None:
        """Text with a weak signature ('x^', lzma-like) or PK inside is left to the plain scan."""
        for data in (b"x^2 + y^2\n" + LINE, b"see PK\x03\x04 here\n" + LINE, b"\x5d\x00\x00\x80\x00 text\n" + LINE,
                     b"hello\n"):
            with self.subTest(data=data[:12]):
                self.assertEqual(leaves(data), {})

    def test_a_tar_of_several_zips(self) -> None:
        """A release tarball with two jars (each a zip in a member): each opened as the member it is, not refused
        for the first zip's entries showing before the second's."""
        jars = [("lib/a.jar", zip_bytes([("A.class", b"a")])), ("lib/b.jar", zip_bytes([("B.class", LINE)]))]
        for name, data in (("tar", tar_bytes(jars)), ("tar.gz", gzip.compress(tar_bytes(jars)))):
            with self.subTest(name):
                self.assertTrue(any(label.endswith("lib/b.jar!B.class") for label in found(data)))

    def test_tar_concatenated_after_its_end_is_read(self) -> None:
        """A second archive after the end marker (what tar -i reads) is scanned, as are zeros before it."""
        data = tar_bytes([("a.txt", b"x\n")]) + b"\0" * 10240 + tar_bytes([("b.txt", LINE)])
        self.assertIn("x!b.txt", found(data))


class RefusedTest(ExpansionTest):
    def test_formats_git_gate_cannot_open(self) -> None:
        for magic, says in ((b"7z\xbc\xaf\x27\x1c\x00\x04", "a 7z archive"), (b"Rar!\x1a\x07\x01\x00", "a RAR archive"),
                            (b"\x28\xb5\x2f\xfd\x04", "a zstd stream"), (b"\x04\x22\x4d\x18", "an lz4 stream"),
                            (b"LZIP\x01", "an lzip stream"), (b"\x1f\x9d\x90", "a compress (.Z) stream"),
                            (b"!<arch>\ndebian-binary", "an ar archive (.deb, .a)"),
                            (b"\xed\xab\xee\xdb\x03", "an RPM package"),
                            (b"a" * 32769 + b"CD001", "an ISO 9660 image")):
            with self.subTest(says):
                self.assert_refused(magic + b"\0" * 64, f"x: {says}, which git-gate cannot open to scan")
                # one layer down too
                self.assert_refused(zip_bytes([("in.bin", magic + b"\0" * 64)]), f"x!in.bin: {says}")

    def test_encrypted_members(self) -> None:
        self.assert_refused(zip_encrypted([("s.txt", LINE)]), "x!s.txt: an encrypted zip member")
        self.assert_refused(gzip.compress(zip_encrypted([("s.txt", LINE)])),
                            "x!(decompressed gzip)!s.txt: an encrypted zip member")

    def test_corrupt_and_truncated(self) -> None:
        member = [("s.txt", b"intro\n" * 1000 + LINE)]
        good = zip_bytes(member)
        crc = bytearray(good)
        crc[14] ^= 0xFF  # the local header's CRC: Python checks the central directory's, so flip both
        central = good.rfind(b"PK\x01\x02")
        crc[central + 16] ^= 0xFF
        renamed = bytearray(good)
        renamed[30] ^= 0x01  # the local header's name differs from the directory's
        cases = {
            "zip, bad CRC": (bytes(crc), "cannot be read whole"),
            "zip, names differ": (bytes(renamed), "cannot be read whole"),
            "zip, end record cut off": (good[:-10], ""),
            "gz, truncated": (gzip.compress(LINE * 100)[:-20], "a corrupt or truncated gzip stream"),
            "gz, trailing bytes": (gzip.compress(LINE) + b"garbage", "a corrupt or truncated gzip stream"),
            "bz2, truncated": (bz2.compress(LINE * 100)[:-20], "bzip2 stream"),
            "xz, truncated": (lzma.compress(LINE * 100)[:-20], "xz stream"),
            "xz, trailing bytes": (lzma.compress(LINE) + b"garbage!" * 4, "xz stream"),
            "tar.gz, truncated": (gzip.compress(tar_bytes(member))[:-30], "gzip stream"),
            "tar, truncated member": (tar_bytes(member)[:700], "tar"),
        }
        for name, (data, says) in cases.items():
            with self.subTest(name):
                if name == "zip, end record cut off":
                    # no end record: not a zip to anyone (unzip refuses it too); its bytes are scanned as they are
                    self.assertEqual(kinds(data), ["zip"])  # a local header first: opened, and refused
                    self.assert_refused(data, "a corrupt zip")
                else:
                    self.assert_refused(data, says)

    def test_zip_layout_tricks(self) -> None:
        """A local entry the directory does not list (before, or between), and overlapping entries."""
        hidden = zip_bytes([("secret.txt", LINE)])
        shown = zip_bytes([("readme.txt", b"hello\n")])
        local = hidden[: hidden.find(b"PK\x01\x02")]
        central, end = shown.find(b"PK\x01\x02"), shown.rfind(b"PK\x05\x06")
        directory, record = bytearray(shown[central:end]), bytearray(shown[end:])
        struct.pack_into("<I", directory, 42, len(local))
        struct.pack_into("<I", record, 16, len(local) + central)
        before = local + shown[:central] + bytes(directory) + bytes(record)
        self.assertEqual([i.filename for i in zipfile.ZipFile(io.BytesIO(before)).infolist()], ["readme.txt"])
        self.assert_refused(before, "a zip entry before the first one its directory lists")
        two = zip_bytes([("a.txt", b"a\n"), ("b.txt", b"b\n")])
        first_end = two.find(b"PK\x03\x04", 4)
        between = two[:first_end] + local + two[first_end:]
        directory_at = between.find(b"PK\x01\x02")
        fixed = bytearray(between)
        second = fixed.find(b"PK\x01\x02", directory_at + 4)
        struct.pack_into("<I", fixed, second + 42, first_end + len(local))
        record_at = fixed.rfind(b"PK\x05\x06")
        struct.pack_into("<I", fixed, record_at + 16, directory_at)
        self.assert_refused(bytes(fixed), "a zip entry between listed ones that the directory does not list")
        # Other bytes there (a signed APK's signing block before the directory) are scanned raw, and allowed.
        signed = zip_bytes([("classes.dex", b"dex\n"), ("AndroidManifest.xml", LINE)])
        directory_at = signed.find(b"PK\x01\x02")
        block = b"\x18\x00\x00\x00\x00\x00\x00\x00" + b"\0" * 8 + b"APK Sig Block 42"
        apk = bytearray(signed[:directory_at] + block + signed[directory_at:])
        record_at = apk.rfind(b"PK\x05\x06")
        struct.pack_into("<I", apk, record_at + 16, directory_at + len(block))
        self.assertIn("x!AndroidManifest.xml", found(bytes(apk)))
        self.assert_refused(overlapping_zip(50), "zip entries that overlap", error=GitGateError)

    def test_sparse_tar_member(self) -> None:
        self.assert_refused(gnu_sparse_tar(), "a sparse tar member")


class LimitsTest(ExpansionTest):
    def test_bombs_are_refused_early(self) -> None:
        """1 GiB of zeros in 1 MiB (zip and bzip2): refused by size or ratio, without expanding it all."""
        zeros = zip_bytes([("zeros", b"\0" * (256 * MIB))], level=9)
        started = time.monotonic()
        with self.assertRaises(ScanLimitExceeded) as caught:
            leaves(zeros)
        self.assertRegex(str(caught.exception), "expands more than 200 times|more than 64 MiB")
        self.assertLess(time.monotonic() - started, 10)
        with self.assertRaises(ScanLimitExceeded):
            leaves(bz2.compress(b"\0" * (64 * MIB)))

    def test_each_limit_at_its_edge(self) -> None:
        """Depth, members, member size, blob total and ratio: at the limit accepted, one past it refused."""
        nested = LINE
        for _ in range(3):
            nested = zip_bytes([("in.zip", nested)])
        self.assertTrue(found(nested, Limits(max_archive_depth=3)))
        self.assert_refused(nested, "archives nested more than 2 deep", ScanLimitExceeded, Limits(max_archive_depth=2))
        many = zip_bytes([(f"{n}.txt", b"x\n") for n in range(20)])
        self.assertEqual(len(leaves(many, Limits(max_archive_members=20))), 20)
        self.assert_refused(many, "more than 19 members", ScanLimitExceeded, Limits(max_archive_members=19))
        big = zip_bytes([("a.txt", b"y" * 4096)], zipfile.ZIP_STORED)
        self.assertTrue(leaves(big, Limits(max_archive_member_bytes=4096)))
        self.assert_refused(big, "more than 4095 bytes", ScanLimitExceeded, Limits(max_archive_member_bytes=4095))
        two = zip_bytes([("a.txt", b"y" * 4096), ("b.txt", b"z" * 4096)], zipfile.ZIP_STORED)
        self.assertTrue(leaves(two, Limits(max_archive_bytes=8192)))
        self.assert_refused(two, "expand to more than 8191 bytes", ScanLimitExceeded, Limits(max_archive_bytes=8191))
        dense = zip_bytes([("z", b"\0" * (2 * MIB))], level=9)
        self.assert_refused(dense, "expands more than 10 times", ScanLimitExceeded, Limits(max_archive_ratio=10))

    def test_the_deadline_stops_an_expansion(self) -> None:
        deadline = Deadline(0.0)
        with self.assertRaises(ScanLimitExceeded) as caught:
            list(expand(gzip.compress(LINE), "x", Limits(), deadline))
        self.assertIn("did not finish within 0 s", str(caught.exception))


def overlapping_zip(copies: int) -> bytes:
    """One local entry of 1 MiB of zeros, listed ``copies`` times by the central directory (a zip bomb)."""
    single = zip_bytes([("a.txt", b"\0" * MIB)])
    end = single.rfind(b"PK\x05\x06")
    start = struct.unpack("<I", single[end + 16 : end + 20])[0]
    entries = single[start:end] * copies
    record = bytearray(single[end:])
    struct.pack_into("<HHII", record, 8, copies, copies, len(entries), start)
    return single[:start] + entries + bytes(record)


if __name__ == "__main__":
    unittest.main()
