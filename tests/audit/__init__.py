"""Tests of bot_bottle.audit: the host's proof."""
