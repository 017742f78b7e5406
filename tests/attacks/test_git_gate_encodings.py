"""git-gate against a token that only a checkout writes, with real git and gitleaks.

With ``working-tree-encoding=UTF-16LE-BOM`` (or ``UTF-16BE-BOM``), names
Python and iconv did not know, the gate skipped the file, and git 2.39 wrote
the token in ASCII into every clone; a ``.gitattributes`` with a NUL byte
after its line made ``git grep`` call it binary, so the gate saw no
encoding at all while git applied it. Each is refused now, and every clone
below shows the token is really there to be had.
"""

from __future__ import annotations

import unittest
from pathlib import Path

from tests.helpers.git_remote import GateAttackCase, github_token


def cjk(line: str, order: str) -> bytes:
    """UTF-8 text of characters whose UTF-16 (``le`` or ``be``) bytes are ``line`` in ASCII (an even length)."""
    return line.encode("ascii").decode(f"utf-16-{order}").encode("utf-8")


class EncodingAttackTest(GateAttackCase):
    folder_prefix = "bb-encodings-"

    def assert_clone_writes(self, head: str, files: dict[str, str], token: str) -> None:
        """A real clone of ``head`` writes the token in ASCII into each of ``files`` (path -> label)."""
        clone = self.shared.clone(head, Path(self._tmp.name) / f"clone-{head[:8]}")
        for path in files:
            self.assertIn(token.encode(), (clone / path).read_bytes(), f"a clone writes the token into {path}")

    def test_each_bom_encoding(self) -> None:
        """git's own -BOM names, in the spellings git accepts: each file is a finding; unmarked, refused."""
        token = github_token(500)
        spellings = {"le.txt": ("UTF-16LE-BOM", "le"), "be.txt": ("UTF-16BE-BOM", "be"),
                     "le2.txt": ("utf16le-bom", "le"), "be2.txt": ("Utf-16Be-Bom", "be")}
        rules = "".join(f"/{path} working-tree-encoding={name}\n" for path, (name, _) in spellings.items())

        def commit(line: str) -> str:
            files = {path: cjk(line, order) for path, (_, order) in spellings.items()}
            return self.shared.commit_with({".gitattributes": rules.encode(), **files})

        head = commit(f"token = {token} \n")
        for _path, content in ((p, cjk(f"token = {token} \n", o)) for p, (_, o) in spellings.items()):
            self.assertNotIn(token.encode(), content)
        self.assert_clone_writes(head, {p: n for p, (n, _) in spellings.items()}, token)
        said = self.assert_refused(f"{head}:refs/heads/bom", says="gitleaks found a secret: github-pat in ",
                                   secret_oids=(head,))
        self.assertIn("(working-tree-encoding)", said)
        findings = self.filed_findings(commit(f"token = {token}  # gitleaks:allow \n"), "bom")
        self.assertEqual({str(f["file"]) for f in findings},
                         {f"{path} (checked out as {name} (working-tree-encoding))"
                          for path, (name, _) in spellings.items()})

    def test_attributes_git_reads_and_grep_does_not(self) -> None:
        """A NUL after (or inside) the line, a symbolic link as .gitattributes, a macro, *.TXT on a
        case-insensitive clone: git applies each; each push is refused."""
        token = github_token(501)
        wte = b"working-tree-encoding=UTF-16LE-BOM"
        text = cjk(f"token = {token} \n", "le")
        cases = {
            "NUL after the line": ({".gitattributes": b"*.txt " + wte + b"\n\0\n"}, "100644"),
            "NUL inside the line": ({".gitattributes": b"*.txt " + wte + b"\0junk\n"}, "100644"),
            "a symbolic link whose target is the line": ({".gitattributes": b"*.txt " + wte}, "120000"),
            "a macro": ({".gitattributes": b"[attr]wide " + wte + b"\n*.txt wide\n"}, "100644"),
            "*.TXT (a clone on macOS or Windows matches a.txt)": ({".gitattributes": b"*.TXT " + wte + b"\n"},
                                                                  "100644"),
        }
        for name, (attributes, mode) in cases.items():
            with self.subTest(name):
                blobs = {path: self.shared.blob(data) for path, data in {**attributes, "a.txt": text}.items()}
                tree = self.shared.tree([("100644", "README.md", self.shared.clean_blob),
                                         ("100644", "a.txt", blobs["a.txt"]),
                                         (mode, ".gitattributes", blobs[".gitattributes"])])
                head = self.shared.commit_tree(tree, [self.shared.base], name)
                if not name.startswith("*.TXT"):
                    self.assert_clone_writes(head, {"a.txt": ""}, token)
                self.assert_refused(f"{head}:refs/heads/attributes",
                                    says="github-pat in a.txt (checked out as UTF-16LE-BOM (working-tree-encoding)):1",
                                    secret_oids=(head,))

    def test_encodings_git_gate_cannot_reproduce(self) -> None:
        """A name this iconv does not know (another platform's may) or one whose result depends on the locale."""
        for value, says in (("NOPE-42", "which this iconv does not know"),
                            ("UTF-32LE-BOM", "which this iconv does not know"),
                            ("ASCII//TRANSLIT", "depends on the locale of whoever checks the file out")):
            with self.subTest(value):
                head = self.shared.commit_with({".gitattributes": f"*.txt working-tree-encoding={value}\n".encode(),
                                                "a.txt": b"hello\n"})
                said = self.assert_refused(f"{head}:refs/heads/unknown", says=says)
                self.assertIn(f"working-tree-encoding={value!r}", said)


if __name__ == "__main__":
    unittest.main()
