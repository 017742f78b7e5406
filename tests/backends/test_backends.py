"""Launch backends: the sidecar gets the database directory, the agent never does."""

from __future__ import annotations

import os
import stat

from bot_bottle.backends import BACKENDS, Supervise, backend
from bot_bottle.db import host_db_dir, host_db_path, open_db
from bot_bottle.errors import ValidationError
from bot_bottle.schema import migrate
from tests.helpers.support import TempDirTest


class PrepareTest(TempDirTest):
    def test_prepare_on_a_fresh_home(self) -> None:
        """prepare() creates and migrates the host database and plans the directory mount."""
        plan = Supervise.prepare("web-1")
        self.assertEqual(plan.mount.source, self.home / ".bot-bottle" / "db")
        self.assertEqual(plan.mount.target, "/run/supervise")
        self.assertFalse(plan.mount.read_only)
        self.assertTrue(plan.mount.source.is_dir())
        self.assertEqual(stat.S_IMODE(host_db_dir().stat().st_mode), 0o700)
        self.assertEqual(stat.S_IMODE(host_db_path().stat().st_mode), 0o600)
        conn = open_db()
        self.addCleanup(conn.close)
        self.assertEqual(migrate.current_version(conn), len(migrate.discover()))
        self.assertEqual(plan.entrypoint_args, ("--bottle", "web-1"), "only what follows the image's ENTRYPOINT")
        self.assertEqual(plan.mcp_url, "http://supervise:9100/")
        self.assertEqual((plan.uid, plan.gid), (os.getuid(), os.getgid()))

    def test_prepare_tightens_loose_modes(self) -> None:
        """A directory or file left readable by others is brought back to 0700 / 0600."""
        open_db().close()
        host_db_dir().chmod(0o755)
        host_db_path().chmod(0o644)
        Supervise.prepare("web-1")
        self.assertEqual(stat.S_IMODE(host_db_dir().stat().st_mode), 0o700)
        self.assertEqual(stat.S_IMODE(host_db_path().stat().st_mode), 0o600)

    def test_prepare_refuses_a_bad_slug(self) -> None:
        """A path-like slug is refused before anything is created."""
        with self.assertRaises(ValidationError):
            Supervise.prepare("../other")
        self.assertFalse((self.home / ".bot-bottle").exists())


class ArgvTest(TempDirTest):
    def setUp(self) -> None:
        super().setUp()
        self.plan = Supervise.prepare("web-1")
        self.source = str(self.home / ".bot-bottle" / "db")

    def test_docker_and_smolmachines(self) -> None:
        """Docker form for the sidecar (smolmachines' sidecar bundle runs in Docker too)."""
        for name in ("docker", "smolmachines"):
            with self.subTest(backend=name):
                args = backend(name).sidecar_args(self.plan)
                self.assertEqual(args[:2], ["--mount", f"type=bind,source={self.source},target=/run/supervise"])
                self.assertEqual(args[2:], ["--user", f"{os.getuid()}:{os.getgid()}"])

    def test_macos_container(self) -> None:
        """Apple container mounts the directory (it refuses single files) as a volume."""
        args = backend("macos-container").sidecar_args(self.plan)
        self.assertEqual(args, ["--volume", f"{self.source}:/run/supervise", "--user", f"{os.getuid()}:{os.getgid()}"])

    def test_agent_never_gets_the_mount(self) -> None:
        """No backend gives the agent the database directory; each gives it the MCP URL."""
        for name, each in BACKENDS.items():
            with self.subTest(backend=name):
                args = each.agent_args(self.plan)
                joined = " ".join(args)
                self.assertNotIn(self.source, joined)
                self.assertNotIn("/run/supervise", joined)
                self.assertNotIn("--mount", args)
                self.assertNotIn("--volume", args)
                self.assertIn("http://supervise:9100/", joined)

    def test_mount_is_the_directory_never_the_file(self) -> None:
        """The mount's source is the database's directory, never the database file."""
        for each in BACKENDS.values():
            joined = " ".join(each.sidecar_args(self.plan))
            self.assertNotIn("bot-bottle.db", joined)
        self.assertTrue(self.plan.mount.source.is_dir())

    def test_every_backend_says_how_safe_it_is(self) -> None:
        """Each backend documents its mount's safety; an unknown name is refused."""
        self.assertEqual(set(BACKENDS), {"docker", "smolmachines", "macos-container"})
        for each in BACKENDS.values():
            self.assertTrue(each.mount_safety)
        with self.assertRaises(ValidationError):
            backend("podman")
