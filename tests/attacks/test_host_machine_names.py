"""The names a container reaches the host machine by, where bot-bottle's relay and dashboard listen (review 13).

bot-bottle's own docker backend maps ``host.docker.internal`` into each
container (``--add-host ...:host-gateway``), and Docker Desktop forwards it
to the host's loopback: it is how a bottle reaches the relay
(``relay.process.VM_HOST_NAMES``). Before the fix next to this test,
measured with the agent's real sidecar and the operator's real command
line: the agent's ``egress-allow`` for ``host.docker.internal`` (or
``host.containers.internal``, podman's, or ``*.docker.internal``) was shown
with no warning and no typed yes, and ``rules add --host 127.0.0.1
--reject`` ("never this machine") left it pending.
"""

from __future__ import annotations

import json

from bot_bottle.policy.approval import approval_of
from bot_bottle.records import TOOL_EGRESS_ALLOW
from tests.attacks.test_address_forms import AddressFormsCase
from tests.attacks.test_standing_rejections import call

HOSTS = ("host.docker.internal", "host.containers.internal", "*.docker.internal")


class HostMachineNamesTest(AddressFormsCase):
    def test_each_is_warned_of(self) -> None:
        for host in HOSTS:
            with self.subTest(host=host):
                approval = approval_of(TOOL_EGRESS_ALLOW, json.dumps({"host": host}), None)
                self.assertTrue(any("host machine" in caution.text for caution in approval.cautions), approval)
                self.assertTrue(approval.needs_confirmation)

    def test_a_rejection_of_the_loopback_rejects_each(self) -> None:
        added = self.run_cli("rules", "add", "--all-bottles", "--host", "127.0.0.1", "--reject", "--notes", "no")
        self.assertEqual(added.returncode, 0, added.stderr)
        for host in HOSTS:
            with self.subTest(host=host):
                filed = call(self.url, TOOL_EGRESS_ALLOW, {"host": host, "justification": "the build cache"})
                self.listed()
                answer = call(self.url, "check-proposal", {"proposal_id": filed["proposal_id"]})
                self.assertEqual(answer["status"], "rejected", (host, answer))
