-- The routes files approved for each bottle, and the revocations of their
-- grants, found without reading the rest of its entries (docs/architecture.md,
-- "What approving grants, first"). An egress-block proposal is read against
-- the last one approved for its bottle (audit.routes_approved), and a bottle
-- with a million entries and no approved routes file had each such proposal
-- read all of them (0.24 s a proposal, warm). Approving a routes file ends the
-- bottle's other routes grants, as the log records them made and not revoked
-- (audit.grant_entries.logged_live_grants), in the deciding transaction.
-- 'egress-block' is records.TOOL_EGRESS_BLOCK; 'approved' and 'modified' are
-- the statuses that approve, 'grant-revoked' the action that revokes.
CREATE INDEX audit_log_routes_approved ON audit_log (queue_key, seq)
WHERE tool = 'egress-block' AND action IN ('approved', 'modified');
CREATE INDEX audit_log_routes_revoked ON audit_log (queue_key, seq)
WHERE tool = 'egress-block' AND action = 'grant-revoked';
