"""Starting the supervise server as a process of its own, as a workstation tool (the demo, the benchmarks) does."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from typing import IO

from bot_bottle.errors import BotBottleError


def spawn(
    bottle: str, db_path: str | os.PathLike[str] | None, *options: str, ready_timeout: float = 20.0,
    stderr: int | IO[str] | None = subprocess.DEVNULL, relay_file: str | os.PathLike[str] | None = None,
) -> tuple[subprocess.Popen[str], str]:
    """Start the server as its own process on a free loopback port, as a workstation tool would.

    Waits for its ``listening on`` line and returns the process and its URL;
    ``options`` are more command-line arguments (``--wait-seconds``, ...). It
    files into ``db_path``, or, with ``relay_file`` instead, through the relay. The
    child imports this same ``bot_bottle``, wherever the caller was started
    from; its ``stderr`` goes where given (discarded by default). Raises
    ``BotBottleError`` (and stops the child) if it is not ready in time.
    """
    if (db_path is None) == (relay_file is None):
        raise BotBottleError("the supervise server files into a database or through a relay: give one of them")
    transport = ["--db", os.fspath(db_path)] if db_path is not None else ["--relay", os.fspath(relay_file or "")]
    server = subprocess.Popen(
        [sys.executable, "-m", "bot_bottle.supervise_server", "--bottle", bottle, *transport,
         "--host", "127.0.0.1", "--port", "0", *options],
        stdout=subprocess.PIPE, stderr=stderr, text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(p or os.getcwd() for p in sys.path)},
    )
    assert server.stdout is not None
    stdout = server.stdout
    ready: list[str] = []
    reader = threading.Thread(target=lambda: ready.append(stdout.readline()), daemon=True)
    reader.start()
    reader.join(ready_timeout)
    line = ready[0] if ready else ""
    if not line.startswith("listening on "):
        server.kill()
        server.communicate()
        raise BotBottleError("the supervise server did not start (run it alone to see why: "
                             "python3 -m bot_bottle.supervise_server --help)")
    return server, line.split()[-1]

