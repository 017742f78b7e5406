-- Grants, rules, settings and expiry are forgotten. Audit entries of the new
-- kinds (expired, grant-revoked, rule-added, rule-revoked, setting-changed)
-- do not fit the older log: a downgrade is refused unless --export writes
-- every entry out first, in the same transaction (the runner checks), and
-- the older log keeps the entries it can hold. Expired responses are dropped:
-- those proposals read as pending again.
DROP TABLE settings;

DROP TRIGGER grants_no_delete;
DROP TRIGGER grants_immutable;
DROP INDEX grants_by_ends;
DROP INDEX grants_live;
DROP TABLE grants;

DROP TRIGGER rules_no_delete;
DROP TRIGGER rules_immutable;
DROP INDEX rules_live;
DROP TABLE rules;

-- The entries the older log can hold, kept aside while the table is made again as 0003 made it.
CREATE TABLE audit_log_kept AS
SELECT seq, ts, queue_key, action, tool, proposal_id, actor, notes, diff, details, prev_hash, hash
FROM audit_log WHERE action IN ('approved', 'modified', 'rejected', 'operator-edit');

DROP TRIGGER audit_seal_no_delete;
DELETE FROM audit_seal WHERE seq NOT IN (SELECT seq FROM audit_log_kept);
CREATE TRIGGER audit_seal_no_delete BEFORE DELETE ON audit_seal
BEGIN
    SELECT RAISE(ABORT, 'audit_seal is append-only');
END;

-- audit_seal's trigger names audit_log: it is put back once the table is there again.
DROP TRIGGER audit_seal_order;
DROP TRIGGER audit_log_no_delete;
DROP TRIGGER audit_log_no_update;
DROP TRIGGER audit_log_chain;
DROP INDEX audit_log_by_proposal;
DROP INDEX audit_log_by_ts;
DROP INDEX audit_log_by_bottle;
DROP TABLE audit_log;

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

INSERT INTO audit_log (seq, ts, queue_key, action, tool, proposal_id, actor, notes, diff, details, prev_hash, hash)
SELECT seq, ts, queue_key, action, tool, proposal_id, actor, notes, diff, details, prev_hash, hash
FROM audit_log_kept ORDER BY seq;
DROP TABLE audit_log_kept;

CREATE TRIGGER audit_seal_order BEFORE INSERT ON audit_seal
WHEN NEW.seq IS NOT (SELECT coalesce(max(seq), 0) + 1 FROM audit_seal)
  OR NOT EXISTS (SELECT 1 FROM audit_log WHERE seq = NEW.seq)
BEGIN
    SELECT RAISE(ABORT, 'audit_seal rows are appended in order, one for each audit_log entry');
END;

CREATE INDEX audit_log_by_bottle ON audit_log (queue_key, seq);
CREATE INDEX audit_log_by_ts ON audit_log (ts);
CREATE INDEX audit_log_by_proposal ON audit_log (proposal_id) WHERE proposal_id IS NOT NULL;

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

CREATE TABLE responses_kept AS
SELECT proposal_id, status, notes, final_file, decided_by, decided_at FROM responses WHERE status <> 'expired';

DROP TRIGGER responses_no_delete;
DROP TRIGGER responses_immutable;
DROP TABLE responses;

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

INSERT INTO responses (proposal_id, status, notes, final_file, decided_by, decided_at)
SELECT proposal_id, status, notes, final_file, decided_by, decided_at FROM responses_kept;
DROP TABLE responses_kept;

CREATE TRIGGER responses_immutable BEFORE UPDATE ON responses
BEGIN
    SELECT RAISE(ABORT, 'responses are immutable: the first decision wins');
END;

CREATE TRIGGER responses_no_delete BEFORE DELETE ON responses
BEGIN
    SELECT RAISE(ABORT, 'responses are never deleted');
END;

DROP INDEX proposals_by_expiry;
DROP INDEX proposals_dedupe;
DROP TRIGGER proposals_immutable;
ALTER TABLE proposals DROP COLUMN expires_at;

CREATE UNIQUE INDEX proposals_dedupe ON proposals (queue_key, tool, payload_sha256) WHERE archived_at IS NULL;

CREATE TRIGGER proposals_immutable BEFORE UPDATE ON proposals
WHEN NEW.id IS NOT OLD.id OR NEW.queue_key IS NOT OLD.queue_key OR NEW.tool IS NOT OLD.tool
  OR NEW.payload IS NOT OLD.payload OR NEW.payload_sha256 IS NOT OLD.payload_sha256
  OR NEW.justification IS NOT OLD.justification OR NEW.current_file IS NOT OLD.current_file
  OR NEW.current_file_hash IS NOT OLD.current_file_hash OR NEW.created_at IS NOT OLD.created_at
  OR OLD.archived_at IS NOT NULL
BEGIN
    SELECT RAISE(ABORT, 'proposals are immutable: only archived_at may be set, once');
END;
