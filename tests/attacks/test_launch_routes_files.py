"""The file ``bot-bottle prepare --routes-file FILE`` records: what it reads, and what it refuses.

The routes file often lives in a checkout the bottle's agent writes. Before
the fixes next to these tests, prepare read the whole file into memory before
it checked its length: a FIFO there hung prepare for ever, ``/dev/zero`` (or
a sparse file of gigabytes) took the host's memory until prepare died in a
traceback. And it recorded the bytes as they are, where the sidecar reads the
same file in text mode (``sidecar.mcp``, universal newlines): a CRLF file was
recorded as text no sidecar sends, so every honest routes proposal of the
bottle read as drifted, every host new. Its refusals (a file rejected for the
bottle, by a decision or a standing rule) came after the bottle was recorded
as prepared, and for the relay after its token was minted again (the running
sidecar's ended), under a message that said nothing was recorded.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from bot_bottle.bottles import BottleStore
from bot_bottle.decisions import decide
from bot_bottle.queue_store import QueueStore
from bot_bottle.records import MAX_PAYLOAD_BYTES, STATUS_REJECTED, TOOL_EGRESS_BLOCK
from tests.helpers.support import REPO, TempDirTest

MEMORY = 1 << 30  # the address space prepare is given here: a whole read of /dev/zero ends in MemoryError


def _limited() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))


class LaunchRoutesFilesTest(TempDirTest):
    def prepare(self, path: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "HOME": str(self.home), "PYTHONDONTWRITEBYTECODE": "1"}
        return subprocess.run([sys.executable, "-m", "bot_bottle", "prepare", "web-1", "--backend", "docker",
                               "--routes-file", path], cwd=REPO, env=env, capture_output=True, text=True,
                              timeout=timeout, preexec_fn=_limited)

    def test_files_that_never_end_are_refused_at_once(self) -> None:
        fifo = self.tmp / "routes.fifo"
        os.mkfifo(fifo)
        sparse = self.tmp / "huge.yaml"
        with open(sparse, "wb") as handle:
            handle.truncate(4 << 30)  # 4 GiB of holes: nothing on disk, all of it in memory when read whole
        for path, needle in ((str(fifo), "not a regular file"), ("/dev/zero", "not a regular file"),
                             (str(sparse), "--routes-file")):
            with self.subTest(path=path):
                started = time.monotonic()
                result = self.prepare(path)
                self.assert_clean_error(result, 2, "--routes-file", needle)
                self.assertLess(time.monotonic() - started, 20)
                self.assertFalse((self.home / ".bot-bottle").exists(), "prepare created something before refusing")

    def test_a_file_just_over_the_limit_is_refused(self) -> None:
        path = self.tmp / "long.yaml"
        path.write_text("routes:\n" + "#" * MAX_PAYLOAD_BYTES, encoding="utf-8")
        self.assert_clean_error(self.prepare(str(path)), 2, "--routes-file")

    def test_a_crlf_file_is_recorded_as_the_sidecar_reads_it(self) -> None:
        path = self.tmp / "routes.yaml"
        path.write_bytes(b"routes:\r\n- a.com\r\n")
        result = self.prepare(str(path))
        self.assertEqual((result.returncode, result.stderr), (0, ""))
        current = path.read_text(encoding="utf-8")  # what the sidecar sends (sidecar.mcp)
        store = QueueStore()
        self.addCleanup(store.close)
        honest = store.submit("web-1", TOOL_EGRESS_BLOCK, "routes:\n- a.com\n- b.com\n", "docs",
                              current_file=current)
        shown = self.run_cli("proposals", "show", honest.id)
        self.assertIn("routes file: adds b.com\n", shown.stdout)
        self.assertNotIn("drifted", shown.stdout)

    def rejected_file(self, remember: str) -> Path:
        """A routes file web-1's sidecar filed and the operator rejected, remembering it for ``remember``."""
        path = self.tmp / "routes.yaml"
        path.write_text("routes:\n- a.com\n- evil.example\n", encoding="utf-8")
        store = QueueStore()
        self.addCleanup(store.close)
        filed = store.submit("web-1", TOOL_EGRESS_BLOCK, path.read_text(encoding="utf-8"), "please")
        decide(filed.id, STATUS_REJECTED, "no", store=store, remember=remember)
        return path

    def test_a_refused_file_prepares_nothing(self) -> None:
        """Rejected for web-1 by the operator, for web-2 by a standing rule remembered from that rejection."""
        path = self.rejected_file(remember="all")
        for slug, needle in (("web-1", "rejected for web-1"), ("web-2", "rejects this file for every bottle")):
            with self.subTest(slug=slug):
                result = self.run_cli("prepare", slug, "--backend", "docker", "--routes-file", str(path))
                self.assert_clean_error(result, 2, "--routes-file", needle, "nothing recorded")
                bottles = BottleStore()
                self.addCleanup(bottles.close)
                states = [bottle.shown_state() for bottle in bottles.overview(slug)]
                self.assertNotIn("prepared", states, "the refused prepare recorded the bottle as prepared")

    def test_a_file_rejected_with_a_standing_rule_names_the_rule(self) -> None:
        """Rejected and remembered: the refusal said only "until you approve the file when the bottle proposes it
        again", an approval the standing rule refuses (the rule rejects the proposal at once)."""
        path = self.rejected_file(remember="bottle")
        for verb in (("prepare", "web-1", "--backend", "docker", "--routes-file"), ("bottles", "routes", "web-1")):
            with self.subTest(verb=verb[0]):
                result = self.run_cli(*verb, str(path))
                self.assert_clean_error(result, 2, "rejected for web-1", "'bot-bottle rules revoke ",
                                        "nothing recorded")

    def test_the_host_key_is_never_written_where_sidecars_read(self) -> None:
        """A routes file in a checkout the agent writes, made a link to the host's audit key (65 bytes of UTF-8):
        prepare wrote the key into the database every sidecar on the mount reads, and with it every seal."""
        first = self.tmp / "first.yaml"
        first.write_text("routes:\n- a.com\n", encoding="utf-8")
        self.assertEqual(self.prepare(str(first)).returncode, 0)  # the host's key exists from its first seal
        key = self.home / ".bot-bottle" / "audit.key"
        secret = key.read_text(encoding="utf-8").strip()
        checkout = self.tmp / "checkout"
        checkout.mkdir()
        (checkout / "routes.yaml").symlink_to(key)
        (checkout / "keys").symlink_to(key.parent)
        for path, needle in ((checkout / "routes.yaml", "symbolic link"),
                             (checkout / "keys" / "audit.key", "audit key")):
            with self.subTest(path=path.name):
                result = self.run_cli("prepare", "web-2", "--backend", "docker", "--routes-file", str(path))
                self.assert_clean_error(result, 2, "--routes-file", needle)
        for written in (self.home / ".bot-bottle" / "db").iterdir():  # the file, its -wal and -shm
            self.assertFalse(secret.encode() in written.read_bytes(), f"the host's key is in {written.name}")
