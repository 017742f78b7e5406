"""A real terminal for the tests: tmux, driven as a person would."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import time

from tests.helpers.support import TempDirTest, require_tool

_SGR_RE = re.compile(r"\x1b\[([0-9;]*)m")
_ROW_RE = re.compile(r"[* ] ([0-9a-f]{8})  ")


class Terminal:
    """A tmux session on a private server, running one command: send keys, read the screen."""

    def __init__(self, test: TempDirTest, command: str, width: int = 120, height: int = 30) -> None:
        self.tmux = require_tool(test, "tmux")
        # A name never used before: id(self) is reused once an earlier Terminal is gone, and a server told to
        # exit a moment ago may still hold its socket ("server exited unexpectedly" for the new session).
        self.socket = f"bb-test-{os.getpid()}-{secrets.token_hex(6)}"
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

    def selected(self) -> str | None:
        """The short id of the TUI's list row drawn in reverse video (the cursor's), or None when none is.

        tmux writes a style where it changes, so a row's reverse video may
        carry over from the line before it (the reverse title): the style is
        followed from the top of the pane.
        """
        lines = self.run("capture-pane", "-e", "-p", "-t", "t").split("\n")
        reverse = False
        for number, raw in enumerate(lines):
            position, first = 0, None
            for match in _SGR_RE.finditer(raw):
                if first is None and match.start() > position:
                    first = reverse  # the style of the line's first character
                for code in (match.group(1) or "0").split(";"):
                    reverse = True if code == "7" else False if code in ("0", "", "27") else reverse
                position = match.end()
            if first is None:
                first = reverse if position < len(raw) else False
            found = _ROW_RE.match(_SGR_RE.sub("", raw))
            if found and first and 0 < number < len(lines) - 3:  # not the title or the key line
                return found.group(1)
        return None

    def send(self, *keys: str) -> None:
        """Type keys (tmux key names such as Enter and Escape, or literal text)."""
        self.run("send-keys", "-t", "t", *keys)

    def settled(self, timeout: float = 15) -> str:
        """The screen once two reads 50 ms apart agree (a redraw is not caught half done); the last read if it
        never stops changing within ``timeout``."""
        deadline = time.monotonic() + timeout
        screen = self.screen()
        while True:
            time.sleep(0.05)
            again = self.screen()
            if again == screen or time.monotonic() > deadline:
                return again
            screen = again

    def wait_for(self, text: str, timeout: float = 15) -> str:
        """Wait until ``text`` is on a settled screen (``settled``); that screen.

        tmux may show a redraw half done (a heading drawn, the lines under it
        still blank), and a test that asserts on the rest of the screen must
        not read it then.
        """
        deadline = time.monotonic() + timeout
        while True:
            screen = self.settled(max(0.0, deadline - time.monotonic()))
            if text in screen:
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} never appeared; the screen:\n{screen}")
