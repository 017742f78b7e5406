"""Real Node servers the attack tests run: Express and its method-override middleware, as ``.ci/servers`` pins
them (``npm ci --prefix .ci/servers`` installs them there, or ``$BOT_BOTTLE_TEST_SERVERS`` names another directory
holding the same ``node_modules``; ``.ci/run`` installs one of its own). Never a dependency of bot_bottle."""

from __future__ import annotations

import os
import unittest
from pathlib import Path

from tests.helpers.support import REPO, in_ci, require_tool

SERVERS_ENV = "BOT_BOTTLE_TEST_SERVERS"


def express_modules(test: unittest.TestCase) -> tuple[str, Path]:
    """``node`` and the ``node_modules`` holding express and method-override; skips without them (a failure in CI)."""
    node = require_tool(test, "node")
    modules = Path(os.environ.get(SERVERS_ENV) or REPO / ".ci" / "servers") / "node_modules"
    if (modules / "express" / "package.json").is_file() and (modules / "method-override" / "package.json").is_file():
        return node, modules
    message = (f"Express and method-override are not installed in {modules.parent} (npm ci --prefix .ci/servers, "
               f"or set ${SERVERS_ENV}; .ci/run installs them)")
    if in_ci():
        test.fail(message)
    raise unittest.SkipTest(message)
