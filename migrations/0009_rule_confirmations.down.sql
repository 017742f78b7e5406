-- Rules forget what they were confirmed for: the older code reads the kinds
-- again from each pattern, as before. Their 'rule-added' entries keep the
-- array (details.confirmed), which the older code does not read, so every
-- rule stays proven and decides as it did before this migration.
DROP TRIGGER IF EXISTS rules_immutable;
ALTER TABLE rules DROP COLUMN confirmed;
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
