-- Credentials of bottles whose sidecars reach the host through the relay.
--
-- A sidecar in a VM must not open the database file (SQLite's locks do not
-- cross the VM's file sharing), so it files and waits through `bot-bottle
-- relay`, which derives the bottle from the bearer token a request carries
-- (docs/architecture.md, "The relay"). Only the token's sha256 is kept here;
-- the token itself exists once, in the file the bottle's sidecar mounts. One
-- live credential per bottle: preparing the bottle again replaces it, and a
-- revoked one is refused from the next request on.
CREATE TABLE relay_credentials (
    queue_key    TEXT PRIMARY KEY
                 CHECK (length(queue_key) BETWEEN 1 AND 64
                        AND queue_key NOT GLOB '*[^a-z0-9._-]*'
                        AND substr(queue_key, 1, 1) GLOB '[a-z0-9]'),
    token_sha256 TEXT NOT NULL UNIQUE
                 CHECK (length(token_sha256) = 64 AND token_sha256 NOT GLOB '*[^0-9a-f]*'),
    created_at   TEXT NOT NULL,
    revoked_at   TEXT
) STRICT;
