-- Grants with an end, standing rules, and pending proposals that expire
-- (docs/architecture.md, "Grants, rules and expiry").
--
-- Every approval is a grant: what a bottle may now do (a subject in canonical
-- form), from when, until when, on whose word, bound to the audit entry that
-- recorded it. A standing rule decides the operator's way again for matching
-- proposals until its end (approvals) or for good (rejections). A pending
-- proposal carries the time after which it can no longer be approved, and is
-- then closed as expired: silence is not consent.

-- Pending proposals expire. Those pending now get a day from the upgrade.
ALTER TABLE proposals ADD COLUMN expires_at TEXT;

DROP TRIGGER proposals_immutable;

UPDATE proposals SET expires_at = strftime('%Y-%m-%dT%H:%M:%S', 'now', '+1 day') || '.000000Z'
WHERE archived_at IS NULL AND NOT EXISTS (SELECT 1 FROM responses r WHERE r.proposal_id = proposals.id);

CREATE TRIGGER proposals_immutable BEFORE UPDATE ON proposals
WHEN NEW.id IS NOT OLD.id OR NEW.queue_key IS NOT OLD.queue_key OR NEW.tool IS NOT OLD.tool
  OR NEW.payload IS NOT OLD.payload OR NEW.payload_sha256 IS NOT OLD.payload_sha256
  OR NEW.justification IS NOT OLD.justification OR NEW.current_file IS NOT OLD.current_file
  OR NEW.current_file_hash IS NOT OLD.current_file_hash OR NEW.created_at IS NOT OLD.created_at
  OR NEW.expires_at IS NOT OLD.expires_at OR OLD.archived_at IS NOT NULL
BEGIN
    SELECT RAISE(ABORT, 'proposals are immutable: only archived_at may be set, once');
END;

-- The same request filed again returns the same proposal, unless that one expired.
DROP INDEX proposals_dedupe;
CREATE UNIQUE INDEX proposals_dedupe ON proposals (queue_key, tool, payload_sha256, expires_at)
WHERE archived_at IS NULL;
-- What the host closes next: unarchived proposals by their end.
CREATE INDEX proposals_by_expiry ON proposals (expires_at) WHERE archived_at IS NULL;

-- A response may now say 'expired': nobody decided before the proposal's end.
CREATE TABLE responses_new (
    proposal_id TEXT PRIMARY KEY REFERENCES proposals (id),
    status      TEXT NOT NULL CHECK (status IN ('approved', 'modified', 'rejected', 'expired')),
    notes       TEXT NOT NULL DEFAULT '' CHECK (length(CAST(notes AS BLOB)) <= 65536),
    final_file  TEXT CHECK (final_file IS NULL OR length(CAST(final_file AS BLOB)) <= 1048576),
    decided_by  TEXT NOT NULL CHECK (length(decided_by) BETWEEN 1 AND 256),
    decided_at  TEXT NOT NULL,
    CHECK (status <> 'modified' OR final_file IS NOT NULL),
    CHECK (status = 'modified' OR final_file IS NULL),
    CHECK (status NOT IN ('rejected', 'expired') OR length(trim(notes)) > 0)
) STRICT;

INSERT INTO responses_new (proposal_id, status, notes, final_file, decided_by, decided_at)
SELECT proposal_id, status, notes, final_file, decided_by, decided_at FROM responses;

DROP TRIGGER responses_no_delete;
DROP TRIGGER responses_immutable;
DROP TABLE responses;
ALTER TABLE responses_new RENAME TO responses;

CREATE TRIGGER responses_immutable BEFORE UPDATE ON responses
BEGIN
    SELECT RAISE(ABORT, 'responses are immutable: the first decision wins');
END;

CREATE TRIGGER responses_no_delete BEFORE DELETE ON responses
BEGIN
    SELECT RAISE(ABORT, 'responses are never deleted');
END;

-- The audit log records the new events too. Its rows are copied as they are
-- (their hashes and seals do not change); only the CHECK on action widens.
CREATE TABLE audit_log_new (
    seq         INTEGER PRIMARY KEY CHECK (seq >= 1),
    ts          TEXT NOT NULL,
    queue_key   TEXT NOT NULL
                CHECK (length(queue_key) BETWEEN 1 AND 64
                       AND queue_key NOT GLOB '*[^a-z0-9._-]*'
                       AND substr(queue_key, 1, 1) GLOB '[a-z0-9]'),
    action      TEXT NOT NULL CHECK (action IN ('approved', 'modified', 'rejected', 'operator-edit', 'expired',
                                                'grant-revoked', 'rule-added', 'rule-revoked',
                                                'setting-changed')),
    tool        TEXT,
    proposal_id TEXT REFERENCES proposals (id),
    actor       TEXT NOT NULL,
    notes       TEXT NOT NULL,
    diff        TEXT NOT NULL,
    details     TEXT NOT NULL CHECK (json_valid(details)),
    prev_hash   TEXT NOT NULL CHECK (length(prev_hash) = 64),
    hash        TEXT NOT NULL UNIQUE CHECK (length(hash) = 64)
) STRICT;

INSERT INTO audit_log_new (seq, ts, queue_key, action, tool, proposal_id, actor, notes, diff, details, prev_hash, hash)
SELECT seq, ts, queue_key, action, tool, proposal_id, actor, notes, diff, details, prev_hash, hash
FROM audit_log ORDER BY seq;

-- audit_seal's trigger names audit_log: it is put back once the new table has the name.
DROP TRIGGER audit_seal_order;
DROP TRIGGER audit_log_no_delete;
DROP TRIGGER audit_log_no_update;
DROP TRIGGER audit_log_chain;
DROP INDEX audit_log_by_proposal;
DROP INDEX audit_log_by_ts;
DROP INDEX audit_log_by_bottle;
DROP TABLE audit_log;
ALTER TABLE audit_log_new RENAME TO audit_log;

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

-- Standing rules: the operator's decision, made again for every matching
-- proposal of one bottle (queue_key) or of all (NULL), until ends_at; a
-- rejection may stand for good (ends_at NULL), an approval always ends.
CREATE TABLE rules (
    id             TEXT PRIMARY KEY CHECK (length(id) = 32 AND id NOT GLOB '*[^0-9a-f]*'),
    queue_key      TEXT CHECK (queue_key IS NULL OR (length(queue_key) BETWEEN 1 AND 64
                                                     AND queue_key NOT GLOB '*[^a-z0-9._-]*'
                                                     AND substr(queue_key, 1, 1) GLOB '[a-z0-9]')),
    tool           TEXT NOT NULL
                   CHECK (tool IN ('egress-block', 'egress-allow', 'gitleaks-allow', 'egress-token-allow')),
    subject        TEXT NOT NULL CHECK (json_valid(subject) AND length(CAST(subject AS BLOB)) <= 65536),
    subject_sha256 TEXT NOT NULL CHECK (length(subject_sha256) = 64),
    -- 1 when the operator typed a wildcard host (a pattern); an agent's subject is matched exactly.
    pattern        INTEGER NOT NULL DEFAULT 0 CHECK (pattern IN (0, 1)),
    effect         TEXT NOT NULL CHECK (effect IN ('approve', 'reject')),
    notes          TEXT NOT NULL CHECK (length(CAST(notes AS BLOB)) <= 65536),
    created_at     TEXT NOT NULL,
    ends_at        TEXT CHECK (ends_at IS NULL OR ends_at > created_at),
    created_by     TEXT NOT NULL CHECK (length(created_by) BETWEEN 1 AND 256),
    proposal_id    TEXT REFERENCES proposals (id),
    audit_seq      INTEGER NOT NULL UNIQUE REFERENCES audit_log (seq),
    revoked_at     TEXT,
    revoked_by     TEXT,
    revoke_reason  TEXT,
    revoke_seq     INTEGER REFERENCES audit_log (seq),
    CHECK (effect = 'reject' OR ends_at IS NOT NULL),
    CHECK ((revoked_at IS NULL) = (revoked_by IS NULL) AND (revoked_at IS NULL) = (revoke_seq IS NULL))
) STRICT;

CREATE INDEX rules_live ON rules (tool, queue_key) WHERE revoked_at IS NULL;

CREATE TRIGGER rules_immutable BEFORE UPDATE ON rules
WHEN NEW.id IS NOT OLD.id OR NEW.queue_key IS NOT OLD.queue_key OR NEW.tool IS NOT OLD.tool
  OR NEW.subject IS NOT OLD.subject OR NEW.subject_sha256 IS NOT OLD.subject_sha256
  OR NEW.pattern IS NOT OLD.pattern OR NEW.effect IS NOT OLD.effect OR NEW.notes IS NOT OLD.notes
  OR NEW.created_at IS NOT OLD.created_at OR NEW.ends_at IS NOT OLD.ends_at
  OR NEW.created_by IS NOT OLD.created_by OR NEW.proposal_id IS NOT OLD.proposal_id
  OR NEW.audit_seq IS NOT OLD.audit_seq OR OLD.revoked_at IS NOT NULL
BEGIN
    SELECT RAISE(ABORT, 'rules are immutable: only a revocation may be recorded, once');
END;

CREATE TRIGGER rules_no_delete BEFORE DELETE ON rules
BEGIN
    SELECT RAISE(ABORT, 'rules are never deleted: revoke them instead');
END;

-- Grants: what a bottle may do, from starts_at until ends_at, because a
-- proposal was approved (by the operator, or by a standing rule).
CREATE TABLE grants (
    id             TEXT PRIMARY KEY CHECK (length(id) = 32 AND id NOT GLOB '*[^0-9a-f]*'),
    queue_key      TEXT NOT NULL
                   CHECK (length(queue_key) BETWEEN 1 AND 64
                          AND queue_key NOT GLOB '*[^a-z0-9._-]*'
                          AND substr(queue_key, 1, 1) GLOB '[a-z0-9]'),
    tool           TEXT NOT NULL
                   CHECK (tool IN ('egress-block', 'egress-allow', 'gitleaks-allow', 'egress-token-allow')),
    subject        TEXT NOT NULL CHECK (json_valid(subject) AND length(CAST(subject AS BLOB)) <= 65536),
    subject_sha256 TEXT NOT NULL CHECK (length(subject_sha256) = 64),
    starts_at      TEXT NOT NULL,
    ends_at        TEXT NOT NULL CHECK (ends_at > starts_at),
    proposal_id    TEXT NOT NULL UNIQUE REFERENCES proposals (id),
    rule_id        TEXT REFERENCES rules (id),
    decided_by     TEXT NOT NULL CHECK (length(decided_by) BETWEEN 1 AND 256),
    audit_seq      INTEGER NOT NULL UNIQUE REFERENCES audit_log (seq),
    revoked_at     TEXT,
    revoked_by     TEXT,
    revoke_reason  TEXT,
    revoke_seq     INTEGER REFERENCES audit_log (seq),
    CHECK ((revoked_at IS NULL) = (revoked_by IS NULL) AND (revoked_at IS NULL) = (revoke_seq IS NULL))
) STRICT;

CREATE INDEX grants_live ON grants (queue_key, tool, ends_at) WHERE revoked_at IS NULL;
CREATE INDEX grants_by_ends ON grants (ends_at);

CREATE TRIGGER grants_immutable BEFORE UPDATE ON grants
WHEN NEW.id IS NOT OLD.id OR NEW.queue_key IS NOT OLD.queue_key OR NEW.tool IS NOT OLD.tool
  OR NEW.subject IS NOT OLD.subject OR NEW.subject_sha256 IS NOT OLD.subject_sha256
  OR NEW.starts_at IS NOT OLD.starts_at OR NEW.ends_at IS NOT OLD.ends_at
  OR NEW.proposal_id IS NOT OLD.proposal_id OR NEW.rule_id IS NOT OLD.rule_id
  OR NEW.decided_by IS NOT OLD.decided_by OR NEW.audit_seq IS NOT OLD.audit_seq OR OLD.revoked_at IS NOT NULL
BEGIN
    SELECT RAISE(ABORT, 'grants are immutable: only a revocation may be recorded, once');
END;

CREATE TRIGGER grants_no_delete BEFORE DELETE ON grants
BEGIN
    SELECT RAISE(ABORT, 'grants are never deleted: revoke them instead');
END;

-- The host's settings (bot-bottle config). Each change is an audit entry.
CREATE TABLE settings (
    name      TEXT PRIMARY KEY CHECK (name IN ('pending-ttl')),
    value     TEXT NOT NULL CHECK (length(value) BETWEEN 1 AND 64),
    set_at    TEXT NOT NULL,
    set_by    TEXT NOT NULL CHECK (length(set_by) BETWEEN 1 AND 256),
    audit_seq INTEGER NOT NULL REFERENCES audit_log (seq)
) STRICT;
