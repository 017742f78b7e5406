-- Each egress-block proposal reads its bottle's entries to find the last routes file approved.
DROP INDEX audit_log_routes_approved;
