"""A sidecar whose user may not use its mount says so, apart from a mount that is missing (real mounts, real uids)."""

from __future__ import annotations

import os
import shutil
import unittest

from bot_bottle.db import open_db
from tests.helpers.support import TempDirTest, in_ci, in_mount_namespace

SYSTEM_PYTHON = "/usr/bin/python3"  # an interpreter another user can run (pyenv's live under a 0700 home)
OTHER_UID = 1000


class MountAccessTest(TempDirTest):
    """The sidecar's start-up in a private mount namespace, as root and as another uid."""

    def setUp(self) -> None:
        super().setUp()
        setpriv = shutil.which("setpriv")
        if os.geteuid() != 0 or setpriv is None or not os.access(SYSTEM_PYTHON, os.X_OK):
            message = "needs root, setpriv (util-linux) and /usr/bin/python3 to run the sidecar as another uid"
            if in_ci():
                self.fail(message)
            raise unittest.SkipTest(message)
        # A copy of the package that another uid can read (the checkout may sit in a private home).
        self.checkout = self.copy_package()
        for root, _dirs, files in os.walk(self.tmp):
            os.chmod(root, 0o755)
            for name in files:
                os.chmod(os.path.join(root, name), 0o644)

    def run_script(self, script: str, **env: str) -> list[tuple[str, str]]:
        """Run ``script`` with $AS_OTHER and $AS_ROOT starting the sidecar; (label, its error line) per start."""
        server = f"{SYSTEM_PYTHON} -m bot_bottle.supervise_server --bottle web-1 --host 127.0.0.1 --port 0"
        prelude = f"""
            cd "$CHECKOUT"
            export PYTHONPATH="$CHECKOUT" PYTHONDONTWRITEBYTECODE=1
            start() {{ label=$1; shift; "$@" 2>"$ERRS/$label" >/dev/null; echo "$label=$?"; }}
            AS_OTHER="setpriv --reuid {OTHER_UID} --regid {OTHER_UID} --clear-groups {server}"
            AS_IMAGE_USER="setpriv --reuid 10001 --regid 10001 --clear-groups {server}"
            AS_ROOT="{server}"
        """
        errors = self.tmp / "errors"
        errors.mkdir()
        result = in_mount_namespace(self, prelude + script, {"CHECKOUT": str(self.checkout), "ERRS": str(errors),
                                                             **env})
        outcomes = []
        for line in result.stdout.splitlines():
            label, _, status = line.partition("=")
            if status.isdigit():
                lines = (errors / label).read_text().strip().splitlines()
                self.assertEqual(len(lines), 1, f"{label}: {lines}")
                outcomes.append((f"{label}={status}", lines[0]))
        self.assertTrue(outcomes, result.stderr)
        return outcomes

    def test_each_unusable_mount_is_told_apart(self) -> None:
        """The image's own closed directory (nothing mounted), the host's directory of another uid, a directory
        it may not write, a file it may not open, an owner outside the user namespace, a read-only mount: each
        its own line, naming the mode, the owner and the --user that works; nothing is created."""
        host = self.tmp / "host-db"
        open_db(host / "bot-bottle.db").close()
        os.chmod(host, 0o700)
        script = """
            mount -t tmpfs tmpfs /run || exit 90
            mkdir /run/supervise && chown 10001:10001 /run/supervise && chmod 0700 /run/supervise
            start image-dir-other $AS_OTHER
            start image-dir-own $AS_IMAGE_USER
            ls -A /run/supervise | grep -q . && echo "created=1"
            mount --bind "$HOST" /run/supervise || exit 91
            start closed-dir $AS_OTHER
            chmod 0755 /run/supervise
            start dir-not-writable $AS_OTHER
            chown 1000:1000 /run/supervise && chmod 0700 /run/supervise
            start file-of-root $AS_OTHER
            chown 65534:65534 /run/supervise /run/supervise/bot-bottle.db
            start unmapped-owner $AS_OTHER
            chown 0:0 /run/supervise /run/supervise/bot-bottle.db
            mount -o remount,bind,ro /run/supervise || exit 91
            start read-only $AS_ROOT
        """
        outcomes = dict(self.run_script(script, HOST=str(host)))
        self.assertNotIn("created=1", outcomes)
        self.assertIn("nothing is mounted at /run/supervise, and this sidecar (uid 1000 gid 1000) may not look into "
                      "the image's own directory", outcomes["image-dir-other=1"])
        self.assertIn("neither the host's database", outcomes["image-dir-own=1"])
        self.assertIn("/run/supervise is mounted, but this sidecar (uid 1000 gid 1000) may not look into "
                      "/run/supervise (mode 0700, owner uid 0 gid 0): run the sidecar as that "
                      "owner, --user 0:0", outcomes["closed-dir=1"])
        self.assertIn("may not write the database's journal into /run/supervise (mode 0755, owner "
                      "uid 0 gid 0)", outcomes["dir-not-writable=1"])
        self.assertIn("may not read and write /run/supervise/bot-bottle.db (mode 0600, "
                      "owner uid 0 gid 0): run the sidecar as that owner, --user 0:0",
                      outcomes["file-of-root=1"])
        self.assertIn("not mapped into this container's user namespace", outcomes["unmapped-owner=1"])
        self.assertIn("--userns=keep-id", outcomes["unmapped-owner=1"])
        self.assertIn("/run/supervise is mounted read-only", outcomes["read-only=1"])
        for line in outcomes.values():
            self.assertTrue(line.startswith("supervise-server: error: "), line)
        self.assertEqual(oct(os.stat(host).st_mode & 0o777), oct(0o700), "the host's directory is as it was")

    def test_a_relay_file_another_uid_owns(self) -> None:
        """A relay directory mounted read-only whose relay.json only root may read: the same kind of line."""
        folder = self.tmp / "relay-dir"
        folder.mkdir()
        (folder / "relay.json").write_text('{"url": "http://127.0.0.1:9/", "token": "t", "bottle": "web-1"}')
        os.chmod(folder / "relay.json", 0o600)
        script = """
            mount -t tmpfs tmpfs /run || exit 90
            mkdir /run/supervise
            mount --bind -o ro "$FOLDER" /run/supervise || exit 91
            start relay-of-root $AS_OTHER
        """
        ((label, line),) = self.run_script(script, FOLDER=str(folder))
        self.assertEqual(label, "relay-of-root=1")
        self.assertIn("may not read /run/supervise/relay.json (mode 0600, owner uid 0 gid 0)"
                      ": run the sidecar as that owner, --user 0:0", line)
