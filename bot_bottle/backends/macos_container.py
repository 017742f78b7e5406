"""The macos-container backend: Apple's ``container`` CLI, one lightweight VM per container."""

from __future__ import annotations

import sys

from bot_bottle.backends.plan import RELAY, Backend, SupervisePlan


class MacosContainerBackend(Backend):
    """Apple ``container``: every container is a VM, so its sidecar always files through the relay."""

    name = "macos-container"
    mount_safety = (
        "at risk: each container is a VM and the directory is shared over virtiofs, where POSIX "
        "locks may not reach the host; so this backend uses the relay"
    )
    def relay_address(self, platform: str = sys.platform) -> tuple[str, str]:
        """The host as containers on Apple's default vmnet network reach it: its gateway, 192.168.64.1."""
        return "192.168.64.1", "192.168.64.1"

    def transport(self, platform: str = sys.platform) -> tuple[str, str]:
        """Always the relay: the database directory would cross a VM boundary over virtiofs."""
        return RELAY, ("each container is a VM sharing files over virtiofs, which does not carry SQLite's "
                       "locks: the sidecar files through the host relay, reached at the vmnet gateway")

    def sidecar_args(self, plan: SupervisePlan) -> list[str]:
        """``container run`` arguments for the sidecar."""
        mount = plan.mount
        volume = f"{mount.source}:{mount.target}" + (":ro" if mount.read_only else "")
        return ["--volume", volume, "--user", f"{plan.uid}:{plan.gid}"]
