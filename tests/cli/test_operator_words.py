"""What a daily operator reads from the less-visited verbs (``rules``, ``bottles``, ``audit``, ``relay``, ``db``)
says the same thing the same way everywhere, and says nothing untrue.

Each test names what it broke before its fix.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from bot_bottle.bottles import BottleStore
from bot_bottle.cli.dashboard.pages import bottles_table
from bot_bottle.decisions import decide
from bot_bottle.errors import ValidationError
from bot_bottle.grants import GrantStore
from bot_bottle.policy.subjects import subject_of
from bot_bottle.records import STATUS_REJECTED, TOOL_EGRESS_ALLOW, TOOL_EGRESS_TOKEN_ALLOW, TOOL_GITLEAKS_ALLOW
from tests.cli.test_proposals_cmds import CliTestCase


class NewRuleLineTest(CliTestCase):
    def test_rules_add_and_remember_answer_a_new_rule_in_the_same_words(self) -> None:
        """BROKE before the fix: 'rules add' answered 'rule X: approve HOST (...) for web-1, 7d', and '--remember'
        'rule Y: approves the same again for web-1, until T (7d) ('rules revoke Y' ends it)': two wordings of one
        thing, and only one said how to end it."""
        filed = self.store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "pypi.org"}', "pip")
        code, out, err = self.approve(filed, "--for", "7d", "--remember", "bottle")
        self.assertEqual((code, err), (0, ""))
        remembered = GrantStore(database=self.store.db).remembered_by_decision(filed.id)
        assert remembered is not None
        self.assertIn(f"rule {remembered['id'][:8]}: approves the same again for web-1, until "
                      f"{remembered['ends_at']} (7d) ('rules revoke {remembered['id'][:8]}' ends it)", out)
        code, out, err = self.cli("rules", "add", "--bottle", "web-1", "--host", "docs.python.org", "--for", "7d")
        self.assertEqual((code, err), (0, ""))
        added = json.loads(self.cli("rules", "list", "--json")[1])[0]
        self.assertEqual(out.splitlines()[0],
                         f"rule {added['id'][:8]}: approves docs.python.org (any method; every path) for web-1, "
                         f"until {added['ends_at']} (7d) ('rules revoke {added['id'][:8]}' ends it)")
        code, out, err = self.cli("rules", "add", "--all-bottles", "--host", "pastebin.com", "--reject")
        self.assertEqual((code, err), (0, ""))
        added = json.loads(self.cli("rules", "list", "--json")[1])[0]
        self.assertEqual(out.splitlines()[0],
                         f"rule {added['id'][:8]}: rejects pastebin.com (any method; every path) for every bottle, "
                         f"for good ('rules revoke {added['id'][:8]}' ends it)")


class ExactRuleTest(CliTestCase):
    def test_an_approving_rule_names_what_it_leaves_to_you(self) -> None:
        """BROKE before the fix: 'rules add --bottle web-1 --host pypi.org' (any method, every path) approved the
        agent's pending 'pypi.org (GET; /simple/)' no more than a stranger's, and said nothing of it, while its
        --help promised every proposal 'that asks for this host, within these methods and paths'."""
        narrower = self.store.submit("web-1", TOOL_EGRESS_ALLOW,
                                     '{"host": "pypi.org", "methods": ["GET"], "paths": ["/simple/"]}', "pip")
        same = self.store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "pypi.org"}', "pip, all of it")
        other = self.store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "docs.python.org"}', "docs")
        code, out, err = self.cli("rules", "add", "--bottle", "web-1", "--host", "pypi.org", "--for", "7d")
        self.assertEqual((code, err), (0, ""))
        self.assertIn(f"it approved 1 pending proposal(s) it matches, now: {same.short_id}", out)
        self.assertIn(f"note: it leaves to you 1 pending proposal(s) for pypi.org with other methods or paths: "
                      f"{narrower.short_id} (pypi.org (GET; /simple/)); an approving rule approves exactly what it "
                      "names", out)
        self.assertNotIn(other.short_id, out)
        pending = [row["id"] for row in json.loads(self.cli("proposals", "list", "--json")[1])]
        self.assertEqual(sorted(pending), sorted([narrower.id, other.id]))  # as the note says
        code, out, err = self.cli("rules", "add", "--help")
        said = " ".join(out.split())
        self.assertNotIn("that asks for this host, within these methods and paths", said)
        self.assertIn("that asks for exactly this host, these methods and these paths", said)


class UnpreparedBottleTest(CliTestCase):
    def test_a_bottle_that_has_only_filed_is_not_called_prepared(self) -> None:
        """BROKE before the fix: a bottle the host never prepared, whose proposals came from a git-gate hook or a
        script, was listed as 'prepared' (by 'bottles list', 'bottles show', --json's shown_state and the
        dashboard), with its first proposal's time as when it was prepared."""
        filed = self.store.submit("hook-1", TOOL_EGRESS_ALLOW, '{"host": "pypi.org"}', "pip")
        bottles = BottleStore(database=self.store.db)
        bottles.prepared("web-1", "docker")
        self.store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "pypi.org"}', "pip")  # prepared, then filed
        self.store.submit("side-1", TOOL_EGRESS_ALLOW, '{"host": "pypi.org"}', "pip")
        bottles.heartbeat("side-1")  # its sidecar runs
        states = {row[0]: row[1] for row in
                  (line.split("\t") for line in self.cli("bottles", "list")[1].splitlines()[1:])}
        self.assertEqual(states, {"hook-1": "unprepared", "web-1": "prepared", "side-1": "running"})
        listed = {row["slug"]: row["shown_state"] for row in json.loads(self.cli("bottles", "list", "--json")[1])}
        self.assertEqual(listed, states)
        shown = self.cli("bottles", "show", "hook-1")[1]
        self.assertIn("state      unprepared (it has only filed: the host never prepared it", shown)
        self.assertIn(f"prepared   never (first filed {filed.created_at})", shown)
        # BROKE before (review 67): a sidecar run by hand, never prepared, read 'prepared <its first start>'.
        (side,) = [item.bottle for item in bottles.overview() if item.bottle.slug == "side-1"]
        self.assertIn(f"prepared   never (first seen {side.prepared_at})", self.cli("bottles", "show", "side-1")[1])
        self.assertIn("prepared   20", self.cli("bottles", "show", "web-1")[1])
        page = bottles_table(bottles.overview(), datetime.now(UTC))
        self.assertIn('<tr class="state-unprepared"><td>hook-1</td><td class="state">unprepared</td>', page)
        bottles.prepared("hook-1", "docker")  # prepared at last
        self.assertIn("hook-1\tprepared\tdocker", self.cli("bottles", "list")[1])

    def test_a_bottle_that_has_only_filed_has_no_transport(self) -> None:
        """BROKE before the fix: a bottle the host never prepared showed 'backend -' beside 'transport mount' (the
        column's default), in 'bottles list', 'bottles show' and the dashboard: no transport was ever chosen
        for it. It shows '-' there, as its backend, until it is prepared."""
        self.store.submit("hook-1", TOOL_EGRESS_ALLOW, '{"host": "pypi.org"}', "pip")
        bottles = BottleStore(database=self.store.db)
        self.assertIn("hook-1\tunprepared\t-\t-\t1", self.cli("bottles", "list")[1])
        self.assertIn("transport  -\n", self.cli("bottles", "show", "hook-1")[1])
        page = bottles_table(bottles.overview(), datetime.now(UTC))
        self.assertIn('<td class="state">unprepared</td><td>-</td><td>-</td>', page)
        bottles.prepared("hook-1", "docker")
        self.assertIn("hook-1\tprepared\tdocker\tmount", self.cli("bottles", "list")[1])
        self.assertIn("transport  mount\n", self.cli("bottles", "show", "hook-1")[1])


class AuditListTest(CliTestCase):
    def test_a_bottle_nobody_has_is_said_and_rules_are_named_short(self) -> None:
        """BROKE before the fix: 'audit list --bottle web1' (for web-1) answered 'no audit entries' without a word,
        where 'proposals list' and 'grants list' warn of a bottle the host does not know; and a standing rule's
        decision named its rule by all 32 digits in BY, where every other list names it by 8."""
        filed = self.store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "pypi.org"}', "pip")
        code, out, err = self.cli("rules", "add", "--bottle", "web-1", "--host", "pypi.org", "--for", "1h")
        self.assertEqual((code, err), (0, ""))
        (rule,) = GrantStore(database=self.store.db).rules()
        code, out, err = self.cli("audit", "list", "--bottle", "web1")
        self.assertEqual((code, out), (0, "no audit entries match\n"))
        self.assertEqual(err, "bot-bottle: warning: no bottle web1 is known to this host (a typo? 'bottles list' "
                         "names them)\n")
        code, out, err = self.cli("audit", "list", "--bottle", "web1", "--json")
        self.assertEqual((code, json.loads(out)), (0, []))
        self.assertIn("no bottle web1", err)
        self.assertEqual(self.cli("audit", "list", "--bottle", "all-bottles")[2], "")  # the log's every-bottle name
        code, out, err = self.cli("audit", "list", "--bottle", "web-1")
        self.assertEqual((code, err), (0, ""))
        decided = next(line.split("\t") for line in out.splitlines() if filed.short_id in line)
        self.assertEqual(decided[6], f"rule {rule.short_id}")
        self.assertEqual(json.loads(self.cli("audit", "list", "--json")[1])[0]["actor"], f"rule {rule.id}")


    def test_a_tool_the_log_never_names_is_said(self) -> None:
        """BROKE before the fix: 'audit list --tool egress-blok' answered 'no audit entries match' without a word,
        as if no routes file had ever been decided, where 'proposals list --tool' refuses the typo."""
        filed = self.store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "pypi.org"}', "pip")
        decide(filed.id, STATUS_REJECTED, "no", store=self.store)
        code, out, err = self.cli("audit", "list", "--tool", "egress-alow")
        self.assertEqual((code, out), (0, "no audit entries match\n"))
        self.assertEqual(err, "bot-bottle: warning: egress-alow is no tool the audit log records (a typo? it records "
                         "egress-block, egress-allow, gitleaks-allow, egress-token-allow, pending-ttl)\n")
        for tool in ("egress-allow", "egress-block", "pending-ttl"):  # a known one, with entries or without
            with self.subTest(tool):
                self.assertEqual(self.cli("audit", "list", "--tool", tool)[2], "")

class BackupTargetTest(CliTestCase):
    def test_a_folder_or_a_missing_folder_is_said_as_such(self) -> None:
        """BROKE before the fix: 'db backup ~/backups' (a folder, as cp takes one) said '~/backups already exists;
        choose another name', and 'db backup ~/nowhere/copy.db' said '~/nowhere is not a directory' of a folder
        that is not there at all."""
        code, out, err = self.cli("db", "backup", str(self.tmp))
        self.assertEqual((code, out), (1, ""))
        self.assertEqual(err, f"bot-bottle: error: {self.tmp.resolve()} is a folder; name the backup file to write "
                         f"in it ({self.tmp.resolve() / 'bot-bottle-copy.db'})\n")
        code, out, err = self.cli("db", "backup", str(self.tmp / "nowhere" / "copy.db"))
        self.assertEqual((code, out), (1, ""))
        self.assertIn(f"there is no folder {self.tmp.resolve() / 'nowhere'} (create it first", err)
        (self.tmp / "file").write_text("")
        self.assertIn(f"{self.tmp.resolve() / 'file'} is not a folder", self.cli("db", "backup", str(
            self.tmp / "file" / "copy.db"))[2])
        code, out, err = self.cli("db", "backup", str(self.tmp / "copy.db"))
        self.assertEqual((code, err), (0, ""))


class DbHelpTest(CliTestCase):
    def test_db_status_help_says_which_database_it_creates(self) -> None:
        """BROKE before the fix: 'db status --help' said 'A missing database is created and migrated', and 'db
        status --db ~/mistyped.db' refuses one (as it should: a --db you name must exist); 'db check --help' left
        out the live schema it compares, which its answer and the README name."""
        status = self.cli("db", "status", "--help")[1]
        self.assertIn("A missing host database is created and migrated; a --db you name must exist ('db upgrade "
                      "--db PATH' creates one).", " ".join(status.split()))
        missing = self.tmp / "mistyped.db"
        code, _, err = self.cli("db", "status", "--db", str(missing))
        self.assertEqual(code, 1)
        self.assertIn("no database there", err)
        self.assertFalse(missing.exists())
        self.assertIn("compare the live schema (tables, indexes, triggers) with what the applied migrations build",
                      " ".join(self.cli("db", "check", "--help")[1].split()))


class KeptHeadTest(CliTestCase):
    def test_a_head_kept_from_another_database_says_so(self) -> None:
        """BROKE before the fix: 'audit verify --head head.json' run without the --db the head was kept from said
        only 'the log was rewritten or cut before it', of a log that was whole: the head names its database, and
        now the answer names both."""
        filed = self.store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "pypi.org"}', "pip")
        self.assertEqual(self.approve(filed, "--for", "1h")[0], 0)
        other = self.tmp / "other.db"
        self.assertEqual(self.cli("db", "backup", str(other))[0], 0)  # the same log, one entry short of the next
        again = self.store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "docs.python.org"}', "docs")
        self.assertEqual(self.approve(again, "--for", "1h")[0], 0)
        head = self.tmp / "head.json"
        head.write_text(self.cli("audit", "head")[1])
        code, out, err = self.cli("audit", "verify", "--head", str(head), "--db", str(other))
        self.assertEqual((code, out), (1, ""))
        self.assertIn("the log was rewritten or cut before it (or it is another database's: it was kept from "
                      f"{self.store.db.path}, and this is {other.resolve()}; --db names one)", err)
        code, out, err = self.cli("audit", "verify", "--head", str(head))
        self.assertEqual((code, err), (0, ""))
        head.write_text(json.dumps({**json.loads(head.read_text()), "seq": 1}))  # the host's own, cut: no such word
        code, _, err = self.cli("audit", "verify", "--head", str(head))
        self.assertEqual(code, 1)
        self.assertNotIn("another database", err)


class DowngradeTest(CliTestCase):
    def test_a_downgrade_says_the_next_command_upgrades_it_again(self) -> None:
        """BROKE before the fix: after 'db downgrade --to 6', the operator's next 'bottles list' (to see what is
        left) migrated the database back to the newest version without a word: neither the answer nor --help
        said that opening a database migrates it."""
        path = self.tmp / "old.db"
        self.assertEqual(self.cli("db", "upgrade", "--db", str(path))[0], 0)
        code, out, err = self.cli("db", "downgrade", "--to", "6", "--db", str(path))
        self.assertEqual((code, err), (0, ""))
        self.assertEqual(out.splitlines()[-1], "note: this bot-bottle migrates it up again at the next command that "
                         "opens it (all but 'db status', 'db check', 'db path' and 'doctor', which only read it): "
                         "open it with the bot-bottle it is for")
        self.assertIn("every later command of this bot-bottle but db status, db check, db path and doctor upgrades "
                      "it again", " ".join(self.cli("db", "downgrade", "--help")[1].split()))
        self.assertNotIn("note:", self.cli("db", "downgrade", "--to", "6", "--db", str(path))[1])  # nothing done
        self.assertEqual(self.cli("db", "check", "--db", str(path))[0], 0)
        self.assertIn("version:  6 of ", self.cli("db", "status", "--db", str(path))[1])


class MalformedDigestTest(CliTestCase):
    def test_a_digest_that_is_no_digest_is_a_malformed_argument(self) -> None:
        """BROKE before the fix: 'proposals approve ID --digest abc' (a digest cut short in the paste) was told,
        exit 1, that the proposal 'was rewritten in the database since', its routes file's approval changed or
        the digest was another's: three causes, none of them this one. Refused now as what it is (exit 2)."""
        filed = self.store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "pypi.org"}', "pip")
        for verb, more in (("approve", ()), ("reject", ("--reason", "no")), ("modify", ("--file", "-"))):
            code, out, err = self.cli("proposals", verb, filed.short_id, "--digest", "9b1c...", *more)
            self.assertEqual((code, out), (2, ""), verb)
            self.assertIn("argument --digest: '9b1c...' is not a digest: 'proposals show ID' prints one, "
                          "64 hex digits", err)
            self.assertNotIn("rewritten", err)
        digest = json.loads(self.cli("proposals", "show", filed.id, "--json")[1])["digest"]
        code, _, err = self.cli("proposals", "approve", filed.short_id, "--digest", f" {digest.upper()} ")
        self.assertEqual((code, err), (0, ""), "a whole digest, as pasted, still approves")


class ReportOnlyReasonTest(CliTestCase):
    def test_a_report_approved_without_a_reason_is_told_so_in_plain_words(self) -> None:
        """BROKE before the fix: approving an egress-token-allow report without --notes said 'approving a
        egress-token-allow proposal needs a reason' (the dashboard too), and an unparsable one 'a
        egress-token-allow report must be JSON'."""
        report = '{"host": "api.github.com", "method": "POST", "detector": "github-pat", "fingerprint": "ab"}'
        filed = self.store.submit("web-1", TOOL_EGRESS_TOKEN_ALLOW, report, "the deploy token")
        code, _, err = self.approve(filed)
        self.assertEqual(code, 2)
        self.assertIn("--notes: egress-token-allow is report-only: approving it needs a reason", err)
        for tool in (TOOL_EGRESS_TOKEN_ALLOW, TOOL_GITLEAKS_ALLOW):
            for document, why in (("{", "must be JSON"), ("[]", "must be a JSON object")):
                with self.assertRaises(ValidationError) as raised:
                    subject_of(tool, document)
                self.assertEqual(str(raised.exception), f"payload: {tool}'s report {why}")


class GrantUntilATimeTest(CliTestCase):
    def test_a_grant_asked_to_last_until_a_time_does_not_end_before_it(self) -> None:
        """BROKE before the fix: 'proposals approve ID --for 2026-12-31T18:00Z' answered 'until
        2026-12-31T17:59:59.382161Z' (and --for 2026-12-31 'until 2026-12-30T23:59:59...'): the seconds to the
        time asked were cut to whole ones, counted from before the decision. It ends at the time asked now, or
        within the second after it."""
        until = (datetime.now(UTC) + timedelta(days=3)).replace(second=0, microsecond=0)
        asked = until.strftime("%Y-%m-%dT%H:%MZ")
        filed = self.store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "pypi.org"}', "pip")
        code, out, err = self.approve(filed, "--for", asked)
        self.assertEqual((code, err), (0, ""))
        ends_at = GrantStore(database=self.store.db).listing()[0].ends_at
        self.assertIn(f"until {ends_at} ", out)
        self.assertGreaterEqual(ends_at, until.strftime("%Y-%m-%dT%H:%M:%S.000000Z"))
        self.assertLess(ends_at, (until + timedelta(seconds=2)).strftime("%Y-%m-%dT%H:%M:%S.000000Z"))


class OneEntryTest(CliTestCase):
    def test_one_entry_is_said_as_one(self) -> None:
        """BROKE before the fix (review 67): 'audit verify' of a log of one entry said 'audit log whole: 1 entries'."""
        filed = self.store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "pypi.org"}', "pip")
        decide(filed.id, "approved", "", decided_by="ann", store=self.store)
        code, out, err = self.cli("audit", "verify")
        self.assertEqual((code, err), (0, ""))
        self.assertTrue(out.startswith("audit log whole: 1 entry, 1 sealed with the host's key"), out)
