"""A bottle named ``all-bottles`` shares the audit log's name for every bottle's rules and settings.

The audit log names one bottle per entry and records a rule or setting for
every bottle under ``records.ALL_BOTTLES``. A bottle of that slug could be
prepared, file, and be given a standing rule "for this bottle" whose
``rule-added`` entry read, in ``audit list --bottle all-bottles`` and the
screens, as a rule for every bottle. The slug is now refused wherever a
bottle is made or files (prepare, the relay's credential, the sidecar
server and git-gate, ``submit``, a rule for one bottle); a row a sidecar on
the mount writes under it is still shown, and approved for that slug alone.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from bot_bottle.errors import ValidationError
from bot_bottle.grants import GrantStore
from bot_bottle.queue_store import QueueStore
from bot_bottle.records import ALL_BOTTLES, TOOL_EGRESS_ALLOW
from bot_bottle.timestamps import utc_now
from tests.helpers.support import REPO, TempDirTest, file_as_a_sidecar

RESERVED = "'all-bottles' is reserved"


class ReservedSlugTest(TempDirTest):
    def setUp(self) -> None:
        super().setUp()
        self.db = self.tmp / "reserved.db"
        self.store = QueueStore(self.db)
        self.addCleanup(self.store.close)

    def cli(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return self.run_cli(*argv, "--db", str(self.db))

    def test_no_bottle_is_made_or_files_under_the_reserved_slug(self) -> None:
        """BROKE before the fix: each of these took 'all-bottles' as a bottle's slug."""
        with self.assertRaisesRegex(ValidationError, RESERVED):
            self.store.submit(ALL_BOTTLES, TOOL_EGRESS_ALLOW, '{"host": "pypi.org"}', "pip")
        with self.assertRaisesRegex(ValidationError, RESERVED):
            self.store.for_bottle(ALL_BOTTLES)
        with GrantStore(self.db) as grants, self.assertRaisesRegex(ValidationError, RESERVED):
            grants.add_rule(queue_key=ALL_BOTTLES, tool=TOOL_EGRESS_ALLOW, subject={"host": "pypi.org"},
                            pattern=False, effect="approve", notes="", ends_at=None, created_by="op")
        for argv in (["rules", "add", "--bottle", ALL_BOTTLES, "--host", "pypi.org", "--for", "1d", "--db",
                      str(self.db)],
                     ["prepare", ALL_BOTTLES, "--backend", "docker"]):  # (the host database: no --db)
            with self.subTest(argv=argv):
                done = self.run_cli(*argv)
                self.assertEqual(done.returncode, 2, done)
                self.assertIn(RESERVED, done.stderr)
                self.assertEqual(len(done.stderr.strip().splitlines()), 1, done.stderr)
        for command in (["bot_bottle.supervise_server"], ["bot_bottle.git_gate", "pre-receive"]):
            with self.subTest(command=command):
                done = subprocess.run([sys.executable, "-m", *command, "--bottle", ALL_BOTTLES], cwd=REPO,
                                      capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
                                      env={**os.environ, "HOME": str(self.home)})
                self.assertNotEqual(done.returncode, 0, done)
                self.assertIn(RESERVED, done.stderr)
        self.assertEqual(json.loads(self.cli("rules", "list", "--json").stdout), [])
        self.assertEqual(json.loads(self.cli("bottles", "list", "--json").stdout), [])

    def test_a_row_written_under_it_is_never_remembered_for_every_bottle(self) -> None:
        """A sidecar on the mount writes past ``submit``: its proposal is listed as the slug it gave, a
        remembered approval of it is refused whole (no grant, no rule), and a plain one grants that slug alone."""
        forged = file_as_a_sidecar(self.db, ALL_BOTTLES, TOOL_EGRESS_ALLOW, '{"host": "docs.python.org"}', "docs",
                                   created_at=utc_now())
        self.assertIn(forged.short_id, self.cli("proposals", "list").stdout)
        digest = json.loads(self.cli("proposals", "show", forged.id, "--json").stdout)["digest"]
        done = self.cli("proposals", "approve", forged.id, "--digest", digest, "--remember", "bottle")
        self.assertEqual(done.returncode, 2, done)
        self.assertIn(RESERVED, done.stderr)
        self.assertEqual(json.loads(self.cli("proposals", "show", forged.id, "--json").stdout)["status"], "pending")
        self.assertEqual(json.loads(self.cli("grants", "list", "--json").stdout), [])
        self.assertEqual(json.loads(self.cli("rules", "list", "--json").stdout), [])
        done = self.cli("proposals", "approve", forged.id, "--digest", digest)
        self.assertEqual(done.returncode, 0, done)
        (grant,) = json.loads(self.cli("grants", "list", "--json").stdout)
        self.assertEqual(grant["queue_key"], ALL_BOTTLES)
        self.assertEqual(json.loads(self.cli("rules", "list", "--json").stdout), [])
