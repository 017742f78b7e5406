-- The audit log: one entry per decision and per operator edit (docs/decisions.md, "The audit log").
-- Append-only, enforced here by triggers, and hash-chained: each entry holds
-- the hash of the one before it (64 zeros for the first), and its own hash
-- covers every field, so 'bot-bottle audit verify' finds a changed or
-- removed entry even where the triggers were dropped.
CREATE TABLE audit_log (
    seq         INTEGER PRIMARY KEY CHECK (seq >= 1),
    ts          TEXT NOT NULL,
    queue_key   TEXT NOT NULL
                CHECK (length(queue_key) BETWEEN 1 AND 64
                       AND queue_key NOT GLOB '*[^a-z0-9._-]*'
                       AND substr(queue_key, 1, 1) GLOB '[a-z0-9]'),
    action      TEXT NOT NULL CHECK (action IN ('approved', 'modified', 'rejected', 'operator-edit')),
    tool        TEXT,
    proposal_id TEXT REFERENCES proposals (id),
    actor       TEXT NOT NULL,
    notes       TEXT NOT NULL,
    diff        TEXT NOT NULL,
    details     TEXT NOT NULL CHECK (json_valid(details)),
    prev_hash   TEXT NOT NULL CHECK (length(prev_hash) = 64),
    hash        TEXT NOT NULL UNIQUE CHECK (length(hash) = 64)
) STRICT;

CREATE INDEX audit_log_by_bottle ON audit_log (queue_key, seq);
CREATE INDEX audit_log_by_ts ON audit_log (ts);
CREATE INDEX audit_log_by_proposal ON audit_log (proposal_id) WHERE proposal_id IS NOT NULL;

-- Entries arrive in order and link to the one before them.
CREATE TRIGGER audit_log_chain BEFORE INSERT ON audit_log
WHEN NEW.seq IS NOT (SELECT coalesce(max(seq), 0) + 1 FROM audit_log)
  OR NEW.prev_hash IS NOT coalesce((SELECT hash FROM audit_log WHERE seq = NEW.seq - 1),
                                   '0000000000000000000000000000000000000000000000000000000000000000')
BEGIN
    SELECT RAISE(ABORT, 'audit_log entries are appended in order, each linked to the one before');
END;

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;

CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;
