"""How much one push may ask of git-gate: refs, object sizes, bytes scanned, time and memory.

The pushed objects are the agent's, so every cost they can drive is capped
and a push past a cap is refused with one line that names the cap and its
option: 2,000 tags, a 256 MiB blob of zeros or a zip bomb must not hold the
sidecar for minutes or fill its memory and disk. ``Limits`` holds the caps
(``python -m bot_bottle.git_gate pre-receive --max-...`` sets them),
``Deadline`` the push's time, ``limit_memory`` the process's memory.
"""

from __future__ import annotations

import re
import resource
import time
from dataclasses import dataclass

from bot_bottle.errors import ScanLimitExceeded, ValidationError

MIB = 1 << 20


@dataclass(frozen=True)
class Limits:
    """The caps on one push (defaults: docs/architecture.md, "git-gate's bounds").

    ``max_archive_*`` bound what one pushed blob's archives and compressed
    streams may expand to (``archives.expand``); the rest bound the push.
    """

    max_refs: int = 256  # refs one push may create, move or delete
    max_object_bytes: int = 32 * MIB  # one pushed object (a blob as stored, a tree, a commit, a tag)
    max_scan_bytes: int = 512 * MIB  # everything written for gitleaks: copies, views, expanded members
    max_seconds: float = 600.0  # the scan, from the hook's start to gitleaks' last report
    max_memory_bytes: int = 1024 * MIB  # the hook's own data (its children are not counted)
    max_archive_depth: int = 4  # archive and compression layers below a pushed blob
    max_archive_member_bytes: int = 64 * MIB  # one member, or one decompressed stream
    max_archive_bytes: int = 256 * MIB  # everything expanded from one pushed blob
    max_archive_members: int = 10_000  # members of one pushed blob's archives, all layers
    max_archive_ratio: int = 200  # expanded bytes per stored byte, once past 1 MiB

    def __post_init__(self) -> None:
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ValidationError(name, "must be a positive number")


# Each limit's option (``pre-receive`` and ``install-hook`` take them all), and whether it is a size.
OPTIONS: dict[str, tuple[str, str]] = {
    "max_refs": ("--max-refs", "count"),
    "max_object_bytes": ("--max-object-size", "size"),
    "max_scan_bytes": ("--max-scan-size", "size"),
    "max_seconds": ("--max-seconds", "seconds"),
    "max_memory_bytes": ("--max-memory", "size"),
    "max_archive_depth": ("--max-archive-depth", "count"),
    "max_archive_member_bytes": ("--max-archive-member-size", "size"),
    "max_archive_bytes": ("--max-archive-size", "size"),
    "max_archive_members": ("--max-archive-members", "count"),
    "max_archive_ratio": ("--max-archive-ratio", "count"),
}


def limit_arguments(limits: Limits) -> list[str]:
    """The options that give ``limits`` (only those that differ from the defaults), for a hook's command line."""
    defaults = Limits()
    arguments: list[str] = []
    for name, (option, _) in OPTIONS.items():
        value = getattr(limits, name)
        if value != getattr(defaults, name):
            arguments += [option, f"{value:g}" if isinstance(value, float) else str(value)]
    return arguments


_SIZE_RE = re.compile(r"(\d{1,15})\s*([KMG]?)(?:i?B)?", re.IGNORECASE)
_UNITS = {"": 1, "K": 1 << 10, "M": MIB, "G": 1 << 30}


def parse_size(text: str) -> int:
    """A size as an option gives it: bytes, or with a K, M or G suffix (``32M``, ``512MiB``, ``1G``)."""
    match = _SIZE_RE.fullmatch(text.strip())
    if match is None or int(match[1]) == 0:
        raise ValueError(f"{text[:30]!r} is not a size (a positive number of bytes, or with K, M or G)")
    return int(match[1]) * _UNITS[match[2].upper()]


def mib(size: int) -> str:
    """``size`` bytes for a message: ``32 MiB``, or bytes when under one MiB."""
    return f"{size / MIB:g} MiB" if size >= MIB else f"{size} bytes"


class Deadline:
    """The time one push's scan may take: every git and gitleaks call gets what is left of it."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._end = time.monotonic() + seconds

    def remaining(self) -> float:
        """Seconds left (at least a millisecond, so a timeout argument is never zero or negative)."""
        return max(self._end - time.monotonic(), 0.001)

    def expired(self) -> bool:
        """True once the time is up."""
        return time.monotonic() >= self._end

    def check(self) -> None:
        """``ScanLimitExceeded`` once the time is up."""
        if self.expired():
            raise self.exceeded()

    def exceeded(self) -> ScanLimitExceeded:
        """The error that refuses a push whose scan ran out of time."""
        return ScanLimitExceeded(f"the scan did not finish within {self.seconds:g} s (--max-seconds): push fewer "
                                 "or smaller objects at a time")


# The soft data limit this process had before ``limit_memory`` lowered it: what its children get back.
_inherited_data_limit: int | None = None


def limit_memory(size: int) -> None:
    """Cap this process's data (heap and anonymous mappings, ``RLIMIT_DATA``) at ``size`` bytes.

    Past it an allocation fails with ``MemoryError`` and the push is refused
    (``hook.pre_receive``). Only the soft limit is lowered, so the children
    git-gate starts (git, gitleaks) get the limit it had back
    (``child_limits``): their memory is theirs to manage, and gitleaks
    streams each file in fixed pieces.
    """
    global _inherited_data_limit
    soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
    if hard != resource.RLIM_INFINITY and size > hard:
        size = hard
    _inherited_data_limit = soft
    resource.setrlimit(resource.RLIMIT_DATA, (size, hard))


def child_limits() -> None:
    """For ``subprocess``'s ``preexec_fn``: give a child the data limit this process had before its own cap."""
    if _inherited_data_limit is not None:
        resource.setrlimit(resource.RLIMIT_DATA, (_inherited_data_limit, resource.getrlimit(resource.RLIMIT_DATA)[1]))
