"""The shape every backend shares: the mount, the plan the host prepares, and the backend interface."""

from __future__ import annotations

import os
import stat
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

from bot_bottle.bottles import TRANSPORT_MOUNT, BottleStore
from bot_bottle.connection import DIR_MODE, FILE_MODE
from bot_bottle.db import DB_DIR_IN_CONTAINER, host_db_dir, host_db_path, open_db
from bot_bottle.records import validate_queue_key
from bot_bottle.supervise_http import SIDECAR_HOSTNAME
from bot_bottle.supervise_server import DEFAULT_PORT

__all__ = ["SIDECAR_HOSTNAME", "Backend", "Mount", "Supervise", "SupervisePlan"]


@dataclass(frozen=True)
class Mount:
    """A bind mount of a host directory into a container."""

    source: Path
    target: str
    read_only: bool = False


@dataclass(frozen=True)
class SupervisePlan:
    """What the host prepared for one bottle's supervise plane."""

    slug: str
    mount: Mount
    sidecar_command: tuple[str, ...]
    mcp_url: str
    uid: int
    gid: int


class Supervise:
    """The host side of a bottle's supervise plane."""

    @staticmethod
    def prepare(slug: str, backend: str | None = None, transport: str = TRANSPORT_MOUNT) -> SupervisePlan:
        """Open and migrate the host database, record the bottle, tighten the modes, and return its plan.

        The database path comes from ``HOME`` alone (``~/.bot-bottle/db``),
        never from another environment variable. The bottle is recorded as
        prepared, with its ``backend`` and ``transport`` (``mount`` or
        ``relay``), in the bottles table (``bottles.BottleStore``).
        """
        validate_queue_key(slug, "bottle")
        open_db().close()
        with BottleStore() as bottles:
            bottles.prepared(slug, backend, transport)
        directory, database = host_db_dir(), host_db_path()
        # The directory is shared with sidecars: nobody else may read it.
        if stat.S_IMODE(directory.stat().st_mode) != DIR_MODE and directory.stat().st_uid == os.getuid():
            directory.chmod(DIR_MODE)
        if stat.S_IMODE(database.stat().st_mode) != FILE_MODE and database.stat().st_uid == os.getuid():
            database.chmod(FILE_MODE)
        return SupervisePlan(
            slug=slug,
            mount=Mount(source=directory, target=DB_DIR_IN_CONTAINER),
            sidecar_command=("python", "-m", "bot_bottle.supervise_server", "--bottle", slug),
            mcp_url=f"http://{SIDECAR_HOSTNAME}:{DEFAULT_PORT}/",
            uid=os.getuid(),
            gid=os.getgid(),
        )


class Backend(ABC):
    """One way of launching bottles; renders the run arguments for the sidecar and the agent."""

    name: str
    #: How safe SQLite's locking is across this backend's mount, for docs and doctor.
    mount_safety: str

    def prepare(self, slug: str, transport: str = TRANSPORT_MOUNT) -> SupervisePlan:
        """``Supervise.prepare`` for a bottle launched by this backend (recorded with its name)."""
        return Supervise.prepare(slug, self.name, transport)

    @abstractmethod
    def sidecar_args(self, plan: SupervisePlan) -> list[str]:
        """Run arguments for the sidecar: the database directory's mount and the host user."""

    def agent_args(self, plan: SupervisePlan) -> list[str]:
        """Run arguments for the agent: its MCP server's URL, and never the database mount."""
        return ["--env", f"BOT_BOTTLE_SUPERVISE_URL={plan.mcp_url}"]
