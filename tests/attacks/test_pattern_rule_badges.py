"""An approving pattern rule approved, unseen, a name under it that every screen asks about twice (review 34).

Measured before the fix next to these tests, with the operator's real
command line and web-1's real sidecar: 'rules add --bottle web-1 --host
*.example.com' (no badge of its own, so no typed yes) was recorded; the
agent then asked for ``169-254-169-254.example.com``, a name that spells the
metadata service ([look-alike, internal] on every screen, a typed yes to
approve by hand), and the rule approved it at once: a grant, and no screen
ever showed it. Filed while the operator was still reading 'rules add's
question, or a second after, made no difference. 'rules add' asked for a
typed yes only for such a proposal already pending.
"""

from __future__ import annotations

import json

from bot_bottle.records import TOOL_EGRESS_ALLOW
from tests.attacks.test_address_forms import AddressFormsCase
from tests.attacks.test_standing_rejections import call


class PatternRuleBadgesTest(AddressFormsCase):
    """A host database and web-1's real sidecar to file through (``AddressFormsCase``)."""

    def test_a_name_under_the_pattern_asked_about_twice_waits_for_the_operator(self) -> None:
        added = self.run_cli("rules", "add", "--bottle", "web-1", "--host", "*.example.com", "--for", "1d")
        self.assertEqual(added.returncode, 0, added.stderr)  # nothing of its own to ask twice about
        for host in ("169-254-169-254.example.com", "docs.example.com"):
            call(self.url, TOOL_EGRESS_ALLOW, {"host": host, "justification": "the build"})
        listed = self.run_cli("proposals", "list", "--json")
        self.assertEqual(listed.returncode, 0, listed.stderr)
        (waiting,) = json.loads(listed.stdout)
        self.assertEqual(waiting["grants"]["summary"].split()[0], "169-254-169-254.example.com")
        kinds = {warning["kind"] for warning in waiting["grants"]["warnings"]}
        self.assertLessEqual({"look-alike", "internal"}, kinds)
        grants = json.loads(self.run_cli("grants", "list", "--json").stdout)
        self.assertEqual([json.loads(grant["subject"])["host"] if isinstance(grant["subject"], str)
                          else grant["subject"]["host"] for grant in grants], ["docs.example.com"])

    def test_a_pattern_confirmed_for_what_it_is_still_approves_its_like(self) -> None:
        """A rule whose own host reaches inside (typed yes: --yes) approves the names under it that reach inside
        in the same way, and no more: one that spells an address as well waits."""
        added = self.run_cli("rules", "add", "--bottle", "web-1", "--host", "*.svc.cluster.local", "--for", "1d",
                             "--yes")
        self.assertEqual(added.returncode, 0, added.stderr)
        for host in ("redis.default.svc.cluster.local", "10-0-0-5.default.svc.cluster.local"):
            call(self.url, TOOL_EGRESS_ALLOW, {"host": host, "justification": "the build"})
        (waiting,) = json.loads(self.run_cli("proposals", "list", "--json").stdout)
        self.assertEqual(waiting["grants"]["summary"].split()[0], "10-0-0-5.default.svc.cluster.local")
        self.assertEqual(len(json.loads(self.run_cli("grants", "list", "--json").stdout)), 1)
