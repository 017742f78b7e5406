"""A real browser for the tests: Debian's headless Chromium, driven through tests/helpers/browser_client.py.

Selenium is a test-only tool, never a dependency of bot_bottle: it lives in a
virtual environment of its own, whose Python is ``$BOT_BOTTLE_SELENIUM_PYTHON``
(``.ci/run`` installs ``selenium==4.52.0`` there), or the Python running the
tests if that one has it. Chromium and chromedriver are Debian's
(``apt-get install chromium chromium-driver``). Without them the browser
tests skip, saying why, and fail instead under ``CI=true``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path
from typing import Any

from tests.helpers.support import in_ci

SELENIUM_VERSION = "4.52.0"
CLIENT = Path(__file__).with_name("browser_client.py")


def selenium_python() -> str | None:
    """A Python that can import selenium: $BOT_BOTTLE_SELENIUM_PYTHON, or this one."""
    configured = os.environ.get("BOT_BOTTLE_SELENIUM_PYTHON")
    for candidate in [configured] if configured else [sys.executable]:
        probe = subprocess.run([candidate, "-c", "import selenium.webdriver"], capture_output=True)
        if probe.returncode == 0:
            return candidate
    return None


def browser_tools() -> tuple[str, str, str]:
    """(python, chromium, chromedriver), or ``unittest.SkipTest`` naming what is missing (a failure under CI)."""
    python = selenium_python()
    chromium = shutil.which("chromium")
    driver = shutil.which("chromedriver")
    missing = [what for what, found in ((f"selenium=={SELENIUM_VERSION} (set BOT_BOTTLE_SELENIUM_PYTHON)", python),
                                        ("chromium", chromium), ("chromium-driver", driver)) if not found]
    if missing:
        message = f"{', '.join(missing)} not installed (.ci/run installs them; see the README)"
        if in_ci():
            raise AssertionError(message)
        raise unittest.SkipTest(message)
    assert python and chromium and driver
    return python, chromium, driver


class Browser:
    """One headless Chromium session, driven one command at a time."""

    def __init__(self) -> None:
        python, chromium, driver = browser_tools()
        self.profile = tempfile.TemporaryDirectory(prefix="bb-chromium-")
        self.process = subprocess.Popen(
            [python, str(CLIENT), chromium, driver, self.profile.name],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        ready = self._answer()
        if ready != "ready":
            raise AssertionError(f"the browser did not start: {ready!r}")

    def _answer(self) -> Any:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            errors = self.process.stderr.read() if self.process.stderr else ""
            raise AssertionError(f"the browser client exited: {errors[-3000:]}")
        answer = json.loads(line)
        if "error" in answer:
            raise AssertionError(f"browser: {answer['error']}")
        return answer["ok"]

    def do(self, action: str, **arguments: Any) -> Any:
        """Run one command of tests/helpers/browser_client.py and return its value (an error fails the test)."""
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps({"do": action, **arguments}) + "\n")
        self.process.stdin.flush()
        return self._answer()

    def get(self, url: str) -> str:
        """Open ``url``; the URL the browser ends at."""
        return str(self.do("get", url=url))

    def script(self, js: str, *args: Any) -> Any:
        """Run ``js`` in the page (as a function body: ``return`` gives its value)."""
        return self.do("script", js=js, args=list(args))

    def keys(self, *keys: str) -> None:
        """Type to whatever has the focus: text, or named keys ("Enter", "Ctrl+Enter", "Escape", "Tab")."""
        self.do("keys", keys=list(keys))

    def text(self) -> str:
        """The page's visible text."""
        return str(self.do("text"))

    def close(self) -> None:
        """Quit the browser and remove its profile."""
        if self.process.poll() is None:
            with contextlib.suppress(AssertionError, BrokenPipeError, OSError):
                self.do("quit")  # the client answers nothing: it quits
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()
        self.profile.cleanup()
