"""The docker backend: the sidecar bundle and the agent are Docker containers."""

from __future__ import annotations

import sys

from bot_bottle.backends.plan import MOUNT, RELAY, Backend, SupervisePlan


def docker_mount_args(plan: SupervisePlan) -> list[str]:
    """``docker run`` arguments that bind the database directory and run as the host user."""
    mount = plan.mount
    spec = f"type=bind,source={mount.source},target={mount.target}" + (",readonly" if mount.read_only else "")
    return ["--mount", spec, "--user", f"{plan.uid}:{plan.gid}"]


class DockerBackend(Backend):
    """Docker: on Linux the bind mount shares the host kernel, so SQLite's locks hold."""

    name = "docker"
    mount_safety = (
        "safe on Linux (a bind mount shares the host's kernel and its locks); at risk with Docker "
        "Desktop on macOS or Windows, whose file sharing crosses a VM boundary (virtiofs, grpcfuse)"
    )

    def transport(self, platform: str = sys.platform) -> tuple[str, str]:
        """Linux: the mount (one kernel). Elsewhere Docker Desktop runs containers in a VM: the relay."""
        if platform.startswith("linux"):
            return MOUNT, "Docker on Linux: a bind mount shares the host's kernel, so SQLite's locks hold"
        return RELAY, ("Docker Desktop runs containers in a VM whose file sharing (virtiofs, grpcfuse) does not "
                       "carry SQLite's locks: the sidecar files through the host relay instead")

    def relay_address(self, platform: str = sys.platform) -> tuple[str, str]:
        """Docker Desktop forwards ``host.docker.internal`` to the host's loopback; on Linux the name is
        mapped to the default bridge's gateway (``--add-host ...:host-gateway``), 172.17.0.1."""
        if platform.startswith("linux"):
            return "172.17.0.1", "host.docker.internal"
        return "127.0.0.1", "host.docker.internal"

    def sidecar_args(self, plan: SupervisePlan) -> list[str]:
        """``docker run`` arguments for the sidecar (and, for the relay, the host's name inside the VM)."""
        args = docker_mount_args(plan)
        if plan.transport == RELAY:
            # Docker Desktop defines this name itself; on Linux (--transport relay) it must be added.
            args += ["--add-host", "host.docker.internal:host-gateway"]
        return args
