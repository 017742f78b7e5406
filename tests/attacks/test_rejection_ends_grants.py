"""A standing rejection against the grants made before it: the agent keeps going on yesterday's approval.

The operator approved an agent's routes (a paste site, a company wildcard)
for days, and then decided: never the paste site, never the secrets host.
Before the fix next to these tests, the rejection answered only the
proposals filed after it: the grants made before it went on letting the
agent through until they ended (measured: ``rules add --host pastebin.com
--reject`` printed the rule, and the bottle's sidecar, asked afresh, still
let ``POST pastebin.com/api`` and, through ``*.example.com``, ``GET
secret.example.com/keys`` through, for the seven days left). Now a rejecting
rule, typed (``rules add --reject``) or remembered from a decision
(``proposals reject --remember``), ends in the same transaction every live
grant in its scope that lets through any of what it rejects
(``grants.end_grants_rejected_in``), each with an entry naming the rule.
"""

from __future__ import annotations

import json

from bot_bottle.audit_store import AuditStore
from bot_bottle.records import ACTION_GRANT_REVOKED, TOOL_EGRESS_ALLOW
from tests.helpers.host_grants import HostGrantsCase


class RejectionEndsGrantsTest(HostGrantsCase):
    """Grants approved on the host database, then the operator's rejections with the real command line."""

    def live(self) -> set[str]:
        return {grant.id for grant in self.grants.listing()}

    def test_a_typed_rejection_ends_the_grants_that_let_it_through(self) -> None:
        """The paste site's grant ends for the rule's bottle only; other grants and bottles keep theirs."""
        paste = self.approve("web-1", {"host": "pastebin.com"})
        other_bottle = self.approve("web-2", {"host": "pastebin.com"})
        docs = self.approve("web-1", {"host": "docs.python.org"})
        self.assertTrue(self.lets_through("web-1", "pastebin.com", "POST", "/api"))
        said = self.cli("rules", "add", "--bottle", "web-1", "--host", "pastebin.com", "--reject",
                        "--notes", "no paste sites")
        self.assertIn(f"it ended grant {paste[:8]} (web-1: ", said)
        self.assertFalse(self.lets_through("web-1", "pastebin.com", "POST", "/api"))
        self.assertFalse(self.lets_through("web-1", "pastebin.com:443", "GET", "/"))
        self.assertTrue(self.lets_through("web-2", "pastebin.com", "POST", "/api"))  # the rule is web-1's
        self.assertTrue(self.lets_through("web-1", "docs.python.org", "GET", "/3/"))
        self.assertEqual(self.live(), {other_bottle, docs})
        self.assertTrue(AuditStore(database=self.store.db).verify().ok)

    def test_a_wildcard_grant_over_a_rejected_host_ends_whole(self) -> None:
        """'*.example.com' let secret.example.com through: an every-bottle rejection ends it in each bottle."""
        wildcard = self.approve("web-1", {"host": "*.example.com"})
        again = self.approve("web-2", {"host": "*.example.com", "methods": ["GET"]})
        self.assertTrue(self.lets_through("web-2", "secret.example.com", "GET", "/keys"))
        listed = json.loads(self.cli("rules", "add", "--all-bottles", "--host", "secret.example.com", "--reject",
                                     "--json"))
        self.assertEqual(sorted(listed["ended_grants"]), sorted([wildcard, again]))
        for bottle in ("web-1", "web-2"):
            self.assertFalse(self.lets_through(bottle, "secret.example.com", "GET", "/keys"))
            self.assertFalse(self.lets_through(bottle, "api.example.com", "GET", "/"))  # asked for again
        self.assertEqual(self.live(), set())

    def test_variants_that_overlap_and_those_that_do_not(self) -> None:
        """A rejection ends what overlaps in host, method or path (HEAD as GET, '//admin' as '/admin'), only that."""
        get_only = self.approve("web-1", {"host": "api.github.com", "methods": ["GET"]})
        admin = self.approve("web-1", {"host": "shop.example.org", "paths": ["/admin/"]})
        public = self.approve("web-1", {"host": "shop.example.org", "methods": ["GET"], "paths": ["/public/"]})
        address = self.approve("web-1", {"host": "169.254.169.254"})
        self.cli("rules", "add", "--bottle", "web-1", "--host", "api.github.com", "--method", "POST", "--reject")
        self.assertIn(get_only, self.live())  # a GET-only grant lets no POST through
        self.cli("rules", "add", "--bottle", "web-1", "--host", "api.github.com", "--method", "HEAD", "--reject")
        self.assertNotIn(get_only, self.live())  # HEAD is answered by GET
        self.cli("rules", "add", "--bottle", "web-1", "--host", "shop.example.org", "--path", "//admin/x",
                 "--reject")
        self.assertEqual((admin in self.live(), public in self.live()), (False, True))
        self.cli("rules", "add", "--bottle", "web-1", "--host", "2852039166", "--reject")  # the same address
        self.assertNotIn(address, self.live())
        self.assertFalse(self.lets_through("web-1", "169.254.169.254", "GET", "/latest/meta-data/"))
        self.assertTrue(self.lets_through("web-1", "shop.example.org", "GET", "/public/x"))

    def test_an_approving_rule_or_a_rejection_for_a_time_ends_what_it_should(self) -> None:
        """An approving rule ends nothing; a rejection with --for ends the grants as one for good does."""
        paste = self.approve("web-1", {"host": "pastebin.com"})
        self.cli("rules", "add", "--bottle", "web-1", "--host", "pastebin.com", "--for", "1d")
        self.assertIn(paste, self.live())
        self.cli("rules", "add", "--bottle", "web-1", "--host", "pastebin.com", "--reject", "--for", "1h")
        self.assertNotIn(paste, self.live())

    def test_a_remembered_rejection_ends_the_grants_too(self) -> None:
        """'proposals reject ID --remember all': an earlier grant for the same host, in another bottle, ends."""
        earlier = self.approve("web-2", {"host": "pastebin.com"})
        asked = self.store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "pastebin.com", "paths": ["/raw/"]}', "logs")
        said = self.cli("proposals", "reject", asked.short_id, "--reason", "no paste sites", "--remember", "all")
        self.assertIn(f"it ended grant {earlier[:8]} (web-2: ", said)
        self.assertFalse(self.lets_through("web-2", "pastebin.com", "GET", "/raw/x"))
        (entry,) = [e for e in AuditStore(database=self.store.db).entries(limit=10)
                    if e.action == ACTION_GRANT_REVOKED]
        (rule,) = self.grants.rules()
        self.assertEqual((entry.details["grant"], entry.details["rule_id"], rule.proposal_id),
                         (earlier, rule.id, asked.id))
        self.assertEqual([grant.id for grant in self.grants.ended_by_decision(asked.id)], [earlier])
        self.assertTrue(AuditStore(database=self.store.db).verify().ok)

    def test_a_forged_grant_row_cannot_stop_the_rejection(self) -> None:
        """A sidecar on the mount writes a grant row no audit entry may name (a bottle no slug can be): the rule
        is still recorded and ends the real grant; the forged row is left for 'audit verify' to name."""
        paste = self.approve("web-1", {"host": "pastebin.com"})
        self.raw("INSERT INTO grants (id, queue_key, tool, subject, subject_sha256, starts_at, ends_at, proposal_id, "
                 "rule_id, decided_by, audit_seq) VALUES ('f' || hex(randomblob(15)), '../../etc', 'egress-allow', "
                 "'{\"host\": \"pastebin.com\"}', '', '2026-01-01T00:00:00.000000Z', '2999-01-01T00:00:00.000000Z', "
                 "'not a proposal', NULL, 'x', 999999)", unchecked=True)  # the file's checks are the writer's to skip
        self.cli("rules", "add", "--all-bottles", "--host", "pastebin.com", "--reject")
        self.assertNotIn(paste, self.live())
        self.assertFalse(self.lets_through("web-1", "pastebin.com", "GET", "/"))
        self.assertFalse(AuditStore(database=self.store.db).verify().ok)  # the forged row is named
