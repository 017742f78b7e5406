"""Helpers shared by the tests: an isolated HOME, running the CLI, copying the package."""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bot_bottle.decisions import decide
from bot_bottle.records import Proposal

REPO = Path(__file__).resolve().parent.parent.parent
MIGRATIONS = REPO / "migrations"


def wait_until(condition: Callable[[], Any], timeout: float = 20.0, interval: float = 0.05,
               what: str = "the condition") -> Any:
    """Poll ``condition`` until it returns something truthy (returned), or fail the test after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout:g} s")
        time.sleep(interval)


def query_plans(conn: sqlite3.Connection, action: Callable[[], Any], table: str) -> list[str]:
    """The query plans of the statements ``action`` really runs on ``conn`` that read ``table``.

    The statements are captured with ``set_trace_callback`` (bound values
    inlined), so a test of a plan follows the code's own SQL, not a copy.
    """
    seen: list[str] = []
    conn.set_trace_callback(seen.append)
    try:
        action()
    finally:
        conn.set_trace_callback(None)
    plans = []
    for statement in seen:
        if statement.lstrip().upper().startswith("SELECT") and f"FROM {table}" in statement:
            plans.append(" ".join(str(row[-1]) for row in conn.execute(f"EXPLAIN QUERY PLAN {statement}")))
    return plans


def in_ci() -> bool:
    """True when running under CI (``CI=true``), where a missing outside tool is a failure."""
    return os.environ.get("CI", "").lower() == "true"


def require_tool(test: unittest.TestCase, name: str) -> str:
    """The path of the outside tool ``name``; skips the test without it, or fails under CI."""
    found = shutil.which(name)
    if found:
        return found
    message = f"{name} is not installed (.ci/run installs it; see the README)"
    if in_ci():
        test.fail(message)
    raise unittest.SkipTest(message)


def in_mount_namespace(test: unittest.TestCase, script: str, env: dict[str, str],
                       timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run the shell ``script`` in a private mount namespace (as root, or mapped to root), from the checkout.

    The script exits 90 or 91 when it cannot mount; then the test skips with
    the reason, or fails under CI.
    """
    unshare = require_tool(test, "unshare")
    prefix = [unshare, "--mount", "--propagation", "private"] if os.geteuid() == 0 else \
        [unshare, "--mount", "--map-root-user", "--propagation", "private"]
    result = subprocess.run([*prefix, "sh", "-c", script], cwd=REPO, capture_output=True, text=True,
                            timeout=timeout, env={**os.environ, "PY": sys.executable, "PYTHONPATH": str(REPO), **env})
    if result.returncode in (90, 91) or "unshare failed" in result.stderr:
        message = f"cannot make a mount namespace here: {result.stderr.strip()[-300:]}"
        if in_ci():
            test.fail(message)
        raise unittest.SkipTest(message)
    return result


def digest(path: Path) -> str:
    """sha256 of a file's bytes (or of a directory's listing of names), to prove it unchanged."""
    if path.is_dir():
        return hashlib.sha256("\n".join(sorted(os.listdir(path))).encode()).hexdigest()
    return hashlib.sha256(path.read_bytes()).hexdigest()


class TempDirTest(unittest.TestCase):
    """A test with its own temporary directory (``self.tmp``) and its own ``HOME`` inside it."""

    def setUp(self) -> None:
        super().setUp()
        self._tmp = tempfile.TemporaryDirectory(prefix="bb-test-")
        self.addCleanup(self._cleanup_tmp)
        self.tmp = Path(self._tmp.name)
        self.home = self.tmp / "home"
        self.home.mkdir()
        old_home = os.environ.get("HOME")
        os.environ["HOME"] = str(self.home)
        self.addCleanup(self._restore_home, old_home)

    def _cleanup_tmp(self) -> None:
        # Tests make files read-only on purpose; make them removable again.
        for root, dirs, _ in os.walk(self._tmp.name):
            for name in dirs:
                os.chmod(os.path.join(root, name), 0o700)
        self._tmp.cleanup()

    @staticmethod
    def _restore_home(old: str | None) -> None:
        if old is None:
            os.environ.pop("HOME", None)
        else:
            os.environ["HOME"] = old

    def run_cli(
        self, *args: str, cwd: Path = REPO, input_text: str | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """Run ``python -m bot_bottle ARGS`` in a child process with this test's HOME."""
        env = {**os.environ, "HOME": str(self.home), "PYTHONDONTWRITEBYTECODE": "1"}
        return subprocess.run(
            [sys.executable, "-m", "bot_bottle", *args],
            cwd=cwd,
            env=env,
            input=input_text,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def assert_clean_error(self, result: subprocess.CompletedProcess[str], code: int, *needles: str) -> None:
        """The command failed with ``code`` and one line on stderr containing each needle, no traceback."""
        self.assertEqual(result.returncode, code, f"stdout={result.stdout!r} stderr={result.stderr!r}")
        self.assertNotIn("Traceback", result.stderr)
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        self.assertEqual(len(lines), 1, result.stderr)
        for needle in needles:
            self.assertIn(needle, lines[0])

    def copy_package(self, migrations: Path | None = None) -> Path:
        """A source-checkout layout (bot_bottle/ + migrations/) in a temporary folder; returns its root."""
        root = self.tmp / "checkout"
        shutil.copytree(REPO / "bot_bottle", root / "bot_bottle", ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copytree(migrations or MIGRATIONS, root / "migrations")
        return root


def write_migration(folder: Path, version: int, name: str, up: str, down: str) -> None:
    """Write one migration pair into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{version:04d}_{name}.up.sql").write_text(up)
    (folder / f"{version:04d}_{name}.down.sql").write_text(down)


def drop_triggers(conn: sqlite3.Connection, *tables: str) -> None:
    """Drop the triggers of ``tables`` (none named: of every table) on ``conn``, as a sidecar on the mount can
    before it writes rows they guard. The host's next write makes them again (``schema.guard``): a sidecar
    writing after it drops them again."""
    marks = ", ".join("?" for _ in tables)
    where = f" AND tbl_name IN ({marks})" if tables else ""
    for (name,) in conn.execute(f"SELECT name FROM sqlite_master WHERE type = 'trigger'{where}",
                                tables).fetchall():
        conn.execute(f'DROP TRIGGER "{name}"')


def schema_of(db_path: Path) -> list[tuple[str, str, str]]:
    """The schema (type, name, sql) of a database, read on a fresh connection, sorted."""
    conn = sqlite3.connect(db_path)
    try:
        return sorted(
            (str(t), str(n), str(s)) for t, n, s in conn.execute("SELECT type, name, sql FROM sqlite_master")
        )
    finally:
        conn.close()


def file_as_a_sidecar(db_path: Path, bottle: str, tool: str, payload: str, justification: str,
                      created_at: str = "2026-11-27T08:00:00.000000Z") -> Proposal:
    """A proposal written straight into the file, as a sidecar on the mount can (past ``submit``'s checks)."""
    proposal = Proposal(secrets.token_hex(16), bottle, tool, payload, justification, None, None, created_at)
    raw = sqlite3.connect(db_path, isolation_level=None)
    try:
        raw.execute("INSERT INTO proposals (id, queue_key, tool, payload, payload_sha256, justification, current_file, "
                    "current_file_hash, created_at) VALUES (?, ?, ?, ?, ?, ?, NULL, NULL, ?)",
                    (proposal.id, bottle, tool, payload, hashlib.sha256(payload.encode()).hexdigest(), justification,
                     created_at))
    finally:
        raw.close()
    return proposal


def decide_when_filed(
    test: unittest.TestCase, store: Any, bottle: str, status: str, notes: str, final_file: str | None = None
) -> threading.Thread:
    """In a thread: decide the first proposal ``bottle`` files (within 20 s), as an operator would."""
    def run() -> None:
        pending = wait_until(lambda: store.pending(bottle), what=f"a proposal from {bottle}")
        decide(pending[0].id, status, notes, final_file, store=store)

    thread = threading.Thread(target=run)
    thread.start()
    test.addCleanup(thread.join)
    return thread
