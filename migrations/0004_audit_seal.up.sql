-- Keyed seals for the audit log, and checksums of the down files.
--
-- audit_log's sha256 chain can be recomputed by anyone who can write the file,
-- and every sidecar can. Each entry's seal is an HMAC-SHA256, with a key that
-- only the host holds (outside the directory sidecars see), over the entry's
-- sequence, its hash and the previous seal; the host also keeps the newest
-- seal outside the database (its anchor). See docs/architecture.md, "The
-- audit log proves itself". Entries written before this migration are sealed
-- by the host's first decision after it, once their sha256 chain verifies.
CREATE TABLE audit_seal (
    seq INTEGER PRIMARY KEY REFERENCES audit_log (seq),
    mac TEXT NOT NULL CHECK (length(mac) = 64 AND mac NOT GLOB '*[^0-9a-f]*')
) STRICT;

-- Seals arrive in order, one per entry, never ahead of the log.
CREATE TRIGGER audit_seal_order BEFORE INSERT ON audit_seal
WHEN NEW.seq IS NOT (SELECT coalesce(max(seq), 0) + 1 FROM audit_seal)
  OR NOT EXISTS (SELECT 1 FROM audit_log WHERE seq = NEW.seq)
BEGIN
    SELECT RAISE(ABORT, 'audit_seal rows are appended in order, one for each audit_log entry');
END;

CREATE TRIGGER audit_seal_no_update BEFORE UPDATE ON audit_seal
BEGIN
    SELECT RAISE(ABORT, 'audit_seal is append-only');
END;

CREATE TRIGGER audit_seal_no_delete BEFORE DELETE ON audit_seal
BEGIN
    SELECT RAISE(ABORT, 'audit_seal is append-only');
END;

-- The runner records each down file's sha256 from now on (and fills in the
-- ones already applied), so an edited down file is drift like an edited up file.
ALTER TABLE schema_history ADD COLUMN down_sha256 TEXT
    CHECK (down_sha256 IS NULL OR (length(down_sha256) = 64 AND down_sha256 NOT GLOB '*[^0-9a-f]*'));
