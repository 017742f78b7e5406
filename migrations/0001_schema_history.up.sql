-- The migration runner's own record of what it applied. PRAGMA user_version
-- holds the number of the last applied migration; this table adds each one's
-- name and the sha256 of its up file, so an applied migration that was edited
-- later is reported as drift instead of silently skipped.
CREATE TABLE schema_history (
    version    INTEGER PRIMARY KEY CHECK (version >= 1),
    name       TEXT    NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    sha256     TEXT    NOT NULL CHECK (length(sha256) = 64 AND sha256 NOT GLOB '*[^0-9a-f]*'),
    applied_at TEXT    NOT NULL
) STRICT;
