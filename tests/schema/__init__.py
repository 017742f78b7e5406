"""Tests of bot_bottle.schema: migrations, their runner, backups."""
