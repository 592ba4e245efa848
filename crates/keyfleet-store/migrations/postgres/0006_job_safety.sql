-- Operator safety (issue 10): plans (dry_run), failure thresholds and idempotent creation.
-- Twin of sqlite/0006_job_safety.sql.

-- A planned job's summary (JSON) and when it can no longer be confirmed; why a job stopped early.
ALTER TABLE jobs ADD COLUMN plan JSONB;
ALTER TABLE jobs ADD COLUMN plan_expires_at BIGINT;
ALTER TABLE jobs ADD COLUMN stop_reason TEXT;

-- One row per (user, Idempotency-Key) of a create request: the hash of the body it came with and the job it
-- created (NULL while that request runs). A row older than the retention may be taken over by a new request.
CREATE TABLE idempotency_keys (
    user_id    TEXT COLLATE "C" NOT NULL,
    idem_key   TEXT COLLATE "C" NOT NULL,
    body_hash  TEXT NOT NULL,
    job_id     TEXT COLLATE "C",
    created_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, idem_key)
);
