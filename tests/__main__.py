"""``python3 -m tests``: the suite's modules side by side (``tests.helpers.parallel``); ``--help`` says how."""

import sys

import bot_bottle  # noqa: F401 - first: an interpreter older than 3.11 is told so in one line, once
from tests.helpers.parallel import main

sys.exit(main())
