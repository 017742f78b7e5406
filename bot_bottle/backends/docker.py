"""The docker backend: the sidecar bundle and the agent are Docker containers."""

from __future__ import annotations

from bot_bottle.backends.plan import Backend, SupervisePlan


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

    def sidecar_args(self, plan: SupervisePlan) -> list[str]:
        """``docker run`` arguments for the sidecar."""
        return docker_mount_args(plan)
