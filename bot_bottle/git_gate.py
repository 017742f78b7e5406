"""``python -m bot_bottle.git_gate``: git-gate's entry point, by the name installed hooks run.

git-gate itself is the package ``bot_bottle.sidecar.git_gate``; this name
stays because every pre-receive hook already installed runs it.
"""

from __future__ import annotations

import sys

from bot_bottle.sidecar.git_gate.cli import main

if __name__ == "__main__":
    sys.exit(main())
