"""The command line's inbox (``proposals list``, ``show``, ``supervise --once``): what approving grants first,
with its badges, for the hostile corpus; the agent's words after it, cut short; the filters and the search."""

from __future__ import annotations

import json

from bot_bottle.decisions import decide
from bot_bottle.grants import GrantStore
from bot_bottle.records import TOOL_EGRESS_ALLOW, TOOL_EGRESS_BLOCK, Proposal
from tests.cli.test_proposals_cmds import CliTestCase
from tests.helpers.inbox_corpus import file_look_alikes


class InboxListTest(CliTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.filed: dict[str, Proposal] = {
            **file_look_alikes(self.store, self.store.db.path, "Read-only access to pypi"),
            "plain": self.store.submit("web-5", TOOL_EGRESS_ALLOW, '{"host": "files.pythonhosted.org"}', "wheels"),
        }

    def listed(self, *argv: str) -> list[str]:
        code, out, err = self.cli("proposals", "list", "--json", *argv)
        self.assertEqual((code, err), (0, ""))
        by_id = {p.id: name for name, p in self.filed.items()}
        return [by_id[row["id"]] for row in json.loads(out)]

    def test_the_grants_column_comes_before_the_agent_with_its_badges(self) -> None:
        code, out, _ = self.cli("proposals", "list")
        self.assertEqual(code, 0)
        self.assertFalse({"\u0456", "\u2024"} & set(out), "a look-alike is never printed as it reads")
        lines = {line.split()[0]: line for line in out.splitlines()[1:]}
        header = out.splitlines()[0]
        self.assertLess(header.index("GRANTS"), header.index("AGENT SAYS"))
        expected = {"cyrillic": "[look-alike,unreadable] nothing: the route does not par",
                    # no routes file on record for web-2: every host reads as new (audit.routes_approved)
                    "routes": "[widens,look-alike,drifted] routes file: adds a.example, pypi\\u2024org",
                    "fake-route": "[widens] *.readthedocs.io (any method; every path)",
                    "token": "[look-alike] a github-pat token, sent to xn--pyp-lhd.org",
                    "plain": "files.pythonhosted.org (any method; every path)"}
        for name, grants in expected.items():
            with self.subTest(name):
                line = lines[self.filed[name].short_id]
                self.assertIn(grants, line)
                agent = self.filed[name].justification.split("\n")[0][:20]
                self.assertLess(line.index(grants), line.index(agent))
        # Piped, each proposal is one row with the whole justification in its last cell, its newlines escaped:
        # the fake route block is text inside that cell, never rows of its own.
        self.assertEqual(len(out.splitlines()), 1 + len(self.filed))
        self.assertNotIn("\nroute:", out)
        self.assertIn("the Python docs\\x0aroute:", lines[self.filed["fake-route"].short_id].split("\t")[-1])
        grants = json.loads(self.cli("proposals", "list", "--json")[1])[2]["grants"]
        self.assertEqual(grants["summary"], "*.readthedocs.io (any method; every path)")
        self.assertEqual([w["kind"] for w in grants["warnings"]], ["widens"])
        self.assertIn("Public Suffix List", grants["warnings"][0]["text"])

    def test_filters_and_search(self) -> None:
        self.assertEqual(self.listed("--warning"), ["cyrillic", "routes", "fake-route", "token"])
        self.assertEqual(self.listed("--warning", "any"), ["cyrillic", "routes", "fake-route", "token"])
        self.assertEqual(self.listed("--warning", "widens"), ["routes", "fake-route"])
        self.assertEqual(self.listed("--warning", "look-alike"), ["cyrillic", "routes", "token"])
        self.assertEqual(self.listed("--warning", "unreadable"), ["cyrillic"])
        self.assertEqual(self.listed("--tool", TOOL_EGRESS_ALLOW), ["cyrillic", "fake-route", "plain"])
        self.assertEqual(self.listed("--tool", TOOL_EGRESS_ALLOW, "--warning", "widens"), ["fake-route"])
        self.assertEqual(self.listed("--bottle", "web-4", "--warning", "look-alike"), ["token"])
        # The search reads the grant, its warnings, the bottle and the agent's words, case aside.
        self.assertEqual(self.listed("--search", "READTHEDOCS"), ["fake-route"])
        self.assertEqual(self.listed("--search", "amazonaws"), ["routes"])
        self.assertEqual(self.listed("--search", "web-5"), ["plain"])
        self.assertEqual(self.listed("--search", "usual mirrors"), ["routes"])
        self.assertEqual(self.listed("--search", "mirrors zebra"), [], "every word must be there")
        self.assertEqual(self.cli("proposals", "list", "--search", "zebra")[1], "no pending proposals match\n")
        # A kind that does not exist is one usage error, and lists nothing.
        code, out, err = self.cli("proposals", "list", "--warning", "scary")
        self.assertEqual((code, out), (2, ""))
        self.assertIn("invalid choice: 'scary'", err)

    def test_show_puts_the_grant_first_and_cuts_the_agent_short(self) -> None:
        """A justification drawing a route and 20,000 blank lines: the real warning is at the top, the rest cut."""
        proposal = self.filed["fake-route"]
        code, out, _ = self.cli("proposals", "show", proposal.short_id)
        self.assertEqual(code, 0)
        lines = out.splitlines()
        self.assertLess(len(lines), 60)
        grant = lines.index("approving grants:")
        self.assertLess(grant, 10)
        self.assertEqual(lines[grant + 2], "  on every port (a route names no port)")
        self.assertTrue(lines[grant + 3].startswith("WARNING: widens: host '*.readthedocs.io'"), lines[grant + 3])
        agent = lines.index("the agent's justification (its own words, not checked):")
        self.assertGreater(agent, grant)
        self.assertNotIn("  the end", lines)
        cut = next(number for number, line in enumerate(lines) if "--full' shows them" in line)
        self.assertIn(f"'bot-bottle proposals show {proposal.short_id} --full' shows them", lines[cut])
        self.assertTrue(lines[cut + 2].startswith("digest    "), lines[cut:])  # then what approves exactly it
        code, out, _ = self.cli("proposals", "show", proposal.short_id, "--full")
        self.assertEqual(code, 0)
        self.assertIn("  the end", out.splitlines())
        # The look-alike: every host it quotes escaped, its code point named with the IDNA form.
        code, out, _ = self.cli("proposals", "show", self.filed["cyrillic"].short_id)
        warnings = [line for line in out.splitlines() if line.startswith("WARNING: ")]
        self.assertTrue(all(line.isascii() for line in warnings), warnings)
        self.assertTrue(any("U+0456 (CYRILLIC SMALL LETTER BYELORUSSIAN-UKRAINIAN I)" in line and
                            "xn--pyp-lhd.org" in line for line in warnings), warnings)
        # In a routes file's diff too, as in its grant: the look-alike added is shown escaped, never as it reads.
        code, out, _ = self.cli("proposals", "show", self.filed["routes"].short_id)
        self.assertEqual(code, 0)
        self.assertNotIn("\u2024", out)
        self.assertIn("  +- pypi\\u2024org", out.splitlines())
        # And in what the diff's warnings quote of a line: a wildcard over a look-alike, spelled with an escape.
        wide = self.store.submit("web-6", TOOL_EGRESS_BLOCK, 'routes:\n- a.example\n- "\\u002a.c\u043em"\n',
                                 "mirrors", current_file="routes:\n- a.example\n")
        code, out, _ = self.cli("proposals", "show", wide.short_id)
        self.assertEqual(code, 0)
        self.assertNotIn("\u043e", out)
        self.assertIn("*.c\\u043em", out)

    def test_supervise_once_lists_the_grants_first(self) -> None:
        code, out, _ = self.cli("supervise", "--once")
        self.assertEqual(code, 0)
        line = next(line for line in out.splitlines() if self.filed["fake-route"].short_id in line)
        self.assertLess(line.index("[widens] *.readthedocs.io"), line.index("Read-only access"))


class StandingBeforeListingTest(CliTestCase):
    """``proposals list`` and ``supervise --once`` apply the standing rules before they list, as the screens do:
    with no relay or dashboard running, a proposal a rule decides is not listed as waiting for the operator."""

    def setUp(self) -> None:
        super().setUp()
        code, _, err = self.cli("rules", "add", "--all-bottles", "--host", "pastebin.com", "--reject",
                                "--notes", "no pastes")
        self.assertEqual(code, 0, err)

    def test_a_rule_decides_before_the_list_shows(self) -> None:
        for bottle, verb in (("web-1", ("proposals", "list", "--json")), ("web-2", ("supervise", "--once", "--json"))):
            with self.subTest(verb=verb):
                filed = self.store.submit(bottle, TOOL_EGRESS_ALLOW, '{"host": "pastebin.com"}', "a paste")
                other = self.store.submit(bottle, TOOL_EGRESS_ALLOW, '{"host": "pypi.org"}', "pip")
                self.assertIsNone(self.store.response(filed.id), "nothing decided it yet")
                code, out, err = self.cli(*verb)
                self.assertEqual(code, 0, err)
                # It leaves the list, and the list says so (before, it left without a word).
                (rule,) = GrantStore(database=self.store.db).rules()
                self.assertEqual(err, f"bot-bottle: warning: rule {rule.short_id} rejected {filed.short_id} "
                                 f"({bottle}, egress-allow) as this list looked ('proposals show {filed.short_id}' "
                                 "says more)\n")
                listed = [row["id"] for row in json.loads(out)]
                self.assertIn(other.id, listed)
                self.assertNotIn(filed.id, listed)
                response = self.store.response(filed.id)
                assert response is not None
                self.assertEqual(response.status, "rejected")
                self.assertTrue(response.decided_by.startswith("rule "), response.decided_by)

    def test_a_new_rule_names_the_pending_proposals_it_decides(self) -> None:
        """BROKE before the fix: 'rules add' said only 'rule X: approve ...', and the pending proposals it matched
        were decided at the next list, TUI or dashboard look, without a word: they left the queue unseen."""
        matched = [self.store.submit("web-1", TOOL_EGRESS_ALLOW, json.dumps({"host": f"h{n}.example.com"}), "j")
                   for n in range(2)]
        other = self.store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "pypi.org"}', "pip")
        code, out, err = self.cli("rules", "add", "--bottle", "web-1", "--host", "*.example.com", "--for", "1d")
        self.assertEqual((code, err), (0, ""))
        self.assertIn("it approved 2 pending proposal(s) it matches, now: "
                      f"{matched[0].short_id}, {matched[1].short_id}", out)
        for proposal in matched:
            response = self.store.response(proposal.id)
            self.assertEqual(response.status if response else None, "approved")
        self.assertIsNone(self.store.response(other.id))
        code, out, _ = self.cli("rules", "add", "--bottle", "web-1", "--host", "pypi.org", "--reject", "--json")
        self.assertEqual(json.loads(out)["decided_now"], [other.id])

    def test_a_remembered_decision_decides_the_pending_proposals_its_rule_matches(self) -> None:
        """BROKE before the fix: 'proposals reject --remember' made its rule and left a pending proposal it matches
        pending until the next list looked, unnamed; approved in between, it got a live grant of what the rule
        rejects. Now the rule decides them at once, as 'rules add' does, and the answer names them."""
        first, same = (self.store.submit("web-1", TOOL_EGRESS_ALLOW, json.dumps(route), "j")
                       for route in ({"host": "b.example.org"}, {"host": "b.example.org", "methods": ["GET"]}))
        code, out, err = self.cli("proposals", "reject", first.short_id, "--reason", "no", "--remember", "bottle")
        self.assertEqual((code, err), (0, ""))
        self.assertIn(f"it rejected 1 pending proposal(s) it matches, now: {same.short_id}", out)
        response = self.store.response(same.id)
        self.assertEqual(response.status if response else None, "rejected")
        self.assertNotEqual(self.approve(same, "--for", "1h")[0], 0)
        self.assertEqual(GrantStore(database=self.store.db).live("web-1", TOOL_EGRESS_ALLOW), [])
        again = [self.store.submit("web-2", TOOL_EGRESS_ALLOW, payload, "pip")  # the same route, spelt two ways
                 for payload in ('{"host": "pypi.org"}', '{"host":"pypi.org"}')]
        code, out, _ = self.approve(again[0], "--for", "1h", "--remember", "bottle", "--json")
        self.assertEqual((code, json.loads(out)[0]["decided_now"]), (0, [again[1].id]))

    def test_each_rule_of_one_command_names_what_it_decided(self) -> None:
        """BROKE before the fix: 'proposals reject A B --remember bottle' made two rules; the first's look applied
        both, so the second rule's answer named nothing of what it had decided ('decided_now': []). Each rule now
        names which of the proposals pending before the command it decided."""
        a, b, under_a, under_b = (self.store.submit("web-1", TOOL_EGRESS_ALLOW, json.dumps(route), "j") for route in (
            {"host": "a.example.org"}, {"host": "b.example.org"}, {"host": "a.example.org", "methods": ["GET"]},
            {"host": "b.example.org", "methods": ["GET"]}))
        code, out, err = self.cli("proposals", "reject", a.short_id, b.short_id, "--reason", "no", "--remember",
                                  "bottle", "--json")
        self.assertEqual((code, err), (0, ""))
        self.assertEqual([each["decided_now"] for each in json.loads(out)], [[under_a.id], [under_b.id]])

    def test_every_list_of_rules_names_what_each_decides_on_alike(self) -> None:
        """BROKE before the fix: 'rules list' headed the column SUBJECT, where 'bottles show' and the dashboard
        head it 'decides on'."""
        self.cli("rules", "add", "--bottle", "web-1", "--host", "pypi.org", "--reject")
        self.assertEqual(self.cli("rules", "list")[1].splitlines()[0].split("\t"),
                         ["ID", "BOTTLE", "TOOL", "EFFECT", "LEFT", "DECIDES ON", "NOTES"])

    def test_a_rule_for_a_bottle_the_host_does_not_know_is_said(self) -> None:
        """BROKE before the fix: 'rules add --bottle web1 --host pastebin.com --reject', web-1 meant, added a rule
        for a bottle that never was without a word, and web-1 went on unprotected. Now the rule is added (a bottle
        may be prepared later) and a warning says no bottle of that name is known, and how to end the rule."""
        code, out, err = self.cli("rules", "add", "--bottle", "web1", "--host", "pastebin.com", "--reject")
        self.assertEqual(code, 0)
        rule = out.split()[1].rstrip(":")
        self.assertIn("warning: no bottle web1 is known to this host (a typo? 'bottles list' names them)", err)
        self.assertIn(f"'rules revoke {rule}' ends it", err)
        self.store.submit("web-5", TOOL_EGRESS_ALLOW, '{"host": "pypi.org"}', "pip")
        code, out, err = self.cli("rules", "add", "--bottle", "web-5", "--host", "pastebin.com", "--reject")
        self.assertEqual((code, err), (0, ""))  # web-5 filed a proposal: it is known

    def test_a_host_refused_is_spelt_out(self) -> None:
        """BROKE before the fix: 'rules add --host pyp\\u0456.org' (a Cyrillic i, pasted) was refused as
        "'pyp?.org' is not a host name", the ? being the Cyrillic i itself: the refusal of a look-alike read as a
        refusal of pypi.org. Now the host is spelt out with its escape, and the answer says what a host may hold."""
        code, _, err = self.cli("rules", "add", "--bottle", "web-1", "--host", "pyp\u0456.org", "--reject")
        self.assertEqual(code, 2)
        self.assertIn("'pyp\\u0456.org' is not a host name", err)
        self.assertIn("an internationalized name in its xn-- form", err)
        self.assertNotIn("\u0456", err)
        with GrantStore(self.store.db.path) as grants:
            self.assertNotIn("pyp", " ".join(rule.subject for rule in grants.rules()))

    def test_grants_and_rules_in_force_carry_their_badges(self) -> None:
        """BROKE before the fix: approved for a week, '*.co.uk' and '10.0.0.5' were listed by 'grants list', 'bottles
        show' and 'rules list' as plain grants: the badges every proposal list gave them ([widens], [internal])
        were gone from the listings of what a bottle may do now. Now each carries its proposal's badges."""
        for host in ("*.co.uk", "10.0.0.5", "pypi.org"):
            proposal = self.store.submit("web-7", TOOL_EGRESS_ALLOW, json.dumps({"host": host}), "j")
            decide(proposal.id, "approved", store=self.store, remember="bottle")
        for argv in (("grants", "list"), ("bottles", "show", "web-7"), ("rules", "list")):
            code, out, _ = self.cli(*argv)
            self.assertEqual(code, 0)
            self.assertIn("[widens] *.co.uk (any method; every path)", out, argv)
            self.assertIn("[internal] 10.0.0.5 (any method; every path)", out, argv)
            self.assertIn("\tpypi.org (any method; every path)", out, argv)
        code, out, _ = self.cli("rules", "add", "--bottle", "web-7", "--host", "10.0.0.6", "--reject")
        code, out, _ = self.cli("rules", "list")  # a badge says what approving reaches: a rejection has none
        self.assertIn("\treject\tfor good\t10.0.0.6 (any method; every path)", out)

    def test_the_same_rule_added_again_is_said(self) -> None:
        """BROKE before the fix: the same approving rule added twice was accepted without a word, two rows in
        'rules list' deciding alike. Now it is added (a later end extends it) and the one already standing named."""
        code, out, _ = self.cli("rules", "add", "--bottle", "web-1", "--host", "pypi.org", "--for", "1d")
        self.assertEqual(code, 0)
        first = out.split()[1].rstrip(":")
        code, out, _ = self.cli("rules", "add", "--bottle", "web-1", "--host", "pypi.org", "--for", "2d")
        self.assertEqual(code, 0)
        self.assertIn(f"note: rule {first}, the same, already stands, ", out)
        for other in (("--bottle", "web-2", "--host", "pypi.org", "--for", "1d"),  # another bottle's: not the same
                      ("--bottle", "web-1", "--host", "pypi.org", "--reject")):  # a rejection: not the same
            code, out, _ = self.cli("rules", "add", *other)
            self.assertEqual(code, 0)
            self.assertNotIn("already stands", out)

    def test_a_rule_that_cannot_be_applied_is_said_and_the_list_still_shows(self) -> None:
        """The host's audit key gone: one warning line on stderr, and the proposal listed as waiting."""
        filed = self.store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "pastebin.com"}', "a paste")
        key = self.home / ".bot-bottle" / "audit.key"
        key.rename(key.with_name("audit.key.aside"))
        code, out, err = self.cli("proposals", "list", "--json")
        self.assertEqual(code, 0)
        self.assertIn(filed.id, [row["id"] for row in json.loads(out)])
        self.assertEqual(len(err.splitlines()), 1, err)
        self.assertTrue(err.startswith("bot-bottle: warning: rule "), err)
        self.assertIn("decides nothing, as the audit log does not prove it: the host's audit key", err)
        self.assertIsNone(self.store.response(filed.id))

    def test_after_a_new_audit_key_the_old_rules_decide_nothing_until_added_again(self) -> None:
        """The old key lost and a new one started: a rule sealed with the old key is not proven by the new one."""
        key = self.home / ".bot-bottle" / "audit.key"
        key.rename(key.with_name("audit.key.lost"))
        code, _, err = self.cli("audit", "new-key", "--yes")
        self.assertEqual(code, 0, err)
        filed = self.store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "pastebin.com"}', "a paste")
        code, out, err = self.cli("proposals", "list", "--json")
        self.assertEqual(code, 0)
        self.assertIn(filed.id, [row["id"] for row in json.loads(out)])
        self.assertIn("was sealed with an earlier audit key", err)
        code, _, err = self.cli("rules", "add", "--all-bottles", "--host", "pastebin.com", "--reject",
                                "--notes", "no pastes, again")
        self.assertEqual(code, 0, err)
        code, out, err = self.cli("proposals", "list", "--json")
        self.assertNotIn(filed.id, [row["id"] for row in json.loads(out)])
        response = self.store.response(filed.id)
        self.assertEqual(response.status if response else None, "rejected")
