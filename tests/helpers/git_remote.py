"""Bare remotes with git-gate installed as their pre-receive hook, pushed to by real git: one shared by a
class (``SharedRemoteTest``) or one per test (``GateCase``)."""

from __future__ import annotations

import json
import subprocess
import tempfile
import threading
import unittest
from pathlib import Path

from bot_bottle.audit_store import AuditStore
from bot_bottle.decisions import decide
from bot_bottle.queue_store import QueueStore
from bot_bottle.sidecar.git_gate.install import install_hook
from bot_bottle.sidecar.git_gate.limits import Limits
from bot_bottle.text.redaction import encoded_forms
from tests.helpers.support import REPO, TempDirTest, require_tool, wait_until

# Test secrets in gitleaks' aws-access-token shape. Built at run time so this
# file itself carries no finding.
SECRET_ALLOWED = "AKIA" + "Z7QWERTYUIOP3XYZ"
SECRET_BLOCKED = "AKIA" + "Z7QWERTYUIOP4XYZ"
SHA_A = "a" * 40
SHA_B = "b" * 40
ZERO = "0" * 40


def github_token(n: int) -> str:
    """A realistic GitHub personal access token (gitleaks' github-pat rule), unique per ``n``.

    Built at run time so this file carries no literal token.
    """
    return "ghp_" + "Q7wErT9yUi0pAs5DfG3hJk2Lz8XcVb" + f"{n:06d}"


def b64_forms(token: str) -> list[bytes]:
    """The token and its base64 forms (as they would sit in a text), as bytes to look for."""
    return [form.encode() for form in encoded_forms(token) if form == token or "%" not in form]


class SharedRemote:
    """One bare remote with the gate, one work clone and one database, shared by a test class.

    A refused push changes nothing on the remote, so the tests that expect a
    refusal can share it; building one per test would cost a clone and a
    first push each.
    """

    def __init__(self, root: Path, gitleaks: str, timeout: float) -> None:
        self.root = root
        self.gitleaks = gitleaks
        self.timeout = timeout
        self.home = root / "home"
        self.home.mkdir()
        self.dbdir = root / "db"
        self.dbdir.mkdir(mode=0o700)
        self.db = self.dbdir / "gate.db"
        self.remote = root / "remote.git"
        self.work = root / "work"
        self.env = {"HOME": str(self.home), "PATH": "/usr/bin:/bin", "GIT_CONFIG_NOSYSTEM": "1",
                    "GIT_AUTHOR_DATE": "2026-11-27T08:00:00Z", "GIT_COMMITTER_DATE": "2026-11-27T08:00:00Z"}
        self.git("init", "-q", "--bare", str(self.remote), cwd=root)
        self.install()
        self.git("clone", "-q", str(self.remote), str(self.work), cwd=root)
        for key, value in (("user.email", "agent@bottle"), ("user.name", "agent"), ("commit.gpgsign", "false"),
                           ("advice.nestedTag", "false")):
            self.git("config", key, value)
        self.clean_blob = self.blob(b"hello\n")
        self.base = self.commit_tree(self.tree([("100644", "README.md", self.clean_blob)]), [], "base")
        result = self.push(f"{self.base}:refs/heads/main")
        if result.returncode != 0:
            raise AssertionError(f"the first clean push failed: {result.stderr}")

    def install(self, limits: Limits | None = None) -> None:
        """(Re)write the remote's hook, with ``limits`` (default: git-gate's own)."""
        install_hook(self.remote, "web-1", db_path=self.db, gitleaks=self.gitleaks, pythonpath=str(REPO),
                     timeout=self.timeout, limits=limits)

    def git(self, *args: str, cwd: Path | None = None, data: bytes | None = None) -> str:
        result = subprocess.run(["git", *args], cwd=cwd or self.work, input=data, capture_output=True, timeout=120,
                                env=self.env)
        if result.returncode != 0:
            raise AssertionError(f"git {args[0]} failed: {result.stderr.decode(errors='replace')}")
        return result.stdout.decode()

    def blob(self, data: bytes) -> str:
        return self.git("hash-object", "-w", "--stdin", data=data).strip()

    def tree(self, entries: list[tuple[str, str, str]]) -> str:
        kinds = {"040000": "tree", "100644": "blob", "100755": "blob", "120000": "blob"}
        lines = b"".join(f"{mode} {kinds[mode]} {oid}\t{name}".encode() + b"\0" for mode, name, oid in entries)
        return self.git("mktree", "-z", data=lines).strip()

    def commit_tree(self, tree: str, parents: list[str], message: str) -> str:
        args = ["commit-tree", tree, *(arg for parent in parents for arg in ("-p", parent))]
        return self.git(*args, data=message.encode()).strip()

    def commit_with(self, files: dict[str, bytes], message: str = "add files", parents: list[str] | None = None) -> str:
        """A child of ``base`` (or of ``parents``) whose tree is README.md plus ``files`` (paths may nest once)."""
        top: dict[str, str] = {"README.md": self.clean_blob}
        folders: dict[str, list[tuple[str, str, str]]] = {}
        for path, data in files.items():
            folder, _, name = path.rpartition("/")
            if folder:
                folders.setdefault(folder, []).append(("100644", name, self.blob(data)))
            else:
                top[name] = self.blob(data)
        entries = [("100644", name, oid) for name, oid in top.items()]
        entries += [("040000", folder, self.tree(items)) for folder, items in folders.items()]
        return self.commit_tree(self.tree(entries), [self.base] if parents is None else parents, message)

    def clone(self, head: str, into: Path) -> Path:
        """A real clone (checkout) of commit ``head`` from the work repository, as a cloner would get it."""
        self.git("update-ref", "refs/heads/to-clone", head)
        self.git("clone", "-q", "-b", "to-clone", str(self.work), str(into))
        return into

    def push(self, *refspecs: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["git", "push", "--porcelain", str(self.remote), *refspecs], cwd=self.work,
                              capture_output=True, text=True, timeout=180, env=self.env)

    def remote_refs(self) -> str:
        return self.git("for-each-ref", "--format=%(objectname) %(refname)", cwd=self.remote)

    def remote_has(self, oid: str) -> bool:
        return subprocess.run(["git", "cat-file", "-e", oid], cwd=self.remote, env=self.env,
                              capture_output=True).returncode == 0


class SharedRemoteTest(unittest.TestCase):
    """Tests that share one remote with the gate installed (real git and gitleaks), made once per class."""

    shared: SharedRemote
    folder_prefix = "bb-gate-"

    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()
        cls._tmp = tempfile.TemporaryDirectory(prefix=cls.folder_prefix)
        cls.addClassCleanup(cls._tmp.cleanup)
        probe = unittest.TestCase()
        gitleaks = require_tool(probe, "gitleaks")
        require_tool(probe, "git")
        cls.shared = SharedRemote(Path(cls._tmp.name), gitleaks, timeout=0)


class GateAttackCase(SharedRemoteTest):
    """An attack suite's base: pushes that must be refused, and the findings a held push filed."""

    def assert_refused(self, *refspecs: str, says: str, secret_oids: tuple[str, ...] = ()) -> str:
        """The push fails with a git-gate line containing ``says``; the remote's refs (and these objects) stay."""
        before = self.shared.remote_refs()
        result = self.shared.push(*refspecs)
        gate = [line for line in result.stderr.splitlines() if "git-gate:" in line]
        self.assertNotEqual(result.returncode, 0, result.stderr)
        self.assertTrue(gate, result.stderr)
        self.assertIn("push refused", gate[-1])
        self.assertIn(says, gate[-1])
        self.assertEqual(self.shared.remote_refs(), before)
        for oid in secret_oids:
            self.assertFalse(self.shared.remote_has(oid), f"{oid} reached the remote")
        return gate[-1]

    def assert_accepted(self, *refspecs: str) -> str:
        """The push is accepted; git-gate's last line."""
        result = self.shared.push(*refspecs)
        self.assertEqual(result.returncode, 0, result.stderr)
        gate = [line for line in result.stderr.splitlines() if "git-gate:" in line]
        self.assertIn("push accepted", gate[-1])
        return gate[-1]

    def filed_findings(self, head: str, branch: str) -> list[dict[str, object]]:
        """Push ``head`` (its tokens marked gitleaks:allow): held for the operator; the proposal's findings."""
        self.assert_refused(f"{head}:refs/heads/{branch}", says="no decision within 0 s")
        with QueueStore(self.shared.db) as store:
            (proposal,) = [p for p in store.pending("web-1") if head in p.payload]
        findings: list[dict[str, object]] = json.loads(proposal.payload)["findings"]
        return findings


class GateCase(TempDirTest):
    """A bare repository whose pre-receive hook is git-gate (for bottle web-1, its database ``self.db``), and a
    clone of it pushed to by real git."""

    def setUp(self) -> None:
        super().setUp()
        self.gitleaks = require_tool(self, "gitleaks")
        require_tool(self, "git")
        self.db = self.tmp / "gate.db"
        self.store = QueueStore(self.db)
        self.addCleanup(self.store.close)
        self.remote = self.tmp / "remote.git"
        self.git("init", "-q", "--bare", str(self.remote), cwd=self.tmp)
        self.work = self.tmp / "work"
        self.git("clone", "-q", str(self.remote), str(self.work), cwd=self.tmp)
        for key, value in (("user.email", "agent@bottle"), ("user.name", "agent"), ("commit.gpgsign", "false")):
            self.git("config", key, value)
        self.commit("README.md", "hello\n")
        self.assertEqual(self.push().returncode, 0)  # the remote's first commit, before the gate (faster)
        self.hook(timeout=30)

    def hook(self, **options: object) -> None:
        settings: dict[str, object] = {"db_path": self.db, "gitleaks": self.gitleaks, "pythonpath": str(REPO)}
        install_hook(self.remote, "web-1", **{**settings, **options})

    def git(self, *args: str, cwd: Path | None = None) -> str:
        result = subprocess.run(["git", *args], cwd=cwd or self.work, capture_output=True, text=True, timeout=60,
                                env={"HOME": str(self.home), "PATH": "/usr/bin:/bin", "GIT_CONFIG_NOSYSTEM": "1"})
        if result.returncode != 0:
            raise AssertionError(f"git {args[0]} failed: {result.stderr}")
        return result.stdout

    def commit(self, name: str, text: str) -> str:
        (self.work / name).write_text(text)
        self.git("add", name)
        self.git("commit", "-q", "-m", f"add {name}")
        return self.git("rev-parse", "HEAD").strip()

    def start_push(self, *refspec: str) -> subprocess.Popen[str]:
        return subprocess.Popen(["git", "push", "origin", *(refspec or ("HEAD:main",))], cwd=self.work,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env={"HOME": str(self.home), "PATH": "/usr/bin:/bin", "GIT_CONFIG_NOSYSTEM": "1"})

    def push(self, *refspec: str) -> subprocess.CompletedProcess[str]:
        process = self.start_push(*refspec)
        out, err = process.communicate(timeout=120)
        return subprocess.CompletedProcess(process.args, process.returncode, out, err)

    def remote_head(self, branch: str = "main") -> str:
        return self.git("rev-parse", branch, cwd=self.remote).strip()

    def proposals(self) -> list[str]:
        return [p.id for p, _ in self.store.listing("web-1", include_decided=True)]

    def wait_for_proposal(self) -> str:
        pending = wait_until(lambda: self.store.pending("web-1"), 60, what="git-gate filing a proposal")
        return str(pending[0].id)

    def decide_later(self, status: str, notes: str) -> threading.Thread:
        thread = threading.Thread(target=lambda: decide(self.wait_for_proposal(), status, notes, store=self.store))
        thread.start()
        self.addCleanup(thread.join)
        return thread

    def assert_no_secret_stored(self) -> None:
        raw = self.db.read_bytes()
        for secret in (SECRET_ALLOWED, SECRET_BLOCKED):
            self.assertNotIn(secret.encode(), raw)
        with AuditStore(self.db) as audit:
            exported = "\n".join(json.dumps(e.to_dict()) for e in audit.export())
        for secret in (SECRET_ALLOWED, SECRET_BLOCKED):
            self.assertNotIn(secret, exported)
