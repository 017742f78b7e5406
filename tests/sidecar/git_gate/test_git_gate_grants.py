"""git-gate asks the grants in force, not its memory: an approval lets the same findings through until its end.

Real git and gitleaks push through bare remotes whose pre-receive hook is
git-gate for bottle web-1 (a commit already on a remote is not scanned
again, so the same findings meet the gate again when the same commits go to
another of the bottle's remotes); the operator decides with ``decide`` and
revokes with ``GrantStore``, in the test process, on the same database.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from bot_bottle.decisions import decide
from bot_bottle.grants import GrantStore
from bot_bottle.records import STATUS_APPROVED, TOOL_GITLEAKS_ALLOW
from bot_bottle.sidecar.git_gate.install import install_hook
from tests.helpers.git_remote import SECRET_ALLOWED, GateCase, github_token
from tests.helpers.support import REPO


class GrantedFindingsTest(GateCase):
    def second_remote(self, timeout: float = 30) -> Path:
        """Another of web-1's remotes behind git-gate, on the same database, holding only the first commit."""
        remote = self.tmp / "second.git"
        self.git("init", "-q", "--bare", str(remote), cwd=self.tmp)
        self.git("push", "-q", str(remote), "HEAD~1:refs/heads/main")
        install_hook(remote, "web-1", db_path=self.db, gitleaks=self.gitleaks, pythonpath=str(REPO), timeout=timeout)
        return remote

    def push_to(self, remote: Path, refspec: str = "HEAD:main") -> subprocess.CompletedProcess[str]:
        return subprocess.run(["git", "push", str(remote), refspec], cwd=self.work, capture_output=True, text=True,
                              timeout=120, env={"HOME": str(self.home), "PATH": "/usr/bin:/bin",
                                                "GIT_CONFIG_NOSYSTEM": "1"})

    def approve_first_push(self) -> str:
        """Push a marked secret, approve it, and return the pushed commit."""
        head = self.commit("fixture.py", f'key = "{SECRET_ALLOWED}"  # gitleaks:allow\n')
        decider = self.decide_later(STATUS_APPROVED, "a test fixture")
        result = self.push()
        decider.join(60)
        self.assertEqual(result.returncode, 0, result.stderr)
        return head

    def test_the_same_findings_pushed_again_pass_on_the_grant_without_asking(self) -> None:
        """Approved once, the same commits pushed to another of the bottle's remotes pass at once: nothing new
        is filed."""
        head = self.approve_first_push()
        (proposal_id,) = self.proposals()
        second = self.second_remote()
        again = self.push_to(second)
        self.assertEqual(again.returncode, 0, again.stderr)
        self.assertIn("covered by the operator's grant", again.stderr)
        self.assertEqual(self.git("rev-parse", "main", cwd=second).strip(), head)
        self.assertEqual(self.proposals(), [proposal_id])
        self.assert_no_secret_stored()

    def test_a_revoked_grant_covers_nothing(self) -> None:
        """Revoked, the grant lets nothing through: the next push of the same findings asks the operator again."""
        self.approve_first_push()
        (first,) = self.proposals()
        with GrantStore(self.db) as grants:
            (grant,) = grants.live("web-1", TOOL_GITLEAKS_ALLOW)
            grants.revoke(grant.id, "changed my mind", revoked_by="operator")
        again = self.push_to(self.second_remote(timeout=1))
        self.assertNotEqual(again.returncode, 0)
        self.assertIn("no decision within 1 s", again.stderr)
        self.assertEqual(len(self.proposals()), 2)
        self.assertIn(first, self.proposals())

    def test_only_the_findings_no_grant_covers_are_asked_about(self) -> None:
        """One finding granted, one new: the proposal names only the new one and says the other is covered."""
        self.approve_first_push()
        second = self.second_remote(timeout=1)
        self.commit("other.py", f'token = "{github_token(7)}"  # gitleaks:allow\n')
        result = self.push_to(second)
        self.assertNotEqual(result.returncode, 0)
        pending = self.store.pending("web-1")
        self.assertEqual(len(pending), 1)
        report = json.loads(self.store.get(pending[0].id).payload)
        self.assertEqual([f["file"] for f in report["findings"]], ["other.py"])
        self.assertIn("1 more are covered by a grant", pending[0].justification)
        # Approved, the push as a whole passes: the old finding on its grant, the new one on its own.
        decide(pending[0].id, STATUS_APPROVED, "also a fixture", store=self.store)
        retry = self.push_to(second)
        self.assertEqual(retry.returncode, 0, retry.stderr)

    def test_another_bottles_grant_covers_nothing_here(self) -> None:
        """web-2 holds a grant for exactly these findings: web-1's push still waits for its own operator."""
        head = self.commit("fixture.py", f'key = "{SECRET_ALLOWED}"  # gitleaks:allow\n')
        self.hook(timeout=1)
        first = self.push()
        self.assertNotEqual(first.returncode, 0)
        (mine,) = self.store.pending("web-1")
        payload = self.store.get(mine.id).payload
        theirs = self.store.submit("web-2", TOOL_GITLEAKS_ALLOW, payload, "the same findings, in web-2")
        decide(theirs.id, STATUS_APPROVED, "web-2's fixture", store=self.store)
        again = self.push()
        self.assertNotEqual(again.returncode, 0)
        self.assertIn("no decision within 1 s", again.stderr)
        self.assertNotEqual(self.remote_head(), head)
