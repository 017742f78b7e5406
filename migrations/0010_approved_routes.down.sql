-- Each egress-block proposal reads its bottle's entries to find the last routes file approved, and a routes
-- approval reads the log's last months for the grants it ends.
DROP INDEX audit_log_routes_revoked;
DROP INDEX audit_log_routes_approved;
