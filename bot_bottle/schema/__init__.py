"""The database's schema over time: the migration files, the runner, backups and the schema's checks.

Runs on the host, where the database is created and migrated; a sidecar
only asks whether the schema is the one it knows (``migrate.require_current``)
and never migrates.
"""
