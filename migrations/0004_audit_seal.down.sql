-- Dropping the seals keeps every audit entry; the host's anchor still proves
-- them, and the first decision after an upgrade seals them again.
ALTER TABLE schema_history DROP COLUMN down_sha256;
DROP TRIGGER audit_seal_no_delete;
DROP TRIGGER audit_seal_no_update;
DROP TRIGGER audit_seal_order;
DROP TABLE audit_seal;
