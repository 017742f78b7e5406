-- The quota counts decisions nobody paced by reading every proposal of the hour again.
DROP INDEX audit_log_unpaced;
