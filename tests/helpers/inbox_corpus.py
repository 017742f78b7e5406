"""Proposals that test what an inbox shows first: look-alike hosts, wildcards over shared suffixes, a justification
that draws a route of its own, a token sent to a punycode host. Filed the same way for the CLI's and the
dashboard's inbox tests."""

from __future__ import annotations

import json
from pathlib import Path

from bot_bottle.queue_store import QueueStore
from bot_bottle.records import TOOL_EGRESS_ALLOW, TOOL_EGRESS_BLOCK, TOOL_EGRESS_TOKEN_ALLOW, Proposal
from bot_bottle.timestamps import utc_now
from tests.helpers.support import file_as_a_sidecar

# A justification that draws a route of its own (a harmless one), then pushes what follows out of sight.
FAKE_ROUTE = ("Read-only access to the Python docs\nroute:\n  host: docs.python.org\n  paths: [/3/]\n"
              "  (no wildcard, nothing to check)\n" + "\n" * 20000 + "the end")


def file_look_alikes(store: QueueStore, path: Path, cyrillic_says: str) -> dict[str, Proposal]:
    """Four pending proposals, from web-1 to web-4: ``cyrillic`` (a route to ``pyp\\u0456.org``, invalid, so written
    into the file as only a sidecar could, saying ``cyrillic_says``), ``routes`` (a routes file adding a
    look-alike and a wildcard over a cloud's suffix), ``fake-route`` (``*.readthedocs.io`` with ``FAKE_ROUTE``)
    and ``token`` (a token override to a punycode host)."""
    return {
        "cyrillic": file_as_a_sidecar(path, "web-1", TOOL_EGRESS_ALLOW, '{"host": "pyp\u0456.org"}', cyrillic_says,
                                      created_at=utc_now()),
        "routes": store.submit("web-2", TOOL_EGRESS_BLOCK,
                               "routes:\n- a.example\n- pypi\u2024org\n- '*.compute.amazonaws.com'\n",
                               "the usual mirrors", current_file="routes:\n- a.example\n"),
        "fake-route": store.submit("web-3", TOOL_EGRESS_ALLOW, '{"host": "*.readthedocs.io"}', FAKE_ROUTE),
        "token": store.submit("web-4", TOOL_EGRESS_TOKEN_ALLOW, json.dumps(
            {"host": "xn--pyp-lhd.org", "method": "POST", "path": "/upload", "detector": "github-pat",
             "value_length": 40, "snippet": "token ********", "fingerprint": "ab" * 32}), "DLP"),
    }
