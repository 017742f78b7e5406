"""The sidecar's own tests, run again with the sidecar filing through the relay instead of the database.

As a storage library runs one test class against every backend, each class
below is a class of the direct-transport suites with one thing changed: the
queue handle the sidecar code is given is a ``RelayQueue`` speaking to a relay
(its service and HTTP server in a thread here) over the same database, with
the bottle's own token. Everything the direct suites assert (MCP behaviour,
quotas, timeouts, robustness, concurrency; git-gate's pushes; the egress
helper's overrides) must hold through the relay too.
"""

from __future__ import annotations

from bot_bottle.records import Quota
from bot_bottle.sidecar.egress import EgressGrants, request_token_override
from bot_bottle.sidecar.git_gate.install import install_hook
from bot_bottle.sidecar.relay_queue import RelayQueue
from bot_bottle.sidecar.transport import SidecarQueue
from tests.helpers.relay_fixture import InProcessRelay
from tests.helpers.support import REPO
from tests.sidecar import test_egress
from tests.sidecar import test_server as direct
from tests.sidecar.git_gate import test_git_gate
from tests.sidecar.test_egress import TOKEN


class ThroughTheRelay(direct.ServerTestCase):
    """The server's queue is a ``RelayQueue``; the relay applies the bottle's quota."""

    def bottle_queue(self, quota: Quota) -> SidecarQueue:
        relay = InProcessRelay(self.path, quota=quota).register(self)
        return relay.queue("web-1")


class RelayProtocolTest(ThroughTheRelay, direct.ProtocolTest):
    """MCP protocol behaviour, through the relay."""


class RelayToolCallTest(ThroughTheRelay, direct.ToolCallTest):
    """Tool calls and their decisions, through the relay."""


class RelayTimeoutTest(ThroughTheRelay, direct.TimeoutTest):
    """Waits that end pending, through the relay."""


class RelayQuotaTest(ThroughTheRelay, direct.QuotaTest):
    """The bottle's quota, applied by the relay."""


class RelayRobustnessTest(ThroughTheRelay, direct.RobustnessTest):
    """Malformed requests to the sidecar, through the relay."""


class RelayConcurrencyTest(ThroughTheRelay, direct.ConcurrencyTest):
    """Many calls at once, through the relay."""


class RelayGitGateTest(test_git_gate.GitGateTest):
    """Pushes through git-gate whose hook asks the operator through the relay (a relay file, never --db)."""

    def hook(self, **options: object) -> None:
        if "db_path" in options:  # the tests of an unusable database keep naming it
            super().hook(**options)
            return
        if not hasattr(self, "relay"):
            self.relay = InProcessRelay(self.db).register(self)
            self.relay_file = self.relay.relay_file("web-1", self.tmp / "relay-web-1")
        settings: dict[str, object] = {"relay_file": self.relay_file, "gitleaks": self.gitleaks,
                                       "pythonpath": str(REPO)}
        install_hook(self.remote, "web-1", **{**settings, **options})

    def test_the_hook_names_the_relay_file_not_the_database(self) -> None:
        """What the hook runs: --relay FILE, and no --db."""
        text = (self.remote / "hooks" / "pre-receive").read_text()
        self.assertIn(f"--relay {self.relay_file}", text)
        self.assertNotIn("--db", text)


class RelayOverrideTest(test_egress.OverrideTest):
    """The egress helper's override through the relay: approve, reject, timeout, nothing stored."""

    def setUp(self) -> None:
        super().setUp()
        self.relay = InProcessRelay(self.path).register(self)
        self.bottle = self.relay.queue("web-1")  # type: ignore[assignment]
        self.grants = EgressGrants(self.bottle)

    def test_database_unavailable(self) -> None:
        """Through the relay, the relay gone is what a database gone is directly: False and the reason logged."""
        self.relay.stop()
        impatient = RelayQueue(self.bottle.endpoint, retry_for=0.3)
        with self.assertLogs("bot_bottle.egress", "ERROR") as logs:
            self.assertFalse(request_token_override(
                impatient, EgressGrants(impatient), host="h", method="GET", path="/", detector="d", context=TOKEN,
                value=TOKEN, timeout=5))
        self.assertIn("relay", "\n".join(logs.output))
        self.assertNotIn(TOKEN, "\n".join(logs.output))
