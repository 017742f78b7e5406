"""``bot-bottle prepare --routes-file`` and ``bottles routes``: the routes file a bottle is launched with, recorded by
the host as approved, so its sidecar's first routes proposal is read against it and not against the sidecar's word."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bot_bottle.audit_store import AuditStore
from bot_bottle.cli.launch_routes import LAUNCH_JUSTIFICATION
from bot_bottle.decisions import decide
from bot_bottle.queue_store import QueueStore
from bot_bottle.records import MAX_PAYLOAD_BYTES, STATUS_APPROVED, STATUS_REJECTED, TOOL_EGRESS_BLOCK
from tests.helpers.support import TempDirTest

FIRST = "routes:\n- a.com\n"
SECOND = "routes:\n- a.com\n- b.com\n"
EVIL = "routes:\n- a.com\n- b.com\n- evil-exfil.example.net\n"


class LaunchRoutesTest(TempDirTest):
    def routes_file(self, text: str, name: str = "routes.yaml") -> Path:
        path = self.tmp / name
        path.write_text(text, encoding="utf-8")
        return path

    def prepare(self, path: Path, slug: str = "web-1") -> dict[str, Any]:
        result = self.run_cli("prepare", slug, "--backend", "docker", "--routes-file", str(path), "--json")
        self.assertEqual((result.returncode, result.stderr), (0, ""))
        routes = json.loads(result.stdout)["routes_file"]
        assert isinstance(routes, dict)
        return routes

    def store(self) -> QueueStore:
        store = QueueStore(None)
        self.addCleanup(store.close)
        return store

    def audit_count(self) -> int:
        store = self.store()
        return AuditStore(database=store.db).count()

    def listed(self) -> str:
        result = self.run_cli("proposals", "list")
        self.assertEqual((result.returncode, result.stderr), (0, ""))
        return result.stdout

    def test_the_launch_file_is_what_the_first_routes_proposal_is_read_against(self) -> None:
        """Without it a sidecar's lie about its first routes file reads as every host new; with it, as what the
        lie adds to the file the bottle runs, and an honest proposal as exactly what it adds."""
        store = self.store()
        lie = store.submit("web-1", TOOL_EGRESS_BLOCK, EVIL, "routine", current_file=EVIL)
        self.assertIn("[drifted] routes file: adds a.com, b.com, evil-exfil.example.net", self.listed())
        recorded = self.prepare(self.routes_file(FIRST))
        self.assertTrue(recorded["recorded"])
        launch = store.get(recorded["proposal"])
        self.assertEqual((launch.payload, launch.justification, launch.queue_key),
                         (FIRST, LAUNCH_JUSTIFICATION, "web-1"))
        response = store.response(launch.id)
        assert response is not None
        self.assertEqual(response.status, STATUS_APPROVED)
        self.assertIn("[drifted] routes file: adds b.com, evil-exfil.example.net", self.listed())
        honest = store.submit("web-1", TOOL_EGRESS_BLOCK, SECOND, "docs", current_file=FIRST)
        shown = self.run_cli("proposals", "show", honest.id)
        self.assertIn("routes file: adds b.com\n", shown.stdout)
        self.assertNotIn("drifted", shown.stdout)
        self.assertIn("diff (current -> proposed):", shown.stdout)
        self.assertIn("routes file: adds b.com, evil-exfil.example.net", self.run_cli("proposals", "show",
                                                                                        lie.id).stdout)
        verify = self.run_cli("audit", "verify")
        self.assertEqual(verify.returncode, 0, verify.stdout + verify.stderr)

    def test_the_text_says_what_was_recorded_and_what_it_grants(self) -> None:
        """The command read the file, not the operator (it often lives in the agent's checkout): what it grants
        is said, its cautions too, in text and in --json."""
        path = self.routes_file('routes:\n  - host: a.com\n  - host: "*.readthedocs.io"\n')
        first = self.run_cli("prepare", "web-1", "--backend", "docker", "--routes-file", str(path))
        self.assertEqual((first.returncode, first.stderr), (0, ""))
        self.assertIn(f"routes:     {path}: recorded as approved (proposal ", first.stdout)
        self.assertIn("\n              routes file: adds a.com, *.readthedocs.io\n", first.stdout)
        self.assertIn("\n              the whole file: 3 line(s), sha256 ", first.stdout)
        self.assertIn("\n              WARNING: widens: line 3 (new) widens access: host '*.readthedocs.io'",
                      first.stdout)
        again = self.run_cli("prepare", "web-1", "--backend", "docker", "--routes-file", str(path))
        self.assertIn(f"routes:     {path}: already its approved routes file (proposal ", again.stdout)
        said = self.run_cli("bottles", "routes", "web-1", str(path))
        self.assertIn("\n  routes file: adds a.com, *.readthedocs.io\n", said.stdout)
        recorded = self.prepare(path)
        self.assertEqual(recorded["grants"][0], "routes file: adds a.com, *.readthedocs.io")
        self.assertEqual([warning["kind"] for warning in recorded["warnings"]], ["widens"])

    def test_prepared_again_it_records_nothing_new_and_a_new_file_replaces_the_old(self) -> None:
        first = self.prepare(self.routes_file(FIRST))
        count = self.audit_count()
        again = self.prepare(self.routes_file(FIRST))
        self.assertEqual((again["recorded"], again["proposal"]), (False, first["proposal"]))
        self.assertEqual(self.audit_count(), count)
        newer = self.prepare(self.routes_file(SECOND, "newer.yaml"))
        self.assertTrue(newer["recorded"])
        grants = self.run_cli("grants", "list", "--json")
        in_force = [grant["proposal_id"] for grant in json.loads(grants.stdout)]
        self.assertEqual(in_force, [newer["proposal"]])  # the launch file replaced ends the old one's grant
        self.assertEqual(self.audit_count(), count + 2)  # its approval, and the old grant's end
        # Another bottle's launch file is its own.
        other = self.prepare(self.routes_file(FIRST), slug="web-2")
        self.assertNotEqual(other["proposal"], first["proposal"])

    def test_the_same_file_waiting_from_the_sidecar_is_approved_as_filed(self) -> None:
        store = self.store()
        waiting = store.submit("web-1", TOOL_EGRESS_BLOCK, FIRST, "the agent's words", current_file=None)
        recorded = self.prepare(self.routes_file(FIRST))
        self.assertEqual((recorded["proposal"], recorded["recorded"]), (waiting.id, True))
        response = store.response(waiting.id)
        assert response is not None
        self.assertEqual(response.status, STATUS_APPROVED)

    def test_a_rejected_file_is_not_recorded(self) -> None:
        store = self.store()
        rejected = store.submit("web-1", TOOL_EGRESS_BLOCK, FIRST, "please", current_file=None)
        decide(rejected.id, STATUS_REJECTED, "no", store=store)
        count = self.audit_count()
        result = self.run_cli("prepare", "web-1", "--backend", "docker", "--routes-file", str(self.routes_file(FIRST)))
        self.assert_clean_error(result, 2, "--routes-file: this file was rejected for web-1", "nothing recorded")
        self.assertEqual(self.audit_count(), count)

    def test_a_rejection_says_how_it_is_lifted_whether_or_not_its_agent_has_it(self) -> None:
        """BROKE before the fix: a rejection still waiting for its agent was refused with 'that answer stands;
        nothing recorded', and the same rejection once archived with 'that answer stands until you approve the
        file when the bottle proposes it again': two wordings of one refusal, only one saying what lifts it."""
        self.assertEqual(self.run_cli("prepare", "web-1", "--backend", "docker").returncode, 0)
        store = self.store()
        rejected = store.submit("web-1", TOOL_EGRESS_BLOCK, FIRST, "please", current_file=None)
        decide(rejected.id, STATUS_REJECTED, "no", store=store)
        path = str(self.routes_file(FIRST))
        said = []
        for archived in (False, True):
            if archived:
                store.archive(rejected.id)
            result = self.run_cli("bottles", "routes", "web-1", path)
            self.assertEqual(result.returncode, 2)
            said.append(result.stderr)
        self.assertEqual(said[0], said[1])
        self.assertIn(f"this file was rejected for web-1 (proposal {rejected.short_id}, by ", said[0])
        self.assertIn("and that answer stands until you approve the file when the bottle proposes it again; "
                      "nothing recorded", said[0])

    def test_a_file_that_cannot_be_read_changes_nothing(self) -> None:
        """Each refused in one line, exit 2, before the database exists."""
        directory = self.tmp / "a-directory"
        directory.mkdir()
        not_utf8 = self.tmp / "latin1.yaml"
        not_utf8.write_bytes(b"routes:\n- caf\xe9.example\n")
        cases = [
            (self.tmp / "missing.yaml", "cannot read"),
            (directory, "cannot read"),
            (not_utf8, "is not UTF-8 text"),
            (self.routes_file("", "empty.yaml"), "--routes-file"),
            (self.routes_file("#" * (MAX_PAYLOAD_BYTES + 1), "long.yaml"), "--routes-file"),
        ]
        for path, needle in cases:
            with self.subTest(path=path.name):
                result = self.run_cli("prepare", "web-1", "--backend", "docker", "--routes-file", str(path))
                self.assert_clean_error(result, 2, "--routes-file", needle)
                self.assertFalse((self.home / ".bot-bottle").exists(), "prepare created something before refusing")

    def test_bottles_routes_records_it_for_a_bottle_already_prepared(self) -> None:
        """Without preparing it again (which, for the relay, mints a new token)."""
        path = self.routes_file(FIRST)
        unknown = self.run_cli("bottles", "routes", "web-1", str(path))
        self.assert_clean_error(unknown, 1, "no bottle web-1")
        self.assertEqual(self.audit_count(), 0)
        self.assertEqual(self.run_cli("prepare", "web-1", "--backend", "docker").returncode, 0)
        store = self.store()
        lie = store.submit("web-1", TOOL_EGRESS_BLOCK, EVIL, "routine", current_file=EVIL)
        said = self.run_cli("bottles", "routes", "web-1", str(path))
        self.assertEqual((said.returncode, said.stderr), (0, ""))
        self.assertIn(f"{path}: recorded as approved for web-1 (proposal ", said.stdout)
        self.assertIn("[drifted] routes file: adds b.com, evil-exfil.example.net", self.listed())
        again = self.run_cli("bottles", "routes", "web-1", str(path), "--json")
        self.assertFalse(json.loads(again.stdout)["recorded"])
        self.assert_clean_error(self.run_cli("bottles", "routes", "web-1", str(self.tmp / "missing")), 2,
                                "FILE: cannot read")
        self.assertIsNone(store.response(lie.id))

    def test_the_audit_log_names_the_command_that_recorded_it(self) -> None:
        """BROKE before the fix: a file 'bottles routes' recorded for a running bottle was kept in the audit log as
        'recorded at launch (bot-bottle prepare --routes-file)', with a justification naming prepare: no launch,
        and not the command the operator ran."""
        self.assertEqual(self.run_cli("prepare", "web-1", "--backend", "docker").returncode, 0)
        said = self.run_cli("bottles", "routes", "web-1", str(self.routes_file(FIRST)), "--json")
        self.assertEqual((said.returncode, said.stderr), (0, ""))
        store = self.store()
        recorded = store.get(json.loads(said.stdout)["proposal"])
        self.assertEqual(recorded.justification,
                         "the routes file this bottle runs with, recorded by 'bot-bottle bottles routes'")
        listed = self.run_cli("audit", "list", "--bottle", "web-1").stdout
        self.assertIn("recorded as the file it runs with (bot-bottle bottles routes)", listed)
        self.assertNotIn("recorded at launch", listed)
        self.prepare(self.routes_file(SECOND))
        self.assertIn("recorded at launch (bot-bottle prepare --routes-file)",
                      self.run_cli("audit", "list", "--bottle", "web-1").stdout)

    def test_a_file_that_replaces_an_approved_one_says_so(self) -> None:
        """BROKE before the fix: 'bottles routes web-1 FILE' (and 'prepare --routes-file') over a bottle whose
        routes file you had approved (or modified) answered 'recorded as approved ...; it grants: routes file:
        adds a.com' and nothing more, while it ended that approval's grant: the file it replaced, and the hosts
        only that one named, went unsaid. It names the grant it ended, and its proposal, in text and --json."""
        self.assertEqual(self.run_cli("prepare", "web-1", "--backend", "docker").returncode, 0)
        store = self.store()
        proposed = store.submit("web-1", TOOL_EGRESS_BLOCK, SECOND, "b.com too", current_file=FIRST)
        decide(proposed.id, STATUS_APPROVED, "ok", store=store, shown=proposed)
        old = json.loads(self.run_cli("grants", "list", "--json").stdout)[0]["id"]
        said = self.run_cli("bottles", "routes", "web-1", str(self.routes_file(FIRST)))
        self.assertEqual((said.returncode, said.stderr), (0, ""))
        self.assertIn(f"\n  it replaces the routes file approved on proposal {proposed.short_id}: grant {old[:8]} "
                      "ended ('grants list --all')\n", said.stdout)
        again = self.prepare(self.routes_file(SECOND, "newer.yaml"))
        first = json.loads(self.run_cli("proposals", "list", "--all", "--json").stdout)[-2]["id"]
        ended = [grant for grant in json.loads(self.run_cli("grants", "list", "--all", "--json").stdout)
                 if grant["proposal_id"] == first]
        self.assertEqual(again["replaced"], [{"grant": ended[0]["id"], "proposal": first}])
        self.assertEqual(self.prepare(self.routes_file(SECOND, "newer.yaml"))["replaced"], [], "nothing ended")
        waiting = store.submit("web-1", TOOL_EGRESS_BLOCK, EVIL, "the same, from its sidecar", current_file=SECOND)
        said = json.loads(self.run_cli("bottles", "routes", "web-1", str(self.routes_file(EVIL, "evil.yaml")),
                                       "--json").stdout)
        self.assertEqual((said["proposal"], [each["proposal"] for each in said["replaced"]]),
                         (waiting.id, [again["proposal"]]), "approved as filed, and what it replaced named")

    def test_a_rejection_names_the_routes_files_in_force_that_name_its_host(self) -> None:
        """'rules add --reject' names each routes file in force in its scope naming the host (it ends none).

        Before (review 67): a rejection of crates.io for web-1 said nothing of web-1's routes file, which
        names crates.io and goes on letting it through; the operator read the rejection as the end of it."""
        web1 = self.prepare(self.routes_file("routes:\n- pypi.org\n- crates.io\n", "one.yaml"))
        web2 = self.prepare(self.routes_file("routes:\n- npmjs.org\n", "two.yaml"), slug="web-2")
        approval = self.store().get(web1["proposal"])
        listed = {line.split("\t")[1]: line.split("\t")[0] for line in
                  self.run_cli("grants", "list").stdout.splitlines()[1:] if "\t" in line}
        said = self.run_cli("rules", "add", "--bottle", "web-1", "--host", "crates.io", "--reject")
        self.assertEqual(said.returncode, 0, said.stderr)
        self.assertIn(f"note: web-1's routes file in force (grant {listed['web-1']}", said.stdout)
        self.assertIn(f"approved on proposal {approval.short_id}", said.stdout)
        self.assertIn("a rule ends no part of a routes file", said.stdout)
        self.assertIn(listed["web-1"], self.run_cli("grants", "list").stdout, "named, not ended")

        def naming(*args: str) -> list[str]:
            result = self.run_cli("rules", "add", *args, "--reject", "--json")
            self.assertEqual(result.returncode, 0, result.stderr)
            named = json.loads(result.stdout)["routes_files_naming_it"]
            assert isinstance(named, list)
            return named

        self.assertEqual([each[:8] for each in naming("--all-bottles", "--host", "npmjs.org")], [listed["web-2"]])
        self.assertEqual(naming("--bottle", "web-2", "--host", "pypi.org"), [], "pypi.org is web-1's, not web-2's")
        self.assertEqual(naming("--bottle", "web-1", "--host", "*.crates.io"), [], "the file names no name under it")
        self.assertTrue(web2["recorded"])

    def test_the_file_on_record_stays_proven_beside_a_standing_rejection(self) -> None:
        """BROKE before the fix (found re-reading review 68's change): once any standing rejection stood for the
        bottle, 'bottles routes' (and 'prepare --routes-file') of the very file on record refused it as 'not proven
        by this host's sealed audit log', which 'audit verify' found whole: the proof compared the reading a pending
        proposal gets, its rejections included, with the file alone."""
        path = self.routes_file(FIRST)
        self.assertTrue(self.prepare(path)["recorded"])
        said = self.run_cli("rules", "add", "--bottle", "web-1", "--host", "crates.io", "--reject")
        self.assertEqual(said.returncode, 0, said.stderr)
        again = self.run_cli("bottles", "routes", "web-1", str(path))
        self.assertEqual(again.returncode, 0, again.stderr)
        self.assertIn("already its approved routes file for web-1", again.stdout)
        self.assertFalse(self.prepare(path)["recorded"])
