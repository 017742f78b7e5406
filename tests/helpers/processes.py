"""Processes for the concurrency tests: the spawn context, and what each filer expects."""

from __future__ import annotations

import multiprocessing

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
