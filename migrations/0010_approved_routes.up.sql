-- The routes files approved for each bottle, found without reading the rest
-- of its entries (docs/architecture.md, "What approving grants, first"): an
-- egress-block proposal is read against the last one approved for its bottle
-- (audit.routes_approved), and a bottle with a million entries and no
-- approved routes file had each such proposal read all of them (0.24 s a
-- proposal, warm). 'egress-block' is records.TOOL_EGRESS_BLOCK; 'approved'
-- and 'modified' are the statuses that approve.
CREATE INDEX audit_log_routes_approved ON audit_log (queue_key, seq)
WHERE tool = 'egress-block' AND action IN ('approved', 'modified');
