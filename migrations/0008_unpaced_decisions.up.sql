-- What a bottle's quota counts besides its pending proposals, found without
-- reading the rest (docs/architecture.md, "Grants, rules and expiry").
--
-- A proposal a standing rule decided, or that expired, counts against its
-- bottle's quota for an hour after its filing: no person paced it. Counting
-- them by joining every proposal the bottle filed in that hour with its
-- response read each one, inside the write lock of every filing: 2 ms a
-- filing once a bottle had 4,000 decided in the hour (docs/benchmarks.md,
-- "The quota's hour"). This index holds only the decisions nobody paced, by
-- bottle and time, so a filing reads those alone. 'rule ' is
-- grant_records.RULE_DECIDER_PREFIX, the actor a rule's decision names.
CREATE INDEX audit_log_unpaced ON audit_log (queue_key, ts)
WHERE action = 'expired' OR substr(actor, 1, 5) = 'rule ';
