"""``bot-bottle demo``: the whole supervise flow on a throwaway database, in one command.

Starts the sidecar's supervise server on loopback, plays an agent that files
proposals over real HTTP (MCP's streamable-HTTP transport, as a coding agent
would), opens the operator's TUI so you can decide them, and prints what the
agent received. Without a terminal, or with ``--auto``, a script decides
instead and the exit status says whether every step worked.
"""

from __future__ import annotations

import argparse
import curses
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from bot_bottle.audit_store import AuditStore
from bot_bottle.cli.common import add_db_option, counted, db_path, print_untrusted
from bot_bottle.cli.launch_routes import record_launch_routes
from bot_bottle.cli.registry import summary
from bot_bottle.cli.tui.app import SuperviseTUI
from bot_bottle.cli.tui.verb import check_terminal
from bot_bottle.decisions import decide
from bot_bottle.errors import BotBottleError, ValidationError
from bot_bottle.paths import root_in
from bot_bottle.queue_store import QueueStore
from bot_bottle.records import (
    STATUS_APPROVED,
    STATUS_MODIFIED,
    STATUS_PENDING,
    STATUS_REJECTED,
    TOOL_EGRESS_TOKEN_ALLOW,
)
from bot_bottle.sidecar.egress import EgressGrants, request_token_override
from bot_bottle.sidecar.launcher import spawn
from bot_bottle.text import terminal

DEMO_BOTTLE = "demo-bottle"
SERVER_START_TIMEOUT_SEC = 20.0
ROUTES_FILE = "routes:\n  - host: github.com\n  - host: docs.python.org\n"
# A made-up token in GitHub's format, for the egress DLP part of the demo. It is never stored.
DEMO_TOKEN = "ghp_" + "D3m0" * 9


@dataclass
class AgentCall:
    """One tool call the demo agent makes, what the scripted operator will decide, and what came back."""

    label: str
    tool: str
    arguments: dict[str, Any]
    auto_status: str
    auto_notes: str
    auto_final: str | None = None
    answers: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None

    @property
    def final(self) -> dict[str, Any] | None:
        """The decision the agent received, if any."""
        decided = [a for a in self.answers if a.get("status") != STATUS_PENDING]
        return decided[-1] if decided else None


def demo_calls() -> list[AgentCall]:
    """The proposals the demo agent files, one of each kind the server offers."""
    return [
        AgentCall("egress-allow pypi.org (any method; /packages/ /simple/)", "egress-allow",
                  {"host": "pypi.org", "paths": ["/simple/", "/packages/"],
                   "justification": "pip install needs the package index"},
                  STATUS_APPROVED, "fine for pip"),
        AgentCall("egress-block new routes file", "egress-block",
                  {"routes_file": ROUTES_FILE + "  - host: registry.npmjs.org\n  - host: example.com\n",
                   "justification": "npm install, and example.com for the tests"},
                  STATUS_MODIFIED, "npm yes; example.com no",
                  ROUTES_FILE + "  - host: registry.npmjs.org\n"),
        AgentCall("egress-allow paste.example (any method; every path)", "egress-allow",
                  {"host": "paste.example", "justification": "share a log with a colleague"},
                  STATUS_REJECTED, "no paste sites from bottles"),
    ]


class McpHttpAgent:
    """A minimal MCP client over streamable HTTP (stdlib ``urllib``), as an agent talks to the sidecar."""

    def __init__(self, url: str, timeout: float) -> None:
        self.url = url
        self.timeout = timeout
        self.protocol: str | None = None
        self._next_id = 0
        self._lock = threading.Lock()

    def _post(self, message: dict[str, Any]) -> dict[str, Any] | None:
        headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
        if self.protocol:
            headers["MCP-Protocol-Version"] = self.protocol
        request = urllib.request.Request(self.url, json.dumps(message).encode(), headers, method="POST")
        with urllib.request.urlopen(request, timeout=self.timeout) as response:
            body = response.read()
        return json.loads(body) if body else None

    def request(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Send one request; its result, or ``RuntimeError`` carrying the JSON-RPC error."""
        with self._lock:
            self._next_id += 1
            message_id = self._next_id
        answer = self._post({"jsonrpc": "2.0", "id": message_id, "method": method, "params": params or {}})
        if answer is None or "error" in answer:
            raise RuntimeError(f"{method}: {answer['error']['message'] if answer else 'no answer'}")
        result: dict[str, Any] = answer["result"]
        return result

    def start(self) -> tuple[str, list[str]]:
        """initialize, notifications/initialized and tools/list; the server's name and tool names."""
        init = self.request("initialize", {"protocolVersion": "2025-11-25", "capabilities": {},
                                           "clientInfo": {"name": "bot-bottle-demo-agent", "version": "1"}})
        self.protocol = init["protocolVersion"]
        self._post({"jsonrpc": "2.0", "method": "notifications/initialized"})
        tools = self.request("tools/list")["tools"]
        return f"{init['serverInfo']['name']} (protocol {self.protocol})", [t["name"] for t in tools]

    def call(self, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        """Call a tool; its structured answer ({status, notes, proposal_id, ...})."""
        result = self.request("tools/call", {"name": name, "arguments": arguments})
        answer: dict[str, Any] = result["structuredContent"]
        return answer


def _agent_work(agent: McpHttpAgent, call: AgentCall, stop: threading.Event, say: Any) -> None:
    try:
        answer = agent.call(call.tool, call.arguments)
        call.answers.append(answer)
        while answer["status"] == STATUS_PENDING and not stop.is_set():
            say(f"agent: {call.label}: still pending, calling check-proposal")
            answer = agent.call("check-proposal", {"proposal_id": answer["proposal_id"]})
            call.answers.append(answer)
    except (OSError, RuntimeError, KeyError, ValueError) as exc:
        call.error = str(exc)


class _SayHandler(logging.Handler):
    """Routes log records into the demo's progress lines."""

    def __init__(self, say: Any) -> None:
        super().__init__()
        self.say = say

    def emit(self, record: logging.LogRecord) -> None:
        self.say(f"egress proxy: {record.getMessage()}")


class Demo:
    """One run of the demo: server process, agent threads, operator (TUI or script), report."""

    def __init__(self, db: Path, auto: bool, wait_seconds: float) -> None:
        self.db = db
        self.auto = auto
        self.wait_seconds = wait_seconds
        self.calls = demo_calls()
        self.stop = threading.Event()
        self.lines: list[str] = []
        self.saying = threading.Lock()  # the agent's, the proxy's and the operator's threads each print whole lines
        # The bottle's current routes file, so egress-block shows a diff of what it adds.
        self.scratch = Path(tempfile.mkdtemp(prefix="bot-bottle-demo-routes-"))
        self.routes_file = self.scratch / "routes.yaml"
        self.routes_file.write_text(ROUTES_FILE)
        self.proxy_verdict: bool | None = None  # the egress proxy's answer, once it has one

    def say(self, line: str) -> None:
        """Print a progress line (kept for the end when the TUI owns the screen), whole: one thread at a time."""
        with self.saying:
            self.lines.append(line)
            if self.auto:
                print_untrusted(line)

    def start_server(self) -> tuple[subprocess.Popen[str], str]:
        """Start the sidecar server as its own process, as a bottle would; its URL."""
        # Created and migrated by the host, as 'prepare' does (a sidecar never makes one), with the routes file the
        # bottle is launched with on record, as 'prepare --routes-file' records it: what egress-block is read against.
        with QueueStore(self.db) as store:
            record_launch_routes(store, DEMO_BOTTLE, ROUTES_FILE)
        return spawn(DEMO_BOTTLE, self.db, "--wait-seconds", str(self.wait_seconds),
                                      "--routes-file", str(self.routes_file), ready_timeout=SERVER_START_TIMEOUT_SEC)

    def egress_proxy(self) -> None:
        """Play the egress proxy: its DLP blocked a request carrying a token; ask the operator."""
        # The helper logs why it blocks; keep that off the TUI's screen and in the demo's log.
        logger = logging.getLogger("bot_bottle.egress")
        logger.propagate = False
        logger.setLevel(logging.INFO)
        logger.addHandler(_SayHandler(self.say))
        with QueueStore(self.db) as store:
            bottle = store.for_bottle(DEMO_BOTTLE)
            self.proxy_verdict = request_token_override(
                bottle, EgressGrants(bottle), host="api.github.com", method="POST",
                path="/repos/acme/app/dispatches", detector="github-pat",
                context=f'{{"event_type": "deploy", "token": "{DEMO_TOKEN}"}}', value=DEMO_TOKEN,
                timeout=self.wait_seconds * 6, poll_interval=0.1,
            )

    def operator_script(self, store: QueueStore) -> list[str]:
        """Decide each proposal as the script says, as soon as it is filed; problems found."""
        problems: list[str] = []
        remaining = {json.dumps(c.arguments, sort_keys=True): c for c in self.calls}
        token_decided = False
        deadline = time.monotonic() + 60
        while (remaining or not token_decided) and time.monotonic() < deadline:
            for proposal in store.pending(DEMO_BOTTLE):
                if proposal.tool == TOOL_EGRESS_TOKEN_ALLOW:
                    decide(proposal.id, STATUS_APPROVED, "the deploy token, expected", decided_by="demo-operator",
                           store=store)
                    self.say(f"operator (script): approved {proposal.short_id} egress-token-allow api.github.com")
                    token_decided = True
                    continue
                call = next((c for c in remaining.values() if _matches(c, proposal.payload)), None)
                if call is None:
                    continue
                decide(proposal.id, call.auto_status, call.auto_notes, call.auto_final,
                       decided_by="demo-operator", store=store)
                self.say(f"operator (script): {call.auto_status} {proposal.short_id} {call.label}")
                del remaining[json.dumps(call.arguments, sort_keys=True)]
            time.sleep(0.1)
        problems.extend(f"{c.label}: never filed" for c in remaining.values())
        if not token_decided:
            problems.append("the egress proxy's token report was never filed")
        return problems

    def run(self) -> int:
        """The whole demo; 0 only if every step worked."""
        print(f"bot-bottle demo\n  database: {self.db}")
        try:
            server, url = self.start_server()
        except BotBottleError:
            shutil.rmtree(self.scratch, ignore_errors=True)
            raise
        print(f"  supervise server: {url} (bottle {DEMO_BOTTLE!r}, waits {self.wait_seconds:g} s per call)")
        problems: list[str] = []
        try:
            agent = McpHttpAgent(url, timeout=self.wait_seconds + 30)
            name, tools = agent.start()
            self.say(f"agent: connected to {name}; tools: {', '.join(tools)}")
            threads = [threading.Thread(target=_agent_work, args=(agent, call, self.stop, self.say), daemon=True)
                       for call in self.calls]
            for thread, call in zip(threads, self.calls, strict=True):
                self.say(f"agent: {call.label}: filing and waiting")
                thread.start()
            proxy = threading.Thread(target=self.egress_proxy, daemon=True)
            self.say("egress proxy: DLP blocked a POST to api.github.com carrying a token; asking the operator")
            proxy.start()
            threads.append(proxy)
            with QueueStore(self.db) as store:
                if self.auto:
                    problems += self.operator_script(store)
                    for thread in threads:
                        thread.join(self.wait_seconds + 30)
                else:
                    self._wait_for_filings(store)
                    check_terminal()
                    os.environ.setdefault("ESCDELAY", "25")
                    hint = "the demo agent and egress proxy wait on these: decide each (a, m, r), then q"
                    curses.wrapper(lambda screen: SuperviseTUI(screen, store, hint).run())
                    self._collect_after_tui(store, threads)
                    print_untrusted("\n".join(self.lines))
            self.stop.set()
            problems += self.report()
            with AuditStore(self.db) as audit:
                verified = audit.verify()
            print(f"audit log: {counted(verified.count, 'entry', 'entries')}, "
                  + ("chain whole" if verified.ok else terminal.clean_line(verified.problem)))
            if not verified.ok:
                problems.append("the audit log does not verify")
        except (OSError, RuntimeError, KeyError) as exc:
            problems.append(f"the agent could not talk to the server: {exc}")
        finally:
            self.stop.set()
            server.terminate()
            server.communicate(timeout=10)
            shutil.rmtree(self.scratch, ignore_errors=True)
        if problems:
            for problem in problems:
                print(f"problem: {terminal.clean_line(problem)}", file=sys.stderr)
            return 1
        print("demo finished: every step worked")
        return 0

    def _wait_for_filings(self, store: QueueStore) -> None:
        deadline = time.monotonic() + 15
        while len(store.pending(DEMO_BOTTLE)) < len(self.calls) + 1 and time.monotonic() < deadline:
            time.sleep(0.05)

    def _collect_after_tui(self, store: QueueStore, threads: list[threading.Thread]) -> None:
        # Decisions made in the TUI reach the waiting agent within a poll interval;
        # give them a moment. Undecided ones stay pending: the agent would check later.
        decided = [(p.tool, p.payload) for p, r in store.listing(DEMO_BOTTLE, include_decided=True)
                   if r is not None]
        deadline = time.monotonic() + 3
        for thread, call in zip(threads, self.calls, strict=False):
            if any(_matches(call, payload) for _, payload in decided):
                thread.join(max(0.0, deadline - time.monotonic()))
        if any(tool == TOOL_EGRESS_TOKEN_ALLOW for tool, _ in decided):
            threads[-1].join(max(0.0, deadline - time.monotonic()))

    def report(self) -> list[str]:
        """Print what the agent received; in auto mode, check it is what the script decided."""
        print("\nwhat the agent received:")
        problems: list[str] = []
        width = max(len(call.label) for call in self.calls)
        for call in self.calls:
            final = call.final
            if call.error:
                print_untrusted([f"  {call.label:<{width}} error: {call.error}"])
                problems.append(f"{call.label}: {call.error}")
                continue
            if final is None:
                print(f"  {call.label:<{width}} still pending (the agent would call check-proposal later)")
                problems.append(f"{call.label}: no decision reached the agent" if self.auto else
                                f"{call.label}: left undecided, so the agent is still waiting")
                continue
            lines = str(final.get("final_file") or "").count("\n")
            extra = f"; final file of {lines} lines" if final.get("final_file") else ""
            print_untrusted([f"  {call.label:<{width}} {final['status']:<9} {final['notes']!r}{extra}"])
            expected = (call.auto_status, call.auto_notes, call.auto_final)
            if self.auto and (final["status"], final["notes"], final.get("final_file")) != expected:
                problems.append(f"{call.label}: got {final['status']}, expected {call.auto_status}")
        verdict = {None: "still waiting for the operator", True: "token allowed", False: "request stays blocked"}
        print(f"  {'egress proxy: POST api.github.com':<{width}} {verdict[self.proxy_verdict]}")
        if self.auto and self.proxy_verdict is not True:
            problems.append("the egress proxy did not get the approval the script gave")
        elif self.proxy_verdict is None:
            problems.append("egress proxy: its token report was left undecided")
        return problems


def _matches(call: AgentCall, payload: str) -> bool:
    if call.tool == "egress-block":
        return bool(payload == call.arguments["routes_file"])
    try:
        return bool(json.loads(payload).get("host") == call.arguments["host"])
    except ValueError:
        return False


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def cmd_demo(args: argparse.Namespace) -> int:
    """Run the demo on a throwaway database (or --db)."""
    if not 0 < args.wait_seconds <= 600:
        raise ValidationError("--wait-seconds", "must be more than 0 and at most 600")
    auto = args.auto or not (os.isatty(0) and os.isatty(1))
    # Closing the terminal (SIGHUP) or a kill (SIGTERM) ends the demo like Ctrl-C,
    # so the server is stopped and the throwaway files are removed.
    for stop_signal in (signal.SIGHUP, signal.SIGTERM):
        signal.signal(stop_signal, _interrupt)
    if args.db is not None:
        return Demo(db_path(args, create=True), auto, args.wait_seconds).run()
    folder = Path(tempfile.mkdtemp(prefix="bot-bottle-demo-"))
    try:
        # Its audit key and anchor too: nothing of a throwaway demo is ever written in ~/.bot-bottle.
        with root_in(folder / ".bot-bottle"):
            return Demo(folder / "demo.db", auto, args.wait_seconds).run()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def register(subparsers: Any) -> None:
    """Add the ``demo`` verb."""
    parser = subparsers.add_parser(
        "demo",
        help=summary("demo"),
        description="Start the sidecar's supervise server on loopback, play an agent that files proposals "
        "over real HTTP (MCP), open the supervise TUI so you can decide them, and print what the agent "
        "received. Without --db it uses a throwaway database and writes nothing outside a temporary folder "
        "(its audit key and anchor included), removed afterwards; with --db, the decisions are sealed and "
        "anchored with this host's audit key, as every other verb's are. Without a terminal, or with --auto, a "
        "script decides and the exit status tells whether every step worked.",
        epilog="examples:\n  bot-bottle demo\n  bot-bottle demo --auto",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_db_option(parser, help="keep the demo's proposals and audit entries in this database file (created if "
                  "missing; default: a throwaway database, removed afterwards)")
    parser.add_argument("--auto", action="store_true", help="decide by a script instead of the TUI")
    parser.add_argument("--wait-seconds", type=float, default=10.0, metavar="S",
                        help="the server's wait bound per tool call (default 10)")
    parser.set_defaults(handler=cmd_demo)
