"""The audit log's proof, held by the host alone: its key, the seals, the anchor, and the forensic walk.

Runs on the host (the CLI, the relay, the dashboard), never needed by a
sidecar: the key in ``~/.bot-bottle/audit.key`` lives outside the directory
sidecars are given, so nothing here can be done from a bottle. The audit
log's write path and queries are ``bot_bottle.audit_store``; this package is
what makes the log prove itself (docs/architecture.md, "The audit log
proves itself").
"""
