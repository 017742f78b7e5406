-- What an approving rule was confirmed for (docs/architecture.md, "Grants,
-- rules and expiry"): the kinds every screen asks about twice that its own
-- subject carried when the operator made it ('internal', 'look-alike', ...),
-- as a JSON array; NULL for a rejecting rule, and for a rule made before this
-- column, which was confirmed for none the host recorded. A host pattern
-- approves a name under it only when that name carries no kind beyond these.
-- Before, the kinds were read again from the pattern with today's code: a
-- pattern added plain ('*.staging'), read as 'internal' after an upgrade,
-- approved db.staging though the operator was never asked about a name that
-- reaches inside. The rule's 'rule-added' entry records the same array, sealed
-- (details.confirmed), and the row is held to it, as to the rest of the rule.
ALTER TABLE rules ADD COLUMN confirmed TEXT
    CHECK (confirmed IS NULL OR (json_valid(confirmed) AND json_type(confirmed) = 'array'
                                 AND length(CAST(confirmed AS BLOB)) <= 256));

-- IF EXISTS: a sidecar that dropped the guard must not stop the upgrade (the
-- trigger is made again below).
DROP TRIGGER IF EXISTS rules_immutable;
-- A rule made under this migration, downgraded and upgraded again, takes back
-- what its entry recorded (the row is held to it); one from before stays NULL.
-- Read with care: the entry a row names may hold anything a sidecar wrote, and
-- many rows may name one entry: each is read once, and one larger than any
-- rule's entry (its subject is at most 64 KiB) is not read at all.
WITH recorded AS MATERIALIZED (
    SELECT a.seq AS seq,
           CASE WHEN length(CAST(a.details AS BLOB)) <= 262144 AND json_valid(a.details) THEN
               CASE WHEN json_type(a.details, '$.confirmed') = 'array'
                         AND length(CAST(json_extract(a.details, '$.confirmed') AS BLOB)) <= 256
                    THEN json_extract(a.details, '$.confirmed') END END AS confirmed
    FROM audit_log a WHERE a.seq IN (SELECT audit_seq FROM rules))
UPDATE rules SET confirmed = (SELECT r.confirmed FROM recorded r WHERE r.seq = rules.audit_seq);

CREATE TRIGGER rules_immutable BEFORE UPDATE ON rules
WHEN NEW.id IS NOT OLD.id OR NEW.queue_key IS NOT OLD.queue_key OR NEW.tool IS NOT OLD.tool
  OR NEW.subject IS NOT OLD.subject OR NEW.subject_sha256 IS NOT OLD.subject_sha256
  OR NEW.pattern IS NOT OLD.pattern OR NEW.effect IS NOT OLD.effect OR NEW.notes IS NOT OLD.notes
  OR NEW.created_at IS NOT OLD.created_at OR NEW.ends_at IS NOT OLD.ends_at
  OR NEW.created_by IS NOT OLD.created_by OR NEW.proposal_id IS NOT OLD.proposal_id
  OR NEW.audit_seq IS NOT OLD.audit_seq OR NEW.confirmed IS NOT OLD.confirmed OR OLD.revoked_at IS NOT NULL
BEGIN
    SELECT RAISE(ABORT, 'rules are immutable: only a revocation may be recorded, once');
END;
