"""The sidecar image built from Dockerfile.sidecars and run in a real container, the way ``prepare`` says.

podman builds the image once for the class (on the base ``.ci/make-base-image``
makes, its tarball cached between runs); each test prepares a bottle on a
host database of its own, runs the commands ``prepare --json`` returned,
files through the container's published port and decides on the host with
the CLI. Skipped, with the reason, only where podman cannot run; a failure
under ``CI=true``.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import socket
import stat
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, ClassVar

from tests.helpers.conformance import assert_conformant
from tests.helpers.podman import SIDECAR_REPOSITORY, Podman, post_json, wait_healthy
from tests.helpers.relay_fixture import free_port
from tests.helpers.support import REPO, TempDirTest, in_ci, wait_until

SYSTEM_PYTHON = "/usr/bin/python3"  # one another uid can run (pyenv's live under root's 0700 home)
OTHER_UID = 1000

# The agent's side, run in a container on the bottle's network: list the sidecar's tools by its name there.
AGENT = """
import json, os, urllib.request
request = urllib.request.Request(os.environ["BOT_BOTTLE_SUPERVISE_URL"], method="POST",
    data=json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}).encode(),
    headers={"Content-Type": "application/json", "Accept": "application/json, text/event-stream"})
print(json.dumps([tool["name"] for tool in json.load(urllib.request.urlopen(request, timeout=20))["result"]["tools"]]))
"""


def readme_call() -> dict[str, Any]:
    """The MCP call the README's walk-through makes with curl (step 4), as the JSON it sends."""
    readme = (REPO / "README.md").read_text()
    (line,) = [line.strip() for line in readme.splitlines() if line.strip().startswith("curl -sS http://127.0.0.1:")]
    words = shlex.split(line)
    call: dict[str, Any] = json.loads(words[words.index("-d") + 1])
    return call


def host_address() -> str:
    """This host's address on its network (the route's source address; nothing is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("198.51.100.1", 9))  # TEST-NET-2: only the routing table is consulted
        return str(probe.getsockname()[0])


class SidecarContainerTest(TempDirTest):
    """Build once; then each bottle's sidecar in a container, started by the commands ``prepare`` printed."""

    podman: ClassVar[Podman]
    image: ClassVar[str]
    base: ClassVar[str]

    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()
        cls.podman = Podman.usable()
        cls.base = cls.podman.ensure_base()
        cls.image = f"{SIDECAR_REPOSITORY}:test-{os.getpid()}"
        cls.podman.build_sidecar(cls.image, cls.base)
        cls.addClassCleanup(cls.podman, "untag", cls.image, cls.image, check=False)

    # The host's side ----------------------------------------------------------

    def cli(self, *args: str, user: int | None = None, home: Path | None = None,
            check: bool = True) -> subprocess.CompletedProcess[str]:
        """``bot-bottle ARGS`` on the host, as root or as ``user`` (from a copy of the package it can read)."""
        home = home or self.home
        if user is None:
            command = [sys.executable, "-m", "bot_bottle", *args]
            env = {**os.environ, "HOME": str(home), "PYTHONPATH": str(REPO)}
        else:
            command = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", SYSTEM_PYTHON, "-m",
                       "bot_bottle", *args]
            env = {**os.environ, "HOME": str(home), "PYTHONPATH": str(self.readable_checkout())}
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, cwd="/")
        if check and result.returncode != 0:
            self.fail(f"bot-bottle {' '.join(args)} exited {result.returncode}: {result.stderr}")
        return result

    def readable_checkout(self) -> Path:
        """A copy of the package every user may read (the checkout may sit in a private home)."""
        root = self.tmp / "checkout"
        if not root.exists():
            self.copy_package()
            for path in (self.tmp, *self.tmp.rglob("*")):
                if path.is_relative_to(self.home):
                    continue
                os.chmod(path, 0o755 if path.is_dir() else 0o644)
            os.chmod(self.tmp, 0o755)
        return root

    def prepare(self, *args: str, user: int | None = None, home: Path | None = None) -> dict[str, Any]:
        """``bot-bottle prepare SLUG --backend docker ... --json`` with this class's image."""
        plan: dict[str, Any] = json.loads(self.cli("prepare", *args, "--image", self.image, "--json", user=user,
                                                   home=home).stdout)
        return plan

    def start(self, plan: dict[str, Any], shell_lines: list[str] | None = None) -> str:
        """Run the commands ``prepare`` returned (network, then sidecar), or the lines it printed, each in a shell as
        pasted; removed at the test's end. The container."""
        container, network = plan["container"], plan["network"]
        self.addCleanup(self.podman.remove_network, network)
        self.addCleanup(self.podman.remove, container)
        if shell_lines is None:
            for command in plan["commands"]["start"]:
                self.podman.run_as_printed(command)
        for line in shell_lines or ():
            pasted = subprocess.run(["sh", "-c", line], env=self.podman.env, capture_output=True, text=True,
                                    timeout=120)
            self.assertEqual(pasted.returncode, 0, f"{line}\n{pasted.stderr}")
        return str(container)

    @staticmethod
    def printed_lines(text: str) -> list[str]:
        """The lines ``prepare`` printed under 'start the sidecar', as a user copies them."""
        lines = text.splitlines()
        at = lines.index("start the sidecar (paste into a shell):")
        return [line.strip() for line in lines[at + 1:lines.index("stop it:")]]

    def logs(self, container: str) -> str:
        """What the container wrote."""
        result = self.podman("logs", container, check=False)
        return result.stdout + result.stderr

    def file_and_decide(self, url: str, slug: str, *, user: int | None = None, home: Path | None = None) -> None:
        """The README's egress-allow filed through ``url`` waits; approved on the host with the CLI, the caller gets
        the decision."""
        answers: list[dict[str, Any]] = []
        call = threading.Thread(target=lambda: answers.append(post_json(url, readme_call())))
        call.start()
        self.addCleanup(call.join, 60)

        def pending() -> list[dict[str, Any]]:
            listed: list[dict[str, Any]] = json.loads(self.cli("proposals", "list", "--json", user=user,
                                                               home=home).stdout)
            return [p for p in listed if p["queue_key"] == slug]

        (proposal,) = wait_until(pending, timeout=30, what="the filing on the host")
        self.assertEqual(proposal["tool"], "egress-allow")
        self.assertTrue(call.is_alive(), "the call returned before any decision")
        # From a script, as the README's walk-through does at a terminal: approve exactly what 'show' printed.
        shown = json.loads(self.cli("proposals", "show", proposal["short_id"], "--json", user=user, home=home).stdout)
        self.cli("proposals", "approve", proposal["short_id"], "--digest", shown["digest"], "--notes", "fine",
                 user=user, home=home)
        call.join(30)
        self.assertFalse(call.is_alive(), "the caller never got the decision")
        result = answers[0]["result"]
        self.assertFalse(result["isError"], result)
        self.assertEqual(result["structuredContent"]["status"], "approved")
        self.assertEqual(result["structuredContent"]["notes"], "fine")
        self.assertEqual(result["structuredContent"]["proposal_id"], proposal["id"])

    def assert_holds_the_host_database(self, container: str, database: Path) -> None:
        """The container's process has the host's file open, as /run/supervise/bot-bottle.db, on the bind mount."""
        pid = self.podman.pid(container)
        held = [f"/proc/{pid}/fd/{fd}" for fd in os.listdir(f"/proc/{pid}/fd")
                if os.readlink(f"/proc/{pid}/fd/{fd}") == "/run/supervise/bot-bottle.db"]
        self.assertTrue(held, "the sidecar does not hold /run/supervise/bot-bottle.db")
        inside, host = os.stat(held[0]), os.stat(database)
        self.assertEqual((inside.st_dev, inside.st_ino), (host.st_dev, host.st_ino), "not the host's file")
        mounts = Path(f"/proc/{pid}/mountinfo").read_text().splitlines()
        self.assertTrue([m for m in mounts if m.split()[4] == "/run/supervise"], "no mount at /run/supervise")

    def stop_and_check(self, plan: dict[str, Any], *, user: int | None = None, home: Path | None = None) -> None:
        """Stop it as ``prepare`` said: the bottle shows stopped; the audit log verifies."""
        self.podman.run_as_printed(plan["commands"]["stop"])
        shown = json.loads(self.cli("bottles", "show", plan["bottle"], "--json", user=user, home=home).stdout)
        self.assertEqual(shown["state"], "stopped")
        verified = json.loads(self.cli("audit", "verify", "--json", user=user, home=home).stdout)
        self.assertTrue(verified["ok"], verified)
        self.assertGreaterEqual(verified["count"], 1, "the decision is in the audit log")

    # The tests ----------------------------------------------------------------

    def test_as_root_the_way_prepare_says(self) -> None:
        """podman's commands as prepare printed them, pasted into a shell: the agent's container reaches the sidecar
        as 'supervise' on the bottle's network; the README's call through the published port waits and gets the
        host's decision; the sidecar holds the host's file; owner and mode unchanged; stopped; audit verify passes."""
        port = free_port()
        slug = f"web-ct-{os.getpid()}"  # unique, as two runs may share the machine
        args = (slug, "--backend", "docker", "--engine", "podman", "--publish", str(port))
        printed = self.printed_lines(self.cli("prepare", *args, "--image", self.image).stdout)
        plan = self.prepare(*args)
        self.assertEqual(printed[1].split()[:2], ["podman", "run"])
        self.assertEqual(printed[1].split()[-3:], [self.image, "--bottle", slug])
        directory = Path(plan["mount"]["source"])
        database = directory / "bot-bottle.db"
        before = {p: (os.stat(p).st_uid, os.stat(p).st_gid, stat.S_IMODE(os.stat(p).st_mode))
                  for p in (directory, database)}
        container = self.start(plan, printed)
        url = f"http://127.0.0.1:{port}/"
        self.assertEqual(wait_healthy(url)["bottle"], slug)
        agent = f"{container}-agent"
        self.addCleanup(self.podman.remove, agent)
        self.podman("run", "--detach", "--name", agent, *plan["agent_args"], self.base, "python3", "-c", AGENT)
        self.podman.wait_ended(agent)
        self.assertEqual(json.loads(self.logs(agent).strip().splitlines()[-1]),
                         ["egress-block", "egress-allow", "check-proposal"])
        self.file_and_decide(url, slug)
        self.assert_holds_the_host_database(container, database)
        logs = self.logs(container)
        self.assertIn("egress-allow: filed", logs)
        self.assertIn("answered approved", logs)
        self.assertNotIn("warning", logs)
        self.stop_and_check(plan)
        after = {p: (os.stat(p).st_uid, os.stat(p).st_gid, stat.S_IMODE(os.stat(p).st_mode))
                 for p in (directory, database)}
        self.assertEqual(after, before)
        self.assertEqual(before[directory], (0, 0, 0o700))
        self.assertEqual(sorted(os.listdir(directory)), ["bot-bottle.db"], "nothing left beside the database")

    def test_as_a_non_root_user_with_dockers_command(self) -> None:
        """A user (uid 1000) with a rootful engine, as with Docker: prepare's docker command, run by podman, runs the
        sidecar as that uid; the same waiting call, decided by that user; owner and mode unchanged."""
        if not os.access(SYSTEM_PYTHON, os.X_OK) or shutil.which("setpriv") is None:
            message = "needs /usr/bin/python3 and setpriv (util-linux) to run bot-bottle as another uid"
            if in_ci():
                self.fail(message)
            self.skipTest(message)
        home = self.tmp / "home 1000,x"  # a comma: --mount is a line of CSV to the engine (test_launch)
        home.mkdir()
        os.chown(home, OTHER_UID, OTHER_UID)
        self.readable_checkout()
        port = free_port()
        slug = f"web-user-{os.getpid()}"  # unique, as two runs may share the machine
        plan = self.prepare(slug, "--backend", "docker", "--publish", str(port), user=OTHER_UID, home=home)
        self.assertEqual(plan["commands"]["start"][1][:2], ["docker", "run"])
        self.assertIn(f"{OTHER_UID}:{OTHER_UID}", plan["sidecar_args"])
        directory = Path(plan["mount"]["source"])
        database = directory / "bot-bottle.db"
        container = self.start(plan)
        url = f"http://127.0.0.1:{port}/"
        wait_healthy(url)
        self.assertEqual(self.podman("top", container, "user").stdout.split()[1:], [str(OTHER_UID)])
        self.file_and_decide(url, slug, user=OTHER_UID, home=home)
        self.assert_holds_the_host_database(container, database)
        self.stop_and_check(plan, user=OTHER_UID, home=home)
        for path, mode in ((directory, 0o700), (database, 0o600)):
            info = os.stat(path)
            self.assertEqual((info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)), (OTHER_UID, OTHER_UID, mode))

    def test_without_the_user_the_sidecar_says_whose_mount_it_is(self) -> None:
        """prepare's command without its --user (the image's uid 10001): one line naming the mount's owner and the
        --user that works, not a missing mount; nothing is created in the host's directory."""
        slug = f"web-nouser-{os.getpid()}"  # unique, as two runs may share the machine
        plan = self.prepare(slug, "--backend", "docker", "--engine", "podman")
        run = plan["commands"]["start"][1]
        at = run.index("--user")
        # Without --rm as well, so that its log outlives it.
        plan["commands"]["start"][1] = [arg for arg in run[:at] + run[at + 2:] if arg != "--rm"]
        container = self.start(plan)
        self.podman.wait_ended(container)
        lines = [line for line in self.logs(container).splitlines() if line.strip()]
        self.assertEqual(len(lines), 1, lines)
        self.assertIn("/run/supervise is mounted, but this sidecar (uid 10001 gid 10001) may not look into "
                      "/run/supervise (mode 0700, owner uid 0 gid 0): run the sidecar as that owner, --user 0:0",
                      lines[0])
        self.assertEqual(os.listdir(plan["mount"]["source"]), ["bot-bottle.db"])

    def test_through_the_relay_at_an_address_named_with_relay_address(self) -> None:
        """--transport relay --relay-address (this host's address): the relay listens there, the container gets only
        the relay file, read-only, and files through the relay; the host's decision reaches the caller."""
        relay_port, port = free_port(), free_port()
        address = host_address()
        self.addCleanup(self.cli, "relay", "stop", check=False)
        slug = f"web-relay-{os.getpid()}"  # unique, as two runs may share the machine
        plan = self.prepare(slug, "--backend", "docker", "--engine", "podman", "--transport", "relay",
                            "--relay-address", address, "--relay-port", str(relay_port), "--publish", str(port))
        self.assertEqual(plan["relay_url"], f"http://{address}:{relay_port}/")
        self.assertTrue(plan["mount"]["read_only"])
        container = self.start(plan)
        url = f"http://127.0.0.1:{port}/"
        wait_healthy(url)
        self.file_and_decide(url, slug)
        pid = self.podman.pid(container)
        held = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
        self.assertFalse([name for name in held if name.endswith((".db", "-journal"))], held)
        self.assertIn(f"filing through the operator's relay at http://{address}:{relay_port}/", self.logs(container))
        self.stop_and_check(plan)

    def test_the_official_conformance_suite_against_the_container(self) -> None:
        """The MCP conformance suite through the container's published port: the applicable scenarios pass."""
        port = free_port()
        slug = f"web-mcp-{os.getpid()}"  # unique, as two runs may share the machine
        plan = self.prepare(slug, "--backend", "docker", "--engine", "podman", "--publish", str(port))
        self.start(plan)
        url = f"http://127.0.0.1:{port}/"
        wait_healthy(url)
        assert_conformant(self, url, self.tmp / "results")
