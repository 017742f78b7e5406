"""Tests of bot_bottle.relay, with real relay processes."""
