"""Hostile review 66 of the host's table rebuild (``schema.table_rebuild``): what a sidecar can make of it.

Each test is what a sidecar does with its own connection to the host's file, then what the host's processes do
with theirs (the command line, or a store that stays open, as the dashboard, the relay and the TUI do).
"""

from __future__ import annotations

from typing import Any
from unittest import mock

from bot_bottle.records import EFFECT_APPROVE, TOOL_EGRESS_ALLOW
from bot_bottle.timestamps import later, utc_now
from tests.attacks.test_rebuilt_tables import RebuiltTablesCase


class TableRebuildEdgesTest(RebuiltTablesCase):

    def add_pattern(self, host: str, kinds: Any) -> str:
        """An approving pattern rule for every bottle, confirmed for ``kinds``; its id."""
        now = utc_now()
        with mock.patch("bot_bottle.grants.subject_kinds", return_value=kinds):
            return self.grants.add_rule(queue_key=None, tool=TOOL_EGRESS_ALLOW, pattern=True, effect=EFFECT_APPROVE,
                                        subject={"host": host, "methods": [], "paths": []}, notes="staging hosts",
                                        ends_at=later(now, 86400), created_by="ann", now=now).id

    def test_a_version_set_back_does_not_have_a_process_that_stays_open_rebuild_away_a_later_migrations_column(
            self) -> None:
        """BROKE before: 'PRAGMA user_version = 8' and any change to the schema (a table of its own), and the next
        write of a process that stays open (dashboard, relay, TUI) held the file to migration 8's schema, where
        the rules table has no 'confirmed' column: the guard rebuilt the rules table as migration 8 made it,
        copying every column but that one, and what each standing rule was confirmed for was gone from the file
        (every later read of the rules failing: "no such column: confirmed"). A column another version of the
        migrations gives the table is not the sidecar's to have dropped: the table is left, and said."""
        rule = self.add_pattern("*.staging", ["internal"])
        rows = self.query("SELECT * FROM rules ORDER BY rowid")
        said: list[str] = []
        self.store.db.say_schema_changes_with(said.append)
        self.sidecar("PRAGMA user_version = 8", "CREATE TABLE junk (x)")
        self.store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "a.example"}', "for the build")
        self.assertEqual(self.query("SELECT * FROM rules ORDER BY rowid"), rows)
        self.assertEqual(self.query(f"SELECT confirmed FROM rules WHERE id = '{rule}'"), [('["internal"]',)])
        self.assertTrue(any(line.startswith("left as it is") and '"rules"' in line and "confirmed" in line
                            for line in said), said)
        self.sidecar("PRAGMA user_version = 10", "DROP TABLE junk")  # and the next write makes the rest again
        self.store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "b.example"}', "for the build")
        self.assertEqual(self.query(f"SELECT confirmed FROM rules WHERE id = '{rule}'"), [('["internal"]',)])
        self.assert_sound()
