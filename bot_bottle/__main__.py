"""``python3 -m bot_bottle``: the operator's command line."""

import sys

from bot_bottle.cli import main

sys.exit(main())
