"""Tests of bot_bottle.policy: what an approval grants, and how hosts and wildcards read."""
