"""The host's audit key deleted, replaced, world-readable, and written by a process killed mid-way: each as a process.

Before, a decision with ``audit.key`` deleted silently made a new key and
sealed with it (``audit verify`` failed at entry 1 from then on, and
restoring the old key left the new entries unverifiable); a replaced key was
used the same way; a world-readable key drew no warning from ``doctor``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

from bot_bottle.audit.anchor import anchor_path, read_anchor
from bot_bottle.audit.seal import key_id, key_path
from bot_bottle.queue_store import QueueStore
from bot_bottle.records import TOOL_EGRESS_BLOCK
from tests.helpers.support import REPO, TempDirTest, in_mount_namespace


class KeyProcessCase(TempDirTest):
    """The host database under this test's HOME, decided through the real CLI."""

    def setUp(self) -> None:
        super().setUp()
        self.db = self.home / ".bot-bottle" / "db" / "bot-bottle.db"
        self.store = QueueStore()
        self.addCleanup(self.store.close)
        self.filed = 0

    def approve(self) -> tuple[str, subprocess.CompletedProcess[str]]:
        """File a proposal and approve it with the CLI, as a script does (with show's digest)."""
        self.filed += 1
        # A bottle each: one routes file approved for a bottle ends its earlier one's grant (one more entry).
        proposal = self.store.submit(f"web-{self.filed}", TOOL_EGRESS_BLOCK, f"routes: [{self.filed}]\n", "why")
        digest = json.loads(self.run_cli("proposals", "show", proposal.id, "--json").stdout)["digest"]
        return proposal.id, self.run_cli("proposals", "approve", proposal.short_id, "--digest", digest)

    def assert_approved(self) -> None:
        proposal_id, result = self.approve()
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIsNotNone(self.store.response(proposal_id))

    def assert_refused(self, *needles: str) -> None:
        proposal_id, result = self.approve()
        self.assert_clean_error(result, 1, *needles)
        self.assertIsNone(self.store.response(proposal_id), "nothing recorded")

    def verify(self) -> subprocess.CompletedProcess[str]:
        return self.run_cli("audit", "verify")

    def doctor(self) -> dict[str, list[str]]:
        """doctor's checks about the key: level -> details."""
        result = self.run_cli("doctor", "--json")
        checks = json.loads(result.stdout)["checks"]
        found: dict[str, list[str]] = {}
        for check in checks:
            if check["check"] == "audit key":
                found.setdefault(check["level"], []).append(check["detail"])
        return found


class MissingKeyTest(KeyProcessCase):
    def test_deleted_then_restored(self) -> None:
        self.assert_approved()
        self.assert_approved()
        copy = self.tmp / "key-backup"
        shutil.copy2(key_path(), copy)
        key_path().unlink()
        self.assert_refused(f"the host's audit key {key_path()} is missing", "Restore the file from your copy",
                            "'bot-bottle audit new-key --yes'")
        self.assertFalse(key_path().exists(), "no key was made behind the operator's back")
        self.assertEqual(self.verify().returncode, 1)
        self.assertIn("is missing", self.verify().stderr)
        self.assertIn("is missing", " ".join(self.doctor()["error"]))
        # Another database on this host: its first decision must not make a key either.
        other = self.tmp / "other.db"
        self.assertEqual(self.run_cli("db", "upgrade", "--db", str(other)).returncode, 0)
        with QueueStore(other) as store:
            proposal = store.submit("web-9", TOOL_EGRESS_BLOCK, "routes: [o]\n", "why")
        digest = json.loads(self.run_cli("proposals", "show", proposal.id, "--json", "--db", str(other)).stdout)
        result = self.run_cli("proposals", "approve", proposal.short_id, "--digest", digest["digest"], "--db",
                              str(other))
        self.assert_clean_error(result, 1, "is missing")
        shutil.copy2(copy, key_path())
        self.assert_approved()
        self.assertEqual(self.verify().returncode, 0, self.verify().stderr)

    def test_lost_for_good_then_a_new_key(self) -> None:
        self.assert_approved()
        self.assert_approved()
        old = self.tmp / "old-key"
        shutil.copy2(key_path(), old)
        old_id = key_id(bytes.fromhex(old.read_text().strip()))
        key_path().unlink()
        self.assert_clean_error(self.run_cli("audit", "new-key"), 2, "--yes")
        made = self.run_cli("audit", "new-key", "--yes")
        self.assertEqual(made.returncode, 0, made.stderr)
        self.assertIn("entries 1-2 keep the proof of the earlier key", made.stdout)
        anchor = read_anchor(self.db)
        assert anchor is not None
        self.assertEqual([(r.seq, r.previous_key) for r in anchor.restarts], [(2, old_id)])
        self.assertNotEqual(anchor.key, old_id)
        self.assertEqual(oct(key_path().stat().st_mode & 0o777), "0o600")
        self.assert_approved()
        self.assert_approved()
        verified = self.verify()
        self.assertEqual(verified.returncode, 0, verified.stderr)
        self.assertIn("4 entries", verified.stdout)
        shown = self.run_cli("proposals", "list", "--all", "--json")
        first = json.loads(shown.stdout)[0]["id"]
        self.assertIn("sealed with an earlier audit key", self.run_cli("proposals", "show", first).stdout)
        # A second new-key while the new key is in place: refused, nothing changed.
        self.assert_clean_error(self.run_cli("audit", "new-key", "--yes"), 1, "is the one that sealed this log")
        # The old key found again later is not silently used: it is not the key the log now names.
        shutil.copy2(old, key_path())
        self.assert_refused("is not the key that sealed this audit log")

    def test_a_rewrite_before_the_new_key_is_still_caught(self) -> None:
        """Entries up to where the new key takes over are held by their chain: a change there fails verify."""
        self.assert_approved()
        self.assert_approved()
        key_path().unlink()
        self.assertEqual(self.run_cli("audit", "new-key", "--yes").returncode, 0)
        self.assert_approved()
        raw = sqlite3.connect(self.db, isolation_level=None)
        raw.execute("DROP TRIGGER audit_log_no_update")
        raw.execute("UPDATE audit_log SET actor = 'mallory' WHERE seq = 1")
        raw.close()
        self.assert_clean_error(self.verify(), 1, "entry 1")


class ReplacedKeyTest(KeyProcessCase):
    def test_replaced_then_restored_or_taken_on(self) -> None:
        self.assert_approved()
        original = key_path().read_text()
        key_path().write_text(os.urandom(32).hex() + "\n")
        self.assert_refused("is not the key that sealed this audit log", "Put the right key back",
                            "'bot-bottle audit new-key --yes'")
        self.assertIn("not the key that sealed", self.verify().stderr)
        self.assertIn("not the key that sealed", " ".join(self.doctor()["error"]))
        key_path().write_text(original)
        self.assert_approved()
        self.assertEqual(self.verify().returncode, 0)
        # Replaced again, and this time the operator keeps the new one on purpose.
        replacement = os.urandom(32)
        key_path().write_text(replacement.hex() + "\n")
        self.assert_refused("is not the key that sealed")
        taken = self.run_cli("audit", "new-key", "--yes")
        self.assertEqual(taken.returncode, 0, taken.stderr)
        self.assertIn(f"the audit key now in {key_path()} (key {key_id(replacement)})", taken.stdout)
        self.assert_approved()
        self.assertEqual(self.verify().returncode, 0, self.verify().stderr)

    def test_an_anchor_from_before_keys_were_named(self) -> None:
        """An anchor an earlier version wrote names no key: its entry's seal tells a replaced key apart."""
        self.assert_approved()
        anchor = read_anchor(self.db)
        assert anchor is not None
        legacy = {"database": anchor.database, "seq": anchor.seq, "seal": anchor.seal,
                  "written_at": anchor.written_at}
        anchor_path(self.db).write_text(json.dumps(legacy) + "\n")
        original = key_path().read_text()
        key_path().write_text(os.urandom(32).hex() + "\n")
        self.assert_refused("is not the key that sealed this audit log (key unnamed)")
        key_path().write_text(original)
        self.assert_approved()
        renewed = read_anchor(self.db)
        self.assertEqual(renewed.key if renewed else None, key_id(bytes.fromhex(original.strip())))

    def test_a_damaged_key(self) -> None:
        self.assert_approved()
        key_path().write_text("not a key\n")
        self.assert_refused("is damaged")
        self.assertEqual(self.run_cli("audit", "new-key", "--yes").returncode, 0)
        self.assertEqual(len(list(key_path().parent.glob("audit.key.damaged-*"))), 1, "kept for whoever looks")
        self.assert_approved()


class KeyModeTest(KeyProcessCase):
    def test_world_readable_or_not_yours(self) -> None:
        self.assert_approved()
        self.assertEqual(set(self.doctor()), {"ok"})
        key_path().chmod(0o644)
        warnings = self.doctor()["warning"]
        self.assertIn("has mode 644, wanted 600: other users can read it", warnings[0])
        result = self.run_cli("doctor")
        self.assertEqual(result.returncode, 0, "a warning, not an error")
        self.assertRegex(result.stdout, r"warning +audit key +.*mode 644")
        key_path().chmod(0o600)
        key_path().parent.chmod(0o777)
        self.assertIn("is writable by others or not yours", self.doctor()["warning"][0])
        key_path().parent.chmod(0o700)
        if os.geteuid() == 0:  # only root can give a file away
            os.chown(key_path(), 4321, -1)
            self.assertIn("is owned by uid 4321, not you", self.doctor()["warning"][0])


class LeftoversTest(KeyProcessCase):
    """kill -9 while the key or an anchor is written: what it leaves is removed, never used."""

    def killed_while(self, code: str, leftover: str) -> Path:
        """Run ``code`` in a child that stalls at the step ``code`` patches, kill -9 it there; the file left."""
        script = textwrap.dedent(code)
        child = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, env={**os.environ, "HOME": str(self.home)},
                                 stdout=subprocess.PIPE, text=True)
        assert child.stdout is not None
        self.assertEqual(child.stdout.readline().strip(), "stalled")
        path = Path(leftover.format(pid=child.pid))
        self.assertTrue(path.exists(), path)
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        child.stdout.close()
        return path

    def test_the_key_and_an_anchor(self) -> None:
        stall = "import os, sys, time\ndef stall(*a, **k):\n    print('stalled', flush=True); time.sleep(60)\n"
        # After the key's link is made, before the temporary name is removed: a second name for the key.
        key_left = self.killed_while(stall + """
            import pathlib
            from bot_bottle.audit import seal
            pathlib.Path.unlink = stall
            seal.create_key()
        """.replace("\n            ", "\n"), str(key_path().parent / ".audit.key.{pid}.new"))
        self.assertTrue(key_path().exists())
        self.assertEqual(key_left.read_text(), key_path().read_text())
        # A first decision on a new database, killed between the anchor's write and its rename.
        proposal = self.store.submit("web-1", TOOL_EGRESS_BLOCK, "routes: [k]\n", "why")
        anchor = anchor_path(self.db)
        anchor_left = self.killed_while(stall + f"""
            os.replace = stall
            from bot_bottle.decisions import decide
            decide({proposal.id!r}, "approved")
        """.replace("\n            ", "\n"), str(anchor.parent / f".{anchor.name}.{{pid}}.new"))
        self.assertFalse(anchor.exists())
        self.assertIsNotNone(self.store.response(proposal.id), "the decision committed before the anchor")
        self.assert_approved()
        self.assertFalse(key_left.exists(), "the key's leftover name is removed on the next read")
        self.assertFalse(anchor_left.exists(), "the anchor's leftover is removed when the anchor is written")
        self.assertTrue(anchor.exists())
        self.assertEqual(self.verify().returncode, 0, self.verify().stderr)


class AnchorNotWrittenTest(KeyProcessCase):
    def test_a_full_disk_after_the_decision_committed(self) -> None:
        """The anchors' directory full: two approvals in one commit stand and say so (exit 0, one warning)."""
        self.assert_approved()  # the key and the database exist; the next anchor write fails
        proposal, other = (self.store.submit(f"web-{name}", TOOL_EGRESS_BLOCK, f"routes: [{name}]\n", "why")
                           for name in ("full", "disk"))
        digest, other_digest = (json.loads(self.run_cli("proposals", "show", each.id, "--json").stdout)["digest"]
                                for each in (proposal, other))
        anchors = anchor_path(self.db).parent
        saved = self.tmp / "anchors-saved"
        shutil.copytree(anchors, saved)
        script = f"""
            mount -t tmpfs -o size=64k tmpfs "$ANCHORS" || exit 90
            cp -a "$SAVED"/. "$ANCHORS"/
            dd if=/dev/zero of="$ANCHORS/filler" bs=4k 2>/dev/null
            cd "$REPO" && HOME="$HOME_DIR" "$PY" -m bot_bottle proposals approve {proposal.short_id} {other.short_id} \
                --digest {digest} --digest {other_digest}
            echo "exit=$?"
        """
        result = in_mount_namespace(self, script, {"ANCHORS": str(anchors), "SAVED": str(saved), "REPO": str(REPO),
                                                   "HOME_DIR": str(self.home)})
        self.assertIn("exit=0", result.stdout, result.stderr)
        self.assertIn(f"approved {proposal.short_id}", result.stdout)
        self.assertIn(f"approved {other.short_id}", result.stdout)
        warning = [line for line in result.stderr.splitlines() if line.strip()]
        self.assertEqual(len(warning), 1, result.stderr)
        self.assertIn("bot-bottle: warning: audit entries 2-3 are recorded and stand, but the audit anchor could not "
                      "be moved to the last (No space left on device)", warning[0])
        self.assertIsNotNone(self.store.response(proposal.id))
        self.assertIsNotNone(self.store.response(other.id))
        verified = self.verify()  # the anchor (outside the namespace) is two entries behind: it accuses nothing
        self.assertEqual(verified.returncode, 0, verified.stderr)
        self.assert_approved()  # and the next decision moves it
        anchor = read_anchor(self.db)
        self.assertEqual(anchor.seq if anchor else None, 4)
