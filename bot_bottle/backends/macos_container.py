"""The macos-container backend: Apple's ``container`` CLI, one lightweight VM per container."""

from __future__ import annotations

from bot_bottle.backends.plan import Backend, SupervisePlan


class MacosContainerBackend(Backend):
    """Apple ``container``: refuses single-file bind mounts, so the directory is the only way."""

    name = "macos-container"
    mount_safety = (
        "at risk: each container is a VM and the directory is shared over virtiofs, where POSIX "
        "locks may not reach the host; run 'bot-bottle doctor' inside the sidecar to see"
    )

    def sidecar_args(self, plan: SupervisePlan) -> list[str]:
        """``container run`` arguments for the sidecar."""
        mount = plan.mount
        volume = f"{mount.source}:{mount.target}" + (":ro" if mount.read_only else "")
        return ["--volume", volume, "--user", f"{plan.uid}:{plan.gid}"]
