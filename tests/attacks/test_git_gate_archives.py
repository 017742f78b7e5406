"""git-gate against a token inside an archive or a compressed file, with real git and gitleaks.

Before, a token in a zip, a tar.gz, a .gz, a .bz2, a zip in a zip or a
docx-like zip was accepted and readable from the remote: gitleaks read the
compressed bytes. Each kind and nesting is refused now, and so is whatever
cannot be scanned whole, with one line saying why.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import subprocess
import tempfile
import unittest
import zipfile
import zlib
from pathlib import Path

from tests.helpers.archives import docx, gnu_sparse_tar, tar_bytes, zip_bytes, zip_disguised, zip_encrypted
from tests.helpers.git_remote import GateAttackCase, github_token
from tests.helpers.support import require_tool
from tests.sidecar.git_gate.test_archives import overlapping_zip


def archive_files(line: bytes) -> dict[str, bytes]:
    """One file of each archive kind and nesting, each holding ``line`` compressed (no two alike)."""
    member = [("inner/secret.txt", b"intro\n" + line)]
    tar = tar_bytes(member)
    return {
        "deflate.zip": zip_bytes(member),
        "bzip2.zip": zip_bytes(member, zipfile.ZIP_BZIP2),
        "lzma.zip": zip_bytes(member, zipfile.ZIP_LZMA),
        "zip64.zip": zip_bytes(member, force_zip64=True),
        "streamed.zip": zip_bytes(member, streamed=True),
        "a.tar.gz": gzip.compress(tar),
        "b.tgz": gzip.compress(tar + b"\0" * 512),
        "c.tar.bz2": bz2.compress(tar),
        "d.tar.xz": lzma.compress(tar),
        "notes.txt.gz": gzip.compress(b"intro\n" + line),
        "notes.txt.bz2": bz2.compress(b"intro\n" + line),
        "notes.txt.xz": lzma.compress(b"intro\n" * 20 + line),  # a short text xz would store as it is
        "notes.zz": zlib.compress(b"intro\n" + line),
        "notes.lzma": lzma.compress(b"intro\n" + line, format=lzma.FORMAT_ALONE),
        "report.docx": docx(line),
        "sheet.xlsx": zip_bytes([("xl/sharedStrings.xml", b"<sst><si><t>" + line + b"</t></si></sst>")]),
        "app.jar": zip_bytes([("META-INF/app.properties", line)]),
        "pkg.whl": zip_bytes([("pkg-1.0.dist-info/METADATA", line)]),
        "book.epub": zip_bytes([("OEBPS/ch1.xhtml", line)]),
        "logo.png": zip_bytes([("a/b.txt", line)]),  # gitleaks' allowlist drops *.png whole
        "no-extension": zip_bytes([("x.txt", line)]),
        "zip-in-zip.zip": zip_bytes([("inner.zip", zip_bytes(member))]),
        "tgz-in-zip.zip": zip_bytes([("inner.tgz", gzip.compress(tar))]),
        "zip-in-tgz.tgz": gzip.compress(tar_bytes([("inner.zip", zip_bytes(member))])),
        "gz-in-gz.gz": gzip.compress(gzip.compress(b"twice\n" + line)),
        "three-deep.zip": zip_bytes([("l1.zip", zip_bytes([("l2.zip", zip_bytes(member))]))]),
    }


class ArchiveAttackTest(GateAttackCase):
    """A token in each archive kind and nesting: refused; marked gitleaks:allow, each is a finding of its own."""

    folder_prefix = "bb-archives-"

    def test_a_token_in_each_archive_kind_and_nesting(self) -> None:
        token = github_token(400)
        files = archive_files(f"token = {token}\n".encode())
        for name, data in files.items():
            self.assertNotIn(token.encode(), data, f"{name} holds the token compressed, not as it is")
        head = self.shared.commit_with(files)
        self.assert_refused(f"{head}:refs/heads/archives", says="gitleaks found a secret: github-pat in ",
                            secret_oids=(head,))
        marked = self.shared.commit_with(archive_files(f"token = {token}  # gitleaks:allow\n".encode()))
        findings = self.filed_findings(marked, "archives")
        self.assertEqual(sorted({str(f["file"]).split("!")[0] for f in findings}), sorted(files))
        where = {str(f["file"]) for f in findings}
        for expected in ("deflate.zip!inner/secret.txt", "a.tar.gz!(decompressed gzip)",
                         "notes.txt.gz!(decompressed gzip)", "report.docx!word/document.xml",
                         "zip-in-zip.zip!inner.zip!inner/secret.txt",
                         "gz-in-gz.gz!(decompressed gzip)!(decompressed gzip)",
                         "three-deep.zip!l1.zip!l2.zip!inner/secret.txt"):
            self.assertIn(expected, where)
        for finding in findings:
            self.assertIn("token = ********  # gitleaks:allow", str(finding["line_text"]))

    def test_what_cannot_be_scanned_whole_is_refused(self) -> None:
        """Encrypted, a format git-gate cannot open, too deep, a bomb, overlapping or hidden entries: one line each."""
        token = github_token(401)
        line = f"token = {token}\n".encode()
        deep = line
        for level in range(5):
            deep = zip_bytes([(f"level{level}.zip" if level else "secret.txt", deep)])
        cases = {
            "encrypted.zip": (zip_encrypted([("s.txt", line)]), "encrypted.zip!s.txt: an encrypted zip member"),
            "nested-encrypted.tgz": (gzip.compress(tar_bytes([("s.zip", zip_encrypted([("s.txt", line)]))])),
                                     "!s.txt: an encrypted zip member"),
            "a.7z": (b"7z\xbc\xaf\x27\x1c\x00\x04" + lzma.compress(line), "a.7z: a 7z archive, which git-gate cannot"),
            "a.tar.zst": (b"\x28\xb5\x2f\xfd" + lzma.compress(line), "a.tar.zst: a zstd stream"),
            "deep.zip": (deep, "archives nested more than 4 deep"),
            "bomb.zip": (zip_bytes([("zeros", b"\0" * (128 << 20))], level=9), "expands more than 200 times"),
            "overlap.zip": (overlapping_zip(50), "overlap.zip: zip entries that overlap"),
            "sparse.tar": (gnu_sparse_tar(), "sparse.tar!sparse.txt: a sparse tar member"),
        }
        for name, (data, says) in cases.items():
            with self.subTest(name):
                head = self.shared.commit_with({name: data})
                said = self.assert_refused(f"{head}:refs/heads/unscannable", says=says, secret_oids=(head,))
                self.assertNotIn(token, said)


    def test_a_zip_whose_local_header_says_deflate_where_its_directory_says_stored(self) -> None:
        """BROKE before the fix: the gate read each entry as the central directory says (stored), so it scanned
        the deflated bytes as they are and found nothing, while unzip, funzip and 7-Zip follow the local
        header (deflate) and extract the token. An entry whose local header and directory record disagree
        is refused now."""
        token = github_token(402)
        data = zip_disguised("notes.txt", f"token = {token}\n".encode())
        self.assertNotIn(token.encode(), data)
        unzip = require_tool(self, "unzip")
        extracted = subprocess.run([unzip, "-p", "-"], input=data, capture_output=True, check=False)
        if extracted.returncode != 0:  # an unzip that cannot read a pipe: from a file
            with tempfile.NamedTemporaryFile(suffix=".zip") as handle:
                handle.write(data)
                handle.flush()
                extracted = subprocess.run([unzip, "-p", handle.name], capture_output=True, check=True)
        self.assertIn(token.encode(), extracted.stdout, "unzip reads the token out of it")
        head = self.shared.commit_with({"release.zip": data})
        said = self.assert_refused(f"{head}:refs/heads/disguised", secret_oids=(head,),
                                   says="release.zip!notes.txt: a zip entry whose local header disagrees with "
                                        "the directory")
        self.assertNotIn(token, said)


    def test_a_7z_archive_with_a_zip_appended(self) -> None:
        """BROKE before the fix: a zip's end record at the tail made the gate take the file for a zip with bytes
        before its first entry (as a self-extractor has), open that small zip and scan the rest raw, where the
        token is LZMA-compressed; 7-Zip opens the very file as the 7z archive it starts as and extracts the
        token. A file that starts as a format the gate cannot open is refused, whatever its tail says."""
        seven = require_tool(self, "7z")
        token = github_token(403)
        with tempfile.TemporaryDirectory() as folder:
            secret = Path(folder, "secret.txt")
            secret.write_text("intro\n" * 200 + f"token = {token}\n")  # long enough that 7-Zip compresses it
            subprocess.run([seven, "a", "-bd", "-bso0", str(Path(folder, "s.7z")), str(secret)], check=True)
            data = Path(folder, "s.7z").read_bytes() + zip_bytes([("readme.txt", b"hello\n")])
            Path(folder, "poly.7z").write_bytes(data)
            secret.unlink()
            subprocess.run([seven, "x", "-bd", "-bso0", "-bse0", f"-o{folder}", str(Path(folder, "poly.7z"))],
                           check=False)
            self.assertIn(token, secret.read_text(), "7-Zip extracts the token from it")
        self.assertNotIn(token.encode(), data)
        head = self.shared.commit_with({"bundle.7z": data})
        self.assert_refused(f"{head}:refs/heads/polyglot", secret_oids=(head,),
                            says="bundle.7z: a 7z archive, which git-gate cannot open to scan")


    def test_a_7z_archive_after_other_bytes(self) -> None:
        """BROKE before the fix: the gate knew a 7z only by its first bytes, but 7-Zip finds one after any
        prefix (a self-extractor's stub, or a line of text) and extracts it, so a token LZMA-compressed behind
        a line of text was scanned as the bytes they are and let through. A 7z start header anywhere in a blob
        (its signature and the CRC that follows it) refuses the push."""
        seven = require_tool(self, "7z")
        token = github_token(404)
        with tempfile.TemporaryDirectory() as folder:
            secret = Path(folder, "secret.txt")
            secret.write_text("intro\n" * 200 + f"token = {token}\n")
            subprocess.run([seven, "a", "-bd", "-bso0", str(Path(folder, "s.7z")), str(secret)], check=True)
            data = b"release notes follow\n" + Path(folder, "s.7z").read_bytes()
            Path(folder, "notes.bin").write_bytes(data)
            secret.unlink()
            subprocess.run([seven, "x", "-bd", "-bso0", "-bse0", f"-o{folder}", str(Path(folder, "notes.bin"))],
                           check=False)
            self.assertIn(token, secret.read_text(), "7-Zip extracts the token from it")
        self.assertNotIn(token.encode(), data)
        head = self.shared.commit_with({"notes.bin": data})
        self.assert_refused(f"{head}:refs/heads/prefixed", secret_oids=(head,),
                            says="notes.bin: a 7z archive after 21 other bytes, which git-gate cannot open")


    def test_compressed_streams_after_other_bytes(self) -> None:
        """BROKE before the fix: a gzip, bzip2 or xz stream behind a line of text was no compressed file to the
        gate (it knew them by their first bytes), so the token inside was scanned compressed and let through;
        7-Zip finds each behind any prefix and extracts the token. Each is decompressed where it starts now.
        The text is longer than one chunk of decompression (64 KiB), so the token is in a later chunk: a gzip
        stream's second chunk once failed the gate with AttributeError."""
        seven = require_tool(self, "7z")
        token = github_token(405)
        text = b"intro\n" * 20000 + f"token = {token}\n".encode()
        files = {f"notes-{kind}.bin": b"release notes follow\n" + pack(text) + b"trailing bytes\n"
                 for kind, pack in (("gz", gzip.compress), ("bz2", bz2.compress), ("xz", lzma.compress))}
        with tempfile.TemporaryDirectory() as folder:
            for name, data in files.items():
                self.assertNotIn(token.encode(), data)
                Path(folder, name).write_bytes(data)
                out = Path(folder, name + ".out")
                subprocess.run([seven, "x", "-bd", "-bso0", "-bse0", f"-o{out}", str(Path(folder, name))],
                               check=False)
                self.assertIn(token.encode(), b"".join(f.read_bytes() for f in out.iterdir()), name)
        head = self.shared.commit_with(files)
        self.assert_refused(f"{head}:refs/heads/prefixed-streams", secret_oids=(head,),
                            says="gitleaks found a secret: github-pat in ")


if __name__ == "__main__":
    unittest.main()
