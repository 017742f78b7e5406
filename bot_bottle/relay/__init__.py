"""``bot-bottle relay``: the host process through which sidecars in VMs reach the database.

Runs on the host, faces the VMs' network: every byte it reads comes from a
sidecar it cannot see, so each request is held to its bottle's credential
before its body is read. It opens the host database on those sidecars'
behalf and is the only process that does (docs/architecture.md, "The
relay"). The sidecar's end of the conversation is
``bot_bottle.sidecar.relay_queue``; what both ends say is ``bot_bottle.wire``.
"""
