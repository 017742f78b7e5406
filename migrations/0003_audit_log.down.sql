DROP TRIGGER audit_log_no_delete;
DROP TRIGGER audit_log_no_update;
DROP TRIGGER audit_log_chain;
DROP INDEX audit_log_by_proposal;
DROP INDEX audit_log_by_ts;
DROP INDEX audit_log_by_bottle;
DROP TABLE audit_log;
