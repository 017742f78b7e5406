"""A real terminal for the tests: tmux, driven as a person would."""

from __future__ import annotations

import os
import subprocess
import time

from tests.helpers.support import TempDirTest, require_tool


class Terminal:
    """A tmux session on a private server, running one command: send keys, read the screen."""

    def __init__(self, test: TempDirTest, command: str, width: int = 120, height: int = 30) -> None:
        self.tmux = require_tool(test, "tmux")
        self.socket = f"bb-test-{os.getpid()}-{id(self)}"
        self.run("new-session", "-d", "-s", "t", "-x", str(width), "-y", str(height), command)
        test.addCleanup(self.run, "kill-server", check=False)

    def run(self, *args: str, check: bool = True) -> str:
        result = subprocess.run([self.tmux, "-L", self.socket, *args], capture_output=True, text=True, timeout=30)
        if check and result.returncode != 0:
            raise AssertionError(f"tmux {args[0]} failed: {result.stderr}")
        return result.stdout

    def screen(self) -> str:
        """The visible text of the pane."""
        return self.run("capture-pane", "-p", "-t", "t")

    def send(self, *keys: str) -> None:
        """Type keys (tmux key names such as Enter and Escape, or literal text)."""
        self.run("send-keys", "-t", "t", *keys)

    def wait_for(self, text: str, timeout: float = 15) -> str:
        """Wait until ``text`` is on screen; the screen."""
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            if text in screen:
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} never appeared; the screen:\n{screen}")
            time.sleep(0.1)
