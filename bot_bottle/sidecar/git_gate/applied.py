"""Whether git will write every update of a push, as the gate judges it: all of them, or the push is refused.

The gate judges a push by the refs as they will be with all of its updates
applied (``%D`` names the refs at a commit, ``%(describe)`` the nearest tag).
git applies a push's updates one by one unless the pusher asked for
``--atomic``, and one that fails after pre-receive leaves the others in: a
push creating ``aaa`` and a branch named after the rest of a token at a commit
holding ``ghp_$Format:%D$`` was judged as ``ghp_aaa, <rest>`` (harmless), while
``aaa`` could not be created (``aaa/x`` existed), so only ``<rest>`` was, and
every tarball wrote ``ghp_<rest>`` (hostile review 50, with real git). The
pusher chooses what fails: a stale old value, a name git refuses, a directory
or file conflict, a tree pushed to a branch. So, holding the gate lock (no
other push moves the refs until git has written these), a push is refused
unless git would take each update: its old value is the ref's, git's own ref
transaction over all of them prepares (then is aborted: nothing is written),
no two of its refs are a file and a folder of each other (one push renaming
``x/y`` to ``x`` is refused: push it in two), and the repository's ``receive.deny*`` settings refuse none of them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from bot_bottle.errors import GitGateError
from bot_bottle.sidecar.git_gate.limits import Deadline
from bot_bottle.sidecar.git_gate.objects import git_command, git_output, head_ref, last_error_line, run_git
from bot_bottle.sidecar.git_gate.refs import RefUpdate

_REFUSE = "git would write only some of its refs (it was judged with all of them): "


def check_applies(repo: Path, updates: Sequence[RefUpdate], deadline: Deadline) -> None:
    """``GitGateError`` unless git would write every one of ``updates`` in ``repo`` now."""
    # A ref made where the push deletes a folder of refs (or the reverse): git's own transaction refuses it as a
    # folder conflict with the refs there, and whether git writes it depends on how it orders the updates.
    names = {update.ref for update in updates}
    for update in updates:
        parts = update.ref.split("/")
        for end in range(2, len(parts)):
            if "/".join(parts[:end]) in names:
                raise GitGateError(_REFUSE + f"{'/'.join(parts[:end])[:100]} and {update.ref[:100]} are a file "
                                   "and a folder of each other: push them one at a time")
    _check_settings(repo, updates, deadline)
    # git's own transaction, prepared and aborted: old values, names, folder conflicts with the refs there,
    # a non-commit on a branch, a ref locked. Outside the quarantine (git refuses ref updates inside it), the
    # quarantine's objects still read through the object directories git's environment names.
    script = "start\n" + "".join(
        f"delete {u.ref} {u.old}\n" if u.deleted else f"update {u.ref} {u.new} {u.old}\n" for u in updates
    ) + "prepare\nabort\n"
    env = {name: value for name, value in os.environ.items() if name != "GIT_QUARANTINE_PATH"}
    result = run_git(git_command(repo, "update-ref", "--stdin"), deadline, data=script.encode("utf-8"), env=env)
    if result.returncode != 0:
        raise GitGateError(_REFUSE + last_error_line(result.stderr))


def _check_settings(repo: Path, updates: Sequence[RefUpdate], deadline: Deadline) -> None:
    """The ``receive.deny*`` settings receive-pack applies per update, after pre-receive."""
    def flag(name: str) -> bool:
        value = run_git(git_command(repo, "config", "--type=bool", "--get", name), deadline).stdout.strip()
        return value == b"true"

    if any(u.deleted for u in updates) and flag("receive.denyDeletes"):
        raise GitGateError(_REFUSE + "this repository refuses deletions (receive.denyDeletes)")
    if flag("receive.denyNonFastForwards"):
        for update in updates:
            if update.deleted or update.created or not update.ref.startswith("refs/heads/"):
                continue
            forward = run_git(git_command(repo, "merge-base", "--is-ancestor", update.old, update.new), deadline)
            if forward.returncode != 0:
                raise GitGateError(_REFUSE + f"{update.ref[:100]} does not move forward "
                                   "(receive.denyNonFastForwards)")
    bare = git_output(git_command(repo, "rev-parse", "--is-bare-repository"), deadline).strip() == b"true"
    if not bare:
        head = head_ref(repo, deadline)
        if head in {update.ref for update in updates}:
            raise GitGateError(_REFUSE + f"{head[:100]} is checked out here (receive.denyCurrentBranch)")
