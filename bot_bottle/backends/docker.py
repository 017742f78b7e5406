"""The docker backend: the sidecar bundle and the agent are containers, run with docker or podman."""

from __future__ import annotations

import sys
from urllib.parse import urlsplit

from bot_bottle.backends.launch import (
    DOCKER,
    PODMAN,
    Launch,
    LaunchOptions,
    bottle_network_name,
    sidecar_container_name,
)
from bot_bottle.backends.plan import MOUNT, RELAY, SIDECAR_HOSTNAME, Backend, SupervisePlan
from bot_bottle.errors import ValidationError
from bot_bottle.sidecar.server import DEFAULT_PORT

#: The name Docker Desktop gives the host inside containers; on Linux ``--add-host`` maps it.
DOCKER_HOST_NAME = "host.docker.internal"


def docker_mount_args(plan: SupervisePlan) -> list[str]:
    """``docker run`` arguments that bind the database directory and run as the host user."""
    mount = plan.mount
    fields = ["type=bind", f"source={mount.source}", f"target={mount.target}"]
    fields += ["readonly"] if mount.read_only else []
    return ["--mount", ",".join(_csv_field(field) for field in fields), "--user", f"{plan.uid}:{plan.gid}"]


def _csv_field(field: str) -> str:
    """``field`` as one field of ``--mount``'s value, which Docker and podman read as a line of CSV: quoted, its
    quotes doubled, where it holds a comma, a quote or a line break. A HOME of '/home/a,b' made the source
    '/home/a' and an option 'b/.bot-bottle/db' that the engine refused."""
    if any(char in field for char in ',"\r\n'):
        return '"' + field.replace('"', '""') + '"'
    return field


class DockerBackend(Backend):
    """Docker: on Linux the bind mount shares the host kernel, so SQLite's locks hold.

    podman runs the same containers from the same command line, but for
    two things: a podman run by a user other than root is rootless, and
    maps that user into the container only when told (``--userns=keep-id``);
    and it has no fixed address of the host for a relay (see
    ``relay_address``).
    """

    name = "docker"
    mount_safety = (
        "safe on Linux (a bind mount shares the host's kernel and its locks); at risk with Docker "
        "Desktop on macOS or Windows, whose file sharing crosses a VM boundary (virtiofs, grpcfuse)"
    )
    engines = (DOCKER, PODMAN)

    def transport(self, platform: str = sys.platform) -> tuple[str, str]:
        """Linux: the mount (one kernel). Elsewhere Docker Desktop runs containers in a VM: the relay."""
        if platform.startswith("linux"):
            return MOUNT, "Docker on Linux: a bind mount shares the host's kernel, so SQLite's locks hold"
        return RELAY, ("Docker Desktop runs containers in a VM whose file sharing (virtiofs, grpcfuse) does not "
                       "carry SQLite's locks: the sidecar files through the host relay instead")

    def relay_address(self, platform: str = sys.platform, engine: str | None = None) -> tuple[str, str]:
        """Docker Desktop forwards ``host.docker.internal`` to the host's loopback; on Linux the name is
        mapped to the default bridge's gateway (``--add-host ...:host-gateway``), 172.17.0.1.

        podman has no such address to assume: its bridge's gateway exists only
        while a container runs, and podman 4 knows no ``host-gateway``. Its
        sidecars reach the relay at an address the operator names.
        """
        if engine == PODMAN:
            raise ValidationError("relay_address", "podman's containers have no address of the host to assume for "
                                  "the relay (its bridge's gateway exists only while a container runs): name one "
                                  "with --relay-address ADDRESS, this host's address on its network")
        if platform.startswith("linux"):
            return "172.17.0.1", DOCKER_HOST_NAME
        return "127.0.0.1", DOCKER_HOST_NAME

    def sidecar_args(self, plan: SupervisePlan, engine: str | None = None) -> list[str]:
        """``docker run`` arguments for the sidecar: the mount, the user (for a rootless podman, mapped into the
        container as itself), and, for the relay at ``host.docker.internal``, that name."""
        args = docker_mount_args(plan)
        if engine == PODMAN and plan.uid != 0:
            args[2:2] = ["--userns=keep-id"]  # rootless: without it the container's uid is not the host's
        if plan.transport == RELAY and plan.relay_url and urlsplit(plan.relay_url).hostname == DOCKER_HOST_NAME:
            # Docker Desktop defines this name itself; on Linux (--transport relay) it must be added.
            args += ["--add-host", f"{DOCKER_HOST_NAME}:host-gateway"]
        return args

    def agent_args(self, plan: SupervisePlan) -> list[str]:
        """The agent joins the bottle's network, where its sidecar answers as ``supervise``; never the mount."""
        return ["--network", bottle_network_name(plan.slug), *super().agent_args(plan)]

    def launch(self, plan: SupervisePlan, options: LaunchOptions | None = None) -> Launch:
        """Create the bottle's network, then run the sidecar on it, detached, as ``supervise``; removed once stopped."""
        options = options or self.launch_options()
        engine = options.engine
        name, network = sidecar_container_name(plan.slug), bottle_network_name(plan.slug)
        run = [engine, "run", "--rm", "--detach", "--name", name, "--network", network,
               "--network-alias", SIDECAR_HOSTNAME, *self.sidecar_args(plan, engine)]
        if options.publish is not None:
            # Loopback only: whoever reaches this port files proposals as the bottle.
            run += ["--publish", f"127.0.0.1:{options.publish}:{DEFAULT_PORT}"]
        run += [options.image, *plan.entrypoint_args]
        return Launch(engine=engine, image=options.image, container=name, network=network,
                      start=((engine, "network", "create", network), tuple(run)), stop=(engine, "stop", name))
