"""Processes for the concurrency tests: the spawn context, and what each filer expects."""

from __future__ import annotations

import multiprocessing
import sqlite3
import unittest

from bot_bottle.records import (
    STATUS_APPROVED,
    STATUS_MODIFIED,
    STATUS_REJECTED,
)

SPAWN = multiprocessing.get_context("spawn")


def expected_decision(payload: str) -> tuple[str, str, str | None]:
    """The operator's deterministic answer for a payload, so each waiter can check it got its own."""
    number = int(payload.rsplit("-", 1)[1])
    status = (STATUS_APPROVED, STATUS_MODIFIED, STATUS_REJECTED)[number % 3]
    final = f"final for {payload}" if status == STATUS_MODIFIED else None
    return status, f"decided {payload}", final


def entries_beyond_decisions(test: unittest.TestCase, conn: sqlite3.Connection) -> int:
    """The audit entries besides the decisions: one revocation for each routes grant a later routes file approved
    for its bottle replaced (``grants.end_replaced_routes_in``), each once, however the approvals interleaved
    (every approval but the last of each bottle), and nothing else."""
    approving = "tool = 'egress-block' AND action IN ('approved', 'modified')"
    revoked, approved, bottles, other = conn.execute(
        f"SELECT count(*) FILTER (WHERE action = 'grant-revoked'), count(*) FILTER (WHERE {approving}), "
        f"count(DISTINCT queue_key) FILTER (WHERE {approving}), count(*) FILTER (WHERE action NOT IN "
        "('approved', 'modified', 'rejected', 'grant-revoked')) FROM audit_log").fetchone()
    test.assertEqual((revoked, other), (approved - bottles, 0), "a revocation for each routes grant replaced")
    return int(revoked)
