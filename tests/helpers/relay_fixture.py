"""Relays for tests: one in a thread of the test process, or ``bot-bottle relay`` as a process of its own."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import unittest
from pathlib import Path
from typing import IO, Any

from bot_bottle.queue_store import QueueStore
from bot_bottle.records import DEFAULT_QUOTA, Quota
from bot_bottle.relay.credentials import RelayCredentials
from bot_bottle.relay.process import RELAY_MAX_CONNECTIONS, allowed_hosts, relay_server
from bot_bottle.relay.revocations import RevocationWatch
from bot_bottle.relay.service import DEFAULT_MAX_WAITS_PER_BOTTLE, RelayService
from bot_bottle.sidecar.relay_queue import RelayQueue
from bot_bottle.wire.relay_file import RelayEndpoint, write_endpoint_file
from bot_bottle.wire.signing import sign_request
from tests.helpers.hostile import request
from tests.helpers.support import REPO, TempDirTest, wait_until


class InProcessRelay:
    """The relay's service and HTTP server in a thread, over ``db_path``, on a free loopback port."""

    def __init__(self, db_path: Path, *, quota: Quota = DEFAULT_QUOTA, poll_interval: float = 0.02,
                 max_waits_per_bottle: int = DEFAULT_MAX_WAITS_PER_BOTTLE, request_timeout: float = 20.0) -> None:
        self.store = QueueStore(db_path)
        self.credentials = RelayCredentials(database=self.store.db)
        self.logged: list[str] = []
        self.service = RelayService(self.store, self.credentials, quota=quota, poll_interval=poll_interval,
                                    max_waits_per_bottle=max_waits_per_bottle, log=self.logged.append)
        self.server = relay_server(("127.0.0.1", 0), self.service, allowed_hosts("127.0.0.1", ()),
                                   RELAY_MAX_CONNECTIONS, request_timeout)
        self.watch = RevocationWatch(self.service, self.server.pool).start()
        self.port = int(self.server.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}/"
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        self._stopped = False

    def endpoint(self, slug: str) -> RelayEndpoint:
        """A freshly minted credential of ``slug`` for this relay."""
        return RelayEndpoint(url=self.url, token=self.credentials.mint(slug), bottle=slug)

    def queue(self, slug: str) -> RelayQueue:
        """A sidecar's queue handle for ``slug`` through this relay."""
        return RelayQueue(self.endpoint(slug))

    def relay_file(self, slug: str, directory: Path) -> Path:
        """``slug``'s relay.json in ``directory``, as ``Supervise.prepare`` writes it."""
        return write_endpoint_file(directory, self.endpoint(slug))

    def stop(self) -> None:
        """Stop serving and close the store (once; later calls do nothing)."""
        if self._stopped:
            return
        self._stopped = True
        self.watch.stop()
        self.server.shutdown()
        self.server.server_close()
        self.store.close()

    def register(self, test: unittest.TestCase) -> InProcessRelay:
        """Stop this relay when ``test`` ends; returns it."""
        test.addCleanup(self.stop)
        return self


class RelayCase(TempDirTest):
    """An in-process relay over this test's database (``self.relay``), and a store to look with (``self.store``)."""

    def setUp(self) -> None:
        super().setUp()
        self.db = self.tmp / "relay.db"
        self.relay = InProcessRelay(self.db).register(self)
        self.store = QueueStore(self.db)
        self.addCleanup(self.store.close)


def signed(endpoint: RelayEndpoint, body: bytes, **headers: str) -> dict[str, str]:
    """Headers for a raw relay request with ``body``: its fresh signature (and ``headers``)."""
    return {"Authorization": sign_request(endpoint, body)[0], **headers}


def signed_request(endpoint: RelayEndpoint, message: dict[str, Any] | bytes, *, host: str = "127.0.0.1",
                   **headers: str) -> bytes:
    """A whole raw relay request for ``message``, signed with ``endpoint``'s credential."""
    body = message if isinstance(message, bytes) else json.dumps(message).encode()
    return request(body, host=host, headers=signed(endpoint, body, **headers))


def free_port() -> int:
    """A loopback port nothing listens on now (for a relay that must come back on the same one)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def relay_env(home: Path) -> dict[str, str]:
    """The environment of a CLI process with its own HOME that imports this checkout."""
    return {**os.environ, "HOME": str(home), "PYTHONPATH": str(REPO)}


def start_relay_process(home: Path, port: int, *options: str, stderr: IO[str] | int = subprocess.DEVNULL,
                        timeout: float = 20.0) -> subprocess.Popen[str]:
    """``bot-bottle relay`` in its own process, HOME ``home``; returns once it prints that it listens."""
    process = subprocess.Popen([sys.executable, "-m", "bot_bottle", "relay", "--host", "127.0.0.1", "--port",
                                str(port), *options], stdout=subprocess.PIPE, stderr=stderr, text=True,
                               env=relay_env(home), cwd=REPO)
    assert process.stdout is not None
    stdout = process.stdout
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.append(stdout.readline()), daemon=True)
    reader.start()
    wait_until(lambda: lines or process.poll() is not None, timeout, what="the relay's ready line")
    if not lines or not lines[0].startswith("relay listening on "):
        process.kill()
        process.communicate()
        raise AssertionError(f"the relay did not start (exit {process.returncode})")
    return process


def stop_process(process: subprocess.Popen[str]) -> None:
    """SIGTERM, then wait (kill after 20 s)."""
    if process.poll() is None:
        process.terminate()
        try:
            process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
