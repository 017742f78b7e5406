"""A routes file naming a host a standing rejection in force rejects is flagged where it is approved (review 68).

A rule decides ``egress-allow`` proposals only: before, web-1's routes file naming crates.io read "routes file:
adds static.crates.io" (or "names no new host") past "never crates.io for web-1", and approving it was neither
refused nor asked twice; the operator granted what they had said never to."""

from __future__ import annotations

from bot_bottle.cli.inbox import file_approval, routes_base_of
from bot_bottle.grants import GrantStore
from bot_bottle.policy import approval
from bot_bottle.policy.subjects import subject_of
from bot_bottle.records import EFFECT_REJECT, TOOL_EGRESS_ALLOW, TOOL_EGRESS_BLOCK, Proposal
from bot_bottle.timestamps import later, utc_now
from tests.helpers.routes_rejected import RoutesRejectedCase
from tests.helpers.support import wait_until

REJECTED = "rejected"  # the caution's kind (policy.approval.REJECTED), spelt out: the module must load before it

BEFORE = "routes:\n- pypi.org\n- crates.io\n"
AFTER = "routes:\n- pypi.org\n- crates.io\n- static.crates.io\n"


class RoutesRejectedTest(RoutesRejectedCase):
    current, proposed = BEFORE, AFTER

    def rejected(self, proposal: Proposal) -> list[str]:
        store = self.store()
        read = file_approval(proposal, proposal.payload, routes_base_of(store, proposal))
        return [caution.text for caution in read.cautions if caution.kind == REJECTED]

    def test_show_names_each_host_the_rejection_rejects_and_a_stale_digest_is_refused(self) -> None:
        proposal = self.filed()
        digest = self.shown(proposal)["digest"]
        rule = self.reject("--bottle", "web-1", "--host", "crates.io")
        shown = self.run_cli("proposals", "show", proposal.id)
        self.assertIn(f"names crates.io, which standing rejection {rule} rejects for web-1: a rule decides "
                      "egress-allow proposals, so approving this grants it all the same", shown.stdout)
        self.assertIn("[rejected]", self.run_cli("proposals", "list").stdout)
        # The digest printed before the rule no longer approves: what was shown did not say it.
        stale = self.run_cli("proposals", "approve", proposal.short_id, "--digest", digest)
        self.assertEqual(stale.returncode, 1, stale.stderr)
        self.assertIn("is not the one whose digest you gave", stale.stderr)
        self.assertIsNone(self.store().response(proposal.id))
        # Without a terminal nor a digest, refused as every approval is; with the digest shown now, recorded.
        bare = self.run_cli("proposals", "approve", proposal.short_id)
        self.assertEqual(bare.returncode, 2, bare.stderr)
        now = self.run_cli("proposals", "approve", proposal.short_id, "--digest", self.shown(proposal)["digest"])
        self.assertEqual(now.returncode, 0, now.stderr)

    def test_a_rule_for_every_bottle_and_a_wildcard(self) -> None:
        proposal = self.filed()
        rule = self.reject("--all-bottles", "--host", "*.crates.io")
        self.assertEqual(self.rejected(proposal), [
            f"names static.crates.io, which standing rejection {rule} rejects for every bottle: a rule decides "
            "egress-allow proposals, so approving this grants it all the same"])
        warnings = [each["kind"] for each in self.shown(proposal)["grants"]["warnings"]]
        self.assertIn(REJECTED, warnings)

    def test_another_bottles_rule_and_an_ended_one_flag_nothing(self) -> None:
        proposal = self.filed()
        self.reject("--bottle", "web-2", "--host", "crates.io")
        self.assertEqual(self.rejected(proposal), [])
        rule = self.reject("--bottle", "web-1", "--host", "crates.io")
        self.assertEqual(len(self.rejected(proposal)), 1)
        revoked = self.run_cli("rules", "revoke", rule, "--reason", "not any more")
        self.assertEqual(revoked.returncode, 0, revoked.stderr)
        self.assertEqual(self.rejected(proposal), [], "a revoked rule flags nothing")
        self.assertNotIn("[rejected]", self.run_cli("proposals", "list").stdout)

    def test_a_rule_that_ended_on_its_own_flags_nothing(self) -> None:
        proposal = self.filed()
        with GrantStore(database=self.store().db) as grants:
            grants.add_rule(queue_key="web-1", tool=TOOL_EGRESS_ALLOW, pattern=False, effect=EFFECT_REJECT,
                            subject=subject_of(TOOL_EGRESS_ALLOW, '{"host": "crates.io"}'), notes="for now",
                            ends_at=later(utc_now(), 2), created_by="operator")
        self.assertEqual(len(self.rejected(proposal)), 1)
        wait_until(lambda: not self.rejected(proposal), 10, what="the rule's end")
        self.assertNotIn("[rejected]", self.run_cli("proposals", "list").stdout)

    def test_a_host_written_in_another_form(self) -> None:
        rule = self.reject("--bottle", "web-1", "--host", "crates.io")
        address = self.reject("--bottle", "web-1", "--host", "10.0.0.5")
        proposal = self.filed("routes:\n- pypi.org\n- CRATES.IO.\n- http://0xa000005/\n", "routes:\n- pypi.org\n")
        texts = self.rejected(proposal)
        self.assertEqual(len(texts), 2, texts)
        self.assertIn(f"which standing rejection {rule} rejects for web-1", texts[0])
        self.assertIn(f"which standing rejection {address} rejects for web-1", texts[1])

    def test_the_pure_reading(self) -> None:
        """policy.approval reads the caution from the rejections passed in: the file's every host, unchanged
        ones too, and asks twice."""
        rejection = getattr(approval, "Rejection", None)
        self.assertIsNotNone(rejection, "policy.approval.Rejection: the rejections in force, passed in")
        assert rejection is not None
        rule = rejection("0045f4ce" + "0" * 24, {"host": "crates.io", "methods": [], "paths": []}, False, "web-1")
        read = approval.approval_of(TOOL_EGRESS_BLOCK, AFTER, AFTER, None, [rule], "web-1")
        self.assertEqual(read.grants[0], "routes file: unchanged")
        self.assertIn(REJECTED, read.kinds)
        self.assertTrue(read.needs_confirmation)
        self.assertIn("a standing rejection", read.why_asked_twice)
        self.assertNotIn(REJECTED, approval.approval_of(TOOL_EGRESS_BLOCK, AFTER, AFTER, None, [rule], "web-2").kinds)
