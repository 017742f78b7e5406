"""git-gate against an agent that wants a token out: each way found in review, done with real git and gitleaks.

Every test here is an attack that got past the gate (or misled the operator)
before the fix next to it; they share one gated remote, since a refused push
changes nothing on it.
"""

from __future__ import annotations

import base64
import binascii
import json
import subprocess
import unittest
from pathlib import Path

from bot_bottle.queue_store import QueueStore
from tests.helpers.corpus import recoverable, spellings
from tests.helpers.git_remote import GateAttackCase, SharedRemote, github_token

# An AWS access key id (gitleaks' aws-access-token rule): 20 characters, so it
# fits a SHA-1 object id exactly. Built at run time so this file carries none.
AWS_KEY_ID = "AKIA" + "Z7QWERTYUIOP6XYZ"


def pkt_line(data: bytes) -> bytes:
    """One pkt-line of git's wire protocol."""
    return f"{len(data) + 4:04x}".encode() + data


def push_pack(shared: SharedRemote, new: str, ref: str, objects: list[str]) -> subprocess.CompletedProcess[bytes]:
    """Create ``ref`` at ``new`` by speaking receive-pack by hand, with a pack of exactly ``objects``.

    ``git push`` only packs what the new tip reaches; an agent can send any
    objects it likes alongside.
    """
    pack = subprocess.run(["git", "pack-objects", "--stdout"], cwd=shared.work, env=shared.env, check=True,
                          input="".join(f"{oid}\n" for oid in objects).encode(), capture_output=True).stdout
    with subprocess.Popen(["git", "receive-pack", str(shared.remote)], env=shared.env, stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE) as process:
        assert process.stdin is not None and process.stdout is not None and process.stderr is not None
        while size := int(process.stdout.read(4) or b"0000", 16):  # the advertised refs, up to the flush packet
            process.stdout.read(size - 4)
        process.stdin.write(pkt_line(f"{'0' * 40} {new} {ref}\0report-status\n".encode()) + b"0000" + pack)
        process.stdin.close()
        out, err = process.stdout.read(), process.stderr.read()
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


class GateAttackTest(GateAttackCase):
    """Pushes that smuggle a token in a place git shows but the gate did not read as git shows it.

    Each test pushes to a branch of its own, so one attack that got through
    does not turn the next test's push into a non-fast-forward.
    """

    folder_prefix = "bb-attack-"

    def test_key_id_as_a_submodule_commit_id(self) -> None:
        """A gitlink's id is never checked: 20 bytes an AWS key id fits, shown as hex by ls-tree. Refused."""
        key_hex = binascii.hexlify(AWS_KEY_ID.encode()).decode()
        entries = (f"160000 commit {key_hex}\tvendor-lib".encode() + b"\0"
                   + f"100644 blob {self.shared.clean_blob}\tREADME.md".encode() + b"\0")
        tree = self.shared.git("mktree", "-z", "--missing", data=entries).strip()
        head = self.shared.commit_tree(tree, [self.shared.base], "add a submodule")
        self.assert_refused(f"{head}:refs/heads/gitlink", says="aws-access-token in (tree):2")
        # A mode git reads as a gitlink too, though not the canonical one: the id is scanned all the same.
        raw = (b"100644 README.md\0" + bytes.fromhex(self.shared.clean_blob)
               + b"0160000 vendor\0" + AWS_KEY_ID.encode())
        odd = self.shared.git("hash-object", "-t", "tree", "-w", "--stdin", "--literally", data=raw).strip()
        head = self.shared.commit_tree(odd, [self.shared.base], "add a submodule")
        self.assert_refused(f"{head}:refs/heads/gitlink", says="aws-access-token in (tree):2")

    def test_message_in_an_encoding_git_log_decodes(self) -> None:
        """A commit declaring ``encoding UTF-7``: the raw message holds no token, git log shows one. Refused."""
        token = github_token(300)
        utf7 = b"+" + base64.b64encode(token.encode("utf-16-be")).rstrip(b"=") + b"-"
        tree = self.shared.tree([("100644", "README.md", self.shared.clean_blob)])
        for where, raw in (
            ("message", f"tree {tree}\nparent {self.shared.base}\nauthor a <a@b> 1764230400 -0100\n"
                        "committer a <a@b> 1764230400 -0100\nencoding UTF-7\n\ndeploy with ".encode() + utf7 + b"\n"),
            ("author", f"tree {tree}\nparent {self.shared.base}\nauthor ".encode() + utf7
                       + b" <a@b> 1764230400 -0100\ncommitter a <a@b> 1764230400 -0100\nencoding utf-7\n\nclean\n"),
        ):
            with self.subTest(where=where):
                self.assertNotIn(token.encode(), raw)
                oid = self.shared.git("hash-object", "-t", "commit", "-w", "--stdin", "--literally", data=raw).strip()
                self.assertIn(token, self.shared.git("log", "-1", oid), "git log shows the token")
                self.assert_refused(f"{oid}:refs/heads/encoded",
                                    says="github-pat in (commit object, as git log shows it")

    def test_file_name_with_a_newline_is_shown_whole(self) -> None:
        """'fixture.txt<newline>PROD_CREDENTIALS.env' is not reported as 'fixture.txt' (git rev-list cuts it)."""
        token = github_token(301)
        blob = self.shared.blob(f"t = '{token}'  # gitleaks:allow\n".encode())
        folder = self.shared.tree([("100644", "fixture.txt\nPROD_CREDENTIALS.env", blob)])
        tree = self.shared.tree([("100644", "README.md", self.shared.clean_blob), ("040000", "conf\nprod", folder)])
        head = self.shared.commit_tree(tree, [self.shared.base], "fixtures")
        (finding,) = self.filed_findings(head, "newline")
        self.assertEqual(finding["file"], "conf\\nprod/fixture.txt\\nPROD_CREDENTIALS.env")

    def test_a_long_path_is_shown_with_its_end(self) -> None:
        """'tests/fixtures/aaaa…' (cut at 200 characters) hid that the file is …/prod/keys.env: its end stays."""
        token = github_token(307)
        blob = self.shared.blob(f"t = '{token}'  # gitleaks:allow\n".encode())
        deep = self.shared.tree([("100644", "keys.env", blob)])
        prod = self.shared.tree([("040000", "prod", deep)])
        padded = self.shared.tree([("040000", "x" * 250, prod)])
        tree = self.shared.tree([("100644", "README.md", self.shared.clean_blob), ("040000", "fixtures", padded)])
        head = self.shared.commit_tree(tree, [self.shared.base], "fixtures")
        (finding,) = self.filed_findings(head, "long-path")
        self.assertTrue(str(finding["file"]).startswith("fixtures/xxx"), finding["file"])
        self.assertTrue(str(finding["file"]).endswith("xxx/prod/keys.env"), finding["file"])
        self.assertLessEqual(len(str(finding["file"])), 200)

    def test_token_spelt_to_slip_past_masking_is_not_stored(self) -> None:
        """Upper-case hex, %6a escapes, some characters escaped, zero-width spaces: in a file name or a
        filed line beside a marked token, none of them reaches the database."""
        token = github_token(302)
        files = {f"d/{spelt} gitleaks:allow.txt": f"t = '{token}'  # gitleaks:allow\n".encode()
                 for spelt in spellings(token).values()}
        files["lines.py"] = "".join(f"x{i} = '{token}'  # gitleaks:allow {spelt}\n"
                                    for i, spelt in enumerate(spellings(token).values())).encode()
        head = self.shared.commit_with(files)
        self.filed_findings(head, "spelt")
        self.assertTrue(recoverable(json.dumps(spellings(token)), token), "the check sees each spelling")
        with QueueStore(self.shared.db) as store:
            (proposal,) = [p for p in store.pending("web-1") if head in p.payload]
        self.assertFalse(recoverable(proposal.payload + proposal.justification, token), proposal.payload)
        for path in self.shared.dbdir.iterdir():
            self.assertFalse(recoverable(path.read_bytes().decode("utf-8", errors="replace"), token), path.name)

    def test_objects_no_pushed_ref_reaches(self) -> None:
        """A clean commit, with a blob (or a commit) holding a token packed alongside: refused, none kept.

        Before, the push was accepted and ``git fetch origin <blob id>`` fetched the token back.
        """
        tree = self.shared.tree([("100644", "README.md", self.shared.clean_blob)])
        head = self.shared.commit_tree(tree, [self.shared.base], "clean")
        blob = self.shared.blob(f"token = '{github_token(303)}'\n".encode())
        commit = self.shared.commit_tree(tree, [self.shared.base], f"deploy with {github_token(304)}\n")
        for extra, says in ((blob, "github-pat in (blob object no pushed ref reaches):1"),
                            (commit, "github-pat in (commit object no pushed ref reaches):")):
            with self.subTest(extra=extra):
                before = self.shared.remote_refs()
                result = push_pack(self.shared, head, "refs/heads/carrier", [head, tree, extra])
                self.assertIn(b"ng refs/heads/carrier pre-receive hook declined", result.stdout)
                self.assertIn(says, result.stderr.decode())
                self.assertEqual(self.shared.remote_refs(), before)
                self.assertFalse(self.shared.remote_has(extra))
        # The same push without the extra object is accepted: the hook does not refuse what it cannot place.
        result = push_pack(self.shared, head, "refs/heads/carrier", [head, tree])
        self.assertIn(b"ok refs/heads/carrier", result.stdout, result.stderr)

    def test_thin_pack_bases_already_on_the_remote_are_not_scanned_again(self) -> None:
        """A thin pack's bases come from the remote (one holds a token the operator approved): accepted."""
        lines = [f"line {n}: {'x' * 60}\n" for n in range(400)]
        approved = "".join(lines) + f"t = '{github_token(305)}'  # gitleaks:allow\n"
        old = self.shared.commit_with({"big.txt": approved.encode()})
        # Put there as an approved push would have: straight into the remote, past the hook.
        self.shared.git("update-ref", "refs/heads/thin", old)
        # A small push is unpacked into loose objects; a pack kept whole (as of 100 objects) gets its bases appended.
        self.shared.git("config", "receive.unpackLimit", "1", cwd=self.shared.remote)
        self.addCleanup(self.shared.git, "config", "--unset", "receive.unpackLimit", cwd=self.shared.remote)
        self.shared.git("fetch", "-q", str(self.shared.work), "refs/heads/thin:refs/heads/thin", cwd=self.shared.remote)
        new = self.shared.commit_with({"big.txt": ("".join(lines) + "t = None\n").encode()}, parents=[old])
        result = self.shared.push(f"{new}:refs/heads/thin")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("push accepted: gitleaks found no secrets", result.stderr)

    def test_utf16_and_utf32_text(self) -> None:
        """UTF-16 (either byte order, with or without a BOM, at an odd offset in binary) and UTF-32: refused."""
        token = github_token(306)

        def files(line: str) -> dict[str, bytes]:
            return {
                "le-bom.txt": b"\xff\xfe" + f"intro\n{line}\n".encode("utf-16-le"),
                "be.txt": f"intro\n{line}\n".encode("utf-16-be"),
                "odd.bin": b"\x89\x01\x02" + f"\n{line}\n".encode("utf-16-le") + b"\x00\xff",
                "utf32.txt": f"intro\n{line}\n".encode("utf-32"),
            }

        head = self.shared.commit_with(files(f"t = '{token}'"))
        self.assert_refused(f"{head}:refs/heads/wide", says="push refused: gitleaks found a secret: github-pat in ")
        head = self.shared.commit_with(files(f"t = '{token}'  # gitleaks:allow"))
        findings = self.filed_findings(head, "wide")
        self.assertEqual(sorted({str(f["file"]).split(" ")[0] for f in findings}), sorted(files("")))
        self.assertIn("t = '********'  # gitleaks:allow", {f["line_text"] for f in findings})
        # One line, a plain token and a UTF-16 one: two findings, though the copies share the line and rule.
        other = github_token(308)
        mixed = f"t = '{token}' ".encode() + f"'{other}'".encode("utf-16-le") + b" # gitleaks:allow\n"
        head = self.shared.commit_with({"mixed.txt": mixed})
        findings = self.filed_findings(head, "wide")
        self.assertEqual([(f["file"], f["line"]) for f in findings],
                         [("mixed.txt", 1), ("mixed.txt (NUL bytes removed: UTF-16/32 text)", 1)])

    def test_token_encoded_twice_in_a_name_or_line_is_not_stored(self) -> None:
        """base64 of its hex, hex of its base64 (gitleaks decodes 5 layers): a name or line holding one is left out."""
        token = github_token(309)
        twice = {"b64-of-hex": base64.b64encode(binascii.hexlify(token.encode())).decode(),
                 "hex-of-b64": binascii.hexlify(base64.b64encode(token.encode())).decode()}
        files = {f"d/{name}-{spelt} gitleaks:allow.txt": f"t = '{token}'  # gitleaks:allow\n# {name}\n".encode()
                 for name, spelt in twice.items()}  # each content differs: one blob is one object, listed once
        head = self.shared.commit_with(files)
        findings = self.filed_findings(head, "twice")
        with QueueStore(self.shared.db) as store:
            (proposal,) = [p for p in store.pending("web-1") if head in p.payload]
        for spelt in twice.values():
            self.assertNotIn(spelt[:24], proposal.payload + proposal.justification)
        names = [f["file"] for f in findings if f["line_text"] == "t = '********'  # gitleaks:allow"]
        self.assertEqual(names, ["(name not shown: it holds a secret in an encoded form)"] * 2)

    def test_token_that_git_archive_spells_out(self) -> None:
        """export-subst and '$Format:%x67%x68...$': git archive (a forge's tarball) writes the token. Refused."""
        token = github_token(310)
        spelt = "$Format:" + "".join(f"%x{byte:02x}" for byte in token.encode()) + "$"
        files = {".gitattributes": b"version.txt export-subst\n", "version.txt": f"token = {spelt}\n".encode()}
        head = self.shared.commit_with(files)
        self.shared.git("update-ref", "refs/heads/archived", head)
        archive = subprocess.run(["git", "archive", "--format=tar", "refs/heads/archived"], cwd=self.shared.work,
                                 env=self.shared.env, capture_output=True, check=True).stdout
        self.assertIn(token.encode(), archive, "git archive spells the token out")
        self.assert_refused(f"{head}:refs/heads/archived",
                            says="github-pat in version.txt ($Format: escapes expanded, as git archive does):1")

    def test_token_split_at_the_slashes_of_a_path(self) -> None:
        """A directory 'api_token=Zx' holding a file named after the rest of a key: no entry name holds it, the
        whole path (a tarball's member, a checkout, a forge's file list) does. Refused."""
        head = self.shared.commit_with({"api_token=Zx/Q7wErT9yUi0pAs5DfG3hJk2Lz8XcVb": b"hello\n"})
        self.shared.git("update-ref", "refs/heads/split-path", head)
        archive = subprocess.run(["git", "archive", "--format=tar", "refs/heads/split-path"], cwd=self.shared.work,
                                 env=self.shared.env, capture_output=True, check=True).stdout
        self.assertIn(b"api_token=Zx/Q7wErT9yUi0pAs5DfG3hJk2Lz8XcVb", archive, "a tarball names the whole path")
        self.assert_refused(f"{head}:refs/heads/split-path",
                            says="generic-api-key in api_token=Zx/ (tree) (entries by their whole paths):1")

    def test_token_split_at_the_slashes_of_a_path_under_an_old_tree(self) -> None:
        """A folder 'x' holding a file named after the rest of a key goes first (harmless: accepted); then a
        commit puts that very tree, already on the remote, under 'api_token=Zx': the only new tree names
        'api_token=Zx' alone, and the tarball writes the whole path; so too one push putting one new tree at
        both places (hostile review 49). Refused."""
        for number, already in enumerate((True, False)):
            with self.subTest(already_on_the_remote=already):
                name = f"Q7wErT9yUi0pAs5DfG3hJk2Lz8XcV{number}"
                first = self.shared.commit_with({f"x/{name}": f"hello {number}\n".encode()}, message="x")
                if already:
                    self.assert_accepted(f"{first}:refs/heads/split-old-{number}")
                head = self.shared.commit_with({f"api_token=Zx/{name}": f"hello {number}\n".encode()},
                                               message="moved", parents=[first])
                self.shared.git("update-ref", "refs/heads/split-look", head)
                archive = subprocess.run(["git", "archive", "--format=tar", "refs/heads/split-look"],
                                         cwd=self.shared.work, env=self.shared.env, capture_output=True,
                                         check=True).stdout
                self.assertIn(f"api_token=Zx/{name}".encode(), archive, "a tarball names the whole path")
                self.assert_refused(f"{head}:refs/heads/split-old-{number}",
                                    says="generic-api-key in (the paths the commit adds, whole)")

    def test_token_that_a_checkout_writes(self) -> None:
        """working-tree-encoding: CJK text is a token in UTF-16BE, Latin letters in IBM037 or IBM1047
        (which Python does not know); a clone writes it into the file. Refused, also when the
        .gitattributes came in an earlier push."""
        token = github_token(311)
        line = f"token = {token} \n".encode("ascii")  # an even length, for UTF-16
        blobs = {"a.txt": line.decode("utf-16-be").encode(), "b.txt": line.decode("cp037").encode()}
        attributes = b"a.txt working-tree-encoding=UTF-16BE\nb.txt working-tree-encoding=IBM037\n"
        head = self.shared.commit_with({".gitattributes": attributes, **blobs})
        clone = Path(self._tmp.name) / "clone-wte"
        self.shared.git("update-ref", "refs/heads/checkout", head)
        self.shared.git("clone", "-q", "-b", "checkout", str(self.shared.work), str(clone))
        for name in blobs:
            self.assertIn(token.encode(), (clone / name).read_bytes(), f"a clone writes the token into {name}")
        says = "github-pat in a.txt (checked out as UTF-16BE (working-tree-encoding)):1 (commit"
        self.assertIn("and 1 more", self.assert_refused(f"{head}:refs/heads/checkout", says=says))  # b.txt
        # The attributes pushed first, alone (clean); the file next: still refused.
        first = self.shared.commit_with({".gitattributes": b"*.c working-tree-encoding=IBM1047\n"})
        self.assertEqual(self.shared.push(f"{first}:refs/heads/checkout-later").returncode, 0)
        ibm1047 = subprocess.run(["iconv", "-f", "IBM1047", "-t", "UTF-8"], input=line, capture_output=True,
                                 check=True).stdout
        later = self.shared.commit_with({".gitattributes": b"*.c working-tree-encoding=IBM1047\n",
                                         "main.c": ibm1047}, parents=[first])
        self.assert_refused(f"{later}:refs/heads/checkout-later",
                            says="github-pat in main.c (checked out as IBM1047 (working-tree-encoding)):1")
        # The file pushed first (clean as it is stored), the attributes next: refused for the file on the remote.
        stored = self.shared.commit_with({"notes.txt": blobs["a.txt"]})
        self.assertEqual(self.shared.push(f"{stored}:refs/heads/checkout-last").returncode, 0)
        last = self.shared.commit_with({"notes.txt": blobs["a.txt"],
                                        ".gitattributes": b"*.txt working-tree-encoding=UTF-16BE\n"}, parents=[stored])
        self.assert_refused(f"{last}:refs/heads/checkout-last", says="github-pat in notes.txt (already on the remote) "
                            "(checked out as UTF-16BE (working-tree-encoding)):1")

    def test_token_with_invisible_characters_inside(self) -> None:
        """A zero-width space, a soft hyphen or a bidi mark inside the token: a page shows the token. Refused."""
        token = github_token(312)
        marks = ("\u200b", "\u00ad", "\u2060", "\u202c", "\U000e0041")
        head = self.shared.commit_with({f"notes{n}.md": f"key: {token[:10]}{mark}{token[10:25]}{mark}{token[25:]}\n"
                                        .encode() for n, mark in enumerate(marks)})
        said = self.assert_refused(f"{head}:refs/heads/invisible",
                                   says="github-pat in notes0.md (invisible characters removed):1")
        self.assertIn("and 4 more", said)  # one finding for each file


if __name__ == "__main__":
    unittest.main()
