-- The supervise queue: proposals filed by each bottle's sidecar, and the
-- operator's one response to each (docs/decisions.md, "The queue's rules").

CREATE TABLE proposals (
    id                TEXT PRIMARY KEY
                      CHECK (length(id) = 32 AND id NOT GLOB '*[^0-9a-f]*'),
    -- The bottle slug: a-z 0-9 . _ -, 1-64 characters, starting with a letter or digit.
    queue_key         TEXT NOT NULL
                      CHECK (length(queue_key) BETWEEN 1 AND 64
                             AND queue_key NOT GLOB '*[^a-z0-9._-]*'
                             AND substr(queue_key, 1, 1) GLOB '[a-z0-9]'),
    tool              TEXT NOT NULL
                      CHECK (tool IN ('egress-block', 'egress-allow', 'gitleaks-allow', 'egress-token-allow')),
    payload           TEXT NOT NULL CHECK (length(CAST(payload AS BLOB)) <= 1048576),
    -- sha256 of the payload, so the dedupe rule is an index lookup, not a 1 MiB compare.
    payload_sha256    TEXT NOT NULL CHECK (length(payload_sha256) = 64),
    justification     TEXT NOT NULL CHECK (length(CAST(justification AS BLOB)) <= 65536),
    current_file      TEXT CHECK (current_file IS NULL OR length(CAST(current_file AS BLOB)) <= 1048576),
    current_file_hash TEXT CHECK (current_file_hash IS NULL
                                  OR (length(current_file_hash) = 64
                                      AND current_file_hash NOT GLOB '*[^0-9a-f]*')),
    created_at        TEXT NOT NULL,
    archived_at       TEXT
) STRICT;

-- The operator's view and a bottle's view: unarchived proposals, oldest first.
-- Partial, so archived history does not slow the queue down as it grows.
CREATE INDEX proposals_unarchived ON proposals (created_at) WHERE archived_at IS NULL;
CREATE INDEX proposals_unarchived_by_bottle ON proposals (queue_key, created_at) WHERE archived_at IS NULL;
-- The dedupe rule: one unarchived proposal per bottle, tool and payload.
CREATE UNIQUE INDEX proposals_dedupe ON proposals (queue_key, tool, payload_sha256) WHERE archived_at IS NULL;
CREATE INDEX proposals_by_bottle ON proposals (queue_key, created_at);

-- A proposal is immutable once filed; only archived_at may be set, once.
CREATE TRIGGER proposals_immutable BEFORE UPDATE ON proposals
WHEN NEW.id IS NOT OLD.id OR NEW.queue_key IS NOT OLD.queue_key OR NEW.tool IS NOT OLD.tool
  OR NEW.payload IS NOT OLD.payload OR NEW.payload_sha256 IS NOT OLD.payload_sha256
  OR NEW.justification IS NOT OLD.justification OR NEW.current_file IS NOT OLD.current_file
  OR NEW.current_file_hash IS NOT OLD.current_file_hash OR NEW.created_at IS NOT OLD.created_at
  OR OLD.archived_at IS NOT NULL
BEGIN
    SELECT RAISE(ABORT, 'proposals are immutable: only archived_at may be set, once');
END;

CREATE TRIGGER proposals_no_delete BEFORE DELETE ON proposals
BEGIN
    SELECT RAISE(ABORT, 'proposals are never deleted: archive them instead');
END;

-- At most one response per proposal (the primary key): the first decision wins.
CREATE TABLE responses (
    proposal_id TEXT PRIMARY KEY REFERENCES proposals (id),
    status      TEXT NOT NULL CHECK (status IN ('approved', 'modified', 'rejected')),
    notes       TEXT NOT NULL DEFAULT '' CHECK (length(CAST(notes AS BLOB)) <= 65536),
    final_file  TEXT CHECK (final_file IS NULL OR length(CAST(final_file AS BLOB)) <= 1048576),
    decided_by  TEXT NOT NULL CHECK (length(decided_by) BETWEEN 1 AND 256),
    decided_at  TEXT NOT NULL,
    CHECK (status <> 'modified' OR final_file IS NOT NULL),
    CHECK (status = 'modified' OR final_file IS NULL),
    CHECK (status <> 'rejected' OR length(trim(notes)) > 0)
) STRICT;

CREATE TRIGGER responses_immutable BEFORE UPDATE ON responses
BEGIN
    SELECT RAISE(ABORT, 'responses are immutable: the first decision wins');
END;

CREATE TRIGGER responses_no_delete BEFORE DELETE ON responses
BEGIN
    SELECT RAISE(ABORT, 'responses are never deleted');
END;
