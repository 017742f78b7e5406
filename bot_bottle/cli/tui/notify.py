"""The operator's ``supervise --notify`` command: run through ``/bin/sh`` when new proposals arrive.

The command is the operator's own text, so it runs in a shell (pipes,
redirections and ``$VAR`` work, as ``--help`` says). What it is told (how
many arrived, from which bottles) reaches it only as environment values,
never as shell text: a bottle's name is the agent's choice. It runs in a
thread of its own, so a slow command never holds up the screen; a failure
is handed back as one line for the status line instead of passing in
silence.
"""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Callable, Sequence

NOTIFY_TIMEOUT_SEC = 30.0  # a notify command still running then is left behind, and said to be


def notify_environment(count: int, bottles: Sequence[str]) -> dict[str, str]:
    """This process's environment with ``BOT_BOTTLE_NEW_PROPOSALS`` and ``BOT_BOTTLE_NEW_BOTTLES`` added."""
    return {**os.environ, "BOT_BOTTLE_NEW_PROPOSALS": str(count),
            "BOT_BOTTLE_NEW_BOTTLES": ",".join(sorted(set(bottles)))}


def start_notify(command: str, env: dict[str, str], said: Callable[[str], None]) -> threading.Thread:
    """Run ``command`` through ``/bin/sh`` in a daemon thread; ``said`` gets one line if it fails."""
    thread = threading.Thread(target=_run, args=(command, env, said), daemon=True)
    thread.start()
    return thread


def _run(command: str, env: dict[str, str], said: Callable[[str], None]) -> None:
    try:
        done = subprocess.run(["/bin/sh", "-c", command], env=env, stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=NOTIFY_TIMEOUT_SEC,
                              start_new_session=True, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        said(f"the notify command did not run to its end: {exc}")
        return
    if done.returncode != 0:
        last = done.stderr.decode("utf-8", "replace").strip().splitlines()
        said(f"the notify command exited {done.returncode}" + (f": {last[-1]}" if last else ""))
