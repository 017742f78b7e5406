"""Tests of bot_bottle.sidecar: the server, egress, the transports."""
