"""A scripted agent using the official MCP SDK's streamable-HTTP client (run under a Python with ``mcp``).

Usage: python tests/helpers/mcp_client.py URL. Prints one JSON object per line for the
test to read, and waits for a line on stdin before its last call.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import anyio
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client


def say(event: str, **data: Any) -> None:
    print(json.dumps({"event": event, **data}), flush=True)


async def run(url: str) -> None:
    async with streamable_http_client(url) as streams, ClientSession(streams[0], streams[1]) as session:
        init = await session.initialize()
        say("initialized", protocol=init.protocol_version, server=init.server_info.name)
        tools = await session.list_tools()
        say("tools", names=[tool.name for tool in tools.tools])
        first = await session.call_tool(
            "egress-allow", {"host": "approve.example", "justification": "the test approves this"}
        )
        say("first", error=first.is_error, result=first.structured_content)
        second = await session.call_tool(
            "egress-allow", {"host": "later.example", "paths": ["/v1/"], "justification": "decided late"}
        )
        say("second", error=second.is_error, result=second.structured_content)
        await anyio.to_thread.run_sync(sys.stdin.readline)
        checked = await session.call_tool(
            "check-proposal", {"proposal_id": (second.structured_content or {}).get("proposal_id", "")}
        )
        say("checked", error=checked.is_error, result=checked.structured_content)


if __name__ == "__main__":
    anyio.run(run, sys.argv[1])
