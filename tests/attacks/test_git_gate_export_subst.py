"""export-subst: a token that only ``git archive`` (a forge's tarball) puts together, from a file and its commit.

``$Format:%s$`` in a file with the ``export-subst`` attribute is the commit's
subject in every tarball of it; ``%b`` its body, ``%D`` the names of the refs
that point at it. Half a token in the file (``ghp_``) and the rest in a
commit message, or a branch's name, is in none of the pushed objects, and the
gate let every one through (review 47, with real git and gitleaks). Each test
first shows that ``git archive`` writes the token, then that the push is
refused.
"""

from __future__ import annotations

import io
import subprocess
import tarfile

from bot_bottle.decisions import decide
from bot_bottle.queue_store import QueueStore
from bot_bottle.records import STATUS_APPROVED
from tests.helpers.git_remote import GateAttackCase, github_token

ATTRIBUTES = b"v.txt export-subst\n"


class ExportSubstAttackTest(GateAttackCase):
    """Pushes whose tarball holds a token that none of their objects holds."""

    folder_prefix = "bb-subst-"

    def archived(self, head: str, ref: str, name: str = "v.txt") -> bytes:
        """``name`` as ``git archive`` of ``head`` writes it, with ``ref`` (alone) pointing at ``head``."""
        self.shared.git("update-ref", ref, head)
        try:
            tar = subprocess.run(["git", "archive", "--format=tar", ref], cwd=self.shared.work, env=self.shared.env,
                                 capture_output=True, check=True).stdout
        finally:
            self.shared.git("update-ref", "-d", ref)
        with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
            handle = archive.extractfile(name)
            assert handle is not None
            return handle.read()

    def test_the_commit_message_completes_the_token(self) -> None:
        """'ghp_$Format:%s$' with the rest of the token as the subject; '%b' with it as the body. Refused."""
        for number, (placeholder, message) in enumerate((("%s", "{tail}"), ("%b", "release\n\n{tail}"))):
            with self.subTest(placeholder):
                token = github_token(470 + number)
                files = {".gitattributes": ATTRIBUTES, "v.txt": f"t = ghp_$Format:{placeholder}$\n".encode()}
                head = self.shared.commit_with(files, message=message.format(tail=token[4:]))
                self.assertIn(token.encode(), self.archived(head, "refs/heads/look"), "git archive writes it")
                self.assert_refused(f"{head}:refs/heads/subst-{number}",
                                    says="github-pat in v.txt ($Format: filled in from the commit, as git archive "
                                         "writes it: ")

    def test_the_branch_name_completes_the_token(self) -> None:
        """'ghp_$Format:%D$' pushed to a branch named after the rest of the token. Refused."""
        token = github_token(473)
        head = self.shared.commit_with({".gitattributes": ATTRIBUTES, "v.txt": b"t = ghp_$Format:%D$\n"})
        branch = f"refs/heads/{token[4:]}"
        self.assertIn(token.encode(), self.archived(head, branch), "git archive writes it")
        self.assert_refused(f"{head}:{branch}", says="github-pat in v.txt ($Format: filled in from the commit")

    def test_a_file_already_on_the_remote_filled_in_by_a_new_commit(self) -> None:
        """The file goes first under a harmless message (its tarball holds no token: accepted), then a new commit
        of the very same tree, whose subject completes the token: the blob is not new, its tarball is. Refused."""
        token = github_token(474)
        first = self.shared.commit_with({".gitattributes": ATTRIBUTES, "v.txt": b"t = ghp_$Format:%s$\n"},
                                        message="release")
        self.assert_accepted(f"{first}:refs/heads/subst-later")
        tree = self.shared.git("rev-parse", f"{first}^{{tree}}").strip()
        second = self.shared.commit_tree(tree, [first], token[4:])
        self.assertIn(token.encode(), self.archived(second, "refs/heads/look"), "git archive writes it")
        self.assert_refused(f"{second}:refs/heads/subst-later", says="github-pat in v.txt ($Format: filled in")

    def test_a_new_branch_on_a_commit_already_on_the_remote(self) -> None:
        """'ghp_$Format:%D$' goes first on a branch of a harmless name (accepted); then one push deletes that
        branch and makes one named after the rest of the token, at that same commit: nothing new is pushed, but
        the commit's tarball now names that branch alone. Refused."""
        token = github_token(475)
        head = self.shared.commit_with({".gitattributes": ATTRIBUTES, "v.txt": b"t = ghp_$Format:%D$\n"},
                                       message="names")
        self.assert_accepted(f"{head}:refs/heads/subst-names")
        branch = f"refs/heads/{token[4:]}"
        self.assertIn(token.encode(), self.archived(head, branch), "git archive writes it")
        self.assert_refused(":refs/heads/subst-names", f"{head}:{branch}",
                            says="github-pat in v.txt ($Format: filled in from the commit")

    def test_an_approved_finding_does_not_cover_another_token_the_refs_spell(self) -> None:
        """A marked 'ghp_$Format:%D$' on a branch named after one token: held, and the operator approves that
        finding. Then one push moves the commit to a branch named after another token: the commit and the line
        are the same, the token is not, so the grant of the first does not cover it: held for the operator."""
        first, second = github_token(476), github_token(477)
        head = self.shared.commit_with({".gitattributes": ATTRIBUTES,
                                        "v.txt": b"t = ghp_$Format:%D$  # gitleaks:allow\n"}, message="marked")
        self.filed_findings(head, first[4:])
        with QueueStore(self.shared.db) as store:
            (held,) = [p for p in store.pending("web-1") if head in p.payload]
            decide(held.id, STATUS_APPROVED, "a fixture", store=store)
        self.assert_accepted(f"{head}:refs/heads/{first[4:]}")  # the grant covers the finding it was made for
        branch = f"refs/heads/{second[4:]}"
        self.assertIn(second.encode(), self.archived(head, branch), "git archive writes the second token")
        self.assert_refused(f":refs/heads/{first[4:]}", f"{head}:{branch}", says="no decision within 0 s")

    def test_a_tag_on_an_ancestor_that_a_branch_describes_itself_by(self) -> None:
        """A commit, and after it one adding 'ghp_$Format:%(describe:tags)$' (accepted: no tag, nothing
        described); then a tag named after the rest of the token on the first commit, which holds no such file:
        the branch's tarball writes 'ghp_<tag>-1-g...'. Nothing the push makes or names holds it. Refused."""
        token = github_token(478)
        first = self.shared.commit_with({"notes.txt": b"first\n"}, message="first")
        later = self.shared.commit_with({".gitattributes": ATTRIBUTES, "notes.txt": b"first\n",
                                         "v.txt": b"t = ghp_$Format:%(describe:tags)$\n"}, message="described",
                                        parents=[first])
        self.assert_accepted(f"{later}:refs/heads/subst-described")
        self.shared.git("update-ref", f"refs/tags/{token[4:]}", first)
        try:
            self.assertIn(token.encode(), self.archived(later, "refs/heads/look"), "git archive writes it")
        finally:
            self.shared.git("update-ref", "-d", f"refs/tags/{token[4:]}")
        self.assert_refused(f"{first}:refs/tags/{token[4:]}", says="github-pat in v.txt ($Format: filled in")

    def test_a_mailmap_pushed_to_the_branch_head_names(self) -> None:
        """'ghp_$Format:%aN$' on a branch (accepted: the author is 'agent'); then a .mailmap on the branch the
        remote's HEAD names, mapping the author to the rest of the token: the other branch's tarball writes it, and the
        push touches neither that branch nor that file. Refused."""
        token = github_token(479)
        other = self.shared.commit_with({".gitattributes": b"a.txt export-subst\n", "a.txt": b"t = ghp_$Format:%aN$\n"},
                                        message="named")
        self.assert_accepted(f"{other}:refs/heads/subst-named")
        mailmap = self.shared.commit_with({".mailmap": f"{token[4:]} <agent@bottle>\n".encode()}, message="names")
        with tarfile.open(fileobj=io.BytesIO(subprocess.run(
                ["git", "-c", f"mailmap.blob={mailmap}:.mailmap", "archive", "--format=tar", other],
                cwd=self.shared.work, env=self.shared.env, capture_output=True, check=True).stdout)) as archive:
            handle = archive.extractfile("a.txt")
            assert handle is not None
            self.assertIn(token.encode(), handle.read(), "git archive writes it")
        head_branch = self.shared.git("symbolic-ref", "HEAD", cwd=self.shared.remote).strip()
        self.assert_refused(f"{mailmap}:{head_branch}", says="github-pat in a.txt ($Format: filled in")

    def test_a_version_file_as_versioneer_writes_it_is_accepted(self) -> None:
        """What projects really put under export-subst (versioneer's _version.py): refs, hash and date. Accepted."""
        text = (b'git_refnames = "$Format:%d$"\ngit_full = "$Format:%H$"\ngit_date = "$Format:%ci$"\n'
                b'spelt = "$Format:%x24%x25$"\n')
        head = self.shared.commit_with({".gitattributes": b"_version.py export-subst\n", "_version.py": text},
                                       message="version file")
        self.assert_accepted(f"{head}:refs/heads/subst-versioneer")

    def test_a_ref_deleted_or_moved_away_from_a_commit_another_names(self) -> None:
        """'ghp_$Format:%D$' on two branches, one named after the rest of the token ('ghp_aaa, <rest>': accepted);
        then a push that deletes the other, or force-moves it away: the push names no commit that holds the file,
        yet the tarball of the branch left writes 'ghp_<rest>' (hostile review 49). Refused."""
        for number, how in enumerate(("delete", "move")):
            with self.subTest(how):
                token = github_token(490 + number)
                head = self.shared.commit_with({".gitattributes": ATTRIBUTES, "v.txt": b"t = ghp_$Format:%D$\n"},
                                               message=f"two names {how}")
                self.assert_accepted(f"{head}:refs/heads/a{number}", f"{head}:refs/heads/{token[4:]}")
                self.assertIn(token.encode(), self.archived(head, f"refs/heads/{token[4:]}"), "git archive writes it")
                away = f":refs/heads/a{number}" if how == "delete" else f"+{self.shared.base}:refs/heads/a{number}"
                self.assert_refused(away, says="github-pat in v.txt ($Format: filled in from the commit")

    def test_a_tag_deleted_so_a_branch_describes_itself_by_an_older_one(self) -> None:
        """'ghp_$Format:%(describe:tags)$' on a branch, with a tag named after the rest of the token two commits
        back and 'v1' one back (the tarball writes 'ghp_v1-1-g...': accepted); then a push deleting 'v1' alone:
        the branch's tarball writes 'ghp_<rest>-2-g...' (hostile review 49). Refused."""
        token = github_token(492)
        first = self.shared.commit_with({"notes.txt": b"one\n"}, message="one")
        middle = self.shared.commit_with({"notes.txt": b"two\n"}, message="two", parents=[first])
        later = self.shared.commit_with({".gitattributes": ATTRIBUTES, "notes.txt": b"two\n",
                                         "v.txt": b"t = ghp_$Format:%(describe:tags)$\n"}, message="described",
                                        parents=[middle])
        self.assert_accepted(f"{later}:refs/heads/subst-deleted-tag", f"{first}:refs/tags/{token[4:]}",
                             f"{middle}:refs/tags/v1-deleted")
        self.assert_refused(":refs/tags/v1-deleted", says="github-pat in v.txt ($Format: filled in")

    def test_a_tag_pushed_changes_what_a_release_tag_describes(self) -> None:
        """'ghp_$Format:%(describe)$' on a commit a lightweight tag 'v2' names, and the branch moved on past it
        (accepted: no annotated tag, nothing described); then an annotated tag named after the rest of the
        token on its parent: the release tarball of 'v2' writes 'ghp_<rest>-1-g...', and no branch's tip holds
        the file (hostile review 49). Refused."""
        token = github_token(493)
        first = self.shared.commit_with({"notes.txt": b"r1\n"}, message="r1")
        release = self.shared.commit_with({".gitattributes": ATTRIBUTES, "notes.txt": b"r1\n",
                                           "v.txt": b"t = ghp_$Format:%(describe)$\n"}, message="r2",
                                          parents=[first])
        after = self.shared.commit_with({"notes.txt": b"r3\n"}, message="r3", parents=[release])
        self.assert_accepted(f"{after}:refs/heads/subst-release", f"{release}:refs/tags/v2-release")
        self.shared.git("tag", "-a", "-m", "annotated", token[4:], first)
        try:
            self.assertIn(token.encode(), self.archived(release, "refs/heads/look"), "git archive writes it")
            self.assert_refused(f"refs/tags/{token[4:]}:refs/tags/{token[4:]}",
                                says="github-pat in v.txt ($Format: filled in")
        finally:
            self.shared.git("tag", "-d", token[4:])

    def test_a_placeholder_only_the_working_tree_encoding_spells(self) -> None:
        """'t = ghp_$Format:%s$' as IBM037 bytes, stored as the UTF-8 text they decode to (no '$Format:' in the
        blob), with 'working-tree-encoding=IBM037': git archive converts, then fills in, and writes the subject
        there, the rest of the token (hostile review 49). Refused."""
        token = github_token(494)
        stored = b"t = ghp_$Format:%s$\n".decode("cp037").encode("utf-8")
        self.assertNotIn(b"$Format:", stored)
        head = self.shared.commit_with({".gitattributes": b"v.txt export-subst working-tree-encoding=IBM037\n",
                                        "v.txt": stored}, message=token[4:])
        self.assertIn(token.encode(), self.archived(head, "refs/heads/look"), "git archive writes it")
        self.assert_refused(f"{head}:refs/heads/subst-ebcdic", says="github-pat in v.txt ($Format: filled in")

    def test_a_pattern_only_a_case_insensitive_clone_matches(self) -> None:
        """'V.TXT export-subst' and 'v.txt' holding 'ghp_$Format:%s$', the subject the rest of the token: a forge's
        tarball leaves the file as stored, but git archive on macOS or Windows (core.ignorecase) matches the
        pattern and writes the token (hostile review 49). Refused."""
        token = github_token(495)
        head = self.shared.commit_with({".gitattributes": b"V.TXT export-subst\n", "v.txt": b"t = ghp_$Format:%s$\n"},
                                       message=token[4:])
        self.shared.git("update-ref", "refs/heads/look", head)
        try:
            tar = subprocess.run(["git", "-c", "core.ignorecase=true", "archive", "--format=tar", "refs/heads/look"],
                                 cwd=self.shared.work, env=self.shared.env, capture_output=True, check=True).stdout
        finally:
            self.shared.git("update-ref", "-d", "refs/heads/look")
        with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
            handle = archive.extractfile("v.txt")
            assert handle is not None
            self.assertIn(token.encode(), handle.read(), "git archive on a case-insensitive clone writes it")
        self.assert_refused(f"{head}:refs/heads/subst-icase", says="github-pat in v.txt ($Format: filled in")

    def test_a_version_file_in_an_export_ignored_folder_is_accepted(self) -> None:
        """A vendored package's '_version.py export-subst' under a folder the top's .gitattributes mark
        export-ignore: git archive writes no such file, and the gate refused the honest push with an internal
        error on the empty tar (hostile review 49). Accepted."""
        head = self.shared.commit_with({".gitattributes": b"vendor export-ignore\n",
                                        "vendor/.gitattributes": b"_version.py export-subst\n",
                                        "vendor/_version.py": b'git_full = "$Format:%H$"\n'}, message="vendored")
        self.assert_accepted(f"{head}:refs/heads/subst-vendored")
