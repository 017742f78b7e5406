"""What a checkout converts, and into which bytes: git-gate's answers held against a real git clone.

``attributes.encoded_files`` must name exactly the files a checkout
converts (with git's own reading of ``.gitattributes``), and
``checkout.checkout_forms`` must give the bytes that checkout writes.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from bot_bottle.errors import GitGateError
from bot_bottle.sidecar.git_gate.attributes import encoded_files
from bot_bottle.sidecar.git_gate.checkout import checkout_forms, converts
from bot_bottle.sidecar.git_gate.limits import Deadline, Limits
from tests.helpers.support import TempDirTest, require_tool

SAMPLES = {"mixed": "héllo ☃ 𝄞\n".encode(), "ascii": b"GITHUB_TOKEN=abc\n", "tail": "x☃".encode(),
           "bad-utf8": b"\xff\xfe ok\n", "empty": b""}
NAMES = ("UTF-16LE-BOM", "UTF-16BE-BOM", "utf16le-bom", "Utf-16Be-Bom", "UTF-16", "UTF-16LE", "UTF-16BE", "UTF-32",
         "UTF-32LE", "UCS-2", "UCS-2BE", "UCS-4", "UNICODE", "WCHAR_T", "UTF-7", "IBM037", "IBM1047", "EBCDIC-US",
         "SHIFT-JIS", "EUC-JP", "ISO-2022-JP", "GB18030", "BIG5", "ISO-8859-1", "latin-1", "CP1252", "KOI8-R", "ASCII")


class Repo:
    """A repository built with git's plumbing (blobs stored as given, no filter applied), and clones of it."""

    def __init__(self, root: Path, home: Path) -> None:
        self.root = root
        self.env = {"HOME": str(home), "PATH": "/usr/bin:/bin", "GIT_CONFIG_NOSYSTEM": "1", "GIT_AUTHOR_NAME": "a",
                    "GIT_AUTHOR_EMAIL": "a@b", "GIT_COMMITTER_NAME": "a", "GIT_COMMITTER_EMAIL": "a@b",
                    "LANG": "C.UTF-8"}
        self.git("init", "-q", str(root), cwd=root.parent)

    def git(self, *args: str, data: bytes = b"", cwd: Path | None = None) -> str:
        result = subprocess.run(["git", *args], cwd=cwd or self.root, input=data, capture_output=True,
                                env=self.env, timeout=60)
        if result.returncode != 0:
            raise AssertionError(f"git {args[0]} failed: {result.stderr.decode(errors='replace')}")
        return result.stdout.decode().strip()

    def commit(self, files: dict[str, tuple[str, bytes]]) -> str:
        """A commit of ``files``: path -> (mode, content); paths nest one folder deep at most."""
        folders: dict[str, list[bytes]] = {}
        top: list[bytes] = []
        for path, (mode, content) in files.items():
            oid = self.git("hash-object", "-w", "--no-filters", "--stdin", data=content)
            folder, _, name = path.rpartition("/")
            (folders.setdefault(folder, []) if folder else top).append(f"{mode} blob {oid}\t{name}".encode())
        for folder, entries in folders.items():
            tree = self.git("mktree", "-z", data=b"\0".join(entries) + b"\0")
            top.append(f"040000 tree {tree}\t{folder}".encode())
        tree = self.git("mktree", "-z", data=b"\0".join(top) + b"\0")
        return self.git("commit-tree", tree, "-m", "files")

    def checkout(self, commit: str, into: Path, *config: str) -> Path:
        """A real checkout of ``commit`` (a clone, as a cloner gets it), with ``config`` (``key=value``)."""
        self.git("update-ref", "refs/heads/main", commit)
        options = [arg for item in config for arg in ("-c", item)]
        self.git(*options, "clone", "-q", "-b", "main", "--no-hardlinks", str(self.root), str(into),
                 cwd=self.root.parent)
        return into


class CheckoutBytesTest(TempDirTest):
    def setUp(self) -> None:
        super().setUp()
        require_tool(self, "git")
        self.repo = Repo(self.tmp / "repo", self.home)

    def test_each_encoding_and_sample_as_a_clone_writes_it(self) -> None:
        """28 names (git's -BOM spellings, UTF-16/32 and their aliases, UTF-7, EBCDIC, CJK, Latin) x 5 samples."""
        files: dict[str, tuple[str, bytes]] = {}
        rules = []
        for n, name in enumerate(NAMES):
            rules.append(f"/e{n}-* working-tree-encoding={name}")
            for sample, content in SAMPLES.items():
                files[f"e{n}-{sample}.txt"] = ("100644", content)
        files[".gitattributes"] = ("100644", ("\n".join(rules) + "\n").encode())
        clone = self.repo.checkout(self.repo.commit(files), self.tmp / "clone")
        for n, name in enumerate(NAMES):
            for sample, content in SAMPLES.items():
                with self.subTest(name=name, sample=sample):
                    written = (clone / f"e{n}-{sample}.txt").read_bytes()
                    forms = [form for _, form in checkout_forms(content, name)]
                    # What git writes: the gate's first form, or (where git writes it unconverted) the blob itself.
                    self.assertEqual(forms[0] if forms else content, written)

    def test_names_that_cannot_be_reproduced_are_refused(self) -> None:
        for name in ("NOPE-42", "UTF-32LE-BOM", "ASCII//TRANSLIT", "UTF-16//IGNORE"):
            with self.subTest(name), self.assertRaises(GitGateError) as caught:
                list(checkout_forms(b"x\n", name))
            self.assertIn(f"working-tree-encoding={name!r}", str(caught.exception))
        self.assertEqual([converts(v) for v in ("unspecified", "unset", "set", "", "utf8", "UTF-8", "Utf-8")],
                         [False] * 7)
        self.assertTrue(converts("UTF-16LE-BOM"))

    def test_the_other_byte_order_where_the_platform_chooses(self) -> None:
        """UTF-16 and UCS-2 are little-endian here, big-endian on other iconvs: both are scanned."""
        text = b"ghp_".decode("utf-16-be").encode()  # two CJK characters, 'ghp_' in UTF-16BE
        for name in ("UTF-16", "UCS-2", "UNICODE", "UTF-16LE-BOM"):
            with self.subTest(name):
                forms = [form for _, form in checkout_forms(text, name)]
                self.assertEqual(len(forms), 2)
                self.assertNotIn(b"ghp_", forms[0])
                self.assertIn(b"ghp_", forms[1])


class AttributesTest(TempDirTest):
    """encoded_files against git's own checkout: every file a clone converts, and no other."""

    def setUp(self) -> None:
        super().setUp()
        require_tool(self, "git")
        self.repo = Repo(self.tmp / "repo", self.home)

    def converted(self, files: dict[str, tuple[str, bytes]], *config: str) -> tuple[set[str], set[str]]:
        """(paths encoded_files names, paths a real clone writes converted) for a commit of ``files``."""
        commit = self.repo.commit(files)
        tree = self.repo.git("rev-parse", f"{commit}^{{tree}}")
        found = {f.path for f in encoded_files(self.repo.root, [tree], Limits(), Deadline(60)) if converts(f.encoding)}
        clone = self.repo.checkout(commit, self.tmp / f"clone-{commit[:8]}-{len(config)}", *config)
        written = {path for path, (mode, content) in files.items()
                   if mode == "100644" and not path.endswith(".gitattributes")
                   and (clone / path).read_bytes() != content}
        return found, written

    def test_each_way_of_naming_the_attribute(self) -> None:
        text = ("100644", "héllo\n".encode())
        wte = b"working-tree-encoding=UTF-16LE-BOM"
        cases: dict[str, dict[str, tuple[str, bytes]]] = {
            "plain": {".gitattributes": ("100644", b"*.txt " + wte + b"\n"), "a.txt": text, "b.md": text},
            "NUL after the line": {".gitattributes": ("100644", b"*.txt " + wte + b"\n\0\n"), "a.txt": text},
            "NUL inside the line": {".gitattributes": ("100644", b"*.txt " + wte + b"\0junk\n"), "a.txt": text},
            "NUL before the line": {".gitattributes": ("100644", b"*.md text\n\0\n*.txt " + wte + b"\n"),
                                    "a.txt": text},
            "a symbolic link whose target is the line": {".gitattributes": ("120000", b"*.txt " + wte),
                                                         "a.txt": text},
            "a macro": {".gitattributes": ("100644", b"[attr]wide " + wte + b"\n*.txt wide\n"), "a.txt": text},
            "a macro in a folder (ignored)": {"sub/.gitattributes": ("100644", b"[attr]w " + wte + b"\n*.txt w\n"),
                                              "sub/a.txt": text},
            "nested, and unset below": {".gitattributes": ("100644", b"*.txt " + wte + b"\n"), "a.txt": text,
                                        "sub/.gitattributes": ("100644", b"*.txt -working-tree-encoding\n"),
                                        "sub/b.txt": text},
            "a negative pattern (ignored)": {".gitattributes": ("100644", b"!*.txt " + wte + b"\n"), "a.txt": text},
            "a line of 2,100 characters (ignored)": {".gitattributes": ("100644", b"*.txt " + wte + b" "
                                                                         + b"x" * 2100 + b"\n"), "a.txt": text},
            "CRLF line ends and a tab": {".gitattributes": ("100644", b"*.md text\r\n*.txt\t" + wte + b"\r\n"),
                                         "a.txt": text},
            "a later line for UTF-8": {".gitattributes": ("100644", b"*.txt " + wte + b"\n*.txt "
                                                          b"working-tree-encoding=utf8\n"), "a.txt": text},
        }
        for name, files in cases.items():
            with self.subTest(name):
                found, written = self.converted(files)
                self.assertEqual(found, written)

    def test_a_case_insensitive_clone(self) -> None:
        """'*.TXT' does not match a.txt on Linux, but does where core.ignorecase is on (macOS, Windows)."""
        files = {".gitattributes": ("100644", b"*.TXT working-tree-encoding=UTF-16LE-BOM\n"),
                 "a.txt": ("100644", "héllo\n".encode())}
        found, written = self.converted(files)
        self.assertEqual(written, set())
        self.assertEqual(found, {"a.txt"})
        _, written = self.converted(files, "core.ignorecase=true")
        self.assertEqual(written, {"a.txt"})
