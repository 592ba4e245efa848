-- Retry and revert of finished bulk jobs (issue 10, section 5). Twin of postgres/0008_revert.sql.

-- An applypolicytemplate item's key policy as it was before the template replaced it (only when the template
-- changed it), written with the item's outcome: what a revert puts back. Never shown by the API.
ALTER TABLE job_items ADD COLUMN policy_before TEXT;

-- A revert job's item: the key state (the reverted item's state_before) and the exact policy it puts back.
ALTER TABLE job_items ADD COLUMN restore_state TEXT;
ALTER TABLE job_items ADD COLUMN restore_policy TEXT;
