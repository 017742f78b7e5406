"""The macos-container backend: Apple's ``container`` CLI, one lightweight VM per container."""

from __future__ import annotations

import sys

from bot_bottle.backends.launch import APPLE_CONTAINER, DEFAULT_IMAGE, Launch, LaunchOptions, sidecar_container_name
from bot_bottle.backends.plan import RELAY, Backend, SupervisePlan
from bot_bottle.errors import ValidationError


class MacosContainerBackend(Backend):
    """Apple ``container``: every container is a VM, so its sidecar always files through the relay."""

    name = "macos-container"
    mount_safety = (
        "at risk: each container is a VM and the directory is shared over virtiofs, where POSIX "
        "locks may not reach the host; so this backend uses the relay"
    )
    engines = (APPLE_CONTAINER,)

    def relay_address(self, platform: str = sys.platform, engine: str | None = None) -> tuple[str, str]:
        """The host as containers on Apple's default vmnet network reach it: its gateway, 192.168.64.1."""
        return "192.168.64.1", "192.168.64.1"

    def transport(self, platform: str = sys.platform) -> tuple[str, str]:
        """Always the relay: the database directory would cross a VM boundary over virtiofs."""
        return RELAY, ("each container is a VM sharing files over virtiofs, which does not carry SQLite's "
                       "locks: the sidecar files through the host relay, reached at the vmnet gateway")

    def launch_options(self, engine: str | None = None, image: str = DEFAULT_IMAGE,
                       publish: int | None = None) -> LaunchOptions:
        """As every backend's, but nothing is published: each container has an address of its own on vmnet."""
        if publish is not None:
            raise ValidationError("publish", "Apple's container gives each container an address of its own, so "
                                  "nothing is published: 'container ls' shows the sidecar's")
        return super().launch_options(engine, image)

    def sidecar_args(self, plan: SupervisePlan, engine: str | None = None) -> list[str]:
        """``container run`` arguments for the sidecar."""
        mount = plan.mount
        volume = f"{mount.source}:{mount.target}" + (":ro" if mount.read_only else "")
        return ["--volume", volume, "--user", f"{plan.uid}:{plan.gid}"]

    def launch(self, plan: SupervisePlan, options: LaunchOptions | None = None) -> Launch:
        """Run the sidecar, detached, removed once stopped."""
        options = options or self.launch_options()
        name = sidecar_container_name(plan.slug)
        run = (APPLE_CONTAINER, "run", "--rm", "--detach", "--name", name, *self.sidecar_args(plan),
               options.image, *plan.entrypoint_args)
        return Launch(engine=APPLE_CONTAINER, image=options.image, container=name, network=None, start=(run,),
                      stop=(APPLE_CONTAINER, "stop", name))
