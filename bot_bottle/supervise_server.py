"""``python -m bot_bottle.supervise_server``: the sidecar's entry point, by the name images and backends use.

The server itself is ``bot_bottle.sidecar.server``; this name stays because
sidecar images and launch plans already in use run it.
"""

from __future__ import annotations

import sys

from bot_bottle.sidecar.server import main

if __name__ == "__main__":
    sys.exit(main())
