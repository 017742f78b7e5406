"""What git says a push does: its ``old new ref`` lines, and which refs git-gate accepts at all."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from bot_bottle.errors import GitGateError

_SHA_RE = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")


_ZERO_RE = re.compile(r"0{40}|0{64}")


ALLOWED_REF_PREFIXES = ("refs/heads/", "refs/tags/")


@dataclass(frozen=True)
class RefUpdate:
    """One line of pre-receive input: a ref moving from ``old`` to ``new``."""

    old: str
    new: str
    ref: str

    @property
    def deleted(self) -> bool:
        """True when the push deletes the ref (nothing to scan)."""
        return bool(_ZERO_RE.fullmatch(self.new))

    @property
    def created(self) -> bool:
        """True when the push creates the ref."""
        return bool(_ZERO_RE.fullmatch(self.old))


def parse_hook_input(lines: Iterable[str]) -> list[RefUpdate]:
    """Parse git's ``old new ref`` lines; ``GitGateError`` on anything else."""
    updates = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 3 or not _SHA_RE.fullmatch(parts[0]) or not _SHA_RE.fullmatch(parts[1]) \
                or not parts[2].startswith("refs/"):
            raise GitGateError(f"hook input line {number} is not 'old-sha new-sha refs/...': {line[:100]!r}")
        updates.append(RefUpdate(*parts))
    return updates


def refused_ref(updates: Sequence[RefUpdate]) -> str | None:
    """Why the push may not touch one of its refs, or None: only branches and tags are accepted."""
    for update in updates:
        if not update.ref.startswith(ALLOWED_REF_PREFIXES):
            kind = update.ref.split("/")[1] if update.ref.count("/") >= 2 else update.ref
            return (f"{update.ref[:100]} is not a branch or a tag: git-gate accepts only refs/heads/ and "
                    f"refs/tags/ (refs/{kind}/ is not reviewed; replace refs and notes change what git shows)")
    return None
