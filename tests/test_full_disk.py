"""The database on a full disk: every write either commits whole or fails with one clear line, and changes nothing.

Each test mounts a small tmpfs in a private mount namespace (``unshare``, as
root or mapped to root; skipped without one, failed under CI) and runs
``tests.helpers.full_disk`` there, which fills it with a file and runs
bot-bottle's commands and stores against a database on it.

Before these tests: a full disk during a new database's migrations said
"nothing was committed" though the migrations before the one that failed had
committed (the file was left at version 2 of 10, say), and one that ran out
of room as SQLite grew the ``-shm`` file said only "I/O error (disk I/O
error)", not that the disk was full.
"""

from __future__ import annotations

import json
from typing import Any

from tests.helpers.support import TempDirTest, in_mount_namespace

STEP = 24 * 1024  # bytes of room added between two new databases' upgrades
MOST = 480 * 1024  # past what a new database's ten migrations need on this tmpfs (about 380 KiB)


class FullDiskTest(TempDirTest):
    def run_full(self, *args: str, size: str) -> Any:
        """``tests.helpers.full_disk ARGS`` in a mount namespace, on a tmpfs of ``size`` at this test's ``disk``."""
        disk = self.tmp / "disk"
        disk.mkdir()
        mode, *numbers = args
        script = f"""
            mount -t tmpfs -o size={size} tmpfs "$DISK" || exit 90
            "$PY" -m tests.helpers.full_disk {mode} "$DISK" {' '.join(numbers)}
        """
        result = in_mount_namespace(self, script, {"DISK": str(disk), "HOME": str(self.home)}, timeout=300)
        self.assertEqual(result.returncode, 0, result.stderr[-3000:])
        return json.loads(result.stdout)

    def assert_one_clear_line(self, answer: dict[str, Any], *needles: str) -> str:
        """The command failed (exit 1) with one line on stderr holding each needle, no traceback; that line."""
        self.assertEqual(answer["rc"], 1, answer)
        self.assertNotIn("Traceback", answer["stderr"])
        lines = [line for line in answer["stderr"].splitlines() if line.strip()]
        self.assertEqual(len(lines), 1, answer["stderr"])
        for needle in needles:
            self.assertIn(needle, lines[0])
        return lines[0]

    def test_a_new_database_made_on_a_filling_disk(self) -> None:
        """With too little room, 'db upgrade' says the disk is full and where the file stands; with room, it ends."""
        seen = self.run_full("upgrade", str(STEP), str(MOST), size="1m")
        stopped = [each for each in seen if each["upgrade"]["rc"] != 0]
        partial = [each for each in stopped if each["version"] > 0]
        self.assertTrue(partial, "some amount of room must let the first migrations commit and stop a later one")
        self.assertEqual(seen[-1]["upgrade"]["rc"], 0, "with enough room, the upgrade goes through")
        for each in stopped:
            said = self.assert_one_clear_line(each["upgrade"], "is full", "free some space")
            if each["version"]:
                # BROKE before: "nothing was committed", of a file now at version 2 of 10.
                self.assertIn(f"the database is at version {each['version']}", said)
                self.assertIn(f"that was migration {each['version'] + 1:04d}_", said)
                self.assertIn(f"the {each['version']} this run applied before it", said)
            else:
                self.assertNotIn("applied before it", said)
        for each in seen:
            self.assertEqual(each["again"]["rc"], 0, each["again"])
            self.assertEqual(each["check"]["rc"], 0, each["check"])
            self.assertIn("live_schema: as the migrations made it", each["check"]["stdout"])

    def test_filing_and_deciding_on_a_full_disk(self) -> None:
        """Nothing is filed or decided while the disk is full, each attempt says why, and all works once freed."""
        seen = self.run_full("decide", size="1m")
        full = seen["full"]
        for attempt in full.values():
            self.assertEqual(attempt.get("error"), "DatabaseError", attempt)
            self.assertIn("is full", attempt["message"])
            self.assertIn("nothing was committed", attempt["message"])
        cli = seen["cli on a full disk"]
        self.assert_one_clear_line(cli["approve"], "is full", "nothing was committed")
        for reading in ("list", "check", "verify"):  # reads need no room
            self.assertEqual(cli[reading]["rc"], 0, cli[reading])
        self.assertIn("waiting.example", cli["list"]["stdout"])
        self.assertEqual(seen["during"], seen["before"], "nothing written while the disk was full")
        self.assertTrue(seen["pending"], "the proposal is still waiting for the operator")
        again = seen["room again"]
        self.assertEqual(again["approve"]["rc"], 0, again["approve"])
        self.assertEqual(again["sidecar files"], {"ok": ""})
        after, before = seen["after"], seen["before"]
        self.assertEqual(after["responses"], before["responses"] + 1)
        self.assertEqual(after["proposals"], before["proposals"] + 1)
        self.assertEqual(after["audit_log"], before["audit_log"] + 1)
        self.assertEqual(after["audit_seal"], after["audit_log"])
        self.assertEqual(seen["checked"]["rc"], 0, seen["checked"])
        self.assertEqual(seen["verified"]["rc"], 0, seen["verified"])
        self.assertIn("audit log whole", seen["verified"]["stdout"])

    def test_doctor_says_how_full_the_disk_is(self) -> None:
        """doctor: ok with room, a warning with less than a migration's backup needs, an error (exit 1) when full."""
        seen = self.run_full("doctor", size="96m")
        self.assertEqual(seen["room"]["level"], "ok", seen)
        self.assertIn("MiB free on the disk holding", seen["room"]["detail"])
        self.assertEqual(seen["little"]["level"], "warning", seen)
        self.assertIn("a migration first backs the database up", seen["little"]["detail"])
        self.assertEqual(seen["none"]["level"], "error", seen)
        self.assertIn("is full", seen["none"]["detail"])
        self.assertEqual(seen["none exit"], 1)
