"""The bottles table: migration 0006, what records a bottle's life, and the one query that joins proposals."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import subprocess
from datetime import UTC, datetime, timedelta

from bot_bottle.backends import Supervise, backend
from bot_bottle.bottles import STALE_AFTER_SEC, BottleStore
from bot_bottle.connection import connect
from bot_bottle.db import host_db_path
from bot_bottle.decisions import decide
from bot_bottle.errors import NotFound, ValidationError
from bot_bottle.queue_store import QueueStore
from bot_bottle.schema import migrate
from bot_bottle.sidecar.launcher import spawn
from tests.helpers.relay_fixture import free_port
from tests.helpers.support import TempDirTest, wait_until

BOTTLES_VERSION = 6


class MigrationTest(TempDirTest):
    def test_existing_queue_keys_get_rows_and_down_forgets_them(self) -> None:
        """Upgrading a version-5 database gives each queue key a bottle; the down step drops only the table."""
        path = self.tmp / "old.db"
        conn = connect(path)
        self.addCleanup(conn.close)
        migrate.upgrade(conn, BOTTLES_VERSION - 1)
        for key, when in (("web-1", "2026-01-02T00:00:00.000000Z"), ("web-1", "2026-01-01T00:00:00.000000Z"),
                          ("api", "2026-03-01T00:00:00.000000Z")):
            conn.execute(
                "INSERT INTO proposals (id, queue_key, tool, payload, payload_sha256, justification, created_at) "
                "VALUES (lower(hex(randomblob(16))), ?, 'egress-allow', ?, ?, 'why', ?)",
                (key, when, hashlib.sha256(when.encode()).hexdigest(), when))
        migrate.upgrade(conn)
        rows = conn.execute("SELECT slug, state, prepared_at, backend, transport FROM bottles ORDER BY slug").fetchall()
        self.assertEqual(rows, [("api", "prepared", "2026-03-01T00:00:00.000000Z", None, "mount"),
                                ("web-1", "prepared", "2026-01-01T00:00:00.000000Z", None, "mount")])
        migrate.downgrade(conn, BOTTLES_VERSION - 1, backup=False)
        self.assertIsNone(conn.execute("SELECT name FROM sqlite_master WHERE name = 'bottles'").fetchone())
        self.assertEqual(conn.execute("SELECT count(*) FROM proposals").fetchone()[0], 3)
        migrate.upgrade(conn)
        self.assertEqual(conn.execute("SELECT count(*) FROM bottles").fetchone()[0], 2)
        self.assertEqual(migrate.live_schema_drift(conn), [])

    def test_the_schema_refuses_bad_rows(self) -> None:
        """Slugs, transports and states outside the rules are refused by the table itself."""
        with QueueStore(self.tmp / "q.db") as store, store.db.write() as conn:
            for row in (("../x", "mount", "running"), ("ok", "nfs", "running"), ("ok", "mount", "dead")):
                with self.assertRaises(sqlite3.IntegrityError, msg=row):
                    conn.execute("INSERT INTO bottles (slug, transport, state, prepared_at) VALUES (?, ?, ?, 'x')",
                                 row)


class BottleLifeTest(TempDirTest):
    def setUp(self) -> None:
        super().setUp()
        self.path = self.tmp / "b.db"
        self.queue = QueueStore(self.path)
        self.addCleanup(self.queue.close)
        self.bottles = BottleStore(database=self.queue.db)

    def test_prepare_records_the_bottle_with_its_backend_and_transport(self) -> None:
        """Supervise.prepare and a backend's prepare record the bottle in the host database."""
        Supervise.prepare("web-1")
        backend("docker").prepare("box-1", "mount")
        # smolmachines on macOS: its Docker Desktop sidecar files through the relay (started here on loopback).
        Supervise.prepare("vm-1", backend=backend("smolmachines"), platform="darwin", relay_port=free_port())
        self.addCleanup(lambda: self.run_cli("relay", "stop"))
        with BottleStore(host_db_path()) as host:
            web, box, vm = host.get("web-1"), host.get("box-1"), host.get("vm-1")
        self.assertEqual((web.state, web.backend, web.transport), ("prepared", None, "mount"))
        self.assertEqual((box.state, box.backend, box.transport), ("prepared", "docker", "mount"))
        self.assertEqual((vm.state, vm.backend, vm.transport), ("prepared", "smolmachines", "relay"))
        with self.assertRaises(ValidationError):
            Supervise.prepare("web-2", backend=backend("docker"), transport="carrier-pigeon")
        with BottleStore(host_db_path()) as host, self.assertRaises(NotFound):
            host.get("web-2")

    def test_heartbeat_runs_and_stale_flags_a_silent_sidecar(self) -> None:
        """A heartbeat makes the bottle running; not seen for STALE_AFTER_SEC it is stale; stopped is not stale."""
        self.bottles.prepared("web-1", "docker")
        self.queue.for_bottle("web-1").heartbeat()
        bottle = self.bottles.get("web-1")
        self.assertEqual(bottle.state, "running")
        self.assertIsNotNone(bottle.started_at)
        self.assertFalse(bottle.stale())
        later = datetime.now(UTC) + timedelta(seconds=STALE_AFTER_SEC + 1)
        self.assertTrue(bottle.stale(later))
        self.assertEqual(bottle.shown_state(later), "stale")
        started = bottle.started_at
        self.queue.for_bottle("web-1").heartbeat()
        self.assertEqual(self.bottles.get("web-1").started_at, started)  # still the same run
        stopped = self.bottles.stopped("web-1")
        self.assertEqual(stopped.state, "stopped")
        self.assertFalse(stopped.stale(later))
        self.queue.for_bottle("web-1").heartbeat()  # started again: a new run
        self.assertIsNone(self.bottles.get("web-1").stopped_at)

    def test_a_proposal_always_has_its_bottle(self) -> None:
        """Filing for an unknown slug creates its row; a bottle with proposals cannot be deleted."""
        self.queue.submit("fresh", "egress-allow", '{"host": "a.example"}', "why")
        self.assertEqual(self.bottles.get("fresh").state, "prepared")
        with self.queue.db.write() as conn, self.assertRaisesRegex(sqlite3.IntegrityError, "never deleted"):
            conn.execute("DELETE FROM bottles WHERE slug = 'fresh'")
        self.assertEqual(self.bottles.get("fresh").slug, "fresh")

    def test_overview_is_one_query_of_bottles_and_their_pending_work(self) -> None:
        """Bottles with pending work first (oldest waiting on top), decided proposals left out, one SELECT."""
        self.bottles.prepared("idle", "docker")
        first = self.queue.submit("web-1", "egress-allow", '{"host": "a.example"}', "first")
        self.queue.submit("api", "egress-allow", '{"host": "b.example"}', "second")
        third = self.queue.submit("web-1", "egress-allow", '{"host": "c.example"}', "third")
        decided = self.queue.submit("api", "egress-allow", '{"host": "d.example"}', "decided")
        decide(decided.id, "approved", store=self.queue)
        statements: list[str] = []
        with self.queue.db.read() as conn:
            conn.set_trace_callback(statements.append)
        try:
            overview = self.bottles.overview()
        finally:
            with self.queue.db.read() as conn:
                conn.set_trace_callback(None)
        self.assertEqual(len(statements), 1, statements)
        self.assertEqual([o.bottle.slug for o in overview], ["web-1", "api", "idle"])
        self.assertEqual([p.id for p in overview[0].pending], [first.id, third.id])
        self.assertEqual(overview[0].oldest_pending, first.created_at)
        self.assertEqual([p.justification for p in overview[1].pending], ["second"])
        self.assertEqual(overview[2].pending, ())
        self.assertEqual([o.bottle.slug for o in self.bottles.overview("api")], ["api"])


class SidecarHeartbeatTest(TempDirTest):
    def test_the_sidecar_process_keeps_its_bottle_alive_and_stops_it(self) -> None:
        """A real supervise server marks its bottle running, refreshes last_seen, and records its stop."""
        path = self.tmp / "s.db"
        QueueStore(path).close()
        server, _ = spawn("web-1", path, "--heartbeat-seconds", "0.2", stderr=subprocess.PIPE)
        self.addCleanup(lambda: server.poll() is None and server.kill())
        with BottleStore(path) as store:
            first = wait_until(lambda: store.overview("web-1"), what="the first heartbeat")[0].bottle
            self.assertEqual(first.state, "running")
            wait_until(lambda: store.get("web-1").last_seen != first.last_seen, what="a later heartbeat")
            server.terminate()
            _, errors = server.communicate(timeout=10)
            self.assertEqual(server.returncode, 0, errors)
            stopped = store.get("web-1")
        self.assertEqual(stopped.state, "stopped")
        self.assertIsNotNone(stopped.stopped_at)


class BottlesCliTest(TempDirTest):
    def setUp(self) -> None:
        super().setUp()
        self.path = self.tmp / "cli.db"
        with QueueStore(self.path) as store:
            BottleStore(database=store.db).prepared("idle", "docker")
            self.first = store.submit("web-1", "egress-allow", '{"host": "a.example"}', "first\x1b[2J")
            store.for_bottle("web-1").heartbeat()

    def test_list_and_show(self) -> None:
        """list: state, pending count and oldest age, busy bottles first; show: the life and the pending list."""
        listed = self.run_cli("bottles", "list", "--db", str(self.path))
        self.assertEqual(listed.returncode, 0, listed.stderr)
        rows = listed.stdout.splitlines()
        self.assertEqual(rows[0].split(), ["BOTTLE", "STATE", "BACKEND", "TRANSPORT", "PENDING", "OLDEST", "LAST",
                                           "SEEN"])
        self.assertEqual(rows[1].split()[:5], ["web-1", "running", "-", "mount", "1"])
        self.assertEqual(rows[2].split()[:5], ["idle", "prepared", "docker", "mount", "0"])
        as_json = json.loads(self.run_cli("bottles", "list", "--json", "--db", str(self.path)).stdout)
        self.assertEqual([b["slug"] for b in as_json], ["web-1", "idle"])
        self.assertEqual((as_json[0]["pending"], as_json[0]["stale"]), (1, False))
        self.assertEqual(as_json[0]["pending_proposals"][0]["justification"], "first\x1b[2J")
        shown = self.run_cli("bottles", "show", "web-1", "--db", str(self.path))
        self.assertEqual(shown.returncode, 0, shown.stderr)
        self.assertIn(self.first.short_id, shown.stdout)
        self.assertIn("first\\x1b[2J", shown.stdout)
        self.assertNotIn("\x1b", shown.stdout)
        self.assert_clean_error(self.run_cli("bottles", "show", "nope", "--db", str(self.path)), 1, "no bottle nope")
        self.assert_clean_error(self.run_cli("bottles", "show", "../x", "--db", str(self.path)), 2)

    def test_rows_a_sidecar_wrote_are_shown_escaped_and_stale(self) -> None:
        """A last_seen that is no time (a sidecar wrote it) shows escaped, and the bottle as stale, never a crash."""
        with QueueStore(self.path) as store, store.db.write() as conn:
            conn.execute("UPDATE bottles SET last_seen = '\x1b]0;owned\x07' WHERE slug = 'web-1'")
        listed = self.run_cli("bottles", "list", "--db", str(self.path))
        self.assertEqual(listed.returncode, 0, listed.stderr)
        self.assertIn("stale", listed.stdout.splitlines()[1])
        shown = self.run_cli("bottles", "show", "web-1", "--db", str(self.path))
        self.assertEqual(shown.returncode, 0, shown.stderr)
        self.assertIn("\\x1b]0;owned\\x07", shown.stdout)
        self.assertNotIn("\x1b", shown.stdout)
