"""The commands that start a bottle's sidecar: which engine, which image, and the names they share.

``bot-bottle prepare`` prints them (``--json`` returns them as argument
lists) so that, copied into a shell, they start a working sidecar: the
image, the mount, the user, the network (or a published port) and the
arguments after the image. Each backend renders its own (``Backend.launch``);
this module holds what they share and checks the operator's choices before
anything is prepared.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

from bot_bottle.errors import ValidationError

#: The image ``Dockerfile.sidecars`` builds (``docker build -f Dockerfile.sidecars -t bot-bottle-sidecars .``).
DEFAULT_IMAGE = "bot-bottle-sidecars"
DOCKER = "docker"
PODMAN = "podman"
APPLE_CONTAINER = "container"

# A container image reference as engines take it (registry/path:tag@digest); never an option.
_IMAGE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/:@+-]{0,254}")


def validate_image(name: str) -> str:
    """An image name that an engine reads as one (``ValidationError`` for anything else, an option included)."""
    if not _IMAGE_RE.fullmatch(name):
        raise ValidationError("image", f"{name[:80]!r} is not an image name (letters, digits and ._/:@+-, "
                              "starting with a letter or digit)")
    return name


def sidecar_container_name(slug: str) -> str:
    """The sidecar container's name: one per bottle, so a second start of the same bottle is refused."""
    return f"bot-bottle-{slug}-sidecar"


def bottle_network_name(slug: str) -> str:
    """The bottle's own network: its agent and its sidecar, where the agent reaches the sidecar as ``supervise``."""
    return f"bot-bottle-{slug}"


@dataclass(frozen=True)
class LaunchOptions:
    """The operator's choices for the commands, checked before anything is prepared."""

    engine: str
    image: str = DEFAULT_IMAGE
    #: A port on the host's 127.0.0.1 to publish the sidecar's MCP port on (None: not published).
    publish: int | None = None


@dataclass(frozen=True)
class Launch:
    """The commands that start a bottle's sidecar with one engine, and the one that stops it."""

    engine: str
    image: str
    container: str
    #: The bottle's network, or None where the engine gives each container an address of its own.
    network: str | None
    #: Run in order: create the bottle's network (where there is one), then run the sidecar.
    start: tuple[tuple[str, ...], ...]
    stop: tuple[str, ...]

    @property
    def run(self) -> tuple[str, ...]:
        """The ``run`` command itself: the last of ``start``."""
        return self.start[-1]

    def shell_lines(self) -> list[str]:
        """``start`` as lines a POSIX shell runs as they are (each argument quoted where it must be)."""
        return [shlex.join(command) for command in self.start]
