"""The queue store in one process: round trips, dedupe, lookups, archiving, the bottle handle."""

from __future__ import annotations

import hashlib
import sqlite3
import threading
import time
from unittest import mock

from bot_bottle import queue_store
from bot_bottle.audit_store import AuditStore
from bot_bottle.db import Database
from bot_bottle.decisions import decide, expire_in
from bot_bottle.errors import AmbiguousId, DatabaseError, NotFound, QuotaExceeded, StillPending, ValidationError
from bot_bottle.grant_records import rule_decider
from bot_bottle.queue_reads import check_quota
from bot_bottle.queue_store import QueueStore
from bot_bottle.records import (
    DEFAULT_QUOTA,
    MAX_PAYLOAD_BYTES,
    STATUS_APPROVED,
    STATUS_MODIFIED,
    STATUS_REJECTED,
    TOOL_EGRESS_ALLOW,
    TOOL_EGRESS_BLOCK,
    TOOL_GITLEAKS_ALLOW,
    Proposal,
    Quota,
    Response,
)
from bot_bottle.timestamps import later, utc_now
from tests.helpers.support import TempDirTest, digest, query_plans, wait_until


class QueueTestCase(TempDirTest):
    def setUp(self) -> None:
        super().setUp()
        self.path = self.tmp / "q.db"
        self.store = QueueStore(self.path)
        self.addCleanup(self.store.close)

    def file(self, queue_key: str = "web-1", payload: str = "routes: [a.com]\n", **kw: str) -> Proposal:
        return self.store.submit(queue_key, kw.pop("tool", TOOL_EGRESS_BLOCK), payload,
                                 kw.pop("justification", "needed"), **kw)


class RoundTripTest(QueueTestCase):
    def test_proposal_round_trip(self) -> None:
        """Every field of a proposal comes back as it went in, from a second connection too."""
        current = "routes: []\n"
        proposal = self.store.submit("web-1", TOOL_EGRESS_BLOCK, "routes: [ü.com]\n", "why\nbecause",
                                     current_file=current)
        self.assertRegex(proposal.id, "^[0-9a-f]{32}$")
        self.assertEqual(proposal.current_file_hash, hashlib.sha256(current.encode()).hexdigest())
        self.assertIsNone(proposal.archived_at)
        with QueueStore(self.path) as other:
            self.assertEqual(other.get(proposal.id), proposal)

    def test_response_round_trip(self) -> None:
        """A decision's every field comes back from response()."""
        proposal = self.file()
        self.assertIsNone(self.store.response(proposal.id))
        decided = decide(proposal.id, STATUS_MODIFIED, "narrowed", "routes: [b.com]\n", "op@host", store=self.store)
        self.assertEqual(self.store.response(proposal.id), decided)
        self.assertEqual((decided.status, decided.notes, decided.final_file, decided.decided_by),
                         (STATUS_MODIFIED, "narrowed", "routes: [b.com]\n", "op@host"))

    def test_hash_without_file_and_mismatch(self) -> None:
        """A hash alone is kept; a hash that does not match the given file is refused."""
        alone = self.file(current_file_hash="a" * 64)
        self.assertEqual(alone.current_file_hash, "a" * 64)
        with self.assertRaisesRegex(ValidationError, "current_file_hash"):
            self.file(payload="other", current_file="x", current_file_hash="b" * 64)


class DedupeTest(QueueTestCase):
    def test_identical_unarchived_proposal_is_returned(self) -> None:
        """The same bottle, tool and payload returns the first proposal, decided or not."""
        first = self.file()
        self.assertEqual(self.file(justification="again").id, first.id)
        decide(first.id, STATUS_REJECTED, "no", store=self.store)
        again = self.file()
        self.assertEqual(again.id, first.id)
        self.assertEqual(self.store.response(again.id).status, STATUS_REJECTED)  # type: ignore[union-attr]

    def test_differences_make_new_proposals(self) -> None:
        """Another bottle, tool or payload is a new proposal."""
        first = self.file()
        self.assertNotEqual(self.file(queue_key="web-2").id, first.id)
        self.assertNotEqual(self.file(tool=TOOL_EGRESS_ALLOW, payload='{"host": "b.com"}').id, first.id)
        self.assertNotEqual(self.file(payload="routes: [c.com]\n").id, first.id)

    def test_archiving_ends_the_dedupe(self) -> None:
        """After archiving, the same request is a new proposal."""
        first = self.file()
        decide(first.id, STATUS_APPROVED, store=self.store)
        self.store.archive(first.id)
        self.assertNotEqual(self.file().id, first.id)


class LookupTest(QueueTestCase):
    def test_find_by_prefix(self) -> None:
        """A unique prefix (any case) finds the proposal; unknown and ambiguous ones say so."""
        proposals = [self.file(payload=f"p{i}") for i in range(40)]
        target = proposals[0]
        self.assertEqual(self.store.find(target.id[:12].upper()), target)
        self.assertEqual(self.store.find(target.id), target)
        # Two ids that share their first 4 digits (the fewest a prefix may have): ambiguous.
        with mock.patch("bot_bottle.queue_store.secrets.token_hex", side_effect=["abcd" + "0" * 28, "abcd" + "1" * 28]):
            self.file(payload="twin 1"), self.file(payload="twin 2")
        with self.assertRaisesRegex(AmbiguousId, "more digits"):
            self.store.find("abcd")
        with self.assertRaisesRegex(ValidationError, "too short"):
            self.store.find(target.id[:3])
        unknown = next(c for c in "0123456789abcdef" if not any(p.id.startswith(target.id[:6] + c)
                                                                 for p in proposals))
        with self.assertRaises(NotFound):
            self.store.find(target.id[:6] + unknown)
        with self.assertRaises(ValidationError):
            self.store.find("zz")

    def test_get_unknown(self) -> None:
        """get() of an unknown id is NotFound; of a malformed id a ValidationError."""
        with self.assertRaises(NotFound):
            self.store.get("0" * 32)
        with self.assertRaises(ValidationError):
            self.store.get("../etc/passwd")

    def test_pending_order_and_filter(self) -> None:
        """pending() is oldest first, per bottle or for all; decided and archived ones leave it."""
        a1 = self.file("a", "1")
        b1 = self.file("b", "1")
        a2 = self.file("a", "2")
        self.assertEqual([p.id for p in self.store.pending()], [a1.id, b1.id, a2.id])
        self.assertEqual([p.id for p in self.store.pending("a")], [a1.id, a2.id])
        decide(a1.id, STATUS_APPROVED, store=self.store)
        self.assertEqual([p.id for p in self.store.pending()], [b1.id, a2.id])
        listed = self.store.listing(include_decided=True)
        self.assertEqual([(p.id, r.status if r else None) for p, r in listed],
                         [(a1.id, STATUS_APPROVED), (b1.id, None), (a2.id, None)])
        self.assertEqual([p.id for p, _ in self.store.listing(include_decided=True, limit=2)], [b1.id, a2.id])
        self.assertEqual([p.id for p, _ in self.store.listing("b")], [b1.id])
        # Past what SQLite can bind (it raised OverflowError): refused as any bad limit is.
        for limit in (2**63, 2**70, 0, True, 1.5):
            with self.subTest(limit=limit), self.assertRaises(ValidationError) as caught:
                self.store.listing(include_decided=True, limit=limit)  # type: ignore[arg-type]
            self.assertEqual(caught.exception.field, "limit")
        self.assertEqual(len(self.store.listing(include_decided=True, limit=2**63 - 1)), 3)

    def test_pending_query_uses_the_partial_index(self) -> None:
        """The pending lists the code really runs are served by the unarchived-only index, not a scan of history."""
        self.file()
        with self.store.db.read() as conn:
            plans = query_plans(conn, lambda: (self.store.pending(), self.store.pending_summaries()), "proposals")
        self.assertEqual(len(plans), 2)
        for plan in plans:
            self.assertIn("proposals_unarchived", plan)


class ArchiveTest(QueueTestCase):
    def test_archive_is_idempotent(self) -> None:
        """Archiving twice keeps the first time; the proposal leaves pending."""
        proposal = self.file()
        decide(proposal.id, STATUS_APPROVED, store=self.store)
        first = self.store.archive(proposal.id)
        self.assertIsNotNone(first.archived_at)
        self.assertEqual(self.store.archive(proposal.id), first)
        self.assertEqual(self.store.get(proposal.id), first)

    def test_undecided_cannot_be_archived(self) -> None:
        """An undecided proposal stays for the operator: archive refuses it."""
        proposal = self.file()
        with self.assertRaises(StillPending):
            self.store.archive(proposal.id)
        self.assertEqual([p.id for p in self.store.pending()], [proposal.id])


class ArchiveLaterTest(QueueTestCase):
    """A sidecar's archive: checked at once, its row written by the store's next write (db.later)."""

    def setUp(self) -> None:
        # No timer within a test's steps: each test says which write carries the archive.
        patcher = mock.patch.object(queue_store, "ARCHIVE_WRITE_DELAY_SEC", 600.0)
        patcher.start()
        self.addCleanup(patcher.stop)
        super().setUp()

    def test_a_bottles_archive_is_written_by_its_next_write(self) -> None:
        """A sidecar's archive rides on its store's next write: shown to it at once, recorded by its next filing
        before that filing's dedupe (so the same request asks afresh, as before), unseen by others until then."""
        bottle = self.store.for_bottle("web-1")
        proposal = bottle.submit(TOOL_EGRESS_BLOCK, "routes: [a]\n", "j")
        decide(proposal.id, STATUS_REJECTED, "no", store=self.store)
        archived = bottle.archive(proposal.id)
        self.assertIsNotNone(archived.archived_at)
        self.assertEqual(bottle.get(proposal.id), archived)
        self.assertEqual(bottle.archive(proposal.id), archived, "idempotent: the first time is kept")
        with QueueStore(self.path) as other:
            self.assertIsNone(other.get(proposal.id).archived_at, "not written yet")
            again = bottle.submit(TOOL_EGRESS_BLOCK, "routes: [a]\n", "j")
            self.assertNotEqual(again.id, proposal.id, "the rejection no longer answers: the filing asks afresh")
            self.assertEqual(other.get(proposal.id), archived, "written by that filing, at the time archived")

    def test_a_heartbeat_a_stop_and_close_carry_archives_and_a_refused_filing_gives_them_back(self) -> None:
        """Every write of the store carries what is left; a filing the quota refuses writes nothing, and the
        archives it took wait for the next write."""
        bottle = self.store.for_bottle("web-1", quota=Quota(max_pending=1, max_pending_bytes=10_000))
        decided = []
        for name in ("a", "b"):
            proposal = bottle.submit(TOOL_EGRESS_BLOCK, f"routes: [{name}]\n", "j")
            decide(proposal.id, STATUS_APPROVED, store=self.store)
            decided.append(proposal)
        waiting = bottle.submit(TOOL_EGRESS_BLOCK, "routes: [w]\n", "j")
        with QueueStore(self.path) as other:
            def written(proposal: Proposal) -> bool:
                return other.get(proposal.id).archived_at is not None

            bottle.archive(decided[0].id)
            bottle.heartbeat()
            self.assertTrue(written(decided[0]), "by the heartbeat")
            bottle.archive(decided[1].id)
            before = digest(self.path)
            with self.assertRaises(QuotaExceeded):
                bottle.submit(TOOL_EGRESS_BLOCK, "routes: [x]\n", "j")
            self.assertEqual(digest(self.path), before, "a refusal writes nothing")
            self.assertFalse(written(decided[1]))
            bottle.stopped()
            self.assertTrue(written(decided[1]), "by the stop, after the refusal gave it back")
            decide(waiting.id, STATUS_APPROVED, store=self.store)
            closing = QueueStore(self.path)
            closing.for_bottle("web-1").archive(waiting.id)
            self.assertFalse(written(waiting))
            closing.close()
            self.assertTrue(written(waiting), "by close")

    def test_an_archive_a_trigger_refuses_does_not_stop_the_writes(self) -> None:
        """A trigger a sidecar put on the table to refuse archives leaves them unwritten; the bottle's filings
        and heartbeats go on, where carrying the refused archive again and again would fail every one."""
        sidecar = QueueStore(self.path, migrate_schema=False)  # unguarded: the host's writes drop such a trigger
        self.addCleanup(sidecar.close)
        bottle = sidecar.for_bottle("web-1")
        proposal = bottle.submit(TOOL_EGRESS_BLOCK, "routes: [a]\n", "j")
        decide(proposal.id, STATUS_APPROVED, store=self.store)
        hostile = sqlite3.connect(self.path)
        hostile.execute("CREATE TRIGGER no_archive BEFORE UPDATE ON proposals BEGIN SELECT RAISE(ABORT, 'no'); END")
        hostile.commit()
        hostile.close()
        bottle.archive(proposal.id)
        bottle.heartbeat()
        bottle.submit(TOOL_EGRESS_BLOCK, "routes: [b]\n", "j")
        self.assertIsNone(self.store.get(proposal.id).archived_at)
        self.assertIsNone(sidecar.unwritten_archive(proposal.id), "not carried again")

    def test_the_stores_own_archive_a_trigger_refuses_says_so(self) -> None:
        """``QueueStore.archive`` writes at once: a refusal is an error, never an archive reported that is not.
        (Through a sidecar's store: the host's writes drop such a trigger first, and archive.)"""
        proposal = self.store.submit("web-1", TOOL_EGRESS_BLOCK, "routes: [a]\n", "j")
        decide(proposal.id, STATUS_APPROVED, store=self.store)
        hostile = sqlite3.connect(self.path)
        hostile.execute("CREATE TRIGGER no_archive BEFORE UPDATE ON proposals BEGIN SELECT RAISE(ABORT, 'no'); END")
        hostile.commit()
        hostile.close()
        with QueueStore(self.path, migrate_schema=False) as sidecar, self.assertRaises(DatabaseError):
            sidecar.archive(proposal.id)
        self.assertIsNone(self.store.get(proposal.id).archived_at)
        self.store.archive(proposal.id)
        self.assertIsNotNone(self.store.get(proposal.id).archived_at)

    def test_with_no_other_write_the_archive_is_written_after_the_delay(self) -> None:
        """An idle sidecar's archive is written by a timer of its own, ARCHIVE_WRITE_DELAY_SEC later."""
        with mock.patch.object(queue_store, "ARCHIVE_WRITE_DELAY_SEC", 0.05), QueueStore(self.path) as sidecar:
            bottle = sidecar.for_bottle("web-1")
            proposal = bottle.submit(TOOL_EGRESS_BLOCK, "routes: [a]\n", "j")
            decide(proposal.id, STATUS_APPROVED, store=self.store)
            archived = bottle.archive(proposal.id)
            wait_until(lambda: self.store.get(proposal.id).archived_at, 5, 0.01, "the timer's write")
            self.assertEqual(self.store.get(proposal.id), archived)
            self.assertIsNone(sidecar.unwritten_archive(proposal.id))

    def test_a_filing_under_way_carries_an_archive_made_meanwhile(self) -> None:
        """The sidecar's server is threaded: the archive of an answer and the agent's next filing of the same
        request can overlap. The filing takes the archives once it holds the connection, so it never answers
        with the rejection just archived (seen once in CI: 11 rejections stored under a quota of 10, one
        answered twice)."""
        bottle = self.store.for_bottle("web-1")
        proposal = bottle.submit(TOOL_EGRESS_BLOCK, "routes: [a]\n", "j")
        decide(proposal.id, STATUS_REJECTED, "no", store=self.store)
        write, entered, go = Database.write, threading.Event(), threading.Event()

        def slow_write(db: Database) -> object:
            if threading.current_thread().name == "filer":
                entered.set()  # the filing is under way, not yet holding the connection
                go.wait(5)
            return write(db)

        filed: list[Proposal] = []
        with mock.patch.object(Database, "write", slow_write):
            filer = threading.Thread(target=lambda: filed.append(bottle.submit(TOOL_EGRESS_BLOCK, "routes: [a]\n",
                                                                               "j")), name="filer")
            filer.start()
            self.assertTrue(entered.wait(5))
            bottle.archive(proposal.id)
            go.set()
            filer.join(10)
        self.assertEqual(len(filed), 1)
        self.assertNotEqual(filed[0].id, proposal.id, "the archived rejection answered the filing again")
        self.assertIsNotNone(self.store.get(proposal.id).archived_at)

    def test_close_waits_for_the_timers_write_under_way(self) -> None:
        """A store closed while its timer has taken the archive but not yet the connection still writes it.

        Before the fix, ``close`` found nothing kept, closed the connection, and
        the timer's write then failed on it, silently: the archive ``close``
        promises to write was lost (measured: ``archived_at`` None after close).
        """
        write, taken = Database.write, threading.Event()

        def slow_write(db: Database) -> object:
            if threading.current_thread() is not threading.main_thread():
                taken.set()  # the timer thread holds the rows, and is scheduled out before the lock
                time.sleep(0.3)
            return write(db)

        with mock.patch.object(queue_store, "ARCHIVE_WRITE_DELAY_SEC", 0.01):
            sidecar = QueueStore(self.path)
            bottle = sidecar.for_bottle("web-1")
            proposal = bottle.submit(TOOL_EGRESS_BLOCK, "routes: [a]\n", "j")
            decide(proposal.id, STATUS_APPROVED, store=self.store)
            with mock.patch.object(Database, "write", slow_write):
                archived = bottle.archive(proposal.id)
                self.assertTrue(taken.wait(5))
                sidecar.close()
        self.assertEqual(self.store.get(proposal.id), archived, "written before the store closed")


class WaitTest(QueueTestCase):
    def test_wait_returns_none_at_the_deadline(self) -> None:
        """No decision: None after the timeout, the proposal still pending."""
        proposal = self.file()
        started = time.monotonic()
        self.assertIsNone(self.store.wait_for_response(proposal.id, 0.3, poll_interval=0.05))
        self.assertGreaterEqual(time.monotonic() - started, 0.3)
        self.assertEqual([p.id for p in self.store.pending()], [proposal.id])

    def test_wait_sees_a_decision_made_through_the_same_connection(self) -> None:
        """A decision committed by another thread on this very connection wakes the waiter."""
        proposal = self.file()
        got: list[Response | None] = []
        waiter = threading.Thread(target=lambda: got.append(
            self.store.wait_for_response(proposal.id, 10, poll_interval=0.02)))
        waiter.start()
        time.sleep(0.1)
        decide(proposal.id, STATUS_APPROVED, store=self.store)
        waiter.join(10)
        self.assertEqual(got[0].status, STATUS_APPROVED)  # type: ignore[union-attr]

    def test_bad_wait_arguments(self) -> None:
        """Negative or non-numeric timeouts and intervals are refused."""
        proposal = self.file()
        for timeout, interval in ((-1, 0.1), ("5", 0.1), (1, 0), (1, -0.5), (float("nan"), 0.1)):
            with self.subTest(timeout=timeout, interval=interval), self.assertRaises(ValidationError):
                self.store.wait_for_response(proposal.id, timeout, interval)  # type: ignore[arg-type]


class BottleHandleTest(QueueTestCase):
    def test_handle_is_bound_to_its_bottle(self) -> None:
        """A bottle's handle files under its key and cannot see, wait on or archive another's proposal."""
        mine = self.store.for_bottle("web-1")
        theirs = self.store.for_bottle("web-2")
        own = mine.submit(TOOL_EGRESS_ALLOW, '{"host": "a.com"}', "docs")
        other = theirs.submit(TOOL_EGRESS_ALLOW, '{"host": "b.com"}', "docs")
        self.assertEqual(own.queue_key, "web-1")
        self.assertEqual(mine.get(own.id), own)
        decide(other.id, STATUS_APPROVED, store=self.store)
        for call in (lambda: mine.get(other.id), lambda: mine.response(other.id),
                     lambda: mine.wait_for_response(other.id, 0.01), lambda: mine.archive(other.id)):
            with self.assertRaisesRegex(NotFound, "web-1"):
                call()
        self.assertIsNone(self.store.get(other.id).archived_at, "the other bottle's proposal is untouched")
        messages = []
        for proposal_id in ("0" * 32, other.id):
            with self.assertRaises(NotFound) as caught:
                mine.get(proposal_id)
            messages.append(str(caught.exception).replace(proposal_id, "ID"))
        self.assertEqual(messages[0], messages[1], "another bottle's id reads exactly as an id nobody has")
        self.assertFalse(hasattr(mine, "pending"))
        self.assertFalse(hasattr(mine, "record_decision"))

    def test_handle_refuses_a_bad_key(self) -> None:
        """A handle for a path-like key cannot be made."""
        with self.assertRaises(ValidationError):
            self.store.for_bottle("../web-1")


class HostileInputTest(QueueTestCase):
    def test_hostile_strings_are_refused_and_change_nothing(self) -> None:
        """SQL fragments in keys, NUL, lone surrogates, oversize payloads, path-like keys: refused, file unchanged."""
        self.file()  # some existing content
        before = digest(self.path)
        cases = {
            "queue_key": [("../x",), ("x'; DROP TABLE proposals; --",), ("a\x00",), ("",), ("A",)],
            "payload": [("a\x00b",), ("\ud800",), ("x" * (MAX_PAYLOAD_BYTES + 1),), ("",), (None,)],
            "justification": [("\udfff",), ("",), ("j\x00",)],
            "tool": [("egress-block; DROP TABLE proposals",)],
            "current_file": [("\ud800",), ("f\x00",)],
            "current_file_hash": [("not-a-hash",), ("A" * 64,)],
        }
        # An egress-allow payload is the route the operator is asked about: JSON, in its shape, or nothing.
        for payload in ("docs.python.org", '{"host": "docs.python.org"', '["docs.python.org"]', '{"hots": "x.org"}',
                        '{"host": "a.org", "host": "b.org"}', "[" * 100_000):
            with self.subTest(egress_allow=payload[:30]), self.assertRaises(ValidationError) as caught:
                self.store.submit("web-1", TOOL_EGRESS_ALLOW, payload, "j")
            self.assertEqual(caught.exception.field, "payload")
        good = {"queue_key": "web-1", "tool": TOOL_EGRESS_BLOCK, "payload": "p", "justification": "j"}
        for field, values in cases.items():
            for (value,) in values:
                with self.subTest(field=field, value=repr(value)[:40]):
                    arguments = {**good, field: value}
                    with self.assertRaises(ValidationError) as caught:
                        self.store.submit(**arguments)  # type: ignore[arg-type]
                    self.assertEqual(caught.exception.field, field)
        self.assertEqual(digest(self.path), before)

    def test_sql_in_text_is_just_text(self) -> None:
        """SQL in a justification or payload is stored verbatim and does nothing."""
        nasty = "'); DROP TABLE proposals; --"
        proposal = self.file(payload=nasty, justification=nasty)
        self.assertEqual(self.store.get(proposal.id).justification, nasty)
        self.assertEqual(len(self.store.pending()), 1)

    def test_payload_at_the_limit_is_accepted(self) -> None:
        """Exactly 1 MiB is allowed; the schema agrees with the validator."""
        proposal = self.file(payload="x" * MAX_PAYLOAD_BYTES)
        self.assertEqual(len(self.store.get(proposal.id).payload), MAX_PAYLOAD_BYTES)

    def test_schema_checks_hold_without_the_validator(self) -> None:
        """Bypassing the store, the schema still refuses a bad key, tool, or a second response."""
        raw = sqlite3.connect(self.path, isolation_level=None)
        self.addCleanup(raw.close)
        insert = ("INSERT INTO proposals (id, queue_key, tool, payload, payload_sha256, justification, created_at) "
                  "VALUES (:id, :k, :t, 'p', :s, 'j', 'now')")
        for key, tool in (("../x", TOOL_EGRESS_BLOCK), ("web", "other-tool"), ("Web", TOOL_GITLEAKS_ALLOW)):
            with self.subTest(key=key, tool=tool), self.assertRaises(sqlite3.IntegrityError):
                raw.execute(insert, {"id": "e" * 32, "k": key, "t": tool, "s": "0" * 64})
        proposal = self.file()
        decide(proposal.id, STATUS_APPROVED, store=self.store)
        with self.assertRaises(sqlite3.IntegrityError):
            raw.execute("INSERT INTO responses VALUES (:id, 'rejected', 'x', NULL, 'me', 'now')", {"id": proposal.id})
        with self.assertRaisesRegex(sqlite3.IntegrityError, "immutable"):
            raw.execute("UPDATE responses SET status = 'rejected'")
        with self.assertRaisesRegex(sqlite3.IntegrityError, "immutable"):
            raw.execute("UPDATE proposals SET payload = 'changed'")
        with self.assertRaisesRegex(sqlite3.IntegrityError, "never deleted"):
            raw.execute("DELETE FROM proposals")


class QuotaTest(QueueTestCase):
    def test_count_quota_refuses_the_next_and_frees_up_on_decision(self) -> None:
        """At max_pending, a new proposal is refused (nothing written); a decision makes room; a duplicate is free."""
        quota = Quota(max_pending=3, max_pending_bytes=10_000)
        filed = [self.store.submit("web-1", TOOL_EGRESS_BLOCK, f"r{i}", "j", quota=quota) for i in range(3)]
        before = digest(self.path)
        with self.assertRaisesRegex(QuotaExceeded, "already has 3 proposals waiting"):
            self.store.submit("web-1", TOOL_EGRESS_BLOCK, "r3", "j", quota=quota)
        self.assertEqual(digest(self.path), before, "a refusal writes nothing")
        self.assertEqual(self.store.submit("web-1", TOOL_EGRESS_BLOCK, "r0", "j", quota=quota).id, filed[0].id,
                         "an identical proposal is returned, not counted again")
        self.store.submit("web-2", TOOL_EGRESS_BLOCK, "r3", "j", quota=quota)  # other bottles are not affected
        decide(filed[0].id, STATUS_APPROVED, store=self.store)
        self.store.submit("web-1", TOOL_EGRESS_BLOCK, "r3", "j", quota=quota)
        self.assertEqual(len(self.store.pending("web-1")), 3)

    def test_byte_quota_counts_payload_justification_and_current_file(self) -> None:
        """The bytes of pending payloads, justifications and current files add up against max_pending_bytes."""
        quota = Quota(max_pending=50, max_pending_bytes=1000)
        bottle = self.store.for_bottle("web-1", quota=quota)
        bottle.submit(TOOL_EGRESS_BLOCK, "é" * 200, "j" * 100, current_file="c" * 100)  # 400 + 100 + 100 bytes
        with self.assertRaisesRegex(QuotaExceeded, "hold 600 bytes and this one 401, over the limit of 1000"):
            bottle.submit(TOOL_EGRESS_BLOCK, "x" * 400, "j")
        bottle.submit(TOOL_EGRESS_BLOCK, "x" * 399, "j")  # exactly 1000
        with self.assertRaises(QuotaExceeded):
            bottle.submit(TOOL_EGRESS_ALLOW, '{"host": "y.org"}', "j")

    def test_default_quota_and_none(self) -> None:
        """The handle applies DEFAULT_QUOTA unless told otherwise; quota=None is unlimited (host tools)."""
        self.assertEqual(DEFAULT_QUOTA, Quota(50, 16 * 1024 * 1024))
        for i in range(DEFAULT_QUOTA.max_pending):
            self.store.for_bottle("web-1").submit(TOOL_EGRESS_ALLOW, f'{{"host": "h{i}.org"}}', "j")
        with self.assertRaises(QuotaExceeded):
            self.store.for_bottle("web-1").submit(TOOL_EGRESS_ALLOW, '{"host": "one-more.org"}', "j")
        self.store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "one-more.org"}', "j", quota=None)
        for bad in (0, -1, True, 1.5):
            with self.subTest(bad=bad), self.assertRaises(ValidationError):
                Quota(max_pending=bad)  # type: ignore[arg-type]


    def test_the_hour_counts_only_decisions_nobody_paced(self) -> None:
        """A rule's decisions and expiries of the bottle's filings of the last hour count; the operator's do not,
        nor another bottle's, nor those of filings older than the hour."""
        quota = Quota(max_pending=50, max_pending_bytes=10_000_000)
        by_operator, by_rule, elsewhere = (self.file(payload=f"routes: [{n}]\n") for n in ("op", "rule", "other"))
        decide(by_operator.id, STATUS_APPROVED, store=self.store)
        decide(by_rule.id, STATUS_APPROVED, store=self.store, decided_by=rule_decider("a" * 32))
        other = self.store.submit("web-2", TOOL_EGRESS_BLOCK, "routes: [x]\n", "needed")
        decide(other.id, STATUS_REJECTED, "no", store=self.store, decided_by=rule_decider("b" * 32))
        expiring = self.file(payload="routes: [late]\n")
        with AuditStore.recording(self.store.db) as log:
            self.assertEqual(expire_in(log, later(utc_now(), 2 * 86400)), 2)  # "elsewhere" and "expiring"
        size = sum(len(p.payload) + len(p.justification) for p in (by_rule, elsewhere, expiring))

        def counted(now: str) -> str:
            try:
                with self.store.db.read() as conn:
                    check_quota(conn, "web-1", 0, Quota(3, 10_000_000), now)
            except QuotaExceeded as exc:
                return str(exc)
            return ""

        self.assertIn("already has 3 proposals", counted(utc_now()))
        self.assertIn("(3 of them)", counted(utc_now()))
        self.assertEqual(counted(later(utc_now(), 3 * 3600)), "", "filed more than an hour before: not counted")
        with self.assertRaisesRegex(QuotaExceeded, f"hold {size} bytes"):
            self.store.submit("web-1", TOOL_EGRESS_BLOCK, "r", "j", quota=Quota(50, size))
        self.store.submit("web-1", TOOL_EGRESS_BLOCK, "r", "j", quota=quota)

    def test_the_hour_is_read_through_its_index(self) -> None:
        """Each filing reads the hour's unpaced decisions through audit_log_unpaced, whatever the bottle filed:
        joining every proposal of the hour with its response cost 2 ms a filing in the write lock at 4,000."""
        self.file()
        with self.store.db.read() as conn:
            plans = query_plans(conn, lambda: self.store.submit("web-1", TOOL_EGRESS_BLOCK, "r", "j",
                                                                quota=DEFAULT_QUOTA), "audit_log")
        self.assertEqual(len(plans), 1, plans)
        self.assertIn("USING INDEX audit_log_unpaced (queue_key=? AND ts>?)", plans[0])
        self.assertIn("SEARCH p USING INDEX sqlite_autoindex_proposals_1 (id=?)", plans[0],
                      "driven by the list, not by reading the bottle's proposals of the hour")
        self.assertNotIn("proposals_by_bottle", plans[0])

    def test_a_proposal_named_by_many_entries_counts_once(self) -> None:
        """Entries a sidecar on the mount adds, naming one rule-decided proposal again and again, count it once,
        as its one response did."""
        decided = self.file(payload="routes: [r]\n")
        decide(decided.id, STATUS_REJECTED, "no", store=self.store, decided_by=rule_decider("a" * 32))
        with sqlite3.connect(self.path) as raw:
            raw.execute("DROP TRIGGER audit_log_chain")
            row = raw.execute("SELECT seq, ts, queue_key, action, tool, proposal_id, actor, notes, diff, details "
                              "FROM audit_log WHERE proposal_id = ?", (decided.id,)).fetchone()
            for n in range(1, 20):
                raw.execute("INSERT INTO audit_log (seq, ts, queue_key, action, tool, proposal_id, actor, notes, "
                            "diff, details, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                            (row[0] + n, *row[1:], "0" * 64, f"{n:064x}"))
        with self.store.db.read() as conn, self.assertRaisesRegex(QuotaExceeded, r"\(1 of them\)"):
            check_quota(conn, "web-1", 0, Quota(1, 10_000_000), utc_now())


class SummaryTest(QueueTestCase):
    def test_summaries_match_the_whole_records_without_payloads(self) -> None:
        """pending_summaries and summaries list what pending and listing do, minus payload and current file."""
        first = self.file(current_file="routes: []\n")
        second = self.file("web-2", payload="other")
        decide(second.id, STATUS_REJECTED, "no", store=self.store)
        self.assertEqual([s.id for s in self.store.pending_summaries()], [p.id for p in self.store.pending()])
        summary = self.store.pending_summaries("web-1")[0]
        whole = {k: v for k, v in first.to_dict().items() if k not in ("payload", "current_file")}
        self.assertEqual(summary.to_dict(), whole)
        self.assertEqual((summary.short_id, summary.report_only), (first.short_id, False))
        listed = self.store.summaries(include_decided=True)
        self.assertEqual([(s.id, r and r.status) for s, r in listed],
                         [(p.id, r and r.status) for p, r in self.store.listing(include_decided=True)])
        self.assertEqual([s.id for s, _ in self.store.summaries(include_decided=True, limit=1)], [second.id])
        self.assertEqual([s.id for s, _ in self.store.summaries()], [first.id])
