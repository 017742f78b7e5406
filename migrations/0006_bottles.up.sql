-- The bottles the host prepared and their sidecars' lives, so that one query
-- joins them with their proposals (docs/architecture.md, "Bottles").
--
-- A bottle's slug is its queue key: proposals.queue_key names a row here.
-- SQLite cannot add a foreign key to an existing table, so the reference is
-- kept by triggers instead: filing a proposal for a slug without a row
-- creates one, and a bottle that has proposals is never deleted.
CREATE TABLE bottles (
    slug        TEXT PRIMARY KEY
                CHECK (length(slug) BETWEEN 1 AND 64
                       AND slug NOT GLOB '*[^a-z0-9._-]*'
                       AND substr(slug, 1, 1) GLOB '[a-z0-9]'),
    -- docker, smolmachines, macos-container; NULL where no backend prepared it
    -- (a queue key from before this table, or a sidecar run by hand).
    backend     TEXT CHECK (backend IS NULL OR (length(backend) BETWEEN 1 AND 64
                                                AND backend NOT GLOB '*[^a-z0-9-]*')),
    -- How its sidecar reaches the database: the directory mount, or the relay.
    transport   TEXT NOT NULL DEFAULT 'mount' CHECK (transport IN ('mount', 'relay')),
    state       TEXT NOT NULL CHECK (state IN ('prepared', 'running', 'stopped')),
    prepared_at TEXT NOT NULL,
    started_at  TEXT,
    stopped_at  TEXT,
    -- Refreshed by the running sidecar; a running bottle not seen lately is stale.
    last_seen   TEXT
) STRICT;

-- Queue keys filed before this table: one row each, from their first proposal.
INSERT INTO bottles (slug, state, prepared_at)
SELECT queue_key, 'prepared', min(created_at) FROM proposals GROUP BY queue_key;

CREATE TRIGGER proposals_have_a_bottle AFTER INSERT ON proposals
BEGIN
    INSERT OR IGNORE INTO bottles (slug, state, prepared_at) VALUES (NEW.queue_key, 'prepared', NEW.created_at);
END;

CREATE TRIGGER bottles_keep_their_proposals BEFORE DELETE ON bottles
WHEN EXISTS (SELECT 1 FROM proposals WHERE queue_key = OLD.slug)
BEGIN
    SELECT RAISE(ABORT, 'a bottle with proposals is never deleted');
END;
