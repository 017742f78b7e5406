"""Validation of every field, and the records' JSON forms."""

from __future__ import annotations

import unittest
from datetime import UTC, datetime

from bot_bottle import records, timestamps
from bot_bottle.errors import ValidationError


class ValidationTest(unittest.TestCase):
    def assert_invalid(self, field: str, call: object, *args: object, **kwargs: object) -> None:
        with self.assertRaises(ValidationError) as caught:
            call(*args, **kwargs)  # type: ignore[operator]
        self.assertIsInstance(caught.exception, ValueError)
        self.assertEqual(caught.exception.field, field)
        self.assertTrue(str(caught.exception).startswith(f"{field}:"))

    def test_queue_keys(self) -> None:
        """Bottle slugs: a-z0-9._- up to 64, starting alphanumeric; everything else is refused."""
        for good in ("a", "web-1", "x.y_z", "0abc", "a" * 64):
            self.assertEqual(records.validate_queue_key(good), good)
        for bad in ("", "A", "-x", ".x", "_x", "../x", "a/b", "a b", "a" * 65, "a\x00", "é", None, 7,
                    "x'; DROP TABLE proposals; --"):
            with self.subTest(bad=bad):
                self.assert_invalid("queue_key", records.validate_queue_key, bad)

    def test_all_bottles_is_no_bottle_slug(self) -> None:
        """The audit log's name for every bottle's entries is a queue key its entries carry, but no bottle's slug."""
        self.assertEqual(records.validate_queue_key(records.ALL_BOTTLES), "all-bottles")
        self.assertEqual(records.validate_bottle_slug("all-bottles-1"), "all-bottles-1")
        with self.assertRaisesRegex(ValidationError, "'all-bottles' is reserved"):
            records.validate_bottle_slug("all-bottles")
        self.assert_invalid("bottle", records.validate_bottle_slug, "../x")

    def test_tools_and_statuses(self) -> None:
        """Only the four tools and three statuses exist."""
        for tool in records.TOOLS:
            records.validate_tool(tool)
        self.assertEqual(set(records.TOOLS),
                         {"egress-block", "egress-allow", "gitleaks-allow", "egress-token-allow"})
        self.assert_invalid("tool", records.validate_tool, "rm -rf")
        for status in ("approved", "modified", "rejected"):
            records.validate_status(status)
        self.assert_invalid("status", records.validate_status, "pending")
        self.assertEqual(records.REPORT_ONLY_TOOLS, {"gitleaks-allow", "egress-token-allow"})
        self.assertEqual(records.ACTION_OPERATOR_EDIT, "operator-edit")
        self.assertEqual(records.DEFAULT_POLL_INTERVAL_SEC, 0.5)

    def test_text_fields(self) -> None:
        """Text must be a str, valid UTF-8, NUL-free and within its size; required text not blank."""
        limit = 10
        self.assertEqual(records.validate_text("f", "héllo", max_bytes=limit), "héllo")
        self.assert_invalid("f", records.validate_text, "f", b"bytes", max_bytes=limit)
        self.assert_invalid("f", records.validate_text, "f", "a\x00b", max_bytes=limit)
        self.assert_invalid("f", records.validate_text, "f", "\ud800", max_bytes=limit)
        self.assert_invalid("f", records.validate_text, "f", "é" * 6, max_bytes=limit)  # 12 bytes
        self.assert_invalid("f", records.validate_text, "f", "  \n", max_bytes=limit, required=True)
        self.assertIsNone(records.validate_optional_text("f", None, max_bytes=limit))

    def test_ids_and_digests(self) -> None:
        """Whole ids are 32 hex digits; prefixes 4-32 (folded to lower case); digests 64 hex."""
        records.validate_proposal_id("0" * 32)
        for bad in ("0" * 31, "g" * 32, "A" * 32, None):
            self.assert_invalid("proposal_id", records.validate_proposal_id, bad)
        self.assertEqual(records.validate_id_prefix("AB12"), "ab12")
        for bad in ("", "xyz", "a" * 33, "ab%", "a", "ab1"):
            self.assert_invalid("id", records.validate_id_prefix, bad)
        self.assertIsNone(records.validate_sha256("h", None))
        self.assert_invalid("h", records.validate_sha256, "h", "ab")

    def test_timestamps(self) -> None:
        """Stored times are fixed-width UTC; people's dates and times parse into that form."""
        now = timestamps.utc_now()
        self.assertRegex(now, timestamps.TIMESTAMP_RE)
        self.assertEqual(timestamps.parse_timestamp("since", "2026-11-01"), "2026-11-01T00:00:00.000000Z")
        self.assertEqual(timestamps.parse_timestamp("since", "2026-11-01T10:00:00+02:00"),
                         "2026-11-01T08:00:00.000000Z")
        self.assertEqual(timestamps.parse_timestamp("since", "2026-11-01T10:00:00Z"), "2026-11-01T10:00:00.000000Z")
        self.assert_invalid("since", timestamps.parse_timestamp, "since", "yesterday")
        self.assert_invalid("timestamp", timestamps.format_timestamp, datetime(2026, 1, 1))
        self.assertEqual(timestamps.format_timestamp(datetime(2026, 1, 1, tzinfo=UTC)),
                         "2026-01-01T00:00:00.000000Z")

    def test_stored_times_read_back(self) -> None:
        """A stored time reads back as the aware UTC moment it names; anything else, including a day that does
        not exist or digits that are not ASCII (they would sort out of time order), reads as None."""
        self.assertEqual(timestamps.moment_of("2026-12-05T10:00:00.123456Z"),
                         datetime(2026, 12, 5, 10, 0, 0, 123456, tzinfo=UTC))
        self.assertEqual(timestamps.later("2026-12-31T23:00:00.000000Z", 7200), "2027-01-01T01:00:00.000000Z")
        for bad in ("2026-02-30T10:00:00.000000Z", "2026-12-05T24:00:00.000000Z", "2026-12-05 10:00:00.000000Z",
                    "2026-12-05T10:00:00Z", "\uff12026-12-05T10:00:00.000000Z", "2026-12-05T10:00:00.000000+00:00",
                    None, 20261205):
            with self.subTest(bad=bad):
                self.assertIsNone(timestamps.moment_of(bad))


class RecordTest(unittest.TestCase):
    def test_proposal_helpers(self) -> None:
        """short_id is 8 digits; report_only follows the tool; to_dict has every field."""
        proposal = records.Proposal("a" * 32, "web", "gitleaks-allow", "{}", "j", None, None, "t")
        self.assertEqual(proposal.short_id, "a" * 8)
        self.assertTrue(proposal.report_only)
        self.assertEqual(set(proposal.to_dict()), {
            "id", "queue_key", "tool", "payload", "justification", "current_file",
            "current_file_hash", "created_at", "archived_at", "expires_at"})

    def test_records_are_frozen(self) -> None:
        """Records cannot be changed after they are made."""
        response = records.Response("a" * 32, "approved", "", None, "me", "t")
        with self.assertRaises(AttributeError):
            response.status = "rejected"  # type: ignore[misc]
