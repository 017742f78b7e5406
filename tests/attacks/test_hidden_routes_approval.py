"""A sidecar on the mount that hides its bottle's last routes approval from the screens.

Hostile review 51: an ``egress-block`` proposal is read against the last
routes file approved for its bottle, found among the audit entries that
approve one (``audit.routes_approved``). A sidecar on the mount cannot make
a seal, but it can rewrite a column of the entry that approved the newest
file (its tool, its bottle, or drop the row): the lookup then passed over
it, found the approval before it (which the host did seal), and read the
proposal against that older file. Where the operator had since dropped a
host, the sidecar's file putting it back (sent with the older file as its
"current file") read as adding none of it, with no ``drifted`` badge, and
the screens' anchor check (the newest entry's seal alone) said nothing.
"""

from __future__ import annotations

import re
import shlex
import sqlite3
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from unittest import mock

from bot_bottle.audit import routes_approved
from bot_bottle.audit.chain import compute_hash
from bot_bottle.cli.inbox import Inbox
from bot_bottle.decisions import decide
from bot_bottle.queue_store import QueueStore
from bot_bottle.records import STATUS_APPROVED, STATUS_REJECTED, TOOL_EGRESS_BLOCK, Proposal
from tests.cli.test_proposals_cmds import CliTestCase
from tests.helpers.dashboard import DashboardCase
from tests.helpers.support import REPO, TempDirTest, drop_triggers
from tests.helpers.terminal import Terminal

WITH_EVIL = "routes:\n- a.com\n- evil-exfil.example.net\n"
DROPPED = "routes:\n- a.com\n- b.com\n"
BACK = "routes:\n- a.com\n- b.com\n- evil-exfil.example.net\n"


class HiddenRoutesApprovalTest(CliTestCase):
    def file(self, payload: str, current: str | None, bottle: str = "web-1") -> Proposal:
        return self.store.submit(bottle, TOOL_EGRESS_BLOCK, payload, "routine update", current_file=current)

    def setUp(self) -> None:
        super().setUp()
        decide(self.file(WITH_EVIL, "routes:\n- a.com\n").id, STATUS_APPROVED, store=self.store)
        self.dropping = self.file(DROPPED, WITH_EVIL)  # the operator drops evil-exfil again
        decide(self.dropping.id, STATUS_APPROVED, store=self.store)
        other = self.file("routes:\n- x.com\n", None, bottle="web-2")  # a later entry: the approval is not the head
        decide(other.id, STATUS_REJECTED, "no", store=self.store)
        self.raw = sqlite3.connect(self.store.db.path)
        self.addCleanup(self.raw.close)

    @contextmanager
    def sidecar(self) -> Iterator[sqlite3.Connection]:
        """The sidecar's own connection, in one transaction, every trigger dropped first (the host's writes make
        them again: ``schema.guard``)."""
        with self.raw:
            drop_triggers(self.raw)
            yield self.raw

    def rewrite_the_dropping_with_its_chain(self) -> int:
        """The dropping approval's entry moved to another tool, and every hash from it on made again (the chain
        needs no key), so each entry hashes to its own and names the one before; the entry's number."""
        with self.sidecar():
            self.raw.execute("UPDATE audit_log SET tool = 'egress-block-' WHERE proposal_id = ?", (self.dropping.id,))
            (seq,) = self.raw.execute("SELECT seq FROM audit_log WHERE proposal_id = ?", (self.dropping.id,)).fetchone()
            link = self.raw.execute("SELECT prev_hash FROM audit_log WHERE seq = ?", (seq,)).fetchone()[0]
            rows = self.raw.execute("SELECT seq, ts, queue_key, action, tool, proposal_id, actor, notes, diff, "
                                    "details FROM audit_log WHERE seq >= ? ORDER BY seq", (seq,)).fetchall()
            for row in rows:
                digest = compute_hash(*row, link)
                self.raw.execute("UPDATE audit_log SET prev_hash = ?, hash = ? WHERE seq = ?", (link, digest, row[0]))
                link = digest
        return int(seq)

    def assert_not_hidden(self, lie: Proposal) -> None:
        code, out, err = self.cli("proposals", "list")
        self.assertEqual((code, err), (0, ""))
        self.assertNotIn("routes file: adds b.com\n", out)
        self.assertIn("evil-exfil.example.net", out)
        self.assertIn("[drifted]", out)
        entry = Inbox(self.store).pending()[0]
        self.assertEqual(entry.id, lie.id)
        self.assertIn("evil-exfil.example.net", entry.approval.summary)
        self.assertIn("drifted", entry.approval.kinds)

    def test_an_approval_moved_to_another_tool(self) -> None:
        with self.sidecar():
            self.raw.execute("UPDATE audit_log SET tool = 'egress-block-' WHERE proposal_id = ?", (self.dropping.id,))
        self.assert_not_hidden(self.file(BACK, WITH_EVIL))

    def test_an_approval_moved_to_another_bottle(self) -> None:
        with self.sidecar():
            self.raw.execute("UPDATE audit_log SET queue_key = 'web-9' WHERE proposal_id = ?", (self.dropping.id,))
        self.assert_not_hidden(self.file(BACK, WITH_EVIL))

    def test_an_approval_removed(self) -> None:
        with self.sidecar():
            self.raw.execute("DELETE FROM audit_log WHERE proposal_id = ?", (self.dropping.id,))
        self.assert_not_hidden(self.file(BACK, WITH_EVIL))

    def test_an_honest_log_still_proves_the_approval(self) -> None:
        honest = self.file(BACK, DROPPED)
        code, out, err = self.cli("proposals", "list")
        self.assertEqual((code, err), (0, ""))
        self.assertIn("routes file: adds evil-exfil.example.net\t", out)
        self.assertNotIn("[drifted]", out)
        self.assertEqual(Inbox(self.store).pending()[0].approval.kinds, ())
        self.assertEqual(honest.queue_key, "web-1")

    def test_a_decided_proposal_is_held_to_the_entries_before_its_decision(self) -> None:
        lie = self.file(BACK, WITH_EVIL)
        decide(lie.id, STATUS_REJECTED, "no", store=self.store)
        with self.sidecar():
            self.raw.execute("UPDATE audit_log SET tool = 'egress-block-' WHERE proposal_id = ?", (self.dropping.id,))
        code, out, err = self.cli("proposals", "show", lie.short_id)
        self.assertEqual((code, err), (0, ""))
        self.assertIn("evil-exfil.example.net", out.split("routes file:", 1)[1].split("\n", 1)[0])
        self.assertIn("drifted", out)

    def test_an_approval_rewritten_with_the_chain_made_again(self) -> None:
        """Every hash after it made again, so each entry hashes to its own: the last one's seal is the host's."""
        self.rewrite_the_dropping_with_its_chain()
        self.assert_not_hidden(self.file(BACK, WITH_EVIL))

    def test_the_entries_to_the_head_rewritten_before_the_hosts_next_entry(self) -> None:
        """Hostile review 52: the host seals its next entry onto the newest one without holding that one to its
        seal where the anchor reaches it (a changed anchored entry must not stop every decision), so a suffix
        rewritten with its chain made again, from the approval to the head, ended in a seal of the host's that
        vouched for it: the look held only that last seal, and read the file against the older one."""
        seq = self.rewrite_the_dropping_with_its_chain()
        later = self.file("routes:\n- w.com\n", None, bottle="web-5")
        decide(later.id, STATUS_REJECTED, "no", store=self.store)  # the host's next entry, sealed onto the head
        (head,) = self.raw.execute("SELECT max(seq) FROM audit_log").fetchone()
        self.assertEqual(self.raw.execute("SELECT prev_hash FROM audit_log WHERE seq = ?", (head,)).fetchone(),
                         self.raw.execute("SELECT hash FROM audit_log WHERE seq = ?", (head - 1,)).fetchone())
        lie = self.file(BACK, WITH_EVIL)
        self.assert_not_hidden(lie)
        code, out, err = self.cli("proposals", "show", lie.short_id)
        self.assertEqual((code, err), (0, ""))
        self.assertIn(f"audit entry {seq} was changed after the host sealed it", out)

    def test_a_span_proven_before_a_new_key_took_over_is_not_walked_with_it(self) -> None:
        """A span this process proved when the log was shorter, the old key's entries after it and a new key
        since: the look starts at the restart, and the span (ending before it) is not carried on through
        entries the new key never sealed (each entry is held to its seal: that read as a rewrite)."""
        other = self.file("routes:\n- y.com\n", None, bottle="web-3")
        self.assertEqual(self.cli("proposals", "list")[0], 0)  # the whole log proven, in this process
        decide(other.id, STATUS_REJECTED, "no", store=self.store)  # the old key's, after the span
        key = self.home / ".bot-bottle" / "audit.key"
        key.rename(key.with_name("audit.key.lost"))
        code, _, err = self.cli("audit", "new-key", "--yes")
        self.assertEqual(code, 0, err)
        later = self.file("routes:\n- z.com\n", None, bottle="web-4")
        decide(later.id, STATUS_REJECTED, "no", store=self.store)  # the new key's
        honest = self.file(BACK, DROPPED)
        entry = {each.id: each for each in Inbox(self.store).pending()}[honest.id]
        self.assertNotIn("changed after the host sealed it", " ".join(c.text for c in entry.approval.cautions))

    def test_a_span_this_process_proved_before_the_rewrite_still_finds_it(self) -> None:
        """The screens keep the spans they proved whole (one walk serves every proposal); a newer approval
        rewritten after that, out of the lookup's sight, is still the span's as it was proven."""
        other = self.file("routes:\n- y.com\n", None, bottle="web-3")  # none approved: the whole log proven
        self.assertEqual(self.cli("proposals", "list")[0], 0)
        with self.sidecar():
            self.raw.execute("UPDATE audit_log SET tool = 'egress-block-' WHERE proposal_id = ?", (self.dropping.id,))
        lie = self.file(BACK, WITH_EVIL)
        entries = {entry.id: entry for entry in Inbox(self.store).pending()}
        self.assertEqual(set(entries), {other.id, lie.id})
        self.assertIn("evil-exfil.example.net", entries[lie.id].approval.summary)
        self.assertIn("drifted", entries[lie.id].approval.kinds)

    def test_a_span_carried_on_as_the_log_grows_still_finds_it(self) -> None:
        """A span proven before is carried on from its last entry when the log grows (only the new entries are
        walked), with what it held then: the newest approval, rewritten after, is still the span's."""
        other = self.file("routes:\n- y.com\n", None, bottle="web-3")
        # A span proven from the log's start, as a look proves one from a bottle's approval that is the first
        # entry (a bottle with none is read against none, and walks nothing).
        with self.store.db.read() as conn:
            self.assertIsNone(routes_approved._unproven_since(conn, 0, None, "web-3"))
        grown = self.file("routes:\n- z.com\n", None, bottle="web-4")
        decide(grown.id, STATUS_REJECTED, "no", store=self.store)  # one more entry: a longer span, carried on
        with self.sidecar():
            self.raw.execute("UPDATE audit_log SET tool = 'egress-block-' WHERE proposal_id = ?", (self.dropping.id,))
        lie = self.file(BACK, WITH_EVIL)
        with mock.patch.object(routes_approved, "ROUTES_PROOF_SPAN", 1):  # walks only what the log grew by
            entries = {entry.id: entry for entry in Inbox(self.store).pending()}
        self.assertEqual(set(entries), {other.id, lie.id})
        self.assertIn("evil-exfil.example.net", entries[lie.id].approval.summary)
        self.assertIn("drifted", entries[lie.id].approval.kinds)
        self.assertIn("approves a routes file the lookup did not find", entries[lie.id].approval.cautions[0].text)

    def test_a_log_too_long_to_check_proves_no_approval(self) -> None:
        with mock.patch.object(routes_approved, "ROUTES_PROOF_SPAN", 0):
            lie = self.file(BACK, DROPPED)
            self.assert_not_hidden(lie)
            code, out, err = self.cli("proposals", "show", lie.short_id)
        self.assertEqual((code, err), (0, ""))
        self.assertIn("more than 0 audit entries after entry 2 were not checked", out)

    def test_an_earlier_entry_rewritten_to_name_a_decided_proposal(self) -> None:
        """The decision's entry is the sealed one: a row rewritten to name it, earlier, is not."""
        lie = self.file(BACK, WITH_EVIL)
        decide(lie.id, STATUS_REJECTED, "no", store=self.store)
        with self.sidecar():
            (first,) = self.raw.execute("SELECT min(seq) FROM audit_log").fetchone()
            self.raw.execute("UPDATE audit_log SET proposal_id = ? WHERE seq = ?", (lie.id, first + 1))
        code, out, err = self.cli("proposals", "show", lie.short_id)
        self.assertEqual((code, err), (0, ""))
        self.assertIn("evil-exfil.example.net", out.split("routes file:", 1)[1].split("\n", 1)[0])
        self.assertIn("drifted", out)

    def test_a_flood_of_unsealed_approvals_ends_the_look_at_once(self) -> None:
        """100,000 approval rows the host never sealed, above the real ones: each was held to the seal for each
        proposal (0.65 s a proposal); the first says the log is not the host's, and the look ends."""
        with self.sidecar():
            self.raw.execute(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000) INSERT INTO "
                "audit_log (ts, queue_key, action, tool, proposal_id, actor, notes, diff, details, prev_hash, hash) "
                "SELECT 'x', 'web-1', 'approved', 'egress-block', NULL, 'o', '', '', '{}', printf('%064d', i), "
                "printf('%064x', i) FROM n")
        lie = self.file(BACK, WITH_EVIL)
        with mock.patch.object(routes_approved, "sealed_as_read", wraps=routes_approved.sealed_as_read) as held:
            self.assert_not_hidden(lie)
        self.assertLess(held.call_count, 10)
        code, out, err = self.cli("proposals", "show", lie.short_id)
        self.assertEqual((code, err), (0, ""))
        self.assertIn("is not sealed by this host as it reads now", out)


class ApprovedMeanwhileDashboardTest(DashboardCase):
    """Hostile review 51: a page's forms held only the proposal to what it showed, not what it was read against.

    A routes file approved after the page was shown (another tab, a rule) dropped a host; the page's 'adds
    c.example' approved a file that puts it back.
    """

    def test_a_routes_file_approved_since_the_page_refuses_its_form(self) -> None:
        first = self.store.submit("web-1", TOOL_EGRESS_BLOCK, WITH_EVIL, "x", current_file="routes:\n- a.com\n")
        decide(first.id, STATUS_APPROVED, store=self.store)
        adding = self.store.submit("web-1", TOOL_EGRESS_BLOCK, WITH_EVIL + "- c.example\n", "add c",
                                   current_file=WITH_EVIL)
        dropping = self.store.submit("web-1", TOOL_EGRESS_BLOCK, "routes:\n- a.com\n", "drop it",
                                     current_file=WITH_EVIL)
        status, _, page = self.call("GET", f"/proposal/{adding.id}")
        self.assertEqual(status, 200)
        self.assertIn("routes file: adds c.example<", page)
        read = re.findall(r'name="read" value="([0-9a-f]{64})"', page)
        self.assertEqual(len(set(read)), 1)
        decide(dropping.id, STATUS_APPROVED, store=self.store)  # in another tab
        status, _, body = self.post(adding, "decide", {"status": STATUS_APPROVED, "notes": "", "read": read[0]})
        self.assertEqual(status, 409)
        self.assertIn("the routes file on record for this bottle changed (another approved, or it was revoked) "
                      "since this page read this one", body)
        self.assertIsNone(self.store.response(adding.id))
        # Read again, it says what approving it adds now, and its form records it.
        status, _, page = self.call("GET", f"/proposal/{adding.id}")
        self.assertIn("routes file: adds evil-exfil.example.net, c.example", page)
        read = re.findall(r'name="read" value="([0-9a-f]{64})"', page)
        status, _, body = self.post(adding, "decide", {"status": STATUS_APPROVED, "notes": "", "read": read[0]})
        self.assertEqual(status, 303, body)
        self.assertIsNotNone(self.store.response(adding.id))

    def test_a_form_without_the_reading_records_nothing(self) -> None:
        adding = self.store.submit("web-1", TOOL_EGRESS_BLOCK, WITH_EVIL, "add", current_file="routes:\n- a.com\n")
        status, _, _ = self.post(adding, "decide", {"status": STATUS_APPROVED, "notes": "", "read": None})
        self.assertEqual(status, 409)
        self.assertIsNone(self.store.response(adding.id))


class ApprovedMeanwhileTuiTest(TempDirTest):
    """The TUI (in tmux) asked with what its list read: a routes file approved while its prompts waited (from
    another screen) changed what approving adds."""

    def test_a_routes_file_approved_while_the_tui_asks_records_nothing(self) -> None:
        db = self.tmp / "tui.db"
        store = QueueStore(db)
        self.addCleanup(store.close)
        first = store.submit("web-1", TOOL_EGRESS_BLOCK, WITH_EVIL, "x", current_file="routes:\n- a.com\n")
        decide(first.id, STATUS_APPROVED, store=store)
        adding = store.submit("web-1", TOOL_EGRESS_BLOCK, WITH_EVIL + "- c.example\n", "add c", current_file=WITH_EVIL)
        dropping = store.submit("web-1", TOOL_EGRESS_BLOCK, "routes:\n- a.com\n", "drop", current_file=WITH_EVIL)
        command = (f"cd {shlex.quote(str(REPO))} && env HOME={shlex.quote(str(self.home))} "
                   f"{shlex.quote(sys.executable)} -m bot_bottle supervise --db {shlex.quote(str(db))}; sleep 30")
        term = Terminal(self, command)
        term.wait_for("2 pending")
        self.assertIn("routes file: adds c.example", term.screen())
        term.send("a")
        term.wait_for("note (optional)")
        decide(dropping.id, STATUS_APPROVED, store=store)  # meanwhile
        term.send("Enter")
        term.wait_for("for how long?")
        term.send("Enter")
        term.wait_for("not recorded: the routes file on record for web-1 changed")
        self.assertIsNone(store.response(adding.id))
