"""The smolmachines backend: the agent runs in a libkrun micro-VM; the sidecar bundle still runs in Docker."""

from __future__ import annotations

import sys

from bot_bottle.backends.docker import DockerBackend
from bot_bottle.backends.plan import Backend, SupervisePlan


class SmolmachinesBackend(DockerBackend):
    """smolmachines: the sidecar gets Docker's form of the mount; the micro-VM agent gets none."""

    name = "smolmachines"
    mount_safety = (
        "as docker: the sidecar runs in Docker, so safe on Linux and at risk under Docker Desktop; "
        "the agent's micro-VM never sees the database"
    )

    def transport(self, platform: str = sys.platform) -> tuple[str, str]:
        """As docker's: the sidecar runs in Docker (Docker Desktop's VM on macOS)."""
        transport, reason = super().transport(platform)
        return transport, f"the sidecar runs in Docker. {reason}"

    def agent_args(self, plan: SupervisePlan) -> list[str]:
        """The micro-VM agent gets its MCP server's URL only: it is not a container on the bottle's network."""
        return Backend.agent_args(self, plan)
