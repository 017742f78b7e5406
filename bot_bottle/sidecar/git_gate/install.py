"""Writing git-gate into a repository as its ``pre-receive`` hook."""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path
from typing import Any

from bot_bottle.records import validate_queue_key
from bot_bottle.sidecar.git_gate.limits import Limits, limit_arguments


def render_hook(
    bottle: str,
    *,
    python: str = sys.executable,
    db_path: str | os.PathLike[str] | None = None,
    relay_file: str | os.PathLike[str] | None = None,
    timeout: float | None = None,
    gitleaks: str | None = None,
    pythonpath: str | None = None,
    limits: Limits | None = None,
) -> str:
    """The text of a ``pre-receive`` hook that runs this gate for ``bottle`` (within ``limits``)."""
    validate_queue_key(bottle, "bottle")
    command = [python, "-m", "bot_bottle.git_gate", "pre-receive", "--bottle", bottle]
    if db_path is not None:
        command += ["--db", os.fspath(db_path)]
    if relay_file is not None:
        command += ["--relay", os.fspath(relay_file)]
    if timeout is not None:
        command += ["--timeout", f"{timeout:g}"]
    if gitleaks is not None:
        command += ["--gitleaks", gitleaks]
    if limits is not None:
        command += limit_arguments(limits)
    env = f"PYTHONPATH={shlex.quote(pythonpath)} " if pythonpath else ""
    return (
        "#!/bin/sh\n"
        "# Installed by bot-bottle git-gate: scans every object a push adds with gitleaks and asks\n"
        "# the operator about findings marked gitleaks:allow. Refuses the push on any error.\n"
        f"exec env {env}{shlex.join(command)}\n"
    )


def install_hook(repo: Path, bottle: str, **options: Any) -> Path:
    """Write the pre-receive hook into a (bare) repository; returns its path."""
    # A bare repository keeps hooks/ at its top; a work tree under .git/.
    hooks = repo / ".git" / "hooks" if (repo / ".git").is_dir() else repo / "hooks"
    hooks.mkdir(parents=True, exist_ok=True)
    hook = hooks / "pre-receive"
    hook.write_text(render_hook(bottle, **options))
    hook.chmod(0o755)
    return hook
