"""The commands ``prepare`` prints: complete (image, mount, user, network, arguments after the image), shell-safe,
and every bad choice refused before anything is prepared."""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import shlex
from pathlib import Path
from typing import Any

from bot_bottle.backends import BACKENDS, Supervise, backend
from bot_bottle.backends.launch import DEFAULT_IMAGE
from bot_bottle.backends.plan import Mount, SupervisePlan, validate_relay_address
from bot_bottle.errors import ValidationError
from tests.helpers.relay_fixture import free_port
from tests.helpers.support import REPO, TempDirTest


class LaunchTest(TempDirTest):
    def setUp(self) -> None:
        super().setUp()
        self.plan = Supervise.prepare("web-1")
        self.source = str(self.home / ".bot-bottle" / "db")

    def test_docker_runs_the_image_with_everything_it_needs(self) -> None:
        """docker: the bottle's network, then a detached run on it as 'supervise', with the mount, the host user,
        the image, and after it only --bottle SLUG (the image's ENTRYPOINT runs the server)."""
        launch = backend("docker").launch(self.plan)
        self.assertEqual(launch.start[0], ("docker", "network", "create", "bot-bottle-web-1"))
        self.assertEqual(launch.run, (
            "docker", "run", "--rm", "--detach", "--name", "bot-bottle-web-1-sidecar",
            "--network", "bot-bottle-web-1", "--network-alias", "supervise",
            "--mount", f"type=bind,source={self.source},target=/run/supervise",
            "--user", f"{os.getuid()}:{os.getgid()}", DEFAULT_IMAGE, "--bottle", "web-1"))
        self.assertEqual(launch.stop, ("docker", "stop", "bot-bottle-web-1-sidecar"))
        self.assertNotIn("...", " ".join(launch.run))
        self.assertNotIn("python", " ".join(launch.run))

    def test_podman_maps_a_rootless_user_into_the_container(self) -> None:
        """podman run by root: as docker. Run by another user (rootless): --userns=keep-id, or the container's uid
        would not be the host's and the 0700 directory would stay closed."""
        docker = backend("docker")
        as_root = docker.launch(dataclasses.replace(self.plan, uid=0, gid=0), docker.launch_options("podman"))
        self.assertEqual(as_root.run[:2], ("podman", "run"))
        self.assertNotIn("--userns=keep-id", as_root.run)
        self.assertIn("0:0", as_root.run)
        rootless = docker.launch(dataclasses.replace(self.plan, uid=1000, gid=1000), docker.launch_options("podman"))
        at = rootless.run.index("--userns=keep-id")
        self.assertEqual(rootless.run[at + 1:at + 3], ("--user", "1000:1000"))
        for_docker = docker.launch(dataclasses.replace(self.plan, uid=1000, gid=1000))
        self.assertNotIn("--userns=keep-id", for_docker.run, "Docker's daemon runs as root: --user is enough")

    def test_publish_only_on_loopback_and_only_when_asked(self) -> None:
        """--publish PORT publishes the MCP port on 127.0.0.1 only; by default nothing is published."""
        docker = backend("docker")
        self.assertFalse([a for a in docker.launch(self.plan).run if a.startswith(("--publish", "-p"))])
        published = docker.launch(self.plan, docker.launch_options(publish=19100)).run
        at = published.index("--publish")
        self.assertEqual(published[at + 1], "127.0.0.1:19100:9100")
        self.assertLess(at, published.index(DEFAULT_IMAGE), "an option, before the image")

    def test_the_shell_lines_are_the_commands(self) -> None:
        """A home whose path holds spaces and quotes: each printed line splits back into exactly the command."""
        odd = self.tmp / "it's a home"
        odd.mkdir()
        os.environ["HOME"] = str(odd)
        plan = Supervise.prepare("web-2")
        launch = backend("docker").launch(plan, backend("docker").launch_options(image="registry.example/bb:1.0"))
        self.assertEqual([shlex.split(line) for line in launch.shell_lines()], [list(c) for c in launch.start])
        self.assertIn(f"type=bind,source={odd}/.bot-bottle/db,target=/run/supervise", launch.run)

    def test_a_home_with_a_comma_is_one_source(self) -> None:
        """--mount's value is a line of CSV to Docker and podman: a comma (or a quote) in the path is quoted there.

        BROKE before (review 67): HOME '/tmp/h 67,x' made the source '/tmp/h 67' and an option 'x/.bot-bottle/db',
        which the engine refused ('invalid mount option'). tests/backends/test_container.py runs it in podman."""
        odd = self.tmp / 'h 67,x "q"'
        odd.mkdir()
        os.environ["HOME"] = str(odd)
        plan = Supervise.prepare("web-3")
        launch = backend("docker").launch(plan, backend("docker").launch_options(image="registry.example/bb:1.0"))
        spec = launch.run[launch.run.index("--mount") + 1]
        self.assertEqual(next(csv.reader([spec])),
                         ["type=bind", f"source={odd}/.bot-bottle/db", "target=/run/supervise"])
        self.assertEqual([shlex.split(line) for line in launch.shell_lines()], [list(c) for c in launch.start])

    def test_the_readmes_walk_through_shows_what_prepare_prints(self) -> None:
        """README, step 3: the two lines are what prepare prints for ann (uid 1000) with Docker and --publish 9100."""
        plan = SupervisePlan(slug="web-1", mount=Mount(Path("/home/ann/.bot-bottle/db"), "/run/supervise"),
                             entrypoint_args=("--bottle", "web-1"), mcp_url="http://supervise:9100/", uid=1000,
                             gid=1000)
        docker = backend("docker")
        lines = docker.launch(plan, docker.launch_options(publish=9100)).shell_lines()
        readme = [line.strip() for line in (REPO / "README.md").read_text().splitlines()]
        for line in lines:
            self.assertIn(line, readme)

    def test_smolmachines_runs_its_sidecar_as_docker_does(self) -> None:
        """smolmachines: the sidecar's commands are docker's; the micro-VM agent gets only the MCP URL."""
        smol, docker = backend("smolmachines"), backend("docker")
        self.assertEqual(smol.launch(self.plan), docker.launch(self.plan))
        self.assertEqual(smol.agent_args(self.plan), ["--env", "BOT_BOTTLE_SUPERVISE_URL=http://supervise:9100/"])
        self.assertEqual(docker.agent_args(self.plan)[:2], ["--network", "bot-bottle-web-1"])

    def test_macos_container(self) -> None:
        """Apple's container: one detached run with the volume and the user; no network to create, nothing
        published, no other engine."""
        apple = backend("macos-container")
        launch = apple.launch(self.plan)
        self.assertEqual(launch.start, (("container", "run", "--rm", "--detach", "--name", "bot-bottle-web-1-sidecar",
                                         "--volume", f"{self.source}:/run/supervise",
                                         "--user", f"{os.getuid()}:{os.getgid()}", DEFAULT_IMAGE, "--bottle",
                                         "web-1"),))
        self.assertIsNone(launch.network)
        with self.assertRaisesRegex(ValidationError, "^publish: "):
            apple.launch_options(publish=9100)
        with self.assertRaisesRegex(ValidationError, "^engine: "):
            apple.launch_options("podman")
        with self.assertRaisesRegex(ValidationError, "^engine: "):
            backend("docker").launch_options("container")

    def test_an_image_that_is_not_one_is_refused(self) -> None:
        """An option, a space, a shell word or nothing as the image: refused (it would become another argument)."""
        for bad in ("-v/:/host", "--privileged", "a b", "", "$(id)", "img;id", "x" * 300):
            with self.subTest(image=bad), self.assertRaisesRegex(ValidationError, "^image: "):
                backend("docker").launch_options(image=bad)
        for good in ("bot-bottle-sidecars", "localhost/bot-bottle-sidecars:ci",
                     f"ghcr.io/o/bb@sha256:{'a' * 64}"):
            self.assertEqual(backend("docker").launch_options(image=good).image, good)


class RelayLaunchTest(TempDirTest):
    def test_the_relay_on_linux_docker_needs_the_hosts_name(self) -> None:
        """docker on Linux, relay at its default: host.docker.internal mapped to the gateway. With --relay-address
        the relay listens there, the URL holds the address itself, and no name is added; the mount is read-only."""
        docker, port = backend("docker"), free_port()
        plan = Supervise.prepare("web-1", backend=docker, transport="relay", relay_port=port, platform="linux",
                                 relay_address="127.0.0.1")
        self.addCleanup(self.run_cli, "relay", "stop")
        self.assertEqual((plan.relay_url, plan.relay_listen), (f"http://127.0.0.1:{port}/", "127.0.0.1"))
        run = docker.launch(plan).run
        self.assertNotIn("--add-host", run)
        self.assertTrue(run[run.index("--mount") + 1].endswith(",target=/run/supervise,readonly"))
        named = docker.launch(dataclasses.replace(plan, relay_url="http://host.docker.internal:9110/")).run
        self.assertEqual(named[named.index("--add-host") + 1], "host.docker.internal:host-gateway")
        self.assertEqual(validate_relay_address("192.0.2.2"), "192.0.2.2")
        for bad in ("::1", "[fd00::1]", "0.0.0.0", "224.0.0.1", "relay.example", "192.0.2.2:9110", " 192.0.2.2"):
            with self.subTest(address=bad), self.assertRaisesRegex(ValidationError, "^relay_address: "):
                validate_relay_address(bad)


class PrepareChoicesTest(TempDirTest):
    """``bot-bottle prepare``: the commands in text and JSON, and every bad choice refused before anything."""

    def prepared_nothing(self) -> None:
        self.assertFalse((self.home / ".bot-bottle").exists(), "prepare created something before refusing")

    def test_text_and_json_give_the_same_commands(self) -> None:
        """The lines under 'start the sidecar' are the JSON's commands, shell-quoted (a comment aside)."""
        args = ("prepare", "web-1", "--backend", "docker", "--engine", "podman", "--publish", "19100")
        text = self.run_cli(*args)
        self.assertEqual(text.returncode, 0, text.stderr)
        plan: dict[str, Any] = json.loads(self.run_cli(*args, "--json").stdout)
        lines = text.stdout.splitlines()
        at = lines.index("start the sidecar (paste into a shell):")
        shell = [shlex.split(line, comments=True) for line in lines[at + 1:at + 3]]
        self.assertEqual(shell, plan["commands"]["start"])
        self.assertEqual(lines[at + 3:], ["stop it:", "  podman stop bot-bottle-web-1-sidecar"])
        self.assertEqual(plan["entrypoint_args"], ["--bottle", "web-1"])
        self.assertEqual((plan["engine"], plan["image"], plan["network"]),
                         ("podman", DEFAULT_IMAGE, "bot-bottle-web-1"))
        self.assertEqual(plan["commands"]["start"][1][-3:], [DEFAULT_IMAGE, "--bottle", "web-1"])

    def test_bad_choices_change_nothing(self) -> None:
        """Each refused with one line, exit 2, before the database, a relay or a token exists."""
        cases = [
            (("--engine", "container"), "--engine"),
            (("--backend", "macos-container", "--publish", "9100"), "--publish"),
            (("--image=-v/:/host",), "--image"),
            (("--relay-address", "192.0.2.2"), "--relay-address: applies to the relay transport only"),
            (("--transport", "relay", "--relay-address", "relay.example"), "is not an IPv4 address"),
            (("--transport", "relay", "--relay-address", "::1"), "is not an IPv4 address"),
            (("--transport", "relay", "--relay-address", "0.0.0.0"), "not one address"),
            (("--transport", "relay", "--engine", "podman"), "name one with --relay-address"),
            (("--publish", "0"), "--publish"),
        ]
        for extra, needle in cases:
            with self.subTest(extra=extra):
                backend_args = () if "--backend" in extra else ("--backend", "docker")
                self.assert_clean_error(self.run_cli("prepare", "web-1", *backend_args, *extra), 2, needle)
                self.prepared_nothing()

    def test_every_backend_renders_its_commands(self) -> None:
        """Each backend's JSON has an image, a container, a start and a stop command of its engine."""
        for name, chosen in BACKENDS.items():
            with self.subTest(backend=name):
                result = self.run_cli("prepare", "web-1", "--backend", name, "--json",
                                      *(("--transport", "mount") if name == "macos-container" else ()))
                self.assertEqual(result.returncode, 0, result.stderr)
                plan = json.loads(result.stdout)
                self.assertEqual(plan["engine"], chosen.engines[0])
                self.assertEqual(plan["commands"]["stop"][0], chosen.engines[0])
                self.assertEqual(plan["commands"]["start"][-1][:2], [chosen.engines[0], "run"])
