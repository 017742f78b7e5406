"""Launch backends: how each one gives the sidecar, and only the sidecar, the database directory.

The host prepares a ``SupervisePlan`` for a bottle with ``Supervise.prepare``:
the one mount (the host database *directory*, read-write, at
``/run/supervise``), the sidecar's command line and the agent's MCP URL. Each
backend turns the plan into its own CLI arguments: ``sidecar_args`` carries
the mount and the host user's uid:gid, ``agent_args`` never carries the mount.
"""

from __future__ import annotations

from bot_bottle.backends.docker import DockerBackend
from bot_bottle.backends.macos_container import MacosContainerBackend
from bot_bottle.backends.plan import Backend, Mount, Supervise, SupervisePlan
from bot_bottle.backends.smolmachines import SmolmachinesBackend
from bot_bottle.errors import ValidationError

BACKENDS: dict[str, Backend] = {
    b.name: b for b in (DockerBackend(), SmolmachinesBackend(), MacosContainerBackend())
}


def backend(name: str) -> Backend:
    """The backend called ``name`` (docker, smolmachines, macos-container)."""
    try:
        return BACKENDS[name]
    except KeyError:
        raise ValidationError("backend", f"{name!r} is not one of {', '.join(BACKENDS)}") from None


__all__ = ["BACKENDS", "Backend", "Mount", "Supervise", "SupervisePlan", "backend"]
