"""Attack: a symbolic link in place of the database, to an older copy of it, revives a revoked grant.

A sidecar on the mount can write the database's directory. It keeps a copy
of the database (``VACUUM INTO``) while a grant is in force; the operator
revokes the grant; the sidecar puts a link named ``bot-bottle.db`` to its
copy in place of the file. SQLite follows a link in place of the database,
and the anchor was kept per real path, so the host read the old copy under
another anchor (none): ``audit verify`` called the log whole and ``grants
list`` showed the revoked grant live again (the relay would have let its
requests through). A plain rename of the copy is caught by the anchor;
the link must be too. The host now opens no database through a link, and
the anchor follows the database's directory, never a link in it.
"""

from __future__ import annotations

import os

from bot_bottle.audit import anchor as anchor_module
from bot_bottle.audit.anchor import anchor_path
from bot_bottle.errors import DatabaseReplaced
from bot_bottle.paths import host_db_path
from bot_bottle.queue_store import QueueStore
from tests.helpers.kept_copy import grant_copied_then_revoked
from tests.helpers.support import TempDirTest


class LinkInPlaceOfTheDatabaseTest(TempDirTest):
    def approve_and_keep_a_copy(self) -> str:
        """A grant approved by the operator, a copy of the database the sidecar keeps, then the grant revoked."""
        return grant_copied_then_revoked(self)[0]

    def test_a_link_to_an_older_copy_is_refused(self) -> None:
        self.approve_and_keep_a_copy()
        db = host_db_path()
        os.symlink("kept.db", db.parent / "link")
        os.rename(db.parent / "link", db)
        listed = self.run_cli("grants", "list")
        self.assert_clean_error(listed, 1, f"{db} is a symbolic link")
        self.assertNotIn("a.example", listed.stdout, "the revoked grant was shown live again")
        verified = self.run_cli("audit", "verify")
        self.assertNotEqual(verified.returncode, 0, f"the old copy's log was called whole: {verified.stdout}")
        self.assertIn(f"{db} is a symbolic link", verified.stderr)

    def test_a_link_to_the_same_file_moves_neither_the_anchor_nor_a_running_process(self) -> None:
        """A link in place of the database to a hard link of that very file: a running process takes it as
        another file (it would be read as the old file's name elsewhere), and the anchor stays where it was."""
        self.approve_and_keep_a_copy()
        db = host_db_path()
        anchor = anchor_path(db)
        with QueueStore(None) as running:
            os.link(db, db.parent / "same.db")
            os.symlink("same.db", db.parent / "link")
            os.rename(db.parent / "link", db)
            anchor_module._real_path.cache_clear()  # as a process started now finds it
            anchor_module._anchor_in.cache_clear()
            self.assertEqual(anchor_path(db), anchor, "the link moved the anchor to another file")
            with self.assertRaises(DatabaseReplaced):
                running.pending()
