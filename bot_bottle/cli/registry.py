"""The CLI's verbs: each one's module and one-line help, known without importing the module.

A verb's module is imported only when that verb runs (as pip's command
registry does), so ``proposals list`` does not load curses, the HTTP server
or the demo. Each module's ``register`` takes its help line from here.
"""

from __future__ import annotations

VERBS: dict[str, tuple[str, str]] = {
    "supervise": ("bot_bottle.cli.tui.verb", "the operator's terminal UI over every bottle's pending proposals"),
    "bottles": ("bot_bottle.cli.bottles_cmds",
                "the bottles: state (stale when a sidecar went silent) and pending work"),
    "proposals": ("bot_bottle.cli.proposals_cmds", "list, show, approve, modify and reject proposals"),
    "grants": ("bot_bottle.cli.grants_cmds", "what every bottle may do now, until when; revoke a grant"),
    "rules": ("bot_bottle.cli.rules_cmds", "standing rules: your decision, made again for matching proposals"),
    "config": ("bot_bottle.cli.config_cmds", "the host's settings: how long a proposal waits (pending-ttl)"),
    "audit": ("bot_bottle.cli.audit_cmds", "read, verify and export the audit log"),
    "db": ("bot_bottle.cli.db_cmds", "the database: path, schema status, migrations, backups, checks"),
    "dashboard": ("bot_bottle.cli.dashboard.verb",
                  "a local web page: the bottles, their proposals, decisions and the audit log, in a browser"),
    "demo": ("bot_bottle.cli.demo", "see the whole flow: an agent files proposals, you decide them in the TUI"),
    "prepare": ("bot_bottle.cli.prepare_cmd",
                "prepare a bottle on this host: its transport (mount or relay), mount and run arguments"),
    "relay": ("bot_bottle.cli.relay_cmds", "the host relay through which sidecars in VMs reach the database"),
    "doctor": ("bot_bottle.cli.doctor",
               "check the database, its modes, and whether SQLite's locks work where it lives"),
}


def summary(verb: str) -> str:
    """The one-line help of ``verb``."""
    return VERBS[verb][1]
