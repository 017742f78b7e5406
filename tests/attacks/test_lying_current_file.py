"""A sidecar that lies about its bottle's current routes file: what the operator reads first holds.

Hostile review 50: an ``egress-block`` proposal is summarized against the
current file the sidecar sends with it, so a payload naming
``evil-exfil.example.net`` sent with itself as its "current file" listed as
``routes file: unchanged``, and approving it installed the whole file. The
screens now read it against the last routes file approved for the bottle (as
the host's sealed audit log proves it), say ``drifted`` where the sidecar's
is another, and take no row a sidecar can write as that proof.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from unittest import mock

from bot_bottle.audit import routes_approved
from bot_bottle.audit.routes_approved import NO_ROUTES_ON_RECORD
from bot_bottle.audit_store import AuditStore
from bot_bottle.cli.inbox import Inbox
from bot_bottle.cli.launch_routes import record_launch_routes
from bot_bottle.decisions import decide
from bot_bottle.grants import GrantStore, revoke_grant_in
from bot_bottle.records import (
    ACTION_GRANT_REVOKED,
    STATUS_APPROVED,
    STATUS_MODIFIED,
    STATUS_REJECTED,
    TOOL_EGRESS_BLOCK,
    Proposal,
    sha256_text,
)
from bot_bottle.timestamps import utc_now
from tests.cli.test_proposals_cmds import CliTestCase
from tests.helpers.dashboard import DashboardCase

FIRST = "routes:\n- a.com\n"
SECOND = "routes:\n- a.com\n- b.com\n"
EVIL = "routes:\n- a.com\n- b.com\n- evil-exfil.example.net\n"
ALL_NEW = "routes file: adds a.com, b.com, evil-exfil.example.net"


class LyingCurrentFileTest(CliTestCase):
    def file(self, payload: str, current: str | None, bottle: str = "web-1") -> Proposal:
        return self.store.submit(bottle, TOOL_EGRESS_BLOCK, payload, "routine update", current_file=current)

    def approved(self, payload: str = SECOND, current: str | None = FIRST, bottle: str = "web-1") -> Proposal:
        proposal = self.file(payload, current, bottle)
        decide(proposal.id, STATUS_APPROVED, store=self.store)
        return proposal

    def printed(self, *argv: str) -> str:
        code, out, err = self.cli(*argv)
        self.assertEqual((code, err), (0, ""))
        return out

    @contextmanager
    def unguarded(self) -> Iterator[sqlite3.Connection]:
        """The database file as a sidecar on the mount opens it, in one transaction, its triggers (the schema's
        guards) dropped and put back after, as a careful sidecar does (the host's next write would make them
        again, and say so: ``schema.guard``)."""
        raw = sqlite3.connect(self.store.db.path)
        self.addCleanup(raw.close)
        with raw:
            triggers = raw.execute("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'").fetchall()
            for name, _ in triggers:
                raw.execute(f'DROP TRIGGER "{name}"')
            yield raw
            for _, sql in triggers:
                raw.execute(sql)

    def grants(self, proposal: Proposal) -> dict[str, object]:
        code, out, err = self.cli("proposals", "show", proposal.id, "--json")
        self.assertEqual((code, err), (0, ""))
        grants = json.loads(out)["grants"]
        assert isinstance(grants, dict)
        return grants

    def kinds(self, proposal: Proposal) -> list[str]:
        warnings = self.grants(proposal)["warnings"]
        assert isinstance(warnings, list)
        return [warning["kind"] for warning in warnings]

    def test_the_lie_is_read_against_the_approved_file(self) -> None:
        first = self.approved()
        lie = self.file(EVIL, EVIL)  # "current file": the payload itself
        grants = self.grants(lie)
        self.assertEqual(grants["summary"], "routes file: adds evil-exfil.example.net")
        self.assertEqual(self.kinds(lie), ["drifted"])
        warning = grants["warnings"][0]["text"]  # type: ignore[index]
        self.assertIn(f"is not the last one approved for this bottle (proposal {first.short_id}, ", warning)
        # The list, the detail and its diff: from the approved file, and labelled so.
        out = self.printed("proposals", "list")
        self.assertIn("[drifted] routes file: adds evil-exfil.example.net", out)
        out = self.printed("proposals", "show", lie.short_id)
        self.assertIn("  routes file: adds evil-exfil.example.net", out)
        self.assertIn("WARNING: drifted: the current routes file the sidecar sent is not the last one approved", out)
        self.assertIn("diff (last approved -> proposed):", out)
        self.assertIn("+- evil-exfil.example.net", out)
        self.assertEqual(self.cli("proposals", "list", "--json", "--warning", "drifted")[1].count(lie.id), 1)
        # The long-running screens' inbox reads it the same way.
        entry = Inbox(self.store).pending()[0]
        self.assertEqual(entry.approval.summary, "routes file: adds evil-exfil.example.net")
        self.assertEqual(entry.approval.kinds, ("drifted",))

    def test_a_first_file_is_read_against_none_until_one_is_on_record(self) -> None:
        """BROKE before the fix: before any routes file of the bottle's was approved, the sidecar's current file
        was taken at its word, so the lie of a bottle's first routes file still read 'routes file: unchanged'."""
        lie = self.file(EVIL, EVIL, bottle="web-2")
        grants = self.grants(lie)
        self.assertEqual((grants["summary"], self.kinds(lie)),
                         ("routes file: adds a.com, b.com, evil-exfil.example.net", ["drifted"]))
        self.assertIn("no routes file is on record for this bottle", grants["warnings"][0]["text"])  # type: ignore[index]
        out = self.printed("proposals", "list")
        self.assertIn("[drifted] routes file: adds a.com, b.com, evil-exfil.example.net", out)
        self.assertNotIn("unchanged", out)
        self.assertIn("diff (no file -> proposed):", self.printed("proposals", "show", lie.short_id))
        # The file the bottle is launched with, recorded by the host ('prepare --routes-file'): read against it.
        record_launch_routes(self.store, "web-2", FIRST)
        self.assertEqual((self.grants(lie)["summary"], self.kinds(lie)),
                         ("routes file: adds b.com, evil-exfil.example.net", ["drifted"]))

    def test_the_diff_names_the_file_it_starts_from(self) -> None:
        """BROKE before the fix: under 'diff (last approved -> proposed):' (or 'no file -> proposed') the diff's
        own first line read '--- current', the sidecar's file, the very one the drifted caution says it was not
        read against."""
        self.approved()
        lie = self.file(EVIL, EVIL)
        out = self.printed("proposals", "show", lie.short_id)
        self.assertIn("diff (last approved -> proposed):\n  --- last approved\n  +++ proposed\n", out)
        first = self.file(EVIL, EVIL, bottle="web-2")
        out = self.printed("proposals", "show", first.short_id)
        self.assertIn("diff (no file -> proposed):\n  --- no file\n  +++ proposed\n", out)
        record_launch_routes(self.store, "web-3", FIRST)
        honest = self.file(SECOND, FIRST, bottle="web-3")
        self.assertIn("diff (current -> proposed):\n  --- current\n  +++ proposed\n",
                      self.printed("proposals", "show", honest.short_id))

    def test_a_decided_first_file_says_none_was_on_record_then(self) -> None:
        """BROKE before the fix: once approved, a bottle's first routes file still said 'no routes file is on record
        for this bottle', and how to record one, of a bottle whose file that very approval had put on record."""
        first = self.file(SECOND, FIRST, bottle="web-2")
        self.assertIn("no routes file is on record for this bottle", self.printed("proposals", "show", first.id))
        decide(first.id, STATUS_APPROVED, store=self.store)
        out = self.printed("proposals", "show", first.id)
        self.assertIn("WARNING: drifted: no routes file was on record for this bottle when it was decided", out)
        self.assertNotIn("is on record", out)
        self.assertNotIn("bottles routes SLUG FILE", out)
        self.assertIn("diff (no file -> proposed):", out)  # still read as it was when it was decided

    def test_a_long_log_is_not_walked_for_a_bottle_with_none_on_record(self) -> None:
        """Read against none either way: the caution says why (none on record), not that a long log was left
        unchecked, which sent the operator to 'audit verify' for nothing on a busy host."""
        self.approved()  # web-1's: entries a walk from the log's start would have to check
        with mock.patch.object(routes_approved, "ROUTES_PROOF_SPAN", 0), \
                mock.patch.object(routes_approved, "sealed_in_order") as walk:
            first = self.file(EVIL, EVIL, bottle="web-2")
            (warning,) = self.grants(first)["warnings"]  # type: ignore[misc]
        self.assertEqual(warning["text"], NO_ROUTES_ON_RECORD)
        walk.assert_not_called()

    def test_with_the_file_on_record_and_when_honest_nothing_drifts(self) -> None:
        record_launch_routes(self.store, "web-1", FIRST)
        before = self.file(SECOND, FIRST)
        self.assertEqual((self.grants(before)["summary"], self.kinds(before)), ("routes file: adds b.com", []))
        decide(before.id, STATUS_APPROVED, store=self.store)
        honest = self.file(EVIL, SECOND)
        self.assertEqual((self.grants(honest)["summary"], self.kinds(honest)),
                         ("routes file: adds evil-exfil.example.net", []))
        out = self.printed("proposals", "show", honest.short_id)
        self.assertIn("diff (current -> proposed):", out)
        # Another bottle's approval is not this one's.
        elsewhere = self.file(EVIL, EVIL, bottle="web-2")
        self.assertEqual((self.grants(elsewhere)["summary"], self.kinds(elsewhere)),
                         ("routes file: adds a.com, b.com, evil-exfil.example.net", ["drifted"]))

    def test_a_modification_approves_the_operator_s_file(self) -> None:
        record_launch_routes(self.store, "web-1", FIRST)
        proposal = self.file(EVIL, FIRST)
        decide(proposal.id, STATUS_MODIFIED, final_file=SECOND, store=self.store)
        after_final = self.file(EVIL, SECOND)
        self.assertEqual(self.kinds(after_final), [])
        after_proposed = self.file(EVIL + "- more.example\n", EVIL)  # what was proposed, not what was approved
        self.assertEqual(self.kinds(after_proposed), ["drifted"])
        self.assertEqual(self.grants(after_proposed)["summary"],
                         "routes file: adds evil-exfil.example.net, more.example")

    def test_a_screen_that_keeps_what_it_read_reads_again_after_an_approval(self) -> None:
        """Two filed against the same approved file: approving one changes what the other replaces."""
        self.approved()
        one = self.file(SECOND + "- c.example\n", SECOND)
        other = self.file(SECOND + "- d.example\n", SECOND)
        inbox = Inbox(self.store)
        self.assertEqual([entry.approval.kinds for entry in inbox.pending()], [(), ()])
        decide(one.id, STATUS_APPROVED, store=self.store)
        (entry,) = inbox.pending()
        self.assertEqual((entry.id, entry.approval.kinds), (other.id, ("drifted",)))
        self.assertEqual(entry.approval.summary, "routes file: adds d.example; drops c.example")

    def test_a_digest_shown_before_another_routes_approval_approves_nothing(self) -> None:
        """'approve --digest' holds the routes file to what it was read against when shown: the file approved
        since drops evil-exfil, which approving this one (shown as adding c.example) would put back."""
        self.approved(EVIL, FIRST)
        shown = self.file(EVIL + "- c.example\n", EVIL)
        digest = json.loads(self.printed("proposals", "show", shown.id, "--json"))["digest"]
        self.approved(SECOND, EVIL)  # evil-exfil dropped, from another screen
        code, _, err = self.cli("proposals", "approve", shown.short_id, "--digest", digest)
        self.assertEqual(code, 1)
        self.assertIn("the one on record for its bottle changed since", err)
        self.assertIsNone(self.store.response(shown.id))
        self.assertEqual(self.grants(shown)["summary"], "routes file: adds evil-exfil.example.net, c.example")
        again = json.loads(self.printed("proposals", "show", shown.id, "--json"))["digest"]
        self.assertNotEqual(again, digest)
        self.assertEqual(self.cli("proposals", "approve", shown.short_id, "--digest", again)[0], 0)

    def test_no_current_file_is_read_against_the_approved_one(self) -> None:
        self.approved()
        proposal = self.file(EVIL, None)
        self.assertEqual(self.grants(proposal)["summary"], "routes file: adds evil-exfil.example.net")
        # Nothing claimed, nothing to disagree with: no [drifted] badge on every proposal of a bottle whose
        # sidecar runs without --routes-file, and the diff says which file it starts from.
        self.assertEqual(self.kinds(proposal), [])
        out = self.printed("proposals", "show", proposal.id)
        self.assertIn("diff (last approved -> proposed):\n  --- last approved\n  +++ proposed\n", out)
        self.assertNotIn("drifted", out)

    def test_a_revoked_routes_file_is_on_record_no_more(self) -> None:
        """BROKE before the fix: the operator revoked the grant of a routes file that added evil-exfil ('grants
        revoke'), and the same file filed again (no current file, or itself as its current file) read 'routes
        file: unchanged', no caution, against the file they had just taken back; approving it granted
        evil-exfil again, listed as 'routes file: unchanged'."""
        for bottle, current in (("web-1", None), ("web-2", EVIL)):
            record_launch_routes(self.store, bottle, FIRST)
            first = self.approved(EVIL, FIRST, bottle)
            (grant,) = json.loads(self.printed("grants", "list", "--bottle", bottle, "--json"))
            self.printed("grants", "revoke", grant["id"], "--reason", "evil-exfil must not be reached")
            again = self.file(EVIL, current, bottle)
            grants = self.grants(again)
            self.assertEqual((grants["summary"], self.kinds(again)),
                             ("routes file: adds a.com, b.com, evil-exfil.example.net", ["drifted"]))
            self.assertIn(f"(proposal {first.short_id}, ", grants["warnings"][0]["text"])  # type: ignore[index]
            self.assertIn("was revoked at", grants["warnings"][0]["text"])  # type: ignore[index]
            out = self.printed("proposals", "show", again.id)
            self.assertIn("diff (no file -> proposed):", out)
            self.assertNotIn("unchanged", out)
            self.assertEqual([entry.approval.summary for entry in Inbox(self.store).pending()], [grants["summary"]])
            decide(again.id, STATUS_REJECTED, "no", store=self.store)
            # What was decided before the revocation still reads as it was then: against the launch file.
            self.assertEqual((self.grants(first)["summary"], self.kinds(first)),
                             ("routes file: adds b.com, evil-exfil.example.net", []))

    def test_a_screen_that_keeps_what_it_read_reads_again_after_a_revocation(self) -> None:
        """BROKE before the fix: the TUI's and the dashboard's inbox read pending routes files again only when a
        routes file was approved, so one pending when the operator revoked the file it was read against still
        listed 'routes file: adds c.example', as if evil-exfil were on record."""
        self.approved(EVIL, FIRST)
        pending = self.file(EVIL + "- c.example\n", EVIL)
        inbox = Inbox(self.store)
        self.assertEqual([entry.approval.summary for entry in inbox.pending()], ["routes file: adds c.example"])
        (grant,) = json.loads(self.printed("grants", "list", "--bottle", "web-1", "--json"))
        self.printed("grants", "revoke", grant["id"], "--reason", "no")
        (entry,) = inbox.pending()
        self.assertEqual((entry.id, entry.approval.kinds), (pending.id, ("drifted",)))
        self.assertEqual(entry.approval.summary, "routes file: adds a.com, b.com, evil-exfil.example.net, c.example")

    def test_no_current_file_filed_before_the_last_approval_drifts_as_a_truthful_one(self) -> None:
        """BROKE before the fix: of two routes files pending at once, the one left when the other was approved
        carried [drifted] where its sidecar sent its current file, and none where it sent no file: leaving the
        file out shed the badge the truthful reading has."""
        self.approved()
        for current, first, second in ((SECOND, "c.example", "d.example"), (None, "e.example", "f.example")):
            one = self.file(SECOND + f"- {first}\n", current)
            other = self.file(SECOND + f"- {second}\n", current)
            decide(one.id, STATUS_APPROVED, store=self.store)
            grants = self.grants(other)
            self.assertEqual((grants["summary"], self.kinds(other)),
                             (f"routes file: adds {second}; drops {first}", ["drifted"]))
            self.assertIn(f"(proposal {one.short_id}, ", grants["warnings"][0]["text"])  # type: ignore[index]
            self.assertIn("diff (last approved -> proposed):", self.printed("proposals", "show", other.id))
            decide(other.id, STATUS_REJECTED, "no", store=self.store)
            self.approved(SECOND, SECOND + f"- {first}\n")  # back to SECOND for the next round
        filed_after = self.file(EVIL, None)
        self.assertEqual(self.kinds(filed_after), [])

    def revocation(self, grant_id: str) -> tuple[str, str] | None:
        """The bottle and tool the grant's revocation entry records."""
        with self.store.db.read() as conn:
            row = conn.execute("SELECT queue_key, tool FROM audit_log WHERE action = ? "
                               "AND json_extract(details, '$.grant') = ?", (ACTION_GRANT_REVOKED, grant_id)).fetchone()
        return None if row is None else (str(row[0]), str(row[1]))

    def test_a_row_moved_to_another_bottle_or_tool_is_revoked_where_it_was_granted(self) -> None:
        """BROKE before the fix (hostile review 57): a sidecar on the mount rewrote the grant's row before the
        operator revoked it, and the revocation entry took its bottle and tool from the row: it was recorded for
        web-9 (or as an egress-token-allow; or, the row renamed, for a grant the approval never made), and the
        same file filed again read 'routes file: unchanged', no caution."""
        for bottle, column, value in (("web-1", "queue_key", "web-9"), ("web-2", "tool", "egress-token-allow"),
                                      ("web-3", "id", "ab" * 16)):
            with self.subTest(column=column):
                record_launch_routes(self.store, bottle, FIRST)
                self.approved(EVIL, FIRST, bottle)
                pending = self.file(EVIL + "- c.example\n", EVIL, bottle)
                inbox = Inbox(self.store)
                self.assertIn("routes file: adds c.example", [entry.approval.summary for entry in inbox.pending()])
                (grant,) = json.loads(self.printed("grants", "list", "--bottle", bottle, "--json"))
                with self.unguarded() as raw:
                    raw.execute(f"UPDATE grants SET {column} = ? WHERE id = ?", (value, grant["id"]))
                listed = value if column == "id" else grant["id"]  # what 'grants list' shows the operator
                self.printed("grants", "revoke", listed[:8], "--reason", "evil-exfil must not be reached")
                self.assertEqual(self.revocation(grant["id"]), (bottle, TOOL_EGRESS_BLOCK))
                again = self.file(EVIL, None, bottle)
                self.assertEqual((self.grants(again)["summary"], self.kinds(again)), (ALL_NEW, ["drifted"]))
                self.assertNotIn("unchanged", self.printed("proposals", "show", again.id))
                # The long-running screens' inbox read the pending one again too.
                summaries = {entry.id: entry.approval.summary for entry in inbox.pending()}
                self.assertEqual(summaries[pending.id], ALL_NEW + ", c.example")

    def test_a_revocation_recorded_for_another_bottle_still_takes_the_file_off_record(self) -> None:
        """BROKE before the fix: a revocation entry naming the grant, recorded under another bottle (a row whose
        approval entry no longer points back at it: the writer has only the row to go by), was passed over."""
        record_launch_routes(self.store, "web-1", FIRST)
        self.approved(EVIL, FIRST)
        # Sharing the test's store: a connection left to the GC warned on a later CLI call's stderr (3.13).
        (listed,) = GrantStore(database=self.store.db).listing("web-1")
        moved = dataclasses.replace(listed, queue_key="web-9", audit_seq=0)
        with AuditStore.recording(self.store.db) as log:
            revoke_grant_in(log, moved, "evil-exfil must not be reached", revoked_by="operator", now=utc_now())
        self.assertEqual(self.revocation(listed.id), ("web-9", TOOL_EGRESS_BLOCK))
        again = self.file(EVIL, EVIL)
        self.assertEqual((self.grants(again)["summary"], self.kinds(again)), (ALL_NEW, ["drifted"]))
        self.assertIn("was revoked at", self.grants(again)["warnings"][0]["text"])  # type: ignore[index]

    def test_rows_a_sidecar_writes_prove_nothing(self) -> None:
        first = self.approved()
        lie = self.file(EVIL, EVIL)
        with self.unguarded() as raw:
            # An approval entry of the lie, written past the triggers (the host never sealed it).
            raw.execute("INSERT INTO audit_log (ts, queue_key, action, tool, proposal_id, actor, notes, diff, "
                        "details, prev_hash, hash) SELECT '2099-01-01T00:00:00.000000Z', 'web-1', 'approved', "
                        "'egress-block', ?, 'operator', '', '', json_object('payload_sha256', ?), hash, ? "
                        "FROM audit_log ORDER BY seq DESC LIMIT 1", (first.id, lie.current_file_hash, "ab" * 32))
            # A hash column naming the approved file beside the lie's text.
            raw.execute("UPDATE proposals SET current_file_hash = ? WHERE id = ?", (sha256_text(SECOND), lie.id))
        # An entry the host did not seal after the approval: no approval is taken as proven past it (review 51).
        self.assertEqual(self.grants(lie)["summary"], "routes file: adds a.com, b.com, evil-exfil.example.net")
        self.assertEqual(self.kinds(lie), ["drifted"])
        warning = self.grants(lie)["warnings"][0]["text"]  # type: ignore[index]
        self.assertIn("so the last routes file approved for this bottle is not proven", warning)

    def test_an_approved_file_rewritten_in_the_database_is_no_proof(self) -> None:
        first = self.approved()
        lie = self.file(EVIL, EVIL)
        with self.unguarded() as raw:
            raw.execute("UPDATE proposals SET payload = ? WHERE id = ?", (EVIL, first.id))
        grants = self.grants(lie)
        self.assertEqual(grants["summary"], "routes file: unchanged")  # the sidecar's word, and said to be
        self.assertEqual(self.kinds(lie), ["drifted"])
        self.assertIn("which is no longer in the database: what this file adds and drops is the sidecar's word",
                      grants["warnings"][0]["text"])  # type: ignore[index]

    def test_a_decided_proposal_reads_as_it_was_decided(self) -> None:
        record_launch_routes(self.store, "web-1", FIRST)
        first = self.approved()
        self.assertEqual(self.kinds(first), [])  # read against the file it was launched with
        lie = self.file(EVIL, EVIL)
        decide(lie.id, STATUS_REJECTED, "no", store=self.store)
        self.assertEqual(self.kinds(lie), ["drifted"])
        later = self.approved(EVIL + "- more.example\n", SECOND)  # the rejected lie is no approval
        self.assertEqual(self.kinds(later), [])
        self.assertEqual(self.grants(later)["summary"], "routes file: adds evil-exfil.example.net, more.example")


class LyingCurrentFileDashboardTest(DashboardCase):
    def test_the_proposal_page_and_the_inbox_read_the_approved_file(self) -> None:
        first = self.store.submit("web-1", TOOL_EGRESS_BLOCK, SECOND, "docs", current_file=FIRST)
        decide(first.id, STATUS_APPROVED, store=self.store)
        lie = self.store.submit("web-1", TOOL_EGRESS_BLOCK, EVIL, "routine", current_file=EVIL)
        status, _, inbox = self.call("GET", "/")
        self.assertEqual(status, 200)
        self.assertIn("routes file: adds evil-exfil.example.net", inbox)
        self.assertIn(">drifted<", inbox)
        self.assertNotIn("routes file: unchanged", inbox)
        status, _, page = self.call("GET", f"/proposal/{lie.id}")
        self.assertEqual(status, 200)
        self.assertIn("routes file: adds evil-exfil.example.net", page)
        self.assertIn("last approved -&gt; proposed", page)
        self.assertIn(f"proposal {first.short_id}", page)

    def test_a_rewritten_proposal_s_changed_block_reads_the_approved_file(self) -> None:
        """BROKE before the fix: the block a page shows when its proposal was rewritten in the database (a sidecar
        on the mount) read both versions against the sidecar's current file, so a payload rewritten to name
        evil-exfil, sent as its own current file, read 'routes file: unchanged' under 'as it is now', above the
        page's own reading of it, against the approved file: 'adds evil-exfil.example.net'."""
        first = self.store.submit("web-1", TOOL_EGRESS_BLOCK, SECOND, "docs", current_file=FIRST)
        decide(first.id, STATUS_APPROVED, store=self.store)
        honest = self.store.submit("web-1", TOOL_EGRESS_BLOCK, SECOND + "- c.example\n", "c", current_file=SECOND)
        status, _, page = self.call("GET", f"/proposal/{honest.id}")
        self.assertEqual(status, 200)
        shown = self.dashboard.remember_shown(self.store.get(honest.id))
        raw = sqlite3.connect(self.path)
        self.addCleanup(raw.close)
        with raw:
            for (name,) in raw.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
                raw.execute(f'DROP TRIGGER "{name}"')
            raw.execute("UPDATE proposals SET payload = ?, current_file = ?, current_file_hash = ?, "
                        "payload_sha256 = ? WHERE id = ?",
                        (EVIL, EVIL, sha256_text(EVIL), sha256_text(EVIL), honest.id))
        status, _, page = self.call("GET", f"/proposal/{honest.id}?shown={shown}")
        self.assertEqual(status, 200)
        changed = page[page.index('data-part="changed"'):page.index("</section>", page.index('data-part="changed"'))]
        self.assertIn("adds evil-exfil.example.net", changed)
        self.assertNotIn("unchanged", changed)
